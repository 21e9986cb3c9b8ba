"""The DAGs end to end with ``DAG.test()`` against a running sandbox, unchanged.

One sandbox for the module (its own directory, ports from 31400): moto with two EC2 workers (the
Variable's ``worker_tag`` names both), the local Lambda/SSM runner (which runs the real Lambdas and
the real ``backover`` commands), both MongoDB stand-ins.
Airflow reads the sandbox's ``AIRFLOW_CONN_*`` and ``AIRFLOW_VAR_BACKOVER`` exactly as
``backover sandbox env`` prints them. The microservice load generator writes as the microservices'
user while the replicator captures.

* start from an empty MongoDB -> restore -> clean under load: the initial sync copies DocumentDB
  in partitions mapped over both workers, the load is refused at the freeze, verify finds the
  databases identical, the segments are gone, the workers are stopped;
* abort after start (no initial sync: its tasks are skipped): the microservices' user writes
  again, with exactly its prior roles;
* a difference in MongoDB fails the restore DAG at ``verify``; the clean DAG then refuses to
  clean; the rehearsal report of that migration says why. (The aborted migration's writes never
  reached MongoDB either, so the verification counts them missing too.)
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument

from backover.layout import MigrationLayout
from backover.lease import LeaseRecord
from backover.s3objects import S3Objects
from backover_sandbox import manager, seed
from backover_sandbox.config import Ports, SandboxConfig, SandboxState, free_port_base
from backover_sandbox.loadgen import LoadGenerator
from backover_sandbox.rehearsal.lifecycle import app_client

ROOT = Path(__file__).resolve().parents[2]
PORT_BASE = free_port_base(31400)
#: Writes the load makes while the replicator captures, before the freeze.
WRITES_BEFORE_FREEZE = 300
#: Two databases: the replicator watches the cluster, whose change streams the start Lambda enables.
DATABASES = ["shop", "inventory"]

pytestmark = pytest.mark.slow


#: Workers of the module's sandbox: the initial sync's partitions are spread over both.
WORKERS = 2
#: Documents per sync partition: shop.orders' 50 make two partitions, so each worker copies some.
PARTITION_DOCUMENTS = 30


@dataclass
class Run:
    """One ``DAG.test()`` run: each task's state; a mapped task's instances by their rendered names."""

    state: str
    tasks: dict[str, str | None]
    mapped: dict[str, dict[str, str | None]]


@dataclass
class Lifecycle:
    """The running sandbox and the Airflow that drives it."""

    state: SandboxState
    dags_folder: Path

    def run(self, dag_id: str, conf: dict[str, Any], mark_success_pattern: str | None = None) -> Run:
        """Run the unchanged DAG file with ``conf`` as the trigger form's values."""
        from airflow.utils.session import create_session

        path = self.dags_folder / f"{dag_id}.py"
        spec = importlib.util.spec_from_file_location(f"e2e_{dag_id}_{uuid.uuid4().hex}", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        dag_run = module.dag.test(run_conf=conf, mark_success_pattern=mark_success_pattern)
        with create_session() as session:
            instances = dag_run.get_task_instances(session=session)
            tasks = {ti.task_id: _name(ti.state) for ti in instances}
            mapped: dict[str, dict[str, str | None]] = {}
            for ti in instances:
                if ti.map_index >= 0:
                    name = ti.rendered_map_index or str(ti.map_index)
                    mapped.setdefault(ti.task_id, {})[name] = _name(ti.state)
        return Run(state=str(_name(dag_run.state)), tasks=tasks, mapped=mapped)

    def layout(self, migration_id: str) -> MigrationLayout:
        return MigrationLayout(bucket=self.state.bucket, prefix=self.state.prefix, migration_id=migration_id)

    def s3(self) -> S3Objects:
        return S3Objects(self.state.bucket)

    def master(self, flavour: str) -> Any:
        return seed.client(manager.master_credentials(self.state)[flavour])

    def worker_states(self) -> set[str]:
        """The states of every worker."""
        ec2 = boto3.client("ec2")
        found = ec2.describe_instances(InstanceIds=self.state.worker_instance_ids)
        return {i["State"]["Name"] for r in found["Reservations"] for i in r["Instances"]}


def _name(state: Any) -> str | None:
    return None if state is None else str(getattr(state, "value", state))


@pytest.fixture(scope="module")
def lifecycle(airflow_home: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lifecycle]:
    """Start the sandbox, point Airflow at it, put the DAG files in the DAGs folder; stop it after."""
    directory = tmp_path_factory.mktemp("e2e-sandbox")
    config = SandboxConfig(
        directory=directory, ports=Ports.from_base(PORT_BASE), project_root=ROOT, workers=WORKERS
    )
    with pytest.MonkeyPatch.context() as mp:
        # The detached replicators keep their pid and log files here, not in the home directory.
        mp.setenv("BACKOVER_RUN_DIR", str(directory / "run"))
        state = manager.up(config)
        try:
            for name, value in manager.env(config).items():
                mp.setenv(name, value)
            for path in (ROOT / "dags").glob("*.py"):
                shutil.copy(path, airflow_home.dags_folder / path.name)
            yield Lifecycle(state=state, dags_folder=airflow_home.dags_folder)
        finally:
            manager.down(config)


def _conf(migration_id: str, follow: bool = True) -> dict[str, Any]:
    return {"migration_id": migration_id, "databases": DATABASES, "follow": follow}


def _rebaseline(lifecycle: Lifecycle) -> None:
    """Make MongoDB hold DocumentDB's data again (docs/architecture.md: after an abort, writes made
    on DocumentDB never reached MongoDB, so a new migration starts from a re-copied MongoDB)."""
    raw = CodecOptions(document_class=RawBSONDocument)
    with lifecycle.master("documentdb") as docdb, lifecycle.master("mongodb") as mongo:
        for db in DATABASES:
            mongo.drop_database(db)
            for name in docdb[db].list_collection_names():
                docs = list(docdb[db].get_collection(name, codec_options=raw).find())
                target = mongo[db].get_collection(name, codec_options=raw)
                if docs:
                    target.insert_many(docs)
                for index in docdb[db][name].list_indexes():
                    if index["name"] != "_id_":
                        target.create_index(
                            list(index["key"].items()), name=index["name"], unique=index.get("unique", False)
                        )


def _start_under_load(
    lifecycle: Lifecycle, migration_id: str, follow: bool = True, **params: Any
) -> tuple[LoadGenerator, Run]:
    """backover_start (with ``params`` added to its conf), then the load writes until
    ``WRITES_BEFORE_FREEZE`` are acknowledged.

    Each migration starts from a writing application and a MongoDB holding DocumentDB's data (or,
    with ``empty_target=True``, an empty MongoDB, which the initial sync fills): an earlier test's
    freeze left the microservices' user read-only, so its seeded roles are given back first, and an
    earlier abort left writes that only DocumentDB has.
    """
    if params.pop("empty_target", False):
        with lifecycle.master("mongodb") as mongo:
            for db in DATABASES:
                mongo.drop_database(db)
    else:
        _rebaseline(lifecycle)
    with lifecycle.master("documentdb") as docdb:
        roles = [{"role": "readWrite", "db": db} for db in seed.DEMO_DATABASES]
        docdb.admin.command("updateUser", lifecycle.state.app_user, roles=roles)
    result = lifecycle.run("backover_start", {**_conf(migration_id, follow), **params})
    assert result.state == "success", result.tasks
    load = LoadGenerator(app_client(lifecycle.state), pause_seconds=0.001).start()
    deadline = time.monotonic() + 120
    while load.running and load.report.acknowledged < WRITES_BEFORE_FREEZE and time.monotonic() < deadline:
        time.sleep(0.1)
    assert load.running, load.report.error
    return load, result


def test_dry_run_checks_and_changes_nothing(lifecycle: Lifecycle) -> None:
    migration_id = f"e2e-dry-{uuid.uuid4().hex[:6]}"
    result = lifecycle.run("backover_start", {**_conf(migration_id), "dry_run": True})
    assert result.state == "success", result.tasks
    assert result.tasks["check.preflight"] == "success"
    assert {state for task, state in result.tasks.items() if not task.startswith("check.")} == {"skipped"}
    assert lifecycle.s3().get_json(lifecycle.layout(migration_id).start_state) is None


def _kill_9(run_dir: Path, name: str) -> int:
    """SIGKILL the detached ``backover <name>`` of the worker (its pid file); returns its pid."""
    (pid_file,) = run_dir.glob(f"{name}-*.pid")
    pid = int(pid_file.read_text())
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] == "Z":
            break
        time.sleep(0.05)
    return pid


