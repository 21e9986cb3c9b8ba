"""Change events as the restore needs them: parsed from raw BSON, decoding only what replay uses.

An event's top-level fields are stepped over by their sizes, without decoding; the documents it
carries (``fullDocument``, ``documentKey``, ``updateDescription``) stay raw bytes, so they reach
MongoDB exactly as DocumentDB sent them. Only ``operationType``, ``ns`` and ``to`` are decoded.
"""

from __future__ import annotations

import struct
from collections.abc import Hashable
from dataclasses import dataclass
from enum import Enum
from typing import Any

import bson

from ..bsonvalues import DECODE, canonical_key, element_value, first_element, value_size
from ..errors import JobFailed
from ..namespaces import Namespace

CRUD_OPS = frozenset({"insert", "replace", "update", "delete"})
DDL_OPS = frozenset({"drop", "rename", "dropDatabase"})

_BSON_STRING, _BSON_DOCUMENT, _BSON_NULL, _BSON_OBJECTID = 0x02, 0x03, 0x0A, 0x07


class FullDocument(Enum):
    """What an event says about ``fullDocument``."""

    PRESENT = "present"  # a document: the state to write
    NULL = "null"  # updateLookup found nothing: deleted later, or its collection renamed
    ABSENT = "absent"  # no field (a stream without updateLookup): replay updateDescription


class EventError(JobFailed):
    """An event the restore must not apply or skip: invalidate, unknown, malformed (exit 1)."""


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    """One change event, reduced to what replay needs.

    :param op: ``operationType``.
    :param db: database of ``ns``.
    :param coll: collection of ``ns`` (None for ``dropDatabase``).
    :param document_key: raw ``documentKey`` (``{_id: ...}``), used as the write filter as is.
    :param identity: the same hashable value for every encoding of the same ``_id``
        (``1``, ``Int64(1)`` and ``1.0`` are one document, as in MongoDB).
    :param full_document: raw ``fullDocument`` when :attr:`full` is PRESENT.
    :param update_description: raw ``updateDescription`` of an update.
    :param to: the new namespace of a rename.
    """

    op: str
    db: str
    coll: str | None
    full: FullDocument = FullDocument.ABSENT
    document_key: bytes | None = None
    identity: Hashable | None = None
    full_document: bytes | None = None
    update_description: bytes | None = None
    to: Namespace | None = None

    @property
    def ns(self) -> str:
        return f"{self.db}.{self.coll}" if self.coll is not None else self.db

    @property
    def namespace(self) -> Namespace:
        """The event's collection (its database, for ``dropDatabase``)."""
        return Namespace(self.db, self.coll or "")


def identity_of(id_element: bytes) -> Hashable:
    """A key under which MongoDB-equal ``_id`` values are equal.

    ObjectIds and strings (almost every ``_id``) have one encoding: their element bytes are the
    key. Int32, Int64 and doubles are read directly (``("num", value)``, as the canonical key has
    them); other types go through the canonical key.
    """
    kind = id_element[0]
    if kind == _BSON_OBJECTID or kind == _BSON_STRING:
        return id_element
    start = id_element.index(0, 1) + 1
    if kind == 0x10:
        return ("num", _INT32(id_element, start)[0])
    if kind == 0x12:
        return ("num", _INT64(id_element, start)[0])
    if kind == 0x01:
        value = _DOUBLE(id_element, start)[0]
        return ("nan",) if value != value else ("num", value)
    return canonical_key(element_value(id_element))


def id_element_of(raw_doc: bytes) -> bytes:
    """The raw ``_id`` element (type byte through value) of a document whose first field is ``_id``."""
    first = first_element(raw_doc)
    if first is None or first[0] != "_id":
        raise ValueError("document without a leading _id")
    return first[1]


_INT32 = struct.Struct("<i").unpack_from
_INT64 = struct.Struct("<q").unpack_from
_DOUBLE = struct.Struct("<d").unpack_from
#: The fields replay reads; every other field is stepped over without being looked at.
_WANTED = frozenset({b"operationType", b"ns", b"documentKey", b"fullDocument", b"updateDescription", b"to"})


def _scan(raw: bytes) -> dict[bytes, tuple[int, int, int]]:
    """``{name: (type, value start, value end)}`` of the wanted top-level fields of ``raw``."""
    out: dict[bytes, tuple[int, int, int]] = {}
    pos, end = 4, len(raw) - 1
    find = raw.index
    while pos < end:
        kind = raw[pos]
        name_end = find(0, pos + 1)
        start = name_end + 1
        if kind == _BSON_DOCUMENT or kind == 0x04:
            size = _INT32(raw, start)[0]
        elif kind == _BSON_STRING:
            size = 4 + _INT32(raw, start)[0]
        else:
            size = value_size(raw, kind, start)
        stop = start + size
        name = raw[pos + 1 : name_end]
        if name in _WANTED:
            out[name] = (kind, start, stop)
        pos = stop
    if pos != end:
        raise ValueError("fields overrun the document")
    return out


