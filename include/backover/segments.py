"""Change segments: the change events exactly as the server sent them, concatenated, compressed.

A segment's bytes after decompression are a sequence of BSON documents (``bsondump`` reads them).
Its S3 metadata says how many events it holds, their first and last cluster times and the SHA-256
of the uncompressed bytes, so a reader can prove it got the whole segment before applying any of
it.
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


@dataclass(frozen=True)
class SegmentInfo:
    """What a segment's S3 metadata says about it."""

    events: int
    first_cluster_time: Timestamp
    last_cluster_time: Timestamp
    sha256: str
    uncompressed_bytes: int

    def metadata(self) -> dict[str, str]:
        return {
            META_EVENTS: str(self.events),
            META_FIRST: clustertime.format(self.first_cluster_time),
            META_LAST: clustertime.format(self.last_cluster_time),
            META_SHA256: self.sha256,
            META_BYTES: str(self.uncompressed_bytes),
        }

    @classmethod
    def from_metadata(cls, meta: Mapping[str, str], key: str) -> SegmentInfo:
        try:
            return cls(
                events=int(meta[META_EVENTS]),
                first_cluster_time=clustertime.parse(meta[META_FIRST]),
                last_cluster_time=clustertime.parse(meta[META_LAST]),
                sha256=meta[META_SHA256],
                uncompressed_bytes=int(meta[META_BYTES]),
            )
        except (KeyError, ValueError) as e:
            raise JobFailed(f"segment {key} has incomplete metadata ({e})") from None


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


def build(events: list[bytes], first: Timestamp, last: Timestamp, compression: str) -> tuple[bytes, SegmentInfo]:
    """The compressed body and the metadata of a segment holding ``events`` (raw BSON each)."""
    raw = b"".join(events)
    info = SegmentInfo(len(events), first, last, hashlib.sha256(raw).hexdigest(), len(raw))
    return compress(raw, compression), info


def verified_events(body: bytes, info: SegmentInfo, compression: str, key: str) -> bytes:
    """The uncompressed bytes, after checking size and SHA-256 against the metadata."""
    raw = decompress(body, compression, key)
    if len(raw) != info.uncompressed_bytes:
        raise JobFailed(f"{key} is truncated: {len(raw)} bytes, metadata says {info.uncompressed_bytes}")
    digest = hashlib.sha256(raw).hexdigest()
    if digest != info.sha256:
        raise JobFailed(f"{key} is corrupt: SHA-256 {digest[:12]}... does not match its metadata {info.sha256[:12]}...")
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
