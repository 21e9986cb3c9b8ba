"""One configuration path in Airflow: every task resolves the validated environment at run time.

The sensors and the EC2 worker tasks read the Variable the way the operators do
(``backover_airflow.config``), against moto:

* the unchanged ``backover_clean`` DAG, run with ``DAG.test()`` and a Variable that names no
  ``prefix``, works on the very migration that a Lambda event without ``prefix`` addresses and that
  ``backover status`` without ``--prefix`` finds (one default prefix everywhere);
* a Variable the operators refuse fails every sensor and EC2 task at once (no retries) with the
  operators' own one-line reason;
* a deferred sensor hands the resolved location, interval and heartbeat age to its trigger.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest
from migration_states import F, Migration, environment

from backover import defaults
from backover.lifecycle.events import LifecycleEvent
from backover.s3objects import S3Objects

ROOT = Path(__file__).resolve().parents[2]

#: Tasks that need the stand-ins or the runner's Lambdas and worker commands; their effect is
#: written into S3 by the test instead.
NEEDS_DATABASES = r"check\.preflight|clean\.clean_lambda|clean\.clean"


def _stopped_worker() -> str:
    """A fresh EC2 instance in moto, stopped (its own, so no other test sees it change)."""
    ec2 = boto3.client("ec2")
    image_id = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    instance = ec2.run_instances(ImageId=image_id, MinCount=1, MaxCount=1, InstanceType="t3.micro")
    instance_id = instance["Instances"][0]["InstanceId"]
    ec2.stop_instances(InstanceIds=[instance_id])
    return instance_id


def _instance_state(instance_id: str) -> str:
    found = boto3.client("ec2").describe_instances(InstanceIds=[instance_id])
    return found["Reservations"][0]["Instances"][0]["State"]["Name"]


def _state(state: Any) -> str | None:
    return None if state is None else str(getattr(state, "value", state))


def _run_dag(dags_folder: Path, dag_id: str, conf: dict[str, Any]) -> tuple[str, dict[str, str | None]]:
    """Run the unchanged DAG file (copied into the DAGs folder, as ``DAG.test()`` needs)."""
    from airflow.utils.session import create_session

    path = dags_folder / f"{dag_id}.py"
    shutil.copy(ROOT / "dags" / f"{dag_id}.py", path)
    spec = importlib.util.spec_from_file_location(f"defaults_{dag_id}_{uuid.uuid4().hex}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    dag_run = module.dag.test(run_conf=conf, mark_success_pattern=NEEDS_DATABASES)
    with create_session() as session:
        tasks = {ti.task_id: _state(ti.state) for ti in dag_run.get_task_instances(session=session)}
    return str(_state(dag_run.state)), tasks


def _cli_status(bucket: str, migration_id: str, moto: str) -> dict[str, Any]:
    """``backover status`` as a user types it, without ``--prefix`` or ``BACKOVER_PREFIX``."""
    env = {k: v for k, v in os.environ.items() if k != "BACKOVER_PREFIX"}
    env["AWS_ENDPOINT_URL"] = moto
    done = subprocess.run(
        [sys.executable, "-m", "backover", "status", "--bucket", bucket, "--migration-id", migration_id],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.slow  # runs a DAG with airflow dags test
def test_a_variable_without_prefix_runs_the_dag_on_the_migration_the_cli_and_the_lambdas_use(
    airflow_home: Any,
    airflow_aws_connection: str,
    bucket: str,
    aws_endpoints: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    migration_id = f"no-prefix-{uuid.uuid4().hex[:6]}"
    # Where a start/restore/clean Lambda whose event names no prefix keeps this migration's files.
    event = LifecycleEvent.from_dict(
        {
            "migration_id": migration_id,
            "bucket": bucket,
            "databases": ["shop"],
            "master_secret_id": "sb/docdb-master",
            "app_user": "orders_app",
        }
    )
    m = Migration(layout=event.layout(), s3=S3Objects(bucket))
    # A restore completed, verified identical after the freeze and the drain; then cleaned up.
    m.start()
    m.freeze()
    m.replicator("drained", last=F, drained_until=F)
    m.restore("completed")
    m.verify(True)
    m.clean()

    found = _cli_status(bucket, migration_id, aws_endpoints)
    assert found["location"] == f"s3://{bucket}/{event.layout().root}"
    assert found["replicator"]["state"] == "drained", "the command line finds the migration the Lambda wrote"

    worker = _stopped_worker()
    variable = environment(bucket, worker, databases=["shop"])
    del variable["prefix"]
    monkeypatch.setenv("AIRFLOW_VAR_BACKOVER", json.dumps(variable))

    state, tasks = _run_dag(airflow_home.dags_folder, "backover_clean", {"migration_id": migration_id})

    assert state == "success", tasks
    assert tasks["verified.restore_verified"] == "success", "the sensor found the restore verified"
    assert tasks["clean.clean_completed"] == "success", "the sensor found the clean-up recorded"
    assert tasks["worker.start_worker"] == tasks["worker.worker_running"] == "success"
    assert tasks["stop.stop_worker"] == "success"
    assert _instance_state(worker) == "stopped", "the worker the Variable names was started and stopped"


@pytest.fixture
def _airflow(airflow_home: Any) -> None:
    """Airflow is configured before any plugin module is imported."""


#: Variables the operators refuse, and the field their one-line reason names.
BAD_VARIABLES = [
    pytest.param({"prefix": "a//b"}, "'prefix'", id="bad-prefix"),
    pytest.param(
        {"poll_interval_seconds": "fast"}, "'poll_interval_seconds' must be a int", id="poll-not-int"
    ),
    pytest.param(
        {"heartbeat_max_age_seconds": 0}, "'heartbeat_max_age_seconds' must be positive", id="heartbeat-zero"
    ),
    pytest.param({"bucket": None}, "lacks 'bucket'", id="no-bucket"),
    pytest.param({"worker_instance_id": 7}, "'worker_instance_id' must be a str", id="worker-not-str"),
]


def _watching_tasks() -> list[Any]:
    """One of each task that reads the environment besides the operators."""
    from backover_airflow.operators.ec2 import WorkerStartOperator, WorkerStopOperator
    from backover_airflow.sensors.clean import CleanCompletedSensor
    from backover_airflow.sensors.ec2 import WorkerStateSensor
    from backover_airflow.sensors.replication import (
        CaptureWindowSensor,
        ReplicationDrainedSensor,
        ReplicatorHealthySensor,
    )
    from backover_airflow.sensors.restore import RestoreCompletedSensor

    return [
        ReplicatorHealthySensor(task_id="healthy", aws_conn_id=None, timeout=60),
        ReplicationDrainedSensor(task_id="drained", aws_conn_id=None, timeout=60, deferrable=True),
        RestoreCompletedSensor(task_id="verified", aws_conn_id=None, require_identical=True, timeout=60),
        CleanCompletedSensor(task_id="cleaned", aws_conn_id=None, timeout=60),
        CaptureWindowSensor(task_id="capture", aws_conn_id=None, min_seconds=0, timeout=60),
        WorkerStartOperator(task_id="start_worker", aws_conn_id=None, check_interval=1),
        WorkerStateSensor(task_id="worker_running", aws_conn_id=None, target_state="running", timeout=60),
        WorkerStopOperator(task_id="stop_worker", aws_conn_id=None, check_interval=1),
    ]


@pytest.mark.parametrize(("bad", "reason"), BAD_VARIABLES)
def test_a_bad_variable_fails_every_task_at_once_with_the_operators_reason(
    bad: dict[str, Any],
    reason: str,
    _airflow: None,
    bucket: str,
    migration: Migration,
    set_environment: Any,
) -> None:
    from airflow.providers.common.compat.sdk import AirflowFailException

    from backover_airflow.operators.lambda_function import MigrationLambdaOperator

    set_environment({**environment(bucket, "i-0123456789abcdef0"), **bad})
    context = {"params": {**migration.context["params"], "databases": ["shop"]}}
    with pytest.raises(AirflowFailException) as refused:
        MigrationLambdaOperator(task_id="start_lambda", lambda_name="start").execute(context)
    expected = str(refused.value)
    assert reason in expected and "\n" not in expected

    for task in _watching_tasks():
        with pytest.raises(AirflowFailException) as failure:  # AirflowFailException: no retries
            task.execute(context)
        assert str(failure.value) == expected, task.task_id


def test_a_deferred_sensor_hands_the_resolved_environment_to_its_trigger(
    _airflow: None,
    migration: Migration,
    set_environment: Any,
) -> None:
    """No prefix, interval or heartbeat age in the DAG or the Variable: the trigger gets the defaults."""
    from airflow.providers.common.compat.sdk import TaskDeferred

    from backover_airflow import config
    from backover_airflow.sensors.replication import ReplicatorHealthySensor

    variable = environment(migration.layout.bucket, "i-1")
    for optional in ("prefix", "poll_interval_seconds"):
        del variable[optional]
    set_environment(variable)
    sensor = ReplicatorHealthySensor(task_id="healthy", aws_conn_id=None, deferrable=True, timeout=60)
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute(migration.context)
    _, kwargs = deferred.value.trigger.serialize()
    assert (kwargs["bucket"], kwargs["prefix"], kwargs["migration_id"]) == (
        migration.layout.bucket,
        defaults.PREFIX,
        migration.layout.migration_id,
    )
    assert kwargs["poke_interval"] == config.POLL_INTERVAL_SECONDS
    assert kwargs["max_heartbeat_age_seconds"] == config.HEARTBEAT_MAX_AGE_SECONDS
