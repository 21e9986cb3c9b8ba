"""``backover verify --live``: the pre-freeze pass, while the application writes and the follow
restore applies (docs/architecture.md, "Verify", has the proof).

1. A0: the restore checkpoint's ``applied_cluster_time`` (and ``last_applied_seq``) when the pass
   starts; every later write to the target comes from an event after it, so does every later
   source write. Then the target's change stream position, recorded with A0 in
   ``reports/verify-live.json`` (state ``running``) before anything is compared.
2. The sorted merge of every namespace, as the full comparison does. A document compared equal is
   done. A document that differs is stamped with the source's cluster time read after it (its
   read time is at or before that).
3. Each differing document waits until the restore has applied everything up to its stamp, then
   both sides are read again: equal, it is done; still different and no event after A0 names it
   (nor a DDL its namespace), it is proven different (neither side can have changed it since A0);
   else it is stamped again and waits again, up to :data:`RECOMPARISONS` times, after which it is
   left to the freeze-time check, which compares every key of K anyway.
4. The target's change stream up to now: a write no event after A0 accounts for fails the pass.

The pass fails (exit 1, the record says why, naming the ``_id``s per namespace) on a proven
difference, on documents still waiting after ``--settle-seconds``, on an index difference in a
namespace no DDL touched, and on a write by someone else; it passes otherwise.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from bson.timestamp import Timestamp
from pymongo import MongoClient
from pymongo.errors import PyMongoError

from .. import clustertime, state
from ..bsonvalues import element_value, raw_collection
from ..errors import JobFailed
from ..layout import MigrationLayout
from ..lifecycle.source import cluster_time
from ..namespaces import Namespace
from ..restore.events import identity_of
from ..s3objects import S3Objects
from ..state import RestoreCheckpoint, RestoreState, VerifyLiveRecord, VerifyLiveState, utc_now
from . import target_stream
from .changes import ChangeKeys
from .compare import compare_namespace, namespaces
from .config import VerifyConfig, connected
from .keys import compare_keys, fetch
from .progress import Progress
from .report import foreign_summary

log = logging.getLogger("backover.verify")

#: A differing document that an event after A0 names is compared again this many times after the
#: restore passed its read time; if it still differs (it keeps changing), the freeze-time check,
#: which compares every such key, decides.
RECOMPARISONS = 5
#: Differing documents stamped with one reading of the source's cluster time, at most.
STAMP_EVERY = 1000
#: More differing documents than this while the pass runs: not a restore that trails, a target
#: that does not hold the source's data (the precondition); the pass stops.
MAX_WAITING = 100_000


@dataclass
class Waiting:
    """A document that differed, waiting for the restore to pass ``read_at``."""

    ns: Namespace
    identity: Hashable
    id_element: bytes
    read_at: Timestamp | None = None  # a source cluster time at or after its last source read
    attempts: int = 0


@dataclass
class LiveOutcome:
    """What the pass found besides equal documents."""

    proven: list[Waiting]
    unsettled: list[Waiting]
    index_differences: dict[str, list[str]]
    foreign: list[target_stream.TargetChange]


def restored_through(
    s3: S3Objects, layout: MigrationLayout
) -> tuple[Timestamp | None, RestoreCheckpoint | None]:
    """The cluster time up to which every captured source change is in the target: the restore
    checkpoint's ``applied_cluster_time``, or, when the restore has applied every segment written,
    the replicator's capture position (an idle source moves it on with no event)."""
    restore = state.read(s3, layout.restore_checkpoint, RestoreCheckpoint)
    if restore is None:
        return None, None
    through = restore.applied_cluster_time
    replicator = state.read(s3, layout.replicator_checkpoint, state.ReplicatorCheckpoint)
    if replicator is not None and restore.last_applied_seq >= replicator.last_seq:
        position = replicator.last_cluster_time
        if position is not None and (through is None or position > through):
            through = position
    return through, restore


def in_scope(wanted: tuple[Namespace, ...], databases: set[str]) -> Callable[[Namespace], bool]:
    """Which target namespaces the checks watch: those the ``--namespace`` filter covers, else
    every collection of the compared databases."""
    if wanted:
        return lambda ns: any(w.covers(ns.db, ns.coll or None) for w in wanted)
    return lambda ns: ns.db in databases


