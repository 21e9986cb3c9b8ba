"""Reads (find, getMore, aggregate, count, distinct) as MongoDB answers them, written with plain
pymongo so they run unchanged against a real server (see conftest.py).

Where the stand-in refuses a feature a real server implements, the case asserts the real answer
on a real server and the refusal on a stand-in (``target.standin is not None``): 40415 on the
mongodb flavour; on the documentdb flavour DocumentDB's 303 for what DocumentDB lacks.
"""

from __future__ import annotations

import pytest
from bson import Int64
from bson.max_key import MaxKey
from bson.min_key import MinKey
from pymongo.errors import OperationFailure

UNKNOWN_FIELD = 40415  # mongod: "BSON field '<cmd>.<field>' is an unknown field."
DOCUMENTDB_NOT_SUPPORTED = 303


def _fails(code: int, call, *args, **kwargs) -> OperationFailure:
    with pytest.raises(OperationFailure) as info:
        call(*args, **kwargs)
    assert info.value.code == code, info.value.details
    return info.value


def _refused_by_standin(target, call, *args, documentdb_has_it: bool = False, **kwargs) -> OperationFailure:
    """A stand-in's refusal of a feature it does not run: 40415 (mongodb flavour, or a feature
    DocumentDB has), 303 on the documentdb flavour for one DocumentDB lacks."""
    assert target.standin is not None
    code = UNKNOWN_FIELD if target.flavour == "mongodb" or documentdb_has_it else DOCUMENTDB_NOT_SUPPORTED
    return _fails(code, call, *args, **kwargs)


def _ids(docs) -> list:
    return [d["_id"] for d in docs]


# -- projections ----------------------------------------------------------------------------------
def test_projection_inclusion_and_exclusion_rules(client, db_name):
    coll = client[db_name].c
    coll.insert_one({"_id": 1, "a": 1, "b": 2})
    assert list(coll.find({}, {"_id": 1})) == [{"_id": 1}]
    assert list(coll.find({}, {"_id": True})) == [{"_id": 1}]
    assert list(coll.find({}, {"_id": 0})) == [{"a": 1, "b": 2}]
    assert list(coll.find({}, {"a": 1, "_id": 0})) == [{"a": 1}]
    assert list(coll.find({}, {"b": 1})) == [{"_id": 1, "b": 2}]
    assert list(coll.find({}, {"a": 0, "_id": 1})) == [{"_id": 1, "b": 2}]
    assert list(coll.find({}, {})) == [{"_id": 1, "a": 1, "b": 2}]


def test_projection_mixing_inclusion_and_exclusion_fails(client, db_name):
    coll = client[db_name].c
    coll.insert_one({"_id": 1, "a": 1, "b": 2})
    _fails(31254, list, coll.find({}, {"a": 1, "b": 0}))  # exclusion in an inclusion projection
    _fails(31253, list, coll.find({}, {"a": 0, "b": 1}))  # inclusion in an exclusion projection


def test_projection_of_a_literal_is_computed_or_refused(client, target, db_name):
    coll = client[db_name].c
    coll.insert_one({"_id": 1, "a": 1})
    if target.standin is None:  # MongoDB 4.4+: a non-boolean, non-numeric value is an expression
        assert list(coll.find({}, {"a": "x"})) == [{"_id": 1, "a": "x"}]
        return
    _refused_by_standin(target, list, coll.find({}, {"a": "x"}), documentdb_has_it=True)


# -- sort order over arrays -----------------------------------------------------------------------
SORT_DOCS = [
    {"_id": 1, "a": []},
    {"_id": 2, "a": None},
    {"_id": 3},
    {"_id": 4, "a": 5},
    {"_id": 5, "a": [1, 9]},
    {"_id": 6, "a": MinKey()},
    {"_id": 7, "a": "x"},
    {"_id": 8, "a": MaxKey()},
]
# Ascending: an array sorts by its smallest element, an empty array right after MinKey (before
# null and missing); descending: an array by its largest element.
ASCENDING = [6, 1, 2, 3, 5, 4, 7, 8]
DESCENDING = [8, 7, 5, 4, 2, 3, 1, 6]


