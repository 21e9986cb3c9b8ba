"""``backover sync``: the plan, the copy of its partitions, and the completion record.

:func:`run_sync` is the command: it plans when there is no plan yet (:func:`make_plan`), then copies
the partition it was given or every partition in turn (:func:`.copy.copy_partition`), then writes
``sync/complete.json`` once every partition's checkpoint says completed (:func:`finish`), whoever
copied them. A completed sync is never copied again: a rerun prints its totals.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pymongo import MongoClient

from .. import extjson, state
from ..errors import JobFailed, UsageError
from ..layout import MigrationLayout
from ..lease import Lease, holding
from ..namespaces import parse_all
from ..s3objects import Conflict, S3Objects
from ..state import (
    StartRecord,
    SyncCollection,
    SyncComplete,
    SyncPartitionCheckpoint,
    SyncPartitionState,
    SyncPlan,
    utc_now,
)
from .config import SyncConfig, connected
from .copy import PartitionResult, copy_partition, load_checkpoint
from .plan import create_on_target, drop_on_target, plan_collection, source_collections, target_documents
from .progress import Progress

log = logging.getLogger("backover.sync")


class SyncState(enum.StrEnum):
    """What a run leaves."""

    NOT_NEEDED = "not-needed"  # --if-needed: the target holds the migrated collections' data
    PLANNED = "planned"  # --plan: the plan and the target's collections and indexes exist
    COPYING = "copying"  # this run's partitions are copied; others are not yet
    COMPLETE = "complete"  # every partition is copied (sync/complete.json)


@dataclass
class SyncResult:
    """One run's outcome."""

    state: SyncState
    partitions: list[str] = field(default_factory=list)  # every partition of the plan
    copied: list[PartitionResult] = field(default_factory=list)  # those this run went through
    complete: SyncComplete | None = None
    already_complete: bool = False  # the sync had completed before this run: nothing changed
    dropped: list[str] = field(default_factory=list)
    reason: str | None = None
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        """What the command prints (one JSON line)."""
        out: dict[str, Any] = {"state": self.state.value, "partitions": self.partitions}
        if self.reason:
            out["reason"] = self.reason
        if self.dropped:
            out["dropped"] = self.dropped
        if self.copied:
            out["copied"] = {
                r.partition: {
                    "documents": r.documents,
                    "copied_now": r.copied_now,
                    "skipped_duplicates": r.skipped_duplicates,
                    "already_copied": r.already_copied,
                }
                for r in self.copied
            }
        if self.complete is not None:
            out["complete"] = {
                "documents": self.complete.documents,
                "bytes": self.complete.bytes_copied,
                "skipped_duplicates": self.complete.skipped_duplicates,
                "collections": self.complete.collections,
                "completed_at": self.complete.completed_at.isoformat(),
            }
            out["already_complete"] = self.already_complete
        out["seconds"] = round(self.seconds, 3)
        return out


def run_sync(
    config: SyncConfig,
    *,
    s3: S3Objects | None = None,
    on_batch: Callable[[SyncPartitionCheckpoint], None] | None = None,
) -> SyncResult:
    """Plan (when there is no plan), copy (``config.partition`` or every partition), complete."""
    started = time.monotonic()
    s3 = s3 or S3Objects(config.layout.bucket)
    s3.check_bucket()
    layout = config.layout
    start = _start_record(s3, layout)
    done = state.read(s3, layout.sync_complete, SyncComplete)
    if done is not None:
        log.info(
            "sync: already complete (%s): %d documents of %d collections, %d skipped duplicate(s); nothing to do",
            done.completed_at.isoformat(),
            done.documents,
            done.collections,
            done.skipped_duplicates,
        )
        plan = read_plan(s3, layout)
        return SyncResult(
            SyncState.COMPLETE,
            partitions=plan.partition_ids() if plan is not None else [],
            complete=done,
            already_complete=True,
            seconds=time.monotonic() - started,
        )
    plan = read_plan(s3, layout)
    if plan is None and config.partition is not None:
        raise UsageError(
            f"no sync plan s3://{s3.bucket}/{layout.sync_plan}: run `backover sync --plan` before copying a partition"
        )
    with connected(config) as (source, target):
        dropped: list[str] = []
        if plan is None:
            made = make_plan(config, s3, start, source, target)
            if isinstance(made, str):
                log.info("sync: %s", made)
                return SyncResult(SyncState.NOT_NEEDED, reason=made, seconds=time.monotonic() - started)
            plan = made
            dropped = plan.dropped
        copied: list[PartitionResult] = []
        if not config.plan_only:
            copied = _copy_all(config, s3, source, target, plan, on_batch)
    complete = finish(s3, layout, plan)
    if complete is not None:
        run_state = SyncState.COMPLETE
    else:
        run_state = SyncState.PLANNED if config.plan_only else SyncState.COPYING
    return SyncResult(
        run_state,
        partitions=plan.partition_ids(),
        copied=copied,
        complete=complete,
        dropped=dropped,
        seconds=time.monotonic() - started,
    )