def run_verify_live(config: VerifyConfig, *, s3: S3Objects | None = None) -> VerifyLiveRecord:
    """The pre-freeze pass; writes ``reports/verify-live.json``; JobFailed (after writing it) when
    the pass fails."""
    s3 = s3 or S3Objects(config.layout.bucket)
    s3.check_bucket()
    layout = config.layout
    with connected(config) as (source, target), target_stream.raw_client(config.target) as target_raw:
        restore = state.read(s3, layout.restore_checkpoint, RestoreCheckpoint)
        if restore is not None and restore.state is RestoreState.FAILED:
            raise JobFailed(f"the restore failed ({restore.reason}): repair it before verifying")
        applied_seq = restore.last_applied_seq if restore is not None else 0
        a0 = restore.applied_cluster_time if restore is not None else None
        token, target_time = target_stream.position(target_raw)
        record = VerifyLiveRecord(
            layout.migration_id,
            applied_cluster_time=a0,
            applied_seq=applied_seq,
            target_resume_token=token,
            target_cluster_time=target_time,
            namespaces=[str(ns) for ns in config.namespaces],
        )
        state.write(s3, layout.verify_live_report, record)
        log.info(
            "verify --live: from A0 = %s (segment %d applied)%s; target's change stream at %s",
            clustertime.format(a0) if a0 is not None else "nothing applied yet",
            applied_seq,
            "" if restore is not None else " (no restore checkpoint yet)",
            clustertime.format(target_time) if target_time is not None else token,
        )
        try:
            outcome = _pass(config, s3, source, target, target_raw, record)
        except PyMongoError as e:
            outcome = None
            record.reason = f"verify could not read a side: {type(e).__name__}: {e}"
        except JobFailed as e:
            outcome = None
            record.reason = str(e)
    record.finished_at = utc_now()
    if outcome is not None:
        _judge(record, outcome, config.examples)
    record.state = VerifyLiveState.FAILED if record.reason else VerifyLiveState.PASSED
    state.write(s3, layout.verify_live_report, record)
    if record.reason:
        log.error("verify --live: FAILED: %s", record.reason)
        raise JobFailed(record.reason)
    log.info(
        "verify --live: passed: %s documents in %d namespace(s), %s differed at first (%s settled, %s "
        "left to the freeze-time check); record in s3://%s/%s",
        f"{record.documents:,}",
        len(record.compared),
        f"{record.differed:,}",
        f"{record.settled:,}",
        f"{record.deferred:,}",
        s3.bucket,
        layout.verify_live_report,
    )
    return record


def _pass(
    config: VerifyConfig,
    s3: S3Objects,
    source: MongoClient[dict[str, Any]],
    target: MongoClient[dict[str, Any]],
    target_raw: Any,
    record: VerifyLiveRecord,
) -> LiveOutcome:
    keys = ChangeKeys(after_seq=record.applied_seq)
    progress = Progress("verify --live", config.progress_seconds)
    waiting: list[Waiting] = []
    index_differences: dict[str, list[str]] = {}
    pairs = namespaces(source, target, config.namespaces)
    log.info("verify --live: %d namespace(s) of %s against %s", len(pairs), config.source, config.target)
    for ns in pairs:
        stamps = _Stamps(source, ns, waiting)
        compared = compare_namespace(
            source, target, ns.db, ns.coll, config.batch_size, 0, progress, on_difference=stamps.differed
        )
        stamps.stamp()
        log.info("%s", compared.line())
        record.documents += compared.merge.source_count
        record.compared.append(str(ns))
        if compared.index_differences:
            index_differences[str(ns)] = [d["name"] for d in compared.index_differences]
    record.differed = len(waiting)
    proven, unsettled, settled, deferred = _settle(config, s3, source, target, keys, waiting)
    record.settled, record.deferred = settled, deferred
    # What the target's stream shows, then the segments (the restore wrote only from segments that
    # existed when it wrote): every write that is the restore's is then accounted for.
    databases = {ns.db for ns in pairs}
    changes, reached = target_stream.changes_since(
        target_raw, record.target_resume_token or {}, in_scope(config.namespaces, databases)
    )
    keys.refresh(s3, config.layout)
    record.target_checked_token = reached
    index_differences = {
        ns: names for ns, names in index_differences.items() if not keys.changed_wholly(Namespace.parse(ns))
    }
    return LiveOutcome(proven, unsettled, index_differences, target_stream.foreign(changes, keys))


class _Stamps:
    """Collects the differing documents of one namespace's merge and stamps them with the source's
    cluster time read after them (every :data:`STAMP_EVERY`, and at the end of the merge)."""

    def __init__(self, source: MongoClient[dict[str, Any]], ns: Namespace, waiting: list[Waiting]) -> None:
        self.source = source
        self.ns = ns
        self.waiting = waiting
        self.unstamped: list[Waiting] = []

    def differed(self, kind: str, id_element: bytes) -> None:
        item = Waiting(self.ns, identity_of(id_element), id_element)
        self.waiting.append(item)
        self.unstamped.append(item)
        if len(self.unstamped) >= STAMP_EVERY:
            self.stamp()
        if len(self.waiting) > MAX_WAITING:
            first = self.waiting[0]
            raise JobFailed(
                f"more than {MAX_WAITING:,} documents differ (first in {first.ns}: _id "
                f"{element_value(first.id_element)!r}): the target does not hold the source's data"
            )

    def stamp(self) -> None:
        if not self.unstamped:
            return
        moment = cluster_time(self.source)
        for item in self.unstamped:
            item.read_at = moment
        self.unstamped.clear()


