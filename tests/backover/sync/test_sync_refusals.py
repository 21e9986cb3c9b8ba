"""Bad input: one line, exit 2, nothing written to the target (and no plan in S3).

A target collection that holds documents (unless ``--drop-target``; ``--if-needed`` then does
nothing), a collection the start record names that the source lacks, a source user without the
privilege (13), a collection or index MongoDB refuses (what this run created is dropped again), a
start that did not finish, a restore already started."""

from __future__ import annotations

import io
import json
import secrets
import uuid
from contextlib import redirect_stderr, redirect_stdout

import pytest
from restore_streams import raw_contents

from backover import cli, state
from backover.bsonvalues import raw_collection
from backover.connections import DatabaseUri
from backover.errors import UsageError
from backover.state import RestoreCheckpoint, SyncCollection
from backover.sync import SyncConfig, SyncState
from backover.sync.plan import create_on_target
from backover.verify.indexes import index_specs


def _refused(world, match: str, **options) -> UsageError:
    with pytest.raises(UsageError, match=match) as e:
        world.sync(**options)
    assert e.value.exit_code == 2 and "\n" not in str(e.value)
    assert world.keys() == []  # no plan, no checkpoint, no lease left
    return e.value


def test_a_target_collection_holding_documents_is_refused_naming_it_and_its_count(world) -> None:
    world.source[world.db].a.insert_many([{"_id": i} for i in range(5)])
    world.source[world.db].b.insert_many([{"_id": i} for i in range(5)])
    world.target[world.db].b.insert_many([{"_id": 1, "stale": True}, {"_id": 2}, {"_id": 3}])
    world.start()
    _refused(
        world,
        rf"the target already holds 3 document\(s\) in {world.db}\.b: .*--drop-target.*nothing was written",
    )
    assert world.target[world.db].list_collection_names() == ["b"]  # a was not created
    assert world.target[world.db].b.count_documents({}) == 3


def test_drop_target_drops_the_migrated_collections_first_and_copies(world) -> None:
    world.source[world.db].b.insert_many([{"_id": i, "v": "new"} for i in range(5)])
    world.target[world.db].b.insert_many([{"_id": 1, "stale": True}, {"_id": 40}])
    world.target[world.db].b.create_index("stale")
    world.target[world.db].other.insert_one({"_id": 1})  # not migrated by this start: kept
    world.start(f"{world.db}.b")
    result = world.sync(drop_target=True)
    assert result.state is SyncState.COMPLETE and result.dropped == [f"{world.db}.b"]
    assert raw_contents(world.target, world.db)["b"] == raw_contents(world.source, world.db)["b"]
    assert set(index_specs(raw_collection(world.target, world.db, "b"))) == {"_id_"}
    assert world.target[world.db].other.count_documents({}) == 1


def test_if_needed_copies_into_an_empty_target_and_does_nothing_when_it_holds_data(world) -> None:
    world.source[world.db].a.insert_many([{"_id": i} for i in range(5)])
    world.target[world.db].a.insert_one({"_id": 0})
    world.start()
    not_needed = world.sync(if_needed=True)
    assert not_needed.state is SyncState.NOT_NEEDED
    assert not_needed.reason == f"no copy needed: the target already holds 1 document(s) in {world.db}.a"
    assert world.keys() == []

    world.target[world.db].a.delete_many({})  # present but empty: a copy is needed
    copied = world.sync(if_needed=True)
    assert copied.state is SyncState.COMPLETE and copied.complete.documents == 5
    assert raw_contents(world.target, world.db) == raw_contents(world.source, world.db)


def test_a_collection_missing_on_the_source_is_refused(world) -> None:
    world.source[world.db].a.insert_one({"_id": 1})
    world.start(f"{world.db}.a", f"{world.db}.missing")
    _refused(
        world,
        rf"{world.db}\.missing is named in the migration's start record but does not exist on the source",
    )
    assert world.db not in world.target.list_database_names()


