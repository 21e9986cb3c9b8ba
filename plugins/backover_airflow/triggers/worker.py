"""The wait for one ``backover`` command on the worker: SSM ``GetCommandInvocation`` until it ends,
its output streamed into the task log meanwhile.

:class:`WorkerCommandTrigger` is where a :class:`~backover_airflow.operators.worker.WorkerCommandOperator`
waits, in the triggerer (``deferrable=True``) or, run to its event by :meth:`~WorkerCommandTrigger.wait_here`,
in the worker slot (``deferrable=False``): one wait, one limit, whichever runs it. It looks through the
provider's :class:`SsmHook` every ``waiter_delay`` seconds, at most ``waiter_max_attempts`` times;
boto3 is synchronous, so each look runs in a thread (the provider's own ``SsmRunCommandTrigger``
needs aiobotocore, which Back Over does not install). It fires one event, which the operator's
``execute_complete`` turns into the task's outcome:

* ``ended``: the invocation reached a terminal status; the event carries its status and exit code
  (:data:`INVOCATION_FIELDS`) and either ``output`` (the summary of what was streamed from
  CloudWatch, completed from SSM's copy where CloudWatch fell short: its lines, the last one) or,
  without ``log_group``, the output SSM kept;
* ``gave_up``: ``waiter_max_attempts`` looks saw the command still pending or running;
* ``error``: SSM refused a look (``InvocationDoesNotExist`` just after ``SendCommand`` counts as
  pending, as SSM reports a new invocation a moment late).

Live output: with ``log_group`` (the command was sent with ``CloudWatchOutputConfig``) each look
also reads the lines the command wrote since the last one from CloudWatch Logs
(:class:`~backover_airflow.hooks.worker.CommandOutput`) and logs them, ``| line`` (its output) and
``! line`` (SSM's own errors), so they show in the task log while the command runs: in the worker
slot the trigger's log is the task's; in the triggerer, Airflow 3 writes a trigger's log to the
task's log (``<task log>.trigger.<triggerer job id>.log``, served by the triggerer's log server
while the task is deferred), and the task log view shows it with the task's own lines. All of the
output is logged this way, nothing cut. After the command ends, the agent's last upload and
CloudWatch's ingestion may still be on their way: the streams are read on, every
:data:`SETTLE_SECONDS`, until what SSM kept shows nothing is missing
(:meth:`~backover_airflow.hooks.worker.CommandOutput.missing`: SSM's whole output when under
24,000 characters, else the copy of its end the worker script writes to standard error) or, when
SSM cannot tell, until two reads in a row bring nothing; at most :data:`FINAL_READ_SECONDS`. What
SSM kept and CloudWatch still lacks is then logged from SSM's copy, with a warning, and its last
line is the failure's reason; so too when CloudWatch refuses the read (only what was not streamed
yet) or holds nothing (the worker's role may not write there).

A trigger cannot keep state: one that moves to another triggerer (a restart) is built again from
its kwargs and reads the output from the start again, into that triggerer's log file. What the
first triggerer logged before it went away is not known to the second (the last lines it read
may not have been flushed to the log), so nothing is skipped; a trigger that starts more than
:data:`MOVED_AFTER_SECONDS` after the task deferred (``deferred_at``) says so in the log before the
lines it reads again, and again once it has caught up.

A user who kills the deferred task (mark failed or success, clear) runs :meth:`~WorkerCommandTrigger.on_kill`,
which cancels the command. ``cleanup`` does not: it also runs when a triggerer restarts and the
trigger moves to another one, and the command must go on then.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any, Protocol

from airflow.providers.amazon.aws.hooks.logs import AwsLogsHook
from airflow.providers.amazon.aws.hooks.ssm import SsmHook
from airflow.triggers.base import TriggerEvent
from botocore.exceptions import ClientError

from backover_airflow.hooks.worker import CommandOutput, ssm_end
from backover_airflow.triggers.base import AwsConnectionTrigger

#: Invocation statuses after which SSM reports nothing new.
TERMINAL = frozenset({"Success", "Failed", "Cancelled", "TimedOut"})
#: What an ``ended`` event keeps of the invocation (the output SSM kept only without CloudWatch).
INVOCATION_FIELDS = ("CommandId", "InstanceId", "Status", "StatusDetails", "ResponseCode")
SSM_OUTPUT_FIELDS = ("StandardOutputContent", "StandardErrorContent")
ENDED, GAVE_UP, ERROR = "ended", "gave_up", "error"
#: How often a long command is noted in the log while it runs and prints nothing new.
STILL_RUNNING_EVERY_SECONDS = 60
#: After the command ended, the output is read again this often: SSM's agent may send its last
#: lines, and CloudWatch ingest them, a while after it reports the end ...
SETTLE_SECONDS = 1.0
#: ... at most this long.
FINAL_READ_SECONDS = 20.0
#: A deferred trigger that starts this long after the task deferred was most likely moved from
#: another triggerer (a restart): the lines it reads first may already be in the log.
MOVED_AFTER_SECONDS = 30.0
#: How a line of each stream is marked in the task log.
MARKS = {"stdout": "|", "stderr": "!"}


def error_code(e: ClientError) -> str:
    """The AWS error code of a refused call (``InvalidInstanceId``, ``InvocationDoesNotExist`` ...)."""
    return str(e.response.get("Error", {}).get("Code", ""))


def _refusal(call: str, e: ClientError) -> str:
    message = " ".join(str(e.response.get("Error", {}).get("Message", "")).split())
    return f"SSM {call} refused: {error_code(e)}" + (f": {message}" if message else "")


def _output_missing(output: CommandOutput, invocation: dict[str, Any]) -> bool:
    """Whether SSM kept output lines that the reads of CloudWatch did not give."""
    return any(stream == "stdout" for stream, _ in output.missing(invocation))


class _Log(Protocol):
    """An operator's or a trigger's ``log`` (Airflow's loggers are not ``logging.Logger``)."""

    def info(self, msg: str, /, *args: Any) -> Any: ...

    def warning(self, msg: str, /, *args: Any) -> Any: ...


def cancel_command(hook: SsmHook, command_id: str, log: _Log) -> str:
    """``CancelCommand``; returns what happened, in words for the log and the task's reason.

    Never raises: the caller ends the task either way, and SSM's refusal is logged.
    """
    log.info("Cancelling SSM command %s", command_id)
    try:
        hook.conn.cancel_command(CommandId=command_id)
    except ClientError as e:
        log.warning("Could not cancel SSM command %s: %s", command_id, _refusal("CancelCommand", e))
        return f"cancelling SSM command {command_id} failed ({error_code(e)})"
    return f"SSM command {command_id} cancelled"


class WorkerCommandTrigger(AwsConnectionTrigger):
    """Fire when a ``backover`` command sent through SSM Run Command ends, or the wait gives up.

    :param command: the ``backover`` sub-command (for the messages).
    :param command_id: the SSM command.
    :param instance_id: the worker it runs on.
    :param waiter_delay: seconds between two looks.
    :param waiter_max_attempts: how many looks before giving up.
    :param log_group: the CloudWatch Logs group the command sends its output to, streamed into the
        log at each look (default None: the output SSM kept comes with the event).
    :param deferred_at: when the task deferred (``time.time()``; None: waits in the slot), to tell
        in the log that a trigger moved to another triggerer reads the output again from the start.
    :param aws_conn_id: AWS connection for SSM (default ``aws_default``; None = boto3's own settings).
    :param region_name: AWS region (default: the connection's).
    :param verify: TLS verification (default: boto3's).
    :param botocore_config: botocore client configuration (default: none).
    """

    def __init__(
        self,
        *,
        command: str,
        command_id: str,
        instance_id: str,
        waiter_delay: float,
        waiter_max_attempts: int,
        log_group: str | None = None,
        deferred_at: float | None = None,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        verify: bool | str | None = None,
        botocore_config: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(
            aws_conn_id=aws_conn_id, region_name=region_name, verify=verify, botocore_config=botocore_config
        )
        self.command = command
        self.command_id = command_id
        self.instance_id = instance_id
        self.waiter_delay = waiter_delay
        self.waiter_max_attempts = waiter_max_attempts
        self.log_group = log_group
        self.deferred_at = deferred_at

    def own_kwargs(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "command_id": self.command_id,
            "instance_id": self.instance_id,
            "waiter_delay": self.waiter_delay,
            "waiter_max_attempts": self.waiter_max_attempts,
            "log_group": self.log_group,
            "deferred_at": self.deferred_at,
        }

    def hook(self) -> SsmHook:
        return SsmHook(**self.hook_kwargs())

    def _event(self, status: str, **fields: Any) -> TriggerEvent:
        return TriggerEvent(
            {
                "status": status,
                "command": self.command,
                "command_id": self.command_id,
                "instance_id": self.instance_id,
                **fields,
            }
        )

    def _look(self, hook: SsmHook) -> dict[str, Any]:
        try:
            return hook.get_command_invocation(self.command_id, self.instance_id)
        except ClientError as e:
            if error_code(e) != "InvocationDoesNotExist":
                raise
            return {"Status": "Pending"}

    def output(self) -> CommandOutput | None:
        """The command's output in CloudWatch Logs, None without ``log_group``."""
        if self.log_group is None:
            return None
        return CommandOutput(
            AwsLogsHook(**self.hook_kwargs()), self.log_group, self.command_id, self.instance_id
        )

    async def _forward(self, output: CommandOutput) -> int:
        """Log the lines the command wrote since the last look; how many."""
        refused = output.refused
        lines = await asyncio.to_thread(output.read)
        for stream, line in lines:
            self.log.info("%s %s", MARKS[stream], line)
        if output.refused is not None and refused is None:
            self.log.warning(
                "Cannot read the output of backover %s from CloudWatch Logs group %s (%s): it shows "
                "when the command ends, as much as SSM keeps",
                self.command,
                output.log_group,
                output.refused,
            )
        return len(lines)

    async def _settle(self, output: CommandOutput, invocation: dict[str, Any]) -> None:
        """After the end: read on until SSM's copy shows no output line is missing or, when SSM
        cannot tell, two reads in a row bring nothing; at most :data:`FINAL_READ_SECONDS`."""
        deadline = time.monotonic() + FINAL_READ_SECONDS
        empty = 0
        while output.refused is None and time.monotonic() < deadline:
            if ssm_end(invocation) is not None:  # SSM's copy says what is still missing
                if not _output_missing(output, invocation):
                    return
            elif empty >= 2:  # SSM cannot tell (a killed command): two empty reads end it
                return
            await asyncio.sleep(SETTLE_SECONDS)
            empty = 0 if await self._forward(output) else empty + 1

    def _ended(self, invocation: dict[str, Any], output: CommandOutput | None) -> TriggerEvent:
        fields = {k: invocation[k] for k in INVOCATION_FIELDS if k in invocation}
        if output is None:
            kept = {k: invocation[k] for k in SSM_OUTPUT_FIELDS if k in invocation}
            return self._event(ENDED, invocation={**fields, **kept})
        missing = output.missing(invocation)
        if output.refused is None and output.lines == 0 and missing:
            self.log.warning(
                "CloudWatch Logs group %s holds no output of SSM command %s (may the worker's "
                "instance role write there?): what SSM kept follows",
                output.log_group,
                self.command_id,
            )
        elif output.refused is None and _output_missing(output, invocation):
            self.log.warning(
                "CloudWatch Logs group %s lacks the last lines of the output of backover %s %g s "
                "after it ended: they follow as SSM kept them",
                output.log_group,
                self.command,
                FINAL_READ_SECONDS,
            )
        elif output.refused is not None and missing:
            self.log.warning("The rest of the output of backover %s, as SSM kept it:", self.command)
        for stream, line in missing:
            self.log.info("%s %s", MARKS[stream], line)
        output.add(missing)
        return self._event(ENDED, invocation=fields, output=output.summary())

    def _moved(self) -> bool:
        """Whether this trigger most likely moved from another triggerer, and says so in the log."""
        late = time.time() - self.deferred_at if self.deferred_at is not None else 0.0
        if self.log_group is None or late < MOVED_AFTER_SECONDS:
            return False
        self.log.warning(
            "---- this trigger started %.0f s after the task deferred (a triggerer restart moves it): "
            "the output of backover %s is read again from its start, its lines up to the next "
            "'caught up' line may repeat lines above ----",
            late,
            self.command,
        )
        return True

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = self.hook()
        output = self.output()
        started = quiet_since = time.monotonic()
        status = "Pending"
        moved = self._moved()
        for attempt in range(1, self.waiter_max_attempts + 1):
            try:
                invocation = await asyncio.to_thread(self._look, hook)
            except ClientError as e:
                yield self._event(
                    ERROR,
                    message=f"backover {self.command} on {self.instance_id}: "
                    f"{_refusal('GetCommandInvocation', e)}",
                )
                return
            status = str(invocation.get("Status", "Pending"))
            if output is not None and await self._forward(output):
                quiet_since = time.monotonic()
            if moved and output is not None:
                moved = False
                self.log.warning(
                    "---- caught up: the %d lines read again end here; new lines follow ----", output.lines
                )
            if status in TERMINAL:
                if output is not None:
                    await self._settle(output, invocation)
                yield self._ended(invocation, output)
                return
            now = time.monotonic()
            if now - quiet_since >= STILL_RUNNING_EVERY_SECONDS:
                quiet_since = now
                self.log.info(
                    "backover %s is %s on %s after %.0f s (%s)",
                    self.command,
                    status,
                    self.instance_id,
                    now - started,
                    "no new output for a while"
                    if output is not None
                    else "no CloudWatch log group: its output shows when it ends",
                )
            if attempt < self.waiter_max_attempts:
                await asyncio.sleep(self.waiter_delay)
        yield self._event(
            GAVE_UP,
            message=(
                f"backover {self.command} still {status} on {self.instance_id} after {self.waiter_max_attempts} "
                f"looks {self.waiter_delay:g} s apart (waiter_max_attempts)"
            ),
        )

    def wait_here(self) -> dict[str, Any]:
        """Run this trigger to its event in the calling thread (``deferrable=False``); the event's payload."""

        async def first_event() -> dict[str, Any]:
            async for event in self.run():
                return dict(event.payload)
            raise RuntimeError("WorkerCommandTrigger ended without an event")  # run() always yields

        return asyncio.run(first_event())

    async def on_kill(self) -> None:
        """The user killed the deferred task: cancel the command on the worker."""
        await asyncio.to_thread(cancel_command, self.hook(), self.command_id, self.log)
