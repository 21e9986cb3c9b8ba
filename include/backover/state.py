"""The JSON state objects a migration keeps in S3, as typed records.

Writers and readers (replicator, restore, Lambdas, sensors, clean, status) all go through these,
so a field is named once. Values that are BSON (cluster times, resume tokens) are stored as
canonical Extended JSON by :mod:`backover.s3objects`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

from bson.timestamp import Timestamp

REPLICATOR_STATES = ("running", "draining", "drained", "failed", "stopped")
RESTORE_STATES = ("running", "completed", "failed")


def utc_now() -> datetime:
    return datetime.now(UTC)


def _from_dict(cls: type, data: dict[str, Any]) -> Any:
    known = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class ReplicatorCheckpoint:
    """``changes/_checkpoint.json``: written only after segment ``last_seq`` is durable in S3."""

    migration_id: str
    last_seq: int = 0
    resume_token: dict[str, Any] | None = None
    last_cluster_time: Timestamp | None = None
    events_total: int = 0
    bytes_total: int = 0
    state: str = "running"
    heartbeat_at: datetime = field(default_factory=utc_now)
    reason: str | None = None  # why the state is ``failed``
    drained_until: Timestamp | None = None

    def to_doc(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> ReplicatorCheckpoint:
        return _from_dict(cls, doc)


@dataclass
class RestoreCheckpoint:
    """``restore/_checkpoint.json``: the last segment applied in full, and the outcome."""

    migration_id: str
    last_applied_seq: int = 0
    events_applied: int = 0
    state: str = "running"
    per_namespace: dict[str, dict[str, int]] = field(default_factory=dict)
    updated_at: datetime = field(default_factory=utc_now)
    reason: str | None = None
    displaced_generation: int = 0  # the saved ``restore/displaced.bson`` this checkpoint relies on

    def to_doc(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> RestoreCheckpoint:
        return _from_dict(cls, doc)
