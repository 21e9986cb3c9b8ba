"""``backover verify --live``: the pre-freeze pass, while the application writes and the follow
restore applies (docs/architecture.md, "Verify", has the proof), in three steps that Airflow can
map over the sync plan's partitions, or in one process (:func:`run_verify_live`).

1. :func:`begin` (``--begin``): S0/A0, the restore checkpoint's ``last_applied_seq`` and
   ``applied_cluster_time`` (every later write to the target comes from an event after them, so
   does every later source write); then the target's change stream position; then
   ``reports/verify-live.json`` (state ``running``, a new ``begin_id``) with the partitions of the
   sync plan to compare and the plan's ``created_at``, before anything is compared; then the
   partition records of earlier begins are deleted (their pass is replaced).
2. :func:`verify_partition` (``--partition ID``): the documents of one partition
   (:func:`backover.sync.scopes.partition_scope`) merged on both sides; each document that differs
   is stamped and compared again as the restore passes it (:mod:`.settle`) with K read from the
   record's S0 on. Its record lives in the begin's folder (``reports/verify-live/<begin_id>/``),
   so a slow partition of an earlier begin never replaces one of this begin.
3. :func:`finish` (``--finish``): every partition has a record of this begin (else exit 1, the
   pass stays running); the rest no partition holds (:func:`backover.sync.scopes.rest_scopes`:
   every namespace wholly without a plan) merged and settled the same way; the index
   specifications of every namespace; the target's change stream up to now (a write no event after
   S0 accounts for fails the pass); then the verdict over everything, ``passed`` or ``failed``.

The partition and the finish go on only while the sync plan is the one the begin read
(:func:`backover.sync.scopes.begun_plan`, the check the partitioned backup makes), else exit 1.

S0 is read once, before any partition starts: K from S0 is a superset of the keys each partition
needs (a partition compared later could have used a later S), so the proof holds for each.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any

from pymongo.errors import PyMongoError

from .. import clustertime, state
from ..errors import JobFailed, UsageError
from ..layout import MigrationLayout
from ..namespaces import Namespace, parse_all
from ..s3objects import S3Objects
from ..state import (
    RestoreCheckpoint,
    RestoreState,
    SyncPlan,
    VerifyLivePartitionRecord,
    VerifyLiveRecord,
    VerifyLiveState,
    utc_now,
)
from ..sync import read_plan
from ..sync.scopes import Scope, begun_plan, partition_scope, plan_partitions, rest_scopes
from . import target_stream
from .changes import ChangeKeys
from .compare import compare_indexes, namespaces
from .config import VerifyConfig, connected
from .merge import MergeResult
from .report import NamespaceReport, documents_line, foreign_summary
from .settle import Comparison, Settled, named

log = logging.getLogger("backover.verify")

#: Failed partitions named in the pass's reason, at most.
PARTITIONS_SHOWN = 5


def in_scope(wanted: tuple[Namespace, ...], databases: set[str]) -> Callable[[Namespace], bool]:
    """Which target namespaces the checks watch: those the ``--namespace`` filter covers, else
    every collection of the compared databases."""
    if wanted:
        return lambda ns: any(w.covers(ns.db, ns.coll or None) for w in wanted)
    return lambda ns: ns.db in databases


def recorded_namespaces(
    config: VerifyConfig, record: VerifyLiveRecord, where: str, why: str
) -> tuple[Namespace, ...]:
    """The live pass's ``--namespace`` filter; another one given now is bad usage (exit 2)."""
    recorded = parse_all(record.namespaces)
    if config.namespaces and sorted(config.namespaces) != sorted(recorded):
        shown = ", ".join(map(str, recorded)) or "the default (every database)"
        raise UsageError(f"--namespace differs from the live pass's ({shown}, {where}): {why}")
    return recorded


def compared_partitions(plan: SyncPlan | None, wanted: tuple[Namespace, ...]) -> list[str]:
    """The plan's partitions (in plan order) of the collections the pass compares: those the
    ``--namespace`` filter covers, every planned one without a filter."""
    return plan_partitions(plan, wanted or None)


