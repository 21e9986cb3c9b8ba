"""The restore's own state in S3: ``restore/_checkpoint.json`` and the documents moved aside.

The checkpoint names the last segment applied in full; a crashed or re-run restore continues
after it (the segment after it may have been applied in part: applying it again is harmless).
``restore/_ddl.json`` records the last DDL event, as started before it is applied and as
applied after: no event before an applied DDL is ever applied again.
The documents moved aside (``restore/displaced.bson``) are saved before each of these records, and
each record names the generation of the saved set it relies on: a restart that skips events up to
a record always finds the kept copies as they were at that record, or newer (never older, which
would write back a copy that a skipped event had replaced).
Event counts per namespace move into the checkpoint only when their segment is complete, so a
re-applied segment is never counted twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from .. import extjson, metrics
from ..errors import JobFailed, UsageError
from ..layout import MigrationLayout
from ..replication import checkpoint as replication_checkpoint
from ..s3objects import Conflict, S3Objects
from ..state import DdlRecord, DdlState, ReplicatorCheckpoint, RestoreCheckpoint, utc_now
from .displaced import Displaced
from .planner import Barrier, SegmentDone

log = logging.getLogger(__name__)


class CheckpointStore:
    """Reads and writes one migration's restore state."""

    def __init__(
        self, s3: S3Objects, layout: MigrationLayout, fence: Callable[[], None] | None = None
    ) -> None:
        self.s3 = s3
        self.layout = layout
        #: Called before every write of the restore's state (the restore lease's fence): a restore
        #: whose lease was taken over stops before it replaces the new holder's records.
        self.fence = fence or (lambda: None)
        #: The ETag of each state object as this restore last read or wrote it (None: absent). The
        #: writes are conditional on it, so a restore paused past its lease (its PUT stalled, then
        #: landing late) cannot replace what the new holder wrote meanwhile.
        self._etags: dict[str, str | None] = {}
        self._unconfirmed: dict[str, list[bytes]] = {}
        #: ``time.monotonic()`` of the last checkpoint save (0: none yet): how often to save again is
        #: decided across calls (a follow restore applies a few segments per call).
        self.saved_at = 0.0
        self.saved_seq = 0  # the ``last_applied_seq`` that save wrote

    def _read(self, key: str) -> bytes | None:
        got = self.s3.get_versioned(key)
        self._etags[key] = got[2] if got is not None else None
        return got[0] if got is not None else None

    def _read_json(self, key: str) -> Any:
        data = self._read(key)
        return None if data is None else self.s3.parse_json(key, data)

    def _put(self, key: str, body: bytes, content_type: str = "application/octet-stream") -> None:
        """A conditional PUT over the version this restore knows; JobFailed when another restore
        changed the object since."""
        if key not in self._etags:
            self._read(key)
        unconfirmed = self._unconfirmed.setdefault(key, [])
        unconfirmed.append(body)
        try:
            self._etags[key] = self.s3.put_if(
                key, body, etag=self._etags[key], content_type=content_type, attempted=unconfirmed
            )
        except Conflict:
            raise JobFailed(
                f"s3://{self.s3.bucket}/{key} was changed by another restore since this one read it: "
                "stopping without writing anything more"
            ) from None
        unconfirmed.clear()

    @property
    def displaced_key(self) -> str:
        return self.layout.restore_displaced

    @property
    def ddl_key(self) -> str:
        return self.layout.restore_ddl

    def ddl_record(self) -> DdlRecord | None:
        """``restore/_ddl.json``, checked; JobFailed naming the key when it is not a DDL record."""
        doc = self._read_json(self.ddl_key)
        return None if doc is None else DdlRecord.from_json(doc, f"s3://{self.s3.bucket}/{self.ddl_key}")

    def applied_through(self) -> tuple[int, int] | None:
        """The position ``(seq, index)`` up to which every event is applied, from the last DDL
        recorded (:meth:`DdlRecord.applied_through`)."""
        record = self.ddl_record()
        return None if record is None else record.applied_through()

    def record_ddl(self, barrier: Barrier, state: DdlState, displaced: Displaced) -> None:
        """The DDL record, after the documents moved aside as they are at this point."""
        self.fence()
        self._save_displaced(displaced)
        event = barrier.event
        record = DdlRecord(
            seq=barrier.seq,
            index=barrier.index,
            state=state,
            op=event.op,
            ns=event.ns,
            at=utc_now(),
            displaced_generation=displaced.generation,
        )
        self._put(self.ddl_key, extjson.dumps(record.to_json()).encode(), "application/json")

    def save_displaced(self, displaced: Displaced) -> None:
        """Save the documents moved aside if they changed since the last save (a new generation)."""
        if displaced.changed:
            self.fence()
            self._save_displaced(displaced)

    def _save_displaced(self, displaced: Displaced) -> None:
        if displaced.changed:
            displaced.generation += 1
            self._put(self.displaced_key, displaced.to_bytes())
            displaced.changed = False

    def reset(self) -> None:
        """Forget this restore's state (checkpoint, DDL record, documents moved aside)."""
        keys = [self.layout.restore_checkpoint, self.ddl_key, self.displaced_key]
        self.s3.delete_keys(keys)
        self._etags.update(dict.fromkeys(keys))

    def replicator(self) -> ReplicatorCheckpoint:
        """The replicator checkpoint, checked as the replicator checks it (this migration's, a valid
        record, its last segment there and not ahead of it); UsageError when there is none."""
        checkpoint = replication_checkpoint.load(self.s3, self.layout)
        if checkpoint is None:
            raise UsageError(
                f"no replicator checkpoint at s3://{self.s3.bucket}/{self.layout.replicator_checkpoint}: "
                "nothing was captured for this migration id"
            )
        replication_checkpoint.check_last_segment(self.s3, self.layout, checkpoint)
        return checkpoint

    def load(self) -> RestoreCheckpoint | None:
        """The restore checkpoint, checked; UsageError when it is another migration's, JobFailed
        when it is not a restore checkpoint."""
        key = self.layout.restore_checkpoint
        doc = self._read_json(key)
        if doc is None:
            return None
        where = f"s3://{self.s3.bucket}/{key}"
        other = doc.get("migration_id") if isinstance(doc, dict) else None
        if isinstance(other, str) and other != self.layout.migration_id:  # not ours to judge, or to use
            raise UsageError(f"{where} belongs to migration {other!r}, not {self.layout.migration_id!r}")
        return RestoreCheckpoint.from_json(doc, where)

    def save(self, checkpoint: RestoreCheckpoint, displaced: Displaced | None = None) -> None:
        """Documents moved aside first, then the checkpoint that relies on them; a saved checkpoint
        is the restore's metrics sample (:mod:`backover.metrics`)."""
        self.fence()
        if displaced is not None:
            self._save_displaced(displaced)
            checkpoint.displaced_generation = displaced.generation
        checkpoint.updated_at = utc_now()
        self._put(
            self.layout.restore_checkpoint, extjson.dumps(checkpoint.to_json()).encode(), "application/json"
        )
        self.saved_at, self.saved_seq = time.monotonic(), checkpoint.last_applied_seq
        metrics.restore_saved(self.s3, self.layout, checkpoint)

    def load_displaced(self, checkpoint: RestoreCheckpoint | None) -> Displaced:
        """The documents moved aside by earlier runs; JobFailed when the saved set is older than
        a record that relies on it (the checkpoint or the DDL record)."""
        data = self._read(self.displaced_key)
        displaced = Displaced.from_bytes(data, self.displaced_key) if data else Displaced()
        ddl = self.ddl_record()
        needed = max(
            checkpoint.displaced_generation if checkpoint else 0, ddl.displaced_generation if ddl else 0
        )
        if displaced.generation < needed:
            raise JobFailed(
                f"s3://{self.s3.bucket}/{self.displaced_key} is generation {displaced.generation} but the "
                f"restore's records rely on generation {needed}: the restore state is inconsistent; "
                "put the target back to its pre-restore state and run with --reset"
            )
        if displaced:
            log.info(
                "%d document(s) moved aside by an earlier run are waiting for their later writes",
                len(displaced),
            )
        return displaced


def commit(checkpoint: RestoreCheckpoint, done: SegmentDone) -> bool:
    """Record segment ``done`` as applied in full, with its event counts; a segment applied
    again changes nothing (returns False)."""
    if done.seq <= checkpoint.last_applied_seq:
        return False
    checkpoint.last_applied_seq = done.seq
    checkpoint.events_applied += done.events
    if done.last_cluster_time is not None:
        checkpoint.applied_cluster_time = done.last_cluster_time
    for ns, counts in done.counts.items():
        mine = checkpoint.per_namespace.setdefault(ns, {})
        for op, n in counts.items():
            mine[op] = mine.get(op, 0) + n
    return True
