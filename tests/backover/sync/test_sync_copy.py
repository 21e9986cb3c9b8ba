"""The copy: byte-identical documents, every index option, resumable partitions, idempotent reruns,
and one partition per worker."""

from __future__ import annotations

import datetime

import bson
import pytest
from bson.code import Code
from bson.decimal128 import Decimal128
from bson.int64 import Int64
from bson.objectid import ObjectId
from bson.raw_bson import RawBSONDocument
from bson.regex import Regex
from bson.timestamp import Timestamp
from restore_streams import raw_contents

from backover import state
from backover.bsonvalues import RAW, raw_collection
from backover.lease import Lease, LeaseHeld
from backover.state import SyncComplete, SyncPartitionState, SyncPlan
from backover.sync import SyncState
from backover.sync.ttl import HELD
from backover.verify.indexes import index_specs


class Crash(BaseException):
    """A copy that dies between two batches (nothing after it runs: no final checkpoint)."""


def _odd_documents() -> list[bytes]:
    """Documents whose bytes a decode and re-encode would change: field order, Int32/Int64/double,
    Decimal128 scale, binary subtypes, regex flags, code, timestamps, an _id that is not first."""
    docs = [
        {"_id": 1, "b": 1, "a": Int64(1), "c": 1.0, "d": Decimal128("1.10"), "e": bson.Binary(b"\x01", 0x80)},
        {"_id": Int64(2), "r": Regex("^a", "imx"), "js": Code("x"), "ts": Timestamp(5, 6), "n": None},
        {"_id": "three", "nested": {"z": 1, "y": [1, {"x": 2}]}, "big": "x" * 20_000},
        {"_id": ObjectId(), "when": datetime.datetime(2024, 5, 1, tzinfo=datetime.UTC)},
    ]
    raw = [bson.encode(d) for d in docs]
    raw.append(bson.encode({"a": 1, "_id": 5.5}))  # the stand-in moves _id first, as mongod does
    return raw


INDEXES = [
    ({"email": 1}, {"name": "email_1", "unique": True}),
    ({"nick": 1}, {"name": "nick_sparse", "sparse": True}),
    ({"a": 1, "b": -1}, {"name": "a_b"}),
    ({"created": 1}, {"name": "ttl", "expireAfterSeconds": 3600}),
    ({"score": 1}, {"name": "partial", "partialFilterExpression": {"score": {"$gt": 5}}}),
    ({"where": "2dsphere"}, {"name": "geo"}),
    ({"text": "text"}, {"name": "words", "default_language": "english", "weights": {"text": 3}}),
]


def _seed_two_collections(world, n: int = 50) -> None:
    db = world.source[world.db]
    for key, options in INDEXES:
        db.users.create_index(list(key.items()), **options)
    db.users.insert_many(
        [
            {
                "_id": i,
                "email": f"u{i}@example.org",
                "a": i % 3,
                "b": i,
                "score": i,
                "where": {"type": "Point", "coordinates": [i % 90, i % 45]},
                "text": f"word{i} and more",
            }
            for i in range(n)
        ]
    )
    raw_collection(world.source, world.db, "odd").insert_many(
        [RawBSONDocument(r, RAW) for r in _odd_documents()]
    )


def test_every_document_is_copied_byte_for_byte_with_every_index_option(world) -> None:
    _seed_two_collections(world)
    world.start()
    result = world.sync(partition_documents=7, batch_size=4)

    assert result.state is SyncState.COMPLETE and not result.already_complete
    assert raw_contents(world.target, world.db) == raw_contents(world.source, world.db)
    for coll in ("users", "odd"):
        source = index_specs(raw_collection(world.source, world.db, coll))
        target = index_specs(raw_collection(world.target, world.db, coll))
        if "ttl" in source:  # held back until the cutover (backover.sync.ttl): only its expiry differs
            assert dict(target.pop("ttl")) == {**dict(source.pop("ttl")), "expireAfterSeconds": HELD}
        assert target == source, coll
    assert set(index_specs(raw_collection(world.target, world.db, "users"))) == {"_id_"} | {
        o["name"] for _, o in INDEXES
    }
    done = state.read(world.s3, world.layout.sync_complete, SyncComplete)
    assert done is not None and done.documents == 55 and done.skipped_duplicates == 0
    assert done.per_collection[f"{world.db}.users"]["documents"] == 50
    assert done.partitions == len(result.partitions) == 8 + 3  # 50 / 7 -> 8 ranges; odd: 3 brackets
    plan = state.read(world.s3, world.layout.sync_plan, SyncPlan)
    assert plan is not None and plan.documents == 55


