"""Segments ``first..last_seq`` from S3, in order, each proven whole before anything reads it.

Only segments up to the replicator checkpoint's ``last_seq`` are read: a higher one is an orphan a
crashed replicator left (it will be overwritten), never applied. The next few segments are
downloaded in the background while the current one is applied.

A segment is used only when it is the one asked for: its metadata names this migration and its
own sequence number (a segment copied from another migration, or moved to another number, passes
its SHA-256 but not this), its first and last events carry the cluster times the metadata says,
and it starts no earlier than the one before it ended (cluster-time continuity).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from bson.raw_bson import RawBSONDocument
from bson.timestamp import Timestamp

from .. import clustertime
from ..errors import JobFailed
from ..layout import MigrationLayout
from ..s3objects import S3Objects
from ..segments import SegmentInfo, iter_raw_events, verified_events
from .planner import SegmentEvents

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SegmentRef:
    """Where segment ``seq`` of migration ``migration_id`` is and how it is compressed."""

    seq: int
    key: str
    compression: str
    migration_id: str


def list_segments(s3: S3Objects, layout: MigrationLayout, first: int, last: int) -> list[SegmentRef]:
    """Segments ``first..last`` (every one must exist, exactly once); orphans above ``last`` are
    reported in the log and left alone. The listing starts after segment ``first - 1``, so a follow
    restore polling a month of segments lists only the new ones."""
    found: dict[int, list[SegmentRef]] = {}
    orphans = []
    if first > last:
        return []
    for key in s3.list_keys(layout.changes_prefix, start_after=layout.segments_after(first - 1)):
        parsed = layout.parse_segment(key)
        if parsed is None:
            continue
        seq, compression = parsed
        if seq > last:
            orphans.append(key)
        elif seq >= first:
            found.setdefault(seq, []).append(SegmentRef(seq, key, compression, layout.migration_id))
    if orphans:
        log.info(
            "ignoring %d segment(s) above the replicator checkpoint's last_seq %d (orphans): %s",
            len(orphans),
            last,
            ", ".join(orphans[:3]),
        )
    refs = []
    for seq in range(first, last + 1):
        candidates = found.get(seq, [])
        if not candidates:
            raise JobFailed(
                f"segment {layout.segment(seq, 'zstd')} (or .gz/.bson) is missing: the replicator "
                f"checkpoint says segments up to {last} are written"
            )
        if len(candidates) > 1:
            raise JobFailed(f"segment {seq} exists more than once: {', '.join(r.key for r in candidates)}")
        refs.append(candidates[0])
    return refs


def read_segment(s3: S3Objects, ref: SegmentRef) -> SegmentEvents:
    """Download, decompress, check identity, size and SHA-256 against the metadata, split into events."""
    return _read(s3, ref)[0]


def _read(s3: S3Objects, ref: SegmentRef) -> tuple[SegmentEvents, SegmentInfo]:
    got = s3.get_object(ref.key)
    if got is None:
        raise JobFailed(f"segment {ref.key} disappeared while the restore was reading it")
    body, metadata = got
    info = SegmentInfo.from_metadata(metadata, ref.key)
    wrong = info.identity_error(ref.migration_id, ref.seq)
    if wrong is not None:
        raise JobFailed(f"segment {ref.key} {wrong}: refusing to apply it")
    raw = verified_events(body, info, ref.compression, ref.key)
    try:
        events = list(iter_raw_events(raw))
    except JobFailed as e:
        raise JobFailed(f"{ref.key} is corrupt: {e}") from None
    if len(events) != info.events:
        raise JobFailed(f"{ref.key} is corrupt: {len(events)} events, metadata says {info.events}")
    if events:
        times = (_cluster_time(events[0], ref.key), _cluster_time(events[-1], ref.key))
        if times != (info.first_cluster_time, info.last_cluster_time):
            raise JobFailed(
                f"segment {ref.key} holds events from {clustertime.format(times[0])} to "
                f"{clustertime.format(times[1])}, its metadata says "
                f"{clustertime.format(info.first_cluster_time)} to "
                f"{clustertime.format(info.last_cluster_time)}: refusing to apply it"
            )
    return SegmentEvents(ref.seq, ref.key, events, info.last_cluster_time if events else None), info


def _cluster_time(event: bytes, key: str) -> Timestamp:
    value = RawBSONDocument(event).get("clusterTime")
    if not isinstance(value, Timestamp):
        raise JobFailed(f"{key} is corrupt: an event without a clusterTime")
    return value


def check_continuity(previous: SegmentInfo | None, info: SegmentInfo, key: str) -> None:
    """JobFailed when a segment starts before the previous one ended (a segment out of place)."""
    if previous is not None and info.first_cluster_time < previous.last_cluster_time:
        raise JobFailed(
            f"segment {key} starts at {clustertime.format(info.first_cluster_time)}, before segment "
            f"{previous.seq} ended ({clustertime.format(previous.last_cluster_time)}): the segments are "
            "out of order; refusing to apply it"
        )


class SegmentReader:
    """Iterates verified segments in order, downloading up to ``prefetch`` ahead."""

    def __init__(self, s3: S3Objects, refs: list[SegmentRef], prefetch: int = 2) -> None:
        self.s3 = s3
        self.refs = refs
        self.prefetch = max(1, prefetch)

    def __iter__(self) -> Iterator[SegmentEvents]:
        previous: SegmentInfo | None = None

        def checked(future: Future[tuple[SegmentEvents, SegmentInfo]]) -> SegmentEvents:
            nonlocal previous
            segment, info = future.result()
            check_continuity(previous, info, segment.key)
            previous = info
            return segment

        with ThreadPoolExecutor(self.prefetch, thread_name_prefix="restore-fetch") as pool:
            ahead: list[Future[tuple[SegmentEvents, SegmentInfo]]] = []
            upcoming = iter(self.refs)
            try:
                for ref in upcoming:
                    ahead.append(pool.submit(_read, self.s3, ref))
                    if len(ahead) > self.prefetch:
                        yield checked(ahead.pop(0))
                while ahead:
                    yield checked(ahead.pop(0))
            finally:
                for future in ahead:
                    future.cancel()