def _documents(client: Any) -> int:
    return sum(
        client[db][name].count_documents({})
        for db in DATABASES
        for name in client[db].list_collection_names()
    )


def test_start_restore_clean_under_load(lifecycle: Lifecycle) -> None:
    """From an empty MongoDB, in follow mode: backover_start's initial sync (Param initial_sync
    auto) copies DocumentDB in partitions mapped over both workers; then the replicator and the
    follow restore are killed by SIGKILL during the load: backover_start again restarts both from
    their checkpoints (the completed copy is not run again), and the migration ends identical."""
    migration_id = f"e2e-main-{uuid.uuid4().hex[:6]}"
    layout = lifecycle.layout(migration_id)
    with lifecycle.master("documentdb") as docdb:
        at_t0 = _documents(docdb)  # nothing writes to DocumentDB until the load starts
    load, started = _start_under_load(
        lifecycle, migration_id, empty_target=True, sync_partition_documents=PARTITION_DOCUMENTS
    )
    s3 = lifecycle.s3()
    assert started.tasks["sync.plan"] == started.tasks["sync.complete"] == "success", started.tasks
    copies = started.mapped["sync.copy"]
    assert set(copies.values()) == {"success"} and len(copies) >= WORKERS, copies
    workers = {name.split(" on ")[1] for name in copies}  # map_index_template: "<partition> on <worker>"
    assert workers == set(lifecycle.state.worker_instance_ids) and len(workers) == WORKERS, copies
    complete = s3.get_json(layout.sync_complete)
    assert complete is not None and complete["partitions"] == len(copies), complete
    assert complete["documents"] == at_t0 > 0, "every document DocumentDB held was copied"
    first_backup = s3.head(layout.backup_manifest("mongodb"))
    assert first_backup is not None, "backover_start backed MongoDB up before the follow restore wrote"
    run_dir = Path(os.environ["BACKOVER_RUN_DIR"])
    deadline = time.monotonic() + 60
    while (s3.get_json(layout.restore_checkpoint) or {}).get("last_applied_seq", 0) < 1:
        assert time.monotonic() < deadline, "the follow restore applied nothing while the load wrote"
        time.sleep(0.2)
    _kill_9(run_dir, "restore")
    # Until its lease lapses (30 s) a dead follower cannot be told from a live one by its files; a
    # freeze then would still be safe (restore --wait on the worker takes the lease over at once).
    lease = LeaseRecord.parse(s3.get_bytes(layout.restore_lease) or b"")
    assert lease is not None
    time.sleep(max(0.0, (lease.expires_at - datetime.now(UTC)).total_seconds()) + 1)
    refused = lifecycle.run("backover_restore", _conf(migration_id))
    assert refused.state == "failed" and refused.tasks["follow.follow_restore_healthy"] == "failed"
    assert refused.tasks["freeze.restore_lambda"] in {"upstream_failed", None}, "no freeze without a follower"
    assert load.running and s3.get_json(layout.freeze_state) is None, "the microservices still write"
    _kill_9(run_dir, "replicate")
    assert s3.get_json(layout.restore_checkpoint)["state"] == "running"  # killed: it could not say so

    restarted = lifecycle.run("backover_start", _conf(migration_id))
    assert restarted.state == "success", restarted.tasks
    assert restarted.tasks["sync.copy"] == "skipped" and not restarted.mapped, (
        "the completed copy is not run again"
    )
    assert restarted.tasks["sync.complete"] == "success"
    assert restarted.tasks["rollback.backup_mongodb"] == "skipped", (
        "the first backup stays the rollback point"
    )
    assert s3.head(layout.backup_manifest("mongodb"))["ETag"] == first_backup["ETag"]
    assert restarted.tasks["follow.follow_restore_healthy"] == "success"

    restore = lifecycle.run("backover_restore", _conf(migration_id))
    assert load.wait_until_refused(timeout=30), "the freeze makes the microservices' user read-only"
    load_report = load.stop()
    assert restore.state == "success", restore.tasks
    assert load_report.acknowledged >= WRITES_BEFORE_FREEZE
    # Inserts, replacements and deletes all go to shop (some updates go to inventory, not migrated here).
    shop_writes = sum(load_report.by_kind.get(kind, 0) for kind in ("insert", "replace", "delete"))

    for task in ("follow.follow_restore_healthy", "follow.verify_live.finish", "verify.freeze_window"):
        assert restore.tasks[task] == "success", restore.tasks
    # the live backup and verification went over the sync's partitions, on both workers, as the copy did
    for step in ("follow.backup_documentdb.partition", "follow.verify_live.partition"):
        ran = restore.mapped[step]
        assert set(ran.values()) == {"success"} and len(ran) == len(copies), (step, ran)
        assert {name.split(" on ")[1] for name in ran} == workers, (step, ran)
    assert {restore.tasks[t] for t in ("backup.backup_documentdb.finish", "backup.backup_mongodb")} == {
        "skipped"
    }
    # the follower completed the tail by itself: no `restore --wait` round trip inside the freeze
    assert (
        restore.tasks["restore.restore"] == "skipped"
        and restore.tasks["restore.restore_completed"] == "success"
    )
    report = s3.get_json(layout.verify_report)
    assert report["identical"] is True
    assert report["mode"] == "incremental", "only what changed after the live pass was compared at the freeze"
    assert s3.get_json(layout.verify_live_report)["state"] == "passed"
    checkpoint = s3.get_json(layout.replicator_checkpoint)
    assert checkpoint["state"] == "drained"
    assert checkpoint["events_total"] >= shop_writes > 0, "the acknowledged writes were captured"
    assert s3.get_json(layout.restore_checkpoint)["state"] == "completed"
    with lifecycle.master("documentdb") as docdb, lifecycle.master("mongodb") as mongo:
        assert docdb.shop.orders.count_documents({}) == mongo.shop.orders.count_documents({})

    clean = lifecycle.run("backover_clean", _conf(migration_id))
    assert clean.state == "success", clean.tasks
    assert clean.tasks["stop.stop_worker"] == "success"
    assert not [k for k in s3.list_keys(layout.changes_prefix) if layout.parse_segment(k)]
    assert s3.get_json(layout.clean_state)["cleaned_at"]
    assert lifecycle.worker_states() == {"stopped"}, "clean stops every worker"

    again = lifecycle.run("backover_clean", _conf(migration_id))
    assert again.state == "success", "clean is idempotent: a re-run finds the migration cleaned"


