"""The lifecycle part of the rehearsal: the three DAGs, unchanged, under a microservice load.

``backover_start`` (with ``--empty-target`` its initial sync copies DocumentDB to the empty
MongoDB, the partitions spread over the workers) -> load runs while changes are captured ->
``backover_restore`` (the app user becomes read-only, the load is refused and stops, drain,
backups, replay, verify) -> figures read from S3 (and, for the copy, from SSM: which worker ran
which partition) -> ``backover_clean``.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import boto3
from pymongo import MongoClient

from backover import state
from backover.layout import MigrationLayout
from backover.lifecycle.window import freeze_window
from backover.s3objects import S3Objects
from backover.state import FreezeRecord, ReplicatorCheckpoint, RestoreCheckpoint, SyncComplete

from ..airflow_local import LocalAirflow
from ..config import SandboxState
from ..loadgen import LoadGenerator
from .report import RehearsalReport, RehearsalScale

log = logging.getLogger(__name__)

LIFECYCLE_DAGS = ("backover_start", "backover_restore", "backover_clean")
#: Writes the load makes between start and restore (the capture has something to do).
LOAD_WRITES_BEFORE_RESTORE = 2000
LOAD_TIMEOUT_SECONDS = 120


def app_client(state: SandboxState) -> MongoClient:
    """The microservices' own connection to DocumentDB, from the sandbox's secrets."""
    sm = boto3.client("secretsmanager")
    master = json.loads(sm.get_secret_value(SecretId=state.secret_ids["documentdb"])["SecretString"])
    app = json.loads(sm.get_secret_value(SecretId=state.secret_ids["app_user"])["SecretString"])
    return MongoClient(
        host=master["host"],
        port=int(master["port"]),
        username=app["username"],
        password=app["password"],
        authSource="admin",
        directConnection=True,
        retryWrites=False,
    )


def _phase(report: RehearsalReport, airflow: LocalAirflow, dag_id: str, conf: dict[str, Any]) -> bool:
    result = airflow.dags_test(dag_id, conf)
    report.phases[dag_id] = {"ok": result.ok, "seconds": result.seconds, "log": str(result.log_file)}
    return result.ok


def collect_figures(report: RehearsalReport, layout: MigrationLayout, acknowledged: int) -> None:
    """Figures from the migration's state objects (read before clean deletes the checkpoints)."""
    s3 = S3Objects(layout.bucket)
    checkpoint = s3.get_json(layout.replicator_checkpoint) or {}
    restore = s3.get_json(layout.restore_checkpoint) or {}
    verify = s3.get_json(layout.verify_report) or {}
    report.figures["writes acknowledged by DocumentDB"] = acknowledged
    # A write that changes nothing (an update to the same value) is acknowledged but makes no event.
    report.figures["events captured (no-op writes make none)"] = checkpoint.get("events_total")
    report.figures["segments written"] = checkpoint.get("last_seq")
    report.figures["events replayed"] = restore.get("events_applied")
    restored = sum((v.get("target_count") or 0) for v in (verify.get("namespaces") or {}).values())
    report.figures["documents in MongoDB after restore"] = restored
    window = freeze_window(
        state.read(s3, layout.freeze_state, FreezeRecord),
        state.read(s3, layout.replicator_checkpoint, ReplicatorCheckpoint),
        state.read(s3, layout.restore_checkpoint, RestoreCheckpoint),
        verify.get("checked_at"),
    )
    report.figures["write-freeze window (read-only -> verified)"] = (
        f"{window.seconds:.1f} s" if window.seconds is not None else "unknown"
    )
    for name, seconds in window.phases.items():
        report.figures[f"  of which {name}"] = f"{seconds:.1f} s" if seconds is not None else "unknown"
    report.freeze_window = window.to_json()
    restore_phase = report.phases.get("backover_restore", {})
    if restore.get("events_applied") and restore_phase.get("seconds"):
        report.figures["events replayed per second of the whole restore DAG"] = round(
            restore["events_applied"] / restore_phase["seconds"], 1
        )
    report.identical = verify.get("identical") if verify else None


#: How the worker commands of the copy are named in SSM (the operator's ``Comment``).
SYNC_PARTITION_COMMENT = "backover sync --partition "


