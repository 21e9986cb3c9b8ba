"""``backover backup`` and ``--restore`` against the stand-ins and moto: every byte comes back.

The source is the documentdb stand-in, the target the mongodb stand-in, S3 is moto. Documents
carry every BSON type, deprecated ones included (built as raw bytes, since pymongo cannot encode
them), and must come back byte for byte.
"""

from __future__ import annotations

import gzip
import json
import os
import struct
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import boto3
import bson
import pytest
from bson import Binary, Code, Decimal128, Int64, ObjectId, Regex, Timestamp
from bson.max_key import MaxKey
from bson.min_key import MinKey
from bson.raw_bson import RawBSONDocument
from pymongo import MongoClient

from backover import extjson
from backover.backup.dump import BackupConfig, Progress, backup, dump_collection
from backover.backup.load import LoadConfig, load
from backover.cli import main
from backover.connections import DatabaseUri
from backover.errors import JobFailed
from backover.layout import MigrationLayout
from backover.s3objects import S3Objects

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
        return ["backup", "--bucket", self.bucket, "--prefix", PREFIX, "--migration-id", self.migration_id, *args]


@pytest.fixture
def world(standins: dict[str, Any], standin_password: str, bucket: str) -> Iterator[World]:
    tag = uuid.uuid4().hex[:8]
    source_uri = standins["documentdb"].uri("root", standin_password)
    target_uri = standins["mongodb"].uri("root", standin_password)
    made = World(bucket, f"bk-{tag}", MigrationLayout(bucket, PREFIX, f"bk-{tag}"), source_uri, target_uri,
                 standin_password, MongoClient(source_uri), MongoClient(target_uri), f"bk{tag}_shop")
    yield made
    made.source.close()
    made.target.close()


def _cstring(text: str) -> bytes:
    return text.encode() + b"\x00"


def _string(text: str) -> bytes:
    data = text.encode() + b"\x00"
    return struct.pack("<i", len(data)) + data


def with_deprecated_types(doc: dict[str, Any]) -> RawBSONDocument:
    """``doc`` plus Undefined (0x06), DBPointer (0x0C) and Symbol (0x0E) elements, as raw bytes."""
    body = bson.encode(doc)[4:-1]
    body += b"\x06" + _cstring("undefined")
    body += b"\x0c" + _cstring("dbpointer") + _string("shop.orders") + ObjectId("5f0000000000000000000001").binary
    body += b"\x0e" + _cstring("symbol") + _string("a-symbol")
    return RawBSONDocument(struct.pack("<i", len(body) + 5) + body + b"\x00")


def every_type(i: int) -> RawBSONDocument:
    """A document holding every BSON type (deterministic for ``i``)."""
    ids: list[Any] = [i, f"id-{i}", ObjectId(f"{i:024x}"), Int64(10**12 + i), {"compound": i}]
    return with_deprecated_types({
        "_id": ids[i % len(ids)],
        "double": i / 3, "negative_zero": -0.0, "nan": float("nan"), "inf": float("inf"),
        "string": f"ünïcode {i} ✓", "empty": "",
        "document": {"nested": {"deep": [i, {"x": None}]}},
        "array": [1, "two", 3.0, [4], {"five": 5}],
        "binary": Binary(bytes(range(i % 256)), 0), "uuid": Binary(bytes(16), 4), "md5": Binary(b"\x01" * 16, 5),
        "user_binary": Binary(b"custom", 0x80),
        "object_id": ObjectId(), "true": True, "false": False,
        "date": datetime(2026, 1, 1, 12, 30, i % 60, 123000, tzinfo=UTC), "old_date": datetime(1901, 12, 13),
        "null": None, "regex": Regex(f"^order-{i}$", "imsx"),
        "code": Code("function () { return 1; }"), "code_w_scope": Code("function () { return x; }", {"x": i}),
        "int32": i, "int32_min": -(2**31), "timestamp": Timestamp(1764270000 + i, i),
        "int64": Int64(2**62 + i), "decimal": Decimal128(Decimal(f"{i}.0100")), "decimal_nan": Decimal128("NaN"),
        "min": MinKey(), "max": MaxKey(),
    })


def _raw_by_id(client: MongoClient, db: str, coll: str) -> dict[bytes, bytes]:
    """Each document's raw bytes, keyed by the raw bytes of its ``_id`` element."""
    raw_coll = client[db].get_collection(coll, codec_options=bson.CodecOptions(document_class=RawBSONDocument))
    return {bson.encode({"_id": d["_id"]}): d.raw for d in raw_coll.find()}


def _natural_bytes(client: MongoClient, db: str, coll: str) -> bytes:
    return b"".join(client[db][coll].find_raw_batches({}))


def _object(bucket: str, key: str) -> bytes:
    return gzip.decompress(boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())