def partition_ids(s3: S3Objects, layout: MigrationLayout, wanted: tuple[Namespace, ...] = ()) -> list[str]:
    """The partitions a mapped live pass compares (what Airflow maps over): the running pass's,
    after :func:`begin`; before it, the sync plan's of ``wanted`` (none without a plan)."""
    record = state.read(s3, layout.verify_live_report, VerifyLiveRecord)
    if record is not None and record.state is VerifyLiveState.RUNNING and record.begin_id is not None:
        return list(record.partitions)
    return compared_partitions(read_plan(s3, layout), wanted)


def _plan_of(s3: S3Objects, layout: MigrationLayout, record: VerifyLiveRecord) -> SyncPlan | None:
    """The sync plan the running pass's begin read; JobFailed when it was made again (or removed)
    since."""
    return begun_plan(
        read_plan(s3, layout),
        record.plan_created_at,
        record.partitions,
        parse_all(record.namespaces) or None,
        begun=f"the live pass {record.begin_id}",
        again="`backover verify --live --begin`",
    )


# -- 1. begin ---------------------------------------------------------------------------------------
def begin(config: VerifyConfig, *, s3: S3Objects | None = None) -> VerifyLiveRecord:
    """S0/A0 and the target's change stream position, then ``reports/verify-live.json``
    (``running``, with the partitions to compare); a failed restore is refused (exit 1)."""
    s3 = s3 or S3Objects(config.layout.bucket)
    s3.check_bucket()
    layout = config.layout
    with connected(config), target_stream.raw_client(config.target) as target_raw:
        restore = state.read(s3, layout.restore_checkpoint, RestoreCheckpoint)
        if restore is not None and restore.state is RestoreState.FAILED:
            raise JobFailed(f"the restore failed ({restore.reason}): repair it before verifying")
        applied_seq = restore.last_applied_seq if restore is not None else 0
        a0 = restore.applied_cluster_time if restore is not None else None
        token, target_time = target_stream.position(target_raw)
    plan = read_plan(s3, layout)
    begin_id = uuid.uuid4().hex
    record = VerifyLiveRecord(
        layout.migration_id,
        applied_cluster_time=a0,
        applied_seq=applied_seq,
        target_resume_token=token,
        target_cluster_time=target_time,
        namespaces=[str(ns) for ns in config.namespaces],
        begin_id=begin_id,
        partitions=compared_partitions(plan, config.namespaces),
        plan_created_at=plan.created_at if plan is not None else None,
    )
    state.write(s3, layout.verify_live_report, record)
    stale = _earlier_partition_records(s3, layout, begin_id)
    log.info(
        "verify --live: from A0 = %s (segment %d applied)%s; target's change stream at %s; %s",
        clustertime.format(a0) if a0 is not None else "nothing applied yet",
        applied_seq,
        "" if restore is not None else " (no restore checkpoint yet)",
        clustertime.format(target_time) if target_time is not None else token,
        f"{len(record.partitions)} partition(s) of the sync plan"
        if record.partitions
        else "no sync plan partitions: every namespace whole",
    )
    if stale:
        log.info("verify --live: %d partition record(s) of earlier passes deleted", stale)
    return record


def _earlier_partition_records(s3: S3Objects, layout: MigrationLayout, begin_id: str) -> int:
    """Delete the partition records of every pass but ``begin_id`` (replaced in
    ``reports/verify-live.json`` by now, so nothing reads them); how many."""
    ours = layout.verify_live_partitions_prefix(begin_id)
    keys = [k for k in s3.list_keys(layout.verify_live_partitions_prefix()) if not k.startswith(ours)]
    if keys:
        s3.delete_keys(keys)
    return len(keys)


def _running(s3: S3Objects, layout: MigrationLayout) -> tuple[VerifyLiveRecord, str]:
    """The running pass of this migration, or UsageError (exit 2): a partition or the finish needs
    ``--begin`` first."""
    where = f"s3://{s3.bucket}/{layout.verify_live_report}"
    record = state.read(s3, layout.verify_live_report, VerifyLiveRecord)
    if (
        record is None
        or record.state is not VerifyLiveState.RUNNING
        or record.migration_id != layout.migration_id
    ):
        shown = "absent" if record is None else f"{record.state}, migration {record.migration_id}"
        raise UsageError(
            f"no running live verification of migration {layout.migration_id} ({where} is {shown}): "
            "run `backover verify --live --begin` first"
        )
    return record, where


