"""Replay rules end to end: real change events captured from the DocumentDB stand-in, written as
segments to S3 (moto), restored into the MongoDB stand-in, compared byte for byte."""

from __future__ import annotations

import datetime
import uuid

import bson
import pytest
from bson import Binary, Code, DBRef, Decimal128, Int64, MaxKey, MinKey, ObjectId, Regex, Timestamp
from bson.datetime_ms import DatetimeMS
from bson.raw_bson import RawBSONDocument
from restore_streams import RAW, capture, raw_contents

from backover.errors import JobFailed
from backover.restore import RestoreConfig, run_restore
from backover.restore.job import PlanSummary


def every_type(i: int) -> dict:
    return {
        "int32": i,
        "int64": Int64(2**40 + i),
        "double": 1.5,
        "neg_zero": -0.0,
        "nan": float("nan"),
        "inf": float("-inf"),
        "dec": Decimal128("1.10"),
        "dec_scale": Decimal128("1.100"),
        "s": "héllo ✓",
        "oid": ObjectId(),
        "t": True,
        "f": False,
        "none": None,
        "date": datetime.datetime(2024, 2, 29, 12, 0, 0, 123000),
        "far_date": DatetimeMS(2**62),
        "ts": Timestamp(1_764_270_000, 7),
        "re": Regex("^a.*z$", "imsx"),
        "bin": Binary(b"\x00\x01", 0),
        "uuid": Binary(uuid.uuid4().bytes, 4),
        "user_bin": Binary(b"x", 128),
        "code": Code("f()"),
        "code_scope": Code("g(x)", {"x": 1}),
        "min": MinKey(),
        "max": MaxKey(),
        "ref": DBRef("other", ObjectId(), "db"),
        "nested": {"a": {"b": [1, {"c": Int64(1)}]}},
        "empty": {},
        "arr": [],
        "mixed": [1, "a", None, 1.0, Decimal128("0E-6143")],
    }


IDS = [
    ObjectId(),
    "string-id",
    42,
    Int64(43),
    44.5,
    {"compound": 1, "k": "v"},
    Binary(uuid.uuid4().bytes, 4),
    Decimal128("45"),
]


def test_inserts_updates_replaces_and_deletes_of_every_type_replay_byte_for_byte(
    sides, migration, restore
) -> None:
    def actions(db) -> None:
        db.docs.insert_many([{"_id": _id, **every_type(i)} for i, _id in enumerate(IDS)])
        db.docs.update_one({"_id": IDS[0]}, {"$set": {"int32": Int64(5), "nested.a.b.1.c": 2}})
        db.docs.update_one({"_id": 42}, {"$inc": {"int32": 1}, "$unset": {"nan": ""}})
        db.docs.replace_one({"_id": "string-id"}, {"only": Decimal128("-0.0")})
        db.docs.delete_one({"_id": Int64(43)})
        db.other.insert_one({"_id": 1, "x": 1})

    events = capture(sides.source, sides.db, actions)
    assert len(events) == len(IDS) + 5
    migration.write_segments(events, per_segment=3)
    result = restore(workers=3, window=4)
    assert raw_contents(sides.target, sides.db) == raw_contents(sides.source, sides.db)
    assert result.state == "completed" and result.events_applied == len(events)
    checkpoint = migration.restore_checkpoint()
    assert checkpoint["state"] == "completed" and checkpoint["last_applied_seq"] == 5
    # how far the target is: the cluster time of the last event applied
    assert checkpoint["applied_cluster_time"] == RawBSONDocument(events[-1])["clusterTime"]
    assert checkpoint["per_namespace"][f"{sides.db}.docs"] == {
        "insert": len(IDS),
        "update": 2,
        "replace": 1,
        "delete": 1,
    }


def test_an_update_whose_document_is_gone_changes_nothing_and_the_delete_follows(
    sides, migration, restore
) -> None:
    def actions(db) -> None:
        db.c.insert_many([{"_id": 1, "v": 0}, {"_id": 2, "v": 0}])
        db.c.update_one({"_id": 1}, {"$set": {"v": 1}})
        db.c.delete_one({"_id": 1})

    events = capture(sides.source, sides.db, actions)  # read after the delete: updateLookup finds nothing
    migration.write_segments(events, per_segment=10)
    result = restore(window=1)
    assert raw_contents(sides.target, sides.db) == raw_contents(sides.source, sides.db)
    assert result.per_namespace[f"{sides.db}.c"]["lookup_null"] == 1


