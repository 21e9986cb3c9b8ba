"""The few S3 operations every job needs, with the errors turned into one-line reasons.

boto3 finds its endpoint in its own settings (``AWS_ENDPOINT_URL``, ``AWS_ENDPOINT_URL_S3``), so
the same code runs against AWS and the sandbox's moto.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from . import extjson
from .errors import BackoverError, JobFailed, Unreachable, UsageError, is_transient
from .layout import check_bucket_name

log = logging.getLogger(__name__)

#: Retries with backoff for throttling and transient errors (botocore's adaptive mode).
RETRY_CONFIG = Config(retries={"max_attempts": 10, "mode": "adaptive"})
DELETE_BATCH = 1000


def s3_client() -> Any:
    return boto3.client("s3", config=RETRY_CONFIG)


def _code(e: ClientError) -> str:
    return str(e.response.get("Error", {}).get("Code", ""))


class S3Objects:
    """Objects of one bucket."""

    def __init__(self, bucket: str, client: Any | None = None) -> None:
        self.bucket = bucket
        self.client = client or s3_client()

    def check_bucket(self) -> None:
        """UsageError (exit 2) when the bucket's name is invalid (before any call), or the bucket is
        missing or not ours to use."""
        check_bucket_name(self.bucket)
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as e:
            code = _code(e)
            reason = {"404": "does not exist", "NoSuchBucket": "does not exist", "403": "access denied"}.get(
                code, code
            )
            kind = Unreachable if is_transient(e) else UsageError
            raise kind(f"bucket {self.bucket!r} cannot be used: {reason}") from e
        except BotoCoreError as e:
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise Unreachable(f"S3 cannot be reached for bucket {self.bucket!r}: {reason}") from e

    def get_bytes(self, key: str) -> bytes | None:
        """The object's bytes, or None when it does not exist."""
        try:
            return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except ClientError as e:
            if _code(e) in ("NoSuchKey", "404"):
                return None
            raise BackoverError(f"cannot read s3://{self.bucket}/{key}: {_code(e)}") from e

    def get_object(self, key: str) -> tuple[bytes, dict[str, str]] | None:
        """Bytes and user metadata, or None when the object does not exist."""
        got = self.get_versioned(key)
        return None if got is None else (got[0], got[1])

    def head(self, key: str) -> dict[str, Any] | None:
        try:
            return self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as e:
            if _code(e) in ("NoSuchKey", "404", "NotFound"):
                return None
            raise BackoverError(f"cannot read s3://{self.bucket}/{key}: {_code(e)}") from e

    def put_bytes(
        self,
        key: str,
        data: bytes,
        metadata: Mapping[str, str] | None = None,
        content_type: str = "application/octet-stream",
    ) -> None:
        """One PUT: S3 makes the object visible whole or not at all."""
        try:
            self.client.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=data,
                Metadata=dict(metadata or {}),
                ContentType=content_type,
            )
        except ClientError as e:
            raise BackoverError(f"cannot write s3://{self.bucket}/{key}: {_code(e)}") from e

    def get_json(self, key: str) -> Any:
        """A JSON state file (canonical Extended JSON), or None when it does not exist; JobFailed
        naming the key when it is not valid Extended JSON (a damaged state file is never guessed at)."""
        data = self.get_bytes(key)
        return None if data is None else self.parse_json(key, data)

    def get_json_versioned(self, key: str) -> tuple[Any, str] | None:
        """A JSON state file and its ETag (for a conditional write after it), or None."""
        got = self.get_versioned(key)
        return None if got is None else (self.parse_json(key, got[0]), got[2])

    def parse_json(self, key: str, data: bytes) -> Any:
        """``data`` (the object at ``key``) as Extended JSON; JobFailed naming the key if it is not."""
        try:
            return extjson.loads(data)
        except (ValueError, TypeError, UnicodeDecodeError) as e:
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise JobFailed(f"s3://{self.bucket}/{key} is not a valid JSON state file ({reason})") from None

    def put_json(self, key: str, doc: Any) -> None:
        self.put_bytes(key, extjson.dumps(doc).encode(), content_type="application/json")

    def list_keys(self, prefix: str, start_after: str | None = None) -> Iterator[str]:
        """Every key under ``prefix`` (after ``start_after`` when given), in key order, page by page."""
        paginator = self.client.get_paginator("list_objects_v2")
        extra = {"StartAfter": start_after} if start_after else {}
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix, **extra):
                for item in page.get("Contents", []):
                    yield item["Key"]
        except ClientError as e:
            raise BackoverError(f"cannot list s3://{self.bucket}/{prefix}: {_code(e)}") from e

    def list_folders(self, prefix: str) -> Iterator[str]:
        """The names of the "folders" right under ``prefix`` (S3's common prefixes with delimiter
        ``/``, without ``prefix`` and the trailing ``/``), in key order, page by page: one request
        per 1,000 folders, however many keys each holds."""
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix, Delimiter="/"):
                for item in page.get("CommonPrefixes", []):
                    yield item["Prefix"][len(prefix) :].removesuffix("/")
        except ClientError as e:
            raise BackoverError(f"cannot list s3://{self.bucket}/{prefix}: {_code(e)}") from e

    def delete_keys(self, keys: list[str]) -> int:
        """Delete in batches of 1,000; returns how many were deleted."""
        deleted = 0
        for i in range(0, len(keys), DELETE_BATCH):
            batch = keys[i : i + DELETE_BATCH]
            resp = self.client.delete_objects(
                Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True}
            )
            if resp.get("Errors"):
                first = resp["Errors"][0]
                raise BackoverError(f"cannot delete s3://{self.bucket}/{first['Key']}: {first.get('Code')}")
            deleted += len(batch)
        return deleted

    # -- conditional writes (the leases and the replicator's segments and checkpoint) -----------------
    def put_if(
        self,
        key: str,
        data: bytes,
        *,
        etag: str | None,
        metadata: Mapping[str, str] | None = None,
        content_type: str = "application/octet-stream",
        attempted: Sequence[bytes] = (),
    ) -> str:
        """One conditional PUT; returns the new ETag. ``etag`` None: only if the key does not exist
        (``If-None-Match: *``); else only if the object's ETag is still ``etag`` (``If-Match``).

        A refused condition (412) is :class:`Conflict` unless the object holds this very write
        (``data`` with ``metadata``: a retried PUT whose first attempt landed, its answer lost), or
        one of the caller's earlier unconfirmed bodies (``attempted``), which this write then
        replaces (``If-Match`` on it). A 409
        (a concurrent conditional request) is retried, as AWS asks."""
        condition = {"IfNoneMatch": "*"} if etag is None else {"IfMatch": etag}
        for attempt in range(_CONCURRENT_RETRIES):
            try:
                resp = self.client.put_object(
                    Bucket=self.bucket,
                    Key=key,
                    Body=data,
                    Metadata=dict(metadata or {}),
                    ContentType=content_type,
                    **condition,
                )
                return str(resp["ETag"])
            except ClientError as e:
                code = _code(e)
                if code in _CONCURRENT_CODES:
                    time.sleep(0.05 * 2**attempt)
                    continue
                if code not in _PRECONDITION_CODES:
                    raise BackoverError(f"cannot write s3://{self.bucket}/{key}: {code}") from e
                got = self.get_versioned(key)
                if got is not None and got[0] == data and got[1] == dict(metadata or {}):
                    return got[2]  # this very write landed
                if got is not None and got[0] in attempted and condition != {"IfMatch": got[2]}:
                    condition = {
                        "IfMatch": got[2]
                    }  # an earlier attempt of the caller's landed: write over it
                    continue
                raise Conflict(f"s3://{self.bucket}/{key} changed meanwhile ({code})") from e
        raise Conflict(f"s3://{self.bucket}/{key}: {_CONCURRENT_RETRIES} writes met a concurrent request")

    def get_versioned(self, key: str) -> tuple[bytes, dict[str, str], str] | None:
        """Bytes, user metadata and ETag, or None when the object does not exist."""
        try:
            resp = self.client.get_object(Bucket=self.bucket, Key=key)
        except ClientError as e:
            if _code(e) in ("NoSuchKey", "404"):
                return None
            raise BackoverError(f"cannot read s3://{self.bucket}/{key}: {_code(e)}") from e
        return resp["Body"].read(), resp.get("Metadata", {}), str(resp["ETag"])

    def delete_if(self, key: str, etag: str) -> None:
        """Delete the object only if its ETag is still ``etag``; :class:`Conflict` if it changed or is gone."""
        for attempt in range(_CONCURRENT_RETRIES):
            try:
                self.client.delete_object(Bucket=self.bucket, Key=key, IfMatch=etag)
                return
            except ClientError as e:
                if _code(e) in _CONCURRENT_CODES:
                    time.sleep(0.05 * 2**attempt)
                    continue
                if _code(e) in (*_PRECONDITION_CODES, "NoSuchKey", "404"):
                    raise Conflict(f"s3://{self.bucket}/{key} changed meanwhile ({_code(e)})") from e
                raise BackoverError(f"cannot delete s3://{self.bucket}/{key}: {_code(e)}") from e
        raise Conflict(f"s3://{self.bucket}/{key}: {_CONCURRENT_RETRIES} deletes met a concurrent request")


#: A conditional request whose condition failed.
_PRECONDITION_CODES = ("PreconditionFailed", "412")
#: A conditional request that met a concurrent one: AWS asks to retry (the retry then sees the
#: other request's result).
_CONCURRENT_CODES = ("ConditionalRequestConflict", "409")
_CONCURRENT_RETRIES = 6


class Conflict(BackoverError):
    """A conditional write or delete was refused: the object is not (or no longer) what the caller
    expected."""
