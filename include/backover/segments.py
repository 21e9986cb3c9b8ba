"""Change segments: the change events exactly as the server sent them, concatenated, compressed.

A segment's bytes after decompression are a sequence of BSON documents (``bsondump`` reads them).
Its S3 metadata says how many events it holds, their first and last cluster times and the SHA-256
of the uncompressed bytes, so a reader can prove it got the whole segment before applying any of
it; and whose segment it is (migration id, sequence number, the writing replicator's lease token),
so a reader can prove it is the segment it asked for, not another one copied or moved there.
"""

from __future__ import annotations

import gzip
import hashlib
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import bson
import zstandard
from bson.timestamp import Timestamp

from . import clustertime
from .errors import JobFailed

COMPRESSIONS = ("zstd", "gzip", "none")
ZSTD_LEVEL = 3

# S3 user-metadata names (S3 lower-cases them; values are strings).
META_EVENTS = "events"
META_FIRST = "first-cluster-time"
META_LAST = "last-cluster-time"
META_SHA256 = "sha256"
META_BYTES = "uncompressed-bytes"
META_MIGRATION = "migration-id"
META_SEQ = "seq"
META_WRITER = "writer"


@dataclass(frozen=True)
class SegmentInfo:
    """What a segment's S3 metadata says about it."""

    events: int
    first_cluster_time: Timestamp
    last_cluster_time: Timestamp
    sha256: str
    uncompressed_bytes: int
    migration_id: str
    seq: int
    writer: str = ""  # the replicator's lease token

    def metadata(self) -> dict[str, str]:
        return {
            META_EVENTS: str(self.events),
            META_FIRST: clustertime.format(self.first_cluster_time),
            META_LAST: clustertime.format(self.last_cluster_time),
            META_SHA256: self.sha256,
            META_BYTES: str(self.uncompressed_bytes),
            META_MIGRATION: self.migration_id,
            META_SEQ: str(self.seq),
            META_WRITER: self.writer,
        }

    @classmethod
    def from_metadata(cls, meta: Mapping[str, str], key: str) -> SegmentInfo:
        """The metadata as a record; JobFailed naming ``key`` when a field is missing or invalid
        (segments written before the identity fields existed are refused too)."""
        missing = [name for name in (META_MIGRATION, META_SEQ) if name not in meta]
        if missing and all(name in meta for name in (META_EVENTS, META_SHA256)):
            raise JobFailed(
                f"segment {key} has no {' or '.join(missing)} metadata: it was not written by this "
                "version of the replicator, and its identity cannot be proven"
            )
        try:
            return cls(
                events=int(meta[META_EVENTS]),
                first_cluster_time=clustertime.parse(meta[META_FIRST]),
                last_cluster_time=clustertime.parse(meta[META_LAST]),
                sha256=meta[META_SHA256],
                uncompressed_bytes=int(meta[META_BYTES]),
                migration_id=meta[META_MIGRATION],
                seq=int(meta[META_SEQ]),
                writer=meta.get(META_WRITER, ""),
            )
        except (KeyError, ValueError) as e:
            raise JobFailed(f"segment {key} has incomplete metadata ({e})") from None

    def identity_error(self, migration_id: str, seq: int) -> str | None:
        """Why this is not segment ``seq`` of ``migration_id``, or None when it is."""
        if self.migration_id != migration_id:
            return f"belongs to migration {self.migration_id!r}, not {migration_id!r}"
        if self.seq != seq:
            return f"is segment {self.seq}, not {seq} (moved or copied from another key)"
        return None


def compress(data: bytes, compression: str) -> bytes:
    if compression == "zstd":
        return zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(data)
    if compression == "gzip":
        return gzip.compress(data, compresslevel=6, mtime=0)
    if compression == "none":
        return data
    raise ValueError(f"unknown compression {compression!r}; use one of {', '.join(COMPRESSIONS)}")


def decompress(data: bytes, compression: str, key: str = "segment") -> bytes:
    try:
        if compression == "zstd":
            return zstandard.ZstdDecompressor().decompress(data)
        if compression == "gzip":
            return gzip.decompress(data)
    except (zstandard.ZstdError, OSError, EOFError, zlib.error) as e:
        raise JobFailed(f"{key} is corrupt: cannot decompress ({e})") from None
    if compression == "none":
        return data
    raise ValueError(f"unknown compression {compression!r}")


def build(
    events: list[bytes],
    first: Timestamp,
    last: Timestamp,
    compression: str,
    *,
    migration_id: str,
    seq: int,
    writer: str = "",
) -> tuple[bytes, SegmentInfo]:
    """The compressed body and the metadata of segment ``seq`` of ``migration_id`` holding
    ``events`` (raw BSON each)."""
    raw = b"".join(events)
    info = SegmentInfo(
        len(events), first, last, hashlib.sha256(raw).hexdigest(), len(raw), migration_id, seq, writer
    )
    return compress(raw, compression), info


def verified_events(body: bytes, info: SegmentInfo, compression: str, key: str) -> bytes:
    """The uncompressed bytes, after checking size and SHA-256 against the metadata."""
    raw = decompress(body, compression, key)
    if len(raw) != info.uncompressed_bytes:
        raise JobFailed(f"{key} is truncated: {len(raw)} bytes, metadata says {info.uncompressed_bytes}")
    digest = hashlib.sha256(raw).hexdigest()
    if digest != info.sha256:
        raise JobFailed(
            f"{key} is corrupt: SHA-256 {digest[:12]}... does not match its metadata {info.sha256[:12]}..."
        )
    return raw


def iter_raw_events(raw: bytes) -> Iterator[bytes]:
    """Each event's raw BSON bytes, without decoding them."""
    view = memoryview(raw)
    pos, end = 0, len(raw)
    while pos < end:
        size = int.from_bytes(raw[pos : pos + 4], "little")
        if size < 5 or pos + size > end:
            raise JobFailed(f"segment data is malformed at byte {pos}")
        yield bytes(view[pos : pos + size])
        pos += size


def decode_events(raw: bytes) -> list[dict]:
    """Decode every event (for tests and tools; the hot paths stay raw)."""
    return bson.decode_all(raw)
