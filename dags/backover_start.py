"""
### Back Over: start capturing changes (`backover_start`)

First of the three lifecycle DAGs (`backover_start` -> `backover_restore` -> `backover_clean`).
The microservices keep writing to DocumentDB throughout.

1. **check** - the environment (Airflow Variable `backover`), the bucket, both databases
   (connections `backover_documentdb`, `backover_mongodb`), the microservices' user and its roles,
   change-stream status. A *dry run* stops here.
2. **worker** - start the EC2 workers and wait until each runs (the Variable's
   `worker_instance_id`; with its `worker_tag`, e.g. `{"Key": "backover-worker", "Value": "prod"}`,
   every instance carrying that tag too).
3. **capture** - the *start* Lambda saves the user's prior roles, gives it read-write roles and
   enables change streams, recording T0 in `state/start.json`; SSM Run Command starts
   `backover replicate --detach` on the first worker; the replicator's checkpoint must show a fresh
   heartbeat.
4. **rollback** - `backover backup --label mongodb`: MongoDB as it is before Back Over writes
   anything to it (the initial sync's copy, the first replayed change), to `backups/mongodb/`: the
   rollback point, taken once (skipped on a re-run once anything was written). With *follow* off and
   *initial_sync* never, `backover_restore` takes it at the freeze instead.
5. **sync** (Param *initial_sync*) - copies DocumentDB's migrated collections to MongoDB after T0
   and before any replayed change: `backover sync --plan` on the first worker writes the plan
   (the target's collections and indexes, `_id` partitions of about *sync_partition_documents*
   documents), then one SSM command `backover sync --partition ID` per partition, mapped over the
   partitions (one task each, named by its partition and worker) and spread over the workers
   round-robin, then the check that `sync/complete.json` exists. *auto* (default): copy only when
   MongoDB lacks the migrated collections or they are empty (otherwise the plan says no copy is
   needed and nothing is mapped); *always*: copy, and a MongoDB holding documents in them is
   refused unless *drop_target* (then they are dropped first); *never*: every sync task is
   skipped (MongoDB must then hold DocumentDB's data as of T0). A re-run resumes: completed
   partitions are not copied again, the others resume from their checkpoints.
6. **follow** (Param *follow*, on by default) - `backover restore --follow --detach` starts
   applying the captured changes as they land, so that the write freeze of `backover_restore`
   lasts seconds; the run ends when the follow restore runs. Off: nothing here,
   and `backover_restore` replays everything after the freeze.

Re-running is safe: every step is idempotent. To give up, trigger `backover_abort` with the same
migration id.
"""

from __future__ import annotations

from airflow.sdk import DAG, TaskGroup, chain

from backover_airflow.follow import backup_before_anything_writes, run_if_follow
from backover_airflow.operators.lambda_function import MigrationLambdaOperator
from backover_airflow.operators.sync import SyncCompletedOperator, SyncPartitionsOperator, run_if_initial_sync
from backover_airflow.operators.worker import WorkerCommandOperator
from backover_airflow.sensors.replication import ReplicatorHealthySensor
from backover_airflow.sensors.restore import FollowRestoreHealthySensor
from backover_airflow.task_groups import check_group, lifecycle_dag, worker_group