# -- 2. one partition -------------------------------------------------------------------------------
def verify_partition(
    config: VerifyConfig, partition_id: str, *, s3: S3Objects | None = None
) -> VerifyLivePartitionRecord:
    """Compare one partition of the running pass; writes its record (replacing an earlier one);
    JobFailed (after writing it) on a proven difference or documents that did not settle."""
    s3 = s3 or S3Objects(config.layout.bucket)
    s3.check_bucket()
    layout = config.layout
    record, where = _running(s3, layout)
    recorded_namespaces(config, record, where, "a partition compares what the begin recorded")
    if partition_id not in record.partitions:
        shown = ", ".join(record.partitions[:3]) + (" ..." if len(record.partitions) > 3 else "")
        raise UsageError(
            f"no partition {partition_id!r} in the live pass {record.begin_id} ({where}: "
            + (f"{len(record.partitions)} partition(s): {shown})" if record.partitions else "no partitions)")
        )
    plan = _plan_of(s3, layout, record)
    assert plan is not None and record.begin_id is not None  # the begin listed partitions of a plan
    scope = partition_scope(plan, partition_id)
    part = VerifyLivePartitionRecord(layout.migration_id, partition_id, record.begin_id, str(scope.ns))
    log.info("verify --live: partition %s of %s (%s)", partition_id, scope.ns, record.begin_id)
    with connected(config) as (source, target):
        comparison = Comparison(config, source, target, f"verify --live {partition_id}")
        settled: Settled | None = None
        try:
            merged = comparison.scope(scope.ns, scope.filter, scope.label)
            log.info("%s: %s", scope.label, documents_line(merged))
            settled = comparison.settle(s3, ChangeKeys(after_seq=record.applied_seq))
        except PyMongoError as e:
            part.reason = f"verify could not read a side: {type(e).__name__}: {e}"
        except JobFailed as e:
            part.reason = str(e)
    part.documents, part.differed = comparison.documents, comparison.differed
    if settled is not None:
        part.settled, part.deferred = settled.settled, settled.deferred
        part.proven, part.unsettled = len(settled.proven), len(settled.unsettled)
        found = settled.proven or settled.unsettled
        part.differences = named(found, max(config.examples, 1))
        if found:
            part.reason = _difference_reason(part.proven, part.unsettled, part.differences)
    part.finished_at = utc_now()
    part.state = VerifyLiveState.FAILED if part.reason else VerifyLiveState.PASSED
    state.write(s3, layout.verify_live_partition(record.begin_id, partition_id), part)
    if part.reason:
        log.error("verify --live: partition %s FAILED: %s", partition_id, part.reason)
        raise JobFailed(f"partition {partition_id}: {part.reason}")
    log.info(
        "verify --live: partition %s passed: %s documents, %s differed at first (%s settled, %s deferred)",
        partition_id,
        f"{part.documents:,}",
        f"{part.differed:,}",
        f"{part.settled:,}",
        f"{part.deferred:,}",
    )
    return part


def _difference_reason(proven: int, unsettled: int, differences: dict[str, list[Any]]) -> str:
    if proven:
        return (
            f"{proven:,} document(s) differ and no captured event since A0 can change them: "
            f"{_listed(differences)}"
        )
    return (
        f"{unsettled:,} differing document(s) did not settle: the restore did not apply past their "
        f"read time within the settle time: {_listed(differences)}"
    )


def _listed(found: dict[str, list[Any]]) -> str:
    parts = [f"{ns}: _id {', '.join(repr(i) for i in ids)}" for ns, ids in sorted(found.items())]
    return "; ".join(parts[:5]) + (f"; and {len(parts) - 5} more namespaces" if len(parts) > 5 else "")


# -- 3. finish --------------------------------------------------------------------------------------
def _partition_records(
    s3: S3Objects, layout: MigrationLayout, record: VerifyLiveRecord
) -> list[VerifyLivePartitionRecord]:
    """The record of every partition of this begin (in its folder); JobFailed naming those
    without one (the pass stays running: run them, then finish again)."""
    found, missing = [], []
    for pid in record.partitions:
        assert record.begin_id is not None  # a record listing partitions was written by begin
        part = state.read(s3, layout.verify_live_partition(record.begin_id, pid), VerifyLivePartitionRecord)
        if part is None or part.begin_id != record.begin_id or part.state is VerifyLiveState.RUNNING:
            missing.append(pid)
        else:
            found.append(part)
    if missing:
        shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
        raise JobFailed(
            f"{len(missing)} partition(s) of the live pass {record.begin_id} have no result yet: {shown}; "
            "run `backover verify --live --partition ID` for each, then --finish again"
        )
    return found


