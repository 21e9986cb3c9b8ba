"""The replicator checkpoint ``changes/_checkpoint.json``: load, validate, save.

It is written only after segment ``last_seq`` is durable in S3 (one PUT: S3 shows the whole new
object or the old one), so every segment it counts can be read, and resuming after its
``resume_token`` neither loses nor repeats an event.

Every save is a conditional PUT on the ETag this process last read or wrote (``If-Match``; on the
first save of a migration ``If-None-Match: *``): a replicator that lost its lease cannot overwrite
the checkpoint of the one that took over, even if it was paused between its lease check and the
PUT (:class:`CheckpointChanged`).
"""

from __future__ import annotations

from typing import Any

from .. import clustertime, extjson, metrics
from ..errors import JobFailed, UsageError
from ..layout import COMPRESSION_SUFFIX, MigrationLayout
from ..s3objects import Conflict, S3Objects
from ..segments import SegmentInfo
from ..state import ReplicatorCheckpoint, utc_now


class CheckpointChanged(JobFailed):
    """The checkpoint is not the one this process last wrote: another replicator wrote it."""


def validate(doc: Any, key: str) -> ReplicatorCheckpoint:
    """A checkpoint record from its JSON document; JobFailed (one line naming ``key``) when the
    document is not one (:meth:`ReplicatorCheckpoint.from_json`) or counts segments without a
    capture position (a replicator could not resume from it)."""
    checkpoint = ReplicatorCheckpoint.from_json(doc, key)
    if checkpoint.last_seq > 0 and checkpoint.last_cluster_time is None:
        raise JobFailed(f"{key} counts segments up to {checkpoint.last_seq} but has no last_cluster_time")
    return checkpoint


def validate_own(doc: Any, layout: MigrationLayout, where: str) -> ReplicatorCheckpoint:
    """:func:`validate`, after checking the checkpoint is ``layout``'s migration's: UsageError
    (exit 2) when it belongs to another migration (it is not ours to judge, or to use)."""
    other = doc.get("migration_id") if isinstance(doc, dict) else None
    if isinstance(other, str) and other != layout.migration_id:
        raise UsageError(
            f"{where} belongs to migration {other!r}, "
            f"not {layout.migration_id!r}: use another prefix or migration id"
        )
    return validate(doc, where)


def check_last_segment(s3: S3Objects, layout: MigrationLayout, checkpoint: ReplicatorCheckpoint) -> None:
    """JobFailed unless segment ``last_seq`` exists once, is this migration's segment ``last_seq``
    and ends at or before the checkpoint's ``last_cluster_time`` (a checkpoint ahead of its
    segments would make the replicator resume after events no segment holds)."""
    seq = checkpoint.last_seq
    if seq == 0:
        return
    where = f"s3://{s3.bucket}/{layout.replicator_checkpoint}"
    found = [
        (key, head)
        for c in COMPRESSION_SUFFIX
        if (head := s3.head(key := layout.segment(seq, c))) is not None
    ]
    if not found:
        raise JobFailed(
            f"{where} is ahead of the segments: it counts segments up to {seq}, but "
            f"{layout.segment(seq, 'zstd')} (or .gz/.bson) does not exist"
        )
    if len(found) > 1:
        raise JobFailed(f"segment {seq} exists more than once: {', '.join(key for key, _ in found)}")
    key, head = found[0]
    info = SegmentInfo.from_metadata(head.get("Metadata", {}), key)
    wrong = info.identity_error(layout.migration_id, seq)
    if wrong is not None:
        raise JobFailed(f"segment {key} {wrong}: {where} does not match its segments")
    assert checkpoint.last_cluster_time is not None  # validate() refuses a last_seq without it
    if info.last_cluster_time > checkpoint.last_cluster_time:
        raise JobFailed(
            f"segment {key} ends at {clustertime.format(info.last_cluster_time)}, after the "
            f"checkpoint's last_cluster_time {clustertime.format(checkpoint.last_cluster_time)}: "
            f"{where} does not match its segments"
        )


def load(s3: S3Objects, layout: MigrationLayout) -> ReplicatorCheckpoint | None:
    """The migration's replicator checkpoint, validated and checked to be its own, or None."""
    return CheckpointStore(s3, layout).load()


class CheckpointStore:
    """Reads and writes one migration's replicator checkpoint."""

    def __init__(self, s3: S3Objects, layout: MigrationLayout) -> None:
        self.s3 = s3
        self.layout = layout
        self.key = layout.replicator_checkpoint
        self.etag: str | None = None  # of the checkpoint last read or written; None: there was none
        self._unconfirmed: list[bytes] = []  # bodies sent since the last confirmed save

    @property
    def where(self) -> str:
        return f"s3://{self.s3.bucket}/{self.key}"

    def load(self) -> ReplicatorCheckpoint | None:
        """The checkpoint, or None; UsageError when it belongs to another migration, JobFailed when
        it is not a checkpoint. Remembers its ETag for the next :meth:`save`."""
        got = self.s3.get_json_versioned(self.key)
        if got is None:
            self.etag = None
            return None
        doc, etag = got
        checkpoint = validate_own(doc, self.layout, self.where)
        self.etag = etag
        return checkpoint

    def save(self, checkpoint: ReplicatorCheckpoint) -> None:
        """Write the checkpoint (its segment must already be durable); stamps ``heartbeat_at``.

        Conditional on the last ETag; :class:`CheckpointChanged` when another process changed it.
        A saved checkpoint is the replicator's metrics sample (:mod:`backover.metrics`)."""
        checkpoint.heartbeat_at = utc_now()
        body = extjson.dumps(checkpoint.to_json()).encode()
        self._unconfirmed.append(body)  # a failed attempt may have landed: the next one knows it
        try:
            self.etag = self.s3.put_if(
                self.key, body, etag=self.etag, content_type="application/json", attempted=self._unconfirmed
            )
            self._unconfirmed.clear()
        except Conflict:
            raise CheckpointChanged(
                f"{self.where} was changed by another replicator since this one last wrote it: "
                "stopping without writing anything more"
            ) from None
        metrics.replicator_saved(checkpoint)