def _start_record(s3: S3Objects, layout: MigrationLayout) -> StartRecord:
    start = state.read(s3, layout.start_state, StartRecord)
    where = f"s3://{s3.bucket}/{layout.start_state}"
    if start is None:
        raise UsageError(f"no start record {where}: start the migration (backover_start) before the sync")
    if not start.finished:
        raise UsageError(
            f"{where} has no T0: the start did not finish; the copy must begin after T0 (run backover_start again)"
        )
    return start


def read_plan(s3: S3Objects, layout: MigrationLayout) -> SyncPlan | None:
    plan = state.read(s3, layout.sync_plan, SyncPlan)
    if plan is not None and plan.migration_id != layout.migration_id:
        raise state.RecordError(
            f"s3://{s3.bucket}/{layout.sync_plan} belongs to migration {plan.migration_id!r}, not {layout.migration_id!r}"
        )
    return plan


def restore_started(s3: S3Objects, layout: MigrationLayout) -> str | None:
    """Why the restore counts as started (its checkpoint or its lease exists), else None."""
    for key in (layout.restore_checkpoint, layout.restore_lease):
        if s3.head(key) is not None:
            return f"s3://{s3.bucket}/{key} exists"
    return None


def check_restore_may_start(s3: S3Objects, layout: MigrationLayout) -> None:
    """UsageError (exit 2) while a sync plan exists that is not complete: a replay running during
    the copy could bring back a document the copy read before its delete was replayed."""
    if s3.head(layout.sync_plan) is None or s3.head(layout.sync_complete) is not None:
        return
    raise UsageError(
        f"the initial sync of migration {layout.migration_id} is not complete (s3://{s3.bucket}/{layout.sync_plan} "
        "exists, its completion record does not): run `backover sync` to the end before the restore"
    )


def make_plan(
    config: SyncConfig,
    s3: S3Objects,
    start: StartRecord,
    source: MongoClient[dict[str, Any]],
    target: MongoClient[dict[str, Any]],
) -> SyncPlan | str:
    """The plan, written once the target's collections and indexes exist; or, with ``if_needed``
    and a target that already holds data for the migrated collections, why no copy is needed.

    Every refusal (a collection missing on the source, no privilege, a target that holds data
    without ``drop_target``, a collection or index MongoDB refuses, a restore already started) is
    one line, exit 2, with nothing left written on the target."""
    layout = config.layout
    lease = Lease(
        s3,
        layout.sync_plan_lease,
        role="sync plan",
        migration_id=layout.migration_id,
        ttl_seconds=config.lease_ttl_seconds,
        renew_seconds=config.lease_renew_seconds,
    )
    with holding(lease):
        again = read_plan(s3, layout)  # written by another run meanwhile
        if again is not None:
            return again
        namespaces = parse_all(start.namespaces or start.databases)
        if not namespaces:
            raise UsageError(f"s3://{s3.bucket}/{layout.start_state} names no database or collection")
        found = source_collections(source, namespaces)
        held = target_documents(target, [SyncCollection(f.db, f.coll) for f in found])
        holding_data = {ns: n for ns, n in held.items() if n > 0}
        if holding_data:
            ns, n = next(iter(sorted(holding_data.items())))
            more = f" (and {len(holding_data) - 1} more collection(s))" if len(holding_data) > 1 else ""
            if config.if_needed:
                return f"no copy needed: the target already holds {n} document(s) in {ns}{more}"
            if not config.drop_target:
                raise UsageError(
                    f"the target already holds {n} document(s) in {ns}{more}: the initial sync copies into "
                    "empty collections only; pass --drop-target to drop the migrated collections on the "
                    "target first; nothing was written"
                )
        started = restore_started(s3, layout)
        if started is not None:
            raise UsageError(
                f"the restore of this migration has started ({started}): the initial sync must run "
                "before it; nothing was written"
            )
        collections = [plan_collection(source, f, config.partition_documents) for f in found]
        dropped = drop_on_target(target, collections, held) if config.drop_target else []
        create_on_target(target, collections)
        assert start.t0 is not None  # checked by _start_record
        plan = SyncPlan(
            migration_id=layout.migration_id,
            t0=start.t0,
            partition_documents=config.partition_documents,
            created_at=utc_now(),
            collections=collections,
            documents=sum(c.documents for c in collections),
            dropped=dropped,
        )
        try:
            etag = s3.put_if(
                layout.sync_plan,
                extjson.dumps(plan.to_json()).encode(),
                etag=None,
                content_type="application/json",
            )
        except Conflict:
            raise JobFailed(
                f"s3://{s3.bucket}/{layout.sync_plan} was written by another run meanwhile"
            ) from None
        started = restore_started(s3, layout)  # a restore that began while this run planned
        if started is not None:
            s3.delete_if(layout.sync_plan, etag)
            raise UsageError(
                f"the restore of this migration started while the sync planned ({started}): the plan "
                "was withdrawn; the initial sync must run before the restore"
            )
    log.info(
        "sync: planned %d collection(s), %d documents, %d partition(s) of about %d documents: s3://%s/%s",
        len(plan.collections),
        plan.documents,
        len(plan.partition_ids()),
        plan.partition_documents,
        s3.bucket,
        layout.sync_plan,
    )
    return plan


