"""A worker command's output in CloudWatch Logs, read on from where the last read stopped.

A command sent with ``CloudWatchOutputConfig`` has SSM's agent send what it writes, while it
runs, to two log streams of the group: ``<CommandId>/<InstanceId>/aws-runShellScript/stdout``
and ``.../stderr`` (:func:`stream_name`, SSM's names; the worker script sends the command's own
errors to stdout with the rest, so stderr holds the agent's own lines such as ``failed to run
commands: exit status 1``). :class:`CommandOutput` reads both with ``GetLogEvents`` through the
Amazon provider's :class:`AwsLogsHook`, each stream from its ``nextForwardToken``, so each read
returns only what is new, and keeps what the end needs: the number of lines and each stream's last
line (a failed command's reason). Nothing is cut: CloudWatch keeps the whole output, where SSM's
``StandardOutputContent`` keeps its first 24,000 characters.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from airflow.providers.amazon.aws.hooks.logs import AwsLogsHook
from botocore.exceptions import BotoCoreError, ClientError

#: The step name of ``AWS-RunShellScript`` in SSM's log stream names.
STEP = "aws-runShellScript"
#: The two streams, in the order a read returns them.
STREAMS = ("stdout", "stderr")
#: ``GetLogEvents``' answer for a stream SSM has not created yet (no output so far).
NOT_FOUND = "ResourceNotFoundException"
#: Answers after which the next read tries again (what was read so far is kept).
TRY_AGAIN = frozenset({"ThrottlingException", "ServiceUnavailableException", "InternalFailure"})


def stream_name(command_id: str, instance_id: str, stream: str) -> str:
    """``<CommandId>/<InstanceId>/aws-runShellScript/stdout`` (or ``stderr``), as SSM names it."""
    return f"{command_id}/{instance_id}/{STEP}/{stream}"


@dataclass
class CommandOutput:
    """The output of one command on one instance in log group ``log_group``.

    :param hook: the provider's CloudWatch Logs hook (the operator's AWS connection).
    :param log_group: where the command sends its output (``CloudWatchLogGroupName``).
    :param command_id: the SSM command.
    :param instance_id: the worker it runs on.
    """

    hook: AwsLogsHook
    log_group: str
    command_id: str
    instance_id: str
    #: lines read so far (both streams)
    lines: int = 0
    #: each stream's last non-blank line so far
    last: dict[str, str] = field(default_factory=lambda: dict.fromkeys(STREAMS, ""))
    #: CloudWatch's refusal (``AccessDeniedException: ...``), after which nothing more is read
    refused: str | None = None
    _tokens: dict[str, AwsLogsHook.ContinuationToken] = field(
        default_factory=lambda: {stream: AwsLogsHook.ContinuationToken() for stream in STREAMS}
    )

    def read(self) -> list[tuple[str, str]]:
        """The lines written since the last read, ``(stream, line)``, each stream's in order; blank
        lines are left out. A stream not created yet has nothing new; throttling or an unreachable
        endpoint leaves the rest to the next read; any other refusal is kept in :attr:`refused` and
        ends the reading (the command goes on)."""
        if self.refused is not None:
            return []
        new: list[tuple[str, str]] = []
        for stream in STREAMS:
            try:
                for event in self.hook.get_log_events(
                    self.log_group,
                    stream_name(self.command_id, self.instance_id, stream),
                    start_from_head=True,
                    continuation_token=self._tokens[stream],
                ):
                    new.extend((stream, line) for line in event["message"].splitlines() if line.strip())
            except BotoCoreError:
                break
            except ClientError as e:
                error = e.response.get("Error", {})
                if error.get("Code") in TRY_AGAIN:
                    break
                if error.get("Code") != NOT_FOUND:
                    self.refused = (
                        f"{error.get('Code', '')}: {' '.join(str(error.get('Message', '')).split())}"
                    )
                    break
        for stream, line in new:
            self.last[stream] = line.strip()
        self.lines += len(new)
        return new

    def summary(self) -> dict[str, object]:
        """What the task's end needs of the output: where it is, how many lines, the last ones."""
        return {
            "log_group": self.log_group,
            "streams": [stream_name(self.command_id, self.instance_id, stream) for stream in STREAMS],
            "lines": self.lines,
            "last_line": self.last["stdout"],
            "last_error_line": self.last["stderr"],
        }
