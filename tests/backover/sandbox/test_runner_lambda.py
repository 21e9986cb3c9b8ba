"""The runner's Lambda Invoke API, driven by a real boto3 Lambda client."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from backover_sandbox.runner import RunnerServer, start_in_thread

pytestmark = pytest.mark.slow  # every invocation starts a Python process

HANDLER = """
import os
import subprocess
import time
from pathlib import Path

import helper  # a sibling module: the handler's folder is on sys.path, as in Lambda


def handler(event, context):
    action = event.get("action", "echo")
    print(f"handling {action}")
    if action == "echo":
        return {
            "event": event,
            "function_name": context.function_name,
            "request_id": context.aws_request_id,
            "remaining_ms": context.get_remaining_time_in_millis(),
            "greeting": os.environ.get("GREETING"),
            "runner_var": os.environ.get("BACKOVER_RUNNER_TEST_VAR"),
            "cwd": os.getcwd(),
            "helper": helper.VALUE,
        }
    if action == "raise":
        raise ValueError("bad input: " + event.get("why", ""))
    if action == "sleep":
        child = subprocess.Popen(["sleep", "60"])
        Path(event["pid_file"]).write_text(str(child.pid))
        time.sleep(60)
        return "never"
    if action == "touch":
        time.sleep(0.2)
        Path(event["path"]).write_text("done by " + context.aws_request_id)
        return None
    if action == "chatty":
        for i in range(500):
            print(f"line {i:04d} " + "x" * 40)
        print("last line")
        return "chatted"
    if action == "exit":
        os._exit(7)
    return {"unknown": action}