def test_backup_and_restore_round_trip_every_bson_type_byte_for_byte(
    world: World, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    db = world.source[world.db]
    db.everything.insert_many([every_type(i) for i in range(40)])
    db.command("create", "customers", validator={"email": {"$exists": True}})
    db.customers.create_index("email", unique=True)
    db.customers.insert_many([{"_id": i, "email": f"c{i}@example.com"} for i in range(5)])
    db.create_collection("empty")
    db["system.js"].insert_one({"_id": "f", "value": Code("1")})

    assert main(world.cli("--uri", world.source_uri, "--label", "documentdb", "--databases", world.db)) == 0
    summary = json.loads(capsys.readouterr().out)
    assert {c["namespace"]: c["documents"] for c in summary["collections"]} == {
        f"{world.db}.customers": 5, f"{world.db}.empty": 0, f"{world.db}.everything": 40}
    assert summary["skipped"] == [f"{world.db}.system.js"]

    data_key = world.layout.backup_data("documentdb", world.db, "everything")
    assert _object(world.bucket, data_key) == _natural_bytes(world.source, world.db, "everything")
    metadata = extjson.loads(_object(world.bucket, world.layout.backup_metadata("documentdb", world.db, "customers")))
    assert set(metadata) >= {"options", "indexes", "uuid", "collectionName", "type"}
    assert metadata["collectionName"] == "customers" and metadata["type"] == "collection"
    assert metadata["options"] == {"validator": {"email": {"$exists": True}}}
    assert {ix["name"]: ix.get("unique", False) for ix in metadata["indexes"]} == {"_id_": False, "email_1": True}
    assert len(metadata["uuid"]) == 32
    assert metadata["backover"]["documents"] == 5

    assert main(world.cli("--uri", world.target_uri, "--label", "documentdb", "--restore", "--drop")) == 0
    restored = json.loads(capsys.readouterr().out)
    assert restored["documents_total"] == 45
    for coll in ("everything", "customers", "empty"):
        assert _raw_by_id(world.target, world.db, coll) == _raw_by_id(world.source, world.db, coll)
    assert "system.js" not in world.target[world.db].list_collection_names()
    target_indexes = {ix["name"]: ix.get("unique", False) for ix in world.target[world.db].customers.list_indexes()}
    assert target_indexes == {"_id_": False, "email_1": True}
    options = next(world.target[world.db].list_collections(filter={"name": "customers"}))["options"]
    assert options == {"validator": {"email": {"$exists": True}}}
    assert world.password not in json.dumps(summary) + json.dumps(restored) + caplog.text


def test_a_large_collection_streams_in_several_parts(world: World) -> None:
    coll = world.source[world.db].blobs
    coll.insert_many([{"_id": i, "blob": Binary(os.urandom(100_000))} for i in range(130)])  # 13 MB, incompressible
    config = BackupConfig(DatabaseUri(world.source_uri, documentdb=True), world.layout, "documentdb", (world.db,),
                          part_size=5 * 1024 * 1024)
    result = backup(config)
    [blobs] = result.collections
    assert blobs.documents == 130 and blobs.compressed_bytes > 10 * 1024 * 1024
    parts = boto3.client("s3").head_object(Bucket=world.bucket, Key=blobs.data_key, PartNumber=1)["PartsCount"]
    assert parts == 3
    load(LoadConfig(DatabaseUri(world.target_uri), world.layout, "documentdb", drop=True))
    assert _raw_by_id(world.target, world.db, "blobs") == _raw_by_id(world.source, world.db, "blobs")


def test_a_collection_changing_during_the_backup_fails_it(world: World) -> None:
    coll = world.source[world.db].busy
    coll.insert_many([{"_id": i} for i in range(10)])
    config = BackupConfig(DatabaseUri(world.source_uri, documentdb=True), world.layout, "documentdb", (world.db,),
                          batch_size=2)

    class WriterDuringDump(Progress):
        """Progress reports come after each batch: a real write lands in the middle of the dump."""

        def collection(self, namespace: str) -> Any:
            def report(documents: int, raw_bytes: int, final: bool) -> None:
                if documents == 2:
                    coll.insert_one({"_id": "late"})
            return report

    s3 = S3Objects(world.bucket)
    info = next(world.source[world.db].list_collections(filter={"name": "busy"}))
    with pytest.raises(JobFailed, match="changed during the backup"):
        dump_collection(world.source, s3, config, world.db, info, WriterDuringDump("documentdb", 1))
    assert s3.head(world.layout.backup_metadata("documentdb", world.db, "busy")) is None


def test_backup_again_is_the_same_and_forgets_dropped_collections(world: World) -> None:
    db = world.source[world.db]
    db.keep.insert_one({"_id": 1})
    db.gone.insert_one({"_id": 1})
    config = BackupConfig(DatabaseUri(world.source_uri, documentdb=True), world.layout, "documentdb", (world.db,))
    backup(config)
    s3 = S3Objects(world.bucket)
    first = {k: s3.get_bytes(k) for k in s3.list_keys(world.layout.backup_prefix("documentdb"))}
    assert backup(config).stale_deleted == 0
    assert {k: s3.get_bytes(k) for k in s3.list_keys(world.layout.backup_prefix("documentdb"))} == first
    db.drop_collection("gone")
    assert backup(config).stale_deleted == 2
    assert sorted(s3.list_keys(world.layout.backup_prefix("documentdb"))) == sorted(
        k for k in first if "/gone." not in k)


def test_restore_refuses_to_overwrite_and_an_incomplete_backup(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    world.source[world.db].orders.insert_many([{"_id": i} for i in range(3)])
    backup(BackupConfig(DatabaseUri(world.source_uri, documentdb=True), world.layout, "documentdb", (world.db,)))
    world.target[world.db].orders.insert_one({"_id": "already here"})
    assert main(world.cli("--uri", world.target_uri, "--label", "documentdb", "--restore")) == 1
    assert "not empty on the target; pass --drop" in capsys.readouterr().err
    assert world.target[world.db].orders.count_documents({}) == 1

    S3Objects(world.bucket).delete_keys([world.layout.backup_metadata("documentdb", world.db, "orders")])
    with pytest.raises(JobFailed, match="is incomplete"):
        load(LoadConfig(DatabaseUri(world.target_uri), world.layout, "documentdb", drop=True))


@pytest.mark.parametrize("args", [
    pytest.param(["--label", "documentdb"], id="no-database"),
    pytest.param(["--label", "documentdb", "--uri", "mongodb://x", "--drop"], id="drop-without-restore"),
])
def test_backup_usage_errors_exit_2(world: World, args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(world.cli(*args)) == 2
    assert capsys.readouterr().err.startswith("backover backup: ")
