"""The restore's own state in S3: ``restore/_checkpoint.json`` and the documents moved aside.

The checkpoint names the last segment applied in full; a crashed or re-run restore continues
after it (the segment after it may have been applied in part: applying it again is harmless).
``restore/_ddl.json`` records the last DDL event, as started before it is applied and as
applied after: no event before an applied DDL is ever applied again.
Event counts per namespace move into the checkpoint only when their segment is complete, so a
re-applied segment is never counted twice.
"""

from __future__ import annotations

import logging

from ..errors import UsageError
from ..layout import MigrationLayout
from ..s3objects import S3Objects
from ..state import ReplicatorCheckpoint, RestoreCheckpoint, utc_now
from .displaced import Displaced
from .planner import Barrier, SegmentDone

log = logging.getLogger(__name__)


class CheckpointStore:
    """Reads and writes one migration's restore state."""

    def __init__(self, s3: S3Objects, layout: MigrationLayout) -> None:
        self.s3 = s3
        self.layout = layout

    @property
    def displaced_key(self) -> str:
        return self.layout.key("restore/displaced.bson")

    @property
    def ddl_key(self) -> str:
        return self.layout.key("restore/_ddl.json")

    def applied_through(self) -> tuple[int, int] | None:
        """The position ``(seq, index)`` up to which every event is applied, from the last DDL
        recorded: an applied DDL and all before it; for a DDL only started, all before it."""
        doc = self.s3.get_json(self.ddl_key)
        if doc is None:
            return None
        seq, index = int(doc["seq"]), int(doc["index"])
        return (seq, index) if doc.get("state") == "applied" else (seq, index - 1)

    def record_ddl(self, barrier: Barrier, state: str) -> None:
        event = barrier.event
        self.s3.put_json(self.ddl_key, {"seq": barrier.seq, "index": barrier.index, "state": state,
                                        "op": event.op, "ns": event.ns, "at": utc_now()})

    def reset(self) -> None:
        """Forget this restore's state (checkpoint, DDL record, documents moved aside)."""
        self.s3.delete_keys([self.layout.restore_checkpoint, self.ddl_key, self.displaced_key])

    def replicator(self) -> ReplicatorCheckpoint:
        doc = self.s3.get_json(self.layout.replicator_checkpoint)
        if doc is None:
            raise UsageError(f"no replicator checkpoint at s3://{self.s3.bucket}/{self.layout.replicator_checkpoint}: "
                             "nothing was captured for this migration id")
        return ReplicatorCheckpoint.from_doc(doc)

    def load(self) -> RestoreCheckpoint | None:
        doc = self.s3.get_json(self.layout.restore_checkpoint)
        return None if doc is None else RestoreCheckpoint.from_doc(doc)

    def save(self, checkpoint: RestoreCheckpoint, displaced: Displaced | None = None) -> None:
        """Documents moved aside first, then the checkpoint that relies on them."""
        if displaced is not None and displaced.changed:
            self.s3.put_bytes(self.displaced_key, displaced.to_bytes())
            displaced.changed = False
        checkpoint.updated_at = utc_now()
        self.s3.put_json(self.layout.restore_checkpoint, checkpoint.to_doc())

    def load_displaced(self) -> Displaced:
        data = self.s3.get_bytes(self.displaced_key)
        displaced = Displaced.from_bytes(data) if data else Displaced()
        if displaced:
            log.info("%d document(s) moved aside by an earlier run are waiting for their later writes", len(displaced))
        return displaced


def commit(checkpoint: RestoreCheckpoint, done: SegmentDone) -> bool:
    """Record segment ``done`` as applied in full, with its event counts; a segment applied
    again changes nothing (returns False)."""
    if done.seq <= checkpoint.last_applied_seq:
        return False
    checkpoint.last_applied_seq = done.seq
    checkpoint.events_applied += done.events
    for ns, counts in done.counts.items():
        mine = checkpoint.per_namespace.setdefault(ns, {})
        for op, n in counts.items():
            mine[op] = mine.get(op, 0) + n
    return True
