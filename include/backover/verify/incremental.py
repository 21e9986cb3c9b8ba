"""``backover verify`` at the freeze after a passed live pass: compare only what may have changed
since the pass began (docs/architecture.md, "Verify", has the proof).

K: every document an event after the pass's A0 names (the segments after ``applied_seq``, up to
the last one), and every document the target's change stream names since the pass began. Per
namespace: those documents on both sides, the collection counts and the index specifications. A
namespace the live pass did not compare, or one a DDL event after A0 touched, is compared in full.
A write on the target that no event after A0 accounts for fails the check. The report is the usual
``reports/verify.json`` (:class:`VerifyReport`, ``mode: incremental``), so the clean guard reads
it as it reads a full comparison's.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Hashable
from typing import Any

from pymongo import MongoClient
from pymongo.errors import PyMongoError

from .. import state
from ..bsonvalues import raw_collection
from ..errors import JobFailed
from ..namespaces import Namespace
from ..restore.events import identity_of
from ..s3objects import S3Objects
from ..state import RestoreCheckpoint, RestoreState, VerifyLiveRecord, VerifyLiveState
from . import target_stream
from .changes import ChangeKeys
from .compare import compare_indexes, compare_namespace, namespaces
from .config import VerifyConfig, connected
from .keys import add_outcome, compare_keys, fetch
from .live import in_scope, recorded_namespaces
from .merge import MergeResult
from .progress import Progress
from .report import NamespaceReport, ProofMode, VerifyReport

log = logging.getLogger("backover.verify")

#: Writes by someone else listed in the report, at most.
FOREIGN_SHOWN = 100


def run_incremental(config: VerifyConfig, s3: S3Objects, record: VerifyLiveRecord) -> VerifyReport:
    """The freeze-time check from ``record``; writes ``reports/verify.json``."""
    layout = config.layout
    where = f"s3://{s3.bucket}/{layout.verify_live_report}"
    wanted = recorded_namespaces(
        config, record, where, "the freeze-time check compares what the live pass compared"
    )
    if record.migration_id != layout.migration_id:
        raise JobFailed(f"{where} is migration {record.migration_id}'s, not {layout.migration_id}'s")
    if record.state is not VerifyLiveState.PASSED:
        raise JobFailed(
            f"the live pass ({where}) is {record.state}"
            + (f": {record.reason}" if record.reason else "")
            + "; run `backover verify --live` again before the freeze, or `backover verify --full`"
        )
    _check_restore(s3, config, record)
    started = time.monotonic()
    progress = Progress("verify", config.progress_seconds)
    with connected(config) as (source, target), target_stream.raw_client(config.target) as target_raw:
        try:
            pairs = namespaces(source, target, wanted)
            databases = {ns.db for ns in pairs} | {Namespace.parse(ns).db for ns in record.compared}
            # The pass found no foreign write up to its checked token: read on from there.
            changes, _ = target_stream.changes_since(
                target_raw,
                record.target_checked_token or record.target_resume_token or {},
                in_scope(wanted, databases),
            )
            keys = ChangeKeys(after_seq=record.applied_seq)
            keys.refresh(s3, layout)
            foreign = target_stream.foreign(changes, keys)
            named_by_target: dict[Namespace, dict[Hashable, bytes]] = {}
            for change in changes:
                if change.id_element is not None:
                    named_by_target.setdefault(change.ns, {})[identity_of(change.id_element)] = (
                        change.id_element
                    )
            log.info(
                "verify at the freeze: %d namespace(s); %s document(s) named by %d event(s) since A0 "
                "(segments %d..%d), %d change(s) on the target since the live pass ended",
                len(pairs),
                f"{keys.documents:,}",
                keys.events,
                record.applied_seq + 1,
                keys.through_seq,
                len(changes),
            )
            compared_live = set(record.compared)
            reports: list[NamespaceReport] = []
            at_freeze = 0
            for ns in pairs:
                if str(ns) not in compared_live or keys.changed_wholly(ns):
                    why = "a DDL since A0" if keys.changed_wholly(ns) else "not in the live pass"
                    log.info("%s: compared in full (%s)", ns, why)
                    report = compare_namespace(
                        source,
                        target,
                        ns.db,
                        ns.coll,
                        config.batch_size,
                        config.examples,
                        progress,
                    )
                    at_freeze += report.merge.source_count
                else:
                    wanted_keys = {**named_by_target.get(ns, {}), **keys.of(ns)}
                    report = _compare_keys(source, target, ns, wanted_keys, config)
                    at_freeze += len(wanted_keys)
                log.info("%s", report.line())
                reports.append(report)
        except PyMongoError as e:
            raise JobFailed(f"verify could not read a side: {type(e).__name__}: {e}") from None
    report_all = VerifyReport(
        reports,
        seconds=time.monotonic() - started,
        mode=ProofMode.INCREMENTAL,
        documents_at_freeze=at_freeze,
        foreign_writes=[change.describe() for change in foreign[:FOREIGN_SHOWN]],
    )
    s3.put_json(layout.verify_report, report_all.to_json())
    log.info(
        "%s (%.1f s); report in s3://%s/%s",
        report_all.summary(),
        report_all.seconds,
        s3.bucket,
        layout.verify_report,
    )
    return report_all


def _check_restore(s3: S3Objects, config: VerifyConfig, record: VerifyLiveRecord) -> None:
    """The restore completed, applied every segment written, and still stands on the pass's A0."""
    layout = config.layout
    restore = state.read(s3, layout.restore_checkpoint, RestoreCheckpoint)
    replicator = state.read(s3, layout.replicator_checkpoint, state.ReplicatorCheckpoint)
    if restore is None or restore.state is not RestoreState.COMPLETED:
        shown = "absent" if restore is None else str(restore.state)
        raise JobFailed(
            f"the restore checkpoint is {shown}: the freeze-time check runs after the restore "
            "completed (or compare everything with `backover verify --full`)"
        )
    if replicator is not None and restore.last_applied_seq < replicator.last_seq:
        raise JobFailed(
            f"the restore applied segments up to {restore.last_applied_seq}, the replicator wrote "
            f"{replicator.last_seq}: restore the rest first"
        )
    if restore.last_applied_seq < record.applied_seq:
        raise JobFailed(
            f"the restore checkpoint is at segment {restore.last_applied_seq}, before the live pass's "
            f"{record.applied_seq} (the restore was reset since): run `backover verify --live` again "
            "or `backover verify --full`"
        )


def _compare_keys(
    source: MongoClient[dict[str, Any]],
    target: MongoClient[dict[str, Any]],
    ns: Namespace,
    keys: dict[Hashable, bytes],
    config: VerifyConfig,
) -> NamespaceReport:
    """``keys`` of ``ns`` on both sides, the collection counts and the index specifications."""
    sides = [raw_collection(client, ns.db, ns.coll) for client in (source, target)]
    found = [fetch(side, keys.values(), config.batch_size) for side in sides]
    result = MergeResult(
        source_count=sides[0].estimated_document_count(), target_count=sides[1].estimated_document_count()
    )
    for outcome in compare_keys(found[0], found[1], keys):
        add_outcome(result, outcome, config.examples)
    return NamespaceReport(str(ns), result, compare_indexes(source, target, ns.db, ns.coll))
