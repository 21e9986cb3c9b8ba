"""
### Back Over: freeze, restore into MongoDB, verify (`backover_restore`)

Second lifecycle DAG, for a migration `backover_start` started. **The write freeze begins here**:
the microservices can read but no longer write until they are switched to MongoDB.

1. **check** - environment, bucket, both databases; the migration must have been started. A
   *dry run* stops here.
2. **freeze** - the *restore* Lambda makes the microservices' user read-only, records the freeze
   position F in `state/freeze.json` and asks the replicator to drain up to F; the
   *replication drained* sensor waits until the checkpoint says drained past F (its log shows how
   far behind F the capture is).
3. **backup** - `backover backup` of DocumentDB and of MongoDB, in parallel, to `backups/`.
4. **restore** - `backover restore` replays every captured segment into MongoDB; the
   *restore completed* sensor checks `restore/_checkpoint.json`.
5. **verify** - `backover verify` compares both sides document by document; **the run fails on
   any difference** (the report is `reports/verify.json`).

Every SSM task's log holds the command's own output. Then trigger `backover_clean`, or
`backover_abort` to give the writes back to DocumentDB.
"""

from __future__ import annotations

from airflow.sdk import DAG, TaskGroup, chain

from backover_airflow.operators.lambda_function import MigrationLambdaOperator
from backover_airflow.operators.worker import WorkerCommandOperator
from backover_airflow.sensors.replication import ReplicationDrainedSensor
from backover_airflow.sensors.restore import RestoreCompletedSensor
from backover_airflow.task_groups import check_group, lifecycle_dag

with DAG(**lifecycle_dag("backover_restore", __doc__)) as dag:
    preflight, dry_run_gate = check_group(tooltip="Environment, bucket, databases; the migration was started")

    with TaskGroup("freeze", tooltip="Read-only, freeze position F, drain"):
        restore_lambda = MigrationLambdaOperator(
            task_id="restore_lambda",
            lambda_name="restore",
            doc_md="The *restore* Lambda: the microservices' user becomes read-only; F goes to "
            "`state/freeze.json`; `control/drain.json` asks the replicator to drain up to F.",
        )
        replication_drained = ReplicationDrainedSensor(
            task_id="replication_drained",
            timeout=2 * 60 * 60,
            doc_md="Monitor replication: waits until the checkpoint says drained past F; the log shows how far "
            "behind F the capture is. Fails at once if the replicator failed.",
        )

    with TaskGroup("backup", tooltip="Both databases to backups/, in parallel"):
        backup_documentdb = WorkerCommandOperator(
            task_id="backup_documentdb",
            command="backup",
            options={"label": "documentdb"},
            deferrable=True,
            doc_md="SSM: `backover backup --label documentdb` (the frozen source) to `backups/documentdb/`.",
        )
        backup_mongodb = WorkerCommandOperator(
            task_id="backup_mongodb",
            command="backup",
            options={"label": "mongodb"},
            deferrable=True,
            doc_md="SSM: `backover backup --label mongodb` (the target before the restore) to `backups/mongodb/`.",
        )

    with TaskGroup("restore", tooltip="Replay the captured changes into MongoDB"):
        restore = WorkerCommandOperator(
            task_id="restore",
            command="restore",
            deferrable=True,
            doc_md="SSM: `backover restore` replays every captured segment into MongoDB; its progress lines "
            "are in this log.",
        )
        restore_completed = RestoreCompletedSensor(
            task_id="restore_completed",
            timeout=60 * 60,
            doc_md="Monitor restore: `restore/_checkpoint.json` says completed; fails at once on a failed "
            "restore with its reason.",
        )

    with TaskGroup("verify", tooltip="Byte-for-byte comparison; fails on any difference"):
        verify = WorkerCommandOperator(
            task_id="verify",
            command="verify",
            retries=0,
            deferrable=True,
            doc_md="SSM: `backover verify` compares DocumentDB and MongoDB; exit 1 on any difference fails "
            "this task and the run (no retry: a difference does not go away by itself). Report: "
            "`reports/verify.json`.",
        )

    chain(
        preflight,
        dry_run_gate,
        restore_lambda,
        replication_drained,
        [backup_documentdb, backup_mongodb],
        restore,
        restore_completed,
        verify,
    )
