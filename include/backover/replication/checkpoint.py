"""The replicator checkpoint ``changes/_checkpoint.json``: load, validate, save.

It is written only after segment ``last_seq`` is durable in S3 (one PUT: S3 shows the whole new
object or the old one), so every segment it counts can be read, and resuming after its
``resume_token`` neither loses nor repeats an event.
"""

from __future__ import annotations

from typing import Any

from bson.timestamp import Timestamp

from ..errors import JobFailed, UsageError
from ..layout import MigrationLayout
from ..s3objects import S3Objects
from ..state import REPLICATOR_STATES, ReplicatorCheckpoint, utc_now


def validate(doc: Any, key: str) -> ReplicatorCheckpoint:
    """A checkpoint record from its JSON document; JobFailed when the document is not one."""
    if not isinstance(doc, dict) or not isinstance(doc.get("migration_id"), str):
        raise JobFailed(f"{key} is not a replicator checkpoint (no migration_id)")
    checkpoint = ReplicatorCheckpoint.from_doc(doc)
    if isinstance(checkpoint.last_seq, bool) or not isinstance(checkpoint.last_seq, int) or checkpoint.last_seq < 0:
        raise JobFailed(f"{key} has an invalid last_seq {checkpoint.last_seq!r}")
    if checkpoint.state not in REPLICATOR_STATES:
        raise JobFailed(f"{key} has an unknown state {checkpoint.state!r}")
    if checkpoint.resume_token is not None and not isinstance(checkpoint.resume_token, dict):
        raise JobFailed(f"{key} has an invalid resume_token")
    for name in ("last_cluster_time", "drained_until"):
        value = getattr(checkpoint, name)
        if value is not None and not isinstance(value, Timestamp):
            raise JobFailed(f"{key} has an invalid {name} {value!r}")
    checkpoint.last_seq = int(checkpoint.last_seq)
    checkpoint.events_total = int(checkpoint.events_total)
    checkpoint.bytes_total = int(checkpoint.bytes_total)
    return checkpoint


class CheckpointStore:
    """Reads and writes one migration's replicator checkpoint."""

    def __init__(self, s3: S3Objects, layout: MigrationLayout) -> None:
        self.s3 = s3
        self.layout = layout
        self.key = layout.replicator_checkpoint

    def load(self) -> ReplicatorCheckpoint | None:
        """The checkpoint, or None; UsageError when it belongs to another migration."""
        doc = self.s3.get_json(self.key)
        if doc is None:
            return None
        checkpoint = validate(doc, self.key)
        if checkpoint.migration_id != self.layout.migration_id:
            raise UsageError(
                f"s3://{self.s3.bucket}/{self.key} belongs to migration {checkpoint.migration_id!r}, "
                f"not {self.layout.migration_id!r}: use another prefix or migration id"
            )
        return checkpoint

    def save(self, checkpoint: ReplicatorCheckpoint) -> None:
        """Write the checkpoint (its segment must already be durable); stamps ``heartbeat_at``."""
        checkpoint.heartbeat_at = utc_now()
        self.s3.put_json(self.key, checkpoint.to_doc())
