"""The change log: every write's change event in cluster-time order (an oplog, in short).

Change streams read from here (see ``changestreams.py``). Entries older than the retention window
are forgotten, after which resuming from them fails with code 286 ``ChangeStreamHistoryLost``.
Write times and the retention window follow the server's wall clock (``clock.py``).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bson.binary import Binary
from bson.timestamp import Timestamp

from .clock import SystemClock, WallClock

if TYPE_CHECKING:  # pragma: no cover
    from .store import Collection


@dataclass(slots=True)
class ChangeEntry:
    """One change event as recorded at write time (treat as immutable; not frozen only because a
    frozen dataclass costs several times more to build, and the log builds one per write).

    ``full_document`` is the document as written for insert and replace; updates keep their
    ``update_description`` and are looked up at read time (``fullDocument: "updateLookup"``).
    """

    seq: int
    ts: Timestamp
    wall_ms: int  # wall-clock time of the write, milliseconds since the epoch
    op: str  # insert, update, replace, delete, drop, rename, dropDatabase
    db: str
    coll: str | None
    uuid: Binary | None
    document_key: bytes | None = None  # raw {_id: ...}
    full_document: bytes | None = None
    update_description: dict[str, Any] | None = None
    to: tuple[str, str] | None = None  # rename target (db, collection)


class ChangeLog:
    """Append-only, thread-safe, with a retention window in seconds (None = keep everything)."""

    def __init__(self, retention_seconds: float | None = None, wall: WallClock | None = None) -> None:
        self.retention_seconds = retention_seconds
        self.wall = wall or SystemClock()
        self._entries: deque[ChangeEntry] = deque()
        self._next_seq = 1
        self._first_retained_seq = 1
        self._cond = threading.Condition()

    def append(
        self,
        ts: Timestamp,
        op: str,
        coll: Collection | None,
        *,
        db: str | None = None,
        document_key: bytes | None = None,
        full_document: bytes | None = None,
        update_description: dict[str, Any] | None = None,
        to: tuple[str, str] | None = None,
    ) -> ChangeEntry:
        with self._cond:
            entry = ChangeEntry(
                seq=self._next_seq,
                ts=ts,
                wall_ms=int(self.wall.time() * 1000),
                op=op,
                db=coll.db if coll is not None else db or "",
                coll=coll.name if coll is not None else None,
                uuid=coll.uuid if coll is not None else None,
                document_key=document_key,
                full_document=full_document,
                update_description=update_description,
                to=to,
            )
            self._next_seq += 1
            self._entries.append(entry)
            self._expire_locked()
            self._cond.notify_all()
            return entry

    @property
    def next_seq(self) -> int:
        """The sequence number the next write will get."""
        with self._cond:
            return self._next_seq

    @property
    def first_retained_seq(self) -> int:
        """The oldest sequence number still in the log; earlier history is lost."""
        with self._cond:
            self._expire_locked()
            return self._first_retained_seq

    def read(self, from_seq: int, limit: int) -> list[ChangeEntry]:
        """Up to ``limit`` entries with ``seq >= from_seq`` (the caller checks retention first)."""
        with self._cond:
            self._expire_locked()
            if not self._entries:
                return []
            start = max(0, from_seq - self._entries[0].seq)
            out = []
            for i in range(start, min(len(self._entries), start + limit)):
                out.append(self._entries[i])
            return out

    def first_seq_at_or_after(self, ts: Timestamp) -> int:
        """The sequence number of the first retained entry with ``ts`` at or after ``ts``."""
        with self._cond:
            for entry in self._entries:
                if entry.ts >= ts:
                    return entry.seq
            return self._next_seq

    def oldest_ts(self) -> Timestamp | None:
        with self._cond:
            self._expire_locked()
            return self._entries[0].ts if self._entries else None

    def wait_for(self, seq: int, timeout: float) -> bool:
        """Block until an entry with ``seq`` exists or ``timeout`` seconds pass."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._next_seq <= seq:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    def _expire_locked(self) -> None:
        if self.retention_seconds is None:
            return
        horizon = (self.wall.time() - self.retention_seconds) * 1000
        while self._entries and self._entries[0].wall_ms < horizon:
            self._entries.popleft()
            self._first_retained_seq += 1
        if not self._entries:
            self._first_retained_seq = self._next_seq