def _null_ties(ids: list) -> list:
    """null and missing are equal sort keys: their relative order is the server's."""
    return [("null" if i in (2, 3) else i) for i in ids]


def test_find_sort_uses_array_min_ascending_and_max_descending(client, db_name):
    coll = client[db_name].c
    coll.insert_many(SORT_DOCS)
    assert _null_ties(_ids(coll.find({}, sort=[("a", 1)]))) == _null_ties(ASCENDING)
    assert _null_ties(_ids(coll.find({}, sort=[("a", -1)]))) == _null_ties(DESCENDING)


def test_aggregate_sort_uses_array_min_ascending_and_max_descending(client, db_name):
    coll = client[db_name].c
    coll.insert_many(SORT_DOCS)
    up = coll.aggregate([{"$sort": {"a": 1}}])
    down = coll.aggregate([{"$sort": {"a": -1}}])
    assert _null_ties(_ids(up)) == _null_ties(ASCENDING)
    assert _null_ties(_ids(down)) == _null_ties(DESCENDING)


def test_sort_through_an_array_of_documents_and_compound_keys(client, db_name):
    coll = client[db_name].c
    coll.insert_many(
        [
            {"_id": 1, "a": [{"x": 1, "y": 1}, {"x": 2, "y": 5}]},
            {"_id": 2, "a": [{"x": 1, "y": 3}]},
            {"_id": 3, "a": [{"x": 0}, {"y": 9}]},
        ]
    )
    # keys of _id 1: (1, 1), (2, 5); _id 2: (1, 3); _id 3: (0, null), (null, 9)
    # ascending x, descending y: the smallest key of each: 3 -> (null, 9), 2 -> (1, 3), 1 -> (1, 1)
    assert _ids(coll.find({}, sort=[("a.x", 1), ("a.y", -1)])) == [3, 2, 1]
    assert _ids(coll.aggregate([{"$sort": {"a.x": 1, "a.y": -1}}])) == [3, 2, 1]


def test_sort_on_parallel_arrays_fails(client, db_name):
    coll = client[db_name].c
    coll.insert_one({"_id": 1, "a": [1, 2], "b": [3, 4]})
    _fails(2, list, coll.find({}, sort=[("a", 1), ("b", 1)]))


def test_sort_specification_errors(client, db_name):
    coll = client[db_name].c
    coll.insert_one({"_id": 1})
    _fails(15975, list, coll.find({}, sort=[("a", 2)]))
    _fails(15974, list, coll.find({}, sort=[("a", "up")]))
    _fails(15975, coll.aggregate, [{"$sort": {"a": 0}}])
    _fails(15974, coll.aggregate, [{"$sort": {"a": "up"}}])


# -- batches, limits, cursors ---------------------------------------------------------------------
def test_find_batch_size_zero_returns_an_open_cursor_and_nothing(client, db_name):
    db = client[db_name]
    db.c.insert_many([{"_id": i} for i in range(5)])
    reply = db.command("find", "c", batchSize=0)
    assert reply["cursor"]["firstBatch"] == []
    assert reply["cursor"]["id"] != 0
    more = db.command("getMore", Int64(reply["cursor"]["id"]), collection="c")
    assert _ids(more["cursor"]["nextBatch"]) == [0, 1, 2, 3, 4]
    assert more["cursor"]["id"] == 0


def test_aggregate_batch_size_zero_returns_an_open_cursor_and_nothing(client, db_name):
    db = client[db_name]
    db.c.insert_many([{"_id": i} for i in range(5)])
    reply = db.command("aggregate", "c", pipeline=[{"$sort": {"_id": 1}}], cursor={"batchSize": 0})
    assert reply["cursor"]["firstBatch"] == []
    assert reply["cursor"]["id"] != 0
    more = db.command("getMore", Int64(reply["cursor"]["id"]), collection="c", batchSize=2)
    assert _ids(more["cursor"]["nextBatch"]) == [0, 1]
    more = db.command("getMore", Int64(reply["cursor"]["id"]), collection="c", batchSize=0)
    assert _ids(more["cursor"]["nextBatch"]) == [2, 3, 4]


