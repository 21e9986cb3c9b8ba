"""The runner's SSM Run Command API, driven by a real boto3 SSM client, instances in moto's EC2."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Protocol

import boto3
import pytest
from botocore.exceptions import ClientError, WaiterError

from backover_sandbox.runner import RunnerServer


class Instances(Protocol):
    """The ``ec2_instances`` fixture of conftest.py."""

    running: str
    other_running: str
    stopped: str


TERMINAL = {"Success", "Failed", "TimedOut", "Cancelled"}


def _ssm(runner: RunnerServer) -> Any:
    return boto3.client("ssm", endpoint_url=runner.url, region_name="us-east-1")


def _send(runner: RunnerServer, instance_id: str, commands: list[str], **parameters: list[str]) -> str:
    reply = _ssm(runner).send_command(
        DocumentName="AWS-RunShellScript",
        InstanceIds=[instance_id],
        Parameters={"commands": commands, **parameters},
        Comment="runner test",
    )
    return reply["Command"]["CommandId"]


def _wait(runner: RunnerServer, command_id: str, instance_id: str, timeout: float = 10) -> dict[str, Any]:
    ssm = _ssm(runner)
    deadline = time.monotonic() + timeout
    while True:
        invocation = ssm.get_command_invocation(CommandId=command_id, InstanceId=instance_id)
        if invocation["Status"] in TERMINAL or time.monotonic() > deadline:
            return invocation
        time.sleep(0.05)


def test_send_command_runs_bash_and_reports_success(
    runner: RunnerServer, ec2_instances: Instances, runner_workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BACKOVER_SSM_TEST_VAR", "from-runner-env")
    ssm = _ssm(runner)
    reply = ssm.send_command(
        DocumentName="AWS-RunShellScript",
        InstanceIds=[ec2_instances.running],
        Parameters={
            "commands": ["echo hello", "pwd", 'echo "$BACKOVER_SSM_TEST_VAR"', "[[ 1 -eq 1 ]] && echo bash"]
        },
        Comment="runner test",
        TimeoutSeconds=60,
    )
    command = reply["Command"]
    assert command["Status"] == "Pending"
    assert command["InstanceIds"] == [ec2_instances.running]
    assert command["DocumentName"] == "AWS-RunShellScript"
    assert command["TimeoutSeconds"] == 60
    assert len(command["CommandId"]) == 36
    invocation = _wait(runner, command["CommandId"], ec2_instances.running)
    assert invocation["Status"] == "Success"
    assert invocation["StatusDetails"] == "Success"
    assert invocation["ResponseCode"] == 0
    assert invocation["PluginName"] == "aws:runShellScript"
    assert invocation["Comment"] == "runner test"
    assert invocation["StandardOutputContent"] == f"hello\n{runner_workdir}\nfrom-runner-env\nbash\n"
    assert invocation["StandardErrorContent"] == ""
    assert invocation["ExecutionStartDateTime"].endswith("Z")
    assert invocation["ExecutionElapsedTime"].startswith("PT")
    listed = ssm.list_commands(CommandId=command["CommandId"])["Commands"]
    assert [c["Status"] for c in listed] == ["Success"]
    assert listed[0]["CompletedCount"] == 1 and listed[0]["ErrorCount"] == 0


def test_working_directory_parameter(runner: RunnerServer, ec2_instances: Instances, tmp_path: Path) -> None:
    (tmp_path / "marker.txt").write_text("here")
    command_id = _send(
        runner, ec2_instances.running, ["pwd", "cat marker.txt"], workingDirectory=[str(tmp_path)]
    )
    invocation = _wait(runner, command_id, ec2_instances.running)
    assert invocation["StandardOutputContent"] == f"{tmp_path}\nhere"


def test_missing_working_directory_fails(
    runner: RunnerServer, ec2_instances: Instances, tmp_path: Path
) -> None:
    command_id = _send(runner, ec2_instances.running, ["pwd"], workingDirectory=[str(tmp_path / "nope")])
    invocation = _wait(runner, command_id, ec2_instances.running)
    assert invocation["Status"] == "Failed"
    assert "does not exist" in invocation["StandardErrorContent"]


def test_failing_command_reports_its_exit_code(runner: RunnerServer, ec2_instances: Instances) -> None:
    command_id = _send(runner, ec2_instances.running, ["echo out", "echo oops >&2", "exit 3"])
    invocation = _wait(runner, command_id, ec2_instances.running)
    assert invocation["Status"] == "Failed"
    assert invocation["StatusDetails"] == "Failed"
    assert invocation["ResponseCode"] == 3
    assert invocation["StandardOutputContent"] == "out\n"
    assert invocation["StandardErrorContent"] == "oops\nfailed to run commands: exit status 3"
    command = _ssm(runner).list_commands(CommandId=command_id)["Commands"][0]
    assert command["Status"] == "Failed" and command["ErrorCount"] == 1


def test_botocore_waiter_follows_the_statuses(runner: RunnerServer, ec2_instances: Instances) -> None:
    ssm = _ssm(runner)
    waiter = ssm.get_waiter("command_executed")
    command_id = _send(runner, ec2_instances.running, ["sleep 0.3", "echo done"])
    waiter.wait(CommandId=command_id, InstanceId=ec2_instances.running, WaiterConfig={"Delay": 0.2})
    command_id = _send(runner, ec2_instances.running, ["exit 1"])
    with pytest.raises(WaiterError):
        waiter.wait(CommandId=command_id, InstanceId=ec2_instances.running, WaiterConfig={"Delay": 0.2})


def test_execution_timeout_kills_the_command(runner: RunnerServer, ec2_instances: Instances) -> None:
    started = time.monotonic()
    command_id = _send(runner, ec2_instances.running, ["echo started", "sleep 30"], executionTimeout=["1"])
    invocation = _wait(runner, command_id, ec2_instances.running)
    assert time.monotonic() - started < 5
    assert invocation["Status"] == "TimedOut"
    assert invocation["StatusDetails"] == "ExecutionTimedOut"
    assert invocation["ResponseCode"] == 137
    assert invocation["StandardOutputContent"] == "started\n"


def test_cancel_kills_the_whole_process_group(
    runner: RunnerServer, ec2_instances: Instances, tmp_path: Path
) -> None:
    pid_file = tmp_path / "bg.pid"
    ssm = _ssm(runner)
    command_id = _send(runner, ec2_instances.running, [f"sleep 300 & echo $! > {pid_file}", "wait"])
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not pid_file.exists():
        time.sleep(0.05)
    assert ssm.get_command_invocation(CommandId=command_id, InstanceId=ec2_instances.running)["Status"] in {
        "InProgress",
        "Pending",
    }
    ssm.cancel_command(CommandId=command_id)
    invocation = _wait(runner, command_id, ec2_instances.running)
    assert invocation["Status"] == "Cancelled"
    assert invocation["ResponseCode"] == 137
    assert ssm.list_commands(CommandId=command_id)["Commands"][0]["Status"] == "Cancelled"
    background = int(pid_file.read_text())
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and _running(background):
        time.sleep(0.05)
    assert not _running(background), "a background child of the cancelled command survived"


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_cancel_of_an_unknown_command_is_invalid_command_id(runner: RunnerServer) -> None:
    with pytest.raises(ClientError) as caught:
        _ssm(runner).cancel_command(CommandId="00000000-0000-0000-0000-000000000000")
    assert caught.value.response["Error"]["Code"] == "InvalidCommandId"


def test_output_is_truncated_like_ssm(runner: RunnerServer, ec2_instances: Instances) -> None:
    command_id = _send(
        runner,
        ec2_instances.running,
        ["head -c 30000 /dev/zero | tr '\\0' o", "head -c 10000 /dev/zero | tr '\\0' e >&2"],
    )
    invocation = _wait(runner, command_id, ec2_instances.running)
    assert invocation["Status"] == "Success"
    assert invocation["StandardOutputContent"] == "o" * 24000
    assert invocation["StandardErrorContent"] == "e" * 8000
    listed = _ssm(runner).list_command_invocations(CommandId=command_id, Details=True)["CommandInvocations"]
    output = listed[0]["CommandPlugins"][0]["Output"]
    assert len(output) == 2500
    assert output.startswith("ooo") and output.endswith("---Output truncated---")


def test_list_command_invocations(runner: RunnerServer, ec2_instances: Instances) -> None:
    second = ec2_instances.other_running
    ssm = _ssm(runner)
    reply = ssm.send_command(
        DocumentName="AWS-RunShellScript",
        InstanceIds=[ec2_instances.running, second],
        Parameters={"commands": ["echo on-each-instance"]},
    )
    command_id = reply["Command"]["CommandId"]
    for instance_id in (ec2_instances.running, second):
        assert _wait(runner, command_id, instance_id)["Status"] == "Success"
    plain = ssm.list_command_invocations(CommandId=command_id)["CommandInvocations"]
    assert sorted(i["InstanceId"] for i in plain) == sorted([ec2_instances.running, second])
    assert all(i["CommandPlugins"] == [] and i["Status"] == "Success" for i in plain)
    detailed = ssm.list_command_invocations(CommandId=command_id, InstanceId=second, Details=True)
    (only,) = detailed["CommandInvocations"]
    (plugin,) = only["CommandPlugins"]
    assert plugin["Name"] == "aws:runShellScript"
    assert plugin["Output"] == "on-each-instance\n"
    assert plugin["ResponseCode"] == 0
    command = ssm.list_commands(CommandId=command_id)["Commands"][0]
    assert command["TargetCount"] == 2 and command["CompletedCount"] == 2
    page = ssm.list_command_invocations(CommandId=command_id, MaxResults=1)
    assert len(page["CommandInvocations"]) == 1 and "NextToken" in page
    unknown = ssm.list_command_invocations(CommandId="00000000-0000-0000-0000-000000000000")
    assert unknown["CommandInvocations"] == []


def test_unknown_invocation_does_not_exist(runner: RunnerServer, ec2_instances: Instances) -> None:
    ssm = _ssm(runner)
    with pytest.raises(ssm.exceptions.InvocationDoesNotExist):
        ssm.get_command_invocation(
            CommandId="00000000-0000-0000-0000-000000000000", InstanceId=ec2_instances.running
        )
    command_id = _send(runner, ec2_instances.running, ["true"])
    with pytest.raises(ssm.exceptions.InvocationDoesNotExist):
        ssm.get_command_invocation(CommandId=command_id, InstanceId="i-0123456789abcdef0")


def test_unknown_instance_is_refused(runner: RunnerServer) -> None:
    ssm = _ssm(runner)
    with pytest.raises(ssm.exceptions.InvalidInstanceId) as caught:
        _send(runner, "i-0123456789abcdef0", ["echo never"])
    assert "i-0123456789abcdef0" in caught.value.response["Error"]["Message"]


def test_stopped_instance_is_refused(runner: RunnerServer, ec2_instances: Instances) -> None:
    ssm = _ssm(runner)
    with pytest.raises(ssm.exceptions.InvalidInstanceId) as caught:
        _send(runner, ec2_instances.stopped, ["echo never"])
    message = caught.value.response["Error"]["Message"]
    assert message == f"Instances [[{ec2_instances.stopped}]] not in a valid state for account 123456789012"


def test_other_documents_are_invalid(runner: RunnerServer, ec2_instances: Instances) -> None:
    ssm = _ssm(runner)
    with pytest.raises(ssm.exceptions.InvalidDocument):
        ssm.send_command(
            DocumentName="AWS-RunPowerShellScript",
            InstanceIds=[ec2_instances.running],
            Parameters={"commands": ["dir"]},
        )


def test_bad_parameters_are_invalid(runner: RunnerServer, ec2_instances: Instances) -> None:
    ssm = _ssm(runner)
    for parameters in (
        {"commands": []},
        {"commands": ["true"], "colour": ["red"]},
        {"commands": ["true"], "executionTimeout": ["0"]},
    ):
        with pytest.raises(ssm.exceptions.InvalidParameters):
            ssm.send_command(
                DocumentName="AWS-RunShellScript", InstanceIds=[ec2_instances.running], Parameters=parameters
            )


def test_unsupported_operation_is_reported(runner: RunnerServer) -> None:
    with pytest.raises(ClientError) as caught:
        _ssm(runner).describe_instance_information()
    assert caught.value.response["Error"]["Code"] == "UnknownOperationException"
