"""``backover backup`` and ``--restore`` against the stand-ins and moto: every byte comes back."""

from __future__ import annotations

import json
import os
from typing import Any

import boto3
import pytest
from backup_world import World, every_type, natural_bytes, raw_by_id, s3_object
from bson import Binary, Code

from backover import extjson
from backover.backup.dump import BackupConfig, Progress, backup, dump_collection
from backover.backup.load import LoadConfig, load
from backover.cli import main
from backover.errors import JobFailed
from backover.s3objects import S3Objects


def test_backup_and_restore_round_trip_every_bson_type_byte_for_byte(
    world: World, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    db = world.source[world.db]
    db.everything.insert_many([every_type(i) for i in range(40)])
    # Collection options (validators, collation, capped) are refused by the stand-ins, which do not
    # implement them (docs/architecture.md); the metadata carries the options the source lists.
    db.command("create", "customers")
    db.customers.create_index("email", unique=True)
    db.customers.insert_many([{"_id": i, "email": f"c{i}@example.com"} for i in range(5)])
    db.create_collection("empty")
    db["system.js"].insert_one({"_id": "f", "value": Code("1")})

    assert main(world.cli("--uri", world.source_uri, "--label", "documentdb", "--databases", world.db)) == 0
    summary = json.loads(capsys.readouterr().out)
    assert {c["namespace"]: c["documents"] for c in summary["collections"]} == {
        f"{world.db}.customers": 5,
        f"{world.db}.empty": 0,
        f"{world.db}.everything": 40,
    }
    assert summary["skipped"] == [f"{world.db}.system.js"]

    data_key = world.layout.backup_data("documentdb", world.db, "everything")
    assert s3_object(world.bucket, data_key) == natural_bytes(world.source, world.db, "everything")
    metadata = extjson.loads(
        s3_object(world.bucket, world.layout.backup_metadata("documentdb", world.db, "customers"))
    )
    assert set(metadata) >= {"options", "indexes", "uuid", "collectionName", "type"}
    assert metadata["collectionName"] == "customers" and metadata["type"] == "collection"
    assert metadata["options"] == {}
    assert {ix["name"]: ix.get("unique", False) for ix in metadata["indexes"]} == {
        "_id_": False,
        "email_1": True,
    }
    assert len(metadata["uuid"]) == 32
    assert metadata["backover"]["documents"] == 5

    assert main(world.cli("--uri", world.target_uri, "--label", "documentdb", "--restore", "--drop")) == 0
    restored = json.loads(capsys.readouterr().out)
    assert restored["documents_total"] == 45
    for coll in ("everything", "customers", "empty"):
        assert raw_by_id(world.target, world.db, coll) == raw_by_id(world.source, world.db, coll)
    assert "system.js" not in world.target[world.db].list_collection_names()
    target_indexes = {
        ix["name"]: ix.get("unique", False) for ix in world.target[world.db].customers.list_indexes()
    }
    assert target_indexes == {"_id_": False, "email_1": True}
    options = next(world.target[world.db].list_collections(filter={"name": "customers"}))["options"]
    assert options == {}
    assert world.password not in json.dumps(summary) + json.dumps(restored) + caplog.text


def test_a_large_collection_streams_in_several_parts(world: World) -> None:
    coll = world.source[world.db].blobs
    coll.insert_many(
        [{"_id": i, "blob": Binary(os.urandom(100_000))} for i in range(130)]
    )  # 13 MB, incompressible
    config = BackupConfig(
        world.source_db_uri, world.layout, "documentdb", (world.db,), part_size=5 * 1024 * 1024
    )
    result = backup(config)
    [blobs] = result.collections
    assert blobs.documents == 130 and blobs.compressed_bytes > 10 * 1024 * 1024
    parts = boto3.client("s3").head_object(Bucket=world.bucket, Key=blobs.data_key, PartNumber=1)[
        "PartsCount"
    ]
    assert parts == 3
    load(LoadConfig(world.target_db_uri, world.layout, "documentdb", drop=True))
    assert raw_by_id(world.target, world.db, "blobs") == raw_by_id(world.source, world.db, "blobs")


def test_a_collection_changing_during_the_backup_fails_it(world: World) -> None:
    coll = world.source[world.db].busy
    coll.insert_many([{"_id": i} for i in range(10)])
    config = BackupConfig(world.source_db_uri, world.layout, "documentdb", (world.db,), batch_size=2)

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
    config = BackupConfig(world.source_db_uri, world.layout, "documentdb", (world.db,))
    first_b = backup(config).b
    s3 = S3Objects(world.bucket)
    manifest = world.layout.backup_manifest("documentdb")

    def dump_objects() -> dict[str, bytes | None]:  # the manifest records B: it differs on purpose
        return {
            k: s3.get_bytes(k)
            for k in s3.list_keys(world.layout.backup_prefix("documentdb"))
            if k != manifest
        }

    first = dump_objects()
    again = backup(config)
    assert again.stale_deleted == 0 and first_b is not None and again.b is not None and again.b >= first_b
    assert dump_objects() == first
    db.drop_collection("gone")
    assert backup(config).stale_deleted == 2
    assert sorted(s3.list_keys(world.layout.backup_prefix("documentdb"))) == sorted(
        [manifest, *(k for k in first if "/gone." not in k)]
    )


def test_restore_refuses_to_overwrite_and_an_incomplete_backup(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    world.source[world.db].orders.insert_many([{"_id": i} for i in range(3)])
    backup(BackupConfig(world.source_db_uri, world.layout, "documentdb", (world.db,)))
    world.target[world.db].orders.insert_one({"_id": "already here"})
    assert main(world.cli("--uri", world.target_uri, "--label", "documentdb", "--restore")) == 1
    assert f"not empty on the target: {world.db}.orders; pass --drop" in capsys.readouterr().err
    assert world.target[world.db].orders.count_documents({}) == 1

    S3Objects(world.bucket).delete_keys([world.layout.backup_metadata("documentdb", world.db, "orders")])
    with pytest.raises(JobFailed, match="is incomplete"):
        load(LoadConfig(world.target_db_uri, world.layout, "documentdb", drop=True))


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["--label", "documentdb"], id="no-database"),
        pytest.param(["--label", "documentdb", "--uri", "mongodb://x", "--drop"], id="drop-without-restore"),
        pytest.param(
            ["--label", "documentdb", "--uri", "mongodb://x", "--until", "1:1"], id="until-without-restore"
        ),
        pytest.param(
            ["--label", "documentdb", "--uri", "mongodb://x", "--restore", "--until", "yesterday"],
            id="bad-until",
        ),
        pytest.param(["--label", "documentdb", "--seal", "--uri", "mongodb://x"], id="seal-with-a-database"),
        pytest.param(["--label", "mongodb", "--seal"], id="seal-a-mongodb-backup"),
        pytest.param(["--label", "documentdb", "--seal"], id="seal-without-a-backup"),
    ],
)
def test_backup_usage_errors_exit_2(
    world: World, args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(world.cli(*args)) == 2
    err = capsys.readouterr().err
    assert err.startswith("backover backup: ") and len(err.strip().splitlines()) == 1, err
    assert not list(S3Objects(world.bucket).list_keys(world.layout.root))  # nothing written