def test_negative_skip_limit_and_batch_size_fail(client, db_name):
    db = client[db_name]
    db.c.insert_many([{"_id": i} for i in range(3)])
    for field in ("skip", "limit", "batchSize"):
        _fails(51024, db.command, "find", "c", **{field: -1})
    _fails(51024, db.command, "aggregate", "c", pipeline=[], cursor={"batchSize": -1})
    reply = db.command("find", "c", batchSize=1)
    _fails(51024, db.command, "getMore", Int64(reply["cursor"]["id"]), collection="c", batchSize=-1)


def test_single_batch_and_limits(client, db_name):
    db = client[db_name]
    db.c.insert_many([{"_id": i} for i in range(5)])
    reply = db.command("find", "c", batchSize=2, singleBatch=True)
    assert _ids(reply["cursor"]["firstBatch"]) == [0, 1]
    assert reply["cursor"]["id"] == 0
    reply = db.command("find", "c", batchSize=0, singleBatch=True)
    assert reply["cursor"]["firstBatch"] == []
    assert reply["cursor"]["id"] == 0
    reply = db.command("find", "c", limit=3, batchSize=2)
    assert _ids(reply["cursor"]["firstBatch"]) == [0, 1]
    more = db.command("getMore", Int64(reply["cursor"]["id"]), collection="c")
    assert _ids(more["cursor"]["nextBatch"]) == [2]
    assert more["cursor"]["id"] == 0
    reply = db.command("find", "c", batchSize=1.9)  # a double is truncated
    assert _ids(reply["cursor"]["firstBatch"]) == [0]
    _fails(14, db.command, "find", "c", batchSize=True)
    _fails(14, db.command, "find", "c", singleBatch=1)
    # pymongo sends a negative limit as limit + singleBatch
    assert _ids(db.c.find({}, limit=-2, batch_size=10)) == [0, 1]


# -- hint, min, max, returnKey, showRecordId, unknown fields --------------------------------------
def test_hint_of_a_missing_index_fails(client, db_name):
    db = client[db_name]
    db.c.insert_many([{"_id": 1, "a": 2}, {"_id": 2, "a": 1}])
    for hint in ("a_1", {"a": 1}):
        error = _fails(2, db.command, "find", "c", hint=hint)
        assert "hint provided does not correspond to an existing index" in str(error)
        _fails(2, db.command, "count", "c", hint=hint)
        _fails(2, db.command, "aggregate", "c", pipeline=[], cursor={}, hint=hint)


def test_hint_of_an_index_scans_in_index_order(client, db_name):
    coll = client[db_name].c
    coll.insert_many([{"_id": 1, "a": 3}, {"_id": 2, "a": 1}, {"_id": 3, "a": 2}])
    coll.create_index([("a", 1)])
    assert _ids(coll.find({}).hint("a_1")) == [2, 3, 1]
    assert _ids(coll.find({}).hint([("a", 1)])) == [2, 3, 1]
    assert _ids(coll.find({}).hint([("$natural", -1)])) == [3, 2, 1]
    assert coll.count_documents({"a": {"$gt": 1}}, hint="a_1") == 2
    assert _ids(coll.aggregate([{"$match": {}}], hint="a_1")) == [2, 3, 1]


