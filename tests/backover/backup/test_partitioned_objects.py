"""The objects a partitioned backup builds from its parts: parts under S3's 5 MiB minimum are
uploaded together, larger ones copied server-side (UploadPartCopy), and the result is one gzip
stream (one member a part) of exactly the collection's documents that mongodump's readers, Python's
gzip and ``--restore`` read whole. A finish that fails half-way is finished by a re-run; a damaged
member is refused before anything is written."""

from __future__ import annotations

import json
import os
import zlib
from typing import Any

import boto3
import pytest
from backup_world import World, multipart_uploads, natural_bytes, raw_by_id
from bson import Binary
from bson.objectid import ObjectId
from partitioned_world import LABEL, config, documents_of, keys_under, source_documents, write_plan

from backover import state
from backover.backup import begin, dump_partition, finish, partition_ids, partitioned
from backover.backup.compose import Part, Piece, plan_parts
from backover.backup.load import LoadConfig, load
from backover.cli import main
from backover.errors import JobFailed
from backover.s3objects import S3Objects
from backover.state import BackupManifest

MIB = 1024 * 1024


@pytest.mark.parametrize(
    ("sizes", "parts"),
    [
        pytest.param([3], [Part((Piece(0, 0, 3),), False)], id="one-small"),
        pytest.param(
            [3, 4, 2], [Part((Piece(0, 0, 3), Piece(1, 0, 4), Piece(2, 0, 2)), False)], id="all-small"
        ),
        pytest.param(
            [12, 3], [Part((Piece(0, 0, 12),), True), Part((Piece(1, 0, 3),), False)], id="large-then-small"
        ),
        pytest.param(
            [3, 20, 4],
            [
                Part((Piece(0, 0, 3), Piece(1, 0, 7)), False),  # topped up to the minimum
                Part((Piece(1, 7, 20),), True),
                Part((Piece(2, 0, 4),), False),
            ],
            id="small-large-small",
        ),
        pytest.param(
            [3, 12],
            [Part((Piece(0, 0, 3), Piece(1, 0, 7)), False), Part((Piece(1, 7, 12),), False)],
            id="remainder-too-small-to-copy",
        ),
        pytest.param(
            [45],
            [
                Part((Piece(0, 0, 15),), True),
                Part((Piece(0, 15, 30),), True),
                Part((Piece(0, 30, 45),), True),
            ],
            id="larger-than-a-part",
        ),
    ],
)
def test_parts_under_the_minimum_are_gathered_and_every_part_but_the_last_is_large_enough(
    sizes: list[int], parts: list[Part]
) -> None:
    planned = plan_parts(sizes, min_part=10, max_part=20)
    assert planned == parts
    assert all(p.size >= 10 for p in planned[:-1]) and all(p.size <= 20 for p in planned)
    pieces = [piece for p in planned for piece in p.pieces]
    assert [(q.source, q.start, q.end) for q in pieces] == sorted((q.source, q.start, q.end) for q in pieces)
    assert sum(p.size for p in planned) == sum(sizes)  # every byte once, in order


def _blobs(world: World) -> None:
    """120 small documents, then 130 of 100 kB of random bytes: partitions of 120 are ~120 kB,
    ~12 MB and ~1 MB of gzip."""
    coll = world.source[world.db].blobs
    coll.insert_many([{"_id": i, "small": "x" * 500} for i in range(120)])
    for start in range(120, 250, 40):
        coll.insert_many(
            [{"_id": i, "blob": Binary(os.urandom(100_000))} for i in range(start, min(start + 40, 250))]
        )


