"""Batching events into segments and writing them, then the checkpoint, to S3 in order.

:class:`SegmentBuffer` is the pure part: it collects raw events and says when a segment is full
(max events or max bytes) or due (max seconds). :class:`SegmentWriter` is one background thread
that compresses each segment, PUTs it as ``changes/{seq:012d}.bson.zst`` and only then PUTs the
checkpoint that counts it, so capture keeps reading while S3 works. Jobs run in the order they
were given: segment ``n``, checkpoint ``n``, segment ``n + 1`` ... A crash between a segment and
its checkpoint leaves an orphan segment ``last_seq + 1``, which the next run removes once it holds
the replicator lease. S3 errors are retried with backoff; the capture blocks while a segment waits
for the one being written (bounded memory).

Single writer: before every PUT the lease is renewed (:meth:`backover.lease.Lease.fence`), a
segment is PUT only if its key does not exist (``If-None-Match: *``) and the checkpoint only if it
is still the one this process wrote (``If-Match``), so a replicator that lost its lease (paused
past the TTL, another one took over) stops before it overwrites or deletes anything of the new
holder's. A segment key already taken is this process's own earlier attempt (same writer token
and SHA-256: done), or a fenced writer's never-checkpointed segment, which the lease holder
deletes before writing its own.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError
from bson.timestamp import Timestamp

from .. import clustertime, segments
from ..errors import BackoverError, JobFailed
from ..layout import COMPRESSION_SUFFIX, MigrationLayout
from ..lease import Lease, LeaseLost
from ..s3objects import Conflict, S3Objects
from ..state import ReplicatorCheckpoint, ReplicatorState
from . import tokens
from .checkpoint import CheckpointChanged, CheckpointStore
from .events import unpack
from .retry import Backoff

log = logging.getLogger(__name__)

#: Segments handed to the writer and not yet written, before capture waits.
QUEUE_DEPTH = 1
_POLL = 0.5
_UNSET: Any = object()


@dataclass
class Batch:
    """The events of one segment, raw, in stream order."""

    events: list[bytes]
    first: Timestamp
    last: Timestamp
    size: int


@dataclass
class SegmentBuffer:
    """Collects raw events until a segment is full (events, bytes) or due (seconds).

    Cluster times are packed ints (:func:`.events.pack`), cheap to keep per event.
    """

    max_events: int
    max_bytes: int
    max_seconds: float
    events: list[bytes] = field(default_factory=list)
    size: int = 0
    first: int | None = None
    last: int | None = None
    opened_at: float = 0.0

    def add(self, raw: bytes, cluster_time: int, now: float) -> bool:
        """Append one event; True when the segment has reached max events or max bytes."""
        if not self.events:
            self.first = cluster_time
            self.opened_at = now
        self.events.append(raw)
        self.size += len(raw)
        self.last = cluster_time
        return len(self.events) >= self.max_events or self.size >= self.max_bytes

    def due(self, now: float) -> bool:
        """True when the oldest buffered event has waited ``max_seconds``."""
        return bool(self.events) and now - self.opened_at >= self.max_seconds

    def __len__(self) -> int:
        return len(self.events)

    def keep_first(self, count: int, last: int | None) -> None:
        """Drop every event after the first ``count``; ``last`` is the cluster time of the last kept."""
        if count <= 0:
            self.events, self.size, self.first, self.last = [], 0, None, None
            return
        del self.events[count:]
        self.size = sum(map(len, self.events))
        self.last = last

    def take(self) -> Batch:
        """The buffered events as a batch; the buffer is empty afterwards."""
        assert self.first is not None and self.last is not None, "take() of an empty buffer"
        batch = Batch(self.events, unpack(self.first), unpack(self.last), self.size)
        self.events, self.size, self.first, self.last = [], 0, None, None
        return batch


@dataclass
class _SegmentJob:
    batch: Batch
    token: Mapping[str, Any] | None
    position: Timestamp | None
    state: ReplicatorState


@dataclass
class _CheckpointJob:
    state: ReplicatorState
    token: Any = _UNSET
    position: Any = _UNSET
    reason: str | None = None
    drained_until: Timestamp | None = None


def remove_orphans(s3: S3Objects, layout: MigrationLayout, last_seq: int) -> list[str]:
    """Delete segment ``last_seq + 1`` in any compression (left by a crash before its checkpoint)."""
    orphans = [key for c in COMPRESSION_SUFFIX if s3.head(key := layout.segment(last_seq + 1, c)) is not None]
    if orphans:
        s3.delete_keys(orphans)
        log.info("removed orphan segment %s (written before a crash, never checkpointed)", ", ".join(orphans))
    return orphans


class SegmentWriter:
    """Writes segments and checkpoints in order on one background thread."""

    def __init__(
        self,
        store: CheckpointStore,
        checkpoint: ReplicatorCheckpoint,
        compression: str,
        backoff: Callable[[], Backoff],
        lease: Lease,
    ) -> None:
        self.store = store
        self.lease = lease
        self.s3 = store.s3
        self.layout = store.layout
        self.compression = compression
        self.checkpoint = checkpoint
        self.error: BaseException | None = None
        self.segments_written = 0
        self.put_count = 0
        self._backoff = backoff
        self._queue: queue.Queue[_SegmentJob | _CheckpointJob | None] = queue.Queue(maxsize=QUEUE_DEPTH)
        self._thread = threading.Thread(target=self._run, name="segment-writer", daemon=True)

    # -- called by the capture thread ---------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def segment(
        self,
        batch: Batch,
        token: Mapping[str, Any] | None,
        position: Timestamp | None,
        state: ReplicatorState,
    ) -> None:
        """Queue a segment; its checkpoint will say ``token`` and ``position`` (the batch's end)."""
        self._put(_SegmentJob(batch, token, position, state))

    def checkpoint_only(
        self,
        state: ReplicatorState,
        *,
        token: Any = _UNSET,
        position: Any = _UNSET,
        reason: str | None = None,
        drained_until: Timestamp | None = None,
    ) -> None:
        """Queue a checkpoint without a segment (heartbeat, state change); ``token`` must match
        the segments already queued (no event buffered after them)."""
        self._put(_CheckpointJob(state, token, position, reason, drained_until))

    def close(self) -> ReplicatorCheckpoint:
        """Wait until every queued job is written; raise the writer's error if it failed."""
        if self._thread.is_alive():
            self._put(None)
            self._thread.join()
        self.raise_if_failed()
        return self.checkpoint

    def raise_if_failed(self) -> None:
        """The writer's error, or the lease's loss seen by its renewing thread."""
        if self.error is not None:
            raise self.error
        self.lease.raise_if_lost()

    def _put(self, job: _SegmentJob | _CheckpointJob | None) -> None:
        while True:
            self.raise_if_failed()
            try:
                self._queue.put(job, timeout=_POLL)
                return
            except queue.Full:
                continue

    # -- the writer thread --------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            try:
                if isinstance(job, _SegmentJob):
                    self._write_segment(job)
                else:
                    self._write_checkpoint(job)
            except BaseException as e:  # noqa: BLE001 - handed to the capture thread, which raises it
                self.error = e
                return

    def _write_segment(self, job: _SegmentJob) -> None:
        batch = job.batch
        seq = self.checkpoint.last_seq + 1
        key = self.layout.segment(seq, self.compression)
        began = time.monotonic()
        body, info = segments.build(
            batch.events,
            batch.first,
            batch.last,
            self.compression,
            migration_id=self.layout.migration_id,
            seq=seq,
            writer=self.lease.holder.token,
        )
        batch.events = []  # free the raw events before the upload: only the compressed body is needed
        self._durably(key, lambda: self._put_segment(key, body, info))
        self.segments_written += 1
        log.info(
            "segment %d: %d events, %d bytes (%d compressed), cluster time %s .. %s, %.2fs",
            seq,
            info.events,
            info.uncompressed_bytes,
            len(body),
            clustertime.format(batch.first),
            clustertime.format(batch.last),
            time.monotonic() - began,
        )
        cp = self.checkpoint
        cp.last_seq = seq
        cp.events_total += info.events
        cp.bytes_total += info.uncompressed_bytes
        cp.resume_token = tokens.as_document(job.token)
        cp.state = job.state
        if job.position is not None:
            cp.last_cluster_time = job.position
        self._durably(self.store.key, lambda: self.store.save(cp))

    def _write_checkpoint(self, job: _CheckpointJob) -> None:
        cp = self.checkpoint
        cp.state = job.state
        if job.token is not _UNSET and job.token is not None:
            cp.resume_token = tokens.as_document(job.token)
        cp.state = job.state
        if job.position is not _UNSET and job.position is not None:
            cp.last_cluster_time = job.position
        cp.reason = job.reason
        if job.drained_until is not None:
            cp.drained_until = job.drained_until
        self._durably(self.store.key, lambda: self.store.save(cp))

    def _put_segment(self, key: str, body: bytes, info: segments.SegmentInfo) -> None:
        """PUT segment ``info.seq`` if its key is free; a key taken by another writer's segment
        (never checkpointed: the checkpoint is this process's) is deleted under the lease first."""
        try:
            self.s3.put_if(key, body, etag=None, metadata=info.metadata())
            return
        except Conflict:
            pass
        got = self.s3.head(key)
        if got is None:
            raise BackoverError(f"{key} was being written by another request; retrying")
        theirs = got.get("Metadata", {})
        if (
            theirs.get(segments.META_WRITER) == info.writer
            and theirs.get(segments.META_SHA256) == info.sha256
        ):
            return  # this process's own earlier attempt landed
        self.lease.fence()
        log.warning(
            "segment key %s holds a segment of another writer (%s), never checkpointed: replacing it",
            key,
            theirs.get(segments.META_WRITER) or "unknown",
        )
        self.s3.delete_if(key, got["ETag"])
        raise BackoverError(f"{key} was taken by a fenced writer's segment, now removed; retrying")

    def _durably(self, key: str, put: Callable[[], None]) -> None:
        """Renew the lease, then run one PUT, until it succeeds; JobFailed when S3 keeps failing
        past the backoff's limit; :class:`LeaseLost` or :class:`CheckpointChanged` at once."""
        backoff = self._backoff()
        while True:
            try:
                self.put_count += 1
                self.lease.fence()
                put()
                return
            except (LeaseLost, CheckpointChanged):
                raise
            except (BackoverError, BotoCoreError) as e:
                if not backoff.failed():
                    raise JobFailed(
                        f"S3 kept failing for {backoff.failing_for:.0f}s writing {key}: {e}"
                    ) from e
                log.warning("writing %s failed (%s); retry %d", key, e, backoff.attempts)
                backoff.wait()