def test_min_max_return_key_and_show_record_id_are_run_or_refused(client, target, db_name):
    db = client[db_name]
    db.c.insert_many([{"_id": i, "a": i} for i in range(4)])
    db.c.create_index([("a", 1)])
    cases = {
        "min": {"min": {"a": 1}, "hint": "a_1"},
        "max": {"max": {"a": 2}, "hint": "a_1"},
        "returnKey": {"returnKey": True, "hint": "a_1"},
        "showRecordId": {"showRecordId": True},
    }
    if target.standin is None:
        batches = {
            name: db.command("find", "c", **args)["cursor"]["firstBatch"] for name, args in cases.items()
        }
        assert _ids(batches["min"]) == [1, 2, 3]
        assert _ids(batches["max"]) == [0, 1]
        assert batches["returnKey"] == [{"a": i} for i in range(4)]
        assert all("$recordId" in d for d in batches["showRecordId"])
        return
    for args in cases.values():
        _refused_by_standin(target, db.command, "find", "c", **args)
    # the fields' neutral values change nothing and are accepted
    reply = db.command("find", "c", returnKey=False, showRecordId=False, min={}, max={})
    assert _ids(reply["cursor"]["firstBatch"]) == [0, 1, 2, 3]


def test_unknown_fields_of_reads_fail(client, target, db_name):
    db = client[db_name]
    db.c.insert_one({"_id": 1, "a": 1})
    calls = [
        ("find", {"bogusField": 1}),
        ("aggregate", {"pipeline": [], "cursor": {}, "bogusField": 1}),
        ("count", {"bogusField": 1}),
        ("distinct", {"key": "a", "bogusField": 1}),
    ]
    for name, args in calls:
        if target.flavour == "documentdb":  # DocumentDB names what it does not support
            with pytest.raises(OperationFailure):
                db.command(name, "c", **args)
        else:
            error = _fails(UNKNOWN_FIELD, db.command, name, "c", **args)
            assert f"BSON field '{name}.bogusField' is an unknown field" in str(error)


def test_fields_without_an_observable_effect_are_accepted(client, db_name):
    db = client[db_name]
    db.c.insert_one({"_id": 1, "a": 1})
    reply = db.command(
        "find",
        "c",
        comment="x",
        maxTimeMS=1000,
        allowDiskUse=True,
        noCursorTimeout=False,
        hint={"$natural": 1},
    )
    assert _ids(reply["cursor"]["firstBatch"]) == [1]
    reply = db.command(
        "aggregate", "c", pipeline=[], cursor={}, comment="x", maxTimeMS=1000, allowDiskUse=True
    )
    assert _ids(reply["cursor"]["firstBatch"]) == [1]
    assert db.command("count", "c", comment="x", maxTimeMS=1000, fields={"a": 1})["n"] == 1
    assert db.command("distinct", "c", key="a", comment="x", maxTimeMS=1000)["values"] == [1]


# -- collation --------------------------------------------------------------------------------------
STRENGTH_2 = {"locale": "en", "strength": 2}


def test_collation_is_honoured_or_refused(client, target, db_name):
    db = client[db_name]
    db.c.insert_one({"_id": 1, "x": "ping"})
    calls = [
        (db.command, ("find", "c"), {"filter": {"x": "PING"}}),
        (db.command, ("aggregate", "c"), {"pipeline": [{"$match": {"x": "PING"}}], "cursor": {}}),
        (db.command, ("count", "c"), {"query": {"x": "PING"}}),
        (db.command, ("distinct", "c"), {"key": "x", "query": {"x": "PING"}}),
    ]
    if target.flavour == "mongodb" and target.standin is None:
        assert _ids(db.c.find({"x": "PING"}, collation=STRENGTH_2)) == [1]
        assert db.command("count", "c", query={"x": "PING"}, collation=STRENGTH_2)["n"] == 1
        return
    for call, args, kwargs in calls:
        error = _fails(
            UNKNOWN_FIELD if target.flavour == "mongodb" else DOCUMENTDB_NOT_SUPPORTED,
            call,
            *args,
            collation=STRENGTH_2,
            **kwargs,
        )
        if target.flavour == "documentdb":
            assert "collation" in str(error)


