"""A DocumentDB backup taken while the application writes and the capture runs, made consistent at F
by the captured changes in (B, F]: restored into an empty MongoDB, it is the frozen source byte for
byte, after ``backover clean`` too (from the sealed copies); events after the stop are never
applied; missing segments are refused before any write; a failed replay leaves the target as it was.

The capture is the real replicator (on a thread); writes land in the middle of the dump through the
dump's progress reports, which come after each batch (the stand-in reads a collection when its
``find`` starts, so a write then is missing from that collection's dump and present in the next
ones'), and after it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from backup_world import World, every_type
from bson.timestamp import Timestamp
from pymongo.database import Database
from replicate_testkit import (
    checkpoint,
    config_for,
    enable_change_streams,
    operation_time,
    request_drain,
    start_thread,
    start_time,
    wait_until,
    write_start,
)
from restore_streams import raw_contents

from backover import state
from backover.backup import dump
from backover.backup.dump import BackupConfig, BackupResult, backup
from backover.backup.load import LoadConfig, LoadResult, load
from backover.backup.names import STAGING_PREFIX
from backover.backup.seal import seal
from backover.cleanup.job import CleanConfig, clean
from backover.cli import main
from backover.errors import JobFailed
from backover.s3objects import S3Objects
from backover.state import BackupManifest, FreezeRecord

LABEL = "documentdb"


class Migration:
    """T0, the real replicator capturing the source's database on a thread, the freeze, the drain."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.s3 = S3Objects(world.bucket)
        enable_change_streams(world.source, world.db)
        write_start(self.s3, world.layout, start_time(world.source), [world.db])
        self.replicator = start_thread(config_for(world.layout, world.source_uri, max_events=7))

    def freeze(self) -> Timestamp:
        """F: the source's cluster time once the writes stopped, in state/freeze.json."""
        f = operation_time(self.world.source)
        state.write(
            self.s3, self.world.layout.freeze_state, FreezeRecord(self.world.layout.migration_id, f=f)
        )
        return f

    def drain(self, until: Timestamp) -> None:
        request_drain(self.s3, self.world.layout, until)
        assert self.replicator.wait().state == "drained"

    def captured_up_to(self, when: Timestamp) -> None:
        """Wait (a deadline, not a speed check) until the capture's position is at or after ``when``."""
        wait_until(
            lambda: (
                (cp := checkpoint(self.s3, self.world.layout)) is not None
                and cp.last_cluster_time is not None
                and cp.last_cluster_time >= when
            ),
            what="the capture to reach the stop",
        )


@pytest.fixture
def migration(world: World) -> Iterator[Migration]:
    made = Migration(world)
    yield made
    made.replicator.stop.set()
    made.replicator.thread.join(30)


def seed(db: Database) -> None:
    """The source before T0: a unique key, a secondary index, every BSON type."""
    db.accounts.insert_many([{"_id": i, "email": f"u{i}@shop", "n": i} for i in range(1, 31)])
    db.accounts.create_index("email", unique=True, name="email_unique")
    db.b_archive.insert_many([{"_id": i} for i in range(5)])
    db.notes.insert_many([{"_id": f"n{i}", "text": "x" * i} for i in range(10)])
    db.notes.create_index("text", name="by_text")
    db.orders.insert_many([every_type(i) for i in range(12)])


def swap_emails(db: Database, a: int, b: int) -> None:
    """Two accounts exchange their unique e-mails (through a third value, as the index demands)."""
    email_a = db.accounts.find_one({"_id": a})["email"]
    email_b = db.accounts.find_one({"_id": b})["email"]
    db.accounts.update_one({"_id": a}, {"$set": {"email": "swapping@shop"}})
    db.accounts.update_one({"_id": b}, {"$set": {"email": email_a}})
    db.accounts.update_one({"_id": a}, {"$set": {"email": email_b}})


def while_accounts_dumped(db: Database) -> None:
    """accounts is read already: these writes are missing from its dump; the others read them later."""
    db.accounts.update_one({"_id": 1}, {"$set": {"n": 100}})
    db.accounts.delete_one({"_id": 2})
    db.accounts.insert_one({"_id": 31, "email": "u31@shop", "n": 31})
    swap_emails(db, 3, 4)
    db.accounts.replace_one({"_id": 5}, {"email": "u5@shop", "replaced": True})
    db.orders.delete_one({"_id": every_type(0)["_id"]})
    db.orders.insert_one(every_type(50))
    db.orders.update_one({"_id": every_type(1)["_id"]}, {"$set": {"status": "paid"}})
    db.notes.update_one({"_id": "n1"}, {"$set": {"text": "edited"}})
    db.notes.delete_one({"_id": "n2"})
    db.fresh.insert_one({"_id": 1, "created": "during the dump"})  # listed before it existed


