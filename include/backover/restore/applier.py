"""Applies planned steps to a target: rounds of unordered bulk writes in parallel lanes, DDL alone.

* A window's rounds run one after the other; a round's writes are cut, per namespace, into lanes
  of at least ``lane_size`` writes (at most ``workers`` lanes), which run in parallel, each as
  unordered bulk commands. A document is in at most one write of a round, so lanes never race on
  a document and per-document order is the order of the rounds. A namespace written in several
  lanes has the round's deletes sent first, on their own (in one lane, a command's deletes go
  first anyway): they free unique keys the round's other writes may take.
* **Unique secondary indexes.** Parallel lanes and compaction may ask MongoDB to write a document
  with a unique key that another document still holds on the target (two users swapping e-mails;
  an ``updateLookup`` image that is newer than its neighbours'). Such duplicate-key rejections
  are collected and resolved after the round, all of a namespace's at once, in waves: the first
  wave only sends them again (a holder written later in the same round has often given the key
  up by then); each later wave looks up every holder in one query, moves them aside together
  (deleted and kept in :class:`~backover.restore.displaced.Displaced`, which explains why each
  always comes back) and sends the writes again in one command. The kept copies are saved
  (``before_remove``, once per wave) before the holders leave the target, so a crash at any
  point loses no document. A holder moved aside may be the document of one of the rejected
  writes itself: its operator update then goes to the kept copy (on the target it would match
  nothing). So no write is ever lost or rejected because of reordering, and lanes stay parallel
  for every collection. Any other rejection stops the restore.
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
from .planner import DELETE, UPDATE, UPSERT, Barrier, Step, Window, Write
from .target import DUPLICATE_KEY, BatchLookups, Target, WriteFailure

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
    holder_lookups: int = 0  # queries for the holders of unique keys (one per wave)
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
            tasks: list[tuple[Namespace, list[Write]]] = []
            failures: list[tuple[Namespace, WriteFailure]] = []
            for phase in self._phases(round_writes):
                if self._pool is None or len(phase) == 1:
                    results = [self.target.write(ns, lane) for ns, lane in phase]
                else:
                    results = list(self._pool.map(lambda task: self.target.write(*task), phase))
                failures += [
                    (ns, failure)
                    for (ns, _), failed in zip(phase, results, strict=True)
                    for failure in failed
                ]
                tasks += phase
            self.stats.writes += sum(len(lane) for _, lane in tasks)
            if self.displaced:
                self._written_back(round_writes, failures)
            for ns in {ns: None for ns, _ in failures}:
                self._resolve(ns, [failure for where, failure in failures if where == ns])

    def _phases(
        self, round_writes: dict[Namespace, list[Write]]
    ) -> list[list[tuple[Namespace, list[Write]]]]:
        """The round's lanes, in phases run one after the other. In one lane a command's deletes go
        first (they free unique keys the round's other writes may take); a namespace written in
        several lanes has its deletes sent first, in a phase of their own, for the same reason."""
        cut = {ns: lanes(writes, self.workers, self.lane_size) for ns, writes in round_writes.items()}
        if all(len(parts) == 1 for parts in cut.values()):
            return [[(ns, lane) for ns, parts in cut.items() for lane in parts]]
        first: list[tuple[Namespace, list[Write]]] = []
        then: list[tuple[Namespace, list[Write]]] = []
        for ns, writes in round_writes.items():
            deletes = [w for w in writes if w.kind == DELETE] if len(cut[ns]) > 1 else []
            if not deletes:
                then += [(ns, lane) for lane in cut[ns]]
                continue
            rest = [w for w in writes if w.kind != DELETE]
            first += [(ns, lane) for lane in lanes(deletes, self.workers, self.lane_size)]
            then += [(ns, lane) for lane in lanes(rest, self.workers, self.lane_size)] if rest else []
        return [phase for phase in (first, then) if phase]

    def _update_displaced(self, round_writes: dict[Namespace, list[Write]]) -> dict[Namespace, list[Write]]:
        """Operator updates of documents moved aside apply to their kept copies, not the target."""
        out: dict[Namespace, list[Write]] = {}
        for ns, writes in round_writes.items():
            kept = []
            for write in writes:
                if not self._kept_copy_takes(ns, write):
                    kept.append(write)
                    continue
                refused = self._update_kept_copy(ns, write)
                if refused is not None:
                    self._resolve(ns, [refused])
            if kept:
                out[ns] = kept
        return out

    def _kept_copy_takes(self, ns: Namespace, write: Write) -> bool:
        """An operator update of a document moved aside: there is nothing on the target to update."""
        return write.kind == UPDATE and self.displaced.holds(ns, write.identity)

    def _update_kept_copy(self, ns: Namespace, write: Write) -> WriteFailure | None:
        try:
            self.displaced.update(ns, write.identity, write.update or {})
        except CommandError as e:
            return WriteFailure(write, e.code, e.message)
        return None

    def _written_back(
        self, round_writes: dict[Namespace, list[Write]], failures: list[tuple[Namespace, WriteFailure]]
    ) -> None:
        """Documents moved aside earlier are back once a later write of theirs succeeded."""
        failed = {(ns, f.write.identity) for ns, f in failures}
        for ns, writes in round_writes.items():
            for write in writes:
                if (ns, write.identity) not in failed:
                    self.displaced.discard(ns, write.identity)

    def _resolve(self, ns: Namespace, failures: list[WriteFailure]) -> None:
        """Send rejected writes again after moving aside whoever holds their unique keys: all of a
        round's rejections of ``ns`` at once, in waves of one holder lookup, one save of the kept
        copies, one delete and one retry (a retry rejected again, by a holder that took the key
        meanwhile, is in the next wave); the first wave only retries."""
        for wave in range(MAX_DISPLACEMENTS + 1):
            waiting = [failure for failure in failures if self._displaceable(ns, failure)]
            if not waiting:
                return
            # The first wave only sends them again: a holder written later in the same round has
            # often given the key up already (no lookup then, and nobody moved aside).
            holders = self._holders(ns, waiting) if wave else []
            if holders:
                for holder in holders:
                    self.displaced.put(ns, holder)
                if self.before_remove is not None:
                    self.before_remove()
                removals = [Write(DELETE, _key_of(raw), _identity_of_raw(raw)) for raw in holders]
                not_removed = self.target.write(ns, removals)
                if not_removed:
                    first = not_removed[0]
                    raise JobFailed(
                        f"{ns}: the target refused to delete _id {describe_id(first.write.document_key)!r} "
                        f"(moved aside for a unique key): {first.message} (code {first.code})"
                    )
                log.debug("%s: moved aside %d holder(s) of unique keys", ns, len(holders))
            writes = [failure.write for failure in waiting]
            # A holder moved aside may be one of these writes' own document: its operator update
            # goes to the kept copy (on the target it would match nothing); a full document or a
            # delete goes to the target.
            kept = [write for write in writes if self._kept_copy_takes(ns, write)]
            sent = [write for write in writes if not self._kept_copy_takes(ns, write)]
            failures = self.target.write(ns, sent) if sent else []
            again = {failure.write.identity for failure in failures}
            for write in sent:
                if write.identity not in again:
                    self.stats.conflicts_resolved += 1
                    self.displaced.discard(ns, write.identity)
            for write in kept:
                refused = self._update_kept_copy(ns, write)
                if refused is None:
                    self.stats.conflicts_resolved += 1
                else:
                    failures.append(refused)
        waiting = [failure for failure in failures if self._displaceable(ns, failure)]
        if waiting:
            raise JobFailed(
                f"{ns}: _id {describe_id(waiting[0].write.document_key)!r} is still rejected after "
                f"moving documents aside {MAX_DISPLACEMENTS} times: {waiting[0].message}"
            )

    def _displaceable(self, ns: Namespace, failure: WriteFailure) -> bool:
        """True for a duplicate-key rejection that names its key (its holder can be moved aside);
        False for a best-effort write a later state already reflects; JobFailed for the rest."""
        write = failure.write
        if write.best_effort and failure.code in PATH_CONFLICTS:
            self.stats.already_reflected += 1
            log.debug(
                "%s: _id %r already holds a later state: %s",
                ns,
                describe_id(write.document_key),
                failure.message,
            )
            return False
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
        return True

    def _holders(self, ns: Namespace, failures: list[WriteFailure]) -> list[bytes]:
        """The documents on the target that hold the keys ``failures`` were rejected for, each once
        (one query when the target can look up many keys at once)."""
        wanted = [(failure.key_value or {}, failure.write.document_key) for failure in failures]
        self.stats.holder_lookups += 1
        if isinstance(self.target, BatchLookups):
            found = self.target.find_holders(ns, wanted)
        else:
            found = [raw for key, doc in wanted if (raw := self.target.find_holder(ns, key, doc)) is not None]
        return list({_identity_of_raw(raw): raw for raw in found}.values())

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