def sync_workers(migration_id: str) -> dict[str, list[str]]:
    """Which worker ran which partition's copy of ``migration_id``, as SSM (the runner) lists the
    commands: ``{instance id: [partition ids]}``."""
    ssm = boto3.client("ssm")
    prefix = f"{SYNC_PARTITION_COMMENT}{migration_id} "
    ran: dict[str, list[str]] = {}
    for page in ssm.get_paginator("list_command_invocations").paginate():
        for invocation in page["CommandInvocations"]:
            comment = invocation.get("Comment", "")
            if comment.startswith(prefix) and invocation.get("Status") == "Success":
                ran.setdefault(invocation["InstanceId"], []).append(comment[len(prefix) :])
    return {worker: sorted(partitions) for worker, partitions in sorted(ran.items())}


def collect_sync_figures(report: RehearsalReport, layout: MigrationLayout) -> None:
    """The initial sync's figures: documents, partitions, workers, seconds (plan to complete), docs/s."""
    s3 = S3Objects(layout.bucket)
    complete = state.read(s3, layout.sync_complete, SyncComplete)
    if complete is None:
        report.figures["initial sync"] = "none (MongoDB held the data)"
        return
    ran = sync_workers(layout.migration_id)
    seconds = (
        (complete.completed_at - complete.planned_at).total_seconds()
        if complete.planned_at is not None
        else None
    )
    report.figures["initial sync: documents copied"] = complete.documents
    report.figures["initial sync: partitions"] = complete.partitions
    report.figures["initial sync: workers"] = (
        f"{len(ran)} (" + ", ".join(f"{w}: {len(p)}" for w, p in ran.items()) + ")" if ran else "0"
    )
    if seconds is not None:
        report.figures["initial sync: seconds (plan -> complete)"] = f"{seconds:.1f} s"
        if seconds > 0:
            report.figures["initial sync: documents/s"] = round(complete.documents / seconds, 1)
    report.sync = {
        "documents": complete.documents,
        "partitions": complete.partitions,
        "collections": complete.collections,
        "skipped_duplicates": complete.skipped_duplicates,
        "workers": ran,
        "seconds": seconds,
    }


def _load_done(load: LoadGenerator, scale: RehearsalScale, until: float) -> bool:
    """Whether the capture had its load: ``scale.minutes`` passed, or the default number of writes."""
    if not load.running:
        return True
    if scale.minutes is not None:
        return time.monotonic() >= until
    return load.report.acknowledged >= LOAD_WRITES_BEFORE_RESTORE or time.monotonic() >= until


def run_lifecycle(
    report: RehearsalReport, state: SandboxState, airflow: LocalAirflow, scale: RehearsalScale | None = None
) -> None:
    scale = scale or RehearsalScale()
    migration_id = f"rehearsal-{time.strftime('%Y%m%d-%H%M%S')}"
    conf: dict[str, Any] = {"migration_id": migration_id, "follow": scale.follow}
    layout = MigrationLayout(state.bucket, state.prefix, migration_id)
    log.info("rehearsal migration %s", migration_id)
    airflow.migrate()
    # backover_restore and backover_clean do not take the sync's Params: only the start's conf has them.
    start_conf = dict(conf)
    if scale.sync_partition_documents is not None:
        start_conf["sync_partition_documents"] = scale.sync_partition_documents
    started = _phase(report, airflow, "backover_start", start_conf)
    if scale.empty_target:  # the default run copies nothing (MongoDB holds the data): no such figures
        collect_sync_figures(report, layout)
    if not started:
        return
    with app_client(state) as client:
        load = LoadGenerator(client, pause_seconds=0.001, writes_per_second=scale.writes_per_second).start()
        loaded_at = time.monotonic()
        until = loaded_at + (scale.minutes * 60 if scale.minutes is not None else LOAD_TIMEOUT_SECONDS)
        while not _load_done(load, scale, until):
            time.sleep(0.2)
        load_seconds = time.monotonic() - loaded_at
        before_restore = load.report.acknowledged
        log.info("load: %d writes acknowledged so far; starting the restore", before_restore)
        restore_ok = _phase(report, airflow, "backover_restore", conf)
        refused = load.wait_until_refused(timeout=5) if restore_ok else False
        load_report = load.stop()
    if load_report.error:
        report.error = f"the load generator stopped on an error: {load_report.error}"
    elif restore_ok and not refused:
        report.error = "the microservices' user could still write after the restore Lambda"
    report.figures["documents in shop.orders before the capture"] = scale.documents
    report.figures["restore mode"] = (
        "follow (applied during the capture)" if scale.follow else "after the freeze"
    )
    report.figures["load before the restore"] = (
        f"{before_restore} writes in {load_seconds:.0f} s ({before_restore / load_seconds:.0f}/s)"
        if load_seconds > 0
        else "none"
    )
    collect_figures(report, layout, load_report.acknowledged)
    if restore_ok:
        _phase(report, airflow, "backover_clean", conf)
