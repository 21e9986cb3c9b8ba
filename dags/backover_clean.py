"""
### Back Over: clean up after a verified restore (`backover_clean`)

Last lifecycle DAG. Runs only when the restore completed **and** the verification found the two
databases identical.

1. **check** - environment, bucket, databases; the migration must have been started. A *dry run*
   stops here.
2. **verified** - `restore/_checkpoint.json` completed and `reports/verify.json` identical (and
   newer than the restore); otherwise the run fails and nothing is cleaned.
3. **worker** - start the EC2 worker if it is stopped (`backover clean` runs there).
4. **clean** - the *clean* Lambda disables the change streams the start enabled; SSM
   `backover clean` deletes the change segments (backups and reports stay); the *clean completed*
   sensor waits for `state/clean.json` and no segment left.
5. **stop** - stop the EC2 worker. A clean-up task: it runs whatever the clean tasks did, as
   long as the restore was verified.

Re-running is safe: a migration already cleaned after a verified restore is found so.
"""

from __future__ import annotations

from airflow.providers.amazon.aws.operators.ec2 import EC2StartInstanceOperator, EC2StopInstanceOperator
from airflow.providers.amazon.aws.sensors.ec2 import EC2InstanceStateSensor
from airflow.providers.standard.operators.python import ShortCircuitOperator
from airflow.sdk import DAG, TaskGroup, chain

from backover_airflow import dag_defaults as d
from backover_airflow.operators.database import PreflightOperator
from backover_airflow.operators.lambda_function import MigrationLambdaOperator
from backover_airflow.operators.worker import WorkerCommandOperator
from backover_airflow.sensors.clean import CleanCompletedSensor
from backover_airflow.sensors.restore import RestoreCompletedSensor

with DAG(
    dag_id="backover_clean",
    doc_md=__doc__,
    schedule=None,
    start_date=d.START_DATE,
    catchup=False,
    max_active_runs=1,
    tags=d.TAGS,
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

    with TaskGroup("verified", tooltip="Only a verified restore is cleaned up"):
        restore_verified = RestoreCompletedSensor(
            task_id="restore_verified",
            **d.migration_location(),
            require_identical=True,
            timeout=10 * 60,
            doc_md="The restore completed and `reports/verify.json` says identical; fails with the differences "
            "otherwise.",
        )

    with TaskGroup("worker", tooltip="The worker runs backover clean"):
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

    with TaskGroup("clean", tooltip="Change streams off, segments deleted"):
        clean_lambda = MigrationLambdaOperator(
            task_id="clean_lambda",
            lambda_name="clean",
            doc_md="The *clean* Lambda disables the change streams that the start enabled.",
        )
        clean = WorkerCommandOperator(
            task_id="clean",
            command="clean",
            doc_md="SSM: `backover clean` deletes the change segments and records `state/clean.json`; backups "
            "and reports stay.",
        )
        clean_completed = CleanCompletedSensor(
            task_id="clean_completed",
            **d.migration_location(),
            timeout=30 * 60,
            doc_md="Monitor clean: `state/clean.json` is written and no change segment is left (the log counts "
            "those left).",
        )

    with TaskGroup("stop", tooltip="Stop the EC2 worker"):
        stop_worker = EC2StopInstanceOperator(
            task_id="stop_worker",
            instance_id=d.env_value("worker_instance_id"),
            check_interval=5,
            doc_md="Stops the EC2 worker. A teardown of *restore_verified*: it runs once the clean tasks are "
            "done, whatever their outcome, but never when the restore was not verified (the replicator may "
            "still be needed).",
        ).as_teardown(setups=restore_verified)

    chain(
        preflight,
        dry_run_gate,
        restore_verified,
        start_worker,
        worker_running,
        clean_lambda,
        clean,
        clean_completed,
        stop_worker,
    )
