"""Task groups and DAG arguments the lifecycle DAGs share, built in one place.

``lifecycle_dag(dag_id, doc)`` gives the common DAG arguments; ``check_group`` the preflight and
the dry-run gate (``check.preflight``, ``check.stop_if_dry_run``); ``worker_group`` the EC2 worker
start and wait (``worker.start_worker``, ``worker.worker_running``); ``partitioned_pass`` a pass
over the sync plan's partitions (begin, one mapped task per partition over the workers, finish).
Call them inside ``with DAG``.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.standard.operators.python import ShortCircuitOperator
from airflow.sdk import TaskGroup

from backover_airflow import dag_defaults as d
from backover_airflow.operators.database import PreflightOperator
from backover_airflow.operators.ec2 import WorkerStartOperator
from backover_airflow.operators.sync import PlanPartitionsOperator
from backover_airflow.operators.worker import WorkerCommandOperator
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
        "description": d.DESCRIPTIONS[dag_id],
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


def partitioned_pass(
    group_id: str,
    *,
    command: str,
    tooltip: str,
    what: str,
    options: dict[str, Any] | None = None,
    pre_execute: Any = None,
    **worker_kwargs: Any,
) -> TaskGroup:
    """A pass over the sync plan's partitions, as the sync's copy goes: ``<group>.begin`` on the
    first worker (``--begin``), ``<group>.partitions`` (the plan's partitions spread over the
    workers), ``<group>.partition`` mapped over them (``--partition ID`` on its worker, one task
    each, named by partition and worker), ``<group>.finish`` on the first worker (``--finish``: what
    no partition holds, then the verdict). Without a plan nothing is mapped and ``finish`` reads
    every collection whole. ``pre_execute`` (e.g. ``run_if_follow``) applies to every task;
    ``worker_kwargs`` (retries, waiter_delay) to the three command tasks."""
    fixed = dict(options or {})
    once = " No retry: its result would be the same." if worker_kwargs.get("retries") == 0 else ""
    with TaskGroup(group_id, tooltip=tooltip) as group:
        begin = WorkerCommandOperator(
            task_id="begin",
            command=command,
            options={**fixed, "step": "begin"},
            deferrable=True,
            pre_execute=pre_execute,
            doc_md=f"SSM on the first worker: `backover {what} --begin`: what the pass does before it reads "
            "anything, recorded in S3." + once,
            **worker_kwargs,
        )
        partitions = PlanPartitionsOperator(
            task_id="partitions",
            pass_name=command,
            options={**fixed, "step": "partition"},
            pre_execute=pre_execute,
            doc_md="Reads the partitions the begin step recorded (from `sync/plan.json`) and spreads them over "
            "the workers round-robin (the next task maps over this list); empty without an initial sync.",
        )
        each = WorkerCommandOperator.partial(
            task_id="partition",
            command=command,
            deferrable=True,
            pre_execute=pre_execute,
            map_index_template="{{ task.options['partition'] }} on {{ task.worker }}",
            doc_md=f"One task per partition (dynamic task mapping): SSM `backover {what} --partition ID` on its "
            "worker. Its output is in the log." + once,
            **worker_kwargs,
        ).expand_kwargs(partitions.output)
        finish = WorkerCommandOperator(
            task_id="finish",
            command=command,
            options={**fixed, "step": "finish"},
            deferrable=True,
            pre_execute=pre_execute,
            doc_md=f"SSM on the first worker: `backover {what} --finish`: what no partition holds (collections "
            "created after the plan, every collection without an initial sync), then the result of the whole pass."
            + once,
            **worker_kwargs,
        )
        begin >> partitions >> each >> finish
    return group
