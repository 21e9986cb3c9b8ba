"""Segments ``first..last_seq`` from S3, in order, each proven whole before anything reads it.

Only segments up to the replicator checkpoint's ``last_seq`` are read: a higher one is an orphan a
crashed replicator left (it will be overwritten), never applied. The next few segments are
downloaded in the background while the current one is applied.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from ..errors import JobFailed
from ..layout import MigrationLayout
from ..s3objects import S3Objects
from ..segments import SegmentInfo, iter_raw_events, verified_events
from .planner import SegmentEvents

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SegmentRef:
    """Where segment ``seq`` is and how it is compressed."""

    seq: int
    key: str
    compression: str


def list_segments(s3: S3Objects, layout: MigrationLayout, first: int, last: int) -> list[SegmentRef]:
    """Segments ``first..last`` (every one must exist, exactly once); orphans above ``last`` are
    reported in the log and left alone."""
    found: dict[int, list[SegmentRef]] = {}
    orphans = []
    for key in s3.list_keys(layout.changes_prefix):
        parsed = layout.parse_segment(key)
        if parsed is None:
            continue
        seq, compression = parsed
        if seq > last:
            orphans.append(key)
        elif seq >= first:
            found.setdefault(seq, []).append(SegmentRef(seq, key, compression))
    if orphans:
        log.info("ignoring %d segment(s) above the replicator checkpoint's last_seq %d (orphans): %s",
                 len(orphans), last, ", ".join(orphans[:3]))
    refs = []
    for seq in range(first, last + 1):
        candidates = found.get(seq, [])
        if not candidates:
            raise JobFailed(f"segment {layout.segment(seq, 'zstd')} (or .gz/.bson) is missing: the replicator "
                            f"checkpoint says segments up to {last} are written")
        if len(candidates) > 1:
            raise JobFailed(f"segment {seq} exists more than once: {', '.join(r.key for r in candidates)}")
        refs.append(candidates[0])
    return refs


def read_segment(s3: S3Objects, ref: SegmentRef) -> SegmentEvents:
    """Download, decompress, check size and SHA-256 against the metadata, split into events."""
    got = s3.get_object(ref.key)
    if got is None:
        raise JobFailed(f"segment {ref.key} disappeared while the restore was reading it")
    body, metadata = got
    info = SegmentInfo.from_metadata(metadata, ref.key)
    raw = verified_events(body, info, ref.compression, ref.key)
    try:
        events = list(iter_raw_events(raw))
    except JobFailed as e:
        raise JobFailed(f"{ref.key} is corrupt: {e}") from None
    if len(events) != info.events:
        raise JobFailed(f"{ref.key} is corrupt: {len(events)} events, metadata says {info.events}")
    return SegmentEvents(ref.seq, ref.key, events)


class SegmentReader:
    """Iterates verified segments in order, downloading up to ``prefetch`` ahead."""

    def __init__(self, s3: S3Objects, refs: list[SegmentRef], prefetch: int = 2) -> None:
        self.s3 = s3
        self.refs = refs
        self.prefetch = max(1, prefetch)

    def __iter__(self) -> Iterator[SegmentEvents]:
        with ThreadPoolExecutor(self.prefetch, thread_name_prefix="restore-fetch") as pool:
            ahead: list[Future[SegmentEvents]] = []
            upcoming = iter(self.refs)
            try:
                for ref in upcoming:
                    ahead.append(pool.submit(read_segment, self.s3, ref))
                    if len(ahead) > self.prefetch:
                        yield ahead.pop(0).result()
                while ahead:
                    yield ahead.pop(0).result()
            finally:
                for future in ahead:
                    future.cancel()
