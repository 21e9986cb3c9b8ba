"""``backover backup --restore`` is all or nothing: a backup it cannot trust, or a target it would
overwrite, is refused before the first write; a failure while loading leaves the target as it was.

Each test makes the bad state the way it happens (a dump that failed between its data and its
metadata, a tampered or damaged object in moto, a non-empty target collection on the stand-in)
and checks the target database afterwards, collection by collection.
"""

from __future__ import annotations

import gzip
import json
from typing import Any

import boto3
import pytest
from backup_world import World, raw_by_id

from backover import extjson
from backover.backup.dump import BackupConfig, BackupResult, Progress, backup, dump_collection
from backover.backup.load import LoadConfig, load
from backover.backup.names import staging
from backover.cli import main
from backover.errors import JobFailed
from backover.s3objects import S3Objects

COLLECTIONS = ("alpha", "bravo", "charlie", "delta")


def _seed(world: World, documents: int = 50) -> None:
    db = world.source[world.db]
    for name in COLLECTIONS:
        db[name].insert_many([{"_id": i, "coll": name, "n": i * 7} for i in range(documents)])
    db.charlie.create_index("n", unique=True)


def _backup(world: World) -> BackupResult:
    return backup(BackupConfig(world.source_db_uri, world.layout, "documentdb", (world.db,)))


def _target_state(world: World) -> dict[str, dict[bytes, bytes]]:
    """Every collection of the target database, with every document's bytes."""
    db = world.target[world.db]
    return {name: raw_by_id(world.target, world.db, name) for name in sorted(db.list_collection_names())}


def _old_target(world: World) -> dict[str, dict[bytes, bytes]]:
    """The target holds older versions of bravo and delta (what --drop would replace)."""
    world.target[world.db].bravo.insert_many([{"_id": i, "old": True} for i in range(3)])
    world.target[world.db].delta.insert_one({"_id": "old"})
    return _target_state(world)


def _metadata_key(world: World, coll: str) -> str:
    return world.layout.backup_metadata("documentdb", world.db, coll)


def _data_key(world: World, coll: str) -> str:
    return world.layout.backup_data("documentdb", world.db, coll)


def _rewrite_metadata(world: World, coll: str, change: Any) -> None:
    s3 = S3Objects(world.bucket)
    doc = extjson.loads(gzip.decompress(s3.get_bytes(_metadata_key(world, coll)) or b""))
    change(doc)
    s3.put_bytes(_metadata_key(world, coll), gzip.compress(extjson.dumps(doc).encode()))


def _restore(world: World, *extra: str) -> int:
    return main(
        world.cli("--uri", world.target_uri, "--label", "documentdb", "--restore", "--parallel", "1", *extra)
    )


