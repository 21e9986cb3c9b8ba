"""
### Back Over: freeze, restore into MongoDB, verify (`backover_restore`)

Second lifecycle DAG, for a migration `backover_start` started. **The write freeze begins here**:
the microservices can read but no longer write until they are switched to MongoDB.

1. **check** - environment, bucket, both databases; the migration must have been started. A
   *dry run* stops here. With *follow* on (the default, as for `backover_start`), the follow
   restore must be running: otherwise the run fails here, before any freeze, and the
   microservices keep writing (run `backover_start` again to restart it). Then DocumentDB is
   backed up, and `backover verify --live` compares every document, while the microservices
   still write; a proven difference fails the run here, before the freeze. After an initial
   sync both go over its partitions as the copy did (`begin` on the first worker, one mapped task
   per partition spread over the workers, `finish` for what no partition holds); without one,
   `finish` reads every collection whole.
2. **freeze** - the *restore* Lambda makes the microservices' user read-only, records the freeze
   position F in `state/freeze.json` and asks the replicator to drain up to F; the
   *replication drained* sensor waits until the checkpoint says drained past F (its log shows how
   far behind F the capture is).
3. **backup** - with *follow* off, `backover backup` of DocumentDB and of MongoDB, in parallel,
   to `backups/`. With *follow* on, MongoDB was backed up by `backover_start`, DocumentDB's backup
   ran before the freeze (step 1) and is sealed at the end, after verification: the segments
   covering (B, F] are copied next to it. MongoDB is backed up here only when nothing was backed
   up before Back Over first wrote to it (`backover_start` does when it syncs or follows).
4. **restore** - with *follow* on, the follow restore applies the tail up to F by itself (the
   `backover restore --wait` task is skipped once it completed, and otherwise waits for it or takes
   over); otherwise `backover restore` replays every captured segment. The *restore completed*
   sensor checks `restore/_checkpoint.json`.
5. **verify** - `backover verify` compares both sides byte for byte (after a live pass: only the
   documents changed since it, the counts and the indexes); **the run fails on any difference**
   (the report is `reports/verify.json`). The next task logs the write freeze phase by phase;
   then the TTL indexes an initial sync held back get their expiry (`backover sync --release-ttl`).

Every SSM task's log holds the command's own output. Then trigger `backover_clean`, or
`backover_abort` to give the writes back to DocumentDB.
"""

from __future__ import annotations

from airflow.sdk import DAG, TaskGroup, chain

from backover_airflow.follow import (
    backup_at_the_freeze,
    run_if_follow,
    run_unless_follow,
    skip_when_follower_completes,
)
from backover_airflow.operators.lambda_function import MigrationLambdaOperator
from backover_airflow.operators.window import FreezeWindowOperator
from backover_airflow.operators.worker import WorkerCommandOperator
from backover_airflow.sensors.replication import ReplicationDrainedSensor
from backover_airflow.sensors.restore import FollowRestoreHealthySensor, RestoreCompletedSensor
from backover_airflow.task_groups import check_group, lifecycle_dag, partitioned_pass

#: Inside the write freeze every wait looks once a second (the environment's poll interval, 30 s by
#: default, is for the waits outside it): each look is one S3 GET or one SSM GetCommandInvocation.
IN_FREEZE_POLL_SECONDS = 1

