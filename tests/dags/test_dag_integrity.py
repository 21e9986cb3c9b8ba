"""Every DAG file parses on its own, without touching AWS, a database or a Variable, and follows the
project's DAG policy (docs, tags, retries, Params, phases as task groups, clean-up rules)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
DAG_FILES = sorted((ROOT / "dags").glob("*.py"))
LIFECYCLE = ("backover_start", "backover_restore", "backover_clean", "backover_abort")
#: Worker commands that can run for hours: their tasks defer.
LONG_COMMANDS = {"backup", "restore", "verify", "verify_live", "clean", "sync_plan", "sync_partition"}
#: Tasks that must not be retried, and why (the task's doc says so too).
NO_RETRY = {
    "verify.verify": "a difference does not go away by retrying",
    **{
        f"follow.verify_live.{step}": "a proven difference does not go away by retrying (unsettled ones had their wait)"
        for step in ("begin", "partition", "finish")
    },
    "report.write_report": "the report reads what happened; retrying changes nothing",
    "start.run_start": "a phase DAG has its own retries",
    "restore.run_restore": "a phase DAG has its own retries",
    "clean.run_clean": "a phase DAG has its own retries",
    "rehearsal.run_rehearsal": "a phase DAG has its own retries",
}


@pytest.fixture(scope="module")
def dagbag(airflow_home: Any) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(ROOT / "dags"))


@pytest.fixture(scope="module")
def dags(dagbag: Any) -> dict[str, Any]:
    assert dagbag.import_errors == {}
    return dagbag.dags


@pytest.mark.parametrize("path", [pytest.param(p, id=p.name) for p in DAG_FILES])
def test_each_file_parses_into_one_dag_named_after_it(path: Path, airflow_home: Any) -> None:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(path))
    assert bag.import_errors == {}, bag.import_errors
    assert list(bag.dags) == [path.stem]


REHEARSALS = ("backover_rehearsal", "backover_rehearsal_weekly")


def test_every_dag_of_the_lifecycle_is_there(dags: dict[str, Any]) -> None:
    assert set(dags) == {*LIFECYCLE, *REHEARSALS}


GUARD = r"""
import json, socket, sys

class TopLevelIO(Exception):
    pass

def refuse(what):
    def blocked(*args, **kwargs):
        raise TopLevelIO(f"{what} at parse time")
    return blocked

socket.socket.connect = refuse("network connection")
socket.create_connection = refuse("network connection")
import boto3, boto3.session, botocore.session, pymongo
boto3.client = boto3.resource = refuse("boto3 client")
boto3.session.Session.client = boto3.session.Session.resource = refuse("boto3 client")
botocore.session.Session.create_client = refuse("botocore client")
pymongo.MongoClient.__init__ = refuse("MongoClient")
from airflow.sdk import Variable, BaseHook
Variable.get = classmethod(refuse("Variable.get"))
BaseHook.get_connection = classmethod(refuse("connection lookup"))

