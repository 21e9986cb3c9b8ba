"""Capture and restore lag over time, from what a migration's folder holds.

Neither checkpoint keeps a history: each holds its latest position only. What there is:

* **capture**: each change segment's S3 write time (``LastModified``) and the cluster time of its
  newest event (metadata ``last-cluster-time``): the capture's lag when that segment landed, the
  age of the newest captured change, the measure ``backover status`` calls ``lag_seconds`` at a
  heartbeat. A page samples at most ``max_points`` segments spread evenly over seq 1 ..
  ``last_seq`` (one HEAD each, found by key with the first one's compression: nothing is listed;
  the first missing one ends the sample, and none is read once a clean-up started); a running
  replicator's checkpoint adds the newest point (its heartbeat's lag).
* **restore**: the restore checkpoint's lag behind the capture (:func:`backover.restore.follow.lag`)
  at its ``updated_at``: the latest point only.
* ``reports/lag.json`` (:class:`LagHistory`): what :func:`record` saved, each recording merged into
  the last. Clean-up deletes the segments, so ``backover_clean`` records it first (its
  ``clean.record_lag`` task, best-effort: every migration's clean-up, a rehearsal's too); it also
  keeps the restore points of each recording.

So a restore's lag has as many points as recordings were made; a curve of it needs the follow
restore to publish its lag as it goes (CloudWatch metrics, issue 15 item 4).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from backover import state
from backover.errors import JobFailed
from backover.layout import COMPRESSION_SUFFIX, MigrationLayout
from backover.replication.status import replicator_status
from backover.restore import follow
from backover.s3objects import S3Objects
from backover.segments import SegmentInfo
from backover.state import ReplicatorCheckpoint, ReplicatorState, RestoreCheckpoint, utc_now

#: Segments a recording samples (the list page samples fewer, a migration's page more).
RECORD_POINTS = 240


@dataclass
class LagPoint(state.Record):
    """One measurement: ``seconds`` behind at ``at`` (wall clock); ``seq``: the segment it was read
    from (capture) or the last segment applied (restore)."""

    WHAT = "a lag point"

    at: datetime
    seconds: float
    seq: int | None = None


@dataclass
class LagHistory(state.Record):
    """``reports/lag.json``: capture and restore lag points, oldest first."""

    WHAT = "a lag history (reports/lag.json)"

    migration_id: str
    recorded_at: datetime | None = None
    capture: list[LagPoint] = field(default_factory=list)
    restore: list[LagPoint] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.capture and not self.restore

    def merged(self, newer: LagHistory) -> LagHistory:
        """These points and ``newer``'s, one per moment and segment (``newer`` wins), oldest first."""
        return LagHistory(
            migration_id=self.migration_id,
            recorded_at=newer.recorded_at or self.recorded_at,
            capture=_union(self.capture, newer.capture),
            restore=_union(self.restore, newer.restore),
        )


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _union(older: Iterable[LagPoint], newer: Iterable[LagPoint]) -> list[LagPoint]:
    """One point per moment and segment (S3's write times have whole seconds: several segments
    can land in one), ``newer`` winning, oldest first."""

    def key(p: LagPoint) -> tuple[datetime, int]:
        return _aware(p.at), -1 if p.seq is None else p.seq

    by_key = {key(p): p for p in older}
    by_key.update({key(p): p for p in newer})
    return [by_key[k] for k in sorted(by_key)]


def sample_seqs(last_seq: int, max_points: int) -> list[int]:
    """At most ``max_points`` segment numbers spread evenly over 1 .. ``last_seq``, both ends kept."""
    if last_seq <= 0 or max_points <= 0:
        return []
    if last_seq <= max_points:
        return list(range(1, last_seq + 1))
    if max_points == 1:
        return [last_seq]
    step = (last_seq - 1) / (max_points - 1)
    return sorted({1 + round(i * step) for i in range(max_points)})


