"""CloudWatch metrics of the replicator and the follow restore (namespace ``BackOver``).

Every data point carries the dimensions ``Prefix`` and ``MigrationId`` (two environments may use
the same migration id under their own prefix). Published on the checkpoint saves:

* the replicator (``replication.checkpoint.CheckpointStore.save``): ``CaptureLagSeconds``, the
  checkpoint's ``heartbeat_at`` minus its ``last_cluster_time`` (its capture position; idle, the
  position moves on with the stream's ``postBatchResumeToken``, so an idle capture shows about 0),
  as a statistic set of every save in the interval (alarms use its Maximum);
  ``EventsPerSecond``, the increase of ``events_total`` since the previous publish over the seconds
  between them (none at the first publish); ``Heartbeat``, 1 per publish (the alarm on its missing
  data is the silent replicator).
* the restore (``restore.checkpoint.CheckpointStore.save``), read when a publish is due from the
  replicator checkpoint and one HEAD of the next segment: ``RestoreLagSeconds``, now minus the
  checkpoint's ``applied_cluster_time`` while captured segments are left to apply (nothing applied
  yet: now minus the first unapplied event's cluster time), else 0;
  ``OldestUnreplayedEventAgeSeconds``, now minus the first cluster time of segment
  ``last_applied_seq + 1`` (its S3 metadata), else 0. That event is exactly the oldest change the
  checkpoint does not count as applied; for MongoDB itself it is an upper bound, by at most one
  segment's span (about a second in follow mode), since the restore may be applying that segment.

At most one ``PutMetricData`` call per ``--metrics-seconds`` (60), sent by a background thread so
that a slow CloudWatch never holds the capture, and once more when the command ends. A failed
publish never fails the job: it is one WARNING line, at most one per 10 minutes (the next one says
how many failed in between), naming the error's code or type, never a credential. Off with
``--no-metrics`` or ``BACKOVER_METRICS=off``; without a publisher installed (Lambdas, tests,
library use) the hooks do nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from .errors import UsageError
from .layout import COMPRESSION_SUFFIX, MigrationLayout
from .s3objects import S3Objects
from .segments import SegmentInfo
from .state import ReplicatorCheckpoint, RestoreCheckpoint, utc_now

log = logging.getLogger(__name__)

NAMESPACE = "BackOver"
ENV_ENABLED = "BACKOVER_METRICS"
ENV_SECONDS = "BACKOVER_METRICS_SECONDS"
DEFAULT_SECONDS = 60.0
#: At most one warning about failed publishes per this many seconds.
WARNING_SECONDS = 600.0
#: How long the end of a command waits for the last publish.
CLOSE_SECONDS = 10.0
#: Publishes waiting for the sender thread before more are dropped (CloudWatch stuck that long).
OUTBOX = 10
#: A publish that cannot reach CloudWatch gives up quickly (the next interval tries again).
CLIENT_CONFIG = Config(connect_timeout=3, read_timeout=5, retries={"max_attempts": 2, "mode": "standard"})

CAPTURE_LAG = "CaptureLagSeconds"
EVENTS_PER_SECOND = "EventsPerSecond"
HEARTBEAT = "Heartbeat"
RESTORE_LAG = "RestoreLagSeconds"
OLDEST_UNREPLAYED = "OldestUnreplayedEventAgeSeconds"

_OFF = {"0", "off", "false", "no"}
_ON = {"", "1", "on", "true", "yes"}


# -- the commands' options --------------------------------------------------------------------------
def add_options(parser: argparse.ArgumentParser) -> None:
    """``--metrics/--no-metrics`` and ``--metrics-seconds`` (or BACKOVER_METRICS, _SECONDS)."""
    group = parser.add_argument_group("metrics")
    group.add_argument(
        "--metrics",
        action=argparse.BooleanOptionalAction,
        default=None,
        help=f"publish CloudWatch metrics (namespace {NAMESPACE}) on checkpoint saves "
        f"(default: on, or {ENV_ENABLED}=off)",
    )
    group.add_argument(
        "--metrics-seconds",
        type=float,
        default=None,
        help=f"at most one publish per this many seconds (default: {ENV_SECONDS} or {DEFAULT_SECONDS:g})",
    )


@dataclass(frozen=True)
class Settings:
    enabled: bool
    seconds: float


def settings(args: argparse.Namespace) -> Settings:
    """The options, or the environment; UsageError (exit 2) naming a bad value."""
    enabled = args.metrics
    if enabled is None:
        raw = os.environ.get(ENV_ENABLED, "").strip().lower()
        if raw not in _ON | _OFF:
            raise UsageError(f"{ENV_ENABLED}={raw!r} is not on or off")
        enabled = raw not in _OFF
    seconds = args.metrics_seconds
    where = "--metrics-seconds"
    if seconds is None:
        raw = os.environ.get(ENV_SECONDS, "").strip()
        where = f"{ENV_SECONDS}={raw!r}"
        try:
            seconds = float(raw) if raw else DEFAULT_SECONDS
        except ValueError:
            raise UsageError(f"{where} is not a number of seconds") from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise UsageError(f"{where} must be a positive number of seconds, not {seconds:g}")
    return Settings(bool(enabled), seconds)


def forwarded(args: argparse.Namespace) -> tuple[str, ...]:
    """The options again, for a detached child (it reads the same environment)."""
    out: tuple[str, ...] = ()
    if args.metrics is not None:
        out += ("--metrics" if args.metrics else "--no-metrics",)
    if args.metrics_seconds is not None:
        out += ("--metrics-seconds", str(args.metrics_seconds))
    return out


@contextlib.contextmanager
def publishing(args: argparse.Namespace, layout: MigrationLayout) -> Iterator[None]:
    """While the command runs, its checkpoint saves publish (unless the settings say off)."""
    chosen = settings(args)
    if not chosen.enabled:
        yield
        return
    with installed(Publisher(layout, chosen.seconds)):
        yield


# -- the hooks (one call at each checkpoint save) ---------------------------------------------------
_active: Publisher | None = None


@contextlib.contextmanager
def installed(publisher: Publisher) -> Iterator[Publisher]:
    """Make ``publisher`` the one the hooks use; the last publish is sent when the block ends."""
    global _active
    _active = publisher
    try:
        yield publisher
    finally:
        _active = None
        publisher.close()


def replicator_saved(checkpoint: ReplicatorCheckpoint) -> None:
    """The replicator saved ``checkpoint`` (never raises)."""
    if _active is not None:
        _active.replicator(checkpoint)


def restore_saved(s3: S3Objects, layout: MigrationLayout, checkpoint: RestoreCheckpoint) -> None:
    """The restore saved ``checkpoint`` (never raises; reads S3 only when a publish is due)."""
    if _active is not None:
        _active.restore(s3, layout, checkpoint)


# -- the publisher ----------------------------------------------------------------------------------
@dataclass
class _Stats:
    unit: str
    count: int = 0
    total: float = 0.0
    low: float = math.inf
    high: float = -math.inf

    def add(self, value: float) -> None:
        self.count += 1
        self.total += value
        self.low = min(self.low, value)
        self.high = max(self.high, value)


_Batch = Callable[[], list[dict[str, Any]]]


class Publisher:
    """Collects one process's figures and sends them at most once per ``interval`` seconds."""

    def __init__(
        self,
        layout: MigrationLayout,
        interval: float = DEFAULT_SECONDS,
        *,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = utc_now,
        client: Any = None,
    ) -> None:
        self.dimensions = [
            {"Name": "Prefix", "Value": layout.prefix},
            {"Name": "MigrationId", "Value": layout.migration_id},
        ]
        self.interval = interval
        self._clock, self._now, self._client = clock, now, client
        self._lock = threading.Lock()
        self._stats: dict[str, _Stats] = {}
        self._sent_at: float | None = None  # clock() of the last publish; None: none yet
        self._events: tuple[float, int] | None = None  # (clock(), events_total) at the last publish
        self._events_total: int | None = None  # the latest replicator checkpoint's
        self._unpublished = False  # replicator figures measured since the last publish
        self._restore: tuple[S3Objects, MigrationLayout, int, Any] | None = None  # not yet published
        self._outbox: queue.Queue[_Batch | None] = queue.Queue(maxsize=OUTBOX)
        self._thread: threading.Thread | None = None
        self._warned_at: float | None = None
        self._unreported = 0

    # -- what is measured --------------------------------------------------------------------------
    def replicator(self, checkpoint: ReplicatorCheckpoint) -> None:
        with self._lock:
            at = self._clock()
            position, beat = checkpoint.last_cluster_time, checkpoint.heartbeat_at
            if position is not None and beat is not None:
                self._sample(CAPTURE_LAG, max(0.0, beat.timestamp() - position.time), "Seconds")
            self._events_total = checkpoint.events_total
            if self._events is None:
                self._events = (at, checkpoint.events_total)
            self._unpublished = True
            if not self._due(at):
                return
            data = self._replicator_data(at)
        self._send(lambda: data)

    def restore(self, s3: S3Objects, layout: MigrationLayout, checkpoint: RestoreCheckpoint) -> None:
        with self._lock:
            self._restore = (s3, layout, checkpoint.last_applied_seq, checkpoint.applied_cluster_time)
            if not self._due(self._clock()):
                return
            batch = self._restore_batch()
        self._send(batch)

    def _sample(self, name: str, value: float, unit: str) -> None:
        self._stats.setdefault(name, _Stats(unit)).add(value)

    def _due(self, at: float) -> bool:
        if self._sent_at is not None and at - self._sent_at < self.interval:
            return False
        self._sent_at = at
        return True

    def _datum(self, name: str, unit: str, **value: Any) -> dict[str, Any]:
        return {
            "MetricName": name,
            "Dimensions": self.dimensions,
            "Timestamp": self._now(),
            "Unit": unit,
            **value,
        }

    def _replicator_data(self, at: float) -> list[dict[str, Any]]:
        """The figures since the last publish (the lock is held)."""
        data = [
            self._datum(
                name,
                s.unit,
                StatisticValues={"SampleCount": s.count, "Sum": s.total, "Minimum": s.low, "Maximum": s.high},
            )
            for name, s in self._stats.items()
        ]
        self._stats.clear()
        assert self._events is not None and self._events_total is not None
        since, before = self._events
        if at > since:
            rate = max(0, self._events_total - before) / (at - since)
            data.append(self._datum(EVENTS_PER_SECOND, "Count/Second", Value=rate))
        self._events = (at, self._events_total)
        self._unpublished = False
        data.append(self._datum(HEARTBEAT, "Count", Value=1.0))
        return data

    def _restore_batch(self) -> _Batch:
        """The restore's figures, read on the sender thread (the lock is held)."""
        assert self._restore is not None
        s3, layout, seq, applied = self._restore
        self._restore = None

        def batch() -> list[dict[str, Any]]:
            from .replication import checkpoint as replication_checkpoint

            lag = oldest = 0.0
            captured = replication_checkpoint.load(s3, layout)
            if captured is not None and captured.last_seq > seq:
                now = self._now().timestamp()
                first = _first_cluster_time(s3, layout, seq + 1)
                oldest = max(0.0, now - first) if first is not None else 0.0
                lag = max(0.0, now - applied.time) if applied is not None else oldest
            return [
                self._datum(RESTORE_LAG, "Seconds", Value=lag),
                self._datum(OLDEST_UNREPLAYED, "Seconds", Value=oldest),
            ]

        return batch

    # -- sending -----------------------------------------------------------------------------------
    def _send(self, batch: _Batch) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="metrics", daemon=True)
            self._thread.start()
        try:
            self._outbox.put_nowait(batch)
        except queue.Full:  # CloudWatch has not answered for OUTBOX intervals: this one is dropped
            log.debug("%d CloudWatch publishes are waiting; dropping this one", OUTBOX)

    def close(self) -> None:
        """Send what was measured since the last publish, then stop (waiting a few seconds at most)."""
        with self._lock:
            final: _Batch | None = None
            if self._unpublished:
                data = self._replicator_data(self._clock())
                final = lambda: data  # noqa: E731
            elif self._restore is not None:
                final = self._restore_batch()
        if final is not None:
            if self._thread is None:
                self._send(final)
            else:
                self._put(final)
        if self._thread is not None:
            self._put(None)
            self._thread.join(CLOSE_SECONDS)

    def _put(self, item: _Batch | None) -> None:
        try:
            self._outbox.put(item, timeout=CLOSE_SECONDS)
        except queue.Full:
            log.debug("the last CloudWatch publish is still under way; not waiting for it")

    def _run(self) -> None:
        while (batch := self._outbox.get()) is not None:
            try:
                data = batch()
                if data:
                    if self._client is None:
                        self._client = boto3.client("cloudwatch", config=CLIENT_CONFIG)
                    self._client.put_metric_data(Namespace=NAMESPACE, MetricData=data)
            except Exception as e:  # noqa: BLE001 - a metric must never stop the job: one warning line
                self._failed(e)

    def _failed(self, error: Exception) -> None:
        at = self._clock()
        if self._warned_at is not None and at - self._warned_at < WARNING_SECONDS:
            self._unreported += 1
            return
        more = f"; {self._unreported} more failed since the last warning" if self._unreported else ""
        self._warned_at, self._unreported = at, 0
        log.warning(
            "could not publish CloudWatch metrics (%s)%s; the job goes on (next warning in %d min at the earliest)",
            _reason(error),
            more,
            WARNING_SECONDS // 60,
        )


def _reason(error: Exception) -> str:
    """The error's code and message, or its type and text: one line, never a credential (boto3's
    errors name the operation, the endpoint or the principal, not keys)."""
    if isinstance(error, ClientError):
        info = error.response.get("Error", {})
        text = f"{info.get('Code', 'error')}: {info.get('Message', '')}"
    else:
        text = f"{type(error).__name__}: {error}"
    return " ".join(text.split())[:300]


def _first_cluster_time(s3: S3Objects, layout: MigrationLayout, seq: int) -> int | None:
    """Seconds of the first cluster time of segment ``seq`` (from its S3 metadata), or None."""
    for compression in COMPRESSION_SUFFIX:
        key = layout.segment(seq, compression)
        head = s3.head(key)
        if head is not None:
            return SegmentInfo.from_metadata(head.get("Metadata", {}), key).first_cluster_time.time
    return None