def test_simple_collation_compares_binary(client, target, db_name):
    if target.flavour == "documentdb":
        pytest.skip("DocumentDB refuses every collation option (test_collation_is_honoured_or_refused)")
    coll = client[db_name].c
    coll.insert_one({"_id": 1, "x": "ping"})
    assert _ids(coll.find({"x": "PING"}, collation={"locale": "simple"})) == []
    assert _ids(coll.find({"x": "ping"}, collation={"locale": "simple"})) == [1]


# -- explain, views ---------------------------------------------------------------------------------
def test_aggregate_explain_is_a_plan_or_refused(client, target, db_name):
    db = client[db_name]
    db.c.insert_one({"_id": 1})
    if target.standin is None:
        reply = db.command("aggregate", "c", pipeline=[{"$match": {}}], explain=True)
        assert "cursor" not in reply
        return
    _refused_by_standin(
        target, db.command, "aggregate", "c", pipeline=[{"$match": {}}], explain=True, documentdb_has_it=True
    )
    _fails(59, db.command, "explain", {"find": "c"})  # the stand-in does not know the command


def test_a_view_answers_its_pipeline_or_is_refused_at_create(client, target, db_name):
    """MongoDB runs views; DocumentDB has none (303 on its stand-in); the mongodb stand-in refuses
    to create one (40415) rather than answer from an empty collection."""
    db = client[db_name]
    db.c.insert_many([{"_id": 1, "a": 1}, {"_id": 2, "a": 2}])
    if target.name == "real-mongodb":
        db.command("create", "v", viewOn="c", pipeline=[{"$match": {"a": 2}}])
        assert db.v.count_documents({}) == 1
        assert _ids(db.v.find()) == [2]
        return
    with pytest.raises(OperationFailure) as e:
        db.command("create", "v", viewOn="c", pipeline=[{"$match": {"a": 2}}])
    if target.name == "standin-mongodb":
        assert e.value.code == 40415
    elif target.name == "standin-documentdb":
        assert e.value.code == 303
    assert "v" not in db.list_collection_names()


# -- distinct, aggregation stages -------------------------------------------------------------------
def test_distinct_values_along_a_path(client, db_name):
    """mongod's distinct_semantics.js cases (without an index)."""
    db = client[db_name]
    cases = [
        ([{}], "a", []),
        ([{"a": []}], "a", []),
        ([{"a": None}], "a", [None]),
        ([{"a": {}}], "a", [{}]),
        ([{"a": [[]]}], "a", [[]]),
        (
            [{"a": [2, 3]}, {"a": 1}, {"a": 2}, {"a": [1, [2, 3]]}, {"a": [3, "str"]}],
            "a",
            [1, 2, 3, "str", [2, 3]],
        ),
        (
            [{"a": 0}, {"a": [1, 2]}, {"a": [1, 3]}, {"a": [[2, 3], "str"]}, {"a": [[[4]], None]}],
            "a.0",
            [1, 2, 3, [4]],
        ),
        (
            [
                {"a": [{"b": {"c": 1}}, {"b": {"c": [2, 20]}}, {"b": {"c": [3]}}]},
                {"a": {"b": [{"c": [3, 30]}, {"c": [4]}]}},
                {"a": {"b": {"c": [1, 10]}}},
            ],
            "a.b.c",
            [1, 2, 3, 4, 10, 20, 30],
        ),
        (
            [
                {"a": [{"b": [{"c": 2}, {"c": [1, 10]}]}, {"b": [{"c": 3}, {"c": 4}]}]},
                {"a": [{"b": [{"c": 5}, {"c": 10}]}]},
                {"a": [{"b": [{"c": 6}]}]},
                {"a": {"b": {"c": 7}}},
            ],
            "a.0.b.1.c",
            [1, 10],
        ),
        (
            [
                {"a": {"b": {"c": 0}}},
                {"x": 0},
                {"a": 1},
                {"a": None},
                {"a": []},
                {"a": {"x": 2}},
                {"a": {"b": 3}},
            ]
            + [{"a": {"b": None}}, {"a": {"b": {"x": 4}}}, {"a": {"b": []}}],
            "a.b.c",
            [0],
        ),
    ]
    for n, (docs, key, expected) in enumerate(cases):
        coll = db[f"c{n}"]
        if docs:
            coll.insert_many(docs)
        values = coll.distinct(key)
        assert len(values) == len(expected), (key, docs, values)
        assert all(v in values for v in expected), (key, docs, values)