with DAG(**lifecycle_dag("backover_restore", __doc__, follow=True)) as dag:
    preflight, dry_run_gate = check_group(tooltip="Environment, bucket, databases; the migration was started")

    with TaskGroup("follow", tooltip="The follow restore runs: no freeze otherwise"):
        follow_healthy = FollowRestoreHealthySensor(
            task_id="follow_restore_healthy",
            timeout=5 * 60,
            pre_execute=run_if_follow,
            doc_md="The follow restore (started by `backover_start`) must be running, its lease renewed: "
            "otherwise this fails and nothing is frozen. Skipped when *follow* is off.",
        )
        backup_documentdb_live = partitioned_pass(
            "backup_documentdb",
            command="backup",
            options={"label": "documentdb"},
            what="backup --label documentdb",
            tooltip="DocumentDB backed up while the microservices still write, over the sync's partitions",
            pre_execute=run_if_follow,
        )
        verify_live = partitioned_pass(
            "verify_live",
            command="verify_live",
            what="verify --live",
            tooltip="Every document compared before the freeze, over the sync's partitions; no retries",
            pre_execute=run_if_follow,
            retries=0,
        )

    with TaskGroup("freeze", tooltip="Read-only, freeze position F, drain"):
        restore_lambda = MigrationLambdaOperator(
            task_id="restore_lambda",
            lambda_name="restore",
            doc_md="The *restore* Lambda: the microservices' user becomes read-only; F goes to "
            "`state/freeze.json`; `control/drain.json` asks the replicator to drain up to F.",
        )
        replication_drained = ReplicationDrainedSensor(
            task_id="replication_drained",
            poke_interval=IN_FREEZE_POLL_SECONDS,
            timeout=2 * 60 * 60,
            doc_md="Monitor replication: waits until the checkpoint says drained past F; the log shows how far "
            "behind F the capture is. Fails at once if the replicator failed.",
        )

    with TaskGroup("backup", tooltip="Both databases to backups/, in parallel"):
        backup_documentdb = partitioned_pass(
            "backup_documentdb",
            command="backup",
            options={"label": "documentdb"},
            what="backup --label documentdb",
            tooltip="The frozen DocumentDB to backups/documentdb/, over the sync's partitions (follow off)",
            pre_execute=run_unless_follow,
        )
        backup_mongodb = WorkerCommandOperator(
            task_id="backup_mongodb",
            command="backup",
            options={"label": "mongodb"},
            deferrable=True,
            pre_execute=backup_at_the_freeze,
            doc_md="SSM: `backover backup --label mongodb` (the target before the restore) to `backups/mongodb/`. "
            "Skipped when *follow* is on, and once MongoDB was backed up before anything wrote to it "
            "(`backover_start` did, before the initial sync or the follow restore): that stays the rollback point.",
        )

        seal_documentdb = WorkerCommandOperator(
            task_id="seal_documentdb",
            command="seal",
            deferrable=True,
            pre_execute=run_if_follow,
            doc_md="SSM: `backover backup --label documentdb --seal`: copies the segments covering (B, F] next "
            "to the DocumentDB backup taken before the freeze, so that it restores to the frozen source "
            "even after clean-up (S3 only). Runs after verification, outside the freeze window. Skipped "
            "when *follow* is off.",
        )

    with TaskGroup("restore", tooltip="Replay the captured changes into MongoDB"):
        restore = WorkerCommandOperator(
            task_id="restore",
            command="restore",
            deferrable=True,
            pre_execute=skip_when_follower_completes,
            waiter_delay=IN_FREEZE_POLL_SECONDS,
            doc_md="SSM: `backover restore --wait`: replays every captured segment into MongoDB (follow off), "
            "or, when the follow restore did not complete the tail up to F within a few seconds of the "
            "drain (skipped when it did), waits for it or takes over; its progress lines are in this log.",
        )
        restore_completed = RestoreCompletedSensor(
            task_id="restore_completed",
            poke_interval=IN_FREEZE_POLL_SECONDS,
            timeout=60 * 60,
            doc_md="Monitor restore: `restore/_checkpoint.json` says completed; fails at once on a failed "
            "restore with its reason.",
        )

    with TaskGroup("verify", tooltip="Byte-for-byte comparison; fails on any difference"):
        verify = WorkerCommandOperator(
            task_id="verify",
            command="verify",
            retries=0,
            waiter_delay=IN_FREEZE_POLL_SECONDS,
            deferrable=True,
            doc_md="SSM: `backover verify` compares DocumentDB and MongoDB: after `verify --live` only the "
            "documents changed since it, the counts and the indexes; otherwise every document. Exit 1 on any "
            "difference fails this task and the run (no retry: a difference does not go away by itself). "
            "Report: `reports/verify.json`.",
        )
        release_ttl = WorkerCommandOperator(
            task_id="release_ttl",
            command="release_ttl",
            deferrable=True,
            doc_md="SSM: `backover sync --release-ttl`: every TTL index held back on MongoDB (the initial sync "
            "creates them so, and MongoDB's TTL monitor deleted nothing before the cutover) gets the source's "
            "`expireAfterSeconds`, after verification; with none held it changes nothing.",
        )
        window = FreezeWindowOperator(
            task_id="freeze_window",
            doc_md="Logs the write freeze (read-only -> verified) and each phase inside it: drain, restore, "
            "verify.",
        )

    chain(
        preflight,
        dry_run_gate,
        follow_healthy,
        backup_documentdb_live,
        verify_live,
        restore_lambda,
        replication_drained,
        [backup_documentdb, backup_mongodb],
        restore,
        restore_completed,
        verify,
        window,
        # after the freeze window, side by side: MongoDB's own TTL expiry from now on; the seal
        # (S3 only, the writes need not wait for it)
        [release_ttl, seal_documentdb],
    )