@pytest.mark.parametrize("window", [1, 100])
def test_a_null_lookup_update_already_reflected_by_an_earlier_image_is_no_error(
    sides, migration, restore, window: int
) -> None:
    """The replicator read the first update while the document already held later changes
    (its updateLookup image has ``a: 5``); the next updates were read after the delete (null).
    Replaying ``$set: {a.b: 1}`` onto ``a: 5`` is refused: that change is already reflected."""
    source = sides.source.get_database(sides.db, codec_options=RAW)
    events = []
    with source.watch(full_document="updateLookup", batch_size=1, max_await_time_ms=20) as stream:
        sides.source[sides.db].c.insert_one({"_id": 1, "a": {}})
        sides.source[sides.db].c.update_one({"_id": 1}, {"$set": {"w": 1}})
        sides.source[sides.db].c.update_one({"_id": 1}, {"$set": {"a.b": 1}})
        sides.source[sides.db].c.update_one({"_id": 1}, {"$set": {"a": 5}})
        events += [stream.next().raw, stream.next().raw]  # the insert, and the first update (a: 5)
        sides.source[sides.db].c.delete_one({"_id": 1})
        while (event := stream.try_next()) is not None:
            events.append(event.raw)
    assert [bson.decode(e).get("fullDocument", "-") is None for e in events] == [
        False,
        False,
        True,
        True,
        False,
    ]
    migration.write_segments(events, per_segment=10)
    result = restore(window=window)
    assert raw_contents(sides.target, sides.db) == raw_contents(sides.source, sides.db) == {}
    assert result.already_reflected == (
        1 if window == 1 else 0
    )  # a window ending with the delete writes only it


def test_an_update_before_a_rename_is_not_lost_when_its_lookup_comes_back_null(
    sides, migration, restore
) -> None:
    """updateLookup after the rename finds nothing under the old name, yet the document lives on
    under the new one: skipping the update (as the design card's rule says) would lose it."""

    def actions(db) -> None:
        db.c.insert_many([{"_id": i, "v": 0} for i in range(3)])
        db.c.update_one({"_id": 1}, {"$set": {"v": 1, "new.field": True}})
        db.c.rename("d")

    events = capture(sides.source, sides.db, actions)
    migration.write_segments(events, per_segment=2)
    result = restore(window=2)
    assert raw_contents(sides.target, sides.db) == raw_contents(sides.source, sides.db)
    assert result.per_namespace[f"{sides.db}.c"]["lookup_null"] == 1


def test_update_descriptions_replay_dotted_paths_unset_fields_and_truncated_arrays(
    sides, migration, restore
) -> None:
    def actions(db) -> None:
        db.c.insert_one(
            {
                "_id": 1,
                "a": {"b": {"c": 1, "d": 2}},
                "arr": [1, 2, 3, 4, 5],
                "gone": True,
                "list": [{"x": 1}, {"x": 2}],
            }
        )
        db.c.update_one({"_id": 1}, {"$set": {"a.b.c": Int64(10), "a.new": [1]}, "$unset": {"gone": ""}})
        db.c.update_one({"_id": 1}, {"$pop": {"arr": 1}})
        db.c.update_one({"_id": 1}, {"$pull": {"arr": 2}, "$set": {"list.1.x": "two"}})
        db.c.update_one({"_id": 1}, {"$set": {"arr": [9]}})
        db.c.update_one({"_id": 1}, {"$push": {"arr": {"$each": [7, 8]}}, "$unset": {"a.b.d": ""}})

    events = capture(sides.source, sides.db, actions, lookup=False)
    assert all(b"fullDocument" not in e for e in events[1:])
    descriptions = [bson.decode(e)["updateDescription"] for e in events[1:]]
    assert any(d["truncatedArrays"] for d in descriptions) and any(d["removedFields"] for d in descriptions)
    assert any("." in path for d in descriptions for path in d["updatedFields"])
    migration.write_segments(events, per_segment=2)
    restore(window=2, workers=2)
    assert raw_contents(sides.target, sides.db) == raw_contents(sides.source, sides.db)