def test_aggregate_project_follows_the_projection_rules(client, db_name):
    coll = client[db_name].c
    coll.insert_one({"_id": 1, "a": 1, "b": 2})
    assert list(coll.aggregate([{"$project": {"_id": 0}}])) == [{"a": 1, "b": 2}]
    assert list(coll.aggregate([{"$project": {"_id": 1}}])) == [{"_id": 1}]
    assert list(coll.aggregate([{"$project": {"a": 1, "_id": 0}}])) == [{"a": 1}]
    _fails(31254, coll.aggregate, [{"$project": {"a": 1, "b": 0}}])


def test_aggregation_stages_the_standin_does_not_run_are_refused(client, target, db_name):
    coll = client[db_name].c
    coll.insert_one({"_id": 1, "a": [1, 2]})
    if target.standin is None:
        assert len(list(coll.aggregate([{"$unwind": "$a"}]))) == 2
        return
    _fails(40324, coll.aggregate, [{"$unwind": "$a"}])
    _fails(40324, coll.aggregate, [{"$noSuchStage": {}}])


def test_count_skip_and_limit(client, db_name):
    db = client[db_name]
    db.c.insert_many([{"_id": i} for i in range(5)])
    assert db.command("count", "c", skip=1, limit=-2)["n"] == 2  # a negative limit counts as positive
    assert db.command("count", "c", skip=4)["n"] == 1
    _fails(9, db.command, "count", "c", skip=-1)  # FailedToParse: "Expected a non-negative number"
    _fails(2, db.command, "count", "c", limit="x")


# -- equality on a unique index (the restore's holder lookups; the stand-in uses the index) -------
def test_equality_on_unique_index_finds_exactly_what_a_scan_finds(client, db_name):
    coll = client[db_name].c
    coll.create_index("email", unique=True)
    coll.create_index([("org", 1), ("n", 1)], unique=True)
    coll.insert_many(
        [
            {"_id": 1, "email": "a@x", "org": "o", "n": 1},
            {"_id": 2, "email": ["b@x", "c@x"], "org": "o", "n": 2},  # multikey: each element a key
            {"_id": 3, "email": 7, "org": "p", "n": 1},
            {"_id": 4, "org": "p", "n": 2.5},  # no e-mail: indexed as null
        ]
    )
    assert _ids(coll.find({"email": "a@x"})) == [1]
    assert _ids(coll.find({"email": {"$eq": "c@x"}})) == [2]
    assert _ids(coll.find({"email": 7.0})) == [3]  # numbers of different types are one key
    assert _ids(coll.find({"email": "a@x", "_id": {"$ne": 1}})) == []  # the rest of the filter decides
    assert _ids(coll.find({"email": "zz"})) == []
    assert _ids(coll.find({"email": None})) == [4]
    assert _ids(coll.find({"org": "p", "n": 2.5})) == [4]
    assert _ids(coll.find({"org": "p"}, sort=[("_id", 1)])) == [3, 4]  # not every field pinned
    found = coll.find({"$or": [{"email": "b@x", "_id": {"$ne": 9}}, {"email": 7}, {"email": "nobody"}]})
    assert sorted(_ids(found)) == [2, 3]
    coll.update_one({"_id": 1}, {"$set": {"email": "moved@x"}})
    assert _ids(coll.find({"email": "a@x"})) == []
    assert _ids(coll.find({"email": "moved@x"})) == [1]
    coll.delete_one({"_id": 2})
    assert _ids(coll.find({"email": "c@x"})) == []
    assert coll.count_documents({"email": "moved@x"}) == 1
    assert coll.update_one({"email": "moved@x"}, {"$set": {"seen": True}}).modified_count == 1