with DAG(**lifecycle_dag("backover_start", __doc__, follow=True, sync=True)) as dag:
    preflight, dry_run_gate = check_group(
        tooltip="Environment, bucket, databases, user: before anything changes",
        require_started=False,
        doc_md="Checks the environment Variable, the bucket, both databases (versions, replica set), the "
        "microservices' user and its roles, and which change streams are enabled. Changes nothing.",
    )

    start_worker, worker_running = worker_group(tooltip="The EC2 workers: the replicator, the sync's copies")

    with TaskGroup("capture", tooltip="Start Lambda, replicator, first heartbeat"):
        start_lambda = MigrationLambdaOperator(
            task_id="start_lambda",
            lambda_name="start",
            doc_md="The *start* Lambda: saves the microservices' user's prior roles, grants read-write, "
            "enables change streams and records T0 in `state/start.json`. Its log tail shows here.",
        )
        start_replicator = WorkerCommandOperator(
            task_id="start_replicator",
            command="replicate",
            doc_md="SSM Run Command on the worker: `backover replicate --detach`. The command's own output "
            "is in this log.",
        )
        replicator_healthy = ReplicatorHealthySensor(
            task_id="replicator_healthy",
            timeout=15 * 60,
            doc_md="Waits until `changes/_checkpoint.json` says `running` with a fresh heartbeat; fails at "
            "once if the replicator failed (with its reason).",
        )

    with TaskGroup("rollback", tooltip="MongoDB backed up before Back Over writes anything to it"):
        backup_mongodb = WorkerCommandOperator(
            task_id="backup_mongodb",
            command="backup",
            options={"label": "mongodb"},
            deferrable=True,
            pre_execute=backup_before_anything_writes,
            doc_md="SSM: `backover backup --label mongodb`: MongoDB before the initial sync or the follow "
            "restore writes anything (the rollback point; an empty MongoDB is backed up in a moment), to "
            "`backups/mongodb/`. Skipped with *follow* off and *initial_sync* never (backover_restore takes it "
            "at the freeze), and on a re-run once the sync or the restore has written or the backup exists "
            "(the first backup stays the rollback point).",
        )

    with TaskGroup(
        "sync", tooltip="Initial sync (Param initial_sync): plan, the partitions over the workers"
    ):
        plan_sync = WorkerCommandOperator(
            task_id="plan",
            command="sync_plan",
            deferrable=True,
            pre_execute=run_if_initial_sync,
            doc_md="SSM on the first worker: `backover sync --plan` (*auto*: `--if-needed`; *always* with "
            "*drop_target*: `--drop-target`; `--partition-documents` from *sync_partition_documents*): checks "
            "MongoDB, creates its collections and indexes and writes `sync/plan.json`. Skipped when "
            "*initial_sync* is never.",
        )
        partitions = SyncPartitionsOperator(
            task_id="partitions",
            doc_md="Reads `sync/plan.json` and spreads the partitions not yet completed over the workers "
            "round-robin (the copy maps over this list). Empty when no copy is needed or it completed.",
        )
        copy = WorkerCommandOperator.partial(
            task_id="copy",
            command="sync_partition",
            deferrable=True,
            pre_execute=run_if_initial_sync,
            map_index_template="{{ task.options['partition'] }} on {{ task.worker }}",
            doc_md="One task per partition (dynamic task mapping): SSM `backover sync --partition ID` on its "
            "worker; the copy resumes from its checkpoint after a failure. Its output is in the log.",
        ).expand_kwargs(partitions.output)
        sync_complete = SyncCompletedOperator(
            task_id="complete",
            doc_md="Checks that `sync/complete.json` exists (every partition copied) and logs the copy's "
            "figures; the MongoDB backup and the follow restore come only after it.",
        )

    with TaskGroup("follow", tooltip="The follow restore (Param follow)"):
        start_restore = WorkerCommandOperator(
            task_id="start_follow_restore",
            command="follow_restore",
            pre_execute=run_if_follow,
            doc_md="SSM: `backover restore --follow --detach`: applies the captured changes to MongoDB as they "
            "land, until the drain after the freeze. Skipped when *follow* is off.",
        )
        restore_following = FollowRestoreHealthySensor(
            task_id="follow_restore_healthy",
            timeout=15 * 60,
            pre_execute=run_if_follow,
            doc_md="Waits until `restore/_checkpoint.json` says running in follow mode with its lease renewed; "
            "the log says how far it trails the capture. Fails at once if it failed or stopped.",
        )

    chain(
        preflight,
        dry_run_gate,
        start_worker,
        worker_running,
        start_lambda,
        start_replicator,
        replicator_healthy,
        backup_mongodb,
        plan_sync,
        partitions,
        copy,
        sync_complete,
        start_restore,
        restore_following,
    )
