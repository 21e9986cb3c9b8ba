"""A worker command's output in the task log while it runs, all of it, through CloudWatch Logs.

The operator sends the command with ``CloudWatchOutputConfig`` (the Variable's ``log_group``, by
default ``/backover/<prefix>``); the local runner writes its output lines to moto's CloudWatch
Logs as SSM's agent does, and :class:`~backover_airflow.triggers.worker.WorkerCommandTrigger`
logs the new lines at each look. The trigger is run here as the triggerer runs it (asyncio, its
first event), or in the worker slot (``deferrable=False``); its log is the task's log (Airflow's
structlog writes it to the process's standard output outside a task runner, which ``capfd``
sees). ``backover_command`` is a small shell script standing in for ``backover``.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import boto3
import pytest
from migration_states import PREFIX, environment, task_log

PARAMS = {"migration_id": "orders-2026", "databases": [], "dry_run": False, "environment": "backover"}

#: Prints its first progress line, then waits until someone saw it (the test touches ``$1``'s flag
#: file when the line is in the task log) before it goes on; gives up after 30 s.
WAITS_TO_BE_SEEN = """\
flag="{flag}"
echo "restore: segment 1/3; this run 10/30 events (33.3%), 5 events/s, ETA 4s"
i=0
while [ ! -e "$flag" ]; do
  i=$((i + 1))
  if [ "$i" -gt 300 ]; then echo "nobody saw the first line while the command ran"; exit 1; fi
  sleep 0.1
