"""The watch loop: read change events as raw BSON, batch them into segments, checkpoint, drain.

Each event is kept as the bytes the server sent; only ``_id`` (the resume token),
``clusterTime`` and ``operationType`` are read, straight from the bytes (:mod:`.events`).
``position_token`` always marks the end of what was consumed (the last event's ``_id``, or the
``postBatchResumeToken`` after an empty batch) and ``position`` its cluster time (packed), so a
segment's checkpoint resumes exactly after its last event, and a re-opened stream neither skips
nor repeats one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from bson.timestamp import Timestamp
from pymongo.change_stream import ChangeStream
from pymongo.client_session import ClientSession
from pymongo.errors import PyMongoError

from .. import clustertime
from ..errors import JobFailed
from ..state import ReplicatorState
from . import drain, source, tokens
from .config import DRAIN_AWAIT_MS, ReplicateConfig
from .drain import DrainPoller
from .events import RawEvent, pack, unpack
from .namespaces import NamespaceFilter, WatchScope
from .retry import Backoff
from .segment_writer import SegmentBuffer, SegmentWriter
from .source import HistoryLost, StreamStart

log = logging.getLogger(__name__)

#: Timers (roll by age, heartbeat, progress, writer errors) are looked at this often while busy.
HOUSEKEEPING_SECONDS = 0.25


@dataclass
class ReplicateResult:
    """How a replicator run ended."""

    state: ReplicatorState  # drained, stopped (SIGTERM), or failed
    events_captured: int = 0  # this run
    segments_written: int = 0  # this run
    events_total: int = 0
    last_seq: int = 0
    reason: str | None = None
    drained_until: Timestamp | None = None

    def summary(self) -> str:
        line = (
            f"replicator {self.state}: {self.events_captured} events in {self.segments_written} segments "
            f"this run; {self.events_total} events in segments 1..{self.last_seq} in all"
        )
        if self.drained_until is not None:
            line += f"; drained until {clustertime.format(self.drained_until)}"
        return line + (f"; {self.reason}" if self.reason else "")


@dataclass
class _Finish:
    state: ReplicatorState
    reason: str | None = None
    drained_until: Timestamp | None = None


class _Broken(Exception):
    """The capture cannot go on; ``str(e)`` is the checkpoint's reason."""


class Opener(Protocol):
    """Opens the change stream at a position; ``await_ms`` (default: the configured one) bounds
    how long each getMore waits for events."""

    def __call__(
        self, at: StreamStart, await_ms: int | None = None
    ) -> tuple[ChangeStream[RawEvent], ClientSession]: ...