def test_a_completed_sync_run_again_prints_its_totals_and_changes_nothing(world) -> None:
    _seed_two_collections(world, n=10)
    world.start()
    first = world.sync(partition_documents=4)
    before = {k: world.s3.head(k)["ETag"] for k in world.keys()}
    contents = raw_contents(world.target, world.db)

    again = world.sync(partition_documents=4)
    assert again.state is SyncState.COMPLETE and again.already_complete
    assert again.complete is not None and again.complete.documents == first.complete.documents == 15
    assert {k: world.s3.head(k)["ETag"] for k in world.keys()} == before  # no object rewritten
    assert raw_contents(world.target, world.db) == contents
    for options in ({"partition": first.partitions[0]}, {"plan_only": True}, {"if_needed": True}):
        assert world.sync(**options).already_complete


def test_a_copy_killed_between_batches_resumes_after_its_last_id(world) -> None:
    world.source[world.db].c.insert_many([{"_id": i, "v": "x" * 100} for i in range(60)])
    world.start()
    batches: list[int] = []

    def crash_after_three(cp) -> None:
        batches.append(cp.documents)
        if len(batches) == 3:
            raise Crash

    with pytest.raises(Crash):
        world.sync(crash_after_three, partition_documents=40, batch_size=10)
    pid = f"{world.db}.c.0000"
    saved = world.checkpoint(pid)
    assert saved is not None and saved.state is SyncPartitionState.RUNNING and saved.documents == 30
    assert bson.decode(saved.last_id)["_id"] == 29
    assert world.target[world.db].c.count_documents({}) == 30
    assert world.s3.head(world.layout.sync_complete) is None

    result = world.sync(partition_documents=40, batch_size=10)
    first = result.copied[0]
    assert first.partition == pid and first.resumed and first.copied_now == 10 and first.already_copied == 0
    cp = world.checkpoint(pid)
    assert cp is not None and cp.runs == 2 and cp.documents == 40 and cp.state is SyncPartitionState.COMPLETED
    assert result.state is SyncState.COMPLETE and result.complete.documents == 60
    assert raw_contents(world.target, world.db) == raw_contents(world.source, world.db)


def test_a_checkpoint_behind_the_writes_counts_the_documents_already_there_once(world) -> None:
    """The checkpoint is saved after the writes: a crash can leave it a few batches behind them.
    The documents between are met again as duplicate _ids: counted once, never inserted twice."""
    world.source[world.db].c.insert_many([{"_id": i} for i in range(50)])
    world.start()
    snapshots: list[dict] = []

    def crash_after_four(cp) -> None:
        snapshots.append(cp.to_json())
        if len(snapshots) == 4:
            raise Crash

    with pytest.raises(Crash):
        world.sync(crash_after_four, batch_size=10)
    pid = f"{world.db}.c.0000"
    state.write(
        world.s3, world.layout.sync_partition(pid), state.SyncPartitionCheckpoint.from_json(snapshots[1], "x")
    )
    result = world.sync(batch_size=10)
    (part,) = result.copied
    assert (part.already_copied, part.copied_now, part.documents) == (20, 10, 50)
    assert raw_contents(world.target, world.db) == raw_contents(world.source, world.db)


def test_partitions_copied_one_by_one_as_workers_would_complete_the_sync_once(world) -> None:
    world.source[world.db].c.insert_many([{"_id": i} for i in range(25)])
    world.start()
    planned = world.sync(plan_only=True, partition_documents=10)
    assert planned.state is SyncState.PLANNED and len(planned.partitions) == 3
    assert world.target[world.db].list_collection_names() == ["c"]  # created, empty: no copy yet
    assert world.target[world.db].c.count_documents({}) == 0

    held = Lease(
        world.s3, world.layout.sync_partition_lease(planned.partitions[1]), role="sync", migration_id="x"
    )
    held.acquire()
    with pytest.raises(LeaseHeld, match="another sync holds"):
        world.sync(partition=planned.partitions[1])
    held.release()

    for pid in reversed(planned.partitions):
        result = world.sync(partition=pid)
        assert [r.partition for r in result.copied] == [pid]
        assert result.state is (SyncState.COMPLETE if pid == planned.partitions[0] else SyncState.COPYING)
    assert raw_contents(world.target, world.db) == raw_contents(world.source, world.db)
    assert world.sync().already_complete


def test_backover_status_shows_how_far_the_sync_got(world) -> None:
    from backover.replication.status import status

    world.source[world.db].c.insert_many([{"_id": i} for i in range(25)])
    assert status(world.layout, world.s3)["sync"] is None  # no plan: no sync
    world.start()
    planned = world.sync(plan_only=True, partition_documents=10)
    world.sync(partition=planned.partitions[0])
    halfway = status(world.layout, world.s3)["sync"]
    assert halfway["partitions"] == 3 and halfway["partitions_completed"] == 1
    assert (halfway["documents_planned"], halfway["documents_copied"], halfway["complete"]) == (25, 10, False)
    world.sync()
    done = status(world.layout, world.s3)["sync"]
    assert (done["partitions_completed"], done["documents_copied"], done["complete"]) == (3, 25, True)
    assert done["completed_at"] is not None and done["skipped_duplicates"] == 0
