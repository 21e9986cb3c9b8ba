"""SSM Run Command state and execution: one local ``bash`` per (command, instance).

An invocation goes ``Pending`` -> ``InProgress`` -> ``Success`` | ``Failed`` | ``TimedOut`` |
``Cancelled`` (``Cancelling`` while a cancel is being carried out), with the ``StatusDetails``
and ``ResponseCode`` the SSM agent reports: the script's exit code, ``-1`` before it ran, and 137
(SIGKILL) when the runner killed it for a timeout or a cancel. Output is kept in full in memory
and cut to SSM's sizes when reported; with ``CloudWatchOutputConfig`` it also goes to CloudWatch
Logs line by line while the command runs (``cloudwatch.py``), all of it before the end is reported.
"""

from __future__ import annotations

import logging
import os
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from .cloudwatch import CloudWatchLogs, CommandOutput, default_group
from .procs import ProcessTracker, kill_group
from .protocol import iso_duration, iso_millis, utc_now

log = logging.getLogger(__name__)

PLUGIN_NAME = "aws:runShellScript"
MAX_STDOUT = 24_000
MAX_STDERR = 8_000
MAX_PLUGIN_OUTPUT = 2_500
STOPPED_EXIT_CODE = 137  # the agent's exit code for a command it killed (timeout or cancel)
TERMINAL = frozenset({"Success", "Failed", "TimedOut", "Cancelled"})
ERROR_STATES = frozenset({"Failed", "TimedOut"})
MAX_KEPT_COMMANDS = 1_000
#: How long the output pipes may stay open after a killed command (a child that kept them).
KILLED_OUTPUT_SECONDS = 5
_NO_CLOUDWATCH = {"CloudWatchLogGroupName": "", "CloudWatchOutputEnabled": False}
_ERROR_TITLE = "\n----------ERROR-------\n"
_TRUNCATED = "\n---Output truncated---"


def truncate_plugin_output(stdout: str, stderr: str, capacity: int = MAX_PLUGIN_OUTPUT) -> str:
    """Join stdout and stderr the way the agent does for a plugin's ``Output``, cut to ``capacity``."""
    text = stdout + (_ERROR_TITLE + stderr if stderr else "")
    if len(text) <= capacity:
        return text
    return text[: capacity - len(_TRUNCATED)] + _TRUNCATED


@dataclass
class Invocation:
    """One command on one instance."""

    instance_id: str
    status: str = "Pending"
    status_details: str = "Pending"
    response_code: int = -1
    started: datetime | None = None
    finished: datetime | None = None
    stdout: str = ""
    stderr: str = ""
    cancel_requested: bool = False
    proc: subprocess.Popen[bytes] | None = None

    @property
    def done(self) -> bool:
        """Whether the invocation reached a terminal state."""
        return self.status in TERMINAL


@dataclass
class Command:
    """One ``SendCommand``: the request as given plus its invocations."""

    command_id: str
    document_name: str
    document_version: str
    comment: str
    parameters: dict[str, list[str]]
    instance_ids: list[str]
    requested: datetime
    timeout_seconds: int
    execution_timeout: int
    working_directory: Path
    script: str
    echo: dict[str, Any] = field(default_factory=dict)
    invocations: dict[str, Invocation] = field(default_factory=dict)
    cancel_requested: bool = False
    cloudwatch: dict[str, Any] = field(default_factory=lambda: dict(_NO_CLOUDWATCH))
    region: str = "us-east-1"

    @property
    def log_group(self) -> str | None:
        """The CloudWatch Logs group the output goes to, None when not asked for."""
        if not self.cloudwatch.get("CloudWatchOutputEnabled"):
            return None
        return str(self.cloudwatch.get("CloudWatchLogGroupName") or default_group(self.document_name))

    def status(self) -> tuple[str, str]:
        """Return the command-level ``(Status, StatusDetails)`` from its invocations."""
        states = [inv.status for inv in self.invocations.values()]
        if not all(state in TERMINAL for state in states):
            if self.cancel_requested:
                return "Cancelling", "Cancelling"
            if any(state != "Pending" for state in states):
                return "InProgress", "InProgress"
            return "Pending", "Pending"
        if all(state == "Success" for state in states):
            return "Success", "Success"
        if self.cancel_requested and "Cancelled" in states:
            return "Cancelled", "Cancelled"
        if "TimedOut" in states and "Failed" not in states:
            return "TimedOut", "ExecutionTimedOut"
        return "Failed", "Failed"