def test_a_source_user_without_the_privilege_is_refused_with_code_13(world) -> None:
    world.source[world.db].a.insert_one({"_id": 1})
    user, password = f"bi_{uuid.uuid4().hex[:6]}", secrets.token_urlsafe(12)
    world.source.admin.command("createUser", user, pwd=password, roles=[{"role": "read", "db": "elsewhere"}])
    try:
        world.source_uri = world.source_server.uri(user, password)
        world.start()
        error = _refused(world, r"the source refused listCollections on .*\(code 13\)")
        assert password not in str(error)
    finally:
        world.source.admin.command("dropUser", user)
    assert world.db not in world.target.list_database_names()


def test_an_index_mongodb_refuses_stops_the_sync_and_leaves_nothing_behind(world) -> None:
    world.source[world.db].a.insert_one({"_id": 1})
    world.source[world.db].users.create_index("email", unique=True)
    world.source[world.db].users.insert_one({"_id": 1, "email": "x"})
    world.target[world.db].users.create_index("email")  # empty, but its email_1 is not unique
    world.start()
    _refused(world, r"MongoDB refused index 'email_1' \{\"email\": 1\} of .*users: .*\(code 8[56]\)")
    assert world.target[world.db].list_collection_names() == ["users"]  # a was created, then dropped again
    assert set(index_specs(raw_collection(world.target, world.db, "users"))) == {"_id_", "email_1"}
    assert "unique" not in index_specs(raw_collection(world.target, world.db, "users"))["email_1"]


def test_an_index_type_only_documentdb_has_is_refused_by_the_target_and_nothing_is_left(world) -> None:
    """DocumentDB's vector index (what its listIndexes returns for one); the stand-in source cannot
    build it, so the plan's collection is given as DocumentDB would list it."""
    world.target[world.db].kept.insert_one({"_id": 1})
    collections = [
        SyncCollection(world.db, "plain", indexes=[{"key": {"a": 1}, "name": "a_1"}]),
        SyncCollection(
            world.db,
            "vectors",
            indexes=[
                {"key": {"a": 1}, "name": "a_1"},
                {
                    "key": {"embedding": "vector"},
                    "name": "embedding_vector",
                    "vectorOptions": {"type": "hnsw", "dimensions": 3, "similarity": "euclidean"},
                },
            ],
        ),
    ]
    # mongod checks the fields of a specification first: vectorOptions is not one (197).
    with pytest.raises(
        UsageError, match=r"MongoDB refused index 'embedding_vector' .* of .*vectors: .*\(code 197\)"
    ):
        create_on_target(world.target, collections)
    assert world.target[world.db].list_collection_names() == ["kept"]


def test_a_start_that_did_not_finish_or_a_restore_that_began_is_refused(world) -> None:
    world.source[world.db].a.insert_one({"_id": 1})
    _refused(world, r"no start record .*start the migration")
    world.start(t0=False)
    _refused(world, r"has no T0: the start did not finish")
    world.start()
    state.write(world.s3, world.layout.restore_checkpoint, RestoreCheckpoint(world.layout.migration_id))
    with pytest.raises(
        UsageError, match=r"the restore of this migration has started .*the initial sync must run before it"
    ):
        world.sync()
    assert world.db not in world.target.list_database_names()
    assert world.s3.head(world.layout.sync_plan) is None


def test_a_partition_needs_a_plan_and_must_be_in_it(world) -> None:
    world.source[world.db].a.insert_one({"_id": 1})
    world.start()
    _refused(
        world, r"no sync plan .*run `backover sync --plan` before copying a partition", partition="x.y.0000"
    )
    world.sync(plan_only=True)
    with pytest.raises(UsageError, match=r"no partition 'x\.y\.0000' in .*\(1 partitions"):
        world.sync(partition="x.y.0000")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"plan_only": True, "partition": "a.b.0000"}, "--plan and --partition exclude each other"),
        ({"drop_target": True, "if_needed": True}, "--drop-target and --if-needed exclude each other"),
        ({"partition_documents": 0}, "--partition-documents must be at least 1"),
        ({"batch_size": 0}, "--batch-size must be at least 1"),
        ({"progress_seconds": 0}, "--progress-seconds must be positive"),
    ],
)
def test_options_that_cannot_work_are_refused_before_anything_runs(world, options, message) -> None:
    with pytest.raises(UsageError, match=message):
        SyncConfig(
            layout=world.layout,
            source=DatabaseUri("mongodb://h"),
            target=DatabaseUri("mongodb://h"),
            **options,
        )


