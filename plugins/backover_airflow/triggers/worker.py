"""The wait for one ``backover`` command on the worker: SSM ``GetCommandInvocation`` until it ends.

:class:`WorkerCommandTrigger` is where a :class:`~backover_airflow.operators.worker.WorkerCommandOperator`
waits, in the triggerer (``deferrable=True``) or, run to its event by :meth:`~WorkerCommandTrigger.wait_here`,
in the worker slot (``deferrable=False``): one wait, one limit, whichever runs it. It looks through the
provider's :class:`SsmHook` every ``waiter_delay`` seconds, at most ``waiter_max_attempts`` times;
boto3 is synchronous, so each look runs in a thread (the provider's own ``SsmRunCommandTrigger``
needs aiobotocore, which Back Over does not install). It fires one event, which the operator's
``execute_complete`` turns into the task's outcome:

* ``ended``: the invocation reached a terminal status; the event carries its status, exit code and
  output (:data:`INVOCATION_FIELDS`);
* ``gave_up``: ``waiter_max_attempts`` looks saw the command still pending or running;
* ``error``: SSM refused a look (``InvocationDoesNotExist`` just after ``SendCommand`` counts as
  pending, as SSM reports a new invocation a moment late).

A user who kills the deferred task (mark failed or success, clear) runs :meth:`~WorkerCommandTrigger.on_kill`,
which cancels the command. ``cleanup`` does not: it also runs when a triggerer restarts and the
trigger moves to another one, and the command must go on then.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any, Protocol

from airflow.providers.amazon.aws.hooks.ssm import SsmHook
from airflow.triggers.base import TriggerEvent
from botocore.exceptions import ClientError

from backover_airflow.triggers.base import AwsConnectionTrigger

#: Invocation statuses after which SSM reports nothing new.
TERMINAL = frozenset({"Success", "Failed", "Cancelled", "TimedOut"})
#: What an ``ended`` event keeps of the invocation.
INVOCATION_FIELDS = (
    "CommandId",
    "InstanceId",
    "Status",
    "StatusDetails",
    "ResponseCode",
    "StandardOutputContent",
    "StandardErrorContent",
)
ENDED, GAVE_UP, ERROR = "ended", "gave_up", "error"
#: How often a long command's progress is noted in the log while it runs.
STILL_RUNNING_EVERY_SECONDS = 60


def error_code(e: ClientError) -> str:
    """The AWS error code of a refused call (``InvalidInstanceId``, ``InvocationDoesNotExist`` ...)."""
    return str(e.response.get("Error", {}).get("Code", ""))


def _refusal(call: str, e: ClientError) -> str:
    message = " ".join(str(e.response.get("Error", {}).get("Message", "")).split())
    return f"SSM {call} refused: {error_code(e)}" + (f": {message}" if message else "")


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

    def own_kwargs(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "command_id": self.command_id,
            "instance_id": self.instance_id,
            "waiter_delay": self.waiter_delay,
            "waiter_max_attempts": self.waiter_max_attempts,
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

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = self.hook()
        started = noted = time.monotonic()
        status = "Pending"
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
            if status in TERMINAL:
                yield self._event(
                    ENDED, invocation={k: invocation[k] for k in INVOCATION_FIELDS if k in invocation}
                )
                return
            now = time.monotonic()
            if now - noted >= STILL_RUNNING_EVERY_SECONDS:
                noted = now
                self.log.info(
                    "backover %s is %s on %s after %.0f s (its output shows when it ends)",
                    self.command,
                    status,
                    self.instance_id,
                    now - started,
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