def _copy_all(
    config: SyncConfig,
    s3: S3Objects,
    source: MongoClient[dict[str, Any]],
    target: MongoClient[dict[str, Any]],
    plan: SyncPlan,
    on_batch: Callable[[SyncPartitionCheckpoint], None] | None,
) -> list[PartitionResult]:
    ids = [config.partition] if config.partition is not None else plan.partition_ids()
    progress = Progress(config.progress_seconds)
    namespace_of: dict[str, str] = {}
    for pid in ids:
        found = plan.find(pid)
        if found is not None:
            namespace_of[pid] = found[0].ns
            progress.expect(found[0].ns, found[1].estimated_documents)
    results: list[PartitionResult] = []
    for i, pid in enumerate(ids):
        result = copy_partition(config, s3, source, target, plan, pid, progress, on_batch)
        results.append(result)
        following = namespace_of.get(ids[i + 1]) if i + 1 < len(ids) else None
        if following != result.ns:
            log.info("%s", progress.line(result.ns, final=True))
    return results


def finish(s3: S3Objects, layout: MigrationLayout, plan: SyncPlan) -> SyncComplete | None:
    """``sync/complete.json`` once every partition of ``plan`` is completed (whoever copied it);
    None while one is not. Written once (``If-None-Match: *``): finishers racing agree."""
    existing = state.read(s3, layout.sync_complete, SyncComplete)
    if existing is not None:
        return existing
    per_collection: dict[str, dict[str, int]] = {}
    total = SyncComplete(layout.migration_id, completed_at=utc_now(), planned_at=plan.created_at)
    for c in plan.collections:
        counts = per_collection.setdefault(
            c.ns, {"documents": 0, "bytes_copied": 0, "skipped_duplicates": 0, "already_copied": 0}
        )
        for p in c.partitions:
            got = load_checkpoint(s3, layout.sync_partition(p.id), layout.migration_id)
            if got is None or got[0].state is not SyncPartitionState.COMPLETED:
                return None
            cp = got[0]
            for name in counts:
                counts[name] += getattr(cp, name)
    for counts in per_collection.values():
        total.documents += counts["documents"]
        total.bytes_copied += counts["bytes_copied"]
        total.skipped_duplicates += counts["skipped_duplicates"]
        total.already_copied += counts["already_copied"]
    total.collections = len(plan.collections)
    total.partitions = len(plan.partition_ids())
    total.per_collection = per_collection
    try:
        s3.put_if(
            layout.sync_complete,
            extjson.dumps(total.to_json()).encode(),
            etag=None,
            content_type="application/json",
        )
    except Conflict:
        written = state.read(s3, layout.sync_complete, SyncComplete)
        if written is None:
            raise JobFailed(f"s3://{s3.bucket}/{layout.sync_complete} changed meanwhile") from None
        return written
    log.info(
        "sync: complete: %d documents (%.1f MiB) of %d collection(s) in %d partition(s), %d skipped "
        "duplicate(s) (the replay brings them): s3://%s/%s",
        total.documents,
        total.bytes_copied / (1024 * 1024),
        total.collections,
        total.partitions,
        total.skipped_duplicates,
        s3.bucket,
        layout.sync_complete,
    )
    return total