done
echo "restore: segment 3/3; this run 30/30 events (100.0%), 15 events/s, ETA 0s"
echo "restore done"
"""

#: About 100,000 characters of output: far more than SSM's 24,000.
LONG = """\
echo "first-line"
seq -f "progress line %g of 5000" 1 5000
echo "final-summary"
"""


@pytest.fixture(autouse=True)
def _airflow(airflow_aws_connection: str) -> None:
    """``aws_default`` routes SSM to the runner, EC2 and CloudWatch Logs to moto."""


def _worker(set_environment: Any, ec2_instances: Any, tmp_path: Path, body: str, **overrides: Any) -> dict:
    script = tmp_path / "fake-backover.sh"
    script.write_text(body, encoding="utf-8")
    env = environment("sandbox-bucket", ec2_instances.running, backover_command=f"sh {script}", **overrides)
    set_environment(env)
    return env


def _operator(deferrable: bool) -> Any:
    from backover_airflow.operators.worker import WorkerCommandOperator

    return WorkerCommandOperator(task_id="restore", command="restore", deferrable=deferrable)


def _ssm(runner: Any) -> Any:
    return boto3.client("ssm", endpoint_url=runner.url, region_name="us-east-1")


def test_lines_of_a_long_command_show_in_the_task_log_while_it_runs(
    runner: Any, ec2_instances: Any, set_environment: Any, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """The command goes on only once its first line is in the task log: were it logged only at the
    end, the command would give up and fail."""
    from airflow.providers.common.compat.sdk import TaskDeferred

    flag = tmp_path / "seen"
    _worker(set_environment, ec2_instances, tmp_path, WAITS_TO_BE_SEEN.format(flag=flag))
    with pytest.raises(TaskDeferred) as deferred:
        _operator(deferrable=True).execute({"params": PARAMS})
    trigger = deferred.value.trigger
    invocation = _ssm(runner).get_command_invocation(
        CommandId=trigger.command_id, InstanceId=trigger.instance_id
    )
    assert invocation["CloudWatchOutputConfig"] == {
        "CloudWatchLogGroupName": f"/backover/{PREFIX}",
        "CloudWatchOutputEnabled": True,
    }
    task_log(capfd)
    status_when_seen: list[str] = []

    async def wait_watching_the_log() -> tuple[dict[str, Any], str]:
        first = asyncio.ensure_future(anext(trigger.run()))
        log = ""
        deadline = time.monotonic() + 60
        while not first.done() and time.monotonic() < deadline:
            log += task_log(capfd)
            if "| restore: segment 1/3" in log and not flag.exists():
                status_when_seen.append(
                    _ssm(runner).get_command_invocation(
                        CommandId=trigger.command_id, InstanceId=trigger.instance_id
                    )["Status"]
                )
                flag.touch()
            await asyncio.sleep(0.1)
        return (await first).payload, log + task_log(capfd)

    event, log = asyncio.run(wait_watching_the_log())
    assert status_when_seen == ["InProgress"], log
    assert event["status"] == "ended" and event["invocation"]["Status"] == "Success", event
    assert (
        log.index("| restore: segment 1/3")
        < log.index("| restore: segment 3/3")
        < log.index("| restore done")
    )
    assert "StandardOutputContent" not in event["invocation"], "the output came from CloudWatch"
    result = _operator(deferrable=True).execute_complete({}, event)  # the task resumes
    assert result["status"] == "Success"
    assert "the 3 lines of output of backover restore are above" in task_log(capfd)


def test_an_output_longer_than_ssm_keeps_arrives_whole_with_the_failures_reason(
    runner: Any, ec2_instances: Any, set_environment: Any, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    from airflow.providers.common.compat.sdk import AirflowException

    _worker(
        set_environment,
        ec2_instances,
        tmp_path,
        LONG + 'echo "unique index violation on shop.users"\nexit 1\n',
    )
    task_log(capfd)
    operator = _operator(deferrable=False)
    with pytest.raises(AirflowException) as failure:
        operator.execute({"params": PARAMS})
    log = task_log(capfd)
    assert str(failure.value).endswith("(exit 1): unique index violation on shop.users"), failure.value
    lines = re.findall(r"\| (progress line \d+ of 5000)", log)
    assert lines == [f"progress line {n} of 5000" for n in range(1, 5001)], "every line, in order, once"
    assert log.index("| first-line") < log.index("| progress line 1 of") < log.index("| final-summary")
    assert "bytes of output left out" not in log
    assert "! failed to run commands: exit status 1" in log  # SSM's own line, from stderr
    invocation = _ssm(runner).get_command_invocation(
        CommandId=operator._command_id, InstanceId=operator._instance_id
    )
    assert len(invocation["StandardOutputContent"]) == 24_000, "SSM itself cut it"


def test_without_a_log_group_the_output_shows_at_the_end_head_and_tail(
    runner: Any, ec2_instances: Any, set_environment: Any, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    _worker(set_environment, ec2_instances, tmp_path, LONG, log_group="")
    task_log(capfd)
    result = _operator(deferrable=False).execute({"params": PARAMS})
    log = task_log(capfd)
    invocation = _ssm(runner).get_command_invocation(
        CommandId=result["command_id"], InstanceId=result["instance_id"]
    )
    assert invocation["CloudWatchOutputConfig"]["CloudWatchOutputEnabled"] is False
    assert "its output shows when it ends (no CloudWatch log group)" in log
    assert "| first-line" in log and "| final-summary" in log and "bytes of output left out ..." in log


def test_when_cloudwatch_holds_nothing_what_ssm_kept_is_logged_with_a_warning(
    ec2_instances: Any, set_environment: Any, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """The worker's role may not write the log group: the task still shows what SSM kept."""
    from airflow.providers.common.compat.sdk import TaskDeferred

    from backover_airflow.triggers.worker import WorkerCommandTrigger

    _worker(set_environment, ec2_instances, tmp_path, 'echo "restore done"\n', log_group="")
    with pytest.raises(TaskDeferred) as deferred:
        _operator(deferrable=True).execute({"params": PARAMS})
    path, kwargs = deferred.value.trigger.serialize()
    reading_elsewhere = WorkerCommandTrigger(**{**kwargs, "log_group": f"/backover/{PREFIX}"})
    task_log(capfd)
    event = asyncio.run(asyncio.wait_for(anext(reading_elsewhere.run()), 60)).payload
    assert event["invocation"]["StandardOutputContent"] == "restore done\n"
    _operator(deferrable=True).execute_complete({}, event)
    log = task_log(capfd)
    assert f"CloudWatch Logs group /backover/{PREFIX} holds no output of SSM command" in log
    assert "| restore done" in log