def _point(head: dict[str, Any], key: str, seq: int) -> LagPoint | None:
    """The lag a segment's HEAD shows, or None when its metadata cannot be read (the restore and
    verify report such a segment; a chart skips it)."""
    try:
        info = SegmentInfo.from_metadata(head.get("Metadata", {}), key)
    except JobFailed:
        return None
    written = head.get("LastModified")
    if not isinstance(written, datetime):
        return None
    lag = max(0.0, _aware(written).timestamp() - info.last_cluster_time.time)
    return LagPoint(at=_aware(written), seconds=round(lag, 3), seq=seq)


def segment_points(s3: S3Objects, layout: MigrationLayout, seqs: Iterable[int]) -> list[LagPoint]:
    """The capture lag of segments ``seqs`` (ascending) when each landed: one HEAD each, by key.
    The first one's compression is found by trying each suffix (``zstd`` first, the replicator's
    default; the checkpoint does not name it) and then used for the others (one replicator config,
    one compression); the first segment missing ends the sample (clean-up deletes them in order)."""
    points: list[LagPoint] = []
    compressions: Iterable[str] = COMPRESSION_SUFFIX
    for seq in seqs:
        found = next(
            (
                (c, key, head)
                for c in compressions
                if (head := s3.head(key := layout.segment(seq, c))) is not None
            ),
            None,
        )
        if found is None:
            break
        compression, key, head = found
        compressions = (compression,)
        if (point := _point(head, key, seq)) is not None:
            points.append(point)
    return points


def capture_points(
    s3: S3Objects,
    layout: MigrationLayout,
    replicator: ReplicatorCheckpoint | None,
    max_points: int,
    segments: bool = True,
) -> list[LagPoint]:
    """The capture's lag from a sample of its segments (none read when ``segments`` is False: a
    clean-up started deleting them), and a running replicator's heartbeat."""
    if replicator is None:
        return []
    seqs = sample_seqs(replicator.last_seq, max_points) if segments else []
    points = segment_points(s3, layout, seqs)
    lag = replicator_status(replicator).get("lag_seconds")
    if (
        replicator.state is ReplicatorState.RUNNING
        and replicator.heartbeat_at is not None
        and lag is not None
    ):
        points.append(LagPoint(at=_aware(replicator.heartbeat_at), seconds=lag, seq=replicator.last_seq))
    return sorted(points, key=lambda p: p.at)


def restore_point(
    restore: RestoreCheckpoint | None, replicator: ReplicatorCheckpoint | None
) -> LagPoint | None:
    """The restore's lag behind the capture at its last checkpoint (None without both)."""
    if restore is None or replicator is None:
        return None
    behind = follow.lag(restore, replicator)
    return LagPoint(
        at=_aware(restore.updated_at), seconds=round(behind.seconds, 3), seq=restore.last_applied_seq
    )


def read(s3: S3Objects, layout: MigrationLayout) -> LagHistory | None:
    """The recorded history (:class:`backover.state.RecordError` when the file is damaged)."""
    return state.read(s3, layout.lag_history, LagHistory)


def history(
    s3: S3Objects,
    layout: MigrationLayout,
    replicator: ReplicatorCheckpoint | None,
    restore: RestoreCheckpoint | None,
    max_points: int,
    recorded: LagHistory | None = None,
    segments: bool = True,
) -> LagHistory:
    """Everything known of the migration's lag: the recorded points and what the folder shows now
    (``segments`` False: none of the segments is read, see :func:`capture_points`)."""
    point = restore_point(restore, replicator)
    now = LagHistory(
        migration_id=layout.migration_id,
        capture=capture_points(s3, layout, replicator, max_points, segments),
        restore=[point] if point is not None else [],
    )
    return recorded.merged(now) if recorded is not None else now


def record(
    s3: S3Objects,
    layout: MigrationLayout,
    replicator: ReplicatorCheckpoint | None,
    restore: RestoreCheckpoint | None,
) -> LagHistory:
    """Write ``reports/lag.json``: the recorded points with what the folder shows now (call before
    clean-up deletes the segments); idempotent, a second call adds nothing new."""
    merged = history(s3, layout, replicator, restore, RECORD_POINTS, read(s3, layout))
    merged.recorded_at = utc_now()
    state.write(s3, layout.lag_history, merged)
    return merged