def test_abort_gives_the_writes_back(lifecycle: Lifecycle) -> None:
    migration_id = f"e2e-abort-{uuid.uuid4().hex[:6]}"
    load, started = _start_under_load(lifecycle, migration_id, initial_sync="never")
    sync_tasks = {task: state for task, state in started.tasks.items() if task.startswith("sync.")}
    assert set(sync_tasks.values()) == {"skipped"} and len(sync_tasks) == 4, sync_tasks
    assert lifecycle.s3().get_json(lifecycle.layout(migration_id).sync_plan) is None
    result = lifecycle.run("backover_abort", _conf(migration_id))
    assert result.state == "success", result.tasks
    assert result.tasks["abort.roles_given_back"] == "success"
    assert load.running, f"the microservices never lost their writes: {load.report}"
    assert load.stop().error is None
    with app_client(lifecycle.state) as app:
        app.shop.orders.insert_one({"after": "abort"})  # writes are given back
    layout = lifecycle.layout(migration_id)
    start = lifecycle.s3().get_json(layout.start_state)
    assert start is not None, "abort keeps every file"
    deadline = time.monotonic() + 60  # the follow restore reads control/stop.json every heartbeat (5 s)
    while (lifecycle.s3().get_json(layout.restore_checkpoint) or {}).get("state") != "stopped":
        assert time.monotonic() < deadline, "the follow restore did not stop after the abort"
        time.sleep(0.5)
    assert "abort" in lifecycle.s3().get_json(layout.restore_checkpoint)["reason"]