"""


def _client(runner: RunnerServer) -> Any:
    return boto3.client("lambda", endpoint_url=runner.url, region_name="us-east-1")


def _admin(runner: RunnerServer, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(runner.url + path, data=data, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            raw = reply.read()
            return reply.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


@pytest.fixture(scope="module")
def function_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A function folder with ``handler.py`` and a sibling ``helper.py``."""
    folder = tmp_path_factory.mktemp("lambda-fn")
    (folder / "handler.py").write_text(HANDLER, encoding="utf-8")
    (folder / "helper.py").write_text("VALUE = 'from helper'\n", encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def fn(runner: RunnerServer, function_dir: Path) -> str:
    """Register the test function through the admin endpoint; return its name."""
    status, reply = _admin(
        runner,
        "PUT",
        "/_runner/functions/runner-test-fn",
        {
            "handler": "handler.py:handler",
            "working_dir": str(function_dir),
            "environment": {"GREETING": "hello"},
            "timeout": 1,
        },
    )
    assert status == 200, reply
    return "runner-test-fn"


def _invoke(runner: RunnerServer, name: str, event: Any, **kwargs: Any) -> tuple[dict[str, Any], Any]:
    reply = _client(runner).invoke(FunctionName=name, Payload=json.dumps(event).encode(), **kwargs)
    raw = reply["Payload"].read()
    return reply, (json.loads(raw) if raw else None)


def test_request_response_returns_handler_result(
    runner: RunnerServer, fn: str, function_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BACKOVER_RUNNER_TEST_VAR", "inherited")
    reply, payload = _invoke(runner, fn, {"action": "echo", "n": 1})
    assert reply["StatusCode"] == 200
    assert "FunctionError" not in reply
    assert reply["ExecutedVersion"] == "$LATEST"
    assert "LogResult" not in reply
    assert payload["event"] == {"action": "echo", "n": 1}
    assert payload["function_name"] == fn
    assert payload["greeting"] == "hello"
    assert payload["runner_var"] == "inherited"
    assert payload["helper"] == "from helper"
    assert Path(payload["cwd"]) == function_dir
    assert 0 < payload["remaining_ms"] <= 1000
    assert payload["request_id"] == reply["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]


def test_clients_reach_the_runner_through_aws_endpoint_url_lambda(
    runner: RunnerServer, fn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", runner.url)
    client = boto3.client("lambda", region_name="us-east-1")  # no endpoint_url: taken from the env
    reply = client.invoke(FunctionName=fn, Payload=b'{"action": "echo"}')
    assert json.loads(reply["Payload"].read())["function_name"] == fn


def test_handler_exception_is_an_unhandled_function_error(runner: RunnerServer, fn: str) -> None:
    reply, payload = _invoke(runner, fn, {"action": "raise", "why": "no table"}, LogType="Tail")
    assert reply["StatusCode"] == 200
    assert reply["FunctionError"] == "Unhandled"
    assert payload["errorType"] == "ValueError"
    assert payload["errorMessage"] == "bad input: no table"
    assert any("handler.py" in frame for frame in payload["stackTrace"])
    assert not any("bootstrap.py" in frame for frame in payload["stackTrace"])
    log = base64.b64decode(reply["LogResult"]).decode()
    assert "[ERROR] ValueError: bad input: no table" in log


def test_timeout_kills_the_handler_and_its_children(runner: RunnerServer, fn: str, tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    started = time.monotonic()
    reply, payload = _invoke(runner, fn, {"action": "sleep", "pid_file": str(pid_file)}, LogType="Tail")
    assert time.monotonic() - started < 5
    assert reply["FunctionError"] == "Unhandled"
    assert payload["errorType"] == "Sandbox.Timedout"
    assert "Task timed out after 1.00 seconds" in payload["errorMessage"]
    log = base64.b64decode(reply["LogResult"]).decode()
    assert "Task timed out after 1.00 seconds" in log
    assert "Status: timeout" in log
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and _alive(child):
        time.sleep(0.05)
    assert not _alive(child), "the handler's child process survived the timeout"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A killed child of the (also killed) handler may linger as a zombie until reaped by init.
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_tail_returns_the_last_4_kb_of_the_log(runner: RunnerServer, fn: str) -> None:
    reply, payload = _invoke(runner, fn, {"action": "chatty"}, LogType="Tail")
    assert payload == "chatted"
    log = base64.b64decode(reply["LogResult"])
    assert len(log) == 4096
    text = log.decode()
    assert "last line\nEND RequestId: " in text
    lines = text.rstrip("\n").splitlines()
    assert lines[-1].startswith("REPORT RequestId: ")
    assert "\tDuration: " in lines[-1] and "\tMemory Size: 128 MB" in lines[-1]
    assert "line 0000" not in text  # the head of the log was cut


def test_start_line_is_in_a_short_log(runner: RunnerServer, fn: str) -> None:
    reply, _ = _invoke(runner, fn, {"action": "echo"}, LogType="Tail")
    lines = base64.b64decode(reply["LogResult"]).decode().splitlines()
    request_id = reply["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
    assert lines[0] == f"START RequestId: {request_id} Version: $LATEST"
    assert lines[1] == "handling echo"
    assert lines[2] == f"END RequestId: {request_id}"


def test_event_invocation_runs_in_the_background(runner: RunnerServer, fn: str, tmp_path: Path) -> None:
    marker = tmp_path / "event-marker"
    reply, payload = _invoke(runner, fn, {"action": "touch", "path": str(marker)}, InvocationType="Event")
    assert reply["StatusCode"] == 202
    assert payload is None
    assert not marker.exists()  # the handler sleeps before writing: the call did not wait for it
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not marker.exists():
        time.sleep(0.05)
    assert marker.read_text().startswith("done by ")


def test_dry_run_checks_without_running(runner: RunnerServer, fn: str) -> None:
    reply, payload = _invoke(runner, fn, {"action": "raise"}, InvocationType="DryRun")
    assert reply["StatusCode"] == 204
    assert payload is None


def test_unknown_function_is_resource_not_found(runner: RunnerServer) -> None:
    client = _client(runner)
    with pytest.raises(client.exceptions.ResourceNotFoundException) as caught:
        client.invoke(FunctionName="no-such-function", Payload=b"{}")
    error = caught.value.response
    assert error["Error"]["Code"] == "ResourceNotFoundException"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert "function:no-such-function" in error["Error"]["Message"]


def test_arn_and_qualifier_are_accepted(runner: RunnerServer, fn: str) -> None:
    arn = f"arn:aws:lambda:us-east-1:123456789012:function:{fn}"
    reply, payload = _invoke(runner, arn, {"action": "echo"}, Qualifier="3")
    assert reply["ExecutedVersion"] == "3"
    assert payload["function_name"] == fn
    reply, _ = _invoke(runner, f"{fn}:$LATEST", {"action": "echo"})
    assert reply["ExecutedVersion"] == "$LATEST"


def test_payload_that_is_not_json_is_rejected(runner: RunnerServer, fn: str) -> None:
    client = _client(runner)
    with pytest.raises(ClientError) as caught:
        client.invoke(FunctionName=fn, Payload=b"{not json")
    assert caught.value.response["Error"]["Code"] == "InvalidRequestContentException"


def test_empty_payload_is_an_empty_event(runner: RunnerServer, fn: str) -> None:
    reply = _client(runner).invoke(FunctionName=fn)
    assert json.loads(reply["Payload"].read())["event"] == {}


def test_process_exit_is_a_runtime_exit_error(runner: RunnerServer, fn: str) -> None:
    reply, payload = _invoke(runner, fn, {"action": "exit"})
    assert reply["FunctionError"] == "Unhandled"
    assert payload["errorType"] == "Runtime.ExitError"
    assert "exit status 7" in payload["errorMessage"]


def test_missing_handler_module_is_an_import_error(runner: RunnerServer, function_dir: Path) -> None:
    status, _ = _admin(
        runner,
        "PUT",
        "/_runner/functions/runner-test-missing",
        {"handler": "missing_module.handler", "working_dir": str(function_dir)},
    )
    assert status == 200
    reply, payload = _invoke(runner, "runner-test-missing", {})
    assert reply["FunctionError"] == "Unhandled"
    assert payload["errorType"] == "Runtime.ImportModuleError"
    assert "missing_module" in payload["errorMessage"]


def test_admin_endpoint_lists_validates_and_deletes(runner: RunnerServer, fn: str) -> None:
    status, listing = _admin(runner, "GET", "/_runner/functions")
    assert status == 200
    described = {item["name"]: item for item in listing["functions"]}[fn]
    assert described["environment_keys"] == ["GREETING"]
    assert "hello" not in json.dumps(listing)  # environment values are never echoed
    status, reply = _admin(runner, "PUT", "/_runner/functions/bad-fn", {"handler": "x.py:h", "timeout": 0})
    assert status == 400 and "timeout" in reply["error"]
    status, reply = _admin(runner, "PUT", "/_runner/functions/bad-fn", {"handler": "x.py:h", "colour": "red"})
    assert status == 400 and "colour" in reply["error"]
    status, _ = _admin(runner, "PUT", "/_runner/functions/tmp-fn", {"handler": "x.py:h"})
    assert status == 200
    assert _admin(runner, "DELETE", "/_runner/functions/tmp-fn")[0] == 204
    assert _admin(runner, "GET", "/_runner/functions/tmp-fn")[0] == 404


def test_health(runner: RunnerServer) -> None:
    assert _admin(runner, "GET", "/_runner/health") == (200, {"status": "ok"})


def test_registry_file_is_loaded(tmp_path: Path, function_dir: Path, aws_env: None) -> None:
    code_dir = tmp_path / "code"
    code_dir.mkdir()
    for name in ("handler.py", "helper.py"):
        (code_dir / name).write_text((function_dir / name).read_text())
    registry = tmp_path / "functions.json"
    registry.write_text(
        json.dumps(
            {
                "functions": {
                    "from-file": {
                        "handler": "handler.py:handler",
                        "working_dir": "code",  # relative to the registry file's folder
                        "environment": {"GREETING": "from the registry"},
                    }
                }
            }
        )
    )
    server, port = start_in_thread(registry=registry)
    try:
        assert server.port == port
        reply, payload = _invoke(server, "from-file", {"action": "echo"})
        assert reply["StatusCode"] == 200, payload
        assert payload["greeting"] == "from the registry"
        assert Path(payload["cwd"]) == code_dir
    finally:
        server.stop()


def test_cli_serves_and_stops_on_sigterm_without_logging_bodies(tmp_path: Path, function_dir: Path) -> None:
    registry = tmp_path / "functions.json"
    registry.write_text(
        json.dumps(
            {"functions": {"cli-fn": {"handler": "handler.py:handler", "working_dir": str(function_dir)}}}
        )
    )
    port_file = tmp_path / "port"
    log_file = tmp_path / "runner.log"
    with log_file.open("wb") as log_out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "backover_sandbox.runner",
                "--port",
                "0",
                "--port-file",
                str(port_file),
                "--registry",
                str(registry),
                "--workdir",
                str(tmp_path),
            ],
            stdout=log_out,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and not port_file.exists():
                time.sleep(0.05)
            port = int(port_file.read_text())
            client = boto3.client(
                "lambda",
                endpoint_url=f"http://127.0.0.1:{port}",
                region_name="us-east-1",
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
            )
            reply = client.invoke(FunctionName="cli-fn", Payload=json.dumps({"password": "s3cr3t-value"}))
            assert reply["StatusCode"] == 200
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=10) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    log = log_file.read_text()
    assert "POST /2015-03-31/functions/cli-fn/invocations Lambda -> 200" in log
    assert "s3cr3t-value" not in log
    assert "runner stopped" in log
