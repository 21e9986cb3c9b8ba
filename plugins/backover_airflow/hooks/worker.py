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

CloudWatch may also fall short: the agent's last upload or CloudWatch's ingestion can come after
the invocation reports its end, the read may be refused, or nothing arrives (the worker's role may
not write the group). :meth:`CommandOutput.missing` is what SSM kept that CloudWatch did not give:
the rest of ``StandardOutputContent`` when SSM kept it whole (under 24,000 characters), else the
end of the output the worker script copies to ``StandardErrorContent`` between
:data:`~backover_airflow.commands.END_BEGIN` and ``END_END`` (:func:`ssm_end`); the reader of
CloudWatch's stderr stream leaves that copy out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from airflow.providers.amazon.aws.hooks.logs import AwsLogsHook
from botocore.exceptions import BotoCoreError, ClientError

from backover_airflow.commands import END_BEGIN, END_END, SSM_STDOUT_CHARS

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


#: Between SSM's first 24,000 characters and the copy of the end, in the task log.
LEFT_OUT = "[... output left out: SSM keeps its first 24,000 characters and the end ...]"


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def ssm_end(invocation: dict[str, Any]) -> tuple[list[str], bool] | None:
    """The end of a command's output as SSM kept it, its non-blank lines, and whether they are all
    of it: all of ``StandardOutputContent`` when shorter than SSM cuts (``True``), else the copy of
    the end the worker script wrote to ``StandardErrorContent`` (``False``); None when SSM kept
    neither (a cut output without the copy)."""
    stdout = str(invocation.get("StandardOutputContent") or "")
    if len(stdout) < SSM_STDOUT_CHARS:
        return _lines(stdout), True
    copy = _end_copy(str(invocation.get("StandardErrorContent") or ""))
    return (copy, False) if copy else None


def _end_copy(stderr: str) -> list[str]:
    lines = _lines(stderr)
    if END_BEGIN not in lines:
        return []
    start = lines.index(END_BEGIN) + 1
    return lines[start : lines.index(END_END, start)] if END_END in lines[start:] else lines[start:]


def ssm_errors(invocation: dict[str, Any]) -> list[str]:
    """The non-blank lines of ``StandardErrorContent`` without the copy of the output's end (the
    agent's own lines, such as ``failed to run commands: exit status 1``)."""
    lines, kept, copying = _lines(str(invocation.get("StandardErrorContent") or "")), [], False
    for line in lines:
        if line in (END_BEGIN, END_END):
            copying = line == END_BEGIN
        elif not copying:
            kept.append(line)
    return kept


def ssm_reason(invocation: dict[str, Any]) -> str:
    """A failed command's one-line reason from what SSM kept: the output's last line (from the
    copy of its end when SSM cut it), else the agent's last error line."""
    end = ssm_end(invocation)
    if end is not None and end[0]:
        return end[0][-1]
    errors = ssm_errors(invocation)
    return errors[-1] if errors else ""


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
    #: lines read so far of each stream
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STREAMS, 0))
    #: each stream's last non-blank line so far
    last: dict[str, str] = field(default_factory=lambda: dict.fromkeys(STREAMS, ""))
    #: CloudWatch's refusal (``AccessDeniedException: ...``), after which nothing more is read
    refused: str | None = None
    _tokens: dict[str, AwsLogsHook.ContinuationToken] = field(
        default_factory=lambda: {stream: AwsLogsHook.ContinuationToken() for stream in STREAMS}
    )
    #: inside the worker script's copy of the output's end on stderr (left out: a copy)
    _copying: bool = False

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
                    new.extend((stream, line) for line in self._kept(stream, event["message"]))
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
            self.counts[stream] += 1
        self.lines += len(new)
        return new

    def _kept(self, stream: str, message: str) -> list[str]:
        """The non-blank lines of one event, without the copy of the output's end on stderr."""
        kept = []
        for line in message.splitlines():
            if stream == "stderr" and line.strip() in (END_BEGIN, END_END):
                self._copying = line.strip() == END_BEGIN
            elif line.strip() and not (stream == "stderr" and self._copying):
                kept.append(line)
        return kept

    def missing(self, invocation: dict[str, Any]) -> list[tuple[str, str]]:
        """What SSM kept of the ended ``invocation`` that the reads did not give, ``(stream,
        line)``: the output's lines after those read (all of them when SSM kept it whole; after
        the last line read in the copy of its end otherwise, the whole copy when that line is not
        in it), then the agent's error lines after those read."""
        new: list[tuple[str, str]] = []
        end = ssm_end(invocation)
        if end is not None:
            lines, whole = end
            if whole:
                rest = lines[self.counts["stdout"] :]
            elif self.last["stdout"] in lines:
                rest = lines[len(lines) - lines[::-1].index(self.last["stdout"]) :]
            else:
                # the reads stopped before the copied end: the rest of SSM's first 24,000
                # characters (its last line may be cut), what neither kept, the end
                head = _lines(str(invocation.get("StandardOutputContent") or ""))[:-1]
                rest = [*head[self.counts["stdout"] :], LEFT_OUT, *lines]
            new.extend(("stdout", line) for line in rest)
        new.extend(("stderr", line) for line in ssm_errors(invocation)[self.counts["stderr"] :])
        return new

    def add(self, lines: list[tuple[str, str]]) -> None:
        """Count ``lines`` (from SSM's copy, logged by the caller) as read."""
        for stream, line in lines:
            self.last[stream] = line
            self.counts[stream] += 1
        self.lines += len(lines)

    def summary(self) -> dict[str, object]:
        """What the task's end needs of the output: where it is, how many lines, the last ones."""
        return {
            "log_group": self.log_group,
            "streams": [stream_name(self.command_id, self.instance_id, stream) for stream in STREAMS],
            "lines": self.lines,
            "last_line": self.last["stdout"],
            "last_error_line": self.last["stderr"],
        }
