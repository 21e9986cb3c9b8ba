"""What every Back Over DAG shares: the trigger form's Params, default_args, the DAG list's
one-line descriptions, the dry-run gate.

The DAG files stay thin and agree with each other: the same Param has the same name, type and
description everywhere. No DAG argument holds a value of the environment: every task reads the
validated Variable when it runs (``backover_airflow.config``), so nothing reads the Variable while a
DAG file is parsed, and one Variable is judged, with the same defaults, by every task.

The trigger form marks a Param required unless its JSON-schema ``type`` allows ``null``: the
Params whose empty or off value is valid (databases, the switches) allow it, and
:class:`~backover_airflow.config.RunParams` reads null as the default. The migration id has no
``pattern``: Airflow answers a value that breaks a schema with jsonschema's multi-line dump of the
schema, so its rule is checked by the run's first task instead, which fails in one line naming it.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from airflow.providers.common.compat.sdk import AirflowSkipException
from airflow.sdk import Param

from backover.layout import MIGRATION_ID_RULE
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


#: The DAG list's one-line description of each DAG (``DAG(description=...)``); the DAG docs
#: (``doc_md``) say the rest.
DESCRIPTIONS = {
    "backover_start": "1/3 Start a migration: capture DocumentDB's changes to S3 from T0 (and copy to MongoDB "
    "if it lacks the data)",
    "backover_restore": "2/3 Cutover: freeze the app's writes, replay every change into MongoDB, prove both "
    "identical",
    "backover_clean": "3/3 After a verified restore: change streams off, captured segments deleted (backups "
    "kept)",
    "backover_abort": "Give the app its writes on DocumentDB back and stop the capture; deletes nothing",
    "backover_rehearsal": "Rehearsal of start, restore and clean on a rehearsal environment, with its report",
    "backover_rehearsal_weekly": "Schedules backover_rehearsal once a week (paused when deployed)",
}


def migration_id_param(
    default: str | None = None, description: str | None = None, optional: bool = False
) -> Param:
    """The migration id; ``optional`` lets it be empty (the DAG then picks one). Its rule is checked
    by the run's first task (one line), not by a schema ``pattern`` (module docstring)."""
    return Param(
        default,
        type=["string", "null"] if optional else "string",
        title="Migration id",
        description=(
            description
            or "Names the migration: its files live under s3://{bucket}/{prefix}/{migration_id}/. Use the same "
            "id for backover_start, backover_restore and backover_clean."
        )
        + f" It must be {MIGRATION_ID_RULE}; the first task refuses another id in one line.",
    )


def databases_param() -> Param:
    return Param(
        [],
        type=["array", "null"],
        items={"type": "string", "minLength": 1},
        uniqueItems=True,
        title="Databases",
        description="Databases to move back to MongoDB, one a line. Empty: the environment's list (Variable "
        "field 'databases').",
    )


def dry_run_param() -> Param:
    return Param(
        False,
        type=["boolean", "null"],
        title="Dry run",
        description="Run the checks (environment, bucket, both databases, the microservices' user) and stop: "
        "nothing is changed.",
    )


def allow_missing_param() -> Param:
    return Param(
        False,
        type=["boolean", "null"],
        title="Databases created later",
        description="Off (default): a database the source (DocumentDB) does not hold is refused by the "
        "preflight and by the start Lambda, naming it, before anything changes: a typo would start a "
        "migration of nothing. On: it is meant to be created later; its change streams are enabled and "
        "its writes captured from T0 once the application creates it.",
    )


def environment_param(default: str = DEFAULT_VARIABLE, note: str = "") -> Param:
    return Param(
        default,
        type="string",
        minLength=1,
        title="Environment",
        description="Name of the Airflow Variable (JSON) describing the environment: bucket, prefix, worker "
        "instance id, Lambda names, secret ids (see `backover sandbox env`)." + note,
    )


def follow_param() -> Param:
    return Param(
        True,
        type=["boolean", "null"],
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
        type=["boolean", "null"],
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
    (``follow``: with the follow-mode Param, for start and restore; ``sync``: with start's own
    Params, the initial sync's and ``allow_missing``)."""
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
                "allow_missing": allow_missing_param(),
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


def scheduled_only(dag_run: Any) -> None:
    """``backover_rehearsal_weekly``'s first task: only a scheduled run rehearses. A manual run (which
    Airflow's trigger form also uses to unpause the DAG) skips everything after it."""
    run_type = getattr(dag_run, "run_type", None)
    if getattr(run_type, "value", run_type) != "scheduled":  # the Task SDK's DagRunType, or a string
        raise AirflowSkipException(
            "a manual run of backover_rehearsal_weekly rehearses nothing: trigger backover_rehearsal to "
            "rehearse now; this DAG only schedules it weekly"
        )