class Capture:
    """One run of the watch loop over an open stream."""

    def __init__(
        self,
        config: ReplicateConfig,
        scope: WatchScope,
        namespace_filter: NamespaceFilter | None,
        opener: Opener,
        opened: tuple[ChangeStream[RawEvent], ClientSession],
        start: StreamStart,
        writer: SegmentWriter,
        drain_poller: DrainPoller,
        stop: threading.Event,
    ) -> None:
        self.config = config
        self.scope = scope
        self.filter = namespace_filter
        self.opener = opener
        self.stream, self.session = opened
        self.start = start
        self.writer = writer
        self.drain = drain_poller
        self.stop = stop
        self.buffer = SegmentBuffer(config.max_events, config.max_bytes, config.max_seconds)
        self.await_ms = config.await_ms  # DRAIN_AWAIT_MS at most once a drain is requested
        checkpoint = writer.checkpoint
        self.state = ReplicatorState.RUNNING
        self.position_token: Mapping[str, Any] | None = start.token
        # Every event up to ``position`` (a packed cluster time) was read; a start time is not read yet.
        resumed = checkpoint.last_cluster_time if start.token is not None else None
        self.position: int | None = pack(resumed) if resumed is not None else None
        self._flushed = (self.position_token, self.position)  # the end of the last segment queued
        self.events = 0
        self.skipped = 0
        now = time.monotonic()
        self._last_checkpoint = now
        self._next_housekeeping = now
        self._next_progress = now + config.progress_seconds

    # -- the loop -----------------------------------------------------------------------------
    def run(self) -> ReplicateResult:
        """Capture until drained, stopped or broken; the final checkpoint says which."""
        log.info("capturing %s %s", self.scope, self.start)
        try:
            finish = self._loop()
        except _Broken as e:
            finish = _Finish(ReplicatorState.FAILED, reason=str(e))
        finally:
            self._close_stream()
        return self._finish(finish)

    def _loop(self) -> _Finish:
        buffer_add = self.buffer.add
        keep = self.filter.keep if self.filter is not None else None
        stopping = self.stop.is_set
        monotonic = time.monotonic
        until: int | None = None
        while True:
            if stopping() or self.drain.stop_requested:
                return _Finish(ReplicatorState.STOPPED)
            now = monotonic()
            if now >= self._next_housekeeping:
                self._housekeeping(now)
            if until is None and (requested := self.drain.poll(now)) is not None:
                until = pack(requested)
                self._set_state(ReplicatorState.DRAINING)
                if drain.reached(self.position, until):  # read past F before the request came
                    self._leave_out_after(until)
                    return self._drained(until)
                self._await_briefly()
            op_time_before = self.session.operation_time
            try:
                event = self.stream.try_next()
            except PyMongoError as e:
                self._recover(e)
                continue
            if event is None:
                if self._idle(until, op_time_before):
                    return self._drained(until)
                continue
            cluster_time, operation, token, data = event.head()
            if until is not None and drain.past(cluster_time, until):
                return self._drained(until)
            if operation == "invalidate":
                return _Finish(
                    ReplicatorState.FAILED,
                    reason=f"the change stream on {self.scope} was invalidated "
                    "(the watched collection or database was dropped or renamed)",
                )
            self.position_token = token
            self.position = cluster_time
            if keep is not None and not keep(event):
                self.skipped += 1
                continue
            self.events += 1
            if buffer_add(data, cluster_time, now):
                self._flush()

    @staticmethod
    def _drained(until: int | None) -> _Finish:
        return _Finish(ReplicatorState.DRAINED, drained_until=unpack(until) if until is not None else None)

    def _idle(self, until: int | None, op_time_before: Timestamp | None) -> bool:
        """An empty batch: advance the position to the postBatchResumeToken; True when drained."""
        token = self.stream.resume_token
        position = None
        if token is not None:
            self.position_token = token
            reached = tokens.cluster_time(token) or op_time_before
            if reached is not None:
                position = pack(reached)
                if self.position is None or position > self.position:
                    self.position = position
        if until is not None and drain.reached(position, until):
            return True
        self._housekeeping(time.monotonic())
        return False

    def _housekeeping(self, now: float) -> None:
        self._next_housekeeping = now + HOUSEKEEPING_SECONDS
        self.writer.raise_if_failed()
        if self.buffer.due(now):
            self._flush()
        elif not self.buffer and now - self._last_checkpoint >= self.config.heartbeat_seconds:
            self.writer.checkpoint_only(self.state, token=self.position_token, position=self._position_ts)
            self._last_checkpoint = now
        if now >= self._next_progress:
            self._next_progress = now + self.config.progress_seconds
            self._log_progress()

    @property
    def _position_ts(self) -> Timestamp | None:
        return unpack(self.position) if self.position is not None else None

    def _flush(self) -> None:
        self.writer.segment(self.buffer.take(), self.position_token, self._position_ts, self.state)
        self._flushed = (self.position_token, self.position)
        self._last_checkpoint = time.monotonic()

    def _leave_out_after(self, until: int) -> None:
        """Drop buffered events after F (read before the drain request was seen); the position
        goes back to the last event kept, or to the last segment's end."""
        events = self.buffer.events
        kept = len(events)
        while kept and RawEvent(events[kept - 1]).cluster_time > until:
            kept -= 1
        dropped = len(events) - kept
        if not dropped:
            return
        if kept:
            last = RawEvent(events[kept - 1])
            self.buffer.keep_first(kept, last.cluster_time)
            self.position_token, self.position = last["_id"], last.cluster_time
        else:
            self.buffer.keep_first(0, None)
            self.position_token, self.position = self._flushed
        self.events -= dropped
        log.info("drain: left out %d buffered events after %s", dropped, clustertime.format(unpack(until)))

    def _set_state(self, state: ReplicatorState) -> None:
        self.state = state
        if not self.buffer:
            self.writer.checkpoint_only(state, token=self.position_token, position=self._position_ts)
            self._last_checkpoint = time.monotonic()

    def _await_briefly(self) -> None:
        """While draining, getMores wait :data:`DRAIN_AWAIT_MS` at most: the stream is opened
        again after the position (as after an interruption) with that await."""
        if self.await_ms <= DRAIN_AWAIT_MS:
            return
        self.await_ms = DRAIN_AWAIT_MS
        self._close_stream()
        try:
            self.stream, self.session = self.opener(self._resume_point(), self.await_ms)
        except HistoryLost as e:
            raise _Broken(str(e)) from e
        except PyMongoError as e:
            self._recover(e)

    # -- errors -------------------------------------------------------------------------------
    def _recover(self, error: PyMongoError) -> None:
        """Re-open the stream after the position with backoff; _Broken if the error is not transient."""
        backoff = Backoff(give_up_after=self.config.give_up_seconds, stop=self.stop)
        while True:
            kind = source.classify(error)
            if kind == "history_lost":
                raise _Broken(source.history_lost_reason(error))
            if kind == "fatal":
                raise _Broken(source.failure_reason(error, self.scope))
            if not backoff.failed():
                raise _Broken(
                    f"the source kept failing for {backoff.failing_for:.0f}s: "
                    f"{source.failure_reason(error, self.scope)}"
                )
            log.warning(
                "change stream interrupted (%s); re-opening %s (attempt %d)",
                source.short(error),
                self._resume_point(),
                backoff.attempts,
            )
            self._close_stream()
            backoff.wait()
            if self.stop.is_set():
                return
            try:
                self.stream, self.session = self.opener(self._resume_point(), self.await_ms)
                log.info("change stream re-opened %s", self._resume_point())
                return
            except HistoryLost as e:
                raise _Broken(str(e)) from e
            except PyMongoError as e:
                error = e

    def _resume_point(self) -> StreamStart:
        if self.position_token is not None:
            return StreamStart(token=self.position_token)
        return self.start

    def _close_stream(self) -> None:
        try:
            self.stream.close()
        except PyMongoError as e:
            log.debug("closing the change stream: %s", e)
        try:
            self.session.end_session()
        except PyMongoError as e:
            log.debug("ending the session: %s", e)

    # -- the end ------------------------------------------------------------------------------
    def _finish(self, finish: _Finish) -> ReplicateResult:
        """Write the last segment, then the checkpoint with the final state."""
        if self.buffer:
            self.writer.segment(self.buffer.take(), self.position_token, self._position_ts, self.state)
        self.writer.checkpoint_only(
            finish.state,
            token=self.position_token,
            position=self._position_ts,
            reason=finish.reason,
            drained_until=finish.drained_until,
        )
        checkpoint = self.writer.close()
        self._log_progress()
        result = ReplicateResult(
            state=finish.state,
            events_captured=self.events,
            segments_written=self.writer.segments_written,
            events_total=checkpoint.events_total,
            last_seq=checkpoint.last_seq,
            reason=finish.reason,
            drained_until=finish.drained_until,
        )
        log.info("%s", result.summary())
        if finish.state is ReplicatorState.FAILED:
            raise JobFailed(finish.reason or "capture failed")
        return result

    def _log_progress(self) -> None:
        cp = self.writer.checkpoint
        lag = max(0.0, time.time() - (self.position >> 32)) if self.position is not None else None
        log.info(
            "progress: %d events captured this run (%d skipped, other namespaces), %d in segments 1..%d, "
            "%d bytes, %d buffered, lag %s",
            self.events,
            self.skipped,
            cp.events_total,
            cp.last_seq,
            cp.bytes_total,
            len(self.buffer),
            f"{lag:.1f}s" if lag is not None else "unknown",
        )
