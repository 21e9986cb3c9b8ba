"""One S3 object made of others, concatenated in order, server-side where S3 allows it.

A multipart upload whose parts are copies (UploadPartCopy, with ``CopySourceIfMatch`` on the ETag
the caller checked) of byte ranges of the sources: no byte goes through this process, except
where S3's rule forbids a copy. Every part but the last must be at least 5 MiB
(:data:`~.multipart.MIN_PART_SIZE`) and at most 5 GiB, and an upload has at most 10,000 parts; so
sources smaller than 5 MiB are read (ranged GETs, ``IfMatch``) and uploaded together as one part,
topped up with the first bytes of the next source when that one is larger (:func:`plan_parts`,
pure). Memory: at most one 5 MiB part.

Used by :mod:`.partitioned` to build a collection's ``<coll>.bson.gz`` from its parts: each part is
one gzip member, and concatenated gzip members are one valid gzip stream (RFC 1952; Python's
``gzip``, zlib with a new decompressor per member, and mongorestore read it whole), holding the
concatenated BSON documents of the parts.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..errors import JobFailed
from .metadata import one_line
from .multipart import MIN_PART_SIZE

log = logging.getLogger(__name__)

MAX_PART_SIZE = 5 * 1024 * 1024 * 1024  # S3's maximum for one part (a copied one too)
MAX_PARTS = 10_000  # S3's maximum number of parts of one upload


@dataclass(frozen=True)
class Source:
    """An object to append: its key, its size and the ETag it was checked at."""

    key: str
    size: int
    etag: str


@dataclass(frozen=True)
class Piece:
    """Bytes ``start`` .. ``end`` (exclusive) of source ``source`` (its index)."""

    source: int
    start: int
    end: int


@dataclass(frozen=True)
class Part:
    """One part of the upload: a server-side copy of one piece (``copy``), or pieces read and
    uploaded as one body."""

    pieces: tuple[Piece, ...]
    copy: bool

    @property
    def size(self) -> int:
        return sum(p.end - p.start for p in self.pieces)


def _copies(source: int, start: int, end: int, largest: int) -> list[Part]:
    """Copy parts of ``start``..``end`` (at least the minimum), each at most ``largest``, evenly."""
    count = -(-(end - start) // largest)
    step = -(-(end - start) // count)
    return [Part((Piece(source, s, min(s + step, end)),), True) for s in range(start, end, step)]


def plan_parts(
    sizes: Sequence[int], min_part: int = MIN_PART_SIZE, max_part: int = MAX_PART_SIZE
) -> list[Part]:
    """The parts that concatenate sources of ``sizes``: every run of ``min_part`` bytes or more of
    one source is copied; shorter runs are gathered (with the head of the next source when needed)
    into uploaded parts of ``min_part`` bytes, the last part excepted."""
    parts: list[Part] = []
    pending: list[Piece] = []
    pending_size = 0
    for index, size in enumerate(sizes):
        offset = 0
        if pending:
            offset = min(min_part - pending_size, size)
            if offset:
                pending.append(Piece(index, 0, offset))
            pending_size += offset
            if pending_size >= min_part:
                parts.append(Part(tuple(pending), False))
                pending, pending_size = [], 0
        if size - offset >= min_part:
            parts += _copies(index, offset, size, max_part)
        elif size > offset:
            pending.append(Piece(index, offset, size))
            pending_size += size - offset
    if pending or not parts:
        parts.append(Part(tuple(pending), False))
    return parts


@dataclass
class Composed:
    """The object built: its ETag and size, and how its parts were made."""

    etag: str
    size: int
    copied_parts: int = 0
    uploaded_parts: int = 0
    bytes_read: int = 0  # of the sources, by this process (the rest was copied by S3)


def compose(client: Any, bucket: str, key: str, sources: Sequence[Source]) -> Composed:
    """Write ``s3://bucket/key`` as the concatenation of ``sources``; the upload is aborted on any
    error (nothing half-written is ever visible). JobFailed naming the key on an S3 error, or when
    a source changed since its ETag was checked (412)."""
    if not sources:
        raise ValueError("nothing to compose")
    parts = plan_parts([s.size for s in sources])
    if len(parts) > MAX_PARTS:
        raise JobFailed(f"{key} would take {len(parts)} parts, more than S3's {MAX_PARTS}")
    done: list[dict[str, Any]] = []
    result = Composed("", sum(s.size for s in sources))
    try:
        upload = client.create_multipart_upload(Bucket=bucket, Key=key, ContentType="application/gzip")[
            "UploadId"
        ]
    except (ClientError, BotoCoreError) as e:
        raise JobFailed(f"cannot start the upload of s3://{bucket}/{key}: {one_line(e)}") from None
    try:
        for number, part in enumerate(parts, 1):
            common = {"Bucket": bucket, "Key": key, "UploadId": upload, "PartNumber": number}
            if part.copy:
                (piece,) = part.pieces
                source = sources[piece.source]
                reply = client.upload_part_copy(
                    **common,
                    CopySource={"Bucket": bucket, "Key": source.key},
                    CopySourceRange=f"bytes={piece.start}-{piece.end - 1}",
                    CopySourceIfMatch=source.etag,
                )
                etag = reply["CopyPartResult"]["ETag"]
                result.copied_parts += 1
            else:
                body = b"".join(_read(client, bucket, sources[p.source], p) for p in part.pieces)
                etag = client.upload_part(**common, Body=body)["ETag"]
                result.uploaded_parts += 1
                result.bytes_read += len(body)
            done.append({"PartNumber": number, "ETag": etag})
        reply = client.complete_multipart_upload(
            Bucket=bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": done}
        )
    except (ClientError, BotoCoreError, JobFailed) as e:
        _abort(client, bucket, key, upload)
        if isinstance(e, JobFailed):
            raise
        if _precondition_failed(e):
            raise JobFailed(
                f"a part of s3://{bucket}/{key} changed since it was checked: {one_line(e)}"
            ) from None
        raise JobFailed(f"cannot build s3://{bucket}/{key} from its parts: {one_line(e)}") from None
    except BaseException:
        _abort(client, bucket, key, upload)
        raise
    result.etag = reply["ETag"]
    return result


def _read(client: Any, bucket: str, source: Source, piece: Piece) -> bytes:
    if piece.end == piece.start:
        return b""
    reply = client.get_object(
        Bucket=bucket, Key=source.key, Range=f"bytes={piece.start}-{piece.end - 1}", IfMatch=source.etag
    )
    data: bytes = reply["Body"].read()
    if len(data) != piece.end - piece.start:
        raise JobFailed(
            f"s3://{bucket}/{source.key}: {len(data)} bytes read of {piece.end - piece.start} asked"
        )
    return data


def _precondition_failed(error: BaseException) -> bool:
    if not isinstance(error, ClientError):
        return False
    code = str(error.response.get("Error", {}).get("Code", ""))
    return code in ("PreconditionFailed", "412")


def _abort(client: Any, bucket: str, key: str, upload: str) -> None:
    try:
        client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload)
    except (ClientError, BotoCoreError) as e:
        log.warning("could not abort the upload of s3://%s/%s (the next backup does): %s", bucket, key, e)
