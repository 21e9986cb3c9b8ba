"""A gzip stream written straight into an S3 multipart upload, one part at a time.

Memory stays at about one part (plus what the caller holds): compressed bytes are buffered until
a part is full, then uploaded. Parts grow by one ``part_size`` every 1,000 parts, so S3's limit of
10,000 parts is never the limit of a collection's size. The upload is aborted on any error, so a
failed run leaves no half object behind (S3 shows nothing until ``complete``). A killed run cannot
abort its upload: its parts stay in S3, billed and absent from listings, until
:func:`abort_incomplete_uploads` (every backup calls it on its own prefix before it starts).
"""

from __future__ import annotations

import hashlib
import logging
import zlib
from types import TracebackType
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..errors import BackoverError

log = logging.getLogger(__name__)

MIN_PART_SIZE = 5 * 1024 * 1024  # S3's minimum for every part but the last
GZIP_WBITS = 31  # zlib writes a gzip header and trailer
GZIP_LEVEL = 6


class GzipMultipartUpload:
    """Write raw bytes; they reach ``s3://bucket/key`` gzip-compressed when :meth:`complete` runs."""

    def __init__(self, client: Any, bucket: str, key: str, part_size: int = 8 * 1024 * 1024) -> None:
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"part size {part_size} is below S3's minimum of {MIN_PART_SIZE} bytes")
        self.client, self.bucket, self.key, self.part_size = client, bucket, key, part_size
        self.raw_bytes = 0
        self.compressed_bytes = 0
        self._sha256 = hashlib.sha256()
        self._gzip = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, GZIP_WBITS)
        self._buffer = bytearray()
        self._parts: list[dict[str, Any]] = []
        self._upload_id: str | None = None
        self.etag: str | None = None  # the completed object's ETag

    @property
    def sha256(self) -> str:
        """SHA-256 of the uncompressed bytes written so far."""
        return self._sha256.hexdigest()

    def __enter__(self) -> GzipMultipartUpload:
        try:
            reply = self.client.create_multipart_upload(
                Bucket=self.bucket, Key=self.key, ContentType="application/gzip"
            )
        except (ClientError, BotoCoreError) as e:
            raise BackoverError(f"cannot start the upload of s3://{self.bucket}/{self.key}: {e}") from e
        self._upload_id = reply["UploadId"]
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        if kind is not None and self._upload_id is not None:
            self.abort()

    def write(self, data: bytes | memoryview) -> None:
        self.raw_bytes += len(data)
        self._sha256.update(data)
        self._buffer += self._gzip.compress(data)
        while len(self._buffer) >= self._target_size():
            size = self._target_size()
            self._upload_part(bytes(self._buffer[:size]))
            del self._buffer[:size]

    def complete(self) -> None:
        """Flush gzip, upload the last part (always at least one) and complete the upload."""
        self._buffer += self._gzip.flush()
        self._upload_part(bytes(self._buffer))
        self._buffer.clear()
        try:
            reply = self.client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=self.key,
                UploadId=self._upload_id,
                MultipartUpload={"Parts": self._parts},
            )
        except (ClientError, BotoCoreError) as e:
            raise BackoverError(f"cannot complete the upload of s3://{self.bucket}/{self.key}: {e}") from e
        self._upload_id = None
        self.etag = reply["ETag"]

    def abort(self) -> None:
        """Abort the upload (S3 frees its parts); errors are logged, never raised."""
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self._upload_id)
        except (ClientError, BotoCoreError) as e:
            log.warning("could not abort the upload of s3://%s/%s: %s", self.bucket, self.key, e)
        self._upload_id = None

    def _target_size(self) -> int:
        return self.part_size * (1 + len(self._parts) // 1000)

    def _upload_part(self, body: bytes) -> None:
        number = len(self._parts) + 1
        try:
            reply = self.client.upload_part(
                Bucket=self.bucket, Key=self.key, UploadId=self._upload_id, PartNumber=number, Body=body
            )
        except (ClientError, BotoCoreError) as e:
            raise BackoverError(f"cannot upload part {number} of s3://{self.bucket}/{self.key}: {e}") from e
        self._parts.append({"PartNumber": number, "ETag": reply["ETag"]})
        self.compressed_bytes += len(body)


def abort_incomplete_uploads(client: Any, bucket: str, prefix: str) -> int:
    """Abort every in-progress multipart upload under ``prefix`` (left by killed runs); how many.

    Only for a prefix that one writer owns at a time: an upload still being written is aborted too.
    """
    aborted = 0
    try:
        for page in client.get_paginator("list_multipart_uploads").paginate(Bucket=bucket, Prefix=prefix):
            for upload in page.get("Uploads", []):
                client.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
                log.info(
                    "aborted the unfinished upload of s3://%s/%s (started %s by a run that did not end)",
                    bucket,
                    upload["Key"],
                    upload.get("Initiated"),
                )
                aborted += 1
    except (ClientError, BotoCoreError) as e:
        raise BackoverError(f"cannot abort the unfinished uploads under s3://{bucket}/{prefix}: {e}") from e
    return aborted
