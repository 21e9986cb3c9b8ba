"""``backover sandbox up | down | status | env`` as a user runs them: real processes on loopback."""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from pymongo import MongoClient
from pymongo.errors import OperationFailure

from backover_sandbox import manager, processes
from backover_sandbox.config import Ports, SandboxConfig, free_port_base

pytestmark = pytest.mark.slow  # backover sandbox up/down: the sandbox's processes

PORT_BASE = free_port_base(31600)  # apart from a hand-started sandbox (31000) and the rehearsal's (31200)
REPO = Path(__file__).resolve().parents[3]


def backover(*args: str, directory: Path, port_base: int = PORT_BASE) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "backover",
            "sandbox",
            *args,
            "--dir",
            str(directory),
            "--port-base",
            str(port_base),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )


def parse_exports(text: str) -> dict[str, str]:
    env = {}
    for line in text.splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        env[name] = shlex.split(value)[0]
    return env


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, str]]]:
    directory = tmp_path_factory.mktemp("sandbox")
    up = backover("up", directory=directory)
    assert up.returncode == 0, up.stderr
    env = parse_exports(backover("env", directory=directory).stdout)
    yield directory, env
    backover("down", directory=directory)


def test_up_serves_every_endpoint_to_plain_clients(sandbox, monkeypatch):
    directory, env = sandbox
    for name in (
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_LAMBDA",
        "AWS_ENDPOINT_URL_SSM",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_DEFAULT_REGION",
    ):
        monkeypatch.setenv(name, env[name])
    variable = json.loads(env["AIRFLOW_VAR_BACKOVER"])
    secret_ids = variable["secret_ids"]
    sm = boto3.client("secretsmanager")
    master = json.loads(sm.get_secret_value(SecretId=secret_ids["documentdb"])["SecretString"])
    app = json.loads(sm.get_secret_value(SecretId=secret_ids["app_user"])["SecretString"])

    with MongoClient(
        host=master["host"],
        port=master["port"],
        username=app["username"],
        password=app["password"],
        directConnection=True,
        retryWrites=False,
    ) as c:
        assert c.shop.orders.count_documents({}) == 50
        c.shop.orders.insert_one({"_id": "from-test"})
        with pytest.raises(OperationFailure) as denied:
            c.admin.command("createUser", "x", pwd="y", roles=[])
        assert denied.value.code == 13

    target = json.loads(env["AIRFLOW_CONN_BACKOVER_MONGODB"])
    with MongoClient(
        host=target["host"],
        port=target["port"],
        username=target["login"],
        password=target["password"],
        directConnection=True,
    ) as c:
        assert c.admin.command("buildInfo")["version"]

    assert variable["bucket"] in [b["Name"] for b in boto3.client("s3").list_buckets()["Buckets"]]
    instance = boto3.client("ec2").describe_instances(InstanceIds=[variable["worker_instance_id"]])
    assert instance["Reservations"][0]["Instances"][0]["State"]["Name"] == "running"
    probe = boto3.client("lambda").invoke(FunctionName="backover-sandbox-probe", Payload=b'{"x": 1}')
    assert json.loads(probe["Payload"].read())["echo"] == {"x": 1}
    ssm = boto3.client("ssm")
    sent = ssm.send_command(
        InstanceIds=[variable["worker_instance_id"]],
        DocumentName="AWS-RunShellScript",
        Parameters={"commands": ["echo $AWS_ENDPOINT_URL"]},
    )["Command"]
    ssm.get_waiter("command_executed").wait(
        CommandId=sent["CommandId"],
        InstanceId=variable["worker_instance_id"],
        WaiterConfig={"Delay": 1, "MaxAttempts": 30},
    )
    output = ssm.get_command_invocation(
        CommandId=sent["CommandId"], InstanceId=variable["worker_instance_id"]
    )
    assert output["StandardOutputContent"].strip() == env["AWS_ENDPOINT_URL"]  # commands reach the sandbox


def test_state_file_and_logs_hold_no_password(sandbox):
    directory, env = sandbox
    passwords = [
        json.loads(env[f"AIRFLOW_CONN_BACKOVER_{label}"])["password"] for label in ("DOCUMENTDB", "MONGODB")
    ]
    for path in directory.rglob("*"):
        if path.is_file():
            text = path.read_text(errors="replace")
            assert not any(p in text for p in passwords), path


def test_up_twice_is_harmless_and_status_reports(sandbox):
    directory, _ = sandbox
    before = json.loads((directory / "state.json").read_text())["pids"]
    again = backover("up", directory=directory)
    assert again.returncode == 0, again.stderr
    assert json.loads((directory / "state.json").read_text())["pids"] == before
    status = backover("status", directory=directory)
    assert status.returncode == 0
    assert all(s["answering"] for s in json.loads(status.stdout).values())


def test_down_stops_exactly_what_up_started(sandbox):
    """The last test on the module's sandbox (starting one costs seconds): it takes it down."""
    directory, _ = sandbox
    pids = json.loads((directory / "state.json").read_text())["pids"]
    assert sorted(pids) == ["documentdb", "mongodb", "moto", "runner"]
    unrelated = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        down = backover("down", directory=directory)
        assert down.returncode == 0
        assert "stopped runner, mongodb, documentdb, moto" in down.stdout
        assert _pids_with_marker(directory) == []
        assert unrelated.poll() is None
        assert not (directory / "state.json").exists()
        assert backover("down", directory=directory).stdout.strip().endswith("(it was not running)")
    finally:
        unrelated.kill()


def test_port_in_use_gives_one_line_and_starts_nothing(tmp_path):
    base = free_port_base(PORT_BASE + 50)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", base + 17))  # the documentdb stand-in's port
        busy.listen(1)
        result = backover("up", directory=tmp_path, port_base=base)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "documentdb port" in lines[0] and "in use" in lines[0]
    assert not (tmp_path / "state.json").exists()
    assert not list(tmp_path.glob("*.pid"))


def test_service_that_does_not_come_up_stops_everything(tmp_path, monkeypatch):
    config = SandboxConfig(
        directory=tmp_path, ports=Ports.from_base(free_port_base(PORT_BASE + 80)), project_root=REPO
    )
    real_argv = manager._argv

    def broken_mongodb(cfg, name, registry):
        if name == "mongodb":
            return [sys.executable, "-c", "import sys; print('boom: cannot start'); sys.exit(3)"]
        return real_argv(cfg, name, registry)

    monkeypatch.setattr(manager, "_argv", broken_mongodb)
    with pytest.raises(manager.SandboxError) as info:
        manager.up(config)
    assert "mongodb did not come up" in str(info.value) and "boom" in str(info.value)
    assert (tmp_path / "moto.log").exists() and (
        tmp_path / "documentdb.log"
    ).exists()  # started, then stopped
    assert not (tmp_path / "state.json").exists()
    assert _pids_with_marker(tmp_path) == []


def _pids_with_marker(directory: Path) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                environ = (entry / "environ").read_bytes()
            except OSError:
                continue
            if f"{processes.MARKER_ENV}={directory}:".encode() in environ:
                found.append(int(entry.name))
    return found


def test_env_without_a_sandbox_is_a_usage_error(tmp_path):
    result = backover("env", directory=tmp_path)
    assert result.returncode == 2
    assert "no sandbox is up" in result.stderr


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for name in list(os.environ):
        if name.startswith("AWS_ENDPOINT_URL"):
            monkeypatch.delenv(name)
