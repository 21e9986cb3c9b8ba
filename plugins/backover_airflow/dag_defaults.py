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


def proceed_unless_dry_run(params: dict[str, Any]) -> bool:
    """The dry-run gate: True (go on) unless the run is a dry run (skip everything after)."""
    if params.get("dry_run"):
        log.info("Dry run: the checks passed; stopping here, nothing was changed")
        return False
    return True