def _cli(world, *args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    argv = [
        "sync",
        "--bucket",
        world.layout.bucket,
        "--migration-id",
        world.layout.migration_id,
        "--source-uri",
        world.source_uri,
        "--target-uri",
        world.target_uri,
        "--progress-seconds",
        "60",
        *args,
    ]
    with redirect_stdout(out), redirect_stderr(err):
        code = cli.main(argv)
    return code, out.getvalue(), err.getvalue()


def test_the_command_prints_the_partitions_and_refuses_in_one_line(world, standin_password) -> None:
    world.source[world.db].a.insert_many([{"_id": i} for i in range(5)])
    world.start()
    code, out, _ = _cli(world, "--plan", "--partition-documents", "2")
    assert code == 0
    printed = json.loads(out)
    assert printed["state"] == "planned" and printed["partitions"] == [
        f"{world.db}.a.{i:04d}" for i in range(3)
    ]
    code, out, _ = _cli(world, "--partition", printed["partitions"][0])
    assert code == 0 and json.loads(out)["state"] == "copying"
    code, out, _ = _cli(world)
    assert code == 0 and json.loads(out)["complete"]["documents"] == 5

    other = world.layout.migration_id + "-2"
    world.migration.layout = world.layout.__class__(world.layout.bucket, world.layout.prefix, other)
    world.start()
    code, out, err = _cli(world)  # the target now holds a's documents
    assert code == 2 and out == ""
    lines = [line for line in err.splitlines() if line.startswith("backover sync:")]
    assert len(lines) == 1 and "already holds 5 document(s)" in lines[0]
    assert standin_password not in err


@pytest.mark.parametrize(
    ("flag", "value", "said"),
    [
        ("--bucket", "Not_A_Bucket", "invalid bucket name"),
        ("--prefix", "../../etc", "invalid prefix"),
        ("--migration-id", "m-1\n", "invalid migration id"),
    ],
)
def test_a_bad_name_is_one_line_before_any_call(monkeypatch, capsys, flag, value, said) -> None:
    """S3 on a closed port: any call would fail with a connection error instead of the rule."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    names = {"--bucket": "backover-sandbox", "--prefix": "backover", "--migration-id": "m-1", flag: value}
    argv = ["sync", *(f"{k}={v}" for k, v in names.items()), "--source-uri", "mongodb://127.0.0.1:9"]
    assert cli.main([*argv, "--target-uri", "mongodb://127.0.0.1:9"]) == 2
    out = capsys.readouterr()
    lines = out.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("backover sync: ") and said in lines[0]


def test_a_missing_bucket_is_one_line(world, capsys) -> None:
    argv = ["sync", "--bucket", "backover-missing-" + uuid.uuid4().hex[:8], "--migration-id", "m-1"]
    assert cli.main([*argv, "--source-uri", world.source_uri, "--target-uri", world.target_uri]) == 2
    assert "cannot be used: does not exist" in capsys.readouterr().err


def test_collection_options_the_target_refuses_or_does_not_have_stop_the_sync(world) -> None:
    """The stand-ins create plain collections only, so the options are given as DocumentDB lists
    them ($jsonSchema validators exist on both servers; the MongoDB stand-in refuses them, 40415)."""
    validator = {"validator": {"$jsonSchema": {"required": ["a"]}}, "validationLevel": "strict"}
    first = [SyncCollection(world.db, "fresh"), SyncCollection(world.db, "checked", options=validator)]
    with pytest.raises(
        UsageError, match=r"MongoDB refused to create .*checked with the source's options .*\(code 40415\)"
    ):
        create_on_target(world.target, first)
    assert world.db not in world.target.list_database_names()  # fresh was created, then dropped again

    world.target[world.db].create_collection("checked")  # there, empty, without the validator
    with pytest.raises(
        UsageError, match=r"checked exists on the target \(empty\) with the options \{\}, not the source's"
    ):
        create_on_target(world.target, [SyncCollection(world.db, "checked", options=validator)])