def test_a_write_to_mongodb_fails_the_live_verification_before_any_freeze(lifecycle: Lifecycle) -> None:
    """Follow mode: a document only MongoDB has is proven different by ``verify --live`` while the
    microservices still write; the run fails before the freeze and they never lose their writes."""
    migration_id = f"e2e-live-{uuid.uuid4().hex[:6]}"
    load, started = _start_under_load(lifecycle, migration_id)
    # initial_sync auto: MongoDB holds the data, so the plan copies nothing and nothing is mapped
    assert started.tasks["sync.plan"] == started.tasks["sync.complete"] == "success", started.tasks
    assert started.tasks["sync.copy"] == "skipped" and not started.mapped
    assert lifecycle.s3().get_json(lifecycle.layout(migration_id).sync_plan) is None
    with lifecycle.master("mongodb") as mongo:
        mongo.shop.orders.insert_one({"_id": "only-in-mongodb", "note": "not on DocumentDB"})

    restore = lifecycle.run("backover_restore", _conf(migration_id))
    assert load.running, f"nothing was frozen: {load.report}"
    assert load.stop().error is None
    assert restore.state == "failed"
    assert "failed" in {
        restore.tasks["follow.verify_live.partition"],
        restore.tasks["follow.verify_live.finish"],
    }
    assert restore.tasks["freeze.restore_lambda"] in {"upstream_failed", None}
    layout = lifecycle.layout(migration_id)
    assert lifecycle.s3().get_json(layout.freeze_state) is None
    live = lifecycle.s3().get_json(layout.verify_live_report)
    assert live["state"] == "failed" and "only-in-mongodb" in str(live), live
    lifecycle.run("backover_abort", _conf(migration_id))  # the follow restore stops; writes stay


