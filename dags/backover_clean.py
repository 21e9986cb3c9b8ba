"""
### Back Over: clean up after a verified restore (`backover_clean`)

Last lifecycle DAG. Runs only when the restore completed **and** the verification found the two
databases identical.

1. **check** - environment, bucket, databases; the migration must have been started. A *dry run*
   stops here.
2. **verified** - `restore/_checkpoint.json` completed and `reports/verify.json` identical (and
   newer than the restore); it waits while the restore of a frozen migration runs, and fails at
   once, with the reason, when waiting cannot help: the migration was never frozen (run
   `backover_restore` first), the restore failed, verification found differences. Nothing is
   cleaned then.
3. **worker** - start the EC2 worker if it is stopped (`backover clean` runs there).
4. **clean** - the lag history is recorded for the Migrations page (`reports/lag.json`; best-effort:
   a failure to record is a warning, never a stop), then the
   *clean* Lambda disables the change streams the start enabled; SSM
   `backover clean` deletes the change segments (backups and reports stay); the *clean completed*
   sensor waits for `state/clean.json` and no segment left.
5. **stop** - stop the EC2 worker. A clean-up task: it runs whatever the clean tasks did, as
   long as the restore was verified.

Re-running is safe: a migration already cleaned after a verified restore is found so.
"""

from __future__ import annotations

from airflow.sdk import DAG, TaskGroup, chain

from backover_airflow.operators.ec2 import WorkerStopOperator
from backover_airflow.operators.lag_history import LagHistoryOperator
from backover_airflow.operators.lambda_function import MigrationLambdaOperator
from backover_airflow.operators.worker import WorkerCommandOperator
from backover_airflow.sensors.clean import CleanCompletedSensor
from backover_airflow.sensors.restore import RestoreCompletedSensor
from backover_airflow.task_groups import check_group, lifecycle_dag, worker_group

with DAG(**lifecycle_dag("backover_clean", __doc__)) as dag:
    preflight, dry_run_gate = check_group(tooltip="Environment, bucket, databases; the migration was started")

    with TaskGroup("verified", tooltip="Only a verified restore is cleaned up"):
        restore_verified = RestoreCompletedSensor(
            task_id="restore_verified",
            require_identical=True,
            timeout=10 * 60,
            doc_md="The restore completed and `reports/verify.json` says identical. Waits while a frozen "
            "migration's restore runs; fails at once with the reason when the migration was never frozen "
            "(`backover_restore` not run yet), the restore failed or verification found differences.",
        )

    start_worker, worker_running = worker_group(tooltip="The worker runs backover clean")

    with TaskGroup("clean", tooltip="Change streams off, segments deleted"):
        record_lag = LagHistoryOperator(
            task_id="record_lag",
            migration_id="{{ params.migration_id }}",
            doc_md="Records the capture's and the restore's lag over time in `reports/lag.json` (the Migrations "
            "page's chart) while the change segments it is read from still exist. Best-effort: when it cannot "
            "(a damaged record, S3 refusing), a WARNING says why and the clean-up goes on.",
        )
        clean_lambda = MigrationLambdaOperator(
            task_id="clean_lambda",
            lambda_name="clean",
            doc_md="The *clean* Lambda disables the change streams that the start enabled.",
        )
        clean = WorkerCommandOperator(
            task_id="clean",
            command="clean",
            deferrable=True,
            doc_md="SSM: `backover clean` deletes the change segments and records `state/clean.json`; backups "
            "and reports stay.",
        )
        clean_completed = CleanCompletedSensor(
            task_id="clean_completed",
            timeout=30 * 60,
            doc_md="Monitor clean: `state/clean.json` is written and no change segment is left (the log counts "
            "those left).",
        )

    with TaskGroup("stop", tooltip="Stop the EC2 worker"):
        stop_worker = WorkerStopOperator(
            task_id="stop_worker",
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
        record_lag,
        clean_lambda,
        clean,
        clean_completed,
        stop_worker,
    )
