"""What every Back Over DAG shares: the trigger form's Params, default_args, the dry-run gate.

The DAG files stay thin and agree with each other: the same Param has the same name, type and
description everywhere. No DAG argument holds a value of the environment: every task reads the
validated Variable when it runs (``backover_airflow.config``), so nothing reads the Variable while a
DAG file is parsed, and one Variable is judged, with the same defaults, by every task.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from airflow.exceptions import AirflowSkipException
from airflow.sdk import Param

from backover.layout import MIGRATION_ID
from backover_airflow.config import DEFAULT_VARIABLE

log = logging.getLogger(__name__)

START_DATE = datetime(2026, 1, 1)
TAGS = ["backover", "migration"]
DEFAULT_ARGS: dict[str, Any] = {
    "owner": "backover",
    "retries": 2,
    "retry_delay": timedelta(minutes=1),
}


def migration_id_param(
    default: str | None = None, description: str | None = None, optional: bool = False
) -> Param:
    """The migration id; ``optional`` lets it be empty (the DAG then picks one)."""
    return Param(
        default,
        type="string",
        pattern=f"^$|{MIGRATION_ID.pattern}" if optional else MIGRATION_ID.pattern,
        title="Migration id",
        description=description
        or "Names the migration: its files live under s3://{bucket}/{prefix}/{migration_id}/. Use the same id "
        "for backover_start, backover_restore and backover_clean (letters, digits, '.', '_', '-').",
    )


def databases_param() -> Param:
    return Param(
        [],
        type="array",
        items={"type": "string", "minLength": 1},
        uniqueItems=True,
        title="Databases",
        description="Databases to move back to MongoDB. Empty: the environment's list (Variable field "
        "'databases').",
    )


def dry_run_param() -> Param:
    return Param(
        False,
        type="boolean",
        title="Dry run",
        description="Run the checks (environment, bucket, both databases, the microservices' user) and stop: "
        "nothing is changed.",
    )


def environment_param() -> Param:
    return Param(
        DEFAULT_VARIABLE,
        type="string",
        minLength=1,
        title="Environment",
        description="Name of the Airflow Variable (JSON) describing the environment: bucket, prefix, worker "
        "instance id, Lambda names, secret ids (see `backover sandbox env`).",
    )


def follow_param() -> Param:
    return Param(
        True,
        type="boolean",
        title="Follow-mode restore",
        description="On (default): backover_start backs MongoDB up and starts a restore that applies the "
        "changes as they are captured, so the write freeze of backover_restore lasts seconds. Off: the "
        "restore replays every change after the freeze (a freeze that grows with the migration's age). "
        "Use the same value for backover_start and backover_restore.",
    )


def lifecycle_params(follow: bool = False) -> dict[str, Param]:
    """The trigger form of backover_start, backover_restore, backover_clean and backover_abort
    (``follow``: with the follow-mode Param, for start and restore)."""
    return {
        "migration_id": migration_id_param(),
        "databases": databases_param(),
        "dry_run": dry_run_param(),
        "environment": environment_param(),
        **({"follow": follow_param()} if follow else {}),
    }


def run_if_follow(context: Any) -> None:
    """``pre_execute`` of a task of the follow-mode path: skipped when the run's ``follow`` is off."""
    if not context["params"].get("follow", True):
        raise AirflowSkipException("follow mode is off for this run")


def backup_before_first_replayed_write(context: Any) -> None:
    """``pre_execute`` of backover_start's MongoDB backup: only in follow mode, and only while the
    follow restore has written nothing yet. A re-run of backover_start (to restart a replicator or
    a follow restore that died) must not replace the rollback point with a MongoDB that already
    holds replayed changes."""
    run_if_follow(context)
    from backover_airflow import config
    from backover_airflow.hooks.migration import MigrationHook

    with config.failing_task():
        layout = config.migration(context["params"])[1]
    checkpoint = MigrationHook(aws_conn_id="aws_default").restore_checkpoint(layout)
    if checkpoint is not None:
        raise AirflowSkipException(
            f"the restore has already written to MongoDB (segment {checkpoint.last_applied_seq} applied): "
            "the backup taken before its first write stays the rollback point"
        )


#: How long the restore DAG's restore task waits for the follow restore to complete the tail
#: before it runs ``backover restore --wait`` on the worker (which waits on, or takes over).
FOLLOWER_TAIL_SECONDS = 20.0


def skip_when_follower_completes(context: Any) -> None:
    """``pre_execute`` of the restore DAG's ``backover restore --wait``: in follow mode, the follow
    restore completes the tail up to F by itself a moment after the drain; when it does, the task
    is skipped (an SSM round trip less inside the freeze). When the follower is not running (or
    not done within :data:`FOLLOWER_TAIL_SECONDS`), the command runs and finishes the restore."""
    if not context["params"].get("follow", True):
        return
    import time

    from backover.state import RestoreState
    from backover_airflow import config, progress
    from backover_airflow.hooks.migration import MigrationHook

    with config.failing_task():
        layout = config.migration(context["params"])[1]
    hook = MigrationHook(aws_conn_id="aws_default")
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
    if context["params"].get("follow", True):
        raise AirflowSkipException("follow mode is on for this run: done before the freeze")


def proceed_unless_dry_run(params: dict[str, Any]) -> bool:
    """The dry-run gate: True (go on) unless the run is a dry run (skip everything after)."""
    if params.get("dry_run"):
        log.info("Dry run: the checks passed; stopping here, nothing was changed")
        return False
    return True