def finish(config: VerifyConfig, *, s3: S3Objects | None = None) -> VerifyLiveRecord:
    """The rest, the indexes, the target's change stream, then the verdict over the whole pass;
    writes ``reports/verify-live.json`` ``passed`` or ``failed`` (JobFailed after writing it)."""
    s3 = s3 or S3Objects(config.layout.bucket)
    s3.check_bucket()
    layout = config.layout
    record, where = _running(s3, layout)
    wanted = recorded_namespaces(config, record, where, "the finish compares what the begin recorded")
    plan = _plan_of(s3, layout, record)
    parts = _partition_records(s3, layout, record)
    settled: Settled | None = None
    index_differences: dict[str, list[str]] = {}
    foreign: list[target_stream.TargetChange] = []
    with connected(config) as (source, target), target_stream.raw_client(config.target) as target_raw:
        comparison = Comparison(config, source, target)
        try:
            pairs = namespaces(source, target, wanted)
            log.info(
                "verify --live: %d namespace(s) of %s against %s", len(pairs), config.source, config.target
            )
            rests = {scope.ns: scope for scope in rest_scopes(plan, pairs)}
            for ns in pairs:
                rest = rests.get(ns)
                merged = comparison.scope(ns, rest.filter, rest.label) if rest is not None else None
                indexes = compare_indexes(source, target, ns.db, ns.coll)
                log.info("%s", _line(ns, rest, merged, indexes))
                record.compared.append(str(ns))
                if indexes:
                    index_differences[str(ns)] = [d["name"] for d in indexes]
            keys = ChangeKeys(after_seq=record.applied_seq)
            settled = comparison.settle(s3, keys)
            # What the target's stream shows, then the segments (the restore wrote only from
            # segments that existed when it wrote): every write that is the restore's is then
            # accounted for.
            databases = {ns.db for ns in pairs}
            changes, reached = target_stream.changes_since(
                target_raw, record.target_resume_token or {}, in_scope(wanted, databases)
            )
            keys.refresh(s3, layout)
            record.target_checked_token = reached
            index_differences = {
                ns: names
                for ns, names in index_differences.items()
                if not keys.changed_wholly(Namespace.parse(ns))
            }
            foreign = target_stream.foreign(changes, keys)
        except PyMongoError as e:
            settled = None
            record.reason = f"verify could not read a side: {type(e).__name__}: {e}"
        except JobFailed as e:
            settled = None
            record.reason = str(e)
    record.finished_at = utc_now()
    _totals(record, parts, comparison, settled)
    if settled is not None:
        _judge(record, settled, parts, index_differences, foreign, config.examples)
    record.state = VerifyLiveState.FAILED if record.reason else VerifyLiveState.PASSED
    state.write(s3, layout.verify_live_report, record)
    if record.reason:
        log.error("verify --live: FAILED: %s", record.reason)
        raise JobFailed(record.reason)
    log.info(
        "verify --live: passed: %s documents in %d namespace(s)%s, %s differed at first (%s settled, %s "
        "left to the freeze-time check); record in s3://%s/%s",
        f"{record.documents:,}",
        len(record.compared),
        f" and {len(parts)} partition(s)" if parts else "",
        f"{record.differed:,}",
        f"{record.settled:,}",
        f"{record.deferred:,}",
        s3.bucket,
        layout.verify_live_report,
    )
    return record


def _totals(
    record: VerifyLiveRecord,
    parts: list[VerifyLivePartitionRecord],
    comparison: Comparison | None = None,
    settled: Settled | None = None,
) -> None:
    """The pass's figures: the partitions' summed with the finish's own comparison."""
    record.documents = sum(p.documents for p in parts) + (comparison.documents if comparison else 0)
    record.differed = sum(p.differed for p in parts) + (comparison.differed if comparison else 0)
    record.settled = sum(p.settled for p in parts) + (settled.settled if settled else 0)
    record.deferred = sum(p.deferred for p in parts) + (settled.deferred if settled else 0)