def test_stale_metadata_from_an_interrupted_dump_is_refused_before_any_write(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    _seed(world)
    _backup(world)
    # A second dump of charlie completes its data object, then fails its count check: the data is
    # new, the metadata still the first dump's (the state a dump killed at that point leaves).
    world.source[world.db].charlie.insert_many([{"_id": 100 + i, "n": 1000 + i} for i in range(21)])
    info = next(world.source[world.db].list_collections(filter={"name": "charlie"}))

    class WriterDuringDump(Progress):
        def collection(self, namespace: str) -> Any:
            def report(documents: int, raw_bytes: int, final: bool) -> None:
                world.source[world.db].charlie.insert_one({"_id": f"late-{documents}", "n": -documents})

            return report

    config = BackupConfig(world.source_db_uri, world.layout, "documentdb", (world.db,), batch_size=10)
    with pytest.raises(JobFailed, match="changed during the backup"):
        dump_collection(
            world.source, S3Objects(world.bucket), config, world.db, info, WriterDuringDump("x", 1)
        )
    before = _old_target(world)

    assert _restore(world, "--drop") == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("backover backup: ") and "\n" not in err
    assert f"{_data_key(world, 'charlie')} is not the object its metadata describes" in err
    assert _target_state(world) == before  # alpha not loaded, bravo and delta not dropped


def test_every_target_collection_is_checked_for_emptiness_before_the_first_write(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    _seed(world)
    _backup(world)
    before = _old_target(world)  # bravo and delta hold data; alpha and charlie are absent

    assert _restore(world) == 1
    err = capsys.readouterr().err
    assert f"not empty on the target: {world.db}.bravo, {world.db}.delta; pass --drop" in err
    assert _target_state(world) == before

    world.target[world.db].bravo.delete_many({})
    world.target[world.db].delta.delete_many({})
    assert _restore(world) == 0  # empty collections are replaced
    for name in COLLECTIONS:
        assert raw_by_id(world.target, world.db, name) == raw_by_id(world.source, world.db, name)


def test_a_sha256_mismatch_found_while_loading_leaves_the_target_as_it_was(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """The cheap checks pass (same object, same size, same count): only the streamed SHA-256 can
    tell. alpha..charlie are loaded by then; none of them may reach the target."""
    _seed(world)
    _backup(world)
    _rewrite_metadata(world, "delta", lambda doc: doc["backover"].update(sha256="0" * 64))
    before = _old_target(world)

    assert _restore(world, "--drop") == 1
    err = capsys.readouterr().err
    assert f"{_data_key(world, 'delta')} does not match the SHA-256 in its metadata" in err
    assert _target_state(world) == before  # no staging collection left, old bravo/delta kept


def test_a_copied_data_object_is_read_once_before_any_write_and_restores(world: World) -> None:
    """A copy gets an ETag of its own: the content decides, checked before the first write."""
    _seed(world)
    _backup(world)
    s3 = boto3.client("s3")
    for name in ("alpha", "delta"):
        key = _data_key(world, name)
        s3.copy_object(
            Bucket=world.bucket,
            Key=key,
            CopySource={"Bucket": world.bucket, "Key": key},
            MetadataDirective="REPLACE",
            ContentType="application/gzip",
        )
    recorded: list[str] = []
    _rewrite_metadata(
        world,
        "delta",
        lambda doc: recorded.append(doc["backover"].pop("sha256")) or doc["backover"].update(sha256="0" * 64),
    )
    before = _old_target(world)

    with pytest.raises(
        JobFailed,
        match=f"{_data_key(world, 'delta')} is not the object its metadata describes.*"
        "does not match the SHA-256",
    ):
        load(LoadConfig(world.target_db_uri, world.layout, "documentdb", drop=True))
    assert _target_state(world) == before

    _rewrite_metadata(world, "delta", lambda doc: doc["backover"].update(sha256=recorded[0]))
    load(LoadConfig(world.target_db_uri, world.layout, "documentdb", drop=True))
    for name in COLLECTIONS:
        assert raw_by_id(world.target, world.db, name) == raw_by_id(world.source, world.db, name)


def test_an_interrupted_restore_s_staging_collections_are_dropped_and_the_restore_completes(
    world: World,
) -> None:
    _seed(world)
    _backup(world)
    world.target[world.db][staging("alpha")].insert_many([{"_id": i} for i in range(5)])  # a killed restore's
    of_target = backup(BackupConfig(world.target_db_uri, world.layout, "mongodb", (world.db,)))
    assert of_target.collections == [] and of_target.skipped == [f"{world.db}.{staging('alpha')}"]

    result = load(LoadConfig(world.target_db_uri, world.layout, "documentdb"))
    assert result.staging_dropped == 1
    assert result.documents_total == 50 * len(COLLECTIONS)
    assert sorted(world.target[world.db].list_collection_names()) == sorted(COLLECTIONS)
    for name in COLLECTIONS:
        assert raw_by_id(world.target, world.db, name) == raw_by_id(world.source, world.db, name)
    assert {ix["name"]: ix.get("unique", False) for ix in world.target[world.db].charlie.list_indexes()} == {
        "_id_": False,
        "n_1": True,
    }


def _as_older_backup(doc: dict[str, Any]) -> None:
    """Backups written before the data object's size and ETag were recorded."""
    doc["backover"].pop("etag")
    doc["backover"].pop("compressedBytes")


def test_a_backup_written_before_etags_were_recorded_is_checked_by_reading_it_first(world: World) -> None:
    _seed(world)
    _backup(world)
    for name in COLLECTIONS:
        _rewrite_metadata(world, name, _as_older_backup)

    load(LoadConfig(world.target_db_uri, world.layout, "documentdb"))
    for name in COLLECTIONS:
        assert raw_by_id(world.target, world.db, name) == raw_by_id(world.source, world.db, name)


def _damage(world: World, how: str) -> tuple[str, str]:
    """Damage charlie's backup; returns (the key the message must name, a phrase it must hold)."""
    s3 = S3Objects(world.bucket)
    meta, data = _metadata_key(world, "charlie"), _data_key(world, "charlie")
    good_meta = s3.get_bytes(meta) or b""
    good_data = s3.get_bytes(data) or b""
    if how == "metadata-garbage":
        s3.put_bytes(meta, b"\x00garbage" * 10)
        return meta, "is not a whole gzip file"
    if how == "metadata-truncated":
        s3.put_bytes(meta, good_meta[: len(good_meta) // 2])
        return meta, "is not a whole gzip file"
    if how == "metadata-not-json":
        s3.put_bytes(meta, gzip.compress(b'{"options": {'))
        return meta, "is not Extended JSON"
    if how == "metadata-of-mongodump":
        _rewrite_metadata(world, "charlie", lambda doc: doc.pop("backover"))
        return meta, "has no backover checks"
    if how == "metadata-bad-index":
        _rewrite_metadata(world, "charlie", lambda doc: doc["indexes"].append({"name": "broken"}))
        return meta, "index 2 has no name or no key"
    if how == "metadata-other-collection":
        s3.put_bytes(meta, s3.get_bytes(_metadata_key(world, "alpha")) or b"")
        return meta, "describes collection 'alpha', not 'charlie'"
    if how == "metadata-without-data":
        s3.delete_keys([data])
        return data, "is incomplete"
    if how == "data-garbage":
        s3.put_bytes(data, b"\x1f\x8b garbage" * 100)
        return data, "is not the object its metadata describes"
    if how == "data-truncated-older-backup":
        s3.put_bytes(data, good_data[:-20])
        _rewrite_metadata(world, "charlie", _as_older_backup)
        return data, "is truncated"
    if how == "data-not-gzip-older-backup":
        s3.put_bytes(data, b"not gzip at all" * 50)
        _rewrite_metadata(world, "charlie", _as_older_backup)
        return data, "is corrupt"
    raise AssertionError(how)


@pytest.mark.parametrize(
    "how",
    [
        "metadata-garbage",
        "metadata-truncated",
        "metadata-not-json",
        "metadata-of-mongodump",
        "metadata-bad-index",
        "metadata-other-collection",
        "metadata-without-data",
        "data-garbage",
        "data-truncated-older-backup",
        "data-not-gzip-older-backup",
    ],
)
def test_a_damaged_backup_gives_one_line_naming_the_key_and_writes_nothing(
    world: World, how: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _seed(world, documents=20)
    _backup(world)
    key, phrase = _damage(world, how)
    before = _old_target(world)

    assert _restore(world, "--drop") == 1
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert key in lines[0] and phrase in lines[0], lines[0]
    assert _target_state(world) == before


def test_the_restore_summary_counts_what_was_put_in_place(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    _seed(world, documents=10)
    _backup(world)
    s3 = boto3.client("s3")
    head = s3.head_object(Bucket=world.bucket, Key=_data_key(world, "alpha"))
    metadata = extjson.loads(
        gzip.decompress(S3Objects(world.bucket).get_bytes(_metadata_key(world, "alpha")) or b"")
    )
    assert metadata["backover"]["etag"] == head["ETag"].strip('"')
    assert metadata["backover"]["compressedBytes"] == head["ContentLength"]

    assert _restore(world) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["documents_total"] == 40 and summary["staging_dropped"] == 0