def _settle(
    config: VerifyConfig,
    s3: S3Objects,
    source: MongoClient[dict[str, Any]],
    target: MongoClient[dict[str, Any]],
    keys: ChangeKeys,
    waiting: list[Waiting],
) -> tuple[list[Waiting], list[Waiting], int, int]:
    """Compare the differing documents again as the restore passes them: ``(proven different,
    still waiting at the deadline, settled, left to the freeze)``."""
    proven: list[Waiting] = []
    settled = deferred = 0
    deadline = time.monotonic() + config.settle_seconds
    last_line = time.monotonic()
    while waiting:
        through, restore = restored_through(s3, config.layout)
        if restore is not None and restore.state is RestoreState.FAILED:
            raise JobFailed(
                f"the restore failed ({restore.reason}) while {len(waiting):,} differing document(s) "
                "waited for it"
            )
        ready = [w for w in waiting if through is not None and w.read_at is not None and w.read_at <= through]
        if ready:
            keys.refresh(s3, config.layout)  # after every read of the comparisons that differed
            again: list[Waiting] = []
            for ns in sorted({w.ns for w in ready}):
                group = {w.identity: w for w in ready if w.ns == ns}
                elements = {identity: w.id_element for identity, w in group.items()}
                src = fetch(raw_collection(source, ns.db, ns.coll), elements.values(), config.batch_size)
                moment = cluster_time(source)
                tgt = fetch(raw_collection(target, ns.db, ns.coll), elements.values(), config.batch_size)
                for outcome in compare_keys(src, tgt, elements):
                    item = group[outcome.identity]
                    if outcome.kind is None:
                        settled += 1
                    elif not keys.covers(ns, item.identity):
                        proven.append(item)
                    elif item.attempts + 1 >= RECOMPARISONS:
                        deferred += 1
                    else:
                        item.attempts += 1
                        item.read_at = moment
                        again.append(item)
            ready_ids = {id(w) for w in ready}
            waiting = [w for w in waiting if id(w) not in ready_ids] + again
        if proven or not waiting or time.monotonic() >= deadline:
            break
        if time.monotonic() - last_line >= config.progress_seconds:
            last_line = time.monotonic()
            log.info(
                "verify --live: %s differing document(s) wait for the restore to pass %s (it is at %s)",
                f"{len(waiting):,}",
                clustertime.format(max(w.read_at for w in waiting if w.read_at is not None)),
                clustertime.format(through) if through is not None else "nothing",
            )
        time.sleep(config.poll_seconds)
    return proven, waiting if not proven else [], settled, deferred


def _judge(record: VerifyLiveRecord, outcome: LiveOutcome, examples: int) -> None:
    """The record's verdict, differences and reason from what the pass found."""
    limit = max(examples, 1)

    def named(items: list[Waiting]) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {}
        for item in items:
            ids = out.setdefault(str(item.ns), [])
            if len(ids) < limit:
                ids.append(element_value(item.id_element))
        return out

    def listed(found: dict[str, list[Any]]) -> str:
        parts = [f"{ns}: _id {', '.join(repr(i) for i in ids)}" for ns, ids in sorted(found.items())]
        return "; ".join(parts[:5]) + (f"; and {len(parts) - 5} more namespaces" if len(parts) > 5 else "")

    record.foreign_writes = [change.describe() for change in outcome.foreign[:100]]
    if outcome.proven:
        record.differences = named(outcome.proven)
        record.reason = (
            f"{len(outcome.proven):,} document(s) differ and no captured event since A0 can change "
            f"them: {listed(record.differences)}"
        )
    elif outcome.unsettled:
        record.differences = named(outcome.unsettled)
        record.reason = (
            f"{len(outcome.unsettled):,} differing document(s) did not settle: the restore did not "
            f"apply past their read time within the settle time: {listed(record.differences)}"
        )
    elif outcome.index_differences:
        record.reason = "indexes differ: " + "; ".join(
            f"{ns}: {', '.join(names)}" for ns, names in sorted(outcome.index_differences.items())
        )
    elif outcome.foreign:
        record.reason = foreign_summary(record.foreign_writes)