def _line(
    ns: Namespace, rest: Scope | None, merged: MergeResult | None, indexes: list[dict[str, Any]]
) -> str:
    """The finish's log line of one namespace: as the full comparison's when its rest is all of
    it; else its rest's counts (if any) and its indexes."""
    if rest is not None and merged is not None and not rest.filter:
        return NamespaceReport(str(ns), merged, indexes).line()
    what = (
        f"{rest.label}: {documents_line(merged)}; " if rest is not None and merged is not None else f"{ns}: "
    )
    shown = f"indexes differ: {', '.join(d['name'] for d in indexes)}" if indexes else "indexes identical"
    return f"{what}{shown} (the rest of its documents in the sync plan's partitions)"


def _merged(found: list[dict[str, list[Any]]], limit: int) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for names in found:
        for ns, ids in names.items():
            kept = out.setdefault(ns, [])
            kept.extend(ids[: max(limit - len(kept), 0)])
    return out


def _judge(
    record: VerifyLiveRecord,
    settled: Settled,
    parts: list[VerifyLivePartitionRecord],
    index_differences: dict[str, list[str]],
    foreign: list[target_stream.TargetChange],
    examples: int,
) -> None:
    """The pass's verdict, differences and reason from what the finish and the partitions found:
    a partition that failed without a difference (it could not compare), then documents proven
    different, then documents that did not settle, then indexes, then writes by someone else."""
    limit = max(examples, 1)
    record.foreign_writes = [change.describe() for change in foreign[:100]]
    failed = [p for p in parts if p.state is VerifyLiveState.FAILED]
    broken = [p for p in failed if not (p.proven or p.unsettled)]
    proven = len(settled.proven) + sum(p.proven for p in parts)
    unsettled = len(settled.unsettled) + sum(p.unsettled for p in parts)
    in_partitions = ""
    if failed:
        ids = [p.partition for p in failed]
        more = f" and {len(ids) - PARTITIONS_SHOWN} more" if len(ids) > PARTITIONS_SHOWN else ""
        in_partitions = f" (failed partition(s): {', '.join(ids[:PARTITIONS_SHOWN])}{more})"
    if broken:
        record.reason = "; ".join(f"partition {p.partition}: {p.reason}" for p in broken[:PARTITIONS_SHOWN])
        record.reason += in_partitions if len(failed) > 1 else ""
    elif proven:
        record.differences = _merged(
            [named(settled.proven, limit)] + [p.differences for p in parts if p.proven], limit
        )
        record.reason = _difference_reason(proven, 0, record.differences) + in_partitions
    elif unsettled:
        record.differences = _merged(
            [named(settled.unsettled, limit)] + [p.differences for p in parts], limit
        )
        record.reason = _difference_reason(0, unsettled, record.differences) + in_partitions
    elif index_differences:
        record.reason = "indexes differ: " + "; ".join(
            f"{ns}: {', '.join(names)}" for ns, names in sorted(index_differences.items())
        )
    elif foreign:
        record.reason = foreign_summary(record.foreign_writes)


# -- all three in one process -----------------------------------------------------------------------
def run_verify_live(config: VerifyConfig, *, s3: S3Objects | None = None) -> VerifyLiveRecord:
    """The whole pass in one process: :func:`begin`, each partition in turn, :func:`finish`
    (without a sync plan: every namespace whole, in the finish). A partition that fails fails the
    pass at once (the record says which); JobFailed after writing it."""
    s3 = s3 or S3Objects(config.layout.bucket)
    record = begin(config, s3=s3)
    done: list[VerifyLivePartitionRecord] = []
    for pid in record.partitions:
        try:
            done.append(verify_partition(config, pid, s3=s3))
        except JobFailed as e:
            assert record.begin_id is not None
            failed = state.read(
                s3, config.layout.verify_live_partition(record.begin_id, pid), VerifyLivePartitionRecord
            )
            if failed is not None and failed.begin_id == record.begin_id:
                done.append(failed)
                record.differences = failed.differences
            _totals(record, done)
            record.state, record.reason, record.finished_at = VerifyLiveState.FAILED, str(e), utc_now()
            state.write(s3, config.layout.verify_live_report, record)
            log.error("verify --live: FAILED: %s", record.reason)
            raise
    return finish(config, s3=s3)
