"""Open cursors: ``find``/``aggregate`` results and change streams, served by ``getMore``."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from typing import Any, Protocol

from bson.int64 import Int64
from bson.raw_bson import RawBSONDocument

from backover.mongo import errors

from .clock import SystemClock, WallClock

#: A reply batch stops growing past this size, as mongod's 16 MB batches do.
MAX_BATCH_BYTES = 16 * 1024 * 1024
DEFAULT_FIRST_BATCH = 101
IDLE_TIMEOUT_SECONDS = 600


class Cursor(Protocol):
    """What ``getMore`` needs from a cursor."""

    ns: str
    owner: frozenset[tuple[str, str]]

    def next_batch(self, batch_size: int | None, max_await_ms: int | None) -> list[Any]: ...

    @property
    def exhausted(self) -> bool: ...

    def extra_fields(self) -> dict[str, Any]: ...


class ListCursor:
    """A cursor over documents already computed (raw BSON bytes or RawBSONDocuments)."""

    def __init__(self, ns: str, docs: Iterator[Any], owner: frozenset[tuple[str, str]]) -> None:
        self.ns = ns
        self.owner = owner
        self._docs = docs
        self._pending: Any = None
        self._done = False
        #: ``noCursorTimeout``: never reaped for idleness.
        self.no_timeout = False

    def next_batch(self, batch_size: int | None, max_await_ms: int | None) -> list[Any]:
        batch: list[Any] = []
        size = 0
        limit = batch_size or None
        while limit is None or len(batch) < limit:
            doc = self._take()
            if doc is None:
                break
            n = len(doc.raw) if hasattr(doc, "raw") else len(doc)
            if batch and size + n > MAX_BATCH_BYTES:
                self._pending = doc
                break
            batch.append(doc)
            size += n
        return batch

    def _take(self) -> Any:
        if self._pending is not None:
            doc, self._pending = self._pending, None
            return doc
        if self._done:
            return None
        doc = next(self._docs, None)
        if doc is None:
            self._done = True
        return doc

    @property
    def exhausted(self) -> bool:
        if self._pending is not None or self._done:
            return self._pending is None and self._done
        doc = next(self._docs, None)
        if doc is None:
            self._done = True
            return True
        self._pending = doc
        return False

    def extra_fields(self) -> dict[str, Any]:
        return {}


class CursorRegistry:
    """Cursor ids to cursors; idle cursors are reaped after ten minutes of the server's clock, like
    mongod's (``cursorTimeoutMillis``)."""

    def __init__(self, wall: WallClock | None = None) -> None:
        self._wall = wall or SystemClock()
        self._lock = threading.Lock()
        self._ids = itertools.count(1_000_001)
        self._cursors: dict[int, tuple[Cursor, float]] = {}

    def register(self, cursor: Cursor) -> int:
        with self._lock:
            self._reap_locked()
            cursor_id = next(self._ids)
            self._cursors[cursor_id] = (cursor, self._wall.time())
            return cursor_id

    def get(self, cursor_id: int, principals: frozenset[tuple[str, str]]) -> Cursor:
        with self._lock:
            self._reap_locked()
            entry = self._cursors.get(cursor_id)
            if entry is None:
                raise errors.CommandError(
                    errors.CURSOR_NOT_FOUND, "CursorNotFound", f"cursor id {cursor_id} not found"
                )
            cursor = entry[0]
            if cursor.owner and not cursor.owner <= principals:
                raise errors.unauthorized(f"cursor id {cursor_id} was not created by the authenticated user")
            self._cursors[cursor_id] = (cursor, self._wall.time())
            return cursor

    def close(self, cursor_id: int) -> bool:
        with self._lock:
            return self._cursors.pop(cursor_id, None) is not None

    def _reap_locked(self) -> None:
        horizon = self._wall.time() - IDLE_TIMEOUT_SECONDS
        for cursor_id in [
            cid
            for cid, (cursor, seen) in self._cursors.items()
            if seen < horizon and not getattr(cursor, "no_timeout", False)
        ]:
            del self._cursors[cursor_id]


def cursor_reply(
    registry: CursorRegistry,
    cursor: Cursor,
    batch_size: int | None,
    first: bool,
    max_await_ms: int | None = None,
    cursor_id: int | None = None,
    single_batch: bool = False,
) -> dict[str, Any]:
    """The ``cursor`` reply of find/aggregate (``firstBatch``) or getMore (``nextBatch``).

    A first batch of ``batchSize: 0`` is empty and leaves the cursor open (mongod runs nothing
    yet); a getMore's ``batchSize: 0`` (or none) returns what is left, up to 16 MB. With
    ``single_batch`` the cursor is closed after the first batch (``singleBatch``)."""
    if first and batch_size is None:
        batch_size = DEFAULT_FIRST_BATCH
    if first and batch_size == 0:
        batch: list[Any] = []
        if single_batch:
            cursor_id = 0
        elif cursor_id is None:
            cursor_id = registry.register(cursor)
        return _reply(cursor, cursor_id, batch, first)
    batch = cursor.next_batch(batch_size, max_await_ms)
    if single_batch:
        cursor_id = 0
    elif cursor.exhausted:
        if cursor_id is not None:
            registry.close(cursor_id)
        cursor_id = 0
    elif cursor_id is None:
        cursor_id = registry.register(cursor)
    return _reply(cursor, cursor_id, batch, first)


def _reply(cursor: Cursor, cursor_id: int, batch: list[Any], first: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"id": Int64(cursor_id), "ns": cursor.ns}
    body["firstBatch" if first else "nextBatch"] = [_as_doc(d) for d in batch]
    body.update(cursor.extra_fields())
    return {"cursor": body}


def _as_doc(doc: Any) -> Any:
    if isinstance(doc, (bytes, bytearray)):
        return RawBSONDocument(bytes(doc))
    return doc