def test_drop_rename_and_drop_database_are_replayed_as_barriers(sides, migration, restore) -> None:
    def actions(db) -> None:
        db.a.insert_many([{"_id": i} for i in range(3)])
        db.b.insert_one({"_id": "old"})
        db.a.rename("b", dropTarget=True)  # drop of b, then the rename
        db.a.insert_one({"_id": "new a"})
        db.b.update_one({"_id": 1}, {"$set": {"moved": True}})
        db.tmp.insert_one({"_id": 1})
        db.tmp.drop()

    events = capture(sides.source, sides.db, actions)
    assert [e for e in events if b"rename" in e]
    migration.write_segments(events, per_segment=4)
    result = restore(window=100)
    assert raw_contents(sides.target, sides.db) == raw_contents(sides.source, sides.db)
    assert sorted(raw_contents(sides.target, sides.db)) == ["a", "b"]
    assert result.per_namespace[f"{sides.db}.a"]["rename"] == 1

    # replaying everything again (segments whose DDL was applied before) changes nothing
    restore(window=100, from_seq=1)
    assert raw_contents(sides.target, sides.db) == raw_contents(sides.source, sides.db)


def test_drop_database_is_replayed(sides, migration, restore) -> None:
    def actions(db) -> None:
        db.a.insert_one({"_id": 1})
        db.client.drop_database(db.name)

    # a database-level stream ends with invalidate after dropDatabase; the replicator watches the
    # cluster, where it does not: leave it out
    events = [e for e in capture(sides.source, sides.db, actions) if b"invalidate" not in e]
    sides.target[sides.db].a.insert_one({"_id": "was there before"})
    migration.write_segments(events, per_segment=10)
    result = restore()
    assert sides.db not in sides.target.list_database_names()
    assert result.per_namespace[sides.db] == {"dropDatabase": 1}


def test_an_invalidate_stops_the_restore_with_a_clear_error(sides, migration, restore) -> None:
    def actions(db) -> None:
        db.c.insert_one({"_id": 1})
        db.client.drop_database(db.name)

    events = capture(sides.source, sides.db, actions)
    assert b"invalidate" in events[-1]
    migration.write_segments(events, per_segment=100)
    with pytest.raises(JobFailed, match=r"000000000001\.bson\.zst event \d+: invalidate"):
        restore()
    checkpoint = migration.restore_checkpoint()
    assert checkpoint["state"] == "failed" and "invalidate" in checkpoint["reason"]
    assert checkpoint["last_applied_seq"] == 0


def test_a_second_run_changes_nothing_and_a_full_replay_gives_the_same_state(
    sides, migration, restore
) -> None:
    def actions(db) -> None:
        db.c.insert_many([{"_id": i, "v": i} for i in range(20)])
        for i in range(0, 20, 3):
            db.c.update_one({"_id": i}, {"$set": {"v": -i}})
        db.c.delete_many({"_id": {"$gt": 15}})

    events = capture(sides.source, sides.db, actions)
    migration.write_segments(events, per_segment=7)
    restore(workers=2, window=5)
    expected = raw_contents(sides.source, sides.db)
    assert raw_contents(sides.target, sides.db) == expected
    again = restore(workers=2, window=5)
    assert again.segments_applied == 0 and again.writes == 0 and again.state == "completed"
    replay = restore(workers=4, window=3, from_seq=1)
    assert replay.segments_applied == replay.last_seq == 5
    assert raw_contents(sides.target, sides.db) == expected


def test_dry_run_prints_the_plan_and_writes_nothing(sides, migration) -> None:
    def actions(db) -> None:
        db.c.insert_many([{"_id": i} for i in range(4)])
        db.c.update_one({"_id": 1}, {"$set": {"x": 1}})
        db.c.rename("d")

    events = capture(sides.source, sides.db, actions)
    migration.write_segments(events, per_segment=2)
    plan = run_restore(RestoreConfig(layout=migration.layout, dry_run=True), s3=migration.s3)
    assert isinstance(plan, PlanSummary)
    assert plan.segments == 3 and plan.events == 6 and plan.writes == 5
    assert plan.per_namespace == {f"{sides.db}.c": {"insert": 4, "update": 1, "lookup_null": 1, "rename": 1}}
    assert plan.ddl == [{"segment": 3, "op": "rename", "ns": f"{sides.db}.c", "to": f"{sides.db}.d"}]
    assert sides.db not in sides.target.list_database_names()
    assert migration.restore_checkpoint() is None
