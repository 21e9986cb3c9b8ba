"""The plan's partitions as scopes for verify and backup: the partitions and the rests together
hold every document exactly once, including documents inserted after the plan with an ``_id`` of
a bracket it did not see, collections created after it, and collections empty when planned; the
partitions of some namespaces, and the one check that a pass's later steps still have the plan its
begin read."""

from __future__ import annotations

import dataclasses
import datetime

import bson
import pytest
from bson.objectid import ObjectId

from backover.bsonvalues import DECODE, canonical_key, raw_collection
from backover.errors import JobFailed
from backover.namespaces import Namespace
from backover.state import SyncCollection, SyncPlan
from backover.sync.plan import partitions_of
from backover.sync.scopes import (
    Scope,
    begun_plan,
    partition_scope,
    partitioned,
    plan_partitions,
    rest_scopes,
)


def _ids(world, scope: Scope) -> list:
    return [
        canonical_key(bson.decode(bytes(d.raw), DECODE)["_id"])
        for d in raw_collection(world.source, scope.ns.db, scope.ns.coll).find(scope.filter, {"_id": 1})
    ]


def _plan(world, *colls: str, size: int = 3) -> SyncPlan:
    collections = []
    for coll in colls:
        parts, total = partitions_of(world.source, world.db, coll, size)
        collections.append(SyncCollection(world.db, coll, documents=total, partitions=parts))
    return SyncPlan(
        world.layout.migration_id,
        t0=bson.timestamp.Timestamp(1, 1),
        partition_documents=size,
        created_at=datetime.datetime.now(datetime.UTC),
        collections=collections,
    )


def test_partitions_and_rests_hold_every_document_once_after_writes_past_the_plan(world) -> None:
    db = world.source[world.db]
    db.mixed.insert_many([{"_id": i} for i in [*range(7), "a", "b", "c", "d"]])
    db.plain.insert_many([{"_id": i} for i in range(8)])
    db.empty.insert_one({"_id": 0})
    db.empty.delete_one({"_id": 0})
    plan = _plan(world, "mixed", "plain", "empty")
    # After the plan: _ids of brackets the plan did not see, and a new collection.
    db.mixed.insert_many([{"_id": ObjectId()}, {"_id": True}, {"_id": 99}, {"_id": "z"}])
    db.plain.insert_many([{"_id": "late"}, {"_id": ObjectId()}, {"_id": 100}])
    db.empty.insert_one({"_id": 1})
    db.created_later.insert_many([{"_id": 1}, {"_id": "x"}])

    names = [Namespace(world.db, c) for c in ("created_later", "empty", "mixed", "plain")]
    scopes = [partition_scope(plan, pid) for pid in plan.partition_ids()] + rest_scopes(plan, names)
    for ns in names:
        seen = [key for s in scopes if s.ns == ns for key in _ids(world, s)]
        everything = _ids(world, Scope(ns, {}))
        assert sorted(map(repr, seen)) == sorted(map(repr, everything)), ns  # each document once
    rests = {str(s.ns): s for s in rest_scopes(plan, names)}
    assert set(rests) == {f"{world.db}.created_later", f"{world.db}.empty", f"{world.db}.mixed"}
    assert rests[f"{world.db}.created_later"].filter == {} and rests[f"{world.db}.empty"].filter == {}
    assert len(_ids(world, rests[f"{world.db}.mixed"])) == 2  # the ObjectId and the bool: unseen brackets
    assert partitioned(plan, Namespace(world.db, "plain")) and not partitioned(
        plan, Namespace(world.db, "empty")
    )
    assert rest_scopes(None, names) == [Scope(ns, {}) for ns in names]  # no plan: everything is rest


def test_the_partitions_of_some_namespaces_and_the_check_that_the_plan_is_the_begun_one(world) -> None:
    world.source[world.db].a.insert_many([{"_id": i} for i in range(7)])
    world.source[world.db].b.insert_many([{"_id": i} for i in range(4)])
    plan = _plan(world, "a", "b")
    of_a = [p.id for p in plan.collections[0].partitions]
    assert len(of_a) == 3 and plan_partitions(plan, None) == plan.partition_ids()
    assert plan_partitions(plan, [Namespace(world.db)]) == plan.partition_ids()  # a database: all of it
    assert plan_partitions(plan, [Namespace(world.db, "a")]) == of_a
    assert plan_partitions(plan, [Namespace("other")]) == [] == plan_partitions(None, None)

    within = [Namespace(world.db, "a")]
    assert begun_plan(plan, plan.created_at, of_a, within, begun="the pass X", again="begin") is plan
    assert begun_plan(None, None, [], within, begun="the pass X", again="begin") is None
    later = dataclasses.replace(plan, created_at=plan.created_at + datetime.timedelta(seconds=1))
    for now, created_at, ids, why in [
        (later, plan.created_at, of_a, "it was made again"),
        (None, plan.created_at, of_a, "it is gone"),
        (plan, None, [], "there was none then"),
        (plan, plan.created_at, of_a[:2], "its partitions are not the ones recorded then"),
    ]:
        with pytest.raises(JobFailed) as refused:
            begun_plan(now, created_at, ids, within, begun="the pass X", again="`begin`")
        assert (
            str(refused.value) == f"the sync plan is not the one the pass X read ({why}): run `begin` again"
        )
