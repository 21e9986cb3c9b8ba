"""
### Back Over: abort a migration, give the writes back to DocumentDB (`backover_abort`)

Safe at any point before `backover_clean`. The microservices' user gets back exactly the roles it
had before `backover_start` (saved in `state/start.json`), the replicator is asked to stop
(`control/stop.json`), and **every file is kept** (segments, checkpoints, backups, reports) for
inspection. An aborted migration id cannot be started again: use a new one.

1. **check** - environment, bucket, databases; the migration must have been started. A *dry run*
   stops here.
2. **worker** - start the EC2 worker if it is stopped (abort runs there).
3. **abort** - SSM `backover abort`; then proof that the microservices' user holds its prior roles
   again, read from DocumentDB itself.

The worker keeps running afterwards; `backover_clean` or the EC2 console stops it.
"""

from __future__ import annotations

from airflow.providers.amazon.aws.operators.ec2 import EC2StartInstanceOperator
from airflow.providers.amazon.aws.sensors.ec2 import EC2InstanceStateSensor
from airflow.providers.standard.operators.python import ShortCircuitOperator
from airflow.sdk import DAG, TaskGroup, chain

from backover_airflow import dag_defaults as d
from backover_airflow.operators.database import AppUserRolesOperator, PreflightOperator
from backover_airflow.operators.worker import WorkerCommandOperator

with DAG(
    dag_id="backover_abort",
    doc_md=__doc__,
    schedule=None,
    start_date=d.START_DATE,
    catchup=False,
    tags=[*d.TAGS, "abort"],
    default_args=d.DEFAULT_ARGS,
    params=d.lifecycle_params(),
) as dag:
    with TaskGroup("check", tooltip="Environment, bucket, databases; the migration was started"):
        preflight = PreflightOperator(
            task_id="preflight",
            require_started=True,
            doc_md="Checks the environment, the bucket, both databases and that `state/start.json` exists.",
        )
        dry_run_gate = ShortCircuitOperator(
            task_id="stop_if_dry_run",
            python_callable=d.proceed_unless_dry_run,
            ignore_downstream_trigger_rules=True,
            doc_md="A dry run stops here: every later task is skipped.",
        )

    with TaskGroup("worker", tooltip="The worker runs the abort"):
        start_worker = EC2StartInstanceOperator(
            task_id="start_worker",
            instance_id=d.env_value("worker_instance_id"),
            check_interval=5,
            doc_md="Starts the EC2 worker if it is stopped (a running worker stays as it is).",
        )
        worker_running = EC2InstanceStateSensor(
            task_id="worker_running",
            instance_id=d.env_value("worker_instance_id"),
            target_state="running",
            poke_interval=5,
            timeout=15 * 60,
            doc_md="Waits until EC2 reports the worker `running`.",
        )

    with TaskGroup("abort", tooltip="Prior roles back, replicator stopped, files kept"):
        abort = WorkerCommandOperator(
            task_id="abort",
            command="abort",
            doc_md="SSM: `backover abort` gives the microservices' user its prior roles back and asks the "
            "replicator to stop; deletes nothing. Its output is in this log.",
        )
        writes_given_back = AppUserRolesOperator(
            task_id="writes_given_back",
            doc_md="Reads the microservices' user's roles from DocumentDB and fails unless they are exactly "
            "the prior roles saved in `state/start.json`.",
        )

    chain(preflight, dry_run_gate, start_worker, worker_running, abort, writes_given_back)
