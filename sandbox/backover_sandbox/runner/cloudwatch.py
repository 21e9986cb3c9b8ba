"""A Run Command's output sent to CloudWatch Logs while it runs, as SSM's agent does.

With ``CloudWatchOutputConfig.CloudWatchOutputEnabled`` SSM's agent sends the command's standard
output and error to the log group ``CloudWatchLogGroupName`` (``aws/ssm/<document name>`` when
none is named), creating the group if it does not exist, in two log streams named
``<CommandId>/<InstanceId>/aws-runShellScript/stdout`` and ``.../stderr`` (:func:`stream_name`),
while the command runs; ``StandardOutputContent`` still keeps only the first 24,000 characters.
The runner does the same against CloudWatch Logs at ``endpoint_url`` (moto's server in the
sandbox): each output line is one log event, sent every :data:`FLUSH_SECONDS`, and everything is
sent before the invocation reports its end, unless a test sets
:attr:`CloudWatchLogs.ingestion_delay_seconds`: then each line arrives that long after it was
written, the last ones after the end is reported, as with the real agent's last upload or
CloudWatch's ingestion delay (test-only; product code never sets it). Blank lines are not sent (CloudWatch refuses an empty
event). A refusal is logged and the output goes on to ``StandardOutputContent`` only, as the
agent's does when its instance role may not write the logs.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from .aws_clients import RegionalClients

log = logging.getLogger(__name__)

#: The step name of ``AWS-RunShellScript`` in the agent's log stream names.
STEP = "aws-runShellScript"
STREAMS = ("stdout", "stderr")
#: How often a running command's new lines are sent.
FLUSH_SECONDS = 0.2
#: ``PutLogEvents`` limits: events and bytes per call (each event counts 26 bytes more than its
#: message), bytes per event.
MAX_BATCH_EVENTS = 10_000
MAX_BATCH_BYTES = 1_048_576
EVENT_OVERHEAD_BYTES = 26
MAX_EVENT_BYTES = 262_144 - EVENT_OVERHEAD_BYTES


def default_group(document_name: str) -> str:
    """SSM's log group when ``CloudWatchLogGroupName`` is not given."""
    return f"aws/ssm/{document_name}"


def stream_name(command_id: str, instance_id: str, stream: str) -> str:
    """``<CommandId>/<InstanceId>/aws-runShellScript/stdout`` (or ``stderr``), SSM's names."""
    return f"{command_id}/{instance_id}/{STEP}/{stream}"


def _pieces(text: str) -> list[str]:
    """``text`` cut so that no event exceeds CloudWatch's size (on character boundaries)."""
    if len(text.encode("utf-8")) <= MAX_EVENT_BYTES:
        return [text]
    pieces: list[str] = []
    piece: list[str] = []
    size = 0
    for char in text:
        width = len(char.encode("utf-8"))
        if size + width > MAX_EVENT_BYTES:
            pieces.append("".join(piece))
            piece, size = [], 0
        piece.append(char)
        size += width
    pieces.append("".join(piece))
    return pieces


class CloudWatchLogs:
    """CloudWatch Logs clients, one per region, at ``endpoint_url`` (None: output is not sent)."""

    def __init__(self, endpoint_url: str | None) -> None:
        self.endpoint_url = endpoint_url
        #: Test-only: each line is sent this long after it was written, the last ones after the
        #: invocation reports its end; 0 (default): at once, all before the end is reported.
        self.ingestion_delay_seconds = 0.0
        self._clients = RegionalClients("logs", endpoint_url)

    def client(self, region: str) -> Any:
        """The ``logs`` client of ``region``."""
        return self._clients.client(region)

    def output(self, group: str, region: str, command_id: str, instance_id: str) -> CommandOutput | None:
        """Where one invocation's output goes, started; None when no endpoint is configured."""
        if self.endpoint_url is None:
            log.warning("no CloudWatch Logs endpoint: the output of command %s is not sent", command_id)
            return None
        output = CommandOutput(
            self.client(region), group, command_id, instance_id, self.ingestion_delay_seconds
        )
        output.start()
        return output


class CommandOutput:
    """One invocation's two log streams; :meth:`line` queues, a thread sends, :meth:`close` ends."""

    def __init__(
        self, client: Any, group: str, command_id: str, instance_id: str, delay: float = 0.0
    ) -> None:
        self.client = client
        self.delay = delay
        self.group = group
        self.names = {stream: stream_name(command_id, instance_id, stream) for stream in STREAMS}
        self._pending: dict[str, list[dict[str, Any]]] = {stream: [] for stream in STREAMS}
        self._created: set[str] = set()
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"cwl-{command_id[:8]}", daemon=True)
        self._broken = False

    def start(self) -> None:
        """Send queued lines every :data:`FLUSH_SECONDS` until :meth:`close`."""
        self._thread.start()

    def line(self, stream: str, text: str) -> None:
        """Queue one output line (without its line break) of ``stdout`` or ``stderr``."""
        text = text.rstrip("\r\n")
        if not text.strip():
            return
        stamp = int(time.time() * 1000)
        with self._lock:
            self._pending[stream].extend({"timestamp": stamp, "message": piece} for piece in _pieces(text))

    def close(self) -> None:
        """Send what is left and stop (the invocation reports its end after this); with
        ``delay``, what is left is sent that much later, in the background."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        if self.delay > 0:
            threading.Timer(self.delay, self.flush).start()
            return
        self.flush()

    def _loop(self) -> None:
        while not self._stop.wait(FLUSH_SECONDS):
            self.flush(older_than=self.delay)

    def flush(self, older_than: float = 0.0) -> None:
        """Send the queued events written at least ``older_than`` seconds ago (default: all), in
        order, in batches within ``PutLogEvents``' limits."""
        cutoff = int((time.time() - older_than) * 1000)
        with self._send_lock:
            for stream in STREAMS:
                with self._lock:
                    queued = self._pending[stream]
                    ready = next((i for i, e in enumerate(queued) if e["timestamp"] > cutoff), len(queued))
                    events, self._pending[stream] = queued[:ready], queued[ready:]
                if events and not self._broken:
                    self._send(stream, events)

    def _send(self, stream: str, events: list[dict[str, Any]]) -> None:
        try:
            self._create(stream)
            for batch in _batches(events):
                self.client.put_log_events(
                    logGroupName=self.group, logStreamName=self.names[stream], logEvents=batch
                )
        except (ClientError, BotoCoreError) as exc:
            # As the agent: the command goes on, its output reaches StandardOutputContent only.
            self._broken = True
            log.warning("cannot send output to CloudWatch Logs group %s: %s", self.group, exc)

    def _create(self, stream: str) -> None:
        if stream in self._created:
            return
        for call, kwargs in (
            (self.client.create_log_group, {"logGroupName": self.group}),
            (
                self.client.create_log_stream,
                {"logGroupName": self.group, "logStreamName": self.names[stream]},
            ),
        ):
            try:
                call(**kwargs)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "ResourceAlreadyExistsException":
                    raise
        self._created.add(stream)


def _batches(events: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    batches: list[list[dict[str, Any]]] = [[]]
    size = 0
    for event in events:
        width = len(event["message"].encode("utf-8")) + EVENT_OVERHEAD_BYTES
        if batches[-1] and (len(batches[-1]) >= MAX_BATCH_EVENTS or size + width > MAX_BATCH_BYTES):
            batches.append([])
            size = 0
        batches[-1].append(event)
        size += width
    return [batch for batch in batches if batch]
