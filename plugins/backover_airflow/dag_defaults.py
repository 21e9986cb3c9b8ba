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
from backover.sync.config import DEFAULT_PARTITION_DOCUMENTS
from backover_airflow.config import DEFAULT_VARIABLE, INITIAL_SYNC_MODES

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


def initial_sync_param() -> Param:
    return Param(
        "auto",
        type="string",
        enum=list(INITIAL_SYNC_MODES),
        title="Initial sync",
        description="Copy DocumentDB's migrated collections to MongoDB after T0, before any replayed change "
        "(`backover sync`, partitioned over the workers). auto (default): copy only when MongoDB lacks "
        "them or they are empty, nothing otherwise. always: copy; a MongoDB holding documents in them is "
        "refused unless 'Drop the target' is on. never: no copy (MongoDB must hold DocumentDB's data as of T0).",
    )


def drop_target_param() -> Param:
    return Param(
        False,
        type="boolean",
        title="Drop the target",
        description="With initial sync 'always' only: drop the migrated collections MongoDB already has before "
        "the copy (`backover sync --drop-target`). Off (default): such a MongoDB is refused and nothing is "
        "written.",
    )


def sync_partition_documents_param() -> Param:
    return Param(
        DEFAULT_PARTITION_DOCUMENTS,
        type="integer",
        minimum=1,
        title="Documents per sync partition",
        description="The initial sync splits each collection into _id ranges of about this many documents; "
        f"each is one SSM command on one worker (default {DEFAULT_PARTITION_DOCUMENTS:,}).",
    )


def lifecycle_params(follow: bool = False, sync: bool = False) -> dict[str, Param]:
    """The trigger form of backover_start, backover_restore, backover_clean and backover_abort
    (``follow``: with the follow-mode Param, for start and restore; ``sync``: with the initial
    sync's Params, for start)."""
    return {
        "migration_id": migration_id_param(),
        "databases": databases_param(),
        "dry_run": dry_run_param(),
        "environment": environment_param(),
        **({"follow": follow_param()} if follow else {}),
        **(
            {
                "initial_sync": initial_sync_param(),
                "drop_target": drop_target_param(),
                "sync_partition_documents": sync_partition_documents_param(),
            }
            if sync
            else {}
        ),
    }


def proceed_unless_dry_run(params: dict[str, Any]) -> bool:
    """The dry-run gate: True (go on) unless the run is a dry run (skip everything after)."""
    if params.get("dry_run"):
        log.info("Dry run: the checks passed; stopping here, nothing was changed")
        return False
    return True
