"""Raw BSON documents out of a byte stream that arrives in arbitrary chunks (no decoding)."""

from __future__ import annotations

from collections.abc import Iterator

from ..errors import JobFailed

MIN_DOCUMENT = 5  # int32 length + the trailing NUL
MAX_DOCUMENT = 48 * 1024 * 1024  # far above MongoDB's 16 MiB; anything larger is corruption


class BsonSplitter:
    """Feed bytes, get whole documents (each its exact raw bytes) as soon as they are complete."""

    def __init__(self, source: str) -> None:
        self.source = source
        self._pending = bytearray()
        self.offset = 0  # bytes of whole documents returned so far

    def feed(self, data: bytes) -> Iterator[bytes]:
        self._pending += data
        pos, end = 0, len(self._pending)
        while end - pos >= 4:
            size = int.from_bytes(self._pending[pos : pos + 4], "little")
            if size < MIN_DOCUMENT or size > MAX_DOCUMENT:
                raise JobFailed(f"{self.source} is corrupt: a document of {size} bytes at byte {self.offset}")
            if end - pos < size:
                break
            yield bytes(self._pending[pos : pos + size])
            pos += size
            self.offset += size
        del self._pending[:pos]

    def finish(self) -> None:
        """JobFailed when the stream ended inside a document."""
        if self._pending:
            raise JobFailed(
                f"{self.source} is truncated: {len(self._pending)} bytes after the last whole "
                f"document (byte {self.offset})"
            )
