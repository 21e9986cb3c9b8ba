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
    _operator(deferrable=True).execute_complete({}, event)
    log = task_log(capfd)
    assert f"CloudWatch Logs group /backover/{PREFIX} holds no output of SSM command" in log
    assert log.count("| restore done") == 1, log


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


@pytest.fixture
def ingestion_delay(runner: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Set how late each line reaches CloudWatch (the runner's test-only knob), for this test."""

    def late(seconds: float) -> None:
        monkeypatch.setattr(runner.ssm_service.store.logs, "ingestion_delay_seconds", seconds)

    return late


REASON = "duplicate key on shop.users"
#: A first line CloudWatch has when the command ends, then lines written just before the end.
ENDS_FAILING = f"""\
echo "restore: segment 1/2"
sleep {{pause}}
echo "restore: segment 2/2"
echo "{REASON}"
exit 1
"""


@pytest.mark.parametrize(
    ("delay", "pause", "from_ssm"),
    [
        pytest.param(1.5, 2.5, False, id="a-moment-late-read-on-from-cloudwatch"),
        pytest.param(4.0, 5.0, True, id="later-than-the-reads-taken-from-ssm"),
    ],
)
# the second case shortens the trigger's final reads to 2 s (in production 20 s) so that the lines
# CloudWatch gets 4 s after they were written come after them
def test_lines_that_reach_cloudwatch_after_the_end_are_logged_and_name_the_reason(
    ingestion_delay: Any,
    ec2_instances: Any,
    set_environment: Any,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    delay: float,
    pause: float,
    from_ssm: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The agent's last upload or CloudWatch's ingestion comes after the invocation reports its
    end: the last lines still reach the task log, once, and the failure names the right line."""
    from airflow.providers.common.compat.sdk import AirflowException

    from backover_airflow.triggers import worker as trigger_module

    ingestion_delay(delay)
    if from_ssm:
        monkeypatch.setattr(trigger_module, "FINAL_READ_SECONDS", 2.0)
    _worker(set_environment, ec2_instances, tmp_path, ENDS_FAILING.format(pause=pause))
    task_log(capfd)
    with pytest.raises(AirflowException) as failure:
        _operator(deferrable=False).execute({"params": PARAMS})
    log = task_log(capfd)
    assert str(failure.value).endswith(f"(exit 1): {REASON}"), failure.value
    for line in ("restore: segment 1/2", "restore: segment 2/2", REASON):
        assert log.count(f"| {line}") == 1, log
    assert (
        log.index("| restore: segment 1/2") < log.index("| restore: segment 2/2") < log.index(f"| {REASON}")
    )
    # from SSM: with or without the first line in CloudWatch by the end (a loaded machine may not
    # have delivered it yet), a warning says the rest came from SSM's copy
    fallback = "lacks the last lines of the output" in log or "holds no output of SSM command" in log
    assert fallback is from_ssm, log


def _refuse_reads_once_a_line_came(trigger_class: Any, monkeypatch: pytest.MonkeyPatch, code: str) -> None:
    """CloudWatch refuses every GetLogEvents (``code``) once a read returned a line: botocore's own
    hooks on the trigger's real client, the answer AWS gives (the worker goes on)."""
    from botocore.awsrequest import AWSResponse

    original = trigger_class.output
    state = {"seen": False}

    def after(parsed: dict[str, Any], **_: Any) -> None:
        state["seen"] = state["seen"] or bool(parsed.get("events"))

    def before(**_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        if not state["seen"]:
            return None
        error = {"Code": code, "Message": "User is not authorized to perform: logs:GetLogEvents"}
        return AWSResponse("https://logs", 400, {}, None), {"Error": error, "ResponseMetadata": {}}

    def output(self: Any) -> Any:
        reader = original(self)
        if reader is not None:
            reader.hook.conn.meta.events.register("after-call.cloudwatch-logs.GetLogEvents", after)
            reader.hook.conn.meta.events.register("before-call.cloudwatch-logs.GetLogEvents", before)
        return reader

    monkeypatch.setattr(trigger_class, "output", output)


def test_when_cloudwatch_refuses_midway_the_rest_and_the_reason_come_from_ssm_once(
    ec2_instances: Any,
    set_environment: Any,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A long output (SSM keeps its first 24,000 characters) whose reading CloudWatch refuses after
    its first line: the lines already streamed are not logged again, SSM's start and the end the
    worker script copied to standard error are, and the reason is the output's real last line."""
    from airflow.providers.common.compat.sdk import AirflowException

    from backover_airflow.hooks.worker import LEFT_OUT
    from backover_airflow.triggers.worker import WorkerCommandTrigger

    _refuse_reads_once_a_line_came(WorkerCommandTrigger, monkeypatch, "AccessDeniedException")
    body = LONG.replace('echo "first-line"\n', 'echo "first-line"\nsleep 2\n')
    _worker(set_environment, ec2_instances, tmp_path, body + f'echo "{REASON}"\nexit 1\n')
    task_log(capfd)
    with pytest.raises(AirflowException) as failure:
        _operator(deferrable=False).execute({"params": PARAMS})
    log = task_log(capfd)
    assert str(failure.value).endswith(f"(exit 1): {REASON}"), failure.value
    assert "Cannot read the output of backover restore from CloudWatch Logs group" in log
    assert log.count("| first-line") == 1, "streamed once, not again from SSM's copy"
    numbers = [int(n) for n in re.findall(r"\| progress line (\d+) of 5000", log)]
    assert len(numbers) == len(set(numbers)) and numbers == sorted(numbers), "no line twice"
    assert numbers[0] == 1 and numbers[-1] == 5000, "SSM's start and the copied end"
    assert log.index(f"| {LEFT_OUT}") < log.index("| final-summary") < log.index(f"| {REASON}")
    assert "! failed to run commands: exit status 1" in log
    assert "backover: the end of the output" not in log, "the copy's markers stay out of the log"


def test_a_trigger_moved_to_another_triggerer_says_its_lines_may_repeat(
    ec2_instances: Any, set_environment: Any, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """A triggerer restart builds the trigger again from its kwargs: it reads the output from the
    start again, and the log says so before those lines and once it caught up."""
    from airflow.providers.common.compat.sdk import TaskDeferred

    from backover_airflow.triggers.worker import WorkerCommandTrigger

    _worker(set_environment, ec2_instances, tmp_path, 'echo "restore: segment 1/1"\necho "restore done"\n')
    before = time.time()
    with pytest.raises(TaskDeferred) as deferred:
        _operator(deferrable=True).execute({"params": PARAMS})
    _, kwargs = deferred.value.trigger.serialize()
    assert before <= kwargs["deferred_at"] <= time.time()
    first = WorkerCommandTrigger(**kwargs)
    task_log(capfd)
    asyncio.run(asyncio.wait_for(anext(first.run()), 60))
    assert "read again from its start" not in task_log(capfd), "the first triggerer says nothing"
    moved = WorkerCommandTrigger(**{**kwargs, "deferred_at": kwargs["deferred_at"] - 120})
    event = asyncio.run(asyncio.wait_for(anext(moved.run()), 60)).payload
    log = task_log(capfd)
    assert event["status"] == "ended" and event["output"]["last_line"] == "restore done", event
    assert (
        log.index("is read again from its start")
        < log.index("| restore: segment 1/1")
        < log.index("| restore done")
        < log.index("caught up: the 2 lines read again end here")
    ), log


def _reader(moto_server: str) -> tuple[Any, Any]:
    """A CommandOutput of a new command's streams in moto's CloudWatch Logs (not created yet), and
    a client that writes them as the agent does."""
    import uuid

    from airflow.providers.amazon.aws.hooks.logs import AwsLogsHook

    from backover_airflow.hooks.worker import CommandOutput

    group = f"/backover/test-{uuid.uuid4().hex[:8]}"
    logs = boto3.client("logs", endpoint_url=moto_server, region_name="us-east-1")
    logs.create_log_group(logGroupName=group)
    return CommandOutput(
        AwsLogsHook(aws_conn_id="aws_default"), group, str(uuid.uuid4()), "i-0123456789abcdef0"
    ), logs


def _write(logs: Any, output: Any, stream: str, *lines: str) -> None:
    from backover_airflow.hooks.worker import stream_name

    name = stream_name(output.command_id, output.instance_id, stream)
    try:
        logs.create_log_stream(logGroupName=output.log_group, logStreamName=name)
    except logs.exceptions.ResourceAlreadyExistsException:
        pass
    now = int(time.time() * 1000)
    logs.put_log_events(
        logGroupName=output.log_group,
        logStreamName=name,
        logEvents=[{"timestamp": now, "message": line} for line in lines],
    )


def _answer(output: Any, *codes: str) -> list[str]:
    """CloudWatch answers the next GetLogEvents calls with ``codes`` (botocore's hook on the real
    client), then as usual; the codes not used yet."""
    from botocore.awsrequest import AWSResponse

    left = list(codes)

    def before(**_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        if not left:
            return None
        error = {"Code": left.pop(0), "Message": "Rate exceeded  or\n denied"}
        return AWSResponse("https://logs", 400, {}, None), {"Error": error, "ResponseMetadata": {}}

    output.hook.conn.meta.events.register("before-call.cloudwatch-logs.GetLogEvents", before)
    return left


def test_a_stream_not_created_yet_has_nothing_new_and_its_lines_come_later(moto_server: str) -> None:
    output, logs = _reader(moto_server)
    assert output.read() == [] and output.refused is None, "no output yet is not a refusal"
    _write(logs, output, "stdout", "restore: segment 1/2", "  ", "restore: segment 2/2")
    assert output.read() == [("stdout", "restore: segment 1/2"), ("stdout", "restore: segment 2/2")]
    _write(logs, output, "stderr", "failed to run commands: exit status 1")
    assert output.read() == [("stderr", "failed to run commands: exit status 1")], "only what is new"
    assert output.summary()["last_line"] == "restore: segment 2/2" and output.lines == 3


@pytest.mark.parametrize("code", ["ThrottlingException", "ServiceUnavailableException"])
def test_throttling_leaves_the_lines_to_the_next_read_none_lost_none_twice(
    moto_server: str, code: str
) -> None:
    output, logs = _reader(moto_server)
    _write(logs, output, "stdout", "line 1")
    assert output.read() == [("stdout", "line 1")]
    _write(logs, output, "stdout", "line 2", "line 3")
    left = _answer(output, code)
    assert output.read() == [] and output.refused is None and not left
    _write(logs, output, "stdout", "line 4")
    assert [line for _, line in output.read()] == ["line 2", "line 3", "line 4"]


def test_a_refusal_ends_the_reading_in_one_line_and_keeps_what_was_read(moto_server: str) -> None:
    output, logs = _reader(moto_server)
    _write(logs, output, "stdout", "line 1")
    assert output.read() == [("stdout", "line 1")]
    _write(logs, output, "stdout", "line 2")
    left = _answer(output, "AccessDeniedException", "AccessDeniedException")
    assert output.read() == []
    assert output.refused == "AccessDeniedException: Rate exceeded or denied", "one line"
    assert output.read() == [] and left == ["AccessDeniedException"], "no call after a refusal"
    assert output.lines == 1 and output.summary()["last_line"] == "line 1"
    ended = {"StandardOutputContent": "line 1\nline 2\n", "StandardErrorContent": ""}
    assert output.missing(ended) == [("stdout", "line 2")], "SSM's copy gives only what was not read"
