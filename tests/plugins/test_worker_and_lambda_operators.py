"""The operators that act: ``backover`` on the worker through SSM, the Lambdas, against the runner.

The local runner executes SSM Run Command and Lambda Invoke for real (a shell on this machine, a
handler in a subprocess). For the SSM tests ``backover_command`` is a small shell script standing in
for ``backover`` (the real sub-commands are exercised end to end in tests/dags): it prints its
arguments and a progress line, and exits like ``backover`` does (0 done, 1 failed, 2 bad usage);
``replicate`` runs on (it sleeps) until cancelled.

``deferrable=True`` hands the wait to :class:`~backover_airflow.triggers.worker.WorkerCommandTrigger`,
run here to its event with asyncio against the runner; its event comes back to ``execute_complete``.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
from migration_states import environment, task_log

FAKE_BACKOVER = """\
echo "backover $*"
echo "progress: 3 of 3 segments applied" >&2
case "$1" in
  replicate) echo "capturing"; sleep 60 ;;
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


def _operator(command: str, **kwargs: Any) -> Any:
    from backover_airflow.operators.worker import WorkerCommandOperator

    return WorkerCommandOperator(task_id=command, command=command, **kwargs)


def _run(command: str, **kwargs: Any) -> Any:
    return _operator(command, **kwargs).execute({"params": PARAMS})


def _deferred(operator: Any) -> Any:
    """Execute a deferrable operator; the trigger it deferred to (it must defer, not wait)."""
    from airflow.providers.common.compat.sdk import TaskDeferred

    with pytest.raises(TaskDeferred) as deferred:
        operator.execute({"params": PARAMS})
    assert deferred.value.method_name == "execute_complete"
    return deferred.value.trigger


def _fire(trigger: Any) -> dict[str, Any]:
    """Run the trigger the way the triggerer does, to its first event; the event's payload."""
    return asyncio.run(asyncio.wait_for(anext(trigger.run()), 60)).payload


def _final_status(runner: Any, command_id: str, instance_id: str) -> str:
    """The invocation's status once SSM (the runner) reports it ended."""
    import boto3

    ssm = boto3.client("ssm", endpoint_url=runner.url, region_name="us-east-1")
    deadline = time.monotonic() + 30
    while True:
        status = ssm.get_command_invocation(CommandId=command_id, InstanceId=instance_id)["Status"]
        if status in {"Success", "Failed", "Cancelled", "TimedOut"} or time.monotonic() > deadline:
            return str(status)
        time.sleep(0.2)


def test_ssm_task_log_shows_the_command_and_its_output(
    worker_env: dict[str, Any], capfd: pytest.CaptureFixture[str]
) -> None:
    task_log(capfd)
    result = _run("restore")
    log = task_log(capfd)
    line = (
        "restore --wait --target-secret-id sb/mongo-master --bucket sandbox-bucket --prefix migrations "
        "--migration-id orders-2026"
    )
    assert f"Running on worker {worker_env['worker_instance_id']}:" in log
    assert f"| backover {line}" in log, log
    assert "| progress: 3 of 3 segments applied" in log
    assert "| done" in log
    assert result["status"] == "Success" and result["exit_code"] == 0
    assert result["instance_id"] == worker_env["worker_instance_id"]


def test_backup_options_reach_the_command_line(
    worker_env: dict[str, Any], capfd: pytest.CaptureFixture[str]
) -> None:
    task_log(capfd)
    _run("backup", options={"label": "documentdb"})
    assert (
        "| backover backup --secret-id sb/docdb-master --label documentdb --bucket sandbox-bucket"
        in task_log(capfd)
    )


def test_a_failed_command_fails_the_task_with_its_last_line(
    worker_env: dict[str, Any], capfd: pytest.CaptureFixture[str]
) -> None:
    from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException

    task_log(capfd)
    with pytest.raises(AirflowException) as failure:
        _run("verify")
    assert not isinstance(failure.value, AirflowFailException), "exit 1 may be retried"
    assert "backover verify failed" in str(failure.value)
    assert "(exit 1): verification found differences in shop.orders" in str(failure.value)
    assert "| verification found differences in shop.orders" in task_log(capfd), (
        "output is logged on failure too"
    )