def test_a_difference_fails_the_restore_and_blocks_clean(lifecycle: Lifecycle) -> None:
    """The seed's order (follow off): everything restored after the freeze, and verify fails."""
    migration_id = f"e2e-diff-{uuid.uuid4().hex[:6]}"
    load, started = _start_under_load(lifecycle, migration_id, follow=False)
    # initial_sync auto may copy: MongoDB is backed up before anything writes to it, not in the freeze
    assert started.tasks["rollback.backup_mongodb"] == "success", started.tasks
    with lifecycle.master("mongodb") as mongo:
        mongo.shop.orders.insert_one({"_id": "only-in-mongodb", "note": "not on DocumentDB"})

    restore = lifecycle.run("backover_restore", _conf(migration_id, follow=False))
    assert restore.tasks["backup.backup_documentdb.finish"] == "success"
    assert restore.tasks["backup.backup_mongodb"] == "skipped", "backover_start took the rollback point"
    assert restore.tasks["follow.verify_live.begin"] == "skipped"
    load.stop()
    assert restore.state == "failed"
    assert restore.tasks["restore.restore_completed"] == "success"
    assert restore.tasks["verify.verify"] == "failed"
    report = lifecycle.s3().get_json(lifecycle.layout(migration_id).verify_report)
    assert report["identical"] is False
    assert report["namespaces"]["shop.orders"]["extra"] == 1

    clean = lifecycle.run("backover_clean", _conf(migration_id, follow=False))
    assert clean.state == "failed"
    assert clean.tasks["verified.restore_verified"] == "failed"
    assert clean.tasks["clean.clean"] in {"upstream_failed", None}
    assert clean.tasks["stop.stop_worker"] != "success", "the worker is not stopped for an unverified restore"

    # The rehearsal report of this migration (its phases marked done: dag.test runs no other DAG).
    rehearsal = lifecycle.run(
        "backover_rehearsal",
        {**_conf(migration_id), "capture_seconds": 0},
        mark_success_pattern=r"(start|restore|clean)\.run_(start|restore|clean)",
    )
    assert rehearsal.state == "failed"
    assert rehearsal.tasks["report.write_report"] == "failed"
    written = json.loads(
        lifecycle.s3().get_bytes(lifecycle.layout(migration_id).key("reports/rehearsal.json"))
    )
    assert written["passed"] is False
    assert written["verification"]["identical"] is False
    differences = written["verification"]["differences"]
    assert differences.startswith("shop.orders:") and "1 extra" in differences, differences
    assert written["events"]["captured"] >= WRITES_BEFORE_FREEZE
    assert written["events"]["replayed"] >= WRITES_BEFORE_FREEZE
    assert written["write_freeze"]["seconds"] > 0
    assert set(written["phases"]) == {"start", "capture", "restore", "clean"}
