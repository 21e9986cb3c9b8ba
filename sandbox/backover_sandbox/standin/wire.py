"""MongoDB wire protocol framing: OP_MSG (2013), legacy OP_QUERY (2004) and OP_REPLY (1).

pymongo sends its first ``hello`` as OP_QUERY on ``admin.$cmd`` and everything after that as
OP_MSG. Bodies are decoded lazily (``RawBSONDocument``) so stored documents keep their bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import bson

from backover.bsonvalues import RAW

OP_REPLY = 1
OP_QUERY = 2004
OP_COMPRESSED = 2012
OP_MSG = 2013

HEADER = struct.Struct("<iiii")  # messageLength, requestID, responseTo, opCode
MAX_MESSAGE_SIZE = 48_000_000

FLAG_CHECKSUM_PRESENT = 1 << 0
FLAG_MORE_TO_COME = 1 << 1


class ProtocolError(Exception):
    """The peer sent bytes that are not a valid message; the connection is closed."""


class DocumentSequence(Sequence[Any]):
    """An OP_MSG document sequence (``documents``, ``updates``...), decoded lazily.

    Items are ``RawBSONDocument``s made on access; :meth:`raw_items` gives the bytes themselves,
    so hot paths never build an object per document.
    """

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._offsets: list[int] = []
        pos, end = 0, len(data)
        while pos < end:
            size = int.from_bytes(data[pos : pos + 4], "little")
            if size < 5 or pos + size > end:
                raise ProtocolError("malformed document sequence")
            self._offsets.append(pos)
            pos += size
        self._cache: list[Any] | None = None

    def raw_items(self) -> list[bytes]:
        data, offsets = self._data, self._offsets
        return [data[o : o + int.from_bytes(data[o : o + 4], "little")] for o in offsets]

    def _docs(self) -> list[Any]:
        if self._cache is None:
            self._cache = bson.decode_all(self._data, RAW)
        return self._cache

    def __getitem__(self, index: Any) -> Any:
        return self._docs()[index]

    def __len__(self) -> int:
        return len(self._offsets)


@dataclass
class Request:
    request_id: int
    op_code: int
    body: Any  # RawBSONDocument
    sequences: dict[str, Sequence[Any]] = field(default_factory=dict)
    more_to_come: bool = False  # OP_MSG with moreToCome: the client expects no reply
    legacy: bool = False  # OP_QUERY: answer with OP_REPLY
    legacy_collection: str = ""


def parse(request_id: int, op_code: int, payload: bytes) -> Request:
    """Parse the message body that follows the 16-byte header."""
    if op_code == OP_MSG:
        return _parse_op_msg(request_id, payload)
    if op_code == OP_QUERY:
        return _parse_op_query(request_id, payload)
    raise ProtocolError(f"unsupported opCode {op_code}")


def _parse_op_msg(request_id: int, payload: bytes) -> Request:
    (flags,) = struct.unpack_from("<I", payload, 0)
    end = len(payload) - (4 if flags & FLAG_CHECKSUM_PRESENT else 0)
    pos = 4
    body = None
    sequences: dict[str, Sequence[Any]] = {}
    view = memoryview(payload)
    while pos < end:
        kind = payload[pos]
        pos += 1
        if kind == 0:
            (size,) = struct.unpack_from("<i", payload, pos)
            body = bson.decode(view[pos : pos + size], RAW)
            pos += size
        elif kind == 1:
            (size,) = struct.unpack_from("<i", payload, pos)
            section_end = pos + size
            name_end = payload.index(b"\x00", pos + 4)
            name = payload[pos + 4 : name_end].decode()
            sequences[name] = DocumentSequence(bytes(view[name_end + 1 : section_end]))
            pos = section_end
        else:
            raise ProtocolError(f"unknown OP_MSG section kind {kind}")
    if body is None:
        raise ProtocolError("OP_MSG without a body section")
    return Request(request_id, OP_MSG, body, sequences, more_to_come=bool(flags & FLAG_MORE_TO_COME))


def _parse_op_query(request_id: int, payload: bytes) -> Request:
    name_end = payload.index(b"\x00", 4)
    collection = payload[4:name_end].decode()
    pos = name_end + 1 + 8  # numberToSkip, numberToReturn
    (size,) = struct.unpack_from("<i", payload, pos)
    query = bson.decode(memoryview(payload)[pos : pos + size], RAW)
    # Legacy commands may wrap the command as {$query: {...}, $readPreference: ...}.
    if "$query" in query:
        query = query["$query"]
    return Request(request_id, OP_QUERY, query, legacy=True, legacy_collection=collection)


def op_msg(request_id: int, response_to: int, doc: bytes) -> bytes:
    """An OP_MSG reply holding one body section."""
    length = HEADER.size + 4 + 1 + len(doc)
    return HEADER.pack(length, request_id, response_to, OP_MSG) + b"\x00\x00\x00\x00\x00" + doc


def op_reply(request_id: int, response_to: int, doc: bytes) -> bytes:
    """An OP_REPLY holding one document (the answer to a legacy OP_QUERY command)."""
    length = HEADER.size + 20 + len(doc)
    return (
        HEADER.pack(length, request_id, response_to, OP_REPLY)
        + struct.pack("<iqii", 0, 0, 0, 1)  # responseFlags, cursorID, startingFrom, numberReturned
        + doc
    )
