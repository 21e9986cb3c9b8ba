"""
### Back Over: abort a migration, give the writes back to DocumentDB (`backover_abort`)

Safe at any point before `backover_clean`. The microservices' user gets back exactly the roles it
had before `backover_start` (saved in `state/start.json`): write access where it had it, and
read-only where its prior roles were read-only. The replicator and a follow restore are asked to
stop (`control/stop.json`), and **every file is kept** (segments, checkpoints, backups, reports) for
inspection. The change streams `backover_start` enabled stay on. An aborted migration id cannot be
started again: use a new one.

1. **check** - environment, bucket, databases; the migration must have been started. A *dry run*
   stops here.
2. **worker** - start the EC2 worker if it is stopped (abort runs there).
3. **abort** - SSM `backover abort`; then *roles_given_back*: proof that the microservices' user
   holds its prior roles again, read from DocumentDB itself. Its log says which migrated databases
   those roles let it write, what the abort left (the replicator and the follow restore: stopped or
   still stopping; the change streams left on; MongoDB's rollback backup) and the next steps.

The worker keeps running afterwards; `backover_clean` or the EC2 console stops it.
"""

from __future__ import annotations

from airflow.sdk import DAG, TaskGroup, chain

from backover_airflow.operators.database import AppUserRolesOperator
from backover_airflow.operators.worker import WorkerCommandOperator
from backover_airflow.task_groups import check_group, lifecycle_dag, worker_group

with DAG(**lifecycle_dag("backover_abort", __doc__)) as dag:
    preflight, dry_run_gate = check_group(tooltip="Environment, bucket, databases; the migration was started")

    start_worker, worker_running = worker_group(tooltip="The worker runs the abort")

    with TaskGroup("abort", tooltip="Prior roles back, replicator stopped, files kept"):
        abort = WorkerCommandOperator(
            task_id="abort",
            command="abort",
            doc_md="SSM: `backover abort` gives the microservices' user its prior roles back and asks the "
            "replicator to stop; deletes nothing. Its output is in this log.",
        )
        roles_given_back = AppUserRolesOperator(
            task_id="roles_given_back",
            doc_md="Reads the microservices' user's roles from DocumentDB and fails unless they are exactly "
            "the prior roles saved in `state/start.json`. The log says which migrated databases they let it "
            "write (read-only prior roles stay read-only), what the abort left as it is (replicator, follow "
            "restore, change streams) and the next steps.",
        )

    chain(preflight, dry_run_gate, start_worker, worker_running, abort, roles_given_back)