def while_notes_dumped(db: Database) -> None:
    db.drop_collection("b_archive")  # dumped already
    swap_emails(db, 6, 7)
    db.accounts.delete_one({"_id": 8})
    db.notes.update_one({"_id": "n3"}, {"$set": {"text": "again"}})
    db.notes.delete_one({"_id": "n4"})
    db.orders.replace_one({"_id": every_type(2)["_id"]}, {"replaced": "during the dump"})


def after_the_dump(db: Database) -> None:
    swap_emails(db, 9, 10)
    db.accounts.update_many({"_id": {"$lte": 20}}, {"$inc": {"n": 1}})
    db.accounts.insert_one({"_id": 32, "email": "u2@shop", "n": 32})  # the deleted account's e-mail
    db.accounts.delete_one({"_id": 11})
    db.client.admin.command("renameCollection", f"{db.name}.notes", to=f"{db.name}.notes2")
    db.notes2.update_one({"_id": "n5"}, {"$set": {"text": "renamed"}})
    db.orders.delete_one({"_id": every_type(3)["_id"]})
    db.drop_collection("fresh")
    db.fresh.insert_one({"_id": 2, "created": "after the drop"})


@pytest.fixture
def writes_during_the_dump(
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[[dict[str, Callable[[], None]]], None]:
    """``arm({collection: writes})``: ``writes`` run once, after the first batch of that collection."""

    def arm(plan: dict[str, Callable[[], None]]) -> None:
        class WritingProgress(dump.Progress):
            def collection(self, namespace: str) -> Any:
                report = super().collection(namespace)
                writes = plan.pop(namespace.split(".", 1)[1], None)

                def writing(documents: int, raw_bytes: int, final: bool) -> None:
                    nonlocal writes
                    if writes is not None:
                        writes, run = None, writes
                        run()
                    report(documents, raw_bytes, final)

                return writing

        monkeypatch.setattr(dump, "Progress", WritingProgress)

    return arm


def live_backup(world: World, arm: Callable[[dict[str, Callable[[], None]]], None]) -> BackupResult:
    db = world.source[world.db]
    arm({"accounts": lambda: while_accounts_dumped(db), "notes": lambda: while_notes_dumped(db)})
    config = BackupConfig(world.source_db_uri, world.layout, LABEL, (world.db,), parallel=1, batch_size=5)
    return backup(config)


def restore(world: World, **options: Any) -> LoadResult:
    return load(LoadConfig(world.target_db_uri, world.layout, LABEL, **options))


def test_a_backup_taken_while_writes_go_on_restores_identical_to_the_frozen_source_after_clean(
    world: World, migration: Migration, writes_during_the_dump: Any
) -> None:
    db = world.source[world.db]
    seed(db)
    taken = live_backup(world, writes_during_the_dump)
    after_the_dump(db)
    f = migration.freeze()
    frozen = raw_contents(world.source, world.db)
    migration.drain(f)

    manifest = state.read(migration.s3, world.layout.backup_manifest(LABEL), BackupManifest)
    assert manifest is not None and manifest.b == taken.b and manifest.capture_seq is not None
    assert manifest.collections == [f"{world.db}.{c}" for c in ("accounts", "b_archive", "notes", "orders")]
    sealed = seal(world.layout, LABEL)
    assert sealed.sealed and sealed.f == f and sealed.copied > 1
    again = seal(world.layout, LABEL)  # idempotent: copies nothing, changes nothing
    assert (again.copied, again.already_there) == (0, sealed.copied)
    clean(CleanConfig(world.layout, force=True))
    assert not list(migration.s3.list_keys(world.layout.changes_prefix))

    result = restore(world)
    assert raw_contents(world.target, world.db) == frozen  # byte for byte, every document
    assert result.replay is not None and result.replay.consistent_at == f
    assert "sealed copies" in result.replay.segments_from and result.replay.events_replayed > 0
    target = world.target[world.db]
    assert sorted(target.list_collection_names()) == ["accounts", "fresh", "notes2", "orders"]
    assert target.accounts.index_information()["email_unique"]["unique"] is True
    assert "by_text" in target.notes2.index_information()  # the index followed the rename


def test_the_replay_stops_at_until_or_f_and_never_applies_a_later_change(
    world: World, migration: Migration, writes_during_the_dump: Any
) -> None:
    db = world.source[world.db]
    seed(db)
    live_backup(world, writes_during_the_dump)
    swap_emails(db, 12, 13)
    db.orders.update_one({"_id": every_type(4)["_id"]}, {"$set": {"before": "the stop"}})
    until = operation_time(world.source)
    at_until = raw_contents(world.source, world.db)
    migration.captured_up_to(until)  # the changes up to the stop are read (their lookups too)
    db.accounts.delete_one({"_id": 14})
    db.accounts.insert_one({"_id": 40, "email": "u14@shop"})
    db.orders.insert_one(every_type(60))
    f = migration.freeze()
    at_f = raw_contents(world.source, world.db)
    db.accounts.insert_one({"_id": 41, "email": "after-f@shop"})  # another user, after the freeze
    db.notes.delete_many({})
    beyond = operation_time(world.source)
    migration.drain(beyond)  # the segments hold changes after F
    assert at_until != at_f != raw_contents(world.source, world.db)

    early = restore(world, until=until)  # not sealed: from changes/
    assert raw_contents(world.target, world.db) == at_until
    assert early.replay is not None and early.replay.consistent_at == until
    assert "changes/" in early.replay.segments_from

    at_freeze = restore(world, drop=True)
    assert raw_contents(world.target, world.db) == at_f
    assert at_freeze.replay is not None and at_freeze.replay.consistent_at == f


def _target_state(world: World) -> dict[str, Any]:
    database = world.target[world.db]
    return {
        "contents": raw_contents(world.target, world.db),
        "collections": sorted(database.list_collection_names()),
    }


def test_missing_segments_are_refused_with_exit_2_before_any_write(
    world: World, migration: Migration, writes_during_the_dump: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    db = world.source[world.db]
    seed(db)
    live_backup(world, writes_during_the_dump)
    f = migration.freeze()
    migration.drain(f)
    world.target[world.db].orders.insert_one({"_id": "the target's own"})
    before = _target_state(world)
    manifest = state.read(migration.s3, world.layout.backup_manifest(LABEL), BackupManifest)
    assert manifest is not None and manifest.capture_seq is not None
    gone = world.layout.segment(manifest.capture_seq + 2, "zstd")
    migration.s3.delete_keys([gone])

    args = ["--uri", world.target_uri, "--label", LABEL, "--restore", "--drop"]
    assert main(world.cli(*args)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not all there" in err[0] and gone in err[0], err
    assert _target_state(world) == before
    assert main(world.cli("--label", LABEL, "--seal")) == 2  # nor can it be sealed any more
    assert "cannot seal" in capsys.readouterr().err
    assert state.read(migration.s3, world.layout.backup_manifest(LABEL), BackupManifest) == manifest


def test_a_failure_during_the_replay_leaves_the_target_as_it_was(
    world: World, migration: Migration, writes_during_the_dump: Any
) -> None:
    db = world.source[world.db]
    seed(db)
    live_backup(world, writes_during_the_dump)
    after_the_dump(db)
    f = migration.freeze()
    migration.drain(f)
    seal(world.layout, LABEL)
    target = world.target[world.db]
    target.accounts.insert_many([{"_id": i, "email": "old"} for i in range(3)])
    target.notes.insert_one({"_id": "kept"})
    before = _target_state(world)
    manifest = state.read(migration.s3, world.layout.backup_manifest(LABEL), BackupManifest)
    assert manifest is not None and manifest.sealed_through_seq is not None
    copy = world.layout.backup_segment(LABEL, manifest.sealed_through_seq, "zstd")
    body, metadata = migration.s3.get_object(copy) or (b"", {})
    migration.s3.put_bytes(copy, body[:-1] + bytes([body[-1] ^ 1]), metadata)  # one bit flipped

    with pytest.raises(JobFailed, match=copy):
        restore(world, drop=True)
    assert _target_state(world) == before
    assert not [n for n in target.list_collection_names() if n.startswith(STAGING_PREFIX)]


def test_a_backup_without_b_or_of_a_migration_not_frozen_restores_the_dump_alone(
    world: World, migration: Migration, caplog: pytest.LogCaptureFixture
) -> None:
    db = world.source[world.db]
    seed(db)
    backup(BackupConfig(world.source_db_uri, world.layout, LABEL, (world.db,)))
    dumped = raw_contents(world.source, world.db)
    db.accounts.delete_many({})
    with caplog.at_level("INFO", logger="backover"):
        result = restore(world)
    assert result.replay is None and raw_contents(world.target, world.db) == dumped
    assert "not made consistent at F: the migration is not frozen" in caplog.text

    migration.s3.delete_keys([world.layout.backup_manifest(LABEL)])  # as a backup taken before B existed
    caplog.clear()
    with caplog.at_level("INFO", logger="backover"):
        result = restore(world, drop=True)
    assert result.replay is None and raw_contents(world.target, world.db) == dumped
    assert "not made consistent at F: there is no" in caplog.text and "its B is unknown" in caplog.text


def test_a_rename_while_the_dump_ran_is_refused_and_nothing_is_written(
    world: World, migration: Migration, writes_during_the_dump: Any
) -> None:
    db = world.source[world.db]
    seed(db)
    rename = lambda: db.client.admin.command(  # noqa: E731
        "renameCollection", f"{world.db}.accounts", to=f"{world.db}.people"
    )
    writes_during_the_dump({"notes": rename})
    backup(BackupConfig(world.source_db_uri, world.layout, LABEL, (world.db,), parallel=1, batch_size=5))
    f = migration.freeze()
    migration.drain(f)
    with pytest.raises(JobFailed, match=f"{world.db}.accounts was renamed at .* while the dump ran"):
        restore(world)
    assert world.target[world.db].list_collection_names() == []
