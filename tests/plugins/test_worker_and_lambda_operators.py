"""The operators that act: ``backover`` on the worker through SSM, the Lambdas, against the runner.

The local runner executes SSM Run Command and Lambda Invoke for real (a shell on this machine, a
handler in a subprocess). For the SSM tests ``backover_command`` is a small shell script standing in
for ``backover`` (the real sub-commands are exercised end to end in tests/dags): it prints its
arguments and a progress line, and exits like ``backover`` does (0 done, 1 failed, 2 bad usage).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from migration_states import environment, task_log

FAKE_BACKOVER = """\
echo "backover $*"
echo "progress: 3 of 3 segments applied" >&2
case "$1" in
  verify) echo "verification found differences in shop.orders" >&2; exit 1 ;;
  abort) echo "no --migration-id: pass --migration-id or set BACKOVER_MIGRATION_ID" >&2; exit 2 ;;
esac
echo "done"
"""


@pytest.fixture(autouse=True)
def _airflow(airflow_aws_connection: str) -> None:
    """Airflow configured, ``aws_default`` routing SSM and Lambda to the runner and EC2/S3 to moto."""


@pytest.fixture
def worker_env(ec2_instances: Any, set_environment: Any, tmp_path: Path) -> dict[str, Any]:
    script = tmp_path / "fake-backover.sh"
    script.write_text(FAKE_BACKOVER, encoding="utf-8")
    env = environment("sandbox-bucket", ec2_instances.running, backover_command=f"sh {script}")
    set_environment(env)
    return env


PARAMS = {"migration_id": "orders-2026", "databases": [], "dry_run": False, "environment": "backover"}


def _run(command: str, **kwargs: Any) -> Any:
    from backover_airflow.operators.worker import WorkerCommandOperator

    return WorkerCommandOperator(task_id=command, command=command, **kwargs).execute({"params": PARAMS})


def test_ssm_task_log_shows_the_command_and_its_output(worker_env: dict[str, Any],
                                                      capfd: pytest.CaptureFixture[str]) -> None:
    task_log(capfd)
    result = _run("restore")
    log = task_log(capfd)
    line = ("restore --target-secret-id sb/mongo-master --bucket sandbox-bucket --prefix migrations "
            "--migration-id orders-2026")
    assert f"Running on worker {worker_env['worker_instance_id']}:" in log
    assert f"| backover {line}" in log, log
    assert "| progress: 3 of 3 segments applied" in log
    assert "| done" in log
    assert result["status"] == "Success" and result["exit_code"] == 0
    assert result["instance_id"] == worker_env["worker_instance_id"]


def test_backup_options_reach_the_command_line(worker_env: dict[str, Any], capfd: pytest.CaptureFixture[str]) -> None:
    task_log(capfd)
    _run("backup", options={"label": "documentdb"})
    assert "| backover backup --secret-id sb/docdb-master --label documentdb --bucket sandbox-bucket" in task_log(capfd)


def test_a_failed_command_fails_the_task_with_its_last_line(worker_env: dict[str, Any],
                                                           capfd: pytest.CaptureFixture[str]) -> None:
    from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException

    task_log(capfd)
    with pytest.raises(AirflowException) as failure:
        _run("verify")
    assert not isinstance(failure.value, AirflowFailException), "exit 1 may be retried"
    assert "backover verify failed" in str(failure.value)
    assert "(exit 1): verification found differences in shop.orders" in str(failure.value)
    assert "| verification found differences in shop.orders" in task_log(capfd), "output is logged on failure too"


def test_bad_usage_fails_without_retry(worker_env: dict[str, Any]) -> None:
    from airflow.providers.common.compat.sdk import AirflowFailException

    with pytest.raises(AirflowFailException, match=r"exit 2\): no --migration-id"):
        _run("abort")


def test_an_invalid_environment_fails_before_anything_runs(set_environment: Any) -> None:
    from airflow.providers.common.compat.sdk import AirflowFailException

    set_environment({"bucket": "b"})
    with pytest.raises(AirflowFailException, match="Variable 'backover' lacks 'worker_instance_id'"):
        _run("restore")


def test_a_stopped_worker_is_reported(ec2_instances: Any, set_environment: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker that is not running never accepts the command: SSM's InvalidInstanceId, after the wait."""
    from botocore.exceptions import ClientError

    from backover_airflow.operators import worker

    monkeypatch.setattr(worker, "AGENT_WAIT_SECONDS", 0)
    set_environment(environment("sandbox-bucket", ec2_instances.stopped, backover_command="true"))
    with pytest.raises(ClientError, match="InvalidInstanceId"):
        _run("restore")


def test_lambda_gets_the_run_event_with_secret_ids_only(runner: Any, set_environment: Any, ec2_instances: Any,
                                                        capfd: pytest.CaptureFixture[str]) -> None:
    from backover_airflow.operators.lambda_function import MigrationLambdaOperator

    runner.registry.put("echo-start", {"handler": "backover_sandbox.probe:handler"})
    env = environment("sandbox-bucket", ec2_instances.running,
                      lambda_names={"start": "echo-start", "restore": "r", "clean": "c"})
    set_environment(env)
    task_log(capfd)
    result = MigrationLambdaOperator(task_id="start_lambda", lambda_name="start").execute(
        {"params": {**PARAMS, "databases": ["shop"]}}
    )
    assert result["echo"] == {
        "migration_id": "orders-2026",
        "bucket": "sandbox-bucket",
        "prefix": "migrations",
        "master_secret_id": "sb/docdb-master",
        "app_user": "orders_app",
        "app_secret_id": "sb/app",
        "databases": ["shop"],
    }
    log = task_log(capfd)
    assert "start Lambda answered" in log
    assert json.dumps(result["echo"]["databases"]) in log
