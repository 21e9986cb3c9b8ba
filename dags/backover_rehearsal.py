"""
### Back Over: rehearsal of a whole migration (`backover_rehearsal`)

Runs the lifecycle end to end on a **rehearsal environment**, so the real cut-over holds no
surprise: `backover_start` -> a capture window while the application (or a load generator) keeps
writing -> `backover_restore` -> `backover_clean`. Each phase is the lifecycle DAG itself,
triggered unchanged with this run's migration id (`rehearsal-<timestamp>` unless given); its task
logs are in that DAG's run.

**Initial sync**: Params *initial_sync*, *drop_target* and *sync_partition_documents* go to
`backover_start`. A rehearsal MongoDB that is empty is filled by the sync (*auto*); one that still
holds the previous rehearsal's data is not DocumentDB as of T0, so verification would fail: use
*always* with *drop_target* there (the rehearsal MongoDB is scratch).

**Only on a rehearsal environment**: Param `environment` (default `backover_rehearsal`) names an
Airflow Variable whose `"purpose"` must be `"rehearsal"` (for example a DocumentDB cluster restored
from a snapshot and a scratch MongoDB): the restore phase makes the microservices' user read-only
there. An environment marked `"purpose": "production"`, or not marked, is refused at the first task,
before anything runs. This DAG has no schedule, so being unpaused never starts an extra run;
`backover_rehearsal_weekly` schedules it. The lifecycle DAGs it triggers must be unpaused (a run of a
paused DAG stays queued).

The **report** - duration of each phase and of its tasks, the write-freeze window (read-only to
verified), events captured and replayed, throughput, verification result - goes to
`reports/rehearsal.json` under the migration and to the *report* task's log. It is written even
when a phase fails; the run fails unless every phase succeeded and the verification found the
databases identical.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.providers.standard.operators.python import PythonOperator
from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import DAG, Param, TaskGroup, TriggerRule, chain

from backover_airflow import dag_defaults as d
from backover_airflow.config import REHEARSAL_VARIABLE
from backover_airflow.operators.rehearsal import (
    MigrationFiguresOperator,
    RehearsalReportOperator,
    rehearsal_conf,
    start_conf,
)
from backover_airflow.sensors.replication import CaptureWindowSensor

PLAN = "check.plan"
MIGRATION_ID = "{{ ti.xcom_pull(task_ids='%s')['migration_id'] }}" % PLAN  # noqa: UP031
PHASE_POKE_SECONDS = 30


def run_phase(phase: str, conf: Any, doc_md: str) -> TriggerDagRunOperator:
    """Trigger one lifecycle DAG with ``conf`` and wait until its run ends."""
    return TriggerDagRunOperator(
        task_id=f"run_{phase}",
        trigger_dag_id=f"backover_{phase}",
        conf=conf,
        wait_for_completion=True,
        poke_interval=PHASE_POKE_SECONDS,
        allowed_states=["success"],
        failed_states=["failed"],
        retries=0,
        doc_md=doc_md,
    )


with DAG(
    dag_id="backover_rehearsal",
    description=d.DESCRIPTIONS["backover_rehearsal"],
    doc_md=__doc__,
    schedule=None,  # triggered by hand, or weekly by backover_rehearsal_weekly: never by unpausing
    start_date=d.START_DATE,
    catchup=False,
    # not paused: with no schedule that starts nothing, and a run the weekly DAG triggers on a paused
    # DAG would stay queued
    is_paused_upon_creation=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=12),
    tags=[*d.TAGS, "rehearsal"],
    default_args=d.DEFAULT_ARGS,
    params={
        "migration_id": d.migration_id_param(
            default="",
            optional=True,
            description="Migration id of this rehearsal; empty: rehearsal-<run timestamp>, new every run.",
        ),
        "databases": d.databases_param(),
        "capture_seconds": Param(
            300,
            type="integer",
            minimum=0,
            title="Capture window (seconds)",
            description="How long to keep capturing the application's writes (counted from T0) before the "
            "freeze.",
        ),
        "environment": d.environment_param(
            default=REHEARSAL_VARIABLE,
            note=' Its "purpose" must be "rehearsal": a rehearsal freezes the writes of the application there.',
        ),
        "follow": d.follow_param(),
        "initial_sync": d.initial_sync_param(),
        "drop_target": d.drop_target_param(),
        "sync_partition_documents": d.sync_partition_documents_param(),
    },
) as dag:
    with TaskGroup("check", tooltip="This rehearsal's migration id and environment"):
        plan = PythonOperator(
            task_id="plan",
            python_callable=rehearsal_conf,
            doc_md="Checks the environment Variable and picks this rehearsal's migration id; returns the conf "
            "every phase is triggered with.",
        )
        conf_of_start = PythonOperator(
            task_id="start_conf",
            python_callable=start_conf,
            op_kwargs={"conf": plan.output},
            doc_md="The start phase's conf: the rehearsal's, with the initial sync's Params (*initial_sync*, "
            "*drop_target*, *sync_partition_documents*), which only `backover_start` has.",
        )

    with TaskGroup("start", tooltip="backover_start"):
        run_start = run_phase(
            "start", conf_of_start.output, "Triggers `backover_start` and waits for its run to end."
        )

    with TaskGroup("capture", tooltip="Let the application write for a while"):
        capture_window = CaptureWindowSensor(
            task_id="capture_window",
            migration_id=MIGRATION_ID,
            min_seconds="{{ params.capture_seconds }}",
            timeout=6 * 60 * 60,
            doc_md="Waits until the replicator has captured for `capture_seconds` since T0, logging the "
            "events captured so far; fails at once if the replicator fails.",
        )

    with TaskGroup("restore", tooltip="backover_restore"):
        run_restore = run_phase(
            "restore", plan.output, "Triggers `backover_restore` and waits for its run to end."
        )

    with TaskGroup("clean", tooltip="backover_clean"):
        figures = MigrationFiguresOperator(
            task_id="figures",
            migration_id=MIGRATION_ID,
            doc_md="Reads the counts the checkpoints hold (events captured and replayed) before clean-up "
            "deletes them.",
        )
        run_clean = run_phase("clean", plan.output, "Triggers `backover_clean` and waits for its run to end.")

    with TaskGroup("report", tooltip="reports/rehearsal.json and the log"):
        write_report = RehearsalReportOperator(
            task_id="write_report",
            migration_id=MIGRATION_ID,
            phases={
                "start": ("start.run_start", "backover_start"),
                "capture": ("capture.capture_window", None),
                "restore": ("restore.run_restore", "backover_restore"),
                "clean": ("clean.run_clean", "backover_clean"),
            },
            figures_task_id="clean.figures",
            trigger_rule=TriggerRule.ALL_DONE,
            retries=0,
            doc_md="Writes the rehearsal report (phase durations, write-freeze window, events captured and "
            "replayed, throughput, verification) to `reports/rehearsal.json` and this log; fails unless the "
            "rehearsal passed.",
        )

    chain(plan, run_start, capture_window, run_restore, figures, run_clean, write_report)