def _read(pipe: IO[bytes] | None, chunks: list[bytes], stream: str, output: CommandOutput | None) -> None:
    """Read one output pipe to its end, line by line, keeping every byte and sending each line."""
    if pipe is None:
        return
    with pipe:
        for raw in iter(pipe.readline, b""):
            chunks.append(raw)
            if output is not None:
                output.line(stream, raw.decode("utf-8", "replace"))


class CommandStore:
    """Thread-safe in-memory store of commands, and the threads that run them."""

    def __init__(self, tracker: ProcessTracker, logs: CloudWatchLogs | None = None) -> None:
        self.tracker = tracker
        self.logs = logs or CloudWatchLogs(None)
        self._lock = threading.RLock()
        self._commands: dict[str, Command] = {}

    # ------------------------------------------------------------ lifecycle

    def submit(
        self,
        *,
        document_name: str,
        document_version: str,
        comment: str,
        parameters: dict[str, list[str]],
        instance_ids: list[str],
        timeout_seconds: int,
        execution_timeout: int,
        working_directory: Path,
        script: str,
        echo: dict[str, Any],
        cloudwatch: dict[str, Any] | None = None,
        region: str = "us-east-1",
    ) -> Command:
        """Record a new command (all invocations ``Pending``); :meth:`start` runs it."""
        command = Command(
            command_id=str(uuid.uuid4()),
            document_name=document_name,
            document_version=document_version,
            comment=comment,
            parameters=parameters,
            instance_ids=list(instance_ids),
            requested=utc_now(),
            timeout_seconds=timeout_seconds,
            execution_timeout=execution_timeout,
            working_directory=working_directory,
            script=script,
            echo=echo,
            invocations={instance_id: Invocation(instance_id) for instance_id in instance_ids},
            cloudwatch=dict(cloudwatch or _NO_CLOUDWATCH),
            region=region,
        )
        with self._lock:
            self._commands[command.command_id] = command
            self._evict()
        return command

    def start(self, command: Command) -> None:
        """Start one runner thread per instance of a submitted command."""
        for invocation in command.invocations.values():
            threading.Thread(
                target=self._run,
                args=(command, invocation),
                name=f"ssm-{command.command_id[:8]}-{invocation.instance_id}",
                daemon=True,
            ).start()
        log.info(
            "command %s: %s on %s (timeout %ss)",
            command.command_id,
            command.document_name,
            ",".join(command.instance_ids),
            command.execution_timeout,
        )

    def _evict(self) -> None:
        """Drop the oldest finished commands beyond :data:`MAX_KEPT_COMMANDS`."""
        excess = len(self._commands) - MAX_KEPT_COMMANDS
        if excess <= 0:
            return
        for command_id in [c.command_id for c in sorted(self._commands.values(), key=lambda c: c.requested)]:
            if excess <= 0:
                break
            if all(inv.done for inv in self._commands[command_id].invocations.values()):
                del self._commands[command_id]
                excess -= 1

    def get(self, command_id: str) -> Command | None:
        """Return the command, or None."""
        with self._lock:
            return self._commands.get(command_id)

    def all(self) -> list[Command]:
        """Return every command, newest first."""
        with self._lock:
            return sorted(self._commands.values(), key=lambda c: c.requested, reverse=True)

    def cancel(self, command: Command, instance_ids: list[str] | None) -> None:
        """Cancel ``command`` on ``instance_ids`` (all when None); finished invocations are left alone."""
        with self._lock:
            command.cancel_requested = True
            for invocation in command.invocations.values():
                if instance_ids is not None and invocation.instance_id not in instance_ids:
                    continue
                if invocation.done:
                    continue
                invocation.cancel_requested = True
                if invocation.status == "Pending":
                    self._finish(invocation, "Cancelled", "Cancelled", -1)
                else:
                    invocation.status = invocation.status_details = "Cancelling"
                    if invocation.proc is not None:
                        kill_group(invocation.proc)
        log.info("command %s: cancel requested", command.command_id)

    # ------------------------------------------------------------ execution

    def _finish(self, invocation: Invocation, status: str, details: str, code: int) -> None:
        invocation.status = status
        invocation.status_details = details
        invocation.response_code = code
        invocation.finished = utc_now()
        invocation.proc = None

    def _output(self, command: Command, invocation: Invocation) -> CommandOutput | None:
        group = command.log_group
        if group is None:
            return None
        return self.logs.output(group, command.region, command.command_id, invocation.instance_id)

    def _run(self, command: Command, invocation: Invocation) -> None:
        """Run the script for one instance and record the outcome."""
        with self._lock:
            if invocation.done:
                return
            invocation.status = invocation.status_details = "InProgress"
            invocation.started = utc_now()
        output = self._output(command, invocation)
        workdir = command.working_directory
        if not workdir.is_dir():
            message = f"failed to run commands: working directory {workdir} does not exist"
            if output is not None:
                output.line("stderr", message)
                output.close()
            with self._lock:
                if invocation.cancel_requested:
                    self._finish(invocation, "Cancelled", "Cancelled", -1)
                else:
                    invocation.stderr = message
                    self._finish(invocation, "Failed", "Failed", 1)
            return
        with tempfile.TemporaryDirectory(prefix="backover-ssm-") as tmp:
            script = Path(tmp) / "_script.sh"
            script.write_text(command.script + "\n", encoding="utf-8")
            stdout, stderr, code, timed_out = self._execute(command, invocation, script, output)
        failed = not (invocation.cancel_requested or timed_out or code == 0)
        if failed:
            separator = "\n" if stderr and not stderr.endswith("\n") else ""
            stderr = f"{stderr}{separator}failed to run commands: exit status {code}"
            if output is not None:
                output.line("stderr", f"failed to run commands: exit status {code}")
        if output is not None:
            output.close()  # all of the output is in CloudWatch before the end is reported
        with self._lock:
            invocation.stdout = stdout
            invocation.stderr = stderr
            if invocation.cancel_requested:
                self._finish(invocation, "Cancelled", "Cancelled", STOPPED_EXIT_CODE)
            elif timed_out:
                self._finish(invocation, "TimedOut", "ExecutionTimedOut", STOPPED_EXIT_CODE)
            elif code == 0:
                self._finish(invocation, "Success", "Success", 0)
            else:
                self._finish(invocation, "Failed", "Failed", code)
        log.info(
            "command %s on %s: %s (%s)",
            command.command_id,
            invocation.instance_id,
            invocation.status,
            invocation.response_code,
        )

    def _execute(
        self, command: Command, invocation: Invocation, script: Path, output: CommandOutput | None
    ) -> tuple[str, str, int, bool]:
        """Run ``bash script``, reading its output as it comes; return ``(stdout, stderr, exit code,
        timed out)``. The command times out when it (or a child keeping its output open) runs past
        ``executionTimeout``."""
        try:
            proc = self.tracker.spawn(["bash", str(script)], cwd=command.working_directory, env=os.environ)
        except (OSError, RuntimeError) as exc:
            return "", f"failed to run commands: {exc}", 1, False
        with self._lock:
            invocation.proc = proc
            if invocation.cancel_requested:
                kill_group(proc)
        deadline = time.monotonic() + command.execution_timeout
        chunks: dict[str, list[bytes]] = {"stdout": [], "stderr": []}
        readers = [
            threading.Thread(
                target=_read, args=(pipe, chunks[name], name, output), name=f"ssm-{name}", daemon=True
            )
            for name, pipe in (("stdout", proc.stdout), ("stderr", proc.stderr))
        ]
        for reader in readers:
            reader.start()
        timed_out = False
        try:
            try:
                proc.wait(timeout=max(deadline - time.monotonic(), 0))
                for reader in readers:
                    reader.join(timeout=max(deadline - time.monotonic(), 0))
                timed_out = any(reader.is_alive() for reader in readers)
            except subprocess.TimeoutExpired:
                timed_out = True
            if timed_out:
                kill_group(proc)
                proc.wait()
            for reader in readers:
                reader.join(timeout=KILLED_OUTPUT_SECONDS)
        finally:
            self.tracker.release(proc)
        stdout, stderr = (b"".join(chunks[name]).decode("utf-8", "replace") for name in ("stdout", "stderr"))
        return stdout, stderr, proc.returncode, timed_out

    # ------------------------------------------------------------- reporting

    def command_document(self, command: Command) -> dict[str, Any]:
        """Return the SSM ``Command`` shape for ``command``."""
        with self._lock:
            status, details = command.status()
            invocations = list(command.invocations.values())
            document: dict[str, Any] = {
                "CommandId": command.command_id,
                "DocumentName": command.document_name,
                "DocumentVersion": command.document_version,
                "Comment": command.comment,
                "ExpiresAfter": command.requested.timestamp() + command.timeout_seconds,
                "Parameters": command.parameters,
                "InstanceIds": list(command.instance_ids),
                "Targets": [],
                "RequestedDateTime": command.requested.timestamp(),
                "Status": status,
                "StatusDetails": details,
                "OutputS3Region": command.echo.get("OutputS3Region", ""),
                "OutputS3BucketName": command.echo.get("OutputS3BucketName", ""),
                "OutputS3KeyPrefix": command.echo.get("OutputS3KeyPrefix", ""),
                "MaxConcurrency": command.echo.get("MaxConcurrency", "50"),
                "MaxErrors": command.echo.get("MaxErrors", "0"),
                "TargetCount": len(invocations),
                "CompletedCount": sum(1 for inv in invocations if inv.done),
                "ErrorCount": sum(1 for inv in invocations if inv.status in ERROR_STATES),
                "DeliveryTimedOutCount": 0,
                "ServiceRole": command.echo.get("ServiceRoleArn", ""),
                "NotificationConfig": {
                    "NotificationArn": "",
                    "NotificationEvents": [],
                    "NotificationType": "",
                },
                "CloudWatchOutputConfig": dict(command.cloudwatch),
                "TimeoutSeconds": command.timeout_seconds,
            }
        return document

    def invocation_document(self, command: Command, invocation: Invocation) -> dict[str, Any]:
        """Return the ``GetCommandInvocation`` result for one invocation."""
        with self._lock:
            end = invocation.finished
            elapsed = ""
            if invocation.started is not None:
                elapsed = iso_duration(((end or utc_now()) - invocation.started).total_seconds())
            return {
                "CommandId": command.command_id,
                "InstanceId": invocation.instance_id,
                "Comment": command.comment,
                "DocumentName": command.document_name,
                "DocumentVersion": command.document_version,
                "PluginName": PLUGIN_NAME,
                "ResponseCode": invocation.response_code,
                "ExecutionStartDateTime": iso_millis(invocation.started),
                "ExecutionElapsedTime": elapsed,
                "ExecutionEndDateTime": iso_millis(end),
                "Status": invocation.status,
                "StatusDetails": invocation.status_details,
                "StandardOutputContent": invocation.stdout[:MAX_STDOUT] if invocation.done else "",
                "StandardOutputUrl": "",
                "StandardErrorContent": invocation.stderr[:MAX_STDERR] if invocation.done else "",
                "StandardErrorUrl": "",
                "CloudWatchOutputConfig": dict(command.cloudwatch),
            }

    def list_invocation_document(
        self, command: Command, invocation: Invocation, details: bool
    ) -> dict[str, Any]:
        """Return the ``ListCommandInvocations`` entry for one invocation."""
        with self._lock:
            document: dict[str, Any] = {
                "CommandId": command.command_id,
                "InstanceId": invocation.instance_id,
                "InstanceName": "",
                "Comment": command.comment,
                "DocumentName": command.document_name,
                "DocumentVersion": command.document_version,
                "RequestedDateTime": command.requested.timestamp(),
                "Status": invocation.status,
                "StatusDetails": invocation.status_details,
                "TraceOutput": "",
                "StandardOutputUrl": "",
                "StandardErrorUrl": "",
                "CommandPlugins": [],
                "ServiceRole": command.echo.get("ServiceRoleArn", ""),
                "NotificationConfig": {
                    "NotificationArn": "",
                    "NotificationEvents": [],
                    "NotificationType": "",
                },
                "CloudWatchOutputConfig": dict(command.cloudwatch),
            }
            if details:
                plugin: dict[str, Any] = {
                    "Name": PLUGIN_NAME,
                    "Status": invocation.status if invocation.status != "Cancelling" else "InProgress",
                    "StatusDetails": invocation.status_details,
                    "ResponseCode": invocation.response_code,
                    "Output": truncate_plugin_output(invocation.stdout, invocation.stderr)
                    if invocation.done
                    else "",
                    "StandardOutputUrl": "",
                    "StandardErrorUrl": "",
                    "OutputS3Region": command.echo.get("OutputS3Region", ""),
                    "OutputS3BucketName": command.echo.get("OutputS3BucketName", ""),
                    "OutputS3KeyPrefix": command.echo.get("OutputS3KeyPrefix", ""),
                }
                if invocation.started is not None:
                    plugin["ResponseStartDateTime"] = invocation.started.timestamp()
                if invocation.finished is not None:
                    plugin["ResponseFinishDateTime"] = invocation.finished.timestamp()
                document["CommandPlugins"] = [plugin]
            return document
