"""BSON value helpers shared by the stand-ins, the restore and the verification.

Documents are kept as raw BSON bytes; they are decoded only when a filter, an update or an index
needs their values, with codec options that keep every type (Int64 stays Int64, dates out of the
datetime range stay ``DatetimeMS``, binary subtypes and regex flags are kept).
"""

from __future__ import annotations

import decimal
from collections.abc import Hashable, Mapping
from typing import Any, cast

import bson
from bson.binary import Binary, UuidRepresentation
from bson.code import Code
from bson.codec_options import CodecOptions, DatetimeConversion
from bson.decimal128 import Decimal128
from bson.max_key import MaxKey
from bson.min_key import MinKey
from bson.raw_bson import RawBSONDocument
from bson.regex import Regex
from pymongo import MongoClient
from pymongo.collection import Collection

#: Decode into plain dicts without losing a type (used for filters, updates, index keys).
DECODE: CodecOptions[dict[str, Any]] = CodecOptions(
    document_class=dict,
    tz_aware=False,
    uuid_representation=UuidRepresentation.UNSPECIFIED,
    datetime_conversion=DatetimeConversion.DATETIME_AUTO,
)

#: Decode lazily: nested documents stay raw, so their bytes are never re-encoded.
RAW: CodecOptions[RawBSONDocument] = CodecOptions(
    document_class=RawBSONDocument,
    uuid_representation=UuidRepresentation.UNSPECIFIED,
    datetime_conversion=DatetimeConversion.DATETIME_AUTO,
)


def raw_collection(client: MongoClient[Any], db: str, coll: str) -> Collection[RawBSONDocument]:
    """``db.coll`` on ``client`` with the :data:`RAW` codec: documents come as RawBSONDocuments."""
    # pymongo (4.x) annotates get_collection as keeping the client's document type whatever
    # the codec options say; the documents are those of the codec.
    return cast("Collection[RawBSONDocument]", client[db].get_collection(coll, codec_options=RAW))


def decode(raw: bytes | memoryview) -> dict[str, Any]:
    """Decode raw BSON bytes (or a RawBSONDocument's memoryview) into a dict, keeping every BSON type."""
    return bson.decode(raw, DECODE)


def encode(doc: Mapping[str, Any]) -> bytes:
    """Encode a mapping as BSON (raw sub-documents are copied byte for byte)."""
    return bson.encode(doc, codec_options=DECODE)


def to_plain(value: Any) -> Any:
    """Turn RawBSONDocuments (at any depth) into dicts with the same types and order."""
    if isinstance(value, RawBSONDocument):
        return decode(value.raw)
    if isinstance(value, list):
        return [to_plain(v) for v in value]
    return value


def canonical_key(value: Any) -> Hashable:
    """A hashable key under which values MongoDB considers equal are equal.

    Numbers of different BSON types compare by value (``1``, ``Int64(1)``, ``1.0`` and
    ``Decimal128("1")`` are the same ``_id``), booleans are not numbers, embedded documents compare
    field by field in order, arrays element by element.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, (int, float)):
        if isinstance(value, float) and value != value:  # NaN equals NaN in MongoDB
            return ("nan",)
        return ("num", value)
    if isinstance(value, Decimal128):
        d = value.to_decimal()
        if d.is_nan():
            return ("nan",)
        if d.is_infinite():
            return ("num", float(d))
        try:
            as_int = int(d)
        except (OverflowError, decimal.InvalidOperation):
            return ("num", d)
        return ("num", as_int if as_int == d else d)
    if isinstance(value, str):
        return ("str", value)
    if isinstance(value, RawBSONDocument):
        return canonical_key(decode(value.raw))
    if isinstance(value, Mapping):
        return ("doc", tuple((k, canonical_key(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return ("arr", tuple(canonical_key(v) for v in value))
    if isinstance(value, Binary):
        return ("bin", value.subtype, bytes(value))
    if isinstance(value, bytes):
        return ("bin", 0, value)
    if isinstance(value, Regex):
        return ("regex", value.pattern, value.flags)
    if isinstance(value, Code):
        return ("code", str(value), canonical_key(value.scope))
    if isinstance(value, MinKey):
        return ("minkey",)
    if isinstance(value, MaxKey):
        return ("maxkey",)
    # ObjectId, datetime, DatetimeMS, Timestamp, uuid and the rest are hashable as they are;
    # tag them with the type so that values of different types never collide.
    return (type(value).__name__, value)


_FIXED_SIZES = {1: 8, 6: 0, 7: 12, 8: 1, 9: 8, 10: 0, 16: 4, 17: 8, 18: 8, 19: 16, 127: 0, 255: 0}


def value_size(raw: bytes, kind: int, start: int) -> int:
    size = _FIXED_SIZES.get(kind)
    if size is not None:
        return size
    if kind in (2, 13, 14):  # string, code, symbol: int32 length + bytes
        return 4 + int.from_bytes(raw[start : start + 4], "little")
    if kind in (3, 4, 15):  # document, array, code with scope: int32 total length
        return int.from_bytes(raw[start : start + 4], "little")
    if kind == 5:  # binary: int32 length + subtype + bytes
        return 5 + int.from_bytes(raw[start : start + 4], "little")
    if kind == 11:  # regex: two C strings
        return raw.index(b"\x00", raw.index(b"\x00", start) + 1) + 1 - start
    if kind == 12:  # DBPointer: string + ObjectId
        return 4 + int.from_bytes(raw[start : start + 4], "little") + 12
    raise ValueError(f"unknown BSON element type {kind}")


def elements(raw: bytes) -> dict[str, bytes]:
    """Each top-level field's raw element (type byte through value), without decoding values."""
    out = {}
    pos, end = 4, len(raw) - 1
    while pos < end:
        name_end = raw.index(b"\x00", pos + 1)
        start = name_end + 1
        stop = start + value_size(raw, raw[pos], start)
        out[raw[pos + 1 : name_end].decode()] = raw[pos:stop]
        pos = stop
    return out


def first_element(raw: bytes) -> tuple[str, bytes] | None:
    """Name and bytes (type byte through value) of a raw document's first element, without
    decoding the rest of the document; None for an empty document."""
    if len(raw) <= 5:
        return None
    name_end = raw.index(b"\x00", 5)
    start = name_end + 1
    return raw[5:name_end].decode(), raw[4 : start + value_size(raw, raw[4], start)]


def element_value(element: bytes) -> Any:
    """The decoded value of a raw element (documents decoded to dicts)."""
    return bson.decode(element_document(element), DECODE)[element[1 : element.index(b"\x00", 1)].decode()]


def embedded_document(element: bytes) -> bytes | None:
    """The raw document held by an element of type document, else None."""
    if element[0] != 3:
        return None
    return element[element.index(b"\x00", 1) + 1 :]


def element_document(element: bytes) -> bytes:
    """A one-field document made of a raw element."""
    return (len(element) + 5).to_bytes(4, "little") + element + b"\x00"


def id_of(raw_doc: bytes) -> Any:
    """The ``_id`` of a raw document (nested documents stay raw), or raise KeyError."""
    first = first_element(raw_doc)
    if first is not None and first[0] == "_id":
        return element_value(first[1])
    return bson.decode(raw_doc, RAW)["_id"]
