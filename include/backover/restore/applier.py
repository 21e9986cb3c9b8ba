"""Applies planned steps to a target: rounds of unordered bulk writes in parallel lanes, DDL alone.

* A window's rounds run one after the other; a round's writes are cut, per namespace, into lanes
  of at least ``lane_size`` writes (at most ``workers`` lanes), which run in parallel, each as
  unordered bulk commands. A document is in at most one write of a round, so lanes never race on
  a document and per-document order is the order of the rounds.
* **Unique secondary indexes.** Parallel lanes and compaction may ask MongoDB to write a document
  with a unique key that another document still holds on the target (two users swapping e-mails;
  an ``updateLookup`` image that is newer than its neighbours'). Such duplicate-key rejections
  are collected, and after the round, one at a time: the holder of the key is moved aside
  (deleted and kept in :class:`~backover.restore.displaced.Displaced`, which explains why it
  always comes back) and the write is sent again. The kept copy is saved (``before_remove``)
  before the holder leaves the target, so a crash at any point loses no document. So no write is ever lost or rejected because
  of reordering, and lanes stay parallel for every collection. Any other rejection stops the
  restore.
* A barrier's DDL runs alone, after every write before it, and exactly once: the restore records
  it as started before and as applied after (``before_ddl``/``after_ddl``), and never plans an
  event before an applied DDL again.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ..bsonvalues import element_document
from ..errors import JobFailed
from ..mongo import errors as codes
from ..mongo.errors import CommandError
from ..namespaces import Namespace
from .displaced import Displaced
from .events import describe_id, id_element_of, identity_of
from .planner import UPDATE, UPSERT, Barrier, Step, Window, Write
from .target import DUPLICATE_KEY, Target, WriteFailure

log = logging.getLogger(__name__)

LANE_SIZE = 1000
#: PathNotViable, TypeMismatch, BadValue: an update's paths do not fit the document's state.
PATH_CONFLICTS = frozenset({codes.PATH_NOT_VIABLE, codes.TYPE_MISMATCH, codes.BAD_VALUE})
#: How many holders one write may move aside before the restore gives up on it.
MAX_DISPLACEMENTS = 16


@dataclass
class ApplyStats:
    """What the applier did so far."""

    windows: int = 0
    barriers: int = 0
    rounds: int = 0
    writes: int = 0
    conflicts_resolved: int = 0
    already_reflected: int = 0  # best-effort writes refused by a later state


def lanes(writes: list[Write], workers: int, lane_size: int = LANE_SIZE) -> list[list[Write]]:
    """``writes`` cut into at most ``workers`` lanes of at least ``lane_size`` writes each."""
    count = min(workers, max(1, len(writes) // max(1, lane_size)))
    size = math.ceil(len(writes) / count)
    return [writes[i : i + size] for i in range(0, len(writes), size)]


class Applier:
    """Applies steps in the order given (``apply`` is not re-entrant: one step at a time)."""

    def __init__(
        self,
        target: Target,
        *,
        workers: int = 4,
        lane_size: int = LANE_SIZE,
        displaced: Displaced | None = None,
        before_ddl: Callable[[Barrier], None] | None = None,
        after_ddl: Callable[[Barrier], None] | None = None,
        before_remove: Callable[[], None] | None = None,
        before_writes: Callable[[], None] | None = None,
    ) -> None:
        self.target = target
        self.workers = workers
        self.lane_size = lane_size
        self.displaced = displaced if displaced is not None else Displaced()
        self.before_ddl = before_ddl
        self.after_ddl = after_ddl
        self.before_remove = before_remove  # saves the kept copies: a crash must not lose a holder
        self.before_writes = before_writes or (lambda: None)  # the lease check before each round and DDL
        self.stats = ApplyStats()
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="restore-lane") if workers > 1 else None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def apply(self, step: Step) -> None:
        if isinstance(step, Barrier):
            self._apply_barrier(step)
        else:
            self._apply_window(step)

    # -- windows ----------------------------------------------------------------------------
    def _apply_window(self, window: Window) -> None:
        self.stats.windows += 1
        for round_writes in window.rounds():
            self.before_writes()
            self.stats.rounds += 1
            if self.displaced:
                round_writes = self._update_displaced(round_writes)
            tasks = [
                (ns, lane)
                for ns, writes in round_writes.items()
                for lane in lanes(writes, self.workers, self.lane_size)
            ]
            if self._pool is None or len(tasks) == 1:
                results = [self.target.write(ns, lane) for ns, lane in tasks]
            else:
                results = list(self._pool.map(lambda task: self.target.write(*task), tasks))
            failures = [
                (ns, failure) for (ns, _), failed in zip(tasks, results, strict=True) for failure in failed
            ]
            self.stats.writes += sum(len(lane) for _, lane in tasks)
            if self.displaced:
                self._written_back(round_writes, failures)
            for ns, failure in failures:
                self._resolve(ns, failure)

    def _update_displaced(self, round_writes: dict[Namespace, list[Write]]) -> dict[Namespace, list[Write]]:
        """Operator updates of documents moved aside apply to their kept copies, not the target."""
        out: dict[Namespace, list[Write]] = {}
        for ns, writes in round_writes.items():
            kept = []
            for write in writes:
                if write.kind != UPDATE or not self.displaced.holds(ns, write.identity):
                    kept.append(write)
                    continue
                try:
                    self.displaced.update(ns, write.identity, write.update or {})
                except CommandError as e:
                    self._resolve(ns, WriteFailure(write, e.code, e.message))
            if kept:
                out[ns] = kept
        return out

    def _written_back(
        self, round_writes: dict[Namespace, list[Write]], failures: list[tuple[Namespace, WriteFailure]]
    ) -> None:
        """Documents moved aside earlier are back once a later write of theirs succeeded."""
        failed = {(ns, f.write.identity) for ns, f in failures}
        for ns, writes in round_writes.items():
            for write in writes:
                if (ns, write.identity) not in failed:
                    self.displaced.discard(ns, write.identity)

    def _resolve(self, ns: Namespace, failure: WriteFailure) -> None:
        """Send a rejected write again after moving aside whoever holds its unique key."""
        write = failure.write
        for _ in range(MAX_DISPLACEMENTS):
            if write.best_effort and failure.code in PATH_CONFLICTS:
                self.stats.already_reflected += 1
                log.debug(
                    "%s: _id %r already holds a later state: %s",
                    ns,
                    describe_id(write.document_key),
                    failure.message,
                )
                return
            if failure.code != DUPLICATE_KEY:
                raise JobFailed(
                    f"{ns}: the target rejected the {write.kind} of _id "
                    f"{describe_id(write.document_key)!r}: {failure.message} (code {failure.code})"
                )
            if not failure.key_value:
                raise JobFailed(
                    f"{ns}: duplicate key for _id {describe_id(write.document_key)!r} and the "
                    f"server did not say which key: {failure.message}"
                )
            holder = self.target.find_holder(ns, failure.key_value, write.document_key)
            if holder is not None:
                self.displaced.put(ns, holder)
                if self.before_remove is not None:
                    self.before_remove()
                self.target.remove(ns, _key_of(holder))
                log.debug("%s: moved aside the holder of %s", ns, failure.key_value)
            retry = self.target.write(ns, [write])
            if not retry:
                self.stats.conflicts_resolved += 1
                self.displaced.discard(ns, write.identity)
                return
            failure = retry[0]
        raise JobFailed(
            f"{ns}: _id {describe_id(write.document_key)!r} is still rejected after moving "
            f"{MAX_DISPLACEMENTS} documents aside: {failure.message}"
        )

    # -- barriers ---------------------------------------------------------------------------
    def _apply_barrier(self, barrier: Barrier) -> None:
        self.stats.barriers += 1
        event = barrier.event
        log.info(
            "DDL %s of %s%s (segment %d event %d)",
            event.op,
            event.ns,
            f" to {event.to}" if event.to else "",
            barrier.seq,
            barrier.index,
        )
        self.before_writes()
        if self.before_ddl is not None:
            self.before_ddl(barrier)
        self.target.apply_ddl(event)
        if event.op == "drop":
            self.displaced.drop_namespace(event.namespace)
        elif event.op == "dropDatabase":
            self.displaced.drop_database(event.db)
        elif event.op == "rename" and event.to is not None:
            self.displaced.rename(event.namespace, event.to)
        if self.after_ddl is not None:
            self.after_ddl(barrier)

    # -- the end ------------------------------------------------------------------------------
    def write_back_displaced(self) -> int:
        """Write back the documents still moved aside once the stream is complete."""
        self.before_writes()
        count = 0
        for ns, key, raw in list(self.displaced.items()):
            write = Write(UPSERT, key, None, document=raw)
            failures = self.target.write(ns, [write])
            if failures:
                raise JobFailed(
                    f"{ns}: _id {describe_id(key)!r} was moved aside for a unique key and "
                    f"cannot be written back: {failures[0].message}"
                )
            self.displaced.discard(ns, _identity_of_raw(raw))
            count += 1
        return count


def _key_of(raw: bytes) -> bytes:
    return element_document(id_element_of(raw))


def _identity_of_raw(raw: bytes) -> object:
    return identity_of(id_element_of(raw))
