"""Change events as the server sent them, with the three fields the replicator needs read
straight from the bytes.

pymongo's change stream reads each event's ``_id`` (its resume token); on a plain
:class:`~bson.raw_bson.RawBSONDocument` that decodes every top-level field, building a document
object for ``fullDocument``, ``ns``, ``documentKey``... :class:`RawEvent` instead walks the first
elements (``_id``, ``operationType``, ``clusterTime`` come first in MongoDB's and DocumentDB's
events) and stops; any other field, or an event in another shape, falls back to the normal lazy
decoding. Cluster times are packed into one int (seconds << 32 | increment), which orders like
the Timestamp and compares without Python-level methods.
"""

from __future__ import annotations

from typing import Any

from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument
from bson.timestamp import Timestamp

#: Sizes of fixed-width BSON values by type byte.
_FIXED = {
    0x01: 8,
    0x06: 0,
    0x07: 12,
    0x08: 1,
    0x09: 8,
    0x0A: 0,
    0x10: 4,
    0x11: 8,
    0x12: 8,
    0x13: 16,
    0x7F: 0,
    0xFF: 0,
}
_LENGTH_PREFIXED = {
    0x02: 4,
    0x03: 0,
    0x04: 0,
    0x05: 5,
    0x0D: 4,
    0x0E: 4,
    0x0F: 0,
}  # extra bytes after the int32
_WANTED = 3


def pack(ts: Timestamp) -> int:
    return (ts.time << 32) | ts.inc


def unpack(value: int) -> Timestamp:
    return Timestamp(value >> 32, value & 0xFFFFFFFF)


class RawEvent(RawBSONDocument):
    """A change event whose ``_id``, ``operationType`` and ``clusterTime`` are read without decoding."""

    __slots__ = ("_bytes", "_id_doc", "_op", "_ct", "_scanned")
    _bytes: bytes
    _id_doc: RawBSONDocument | None
    _op: str | None
    _ct: int | None
    _scanned: bool

    def __init__(
        self, bson_bytes: bytes | memoryview, codec_options: CodecOptions[RawBSONDocument] | None = None
    ) -> None:
        super().__init__(bson_bytes, codec_options)
        self._scanned = False

    def head(self) -> tuple[int, str, RawBSONDocument, bytes]:
        """``(cluster time packed, operation type, _id, bytes)`` in one call (the capture's hot path)."""
        if not self._scanned:
            self._scan()
        if self._ct is None or self._op is None or self._id_doc is None:
            return self.cluster_time, self.operation_type, super().__getitem__("_id"), self._bytes
        return self._ct, self._op, self._id_doc, self._bytes

    @property
    def data(self) -> bytes:
        """The event's bytes (a copy only when pymongo handed out a memoryview of its reply)."""
        self._scan()
        return self._bytes

    @property
    def cluster_time(self) -> int:
        """``clusterTime`` packed (see :func:`pack`)."""
        self._scan()
        if self._ct is None:
            self._ct = pack(super().__getitem__("clusterTime"))
        return self._ct

    @property
    def operation_type(self) -> str:
        self._scan()
        if self._op is None:
            self._op = super().__getitem__("operationType")
        return self._op

    def __getitem__(self, key: str) -> Any:
        if key == "_id":
            self._scan()
            if self._id_doc is not None:
                return self._id_doc
        return super().__getitem__(key)

    def _scan(self) -> None:
        if self._scanned:
            return
        self._scanned = True
        raw = self.raw
        if not isinstance(raw, bytes):
            raw = bytes(raw)
        self._bytes = raw
        self._id_doc, self._op, self._ct = None, None, None
        pos, end, found = 4, len(raw) - 1, 0
        while pos < end and found < _WANTED:
            kind = raw[pos]
            name_end = raw.index(b"\x00", pos + 1)
            value = name_end + 1
            if kind in _FIXED:
                size = _FIXED[kind]
            elif kind in _LENGTH_PREFIXED:
                size = int.from_bytes(raw[value : value + 4], "little") + _LENGTH_PREFIXED[kind]
            else:
                return  # a type this walk does not size: the fields decode the normal way
            name = raw[pos + 1 : name_end]
            if name == b"_id" and kind == 0x03:
                self._id_doc = RawBSONDocument(raw[value : value + size])
                found += 1
            elif name == b"operationType" and kind == 0x02:
                self._op = raw[value + 4 : value + size - 1].decode()
                found += 1
            elif name == b"clusterTime" and kind == 0x11:
                self._ct = int.from_bytes(raw[value : value + 8], "little")
                found += 1
            pos = value + size


#: Codec options of the replicator's client: every document is a :class:`RawEvent`.
RAW_EVENTS = CodecOptions(document_class=RawEvent)
