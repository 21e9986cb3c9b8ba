"""The runner sends a command's output to CloudWatch Logs (moto's server) as SSM's agent does with
``CloudWatchOutputConfig``: SSM's log stream names, line by line while the command runs, all of it
(``StandardOutputContent`` still keeps 24,000 characters)."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any, Protocol

import boto3
import pytest
from botocore.exceptions import ClientError

from backover_sandbox.runner import RunnerServer

TERMINAL = {"Success", "Failed", "TimedOut", "Cancelled"}


class Instances(Protocol):
    """The ``ec2_instances`` fixture of conftest.py."""

    running: str


def _ssm(runner: RunnerServer) -> Any:
    return boto3.client("ssm", endpoint_url=runner.url, region_name="us-east-1")


def _logs(moto_server: str) -> Any:
    return boto3.client("logs", endpoint_url=moto_server, region_name="us-east-1")


def _send(runner: RunnerServer, instance_id: str, commands: list[str], **cloudwatch: Any) -> str:
    kwargs: dict[str, Any] = {"CloudWatchOutputConfig": cloudwatch} if cloudwatch else {}
    reply = _ssm(runner).send_command(
        DocumentName="AWS-RunShellScript",
        InstanceIds=[instance_id],
        Parameters={"commands": commands},
        **kwargs,
    )
    return str(reply["Command"]["CommandId"])


def _wait(runner: RunnerServer, command_id: str, instance_id: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        invocation = _ssm(runner).get_command_invocation(CommandId=command_id, InstanceId=instance_id)
        if invocation["Status"] in TERMINAL or time.monotonic() > deadline:
            return dict(invocation)
        time.sleep(0.05)


def _messages(moto_server: str, group: str, stream: str) -> list[str]:
    try:
        reply = _logs(moto_server).get_log_events(
            logGroupName=group, logStreamName=stream, startFromHead=True
        )
    except ClientError as e:
        if e.response["Error"]["Code"] == "ResourceNotFoundException":
            return []
        raise
    return [event["message"] for event in reply["events"]]


def test_output_lines_reach_cloudwatch_while_the_command_runs(
    runner: RunnerServer, moto_server: str, ec2_instances: Instances, tmp_path: Path
) -> None:
    group = f"/backover/test-{uuid.uuid4().hex[:8]}"
    flag = tmp_path / "go-on"
    command_id = _send(
        runner,
        ec2_instances.running,
        [
            "echo first",
            f'for i in $(seq 1 300); do [ -e "{flag}" ] && break; sleep 0.1; done',
            "echo second",
            "echo oops >&2",
            "exit 3",
        ],
        CloudWatchLogGroupName=group,
        CloudWatchOutputEnabled=True,
    )
    stdout = f"{command_id}/{ec2_instances.running}/aws-runShellScript/stdout"
    stderr = f"{command_id}/{ec2_instances.running}/aws-runShellScript/stderr"
    deadline = time.monotonic() + 20
    while _messages(moto_server, group, stdout) != ["first"] and time.monotonic() < deadline:
        time.sleep(0.1)
    running = _ssm(runner).get_command_invocation(CommandId=command_id, InstanceId=ec2_instances.running)
    assert running["Status"] == "InProgress", "the first line is in CloudWatch before the command ends"
    assert _messages(moto_server, group, stdout) == ["first"]
    flag.touch()
    invocation = _wait(runner, command_id, ec2_instances.running)
    assert (invocation["Status"], invocation["ResponseCode"]) == ("Failed", 3)
    assert invocation["CloudWatchOutputConfig"] == {
        "CloudWatchLogGroupName": group,
        "CloudWatchOutputEnabled": True,
    }
    # All of it is there once the end is reported, the agent's own error line too.
    assert _messages(moto_server, group, stdout) == ["first", "second"]
    assert _messages(moto_server, group, stderr) == ["oops", "failed to run commands: exit status 3"]
    assert invocation["StandardOutputContent"] == "first\nsecond\n"


def test_an_output_longer_than_ssm_keeps_is_whole_in_cloudwatch(
    runner: RunnerServer, moto_server: str, ec2_instances: Instances
) -> None:
    group = f"/backover/test-{uuid.uuid4().hex[:8]}"
    command_id = _send(
        runner,
        ec2_instances.running,
        ["seq 1 20000"],
        CloudWatchLogGroupName=group,
        CloudWatchOutputEnabled=True,
    )
    invocation = _wait(runner, command_id, ec2_instances.running)
    assert len(invocation["StandardOutputContent"]) == 24_000
    logs, token, messages = _logs(moto_server), None, []
    stream = f"{command_id}/{ec2_instances.running}/aws-runShellScript/stdout"
    while True:
        reply = logs.get_log_events(
            logGroupName=group,
            logStreamName=stream,
            startFromHead=True,
            **({"nextToken": token} if token else {}),
        )
        messages += [event["message"] for event in reply["events"]]
        if reply["nextForwardToken"] == token:
            break
        token = reply["nextForwardToken"]
    assert messages == [str(n) for n in range(1, 20001)]


@pytest.mark.parametrize(
    "config",
    [
        pytest.param(
            {"CloudWatchLogGroupName": "no spaces allowed", "CloudWatchOutputEnabled": True}, id="name"
        ),
        pytest.param({"CloudWatchLogGroupName": "x" * 513, "CloudWatchOutputEnabled": True}, id="too-long"),
    ],
)
def test_a_bad_log_group_is_refused(
    runner: RunnerServer, ec2_instances: Instances, config: dict[str, Any]
) -> None:
    with pytest.raises(ClientError) as refused:
        _send(runner, ec2_instances.running, ["true"], **config)
    assert refused.value.response["Error"]["Code"] == "ValidationException"


def test_a_test_can_make_the_lines_reach_cloudwatch_after_the_end(
    runner: RunnerServer, moto_server: str, ec2_instances: Instances, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The test-only ingestion delay: each line arrives that long after it was written, the last
    ones after the invocation reports its end (as the agent's last upload can)."""
    monkeypatch.setattr(runner.ssm_service.store.logs, "ingestion_delay_seconds", 2.0)
    group = f"/backover/test-{uuid.uuid4().hex[:8]}"
    command_id = _send(
        runner,
        ec2_instances.running,
        ["echo first", "sleep 3", "echo last"],
        CloudWatchLogGroupName=group,
        CloudWatchOutputEnabled=True,
    )
    stdout = f"{command_id}/{ec2_instances.running}/aws-runShellScript/stdout"
    invocation = _wait(runner, command_id, ec2_instances.running)
    assert invocation["Status"] == "Success" and invocation["StandardOutputContent"] == "first\nlast\n"
    assert _messages(moto_server, group, stdout) == ["first"], "the last line is not there yet"
    deadline = time.monotonic() + 10
    while _messages(moto_server, group, stdout) != ["first", "last"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _messages(moto_server, group, stdout) == ["first", "last"]