DAG_ONE_RESTORE = """
from airflow.sdk import DAG

from backover_airflow.operators.worker import WorkerCommandOperator

with DAG("live_output", schedule=None, catchup=False, params={params}) as dag:
    WorkerCommandOperator(task_id="restore", command="restore", deferrable=True)
"""


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow  # runs a DAG, its trigger in a real `airflow triggerer` process
def test_a_deferred_tasks_log_shows_the_lines_while_the_triggerer_waits(
    runner: Any,
    ec2_instances: Any,
    set_environment: Any,
    airflow_home: Any,
    run_dag: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Airflow 3.3 as deployed: the task defers, Airflow's triggerer runs the trigger and writes its
    log to the task's log (``<task log>.trigger.<job id>.log``); what Airflow's task log reader
    (the UI's) returns for the deferred task holds the command's first line while it runs."""
    import os
    import signal
    import subprocess
    import sys

    from airflow.models.taskinstance import TaskInstance
    from airflow.sdk import definitions
    from airflow.sdk.serde import deserialize
    from airflow.triggers.base import TriggerEvent
    from airflow.utils.log.log_reader import TaskLogReader
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState

    flag = tmp_path / "seen"
    _worker(set_environment, ec2_instances, tmp_path, WAITS_TO_BE_SEEN.format(flag=flag))
    seen: dict[str, Any] = {}
    root = Path(__file__).resolve().parents[2]

    def in_the_triggerer(trigger: Any, task_sdk_ti: Any) -> TriggerEvent:
        """Instead of DAG.test()'s in-line run: the deferred task waits for a real triggerer."""
        with create_session() as session:
            session.get(TaskInstance, task_sdk_ti.id).state = TaskInstanceState.DEFERRED
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(root / "plugins"), os.environ.get("PYTHONPATH", "")]),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(_free_port()),
        }
        with (tmp_path / "triggerer.log").open("wb") as out:
            triggerer = subprocess.Popen(
                [sys.executable, "-m", "airflow", "triggerer"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline:
                with create_session() as session:
                    ti = session.get(TaskInstance, task_sdk_ti.id)
                    if ti.state != TaskInstanceState.DEFERRED:
                        return TriggerEvent(deserialize(ti.next_kwargs)["event"])
                    if not flag.exists():
                        chunks, _ = TaskLogReader().read_log_chunks(ti, ti.try_number, {})
                        shown = "\n".join(str(getattr(chunk, "event", chunk)) for chunk in chunks)
                        if "| restore: segment 1/3" in shown:
                            seen["shown"] = shown
                            seen["files"] = sorted(p.name for p in airflow_home.home.glob("logs/**/*.log*"))
                            seen["status"] = _ssm(runner).get_command_invocation(
                                CommandId=trigger.command_id, InstanceId=trigger.instance_id
                            )["Status"]
                            flag.touch()
                time.sleep(0.5)
            raise AssertionError(
                "the triggerer did not fire: " + (tmp_path / "triggerer.log").read_text()[-3000:]
            )
        finally:
            os.killpg(triggerer.pid, signal.SIGTERM)
            try:
                triggerer.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(triggerer.pid, signal.SIGKILL)
                triggerer.wait()

    monkeypatch.setattr(definitions.dag, "_run_inline_trigger", in_the_triggerer)
    result = run_dag("live_output", DAG_ONE_RESTORE.format(params=repr(PARAMS)))
    assert seen.get("status") == "InProgress", seen or (tmp_path / "triggerer.log").read_text()[-3000:]
    assert any(".trigger." in name for name in seen["files"]), seen["files"]
    assert "| restore: segment 3/3" not in seen["shown"], "seen before the command went on"
    assert result.state == "success" and result.xcom["restore"]["status"] == "Success", result


@pytest.mark.parametrize(
    ("overrides", "group"),
    [
        pytest.param({}, f"/backover/{PREFIX}", id="default-per-prefix"),
        pytest.param({"prefix": ""}, "/backover", id="bucket-top"),
        pytest.param({"log_group": "/team-a/backover"}, "/team-a/backover", id="named"),
        pytest.param({"log_group": ""}, None, id="none"),
    ],
)
def test_the_environment_names_the_log_group(overrides: dict[str, Any], group: str | None) -> None:
    from backover_airflow.config import BackoverConfig

    assert BackoverConfig.from_mapping(environment("bkt", "i-1", **overrides)).command_log_group == group


@pytest.mark.parametrize("value", ["has spaces", "x" * 513, 7])
def test_a_bad_log_group_fails_the_task_in_one_line_before_anything_runs(
    set_environment: Any, ec2_instances: Any, value: Any
) -> None:
    from airflow.providers.common.compat.sdk import AirflowFailException

    set_environment(environment("sandbox-bucket", ec2_instances.running, log_group=value))
    operator = _operator(deferrable=True)
    with pytest.raises(AirflowFailException) as refused:
        operator.execute({"params": PARAMS})
    assert "'log_group' must be a CloudWatch Logs group name" in str(refused.value)
    assert "\n" not in str(refused.value) and operator._command_id is None, "nothing was sent"