def test_parts_of_5_mib_and_more_are_copied_server_side_and_the_object_is_exactly_the_documents(
    world: World, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    _blobs(world)
    db = world.source[world.db]
    db.mixed.insert_many([{"_id": i} for i in range(7)] + [{"_id": ObjectId()} for _ in range(4)])
    db.whole.insert_many([{"_id": i, "v": str(i)} for i in range(5)])
    plan = write_plan(world, "blobs", "mixed", size=120)
    assert len(plan.collections[0].partitions) == 3
    db.mixed.insert_many([{"_id": f"s{i}"} for i in range(3)])  # strings: a bracket the plan did not see

    # backover backup with a plan and no step: begin, the partitions, finish, in one process.
    with caplog.at_level("INFO", logger="backover"):
        assert main(world.cli("--uri", world.source_uri, "--label", LABEL, "--databases", world.db)) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["begin_id"] and summary["partitions"] == 5  # blobs 3, mixed 2 (two brackets)
    assert {c["namespace"]: c["documents"] for c in summary["collections"]} == {
        f"{world.db}.blobs": 250,
        f"{world.db}.mixed": 14,
        f"{world.db}.whole": 5,
    }
    assert "blobs: built from 3 part(s): 1 S3 part(s) copied server-side, 2 uploaded" in caplog.text
    blobs_key = world.layout.backup_data(LABEL, world.db, "blobs")
    head = boto3.client("s3").head_object(Bucket=world.bucket, Key=blobs_key, PartNumber=1)
    assert head["PartsCount"] == 3 and head["ContentLength"] == 5 * MIB  # topped up to S3's minimum

    for name in ("blobs", "mixed"):  # Python's gzip reads every member: exactly the documents, once
        dumped = documents_of(world.bucket, world.layout.backup_data(LABEL, world.db, name))
        assert sorted(dumped) == sorted(source_documents(world, name)) and len(set(dumped)) == len(dumped)
    whole_key = world.layout.backup_data(LABEL, world.db, "whole")
    assert b"".join(documents_of(world.bucket, whole_key)) == natural_bytes(world.source, world.db, "whole")
    assert not keys_under(world.bucket, world.layout.backup_parts_prefix(LABEL))

    load(LoadConfig(world.target_db_uri, world.layout, LABEL))
    for name in ("blobs", "mixed", "whole"):
        assert raw_by_id(world.target, world.db, name) == raw_by_id(world.source, world.db, name)


def test_a_finish_that_fails_half_way_is_completed_by_a_re_run(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = world.source[world.db]
    for name in ("alpha", "beta", "gamma"):
        db[name].insert_many([{"_id": i, "in": name} for i in range(9)])
    write_plan(world, "alpha", "beta", "gamma", size=4)
    begin(config(world))
    for partition in partition_ids(S3Objects(world.bucket), world.layout):
        dump_partition(config(world), partition)

    real, written = partitioned.write_metadata, []

    def failing(*args: Any, **kwargs: Any) -> Any:
        if written:  # the second collection: its object is built, its metadata never written
            raise RuntimeError("the worker went away")
        written.append(real(*args, **kwargs))
        return written[-1]

    monkeypatch.setattr(partitioned, "write_metadata", failing)
    with pytest.raises(RuntimeError, match="went away"):
        finish(config(world, parallel=1))
    assert S3Objects(world.bucket).head(world.layout.backup_manifest(LABEL)) is None
    monkeypatch.setattr(partitioned, "write_metadata", real)
    stray = world.layout.backup_data(LABEL, world.db, "gamma")  # what a finish killed -9 leaves too
    boto3.client("s3").create_multipart_upload(Bucket=world.bucket, Key=stray)

    again = finish(config(world))
    assert again.uploads_aborted == 1 and not again.already_finished
    assert multipart_uploads(world.bucket, world.layout.backup_prefix(LABEL)) == []
    assert not keys_under(world.bucket, world.layout.backup_parts_prefix(LABEL))
    manifest = state.read(S3Objects(world.bucket), world.layout.backup_manifest(LABEL), BackupManifest)
    assert manifest is not None and manifest.begin_id == again.begin_id
    load(LoadConfig(world.target_db_uri, world.layout, LABEL))
    for name in ("alpha", "beta", "gamma"):
        assert raw_by_id(world.target, world.db, name) == raw_by_id(world.source, world.db, name)


def test_a_damaged_member_is_refused_before_anything_is_written(world: World) -> None:
    world.source[world.db].items.insert_many([{"_id": i, "v": "y" * 50} for i in range(12)])
    write_plan(world, "items", size=4)
    partitioned.run_backup(config(world))
    key = world.layout.backup_data(LABEL, world.db, "items")
    s3 = S3Objects(world.bucket)
    body = s3.get_bytes(key)
    assert body is not None
    # The same members, two of them swapped: a whole gzip stream of the same size, but its second
    # member is not the part the metadata describes there.
    members = _split_members(body)
    assert len(members) == 3
    s3.put_bytes(key, members[0] + members[2] + members[1])
    with pytest.raises(JobFailed, match=rf"{key} member 2 of 3 (holds|does not match)"):
        load(LoadConfig(world.target_db_uri, world.layout, LABEL))
    assert "items" not in world.target[world.db].list_collection_names()


def _split_members(body: bytes) -> list[bytes]:
    """The gzip members of ``body``, each its bytes."""
    found = []
    while body:
        inflate = zlib.decompressobj(31)
        inflate.decompress(body)
        size = len(body) - len(inflate.unused_data)
        found.append(body[:size])
        body = body[size:]
    return found


def test_a_mongodb_backup_stays_whole_with_a_plan(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    world.source[world.db].items.insert_many([{"_id": i} for i in range(9)])
    write_plan(world, "items", size=4)
    assert main(world.cli("--uri", world.source_uri, "--label", "mongodb", "--databases", world.db)) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["begin_id"] is None and summary["partitions"] == 0
    s3 = S3Objects(world.bucket)
    assert s3.head(world.layout.backup_begun("mongodb")) is None
    key = world.layout.backup_data("mongodb", world.db, "items")
    assert len(_split_members(s3.get_bytes(key) or b"")) == 1  # one gzip stream, as mongodump writes
