"""Write statements and the bulk commands that carry them, built from raw bytes.

A replace-with-upsert statement is ``{q: documentKey, u: fullDocument, upsert: true}`` assembled
from the event's own bytes: the document reaches MongoDB byte for byte, never decoded or
re-encoded. Commands are split at 100,000 statements or 16 MiB, MongoDB's limits for one command.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import bson
from bson.raw_bson import RawBSONDocument

from .planner import DELETE, UPSERT, Write

MAX_STATEMENTS = 100_000
MAX_COMMAND_BYTES = 16 * 1024 * 1024 - 16 * 1024

_Q = b"\x03q\x00"
_U = b"\x03u\x00"
_UPSERT_TRUE = b"\x08upsert\x00\x01"
_LIMIT_ONE = b"\x10limit\x00\x01\x00\x00\x00"


def _document(body: bytes) -> RawBSONDocument:
    return RawBSONDocument((len(body) + 5).to_bytes(4, "little") + body + b"\x00")


def statement(write: Write) -> RawBSONDocument:
    """The statement of ``write`` for an ``update`` or ``delete`` command."""
    if write.kind == UPSERT:
        assert write.document is not None
        return _document(_Q + write.document_key + _U + write.document + _UPSERT_TRUE)
    if write.kind == DELETE:
        return _document(_Q + write.document_key + _LIMIT_ONE)
    return RawBSONDocument(bson.encode({"q": RawBSONDocument(write.document_key), "u": write.update}))


@dataclass
class Command:
    """One write command and the writes behind its statements, in statement order."""

    name: str  # update or delete
    body: dict[str, Any]
    writes: list[Write]


def commands(collection: str, writes: list[Write]) -> Iterator[Command]:
    """``update`` and ``delete`` commands (unordered) for ``writes`` of one collection.

    Unordered is safe: the planner puts at most one write per document in a round. Deletes go
    first: they free unique keys that the round's upserts may take.
    """
    updates = [w for w in writes if w.kind != DELETE]
    deletes = [w for w in writes if w.kind == DELETE]
    for name, field, group in (("delete", "deletes", deletes), ("update", "updates", updates)):
        chunk: list[Write] = []
        size = 0
        for write in group:
            if chunk and (len(chunk) >= MAX_STATEMENTS or size + write.size > MAX_COMMAND_BYTES):
                yield _command(name, field, collection, chunk)
                chunk, size = [], 0
            chunk.append(write)
            size += write.size
        if chunk:
            yield _command(name, field, collection, chunk)


def _command(name: str, field: str, collection: str, writes: list[Write]) -> Command:
    body = {name: collection, field: [statement(w) for w in writes], "ordered": False}
    return Command(name, body, writes)