_NS_CACHE: dict[bytes, tuple[str, str | None]] = {}


def _namespace(raw: bytes, span: tuple[int, int, int]) -> tuple[str, str | None]:
    """``(db, coll)`` of an ``ns``/``to`` document, cached: a stream has few namespaces."""
    value = raw[span[1] : span[2]]
    cached = _NS_CACHE.get(value)
    if cached is None:
        doc = bson.decode(value, DECODE)
        cached = (str(doc["db"]), None if doc.get("coll") is None else str(doc["coll"]))
        if len(_NS_CACHE) < 10_000:
            _NS_CACHE[value] = cached
    return cached


def parse_event(raw: bytes) -> ChangeEvent:
    """The :class:`ChangeEvent` of one raw event; EventError when it lacks what replay needs."""
    try:
        fields = _scan(raw)
        kind, start, stop = fields[b"operationType"]
        if kind != _BSON_STRING:
            raise ValueError("not a string")
        op = raw[start + 4 : stop - 1].decode()
    except (KeyError, ValueError, IndexError, UnicodeDecodeError, struct.error) as e:
        raise EventError(f"malformed change event (no readable operationType: {e})") from None
    ns = fields.get(b"ns")
    if ns is not None and ns[0] != _BSON_DOCUMENT:
        ns = None
    if op in CRUD_OPS:
        return _crud_event(op, raw, fields, ns)
    if op in DDL_OPS and ns is not None:
        db, coll = _namespace(raw, ns)
        if op != "dropDatabase" and coll is None:
            raise EventError(f"{op} event on database {db} without a collection")
        to = None
        if op == "rename":
            to_span = fields.get(b"to")
            if to_span is None or to_span[0] != _BSON_DOCUMENT:
                raise EventError(f"rename event of {db}.{coll} without a 'to' namespace")
            to_db, to_coll = _namespace(raw, to_span)
            if to_coll is None:
                raise EventError(f"rename event of {db}.{coll} with a 'to' namespace without a collection")
            to = Namespace(to_db, to_coll)
        return ChangeEvent(op=op, db=db, coll=coll, to=to)
    if op in DDL_OPS:
        raise EventError(f"{op} event without a namespace")
    # invalidate and unknown types: the planner stops on them, naming them
    db, coll = _namespace(raw, ns) if ns is not None else ("", None)
    return ChangeEvent(op=op, db=db, coll=coll)


def _crud_event(
    op: str, raw: bytes, fields: dict[bytes, tuple[int, int, int]], ns: tuple[int, int, int] | None
) -> ChangeEvent:
    if ns is None:
        raise EventError(f"{op} event without an ns")
    db, coll = _namespace(raw, ns)
    key_span = fields.get(b"documentKey")
    if key_span is None or key_span[0] != _BSON_DOCUMENT or coll is None:
        raise EventError(f"{op} event on {db}.{coll} without a documentKey")
    document_key = raw[key_span[1] : key_span[2]]
    try:
        identity = identity_of(id_element_of(document_key))
    except ValueError:
        raise EventError(f"{op} event on {db}.{coll}: documentKey has no _id") from None
    full_span = fields.get(b"fullDocument")
    if full_span is None:
        full, full_document = FullDocument.ABSENT, None
    elif full_span[0] == _BSON_NULL:
        full, full_document = FullDocument.NULL, None
    elif full_span[0] == _BSON_DOCUMENT:
        full, full_document = FullDocument.PRESENT, raw[full_span[1] : full_span[2]]
    else:
        raise EventError(f"{op} event on {db}.{coll}: fullDocument is not a document")
    description = None
    if op == "update" and full is not FullDocument.PRESENT:
        description_span = fields.get(b"updateDescription")
        if description_span is not None and description_span[0] == _BSON_DOCUMENT:
            description = raw[description_span[1] : description_span[2]]
        elif full is FullDocument.ABSENT:
            raise EventError(f"update event on {db}.{coll} with neither fullDocument nor updateDescription")
    elif op in ("insert", "replace") and full is not FullDocument.PRESENT:
        raise EventError(f"{op} event on {db}.{coll} without a fullDocument")
    return ChangeEvent(
        op=op,
        db=db,
        coll=coll,
        full=full,
        document_key=document_key,
        identity=identity,
        full_document=full_document,
        update_description=description,
    )


def describe_id(document_key: bytes) -> Any:
    """The decoded ``_id`` of a raw documentKey, for messages and reports."""
    return bson.decode(document_key, DECODE).get("_id")
