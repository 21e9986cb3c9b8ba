"""``backover status``: one JSON document about a migration, from its state objects in S3.

``replicator`` comes from ``changes/_checkpoint.json``: ``heartbeat_age_seconds`` is how long ago
the replicator last wrote it (a running replicator writes it every few seconds, even when idle),
``lag_seconds`` how far its captured position (``last_cluster_time``) was behind the wall clock
at that heartbeat. ``restore`` adds to the restore checkpoint its ``heartbeat_age_seconds`` and
``lag`` behind the capture (``backover.restore.follow.lag``). ``replicator_lease`` and ``restore_lease`` show who holds each single-writer
lease, since when, and when it expires unless renewed. ``start``, ``drain``, ``restore`` and
``clean`` are shown when present.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bson.timestamp import Timestamp

from .. import clustertime, state
from ..layout import MigrationLayout
from ..lease import describe as describe_lease
from ..restore.follow import heartbeat_age, lag
from ..s3objects import S3Objects
from ..state import CleanRecord, FreezeRecord, ReplicatorCheckpoint, RestoreCheckpoint, StartRecord, utc_now
from ..sync.status import sync_status
from .checkpoint import validate
from .drain import parse_request


def plain(value: Any) -> Any:
    """JSON-ready: Timestamps as ``secs:inc``, datetimes as ISO 8601, containers recursively."""
    if isinstance(value, Timestamp):
        return clustertime.format(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def replicator_status(checkpoint: ReplicatorCheckpoint, now: datetime | None = None) -> dict[str, Any]:
    """The replicator's part of the status."""
    now = now or utc_now()
    heartbeat = checkpoint.heartbeat_at
    age = (now - heartbeat).total_seconds() if isinstance(heartbeat, datetime) else None
    lag = None
    if isinstance(heartbeat, datetime) and checkpoint.last_cluster_time is not None:
        lag = max(0.0, heartbeat.timestamp() - checkpoint.last_cluster_time.time)
    return {
        "state": checkpoint.state,
        "heartbeat_at": plain(heartbeat),
        "heartbeat_age_seconds": None if age is None else round(age, 3),
        "lag_seconds": None if lag is None else round(lag, 3),
        "events": checkpoint.events_total,
        "segments": checkpoint.last_seq,
        "bytes": checkpoint.bytes_total,
        "last_cluster_time": plain(checkpoint.last_cluster_time),
        "drained_until": plain(checkpoint.drained_until),
        "reason": checkpoint.reason,
    }


def restore_status(
    restore: RestoreCheckpoint, replicator: ReplicatorCheckpoint | None, now: datetime | None = None
) -> dict[str, Any]:
    """The restore's part: its checkpoint, how long ago it wrote it (a follow restore's
    heartbeat) and how far it trails the capture (``lag``: segments, events, seconds)."""
    shown: dict[str, Any] = plain(restore.fields_json())
    shown["heartbeat_age_seconds"] = round(heartbeat_age(restore, now), 3)
    shown["lag"] = None if replicator is None else lag(restore, replicator).to_json()
    return shown


def status(layout: MigrationLayout, s3: S3Objects | None = None) -> dict[str, Any]:
    """The migration's status as a JSON-ready dict (UsageError if the bucket cannot be used)."""
    s3 = s3 or S3Objects(layout.bucket)
    s3.check_bucket()
    report: dict[str, Any] = {
        "migration_id": layout.migration_id,
        "location": f"s3://{layout.bucket}/{layout.root}",
    }
    doc = s3.get_json(layout.replicator_checkpoint)  # checked as the replicator checks it
    where = f"s3://{s3.bucket}/{layout.replicator_checkpoint}"
    replicator = None if doc is None else validate(doc, where)
    report["replicator"] = None if replicator is None else replicator_status(replicator)
    report["replicator_lease"] = describe_lease(s3, layout.replicator_lease)
    report["restore_lease"] = describe_lease(s3, layout.restore_lease)
    start = state.read(s3, layout.start_state, StartRecord)
    report["start"] = (
        None
        if start is None
        else plain(
            {
                "t0": start.t0,
                "namespaces": start.namespaces,
                "source_flavour": start.source_flavour,
                "started_at": start.started_at,
            }
        )
    )
    drain = s3.get_json(layout.drain_request)
    until = parse_request(drain)
    report["drain"] = None if drain is None else {"until": plain(until) if until else None}
    freeze = state.read(s3, layout.freeze_state, FreezeRecord)
    report["freeze"] = None if freeze is None else plain({"f": freeze.f, "frozen_at": freeze.frozen_at})
    sync = sync_status(s3, layout)
    report["sync"] = None if sync is None else plain(sync)
    restore = state.read(s3, layout.restore_checkpoint, RestoreCheckpoint)
    report["restore"] = None if restore is None else restore_status(restore, replicator)
    clean = state.read(s3, layout.clean_state, CleanRecord)
    report["clean"] = None if clean is None else plain(clean.fields_json())
    return report
