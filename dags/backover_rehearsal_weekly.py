"""
### Back Over: the weekly rehearsal (`backover_rehearsal_weekly`)

Schedules `backover_rehearsal` once a week on its default environment (`backover_rehearsal`,
whose Variable must say `"purpose": "rehearsal"`). **Paused when deployed**: unpause it to rehearse
weekly. A manual run of this DAG rehearses nothing (its first task skips it): to rehearse now,
trigger `backover_rehearsal` itself, which has no schedule of its own, so triggering it never
schedules anything.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.providers.standard.operators.python import PythonOperator
from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import DAG, TaskGroup, chain

from backover_airflow import dag_defaults as d

with DAG(
    dag_id="backover_rehearsal_weekly",
    description=d.DESCRIPTIONS["backover_rehearsal_weekly"],
    doc_md=__doc__,
    schedule="@weekly",
    start_date=d.START_DATE,
    catchup=False,
    is_paused_upon_creation=True,
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=13),
    tags=[*d.TAGS, "rehearsal"],
    default_args=d.DEFAULT_ARGS,
    params={
        "migration_id": d.migration_id_param(
            default="",
            optional=True,
            description="Not used: each weekly rehearsal gets a migration id of its own (rehearsal-<timestamp>).",
        ),
        "environment": d.environment_param(
            default="backover_rehearsal",
            note=" Not used: backover_rehearsal rehearses on its own default environment.",
        ),
    },
) as dag:
    with TaskGroup("check", tooltip="Only a scheduled run rehearses"):
        scheduled = PythonOperator(
            task_id="scheduled_only",
            python_callable=d.scheduled_only,
            doc_md="Skips a manual run (trigger `backover_rehearsal` to rehearse now); a scheduled run goes on.",
        )
    with TaskGroup("rehearsal", tooltip="backover_rehearsal"):
        rehearse = TriggerDagRunOperator(
            task_id="run_rehearsal",
            trigger_dag_id="backover_rehearsal",
            wait_for_completion=True,
            poke_interval=60,
            allowed_states=["success"],
            failed_states=["failed"],
            retries=0,
            doc_md="Triggers `backover_rehearsal` on its default environment and waits for it to end (no retry: a "
            "phase DAG has its own retries).",
        )
    chain(scheduled, rehearse)