def test_bad_usage_fails_without_retry(worker_env: dict[str, Any]) -> None:
    from airflow.providers.common.compat.sdk import AirflowFailException

    with pytest.raises(AirflowFailException, match=r"exit 2\): no --migration-id"):
        _run("abort")


def test_an_invalid_environment_fails_before_anything_runs(set_environment: Any) -> None:
    from airflow.providers.common.compat.sdk import AirflowFailException

    set_environment({"bucket": "b"})
    with pytest.raises(AirflowFailException, match="Variable 'backover' lacks 'worker_instance_id'"):
        _run("restore")


def test_a_partitions_copy_runs_on_the_worker_it_was_given(
    worker_env: dict[str, Any], ec2_instances: Any, runner: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    """The mapped copy (``worker`` from the partitions task): the command goes to that worker, its
    output is in the task log, and SSM's comment names the migration and the partition."""
    import boto3

    task_log(capfd)
    result = _run(
        "sync_partition", options={"partition": "shop.orders.0001"}, worker=ec2_instances.other_running
    )
    assert result["status"] == "Success" and result["instance_id"] == ec2_instances.other_running
    assert ec2_instances.other_running != worker_env["worker_instance_id"]
    log = task_log(capfd)
    assert f"Running on worker {ec2_instances.other_running}:" in log
    assert "| backover sync --partition shop.orders.0001 --source-secret-id sb/docdb-master" in log, log
    ssm = boto3.client("ssm", endpoint_url=runner.url, region_name="us-east-1")
    sent = ssm.list_commands(CommandId=result["command_id"])["Commands"][0]
    assert sent["Comment"] == "backover sync --partition orders-2026 shop.orders.0001"
    assert sent["InstanceIds"] == [ec2_instances.other_running]


def test_a_stopped_worker_is_reported(
    ec2_instances: Any, set_environment: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker that is not running never accepts the command: SSM's InvalidInstanceId, after the wait."""
    from botocore.exceptions import ClientError

    from backover_airflow.operators import worker

    monkeypatch.setattr(worker, "AGENT_WAIT_SECONDS", 0)
    set_environment(environment("sandbox-bucket", ec2_instances.stopped, backover_command="true"))
    with pytest.raises(ClientError, match="InvalidInstanceId"):
        _run("restore")


def test_deferrable_task_sends_the_command_and_defers_to_the_worker_trigger(
    worker_env: dict[str, Any], runner: Any
) -> None:
    """A long command (here one that runs for a minute) holds no worker slot: the task defers at once."""
    from airflow.sdk._shared.module_loading import import_string

    from backover_airflow.triggers.worker import WorkerCommandTrigger

    started = time.monotonic()
    trigger = _deferred(_operator("replicate", deferrable=True, waiter_max_attempts=7))
    assert time.monotonic() - started < 20, "the task waited for the command instead of deferring"
    assert isinstance(trigger, WorkerCommandTrigger)
    path, kwargs = trigger.serialize()
    assert import_string(path)(**kwargs).serialize() == (path, kwargs), "the triggerer rebuilds it from this"
    assert kwargs["instance_id"] == worker_env["worker_instance_id"]
    assert kwargs["waiter_delay"] == worker_env["poll_interval_seconds"]
    assert kwargs["waiter_max_attempts"] == 7
    assert kwargs["aws_conn_id"] == "aws_default"
    # Killing the deferred task (mark failed, clear) runs the trigger's on_kill: the command stops.
    asyncio.run(trigger.on_kill())
    assert _final_status(runner, kwargs["command_id"], kwargs["instance_id"]) == "Cancelled"


def test_default_wait_limit_outlasts_the_command_timeout(
    worker_env: dict[str, Any], set_environment: Any
) -> None:
    """Unless told otherwise, the wait gives SSM time to time the command out itself."""
    set_environment({**worker_env, "poll_interval_seconds": 30, "command_timeout_seconds": 7200})
    trigger = _deferred(_operator("restore", deferrable=True))
    assert trigger.waiter_delay == 30
    assert trigger.waiter_delay * trigger.waiter_max_attempts > 7200 + 3600, (
        "SSM's delivery + execution timeout"
    )


@pytest.mark.parametrize(
    ("command", "status", "exit_code", "reason"),
    [
        pytest.param("restore", "Success", 0, "", id="success"),
        pytest.param("verify", "Failed", 1, "verification found differences in shop.orders", id="exit-1"),
        pytest.param("abort", "Failed", 2, "no --migration-id", id="exit-2"),
    ],
)
def test_deferred_command_ends_in_execute_complete_with_its_output(
    worker_env: dict[str, Any],
    capfd: pytest.CaptureFixture[str],
    command: str,
    status: str,
    exit_code: int,
    reason: str,
) -> None:
    """The trigger runs to the end against the runner (streaming the output into the log);
    execute_complete decides."""
    from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException

    operator = _operator(command, deferrable=True)
    task_log(capfd)
    event = _fire(_deferred(operator))
    assert event["status"] == "ended", event
    assert event["invocation"]["Status"] == status and event["invocation"]["ResponseCode"] == exit_code
    resumed = _operator(command, deferrable=True)  # the task resumes in a new process: a new operator
    if status == "Success":
        result = resumed.execute_complete({}, event)
        assert result["status"] == "Success" and result["exit_code"] == 0
        assert result["instance_id"] == worker_env["worker_instance_id"]
    else:
        with pytest.raises(AirflowException) as failure:
            resumed.execute_complete({}, event)
        assert f"(exit {exit_code}): {reason}" in str(failure.value)
        assert isinstance(failure.value, AirflowFailException) is (exit_code == 2), (
            "only exit 2 is not retried"
        )
    log = task_log(capfd)
    assert f"| backover {command} " in log, log
    assert "progress: 3 of 3 segments applied" in log


@pytest.mark.parametrize("deferrable", [pytest.param(False, id="in-slot"), pytest.param(True, id="deferred")])
def test_wait_limit_reached_fails_in_one_line_and_cancels_the_command(
    worker_env: dict[str, Any],
    runner: Any,
    deferrable: bool,
) -> None:
    from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException

    operator = _operator("replicate", deferrable=deferrable, waiter_delay=1, waiter_max_attempts=2)
    started = time.monotonic()
    with pytest.raises(AirflowException) as failure:
        if deferrable:
            operator.execute_complete({}, _fire(_deferred(operator)))
        else:
            operator.execute({"params": PARAMS})
    assert time.monotonic() - started < 30, "the limit was not honoured"
    message = str(failure.value)
    assert not isinstance(failure.value, AirflowFailException), "a retry may succeed"
    assert "\n" not in message
    assert re.search(r"backover replicate still (Pending|InProgress) on ", message), message
    assert "after 2 looks 1 s apart (waiter_max_attempts)" in message, message
    command_id = operator._command_id
    assert f"SSM command {command_id} cancelled" in message
    assert _final_status(runner, command_id, worker_env["worker_instance_id"]) == "Cancelled"


@pytest.mark.slow  # the invocation starts a Python process (the runner)
def test_lambda_gets_the_run_event_with_secret_ids_only(
    runner: Any, set_environment: Any, ec2_instances: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    from backover_airflow.operators.lambda_function import MigrationLambdaOperator

    runner.registry.put("echo-start", {"handler": "backover_sandbox.probe:handler"})
    env = environment(
        "sandbox-bucket",
        ec2_instances.running,
        lambda_names={"start": "echo-start", "restore": "r", "clean": "c"},
    )
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


@pytest.mark.slow  # the invocation starts a Python process (the runner)
def test_a_lambda_refusal_fails_at_once_with_its_reason_first_and_the_log_tail_once(
    runner: Any,
    moto_server: str,
    bucket: str,
    set_environment: Any,
    ec2_instances: Any,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """The real start Lambda on a migration id that was aborted: a UsageError no retry changes.
    The task must not be retried (``AirflowFailException``), its first error line is the Lambda's
    one-line reason, and the log tail shows once, decoded, without the response's base64 dumps."""
    from airflow.providers.common.compat.sdk import AirflowFailException

    from backover.layout import MigrationLayout
    from backover.s3objects import S3Objects
    from backover_airflow.operators.lambda_function import MigrationLambdaOperator

    root = Path(__file__).resolve().parents[2]
    environment_of_the_function = {
        "AWS_ENDPOINT_URL": moto_server,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    runner.registry.put(
        "aborted-start",
        {
            "handler": f"{root / 'lambdas' / 'start' / 'handler.py'}:handler",
            "environment": environment_of_the_function,
        },
    )
    env = environment(
        bucket, ec2_instances.running, lambda_names={"start": "aborted-start", "restore": "r", "clean": "c"}
    )
    set_environment(env)
    layout = MigrationLayout(bucket, env["prefix"], "orders-2026")
    S3Objects(bucket).put_json(
        layout.stop_request, {"requested_at": "2026-01-01T00:00:00Z", "reason": "abort"}
    )
    task_log(capfd)
    with pytest.raises(AirflowFailException) as refused:
        MigrationLambdaOperator(task_id="start_lambda", lambda_name="start").execute(
            {"params": {**PARAMS, "databases": ["shop"]}}
        )
    reason = f"migration 'orders-2026' was aborted ({layout.stop_request}); start a new migration id"
    assert str(refused.value) == f"start Lambda refused (UsageError, not retried): {reason}"
    log = task_log(capfd)
    assert log.index(str(refused.value)) < log.index("The end of the start Lambda's log")
    assert log.count(f"[ERROR] UsageError: {reason}") == 1  # the decoded tail, once
    assert "ResponseMetadata" not in log and "x-amz-log-result" not in log  # no base64 dumps


@pytest.mark.slow  # the invocation starts a Python process (the runner)
def test_a_lambda_that_cannot_reach_documentdb_fails_to_be_retried_not_for_good(
    runner: Any,
    moto_server: str,
    bucket: str,
    set_environment: Any,
    ec2_instances: Any,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """A timeout or a failover is not the event's fault: the real start Lambda against a DocumentDB
    nobody listens on answers errorType JobFailed, and the task fails so that Airflow retries it
    (``AirflowException``, not ``AirflowFailException``)."""
    import socket

    import boto3
    from airflow.providers.common.compat.sdk import AirflowFailException

    from backover_airflow.operators.lambda_function import MigrationLambdaOperator
    from backover_sandbox.seed import master_secret

    with socket.socket() as free:  # a port nobody listens on once it is closed
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    secrets = boto3.client("secretsmanager", endpoint_url=moto_server, region_name="us-east-1")
    secret_id = f"unreachable-{port}"
    secrets.create_secret(
        Name=secret_id, SecretString=json.dumps(master_secret("documentdb", "127.0.0.1", port, "x"))
    )
    root = Path(__file__).resolve().parents[2]
    runner.registry.put(
        "unreachable-start",
        {
            "handler": f"{root / 'lambdas' / 'start' / 'handler.py'}:handler",
            "timeout": 60,  # the driver gives up on the server after 10 s; the runner's default is 3 s
            "environment": {
                "AWS_ENDPOINT_URL": moto_server,
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": "us-east-1",
            },
        },
    )
    env = environment(
        bucket,
        ec2_instances.running,
        lambda_names={"start": "unreachable-start", "restore": "r", "clean": "c"},
    )
    env["secret_ids"] = {**env["secret_ids"], "documentdb": secret_id}
    set_environment(env)
    task_log(capfd)
    with pytest.raises(Exception) as failed:
        MigrationLambdaOperator(task_id="start_lambda", lambda_name="start").execute(
            {"params": {**PARAMS, "databases": ["shop"]}}
        )
    assert not isinstance(failed.value, AirflowFailException), str(failed.value)
    assert "JobFailed" in str(failed.value) and "cannot reach" in str(failed.value)


def test_transient_aws_errors_are_told_from_the_requests_own_faults() -> None:
    """The rule behind retrying: throttling and 5xx can pass; a missing or denied resource cannot."""
    from botocore.exceptions import ClientError

    from backover.errors import JobFailed, Unreachable, UsageError, is_transient
    from backover.lifecycle.lambda_entry import documented

    def error(code: str, status: int) -> ClientError:
        return ClientError({"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "Op")

    assert all(
        is_transient(error(c, s)) for c, s in [("ThrottlingException", 400), ("SlowDown", 503), ("x", 500)]
    )
    assert not any(is_transient(error(c, s)) for c, s in [("NoSuchBucket", 404), ("AccessDenied", 403)])
    assert type(documented(Unreachable("cannot reach x"))) is JobFailed  # retried by Airflow
    assert type(documented(UsageError("bad option"))) is UsageError  # final
