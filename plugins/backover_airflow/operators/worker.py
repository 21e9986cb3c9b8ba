"""Run one ``backover`` command on the EC2 worker through SSM Run Command, and show its output.

The provider's :class:`SsmRunCommandOperator` sends the command; this subclass builds the
command line from the environment and the run's Params at run time (:mod:`backover_airflow.commands`),
waits for the invocation, then writes the command's own output (its progress lines, its summary,
its one-line error) into the task log, so a user reads the replicator's, the backup's or the
restore's progress in the Airflow UI.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.operators.ssm import SsmRunCommandOperator
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException
from botocore.exceptions import ClientError

from backover_airflow import commands, config

if TYPE_CHECKING:
    from airflow.sdk import Context

DOCUMENT = "AWS-RunShellScript"
TERMINAL = frozenset({"Success", "Failed", "Cancelled", "TimedOut"})
#: The worker's exit status for bad usage or configuration: retrying cannot help.
USAGE_EXIT_CODE = 2
#: How long to wait for a just-started worker's SSM agent to accept commands.
AGENT_WAIT_SECONDS = 300
#: How often a long command's progress is noted in the log while it runs.
STILL_RUNNING_EVERY_SECONDS = 60


def _error_code(e: ClientError) -> str:
    return str(e.response.get("Error", {}).get("Code", ""))


def last_line(text: str) -> str:
    """The last non-empty line of an output (a failed command's one-line reason)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


class WorkerCommandOperator(SsmRunCommandOperator):
    """Run ``backover <command>`` on the environment's worker and log what it printed.

    The task fails when the command fails: exit status 2 (bad usage or configuration) fails it
    without retries; any other failure, a timeout or a cancel fails it with the command's last
    output line as the reason. Killing the task cancels the command. The wait happens in the
    worker slot (``deferrable`` is not supported: the provider's SSM trigger needs aiobotocore);
    the long waits of a migration are the sensors', which defer.

    :param command: the ``backover`` sub-command (``replicate``, ``backup``, ``restore``,
        ``verify``, ``clean``, ``abort``).
    :param options: the command's own options for :func:`backover_airflow.commands.arguments`
        (``{"label": "documentdb"}`` for a backup; templated).
    :param aws_conn_id: AWS connection for SSM (default ``aws_default``).
    """

    template_fields: Sequence[str] = aws_template_fields("command", "options")
    ui_color = "#c9e7ff"

    def __init__(self, *, command: str, options: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(document_name=DOCUMENT, **kwargs)
        self.command = command
        self.options = options or {}
        self._command_id: str | None = None
        self._instance_id: str | None = None

    def execute(self, context: Context) -> dict[str, Any]:
        try:
            env, run = config.load(context["params"])
            line = commands.command_line(env, commands.arguments(self.command, env, run, **self.options))
        except config.ConfigError as e:
            raise AirflowFailException(str(e)) from e
        instance_id = env.worker_instance_id
        self.waiter_delay = env.poll_interval_seconds
        self.run_command_kwargs = {
            "InstanceIds": [instance_id],
            "Comment": f"backover {self.command} {run.migration_id}"[:100],
            "Parameters": {
                "commands": commands.shell_script(line),
                "executionTimeout": [str(env.command_timeout_seconds)],
            },
        }
        self.log.info("Running on worker %s: %s", instance_id, line)
        command_id = self._send(instance_id)
        invocation = self._wait(command_id, instance_id)
        return self._finish(invocation)

    def _send(self, instance_id: str) -> str:
        """SendCommand, waiting while a just-started worker's SSM agent is not online yet."""
        deadline = time.monotonic() + AGENT_WAIT_SECONDS
        while True:
            try:
                response = self.hook.conn.send_command(DocumentName=self.document_name, **self.run_command_kwargs)
            except ClientError as e:
                if _error_code(e) != "InvalidInstanceId" or time.monotonic() > deadline:
                    raise
                self.log.info("Worker %s does not accept commands yet (SSM agent not online); waiting", instance_id)
                time.sleep(self.waiter_delay)
                continue
            self._command_id, self._instance_id = response["Command"]["CommandId"], instance_id
            self.log.info("SSM command %s sent", self._command_id)
            return self._command_id

    def _wait(self, command_id: str, instance_id: str) -> dict[str, Any]:
        """Poll the invocation until it ends; note progress every minute of a long command."""
        started = time.monotonic()
        noted = started
        while True:
            try:
                invocation = self.hook.conn.get_command_invocation(CommandId=command_id, InstanceId=instance_id)
            except ClientError as e:
                if _error_code(e) != "InvocationDoesNotExist":
                    raise
                invocation = {"Status": "Pending"}
            if invocation["Status"] in TERMINAL:
                return invocation
            now = time.monotonic()
            if now - noted >= STILL_RUNNING_EVERY_SECONDS:
                noted = now
                self.log.info(
                    "backover %s is %s on %s after %.0f s (its output shows when it ends)",
                    self.command, invocation["Status"], instance_id, now - started,
                )
            time.sleep(self.waiter_delay)

    def _finish(self, invocation: dict[str, Any]) -> dict[str, Any]:
        """Log the command's output; return a summary, or fail the task with the reason."""
        status, code = invocation["Status"], invocation.get("ResponseCode", -1)
        self.log_output(invocation)
        result = {
            "command_id": invocation.get("CommandId", self._command_id),
            "instance_id": invocation.get("InstanceId", self._instance_id),
            "command": self.command,
            "status": status,
            "exit_code": code,
        }
        if status == "Success":
            self.log.info("backover %s succeeded on %s", self.command, result["instance_id"])
            return result
        reason = last_line(invocation.get("StandardOutputContent", "")) or last_line(
            invocation.get("StandardErrorContent", "")
        )
        message = f"backover {self.command} {status.lower()} on {result['instance_id']} (exit {code}): {reason}"
        if status == "Failed" and code == USAGE_EXIT_CODE:
            raise AirflowFailException(message)
        raise AirflowException(message)

    def log_output(self, invocation: dict[str, Any]) -> None:
        """Write the command's standard output and error into the task log, line by line."""
        for stream, prefix in (("StandardOutputContent", "|"), ("StandardErrorContent", "!")):
            text = invocation.get(stream) or ""
            if not text.strip():
                continue
            self.log.info("---- output of backover %s (%s) ----", self.command, stream)
            for line in text.rstrip("\n").splitlines():
                self.log.info("%s %s", prefix, line)

    def on_kill(self) -> None:
        """Cancel the command on the worker when the task is killed."""
        if self._command_id is None:
            return
        self.log.info("Cancelling SSM command %s", self._command_id)
        try:
            self.hook.conn.cancel_command(CommandId=self._command_id)
        except ClientError as e:
            self.log.warning("Could not cancel SSM command %s: %s", self._command_id, _error_code(e))
