"""Follow mode (``backover restore --follow``): apply segments as they land, until the drain.

The follow restore holds the restore lease for the whole capture. Between rounds of segments it
re-reads the replicator checkpoint (one GET, and three HEADs of its last segment when that
changed), notices an abort's stop request (``control/stop.json``, one HEAD at most every
``heartbeat_seconds``) and rewrites its own checkpoint at least every ``heartbeat_seconds``, so
that ``updated_at`` is its heartbeat. It completes when the replicator has drained past F and
every segment is applied; it stops (state ``stopped``, exit 0) on SIGTERM/SIGINT or an abort. A
failed or stopped replicator is waited for: it may be run again and resume.

How far it trails the capture (:func:`lag`) is the same rule for ``backover status``, the
restore's own log lines and the Airflow sensors.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from botocore.exceptions import BotoCoreError

from ..layout import MigrationLayout
from ..replication import checkpoint as replication_checkpoint
from ..s3objects import S3Objects
from ..state import ReplicatorCheckpoint, ReplicatorState, RestoreCheckpoint, utc_now

log = logging.getLogger("backover.restore")

DEFAULT_POLL_SECONDS = 0.5
DEFAULT_HEARTBEAT_SECONDS = 5.0


@dataclass(frozen=True)
class Lag:
    """How far the restore trails the capture: segments and events captured but not applied yet,
    and the cluster-time distance between the newest captured and the newest applied event
    (0 when every captured segment is applied)."""

    segments: int
    events: int
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return {"segments": self.segments, "events": self.events, "seconds": round(self.seconds, 3)}

    def __str__(self) -> str:
        return (
            f"{self.segments} segment(s), {self.events:,} event(s), {self.seconds:.1f} s behind the capture"
        )


def lag(restore: RestoreCheckpoint | None, replicator: ReplicatorCheckpoint) -> Lag:
    """The restore's lag behind ``replicator`` (everything captured, when no restore ran yet)."""
    applied_seq = restore.last_applied_seq if restore else 0
    applied_events = restore.events_applied if restore else 0
    segments = max(0, replicator.last_seq - applied_seq)
    if segments == 0:
        return Lag(0, 0, 0.0)
    seconds = 0.0
    applied_at = restore.applied_cluster_time if restore else None
    if replicator.last_cluster_time is not None:
        since = applied_at.time if applied_at is not None else None
        if since is not None:
            seconds = max(0.0, float(replicator.last_cluster_time.time - since))
    return Lag(segments, max(0, replicator.events_total - applied_events), seconds)


def heartbeat_age(restore: RestoreCheckpoint, now: datetime | None = None) -> float:
    """Seconds since the restore last wrote its checkpoint."""
    return max(0.0, ((now or utc_now()) - restore.updated_at).total_seconds())


class CapturePoller:
    """What the follow restore reads between rounds: the replicator checkpoint (validated as the
    replicator validates it) and the abort's stop request."""

    def __init__(self, s3: S3Objects, layout: MigrationLayout, stop_poll_seconds: float) -> None:
        self.s3 = s3
        self.layout = layout
        self.stop_poll_seconds = stop_poll_seconds
        self._checked_seq = -1
        self._next_stop_poll = 0.0
        self.stop_requested = False
        self._last_state: ReplicatorState | None = None

    def replicator(self, previous: ReplicatorCheckpoint) -> ReplicatorCheckpoint:
        """The replicator checkpoint now (``previous`` when S3 cannot be reached this time)."""
        try:
            current = replication_checkpoint.load(self.s3, self.layout)
            if current is None:
                return previous
            if current.last_seq != self._checked_seq:
                replication_checkpoint.check_last_segment(self.s3, self.layout, current)
                self._checked_seq = current.last_seq
        except BotoCoreError as e:
            log.warning("cannot read the replicator checkpoint (%s); trying again", e)
            return previous
        if current.state is not self._last_state:
            if current.state in (ReplicatorState.FAILED, ReplicatorState.STOPPED):
                log.warning(
                    "the replicator is %s%s; following on (a replicator run again resumes the capture)",
                    current.state,
                    f" ({current.reason})" if current.reason else "",
                )
            self._last_state = current.state
        return current

    def abort_requested(self) -> bool:
        """True once ``control/stop.json`` exists (read at most every ``stop_poll_seconds``)."""
        now = time.monotonic()
        if not self.stop_requested and now >= self._next_stop_poll:
            self._next_stop_poll = now + self.stop_poll_seconds
            try:
                self.stop_requested = self.s3.head(self.layout.stop_request) is not None
            except BotoCoreError as e:
                log.warning("cannot read %s (%s); trying again", self.layout.stop_request, e)
        return self.stop_requested