from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
print(json.dumps({"errors": {k: str(v) for k, v in bag.import_errors.items()}, "dags": sorted(bag.dags)}))
"""


def _parse_guarded(folder: Path) -> dict[str, Any]:
    """Parse ``folder`` in a fresh interpreter where sockets, boto3, pymongo, Variables and Connections
    refuse to be used; returns the import errors and the DAG ids."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "plugins"), str(ROOT / "dags")])}
    done = subprocess.run(
        [sys.executable, "-c", GUARD, str(folder)],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow  # parses the DAGs in a fresh Python process
def test_parsing_touches_no_network_database_or_variable(airflow_home: Any) -> None:
    assert _parse_guarded(ROOT / "dags") == {"errors": {}, "dags": sorted(p.stem for p in DAG_FILES)}


TOP_LEVEL_IO = {
    "reads_variable": "from airflow.sdk import Variable\nVariable.get('backover')",
    "makes_boto3_client": "import boto3\nboto3.client('s3')",
    "connects_mongo": "import pymongo\npymongo.MongoClient('mongodb://127.0.0.1:9')",
}


@pytest.mark.slow  # parses a DAG in a fresh Python process
def test_the_guard_catches_top_level_io(tmp_path: Path, airflow_home: Any) -> None:
    """The check above can fail: each DAG file doing I/O at parse time is reported."""
    for name, top_level in TOP_LEVEL_IO.items():
        (tmp_path / f"{name}.py").write_text(
            f"{top_level}\nfrom airflow.sdk import DAG\nwith DAG({name!r}, schedule=None):\n    pass\n"
        )
    result = _parse_guarded(tmp_path)
    assert result["dags"] == []
    assert sorted(Path(f).stem for f in result["errors"]) == sorted(TOP_LEVEL_IO)
    assert all("at parse time" in error for error in result["errors"].values())


@pytest.mark.parametrize("dag_id", [*LIFECYCLE, "backover_rehearsal", "backover_rehearsal_weekly"])
class TestPolicy:
    def test_dag_is_documented_tagged_and_not_catching_up(self, dags: dict[str, Any], dag_id: str) -> None:
        dag = dags[dag_id]
        assert dag.doc_md and dag.doc_md.strip().startswith("### Back Over") and f"`{dag_id}`" in dag.doc_md
        assert "backover" in dag.tags
        assert dag.catchup is False
        assert dag.default_args["retries"] >= 1

    def test_every_task_is_documented_and_in_a_phase(self, dags: dict[str, Any], dag_id: str) -> None:
        for task in dags[dag_id].tasks:
            assert task.doc_md, f"{task.task_id} has no doc_md"
            assert task.task_group is not None and task.task_group.group_id, (
                f"{task.task_id} is in no phase group"
            )

    def test_retries_everywhere_except_where_documented(self, dags: dict[str, Any], dag_id: str) -> None:
        for task in dags[dag_id].tasks:
            if task.task_id in NO_RETRY:
                assert task.retries == 0
                assert (
                    "retr" in task.doc_md or "phase DAG" in NO_RETRY[task.task_id] or "report" in task.task_id
                )
            else:
                assert task.retries >= 1, f"{task.task_id} has no retries"

    def test_params_have_titles_descriptions_and_types(self, dags: dict[str, Any], dag_id: str) -> None:
        params = dags[dag_id].params
        assert "migration_id" in params and "environment" in params
        for name in params:
            param = params.get_param(name)
            assert param.description, f"param {name} has no description"
            kind = param.schema.get("type")
            kinds = (
                set(kind) - {"null"} if isinstance(kind, list) else {kind}
            )  # null: the form does not require it
            assert len(kinds) == 1 and kinds <= {"string", "array", "boolean", "integer"}, name

    def test_schedule(self, dags: dict[str, Any], dag_id: str) -> None:
        dag = dags[dag_id]
        if dag_id == "backover_rehearsal_weekly":
            assert dag.is_paused_upon_creation is True
            assert dag.schedule == "@weekly"
        elif dag_id == "backover_rehearsal":
            # no schedule, so being unpaused starts nothing; unpaused, so that a run the weekly DAG
            # triggers is not left queued
            assert dag.is_paused_upon_creation is False
            assert dag.schedule is None
        else:
            assert dag.schedule is None, "lifecycle DAGs run only when a user triggers them"

    def test_worker_commands_log_their_output(self, dags: dict[str, Any], dag_id: str) -> None:
        """No task runs SSM commands but WorkerCommandOperator, which writes the command's output into
        the task log; the long ones (backup, restore, verify, clean) wait in the triggerer."""
        from airflow.providers.amazon.aws.operators.ssm import SsmRunCommandOperator
        from airflow.sdk.definitions.mappedoperator import MappedOperator

        from backover_airflow.operators.worker import WorkerCommandOperator

        for task in dags[dag_id].tasks:
            assert not isinstance(task, SsmRunCommandOperator), task.task_id
            if isinstance(task, MappedOperator):  # the mapped copy: its operator and its fixed arguments
                assert not issubclass(task.operator_class, SsmRunCommandOperator), task.task_id
                if task.partial_kwargs.get("command") in LONG_COMMANDS:
                    assert task.partial_kwargs.get("deferrable"), f"{task.task_id} would hold worker slots"
            elif isinstance(task, WorkerCommandOperator) and task.command in LONG_COMMANDS:
                assert task.deferrable, f"{task.task_id} would hold a worker slot while it runs"


def test_lifecycle_dags_share_the_same_trigger_form(dags: dict[str, Any]) -> None:
    forms = {dag_id: dags[dag_id].params.dump() for dag_id in LIFECYCLE}
    common = {"migration_id": None, "databases": [], "dry_run": False, "environment": "backover"}
    # start and restore add the follow-mode switch, on by default; clean and abort do not need it;
    # start adds the initial sync's (copy only when MongoDB lacks the data, never drop by default)
    # and allow_missing (a database the source does not hold is refused by default)
    assert forms["backover_restore"] == {**common, "follow": True}
    assert forms["backover_start"] == {
        **common,
        "follow": True,
        "initial_sync": "auto",
        "drop_target": False,
        "sync_partition_documents": 1_000_000,
        "allow_missing": False,
    }
    assert forms["backover_clean"] == forms["backover_abort"] == common


def test_start_dag_copies_over_the_workers_before_any_replayed_write(dags: dict[str, Any]) -> None:
    """The sync group sits between the healthy replicator (T0 recorded, capture running) and the
    MongoDB backup and follow restore; its copy is one mapped task per partition, on its worker."""
    from airflow.sdk.definitions.mappedoperator import MappedOperator

    from backover_airflow.operators.sync import run_if_initial_sync
    from backover_airflow.operators.worker import WorkerCommandOperator

    dag = dags["backover_start"]
    order = [
        "capture.replicator_healthy",
        "rollback.backup_mongodb",  # before anything writes to MongoDB: the sync drops and copies
        "sync.plan",
        "sync.partitions",
        "sync.copy",
        "sync.complete",
        "follow.start_follow_restore",
    ]
    for before, after in zip(order, order[1:], strict=False):
        assert dag.get_task(before).downstream_task_ids == {after}, before
    plan = dag.get_task("sync.plan")
    assert isinstance(plan, WorkerCommandOperator) and plan.command == "sync_plan" and plan.worker is None
    copy = dag.get_task("sync.copy")
    assert isinstance(copy, MappedOperator) and copy.operator_class is WorkerCommandOperator
    assert copy.partial_kwargs["command"] == "sync_partition"
    # mapped over what the partitions task returns: one {"options": {"partition"}, "worker"} each
    (source,) = copy.iter_mapped_dependencies()
    assert source.task_id == "sync.partitions"
    assert copy.map_index_template == "{{ task.options['partition'] }} on {{ task.worker }}"
    assert {"options", "worker"} <= set(WorkerCommandOperator.template_fields)
    for task_id in ("sync.plan", "sync.partitions", "sync.copy", "sync.complete"):
        task = dag.get_task(task_id)
        hook = (
            task.partial_kwargs.get("pre_execute")
            if isinstance(task, MappedOperator)
            else task._pre_execute_hook
        )
        assert hook is run_if_initial_sync, f"{task_id} does not skip itself with initial_sync never"
    params = dag.params
    assert params.get_param("initial_sync").schema["enum"] == ["auto", "always", "never"]
    assert params.get_param("sync_partition_documents").schema["minimum"] == 1
    for name in ("initial_sync", "drop_target", "sync_partition_documents"):
        assert f"*{name}*" in dag.doc_md, f"the DAG's doc does not explain {name}"


def test_restore_dag_shape(dags: dict[str, Any]) -> None:
    dag = dags["backover_restore"]
    order = [
        "check.preflight",
        "check.stop_if_dry_run",
        "follow.follow_restore_healthy",  # no freeze while the follow restore is not running
        "follow.backup_documentdb.begin",
        "follow.backup_documentdb.partitions",
        "follow.backup_documentdb.partition",
        "follow.backup_documentdb.finish",
        "follow.verify_live.begin",
        "follow.verify_live.partitions",
        "follow.verify_live.partition",
        "follow.verify_live.finish",
        "freeze.restore_lambda",
        "freeze.replication_drained",
    ]
    for before, after in zip(order, order[1:], strict=False):
        assert after in dag.get_task(before).downstream_task_ids
    assert dag.get_task("freeze.replication_drained").downstream_task_ids == {
        "backup.backup_documentdb.begin",
        "backup.backup_mongodb",
    }
    # with follow on, the DocumentDB backup taken before the freeze is sealed after the freeze window,
    # side by side with the release of the TTL indexes an initial sync held back
    for after_window in ("backup.seal_documentdb", "verify.release_ttl"):
        assert dag.get_task(after_window).upstream_task_ids == {"verify.freeze_window"}
        assert not dag.get_task(after_window).downstream_task_ids
    # before the freeze: DocumentDB's backup, then the live verification pass, right before it
    assert dag.get_task("follow.backup_documentdb.finish").downstream_task_ids == {"follow.verify_live.begin"}
    assert dag.get_task("follow.verify_live.finish").downstream_task_ids == {"freeze.restore_lambda"}
    for step in ("begin", "partition", "finish"):
        task = dag.get_task(f"follow.verify_live.{step}")
        retries = task.partial_kwargs.get("retries") if step == "partition" else task.retries
        assert retries == 0, step
    assert dag.get_task("verify.freeze_window").upstream_task_ids == {"verify.verify"}
    assert dag.get_task("restore.restore").upstream_task_ids == {
        "backup.backup_documentdb.finish",
        "backup.backup_mongodb",
    }, "backups run in parallel, then restore"
    assert dag.get_task("verify.verify").upstream_task_ids == {"restore.restore_completed"}


def test_clean_stops_the_worker_only_after_a_verified_restore(dags: dict[str, Any]) -> None:
    stop = dags["backover_clean"].get_task("stop.stop_worker")
    assert stop.is_teardown
    assert (
        str(stop.trigger_rule.value if hasattr(stop.trigger_rule, "value") else stop.trigger_rule)
        == "all_done_setup_success"
    )
    assert "verified.restore_verified" in stop.upstream_task_ids
    verified = dags["backover_clean"].get_task("verified.restore_verified")
    assert verified.require_identical is True


def test_dry_run_gate_skips_everything_after_the_checks(dags: dict[str, Any]) -> None:
    for dag_id in LIFECYCLE:
        gate = dags[dag_id].get_task("check.stop_if_dry_run")
        assert gate.ignore_downstream_trigger_rules is True
        assert gate.python_callable({"dry_run": True}) is False
        assert gate.python_callable({"dry_run": False}) is True


def _template_text(value: Any) -> str:
    """Every string a template field holds (nested in lists and dicts too)."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return " ".join(_template_text(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return " ".join(_template_text(v) for v in value)
    return ""


def test_no_task_reads_the_variable_through_a_template(dags: dict[str, Any]) -> None:
    """One configuration path: the environment is read by the tasks through the validated config,
    never through raw Jinja (which skipped the defaults and the checks)."""
    for dag in dags.values():
        for task in dag.tasks:
            for name in task.template_fields:
                assert "var." not in _template_text(getattr(task, name, None)), f"{task.task_id}.{name}"


#: Variables every task must refuse, and what the one-line reason names.
BAD_VARIABLES = [
    pytest.param({"prefix": "a//b"}, "'prefix'", id="bad-prefix"),
    pytest.param({"poll_interval_seconds": "fast"}, "'poll_interval_seconds'", id="poll-not-a-number"),
    pytest.param(
        {"heartbeat_max_age_seconds": -5},
        "'heartbeat_max_age_seconds' must be positive",
        id="negative-heartbeat-age",
    ),
    pytest.param({"worker_instance_id": ""}, "lacks 'worker_instance_id'", id="no-worker"),
]


@pytest.mark.parametrize(("bad", "reason"), BAD_VARIABLES)
def test_a_bad_variable_fails_every_lifecycle_task_at_once_with_one_reason(
    bad: dict[str, Any], reason: str, dags: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sensors, EC2 tasks and operators judge the Variable alike: each fails without retries
    (AirflowFailException) and with the same one line, before looking at AWS or a database."""
    from airflow.providers.common.compat.sdk import AirflowFailException
    from airflow.providers.standard.operators.python import ShortCircuitOperator
    from airflow.sdk.definitions.mappedoperator import MappedOperator
    from airflow.sdk.execution_time.context import VariableAccessor

    variable = {
        "bucket": "backover-prod",
        "worker_instance_id": "i-0abc",
        "app_user": "orders_app",
        "lambda_names": {"start": "s", "restore": "r", "clean": "c"},
        "secret_ids": {"documentdb": "d", "mongodb": "m", "app_user": "a"},
        **bad,
    }
    monkeypatch.setenv("AIRFLOW_VAR_BACKOVER", json.dumps(variable))
    context = {
        "params": {"migration_id": "m-7", "databases": ["shop"], "environment": "backover"},
        "var": {
            "json": VariableAccessor(deserialize_json=True),
            "value": VariableAccessor(deserialize_json=False),
        },
    }
    reasons: dict[str, str] = {}
    for dag_id in LIFECYCLE:
        for task in dags[dag_id].tasks:
            if isinstance(task, ShortCircuitOperator):
                continue  # the dry-run gate reads only the Params
            if isinstance(task, MappedOperator):  # one of its task instances, as the mapping makes it
                task = task.unmap({"options": {"partition": "shop.orders.0000"}, "worker": "i-0abc"})
            task = task.prepare_for_execution()  # a copy, as a task run gets
            task.render_template_fields(context)
            with pytest.raises(AirflowFailException) as failure:
                task.execute(context)
            reasons[f"{dag_id}:{task.task_id}"] = str(failure.value)
    assert len(set(reasons.values())) == 1, reasons
    line = next(iter(reasons.values()))
    assert reason in line and "\n" not in line


def test_the_weekly_rehearsal_only_schedules_backover_rehearsal_on_its_own_environment(
    dags: dict[str, Any],
) -> None:
    from airflow.providers.common.compat.sdk import AirflowSkipException

    from backover_airflow import dag_defaults as d

    weekly = dags["backover_rehearsal_weekly"]
    assert weekly.get_task("rehearsal.run_rehearsal").trigger_dag_id == "backover_rehearsal"
    assert weekly.get_task("check.scheduled_only").downstream_task_ids == {"rehearsal.run_rehearsal"}
    from airflow.sdk.api.datamodels._generated import DagRunType  # what a task's dag_run holds

    with pytest.raises(AirflowSkipException, match="trigger backover_rehearsal"):
        d.scheduled_only(types.SimpleNamespace(run_type=DagRunType.MANUAL))
    d.scheduled_only(types.SimpleNamespace(run_type=DagRunType.SCHEDULED))  # str() of it is not "scheduled"
    assert dags["backover_rehearsal"].params["environment"] == "backover_rehearsal"
