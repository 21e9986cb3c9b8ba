"""The ``pre_execute`` checks of the follow-mode path (the DAGs' Param ``follow``): which tasks
run, and the two that look at the migration's state before they run."""

from __future__ import annotations

import logging
import time
from typing import Any

from airflow.exceptions import AirflowSkipException

from backover.layout import MigrationLayout
from backover.state import RestoreState
from backover_airflow import config, progress
from backover_airflow.hooks.migration import MigrationHook

log = logging.getLogger(__name__)


def _watched(context: Any) -> tuple[MigrationHook, MigrationLayout]:
    """The S3 hook and the layout of the run's migration (a bad Variable fails the task at once)."""
    with config.failing_task():
        layout = config.migration(context["params"])[1]
    return MigrationHook(aws_conn_id="aws_default"), layout


def run_if_follow(context: Any) -> None:
    """``pre_execute`` of a task of the follow-mode path: skipped when the run's ``follow`` is off."""
    if not config.follow_on(context["params"]):
        raise AirflowSkipException("follow mode is off for this run")


def backup_before_first_write(context: Any) -> None:
    """``pre_execute`` of both DAGs' MongoDB backup (one rule): MongoDB is backed up once, before
    Back Over writes anything to it (the initial sync's collections and copy, the first replayed
    change): that backup is the rollback point. Skipped once the restore or the sync has written
    (a re-run of ``backover_start`` to restart a replicator or a follow restore must not replace it
    with a MongoDB that already holds copied or replayed data; a warning says so when no backup
    exists at all), and when a complete MongoDB backup was taken before this run began (nothing
    has written to MongoDB since: it is the same state). ``pre_execute`` also runs when the
    deferred backup resumes: a backup this run took itself does not count."""
    hook, layout = _watched(context)
    objects = hook.objects(layout)
    manifest = layout.backup_manifest("mongodb")
    found = objects.head(manifest)
    where = f"s3://{layout.bucket}/{manifest}"

    def written(reason: str) -> AirflowSkipException:
        if found is None:
            log.warning(
                "%s, and MongoDB has no backup (%s missing): there is no rollback point for this migration",
                reason,
                where,
            )
        return AirflowSkipException(f"{reason}: the backup taken before it stays the rollback point")

    checkpoint = hook.restore_checkpoint(layout)
    if checkpoint is not None:
        raise written(
            f"the restore has already written to MongoDB (segment {checkpoint.last_applied_seq} applied)"
        )
    if objects.head(layout.sync_plan) is not None:
        raise written(f"the initial sync has written to MongoDB (s3://{layout.bucket}/{layout.sync_plan})")
    began = getattr(context.get("dag_run"), "start_date", None)
    if found is not None and began is not None and found["LastModified"] < began:
        raise AirflowSkipException(
            f"MongoDB was backed up before this run, and nothing has written to it since ({where}): that "
            "backup is the rollback point"
        )


def backup_before_anything_writes(context: Any) -> None:
    """``pre_execute`` of ``backover_start``'s MongoDB backup: it runs when something in this DAG will
    write to MongoDB (the follow restore, or an initial sync that may copy), under
    :func:`backup_before_first_write`; with follow off and ``initial_sync`` never,
    ``backover_restore`` takes it at the freeze as before."""
    params = context["params"]
    if not config.follow_on(params) and params.get("initial_sync") == "never":
        raise AirflowSkipException(
            "follow mode is off and there is no initial sync: backover_restore backs MongoDB up at the freeze"
        )
    backup_before_first_write(context)


def backup_at_the_freeze(context: Any) -> None:
    """``pre_execute`` of ``backover_restore``'s MongoDB backup (follow off), under
    :func:`backup_before_first_write`."""
    run_unless_follow(context)
    backup_before_first_write(context)


#: How long the restore DAG's restore task waits for the follow restore to complete the tail
#: before it runs ``backover restore --wait`` on the worker (which waits on, or takes over).
FOLLOWER_TAIL_SECONDS = 20.0


def skip_when_follower_completes(context: Any) -> None:
    """``pre_execute`` of the restore DAG's ``backover restore --wait``: in follow mode, the follow
    restore completes the tail up to F by itself a moment after the drain; when it does, the task
    is skipped (an SSM round trip less inside the freeze). When the follower is not running (or
    not done within :data:`FOLLOWER_TAIL_SECONDS`), the command runs and finishes the restore."""
    if not config.follow_on(context["params"]):
        return
    hook, layout = _watched(context)
    deadline = time.monotonic() + FOLLOWER_TAIL_SECONDS
    while time.monotonic() < deadline:
        checkpoint = hook.restore_checkpoint(layout)
        if checkpoint is not None and checkpoint.state is RestoreState.COMPLETED:
            raise AirflowSkipException(
                f"the follow restore completed the tail up to F ({checkpoint.last_applied_seq} segments, "
                f"{checkpoint.events_applied} events applied): nothing left to apply"
            )
        if hook.follow_restore_health(layout).status == progress.FAILED:
            log.warning("the follow restore is not running: backover restore --wait finishes the restore")
            return
        time.sleep(0.5)
    log.info("the follow restore is still applying the tail: backover restore --wait waits for it")


def run_unless_follow(context: Any) -> None:
    """``pre_execute`` of a task of the seed's path: skipped when the run's ``follow`` is on."""
    if config.follow_on(context["params"]):
        raise AirflowSkipException("follow mode is on for this run: done before the freeze")
