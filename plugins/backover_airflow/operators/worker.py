"""Run one ``backover`` command on the EC2 worker through SSM Run Command, and show its output.

:class:`WorkerCommandOperator` builds the command line from the environment and the run's Params
at run time (:mod:`backover_airflow.commands`), sends it with the provider's :class:`SsmHook`, and
waits in :class:`~backover_airflow.triggers.worker.WorkerCommandTrigger`: in the triggerer with
``deferrable=True`` (no worker slot is held while a restore runs for hours), in the worker slot
otherwise. The command's output goes to the environment's CloudWatch Logs group
(``CloudWatchOutputConfig``, the Variable's ``log_group``, by default ``/backover/<prefix>``) and
the trigger streams it into the task log while the command runs: its progress lines show as they
come, all of them. Either way the trigger's event comes back to
:meth:`WorkerCommandOperator.execute_complete`, the one place that decides the task's outcome
(with the command's last line as the reason of a failure); without a log group it also writes the
output SSM kept (head and tail of a long one) into the task log there.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.hooks.ssm import SsmHook
from airflow.providers.amazon.aws.operators.base_aws import AwsBaseOperator
from airflow.providers.amazon.aws.utils import validate_execute_complete_event
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException, conf
from botocore.exceptions import ClientError

from backover_airflow import commands, config
from backover_airflow.hooks.worker import ssm_reason
from backover_airflow.triggers.worker import ENDED, WorkerCommandTrigger, cancel_command, error_code

if TYPE_CHECKING:
    from airflow.sdk import Context

DOCUMENT = "AWS-RunShellScript"
#: The worker's exit status for bad usage or configuration: retrying cannot help.
USAGE_EXIT_CODE = 2
#: How long to wait for a just-started worker's SSM agent to accept commands.
AGENT_WAIT_SECONDS = 300
#: SendCommand's default ``TimeoutSeconds``: how long SSM lets a command wait for delivery before
#: it reports it ``TimedOut``; the default wait limit adds it to the command's ``executionTimeout``.
SSM_DELIVERY_TIMEOUT_SECONDS = 3600


def default_max_attempts(command_timeout_seconds: int, delay: float) -> int:
    """Looks enough for SSM itself to end the command: delivery plus execution timeout, one more look."""
    return math.ceil((SSM_DELIVERY_TIMEOUT_SECONDS + command_timeout_seconds) / delay) + 1


class WorkerCommandOperator(AwsBaseOperator[SsmHook]):
    """Run ``backover <command>`` on the environment's worker and log what it printed.

    The task fails when the command fails: exit status 2 (bad usage or configuration) fails it
    without retries; any other failure, a timeout or a cancel fails it with the command's last
    output line as the reason. When the wait gives up (``waiter_max_attempts`` looks) or SSM
    refuses a look, the command is cancelled and the task fails with a one-line reason. Killing
    the task cancels the command (the operator's ``on_kill`` while it waits in the slot, the
    trigger's ``on_kill`` while it is deferred).

    :param command: the ``backover`` sub-command (``replicate``, ``backup``, ``restore``,
        ``verify``, ``clean``, ``abort``).
    :param options: the command's own options for :func:`backover_airflow.commands.arguments`
        (``{"label": "documentdb"}`` for a backup; templated).
    :param worker: the EC2 instance to run on (templated; a mapped copy gets its worker from
        :func:`backover_airflow.workers.spread`); default: the environment's ``worker_instance_id``.
    :param waiter_delay: seconds between two looks at the command (default: the environment's
        ``poll_interval_seconds``).
    :param waiter_max_attempts: looks before the wait gives up and cancels the command (default:
        enough for SSM's own delivery timeout plus the environment's ``command_timeout_seconds``,
        so SSM ends a command that runs too long before this limit does).
    :param deferrable: wait in the triggerer instead of a worker slot (default: Airflow's
        ``operators.default_deferrable``, else False).
    :param aws_conn_id: AWS connection for SSM (default ``aws_default``).
    """

    aws_hook_class = SsmHook
    template_fields: Sequence[str] = aws_template_fields("command", "options", "worker")
    ui_color = "#c9e7ff"

    def __init__(
        self,
        *,
        command: str,
        options: dict[str, Any] | None = None,
        worker: str | None = None,
        waiter_delay: float | None = None,
        waiter_max_attempts: int | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.command = command
        self.options = options or {}
        self.worker = worker
        self.waiter_delay = waiter_delay
        self.waiter_max_attempts = waiter_max_attempts
        self.deferrable = deferrable
        self._command_id: str | None = None
        self._instance_id: str | None = None

    def execute(self, context: Context) -> dict[str, Any]:
        with config.failing_task():
            env, run = config.load(context["params"])
            line = commands.command_line(env, commands.arguments(self.command, env, run, **self.options))
        instance_id = self.worker or env.worker_instance_id
        delay = self.waiter_delay or env.poll_interval_seconds
        # What SSM's console lists: the command, the migration and its own option values (the
        # backup's label, the copied partition).
        named = "".join(f" {value}" for value in self.options.values() if isinstance(value, str))
        log_group = env.command_log_group
        send_kwargs: dict[str, Any] = {
            "DocumentName": DOCUMENT,
            "InstanceIds": [instance_id],
            "Comment": f"backover {commands.title(self.command)} {run.migration_id}{named}"[:100],
            "Parameters": {
                "commands": commands.shell_script(line, live=log_group is not None),
                "executionTimeout": [str(env.command_timeout_seconds)],
            },
        }
        if log_group is not None:
            send_kwargs["CloudWatchOutputConfig"] = {
                "CloudWatchLogGroupName": log_group,
                "CloudWatchOutputEnabled": True,
            }
        self.log.info("Running on worker %s: %s", instance_id, line)
        command_id = self._send(instance_id, send_kwargs, delay)
        trigger = WorkerCommandTrigger(
            command=commands.title(self.command),
            command_id=command_id,
            instance_id=instance_id,
            waiter_delay=delay,
            waiter_max_attempts=self.waiter_max_attempts
            or default_max_attempts(env.command_timeout_seconds, delay),
            log_group=log_group,
            deferred_at=time.time() if self.deferrable else None,
            aws_conn_id=self.aws_conn_id,
            region_name=self.region_name,
            verify=self.verify,
            botocore_config=self.botocore_config,
        )
        how = "in the triggerer" if self.deferrable else "in this worker slot"
        self.log.info(
            "Waiting %s for SSM command %s: a look every %g s, at most %d looks; %s",
            how,
            command_id,
            trigger.waiter_delay,
            trigger.waiter_max_attempts,
            f"its output streams in from CloudWatch Logs group {log_group} as it runs"
            if log_group is not None
            else "its output shows when it ends (no CloudWatch log group)",
        )
        if self.deferrable:
            self.defer(trigger=trigger, method_name="execute_complete")
        return self.execute_complete(context, trigger.wait_here())

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """The trigger's event -> the task's outcome (deferred or not: the one place that decides)."""
        event = validate_execute_complete_event(event)
        self._command_id, self._instance_id = event["command_id"], event["instance_id"]
        if event["status"] != ENDED:
            # The task ends now: the command must not go on running unwatched.
            raise AirflowException(
                f"{event['message']}; {cancel_command(self.hook, event['command_id'], self.log)}"
            )
        return self._finish(event["invocation"], event.get("output"))

    def _send(self, instance_id: str, send_kwargs: dict[str, Any], delay: float) -> str:
        """SendCommand, waiting (at most :data:`AGENT_WAIT_SECONDS`) while a just-started worker's
        SSM agent is not online yet."""
        deadline = time.monotonic() + AGENT_WAIT_SECONDS
        while True:
            try:
                response = self.hook.conn.send_command(**send_kwargs)
            except ClientError as e:
                if error_code(e) != "InvalidInstanceId" or time.monotonic() > deadline:
                    raise
                self.log.info(
                    "Worker %s does not accept commands yet (SSM agent not online); waiting", instance_id
                )
                time.sleep(delay)
                continue
            self._command_id, self._instance_id = response["Command"]["CommandId"], instance_id
            self.log.info("SSM command %s sent", self._command_id)
            return str(self._command_id)

    def _finish(self, invocation: dict[str, Any], output: dict[str, Any] | None = None) -> dict[str, Any]:
        """Log the command's output (unless it was streamed: ``output`` is its summary); return a
        summary, or fail the task with the reason."""
        status, code = invocation["Status"], invocation.get("ResponseCode", -1)
        if output is not None:
            self.log.info(
                "---- the %d lines of output of backover %s are above, as they came (CloudWatch Logs "
                "group %s) ----",
                output["lines"],
                commands.title(self.command),
                output["log_group"],
            )
        else:
            self.log_output(invocation)
        result = {
            "command_id": invocation.get("CommandId", self._command_id),
            "instance_id": invocation.get("InstanceId", self._instance_id),
            "command": self.command,
            "status": status,
            "exit_code": code,
        }
        if status == "Success":
            self.log.info("backover %s succeeded on %s", commands.title(self.command), result["instance_id"])
            return result
        if output is not None:
            reason = output["last_line"] or output["last_error_line"]
        else:
            reason = ssm_reason(invocation)
        message = (
            f"backover {commands.title(self.command)} {status.lower()} on {result['instance_id']} "
            f"(exit {code}): {reason}"
        )
        if status == "Failed" and code == USAGE_EXIT_CODE:
            raise AirflowFailException(message)
        raise AirflowException(message)

    def log_output(self, invocation: dict[str, Any]) -> None:
        """Write the command's standard output and error into the task log, line by line."""
        for stream, prefix in (("StandardOutputContent", "|"), ("StandardErrorContent", "!")):
            text = invocation.get(stream) or ""
            if not text.strip():
                continue
            self.log.info("---- output of backover %s (%s) ----", commands.title(self.command), stream)
            for line in text.rstrip("\n").splitlines():
                self.log.info("%s %s", prefix, line)

    def on_kill(self) -> None:
        """Cancel the command on the worker when the task is killed while it waits in the slot."""
        if self._command_id is not None:
            cancel_command(self.hook, self._command_id, self.log)
