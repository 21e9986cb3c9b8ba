"""The sync plan: partitions by type bracket, bounds found by walking the ``_id`` index, counts that
add up, ranges that read every document exactly once (NaN included), the record read back."""

from __future__ import annotations

import datetime
import math

import bson
import pytest
from bson.decimal128 import Decimal128
from bson.int64 import Int64
from bson.objectid import ObjectId

from backover import extjson, state
from backover.bsonvalues import DECODE, canonical_key, raw_collection
from backover.state import SyncPlan
from backover.sync import ranges
from backover.sync.plan import partitions_of

MIXED_IDS = [
    *range(10),  # int32
    Int64(10),
    10.5,
    Decimal128("11"),
    float("nan"),
    float("-inf"),
    *(f"k{i:02d}" for i in range(7)),
    *(ObjectId() for _ in range(5)),
    datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC),
    datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC),
    {"a": 1},
    True,
]


def _ids_of(world, coll: str, filter) -> list:
    return [
        bson.decode(bytes(d.raw), DECODE)["_id"]
        for d in raw_collection(world.source, world.db, coll).find(filter, {"_id": 1})
    ]


def test_a_collection_is_split_per_type_bracket_and_its_ranges_read_each_document_once(world) -> None:
    world.source[world.db].mixed.insert_many([{"_id": i, "n": n} for n, i in enumerate(MIXED_IDS)])
    partitions, total = partitions_of(world.source, world.db, "mixed", 4)

    assert total == len(MIXED_IDS)
    assert [p.id for p in partitions] == [f"{world.db}.mixed.{i:04d}" for i in range(len(partitions))]
    by_bracket: dict[str, list] = {}
    for p in partitions:
        by_bracket.setdefault(p.bracket, []).append(p)
    assert list(by_bracket) == ["number", "string", "object", "objectId", "bool", "date"]
    assert [len(v) for v in by_bracket.values()] == [4, 2, 1, 2, 1, 1]  # 15 numbers, 7 strings, 5 oids
    assert all(p.types for p in partitions)  # several brackets: each range carries its $type
    assert sum(p.estimated_documents for p in partitions) == total  # the counts add up
    seen: list = []
    for p in partitions:
        got = _ids_of(world, "mixed", ranges.id_filter(p.types, p.lower, p.upper))
        assert len(got) == p.estimated_documents, p.shown  # every bound but a bracket's last: 4 apart
        seen += got
    keys = [canonical_key(i) for i in seen]
    assert len(keys) == len(set(keys)) == len(MIXED_IDS)  # each document in exactly one range
    assert any(isinstance(i, float) and math.isnan(i) for i in seen)  # NaN sorts first: in range 0


def test_a_single_bracket_collection_needs_no_type_condition(world) -> None:
    world.source[world.db].orders.insert_many([{"_id": i} for i in range(10)])
    partitions, total = partitions_of(world.source, world.db, "orders", 4)
    assert total == 10
    assert [(p.types, p.estimated_documents) for p in partitions] == [([], 4), ([], 4), ([], 2)]
    assert ranges.id_filter([], partitions[0].lower, partitions[0].upper) != {}
    one, _ = partitions_of(world.source, world.db, "orders", 100)
    assert len(one) == 1 and ranges.id_filter(one[0].types, one[0].lower, one[0].upper) == {}
    assert partitions_of(world.source, world.db, "absent", 4) == ([], 0)


def test_a_resumed_range_goes_on_after_its_last_id_even_after_nan(world) -> None:
    ids = [float("nan"), float("-inf"), -1, 0, 1.5, Int64(2)]
    world.source[world.db].c.insert_many([{"_id": i} for i in ids])
    last_nan = ranges.id_document(bson.encode({"_id": float("nan")}))
    after = _ids_of(world, "c", ranges.id_filter([], None, None, last_nan))
    assert after == [float("-inf"), -1, 0, 1.5, 2]
    last_zero = ranges.id_document(bson.encode({"_id": 0}))
    assert _ids_of(
        world, "c", ranges.id_filter(["double", "int", "long", "decimal"], None, None, last_zero)
    ) == [1.5, 2]
    upper = ranges.id_document(bson.encode({"_id": 0}))
    first = _ids_of(world, "c", ranges.id_filter([], None, upper))
    assert len(first) == 3 and math.isnan(first[0])  # NaN, -inf and -1 are below 0


@pytest.mark.parametrize(
    "value",
    [5, Int64(5), 5.0, Decimal128("5.10"), "x", ObjectId(), bson.Binary(b"\x00", 4), {"b": 1, "a": 2}, None],
)
def test_raw_bounds_survive_the_plan_record_exactly(bucket, value) -> None:
    from backover.s3objects import S3Objects
    from backover.state import SyncCollection, SyncPartition

    bound = ranges.id_document(bson.encode({"_id": value}))
    plan = SyncPlan(
        migration_id="m",
        t0=bson.Timestamp(1, 2),
        partition_documents=4,
        created_at=state.utc_now(),
        collections=[SyncCollection("d", "c", partitions=[SyncPartition("d.c.0000", "number", lower=bound)])],
    )
    s3 = S3Objects(bucket)
    state.write(s3, "x/plan.json", plan)
    back = state.read(s3, "x/plan.json", SyncPlan)
    assert back is not None and back.collections[0].partitions[0].lower == bound
    assert extjson.loads(extjson.dumps(plan.to_json()))["format_version"] == 1
