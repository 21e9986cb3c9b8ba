"""Task groups and DAG arguments the lifecycle DAGs share, built in one place.

``lifecycle_dag(dag_id, doc)`` gives the common DAG arguments; ``check_group`` the preflight and
the dry-run gate (``check.preflight``, ``check.stop_if_dry_run``); ``worker_group`` the EC2 worker
start and wait (``worker.start_worker``, ``worker.worker_running``). Call them inside ``with DAG``.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.standard.operators.python import ShortCircuitOperator
from airflow.sdk import TaskGroup

from backover_airflow import dag_defaults as d
from backover_airflow.operators.database import PreflightOperator
from backover_airflow.operators.ec2 import WorkerStartOperator
from backover_airflow.sensors.ec2 import WorkerStateSensor

STARTED_PREFLIGHT_DOC = (
    "Checks the environment, the bucket, both databases and that `state/start.json` exists."
)


def lifecycle_dag(
    dag_id: str, doc_md: str | None, follow: bool = False, sync: bool = False
) -> dict[str, Any]:
    """The arguments of ``DAG(...)`` shared by the lifecycle DAGs (triggered by hand, one run at a
    time). ``follow``: the DAG has the ``follow`` Param and tasks of either path skip themselves
    (``follow.run_if_follow``/``run_unless_follow``), so every task runs unless an upstream
    task failed (``none_failed``) rather than only when all succeeded. ``sync``: the DAG has the
    initial sync's Params (``initial_sync``, ``drop_target``, ``sync_partition_documents``)."""
    default_args = {**d.DEFAULT_ARGS, "trigger_rule": "none_failed"} if follow else d.DEFAULT_ARGS
    return {
        "dag_id": dag_id,
        "doc_md": doc_md,
        "schedule": None,
        "start_date": d.START_DATE,
        "catchup": False,
        "max_active_runs": 1,
        "tags": d.TAGS,
        "default_args": default_args,
        "params": d.lifecycle_params(follow, sync),
    }


def check_group(
    *, tooltip: str, require_started: bool = True, doc_md: str = STARTED_PREFLIGHT_DOC
) -> tuple[PreflightOperator, ShortCircuitOperator]:
    """``check``: the preflight (changes nothing), then the gate where a dry run stops."""
    with TaskGroup("check", tooltip=tooltip):
        preflight = PreflightOperator(task_id="preflight", require_started=require_started, doc_md=doc_md)
        gate = ShortCircuitOperator(
            task_id="stop_if_dry_run",
            python_callable=d.proceed_unless_dry_run,
            ignore_downstream_trigger_rules=True,
            doc_md="A dry run stops here: every later task is skipped.",
        )
    return preflight, gate


def worker_group(*, tooltip: str) -> tuple[WorkerStartOperator, WorkerStateSensor]:
    """``worker``: start the environment's EC2 workers (running ones stay as they are) and wait until
    each runs (the Variable's ``worker_instance_id``, and with ``worker_tag`` every tagged instance)."""
    with TaskGroup("worker", tooltip=tooltip):
        start_worker = WorkerStartOperator(
            task_id="start_worker",
            check_interval=5,
            doc_md="Starts the EC2 workers that are stopped (running ones stay as they are): the Variable's "
            "`worker_instance_id`, and with `worker_tag` every instance carrying that tag.",
        )
        worker_running = WorkerStateSensor(
            task_id="worker_running",
            target_state="running",
            poke_interval=5,
            timeout=15 * 60,
            doc_md="Waits until EC2 reports every worker `running`.",
        )
    return start_worker, worker_running
