"""``_id`` ranges as MongoDB compares them: type brackets, and filters built from raw bounds.

MongoDB's ``$gt``/``$gte``/``$lt``/``$lte`` are type-bracketed: ``{_id: {$lt: 5}}`` matches only
numbers, ``{_id: {$gte: "m"}}`` only strings. So a collection is partitioned bracket by bracket:
bounds ``b1 .. bk`` inside one bracket give the ranges ``[start, b1)``, ``[b1, b2)`` ...
``[bk, end]``, each of which matches only that bracket; when the collection holds ``_id``s of
several brackets each range also carries ``{$type: [the bracket's types]}``.

Bounds are raw BSON (``{_id: value}`` as the server sent it) and filters are built from those
bytes, never from decoded values: every BSON type compares as it is stored (a decoded DBPointer
would come back as an object, an undefined as null). The first range of a bracket is written
``{$not: {$gte: b1}}`` rather than ``{$lt: b1}`` because NaN, which sorts below every number,
matches no comparison with a number: ``$lt`` would leave a NaN ``_id`` out of every range.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import bson
from bson import json_util
from bson.decimal128 import Decimal128
from bson.errors import BSONError
from bson.raw_bson import RawBSONDocument

from ..bsonvalues import DECODE, element_document, elements, first_element


@dataclass(frozen=True)
class Bracket:
    """One canonical type bracket: its name and the ``$type`` aliases of the BSON types in it."""

    name: str
    types: tuple[str, ...]
    codes: tuple[int, ...]  # the BSON element type bytes


#: MongoDB's type brackets in sort order (mongod's ``canonicalizeBSONType``).
BRACKETS: tuple[Bracket, ...] = (
    Bracket("minKey", ("minKey",), (0xFF,)),
    Bracket("undefined", ("undefined",), (0x06,)),
    Bracket("null", ("null",), (0x0A,)),
    Bracket("number", ("double", "int", "long", "decimal"), (0x01, 0x10, 0x12, 0x13)),
    Bracket("string", ("string", "symbol"), (0x02, 0x0E)),
    Bracket("object", ("object",), (0x03,)),
    Bracket("array", ("array",), (0x04,)),
    Bracket("binData", ("binData",), (0x05,)),
    Bracket("objectId", ("objectId",), (0x07,)),
    Bracket("bool", ("bool",), (0x08,)),
    Bracket("date", ("date",), (0x09,)),
    Bracket("timestamp", ("timestamp",), (0x11,)),
    Bracket("regex", ("regex",), (0x0B,)),
    Bracket("dbPointer", ("dbPointer",), (0x0C,)),
    Bracket("javascript", ("javascript",), (0x0D,)),
    Bracket("javascriptWithScope", ("javascriptWithScope",), (0x0F,)),
    Bracket("maxKey", ("maxKey",), (0x7F,)),
)
_BY_CODE = {code: b for b in BRACKETS for code in b.codes}
_BY_NAME = {b.name: b for b in BRACKETS}
_ID_NAME = b"_id\x00"


def bracket_named(name: str) -> Bracket:
    return _BY_NAME[name]


def bracket_of(id_doc: bytes) -> Bracket:
    """The bracket of the ``_id`` in a raw ``{_id: value}`` document."""
    return _BY_CODE[id_doc[4]]


def after(bracket: Bracket) -> tuple[Bracket, ...]:
    """The brackets that sort after ``bracket``."""
    return BRACKETS[BRACKETS.index(bracket) + 1 :]


def id_document(raw_doc: bytes | memoryview) -> bytes:
    """``{_id: value}`` of a raw document, the ``_id`` element's bytes unchanged."""
    raw = bytes(raw_doc)
    first = first_element(raw)
    if first is not None and first[0] == "_id":
        return element_document(first[1])
    found = elements(raw).get("_id")  # a document whose _id is not first (not written by mongod)
    if found is None:
        raise ValueError("document without _id")
    return element_document(found)


def _value_of(id_doc: bytes) -> bytes:
    """The value bytes of the single ``_id`` element of ``{_id: value}``."""
    if id_doc[5:9] != _ID_NAME:
        raise ValueError("not an {_id: value} document")
    return id_doc[9:-1]


def _element(name: str, type_byte: int, value: bytes) -> bytes:
    return bytes([type_byte]) + name.encode() + b"\x00" + value


def _document(parts: Sequence[bytes]) -> bytes:
    body = b"".join(parts)
    return (len(body) + 5).to_bytes(4, "little") + body + b"\x00"


def _bound(name: str, id_doc: bytes) -> bytes:
    """The element ``name: <the _id value>`` (``$gte: 5``), from the raw ``{_id: 5}``."""
    return _element(name, id_doc[4], _value_of(id_doc))


def _encoded(name: str, value: Any) -> bytes:
    """The element ``name: value`` encoded by the driver (for values we write ourselves)."""
    doc = bson.encode({name: value})
    return doc[4:-1]


def is_nan(id_doc: bytes) -> bool:
    """True when the ``_id`` is a NaN (a double or a Decimal128)."""
    kind = id_doc[4]
    if kind not in (0x01, 0x13):
        return False
    value = bson.decode(id_doc, DECODE)["_id"]
    return (
        math.isnan(value)
        if isinstance(value, float)
        else isinstance(value, Decimal128) and value.to_decimal().is_nan()
    )


def id_filter(
    types: Sequence[str],
    lower: bytes | None,
    upper: bytes | None,
    last: bytes | None = None,
) -> dict[str, Any]:
    """The filter of one range: ``_id`` of ``types`` (none: any), ``>= lower`` (None: from the
    bracket's start), ``< upper`` (None: to its end), and, for a resumed copy, ``> last``.

    A range without a lower bound is bounded above by ``$not: {$gte: upper}`` so that a NaN ``_id``
    is in it. After a NaN (the first value of the number bracket) the rest is ``$gte: -Infinity``:
    ``$gt: NaN`` matches nothing."""
    parts: list[bytes] = []
    if types:
        parts.append(_encoded("$type", list(types)))
    if last is not None:
        parts.append(_encoded("$gte", float("-inf")) if is_nan(last) else _bound("$gt", last))
    elif lower is not None:
        parts.append(_bound("$gte", lower))
    if upper is not None:
        if lower is None and last is None:
            parts.append(_element("$not", 0x03, _document([_bound("$gte", upper)])))
        else:
            parts.append(_bound("$lt", upper))
    if not parts:
        return {}
    return {"_id": RawBSONDocument(_document(parts))}


def id_in(id_docs: Sequence[bytes]) -> dict[str, Any]:
    """``{_id: {$in: [...]}}`` of the ``_id``s of raw ``{_id: value}`` documents, bytes unchanged."""
    items = [_element(str(i), d[4], _value_of(d)) for i, d in enumerate(id_docs)]
    return {"_id": RawBSONDocument(_document([_element("$in", 0x04, _document(items))]))}


def shown(filter: Mapping[str, Any]) -> str:
    """A filter as relaxed Extended JSON, for people (never parsed back)."""
    if not filter:
        return "{}"
    try:
        return json_util.dumps(
            bson.decode(bson.encode(filter), DECODE), json_options=json_util.RELAXED_JSON_OPTIONS
        )
    except (BSONError, ValueError, OverflowError) as e:  # an out-of-range date, say
        return f"(not shown: {type(e).__name__})"
