"""A DocumentDB backup taken over the sync plan's partitions, in steps (``--begin``, the partitions
in any order, ``--finish``) while the application writes and the capture runs: restored, it is the
frozen source at F byte for byte, after the seal and ``backover clean`` too, with collections
dropped or dropped and created again between ``--begin`` and ``--finish`` (a rename then is
refused by the restore). ``--finish`` refuses while a partition of this begin lacks its part (one
of a stale begin does not count) and deletes only its own begin's parts; bad input is one line,
exit 2, nothing written."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from backup_world import World, every_type, multipart_uploads
from partitioned_world import LABEL, config, documents_of, keys_under, write_plan
from restore_streams import raw_contents
from test_backup_consistent_at_f import Migration, swap_emails

from backover import state
from backover.backup import begin, dump_partition, finish, partition_ids, partitioned
from backover.backup.load import LoadConfig, load
from backover.backup.metadata import CollectionMetadata
from backover.backup.seal import seal
from backover.cleanup.job import CleanConfig, clean
from backover.cli import main
from backover.errors import JobFailed
from backover.s3objects import S3Objects
from backover.state import BackupManifest


@pytest.fixture
def migration(world: World) -> Iterator[Migration]:
    made = Migration(world)
    yield made
    made.replicator.stop.set()
    made.replicator.thread.join(30)


def seed(world: World) -> None:
    """accounts (one bracket, a unique key), orders (every BSON type: _ids of five brackets),
    empty (no document when planned), notes (never planned)."""
    db = world.source[world.db]
    db.accounts.insert_many([{"_id": i, "email": f"u{i}@shop", "n": i} for i in range(1, 31)])
    db.accounts.create_index("email", unique=True, name="email_unique")
    db.orders.insert_many([every_type(i) for i in range(15)])
    db.create_collection("empty")
    db.notes.insert_many([{"_id": f"n{i}", "text": "x" * i} for i in range(6)])


def test_a_backup_taken_in_partitions_while_writes_go_on_restores_identical_at_f_after_seal_and_clean(
    world: World, migration: Migration
) -> None:
    db = world.source[world.db]
    seed(world)
    plan = write_plan(world, "accounts", "orders", "empty", size=4)
    assert len({p.bracket for c in plan.collections for p in c.partitions if c.coll == "orders"}) > 1
    # After the plan: an empty-when-planned collection fills, a new one, an _id of an unseen bracket.
    db.empty.insert_many([{"_id": i} for i in range(3)])
    db.later.insert_many([{"_id": i, "v": i} for i in range(5)])
    db.orders.insert_one({"_id": True, "bracket": "not planned"})

    begun = begin(config(world))
    assert begun.partitions == plan.partition_ids() == partition_ids(S3Objects(world.bucket), world.layout)
    assert begun.capture_seq is not None  # the capture covers B: writes may go on
    writes = [
        lambda: swap_emails(db, 1, 30),  # the first and the last partition of accounts
        lambda: db.accounts.update_one({"_id": 5}, {"$inc": {"n": 100}}),
        lambda: db.accounts.delete_one({"_id": 9}),
        lambda: db.accounts.insert_many([{"_id": 0, "email": "u0@shop"}, {"_id": 31, "email": "u31@shop"}]),
        lambda: db.orders.delete_one({"_id": every_type(0)["_id"]}),
        lambda: db.orders.insert_one(every_type(50)),
        lambda: db.orders.update_one({"_id": every_type(1)["_id"]}, {"$set": {"paid": True}}),
        lambda: db.orders.insert_one({"_id": datetime(2026, 1, 2, tzinfo=UTC), "bracket": "a date"}),
        lambda: db.empty.delete_one({"_id": 1}),
        lambda: db.later.update_one({"_id": 2}, {"$set": {"v": "changed"}}),
        lambda: swap_emails(db, 2, 29),
        lambda: db.notes.update_one({"_id": "n1"}, {"$set": {"text": "edited"}}),
    ]
    order = begun.partitions[1::2] + begun.partitions[::-2]  # any order, every one once
    assert sorted(order) == sorted(begun.partitions)
    for n, partition in enumerate(order):
        writes[n % len(writes)]()
        assert dump_partition(config(world), partition).partition == partition
    finished = finish(config(world))
    assert finished.begin_id == begun.begin_id and finished.b == begun.b
    assert sorted(finished.collections_built) == [f"{world.db}.accounts", f"{world.db}.orders"]
    # After the dump: more changes, a rename and a drop, all replayed up to F.
    swap_emails(db, 3, 28)
    db.accounts.delete_one({"_id": 11})
    db.client.admin.command("renameCollection", f"{world.db}.later", to=f"{world.db}.later2")
    db.drop_collection("empty")
    db.orders.replace_one({"_id": every_type(2)["_id"]}, {"replaced": "after the dump"})
    f = migration.freeze()
    frozen = raw_contents(world.source, world.db)
    migration.drain(f)

    s3 = S3Objects(world.bucket)
    manifest = state.read(s3, world.layout.backup_manifest(LABEL), BackupManifest)
    assert manifest is not None and manifest.begin_id == begun.begin_id
    assert (manifest.b, manifest.capture_seq) == (begun.b, begun.capture_seq)
    assert not keys_under(world.bucket, world.layout.backup_parts_prefix(LABEL))  # the parts are gone
    assert multipart_uploads(world.bucket, world.layout.backup_prefix(LABEL)) == []
    accounts_key = world.layout.backup_data(LABEL, world.db, "accounts")
    meta_body = s3.get_bytes(world.layout.backup_metadata(LABEL, world.db, "accounts"))
    assert meta_body is not None
    meta = CollectionMetadata.parse("accounts metadata", meta_body, "accounts")
    assert len(meta.check.members) == len(plan.collections[0].partitions)  # one gzip member a part
    assert len(documents_of(world.bucket, accounts_key)) == meta.check.documents

    sealed = seal(world.layout, LABEL)
    assert sealed.sealed and sealed.f == f and sealed.copied > 0
    clean(CleanConfig(world.layout, force=True))
    assert not list(s3.list_keys(world.layout.changes_prefix))

    result = load(LoadConfig(world.target_db_uri, world.layout, LABEL))
    assert raw_contents(world.target, world.db) == frozen  # byte for byte, every document
    assert result.replay is not None and result.replay.consistent_at == f
    assert "sealed copies" in result.replay.segments_from
    target = world.target[world.db]
    assert sorted(target.list_collection_names()) == ["accounts", "later2", "notes", "orders"]
    assert target.accounts.index_information()["email_unique"]["unique"] is True


def _small_world(world: World) -> list[str]:
    """A frozen source (no capture) with a plan of four partitions; their ids."""
    world.source[world.db].items.insert_many([{"_id": i, "v": i} for i in range(8)])
    world.source[world.db].extra.insert_many([{"_id": i} for i in range(3)])
    return write_plan(world, "items", "extra", size=3).partition_ids()


def _cli(world: World, *args: str) -> list[str]:
    return world.cli("--uri", world.source_uri, "--label", LABEL, *args)


def test_finish_names_the_partitions_without_a_part_and_one_of_a_stale_begin_does_not_count(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = _small_world(world)
    assert len(ids) == 4
    assert main(_cli(world, "--begin", "--databases", world.db)) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["partitions"] == ids
    assert main(_cli(world, "--partition", ids[0])) == 0  # a part of this begin ...
    capsys.readouterr()
    assert main(_cli(world, "--begin", "--databases", world.db)) == 0  # ... made stale by a new begin
    second = json.loads(capsys.readouterr().out)
    assert second["begin_id"] != first["begin_id"]
    for partition in ids[1:3]:
        assert main(_cli(world, "--partition", partition)) == 0
    capsys.readouterr()

    assert main(_cli(world, "--finish")) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"lacks the part of 2 of its 4 partition(s): {ids[0]}, {ids[3]}" in err[0], err
    s3 = S3Objects(world.bucket)
    assert s3.head(world.layout.backup_manifest(LABEL)) is None
    assert not keys_under(world.bucket, world.layout.backup_database_prefix(LABEL, world.db))

    for partition in (ids[3], ids[0]):
        assert main(_cli(world, "--partition", partition)) == 0
    capsys.readouterr()
    assert main(_cli(world, "--finish")) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["begin_id"] == second["begin_id"] and summary["documents_total"] == 11
    assert main(_cli(world, "--finish")) == 0  # a re-run after success changes nothing
    again = json.loads(capsys.readouterr().out)
    assert again["already_finished"] is True
    assert main(_cli(world, "--partition", ids[0])) == 2  # nor can a finished begin take a part
    assert "is finished" in capsys.readouterr().err
    load(LoadConfig(world.target_db_uri, world.layout, LABEL))
    assert raw_contents(world.target, world.db) == raw_contents(world.source, world.db)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        pytest.param(
            ["--label", "mongodb", "--partition", "x.y.0000"], "only for --label documentdb", id="mongodb"
        ),
        pytest.param(["--label", "mongodb", "--begin"], "only for --label documentdb", id="mongodb-begin"),
        pytest.param(
            ["--label", LABEL, "--begin", "--restore"], "neither --restore nor --seal", id="begin-restore"
        ),
        pytest.param(
            ["--label", LABEL, "--finish", "--seal"], "neither --restore nor --seal", id="finish-seal"
        ),
        pytest.param(
            ["--label", LABEL, "--begin", "--finish"],
            "--begin and --finish exclude each other",
            id="two-steps",
        ),
        pytest.param(
            ["--label", LABEL, "--finish", "--databases", "x"], "--databases goes with --begin", id="db"
        ),
        pytest.param(
            ["--label", LABEL, "--partition", " "],
            "--partition needs a partition id of the sync plan (--begin prints them)",
            id="blank-partition",
        ),
        pytest.param(["--label", LABEL, "--partition", "x.y.0000"], "no begun backup", id="not-begun"),
        pytest.param(["--label", LABEL, "--finish"], "no begun backup", id="finish-not-begun"),
    ],
)
def test_partitioned_backup_usage_errors_exit_2_with_one_line_and_write_nothing(
    world: World, capsys: pytest.CaptureFixture[str], args: list[str], says: str
) -> None:
    assert main(world.cli("--uri", world.source_uri, *args)) == 2
    err = capsys.readouterr().err
    assert err.startswith("backover backup: ") and len(err.strip().splitlines()) == 1, err
    assert says in err
    assert not list(S3Objects(world.bucket).list_keys(world.layout.root))


def test_an_unknown_partition_id_exits_2_and_writes_nothing(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    _small_world(world)
    assert main(_cli(world, "--begin", "--databases", world.db)) == 0
    capsys.readouterr()
    before = {k: S3Objects(world.bucket).get_bytes(k) for k in keys_under(world.bucket, world.layout.root)}
    assert main(_cli(world, "--partition", f"{world.db}.items.0099")) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and f"no partition '{world.db}.items.0099'" in err, err
    after = {k: S3Objects(world.bucket).get_bytes(k) for k in keys_under(world.bucket, world.layout.root)}
    assert after == before


def test_a_finish_deletes_only_its_own_parts_so_a_begin_made_while_it_ran_keeps_its_own(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = _small_world(world)
    first = begin(config(world))
    for partition in ids:
        dump_partition(config(world), partition)
    real, again = partitioned.conclude, []

    def begun_again_meanwhile(*args: Any, **kwargs: Any) -> Any:
        """The group cleared and begun again while the first finish writes its manifest."""
        again.append(begin(config(world)))
        dump_partition(config(world), ids[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(partitioned, "conclude", begun_again_meanwhile)
    assert finish(config(world)).begin_id == first.begin_id
    monkeypatch.setattr(partitioned, "conclude", real)
    (second,) = again
    kept = keys_under(world.bucket, world.layout.backup_parts_prefix(LABEL, second.begin_id))
    assert len(kept) == 2  # the second begin's part of ids[0] and its record
    assert not keys_under(world.bucket, world.layout.backup_parts_prefix(LABEL, first.begin_id))

    for partition in ids[1:]:
        dump_partition(config(world), partition)
    done = finish(config(world))  # no partition dumped again: the first finish left its part
    assert done.begin_id == second.begin_id and not done.already_finished
    load(LoadConfig(world.target_db_uri, world.layout, LABEL))
    assert raw_contents(world.target, world.db) == raw_contents(world.source, world.db)


def _ddl_world(world: World) -> list[str]:
    """gone, again, kept (a unique index): 7 documents each, planned in partitions of 3; the ids."""
    for name in ("gone", "again", "kept"):
        world.source[world.db][name].insert_many([{"_id": i, "in": name, "n": i} for i in range(7)])
    world.source[world.db].kept.create_index("n", unique=True, name="n_unique")
    return write_plan(world, "gone", "again", "kept", size=3).partition_ids()


def test_a_collection_dropped_or_dropped_and_created_again_between_begin_and_finish_restores_at_f(
    world: World, migration: Migration
) -> None:
    db = world.source[world.db]
    ids = _ddl_world(world)
    begun = begin(config(world))
    assert begun.capture_seq is not None and begun.partitions == ids
    half = len(ids) // 2
    for partition in ids[:half]:
        dump_partition(config(world), partition)
    # Between the partitions: one planned collection dropped, another dropped and created again
    # with other documents (other _ids, another type among them), written to after.
    db.gone.update_one({"_id": 1}, {"$set": {"changed": True}})
    db.drop_collection("gone")
    db.drop_collection("again")
    db.again.insert_many([{"_id": i, "second": True} for i in range(4, 12)] + [{"_id": "s"}])
    db.again.create_index("second", name="by_second")
    for partition in ids[half:]:
        dump_partition(config(world), partition)
    db.again.delete_one({"_id": 5})
    finished = finish(config(world))
    assert f"{world.db}.gone" not in [c.namespace for c in finished.collections]
    db.again.update_one({"_id": 6}, {"$set": {"after": "the finish"}})
    f = migration.freeze()
    frozen = raw_contents(world.source, world.db)
    migration.drain(f)

    result = load(LoadConfig(world.target_db_uri, world.layout, LABEL))
    assert result.replay is not None and result.replay.consistent_at == f
    assert raw_contents(world.target, world.db) == frozen  # byte for byte, every document
    target = world.target[world.db]
    assert sorted(target.list_collection_names()) == ["again", "kept"]
    assert target.kept.index_information()["n_unique"]["unique"] is True
    # As after any replayed drop (docs: change streams carry no createIndexes): only _id.
    assert list(target.again.index_information()) == ["_id_"]


def test_a_rename_between_begin_and_finish_is_refused_by_the_restore_and_nothing_is_written(
    world: World, migration: Migration
) -> None:
    ids = _ddl_world(world)
    begin(config(world))
    for partition in ids:
        dump_partition(config(world), partition)
    world.source.admin.command("renameCollection", f"{world.db}.kept", to=f"{world.db}.kept2")
    finish(config(world))
    f = migration.freeze()
    migration.drain(f)
    with pytest.raises(JobFailed, match=f"{world.db}.kept was renamed at .* while the dump ran"):
        load(LoadConfig(world.target_db_uri, world.layout, LABEL))
    assert world.target[world.db].list_collection_names() == []
