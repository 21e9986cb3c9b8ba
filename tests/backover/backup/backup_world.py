"""Helpers for the backup tests: the world (source, target, bucket, migration) and BSON builders.

The source is the documentdb stand-in, the target the mongodb stand-in, S3 is moto. Documents
carry every BSON type, deprecated ones included (built as raw bytes, since pymongo cannot encode
them), and must come back byte for byte.
"""

from __future__ import annotations

import gzip
import struct
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import boto3
import bson
from bson import Binary, Code, Decimal128, Int64, ObjectId, Regex, Timestamp
from bson.max_key import MaxKey
from bson.min_key import MinKey
from bson.raw_bson import RawBSONDocument
from pymongo import MongoClient

from backover.connections import DatabaseUri
from backover.layout import MigrationLayout

PREFIX = "backup-tests"


@dataclass
class World:
    bucket: str
    migration_id: str
    layout: MigrationLayout
    source_uri: str
    target_uri: str
    password: str
    source: MongoClient
    target: MongoClient
    db: str

    def cli(self, *args: str) -> list[str]:
        return [
            "backup",
            "--bucket",
            self.bucket,
            "--prefix",
            PREFIX,
            "--migration-id",
            self.migration_id,
            *args,
        ]

    @property
    def source_db_uri(self) -> DatabaseUri:
        return DatabaseUri(self.source_uri, documentdb=True)

    @property
    def target_db_uri(self) -> DatabaseUri:
        return DatabaseUri(self.target_uri)


def make_world(standins: dict[str, Any], password: str, bucket: str) -> World:
    tag = uuid.uuid4().hex[:8]
    source_uri = standins["documentdb"].uri("root", password)
    target_uri = standins["mongodb"].uri("root", password)
    return World(
        bucket,
        f"bk-{tag}",
        MigrationLayout(bucket, PREFIX, f"bk-{tag}"),
        source_uri,
        target_uri,
        password,
        MongoClient(source_uri),
        MongoClient(target_uri),
        f"bk{tag}_shop",
    )


def _cstring(text: str) -> bytes:
    return text.encode() + b"\x00"


def _string(text: str) -> bytes:
    data = text.encode() + b"\x00"
    return struct.pack("<i", len(data)) + data


def with_deprecated_types(doc: dict[str, Any]) -> RawBSONDocument:
    """``doc`` plus Undefined (0x06), DBPointer (0x0C) and Symbol (0x0E) elements, as raw bytes."""
    body = bson.encode(doc)[4:-1]
    body += b"\x06" + _cstring("undefined")
    body += (
        b"\x0c" + _cstring("dbpointer") + _string("shop.orders") + ObjectId("5f0000000000000000000001").binary
    )
    body += b"\x0e" + _cstring("symbol") + _string("a-symbol")
    return RawBSONDocument(struct.pack("<i", len(body) + 5) + body + b"\x00")


def every_type(i: int) -> RawBSONDocument:
    """A document holding every BSON type (deterministic for ``i``)."""
    ids: list[Any] = [i, f"id-{i}", ObjectId(f"{i:024x}"), Int64(10**12 + i), {"compound": i}]
    return with_deprecated_types(
        {
            "_id": ids[i % len(ids)],
            "double": i / 3,
            "negative_zero": -0.0,
            "nan": float("nan"),
            "inf": float("inf"),
            "string": f"ünïcode {i} ✓",
            "empty": "",
            "document": {"nested": {"deep": [i, {"x": None}]}},
            "array": [1, "two", 3.0, [4], {"five": 5}],
            "binary": Binary(bytes(range(i % 256)), 0),
            "uuid": Binary(bytes(16), 4),
            "md5": Binary(b"\x01" * 16, 5),
            "user_binary": Binary(b"custom", 0x80),
            "object_id": ObjectId(),
            "true": True,
            "false": False,
            "date": datetime(2026, 1, 1, 12, 30, i % 60, 123000, tzinfo=UTC),
            "old_date": datetime(1901, 12, 13),
            "null": None,
            "regex": Regex(f"^order-{i}$", "imsx"),
            "code": Code("function () { return 1; }"),
            "code_w_scope": Code("function () { return x; }", {"x": i}),
            "int32": i,
            "int32_min": -(2**31),
            "timestamp": Timestamp(1764270000 + i, i),
            "int64": Int64(2**62 + i),
            "decimal": Decimal128(Decimal(f"{i}.0100")),
            "decimal_nan": Decimal128("NaN"),
            "min": MinKey(),
            "max": MaxKey(),
        }
    )


def raw_by_id(client: MongoClient, db: str, coll: str) -> dict[bytes, bytes]:
    """Each document's raw bytes, keyed by the raw bytes of its ``_id`` element."""
    raw_coll = client[db].get_collection(
        coll, codec_options=bson.CodecOptions(document_class=RawBSONDocument)
    )
    return {bson.encode({"_id": d["_id"]}): d.raw for d in raw_coll.find()}


def natural_bytes(client: MongoClient, db: str, coll: str) -> bytes:
    return b"".join(client[db][coll].find_raw_batches({}))


def s3_object(bucket: str, key: str) -> bytes:
    """An object's bytes, gunzipped."""
    return gzip.decompress(boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())


def multipart_uploads(bucket: str, prefix: str) -> list[str]:
    """The keys of the in-progress multipart uploads under ``prefix``."""
    reply = boto3.client("s3").list_multipart_uploads(Bucket=bucket, Prefix=prefix)
    return sorted(u["Key"] for u in reply.get("Uploads", []))
