"""Collections and indexes, written with plain pymongo: create options, index specifications and
how listIndexes shows them, unique, sparse, partial, multikey, TTL, text and 2dsphere indexes.

The same tests run against both stand-in flavours and, when configured, a real MongoDB or
DocumentDB (see conftest.py). Where the stand-in refuses what a real server implements, the test
asserts the real server's behaviour on a real target. TTL expiry is driven by the server's clock:
the stand-ins here run on a :class:`ManualClock`; a real server's TTL monitor would need a minute
of waiting per pass, so those tests are skipped there with a reason.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from bson import SON, Int64, Timestamp
from pymongo import MongoClient
from pymongo.errors import DuplicateKeyError, OperationFailure, WriteError

from backover_sandbox.standin.clock import ManualClock
from backover_sandbox.standin.server import ServerConfig, StandinServer, start_in_thread

UTC = datetime.UTC


def _code(call, *args, **kwargs) -> OperationFailure:
    with pytest.raises(OperationFailure) as e:
        call(*args, **kwargs)
    return e.value


def _fresh(client, db_name):
    """An empty collection (created, so that listIndexes shows its _id index)."""
    return client[db_name].create_collection("c")


def _listed(coll) -> dict[str, list[tuple[str, object]]]:
    """listIndexes as (field, value) pairs in the server's order, by index name."""
    return {ix["name"]: list(ix.items()) for ix in coll.list_indexes()}


# -- create options ------------------------------------------------------------------------------


def test_capped_collection_is_refused_or_capped(client, db_name, target):
    db = client[db_name]
    if target.flavour == "documentdb":
        error = _code(db.create_collection, "c", capped=True, size=4096, max=3)
        assert error.code == 303 and "Feature not supported: capped:true" in str(error)
        return
    if target.standin is not None:  # the stand-in does not run capped collections
        error = _code(db.create_collection, "c", capped=True, size=4096, max=3)
        assert error.code == 40415 and "create.capped" in str(error)
        assert "c" not in db.list_collection_names()
        return
    coll = db.create_collection("c", capped=True, size=4096, max=3)
    coll.insert_many([{"_id": i} for i in range(5)])
    assert [d["_id"] for d in coll.find()] == [2, 3, 4]


def test_capped_false_is_a_plain_collection(client, db_name):
    client[db_name].create_collection("c", capped=False)
    (info,) = client[db_name].list_collections()
    assert info["name"] == "c" and info["type"] == "collection"
    assert info["options"] == {}
    assert info["info"]["readOnly"] is False
    assert dict(info["idIndex"]) == {"v": 2, "key": {"_id": 1}, "name": "_id_"}


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"validator": {"$jsonSchema": {"required": ["a"]}}}, id="validator"),
        pytest.param({"validationLevel": "moderate"}, id="validationLevel"),
        pytest.param({"validationAction": "warn"}, id="validationAction"),
    ],
)
def test_validators_are_enforced_or_refused(client, db_name, target, options):
    db = client[db_name]
    if target.standin is not None:  # DocumentDB and MongoDB have validators; the stand-in does not
        error = _code(db.create_collection, "c", **options)
        field = next(iter(options))
        assert error.code == 40415 and f"create.{field}" in str(error)
        assert "c" not in db.list_collection_names()
        return
    coll = db.create_collection("c", **options)
    if "validator" in options:
        with pytest.raises(WriteError) as e:
            coll.insert_one({"b": 1})
        assert e.value.code == 121
    assert next(iter(db.list_collections()))["options"]


def test_views_are_refused_or_read(client, db_name, target):
    db = client[db_name]
    db.src.insert_many([{"_id": 1, "a": 1}, {"_id": 2, "a": 2}])
    if target.flavour == "documentdb":
        error = _code(db.create_collection, "v", viewOn="src", pipeline=[{"$match": {"a": 1}}])
        assert error.code == 303
        return
    if target.standin is not None:
        error = _code(db.create_collection, "v", viewOn="src", pipeline=[{"$match": {"a": 1}}])
        assert error.code == 40415 and "create.viewOn" in str(error)
        assert "v" not in db.list_collection_names()
        return
    db.create_collection("v", viewOn="src", pipeline=[{"$match": {"a": 1}}])
    assert db.v.count_documents({}) == 1


def test_create_options_the_standin_lacks_are_refused(client, db_name, target):
    if target.standin is None:
        pytest.skip("a real server implements these options; only the stand-in refuses them")
    db = client[db_name]
    for options in (
        {"timeseries": {"timeField": "t"}},
        {"clusteredIndex": {"key": {"_id": 1}, "unique": True}},
        {"changeStreamPreAndPostImages": {"enabled": True}},
        {"storageEngine": {"wiredTiger": {}}},
        {"expireAfterSeconds": 10},
    ):
        error = _code(db.command, SON([("create", "c"), *options.items()]))
        expected = 303 if target.flavour == "documentdb" else 40415
        assert error.code == expected, options
    assert db.list_collection_names() == []


def test_list_indexes_orders_and_normalises_options_as_mongod(client, db_name, target):
    coll = client[db_name].c
    coll.create_index("email", unique=True, sparse=1, background=True)
    coll.create_index("n", unique=False, name="by_n")
    listed = _listed(coll)
    expected = [
        ("v", 2),
        ("key", {"email": 1}),
        ("name", "email_1"),
        ("background", True),
        ("unique", True),
        ("sparse", True),
    ]
    if target.flavour == "mongodb":  # the ListIndexesReplyItem IDL's order
        assert listed["email_1"] == expected
        assert listed["by_n"] == [("v", 2), ("key", {"n": 1}), ("name", "by_n")]
    assert dict(listed["email_1"]) == dict(expected)
    assert dict(listed["by_n"]) == {"v": 2, "key": {"n": 1}, "name": "by_n"}


def test_background_is_accepted_and_unknown_options_are_197(client, db_name):
    coll = client[db_name].c
    assert coll.create_index("a", background=True) == "a_1"
    assert dict(_listed(coll)["a_1"])["background"] is True
    error = _code(coll.create_index, "b", foo=1)
    assert error.code == 197 and "'foo'" in str(error)


def test_index_options_the_standin_lacks_are_refused(client, db_name, target):
    coll = _fresh(client, db_name)
    if target.standin is None:
        pytest.skip("a real server implements storageEngine and collation on indexes")
    error = _code(coll.create_index, "a", storageEngine={"wiredTiger": {}})
    assert error.code == (303 if target.flavour == "documentdb" else 197)
    error = _code(coll.create_index, "a", collation={"locale": "fr", "strength": 2})
    assert error.code == (303 if target.flavour == "documentdb" else 197)
    assert list(_listed(coll)) == ["_id_"]


def test_index_type_and_key_checks(client, db_name):
    coll = _fresh(client, db_name)
    for keys in ([("a", 0)], [("a", "nope")], [("a", 1), ("b", "text"), ("c", "2dsphere")], [("$a", 1)]):
        assert _code(coll.create_index, keys).code == 67, keys
    assert _code(coll.create_index, "a", unique="yes").code == 14
    assert _code(coll.create_index, "a", name="_id_").code == 2
    assert _code(coll.create_index, "a", weights={"a": 1}).code == 67
    assert list(_listed(coll)) == ["_id_"]


def test_hashed_2d_and_wildcard_indexes_are_built_or_refused(client, db_name, target):
    if target.standin is None and target.flavour == "documentdb":
        pytest.skip("which of these index types a DocumentDB version builds is not asserted here")
    coll = _fresh(client, db_name)
    for keys in ([("a", "hashed")], [("p", "2d")], [("$**", 1)]):
        if target.standin is None:
            coll.create_index(keys)
            continue
        error = _code(coll.create_index, keys)
        assert error.code in ((67, 303) if target.flavour == "documentdb" else (67,)), keys
    if target.standin is not None:
        assert list(_listed(coll)) == ["_id_"]


def test_index_conflicts(client, db_name):
    coll = client[db_name].c
    coll.create_index("a", name="by_a")
    assert coll.create_index("a", name="by_a") == "by_a"  # identical: nothing to do
    reply = client[db_name].command("createIndexes", "c", indexes=[{"key": {"a": 1}, "name": "by_a"}])
    assert reply["note"] == "all indexes already exist" and reply["numIndexesAfter"] == 2
    assert _code(coll.create_index, "b", name="by_a").code == 86  # same name, other key
    assert _code(coll.create_index, "a", name="other").code == 85  # same key and signature
    assert _code(coll.create_index, "a", name="by_a", expireAfterSeconds=5).code == 85
    coll.create_index("a", name="a_unique", unique=True)  # unique is part of the signature
    assert sorted(_listed(coll)) == ["_id_", "a_unique", "by_a"]


def test_one_failing_spec_creates_no_index(client, db_name):
    db = client[db_name]
    db.c.insert_many([{"_id": 1, "k": 1}, {"_id": 2, "k": 1}])
    with pytest.raises(OperationFailure) as e:
        db.command(
            "createIndexes",
            "c",
            indexes=[{"key": {"j": 1}, "name": "j_1"}, {"key": {"k": 1}, "name": "k_1", "unique": True}],
        )
    assert e.value.code == 11000
    assert list(_listed(db.c)) == ["_id_"]


def test_id_index_spec(client, db_name):
    coll = client[db_name].c
    coll.insert_one({"_id": 1})
    reply = client[db_name].command("createIndexes", "c", indexes=[{"key": {"_id": 1}, "name": "_id_"}])
    assert reply["note"] == "all indexes already exist"
    assert _code(coll.create_index, "_id", unique=True).code == 197
    assert _code(coll.create_index, "_id", expireAfterSeconds=5).code == 197


# -- TTL indexes: the specification --------------------------------------------------------------


@pytest.mark.parametrize(
    "expire",
    [
        pytest.param("10", id="string"),
        pytest.param(True, id="bool"),
        pytest.param(-1, id="negative"),
        pytest.param(2**31, id="over-32-bits"),
        pytest.param(float("nan"), id="nan"),
    ],
)
def test_ttl_expire_after_seconds_is_validated(client, db_name, expire):
    coll = _fresh(client, db_name)
    assert _code(coll.create_index, "at", expireAfterSeconds=expire).code == 67
    assert list(_listed(coll)) == ["_id_"]


def test_ttl_on_a_compound_index_is_refused(client, db_name):
    coll = client[db_name].c
    assert _code(coll.create_index, [("at", 1), ("b", 1)], expireAfterSeconds=10).code == 67


def test_ttl_index_is_listed_with_an_int_expire_after_seconds(client, db_name):
    coll = client[db_name].c
    coll.create_index("at", expireAfterSeconds=3600.0)
    value = dict(_listed(coll)["at_1"])["expireAfterSeconds"]
    assert value == 3600 and isinstance(value, int) and not isinstance(value, Int64)


# -- TTL indexes: expiry on the server's clock ----------------------------------------------------

START = 1_800_000_000.0  # the servers' clock when they start (a whole second)


@dataclass
class Clocked:
    flavour: str
    clock: ManualClock
    server: StandinServer
    client: MongoClient

    def at(self, seconds: float) -> datetime.datetime:
        """A date ``seconds`` after the server started."""
        return datetime.datetime.fromtimestamp(START + seconds, UTC).replace(tzinfo=None)


@pytest.fixture(params=["standin-mongodb", "standin-documentdb", "real-mongodb", "real-documentdb"])
def clocked(request: pytest.FixtureRequest) -> Iterator[Clocked]:
    name = request.param
    if name.startswith("real-"):
        pytest.skip(
            "TTL expiry waits for the server's TTL monitor (a pass every 60 s): not waited for on a real server"
        )
    flavour = name.split("-", 1)[1]
    clock = ManualClock(START)
    server = start_in_thread(ServerConfig(flavour=flavour, auth=False, clock=clock))
    client = MongoClient(f"mongodb://127.0.0.1:{server.port}/?directConnection=true", retryWrites=False)
    try:
        yield Clocked(flavour, clock, server, client)
    finally:
        client.close()
        server.stop()


def test_ttl_deletes_expired_documents_on_each_monitor_pass(clocked: Clocked):
    coll = clocked.client.db.c
    coll.create_index("at", expireAfterSeconds=30)
    coll.insert_many(
        [
            {"_id": "old", "at": clocked.at(-100)},
            {"_id": "boundary", "at": clocked.at(30)},  # now - expireAfterSeconds at the first pass
            {"_id": "later", "at": clocked.at(31)},
            {"_id": "array", "at": [clocked.at(1000), clocked.at(-5)]},  # the earliest date decides
            {"_id": "string", "at": "2020-01-01"},
            {"_id": "timestamp", "at": Timestamp(1, 1)},
            {"_id": "missing"},
        ]
    )
    clocked.clock.advance(59.9)
    assert coll.count_documents({}) == 7  # the monitor has not woken up yet
    clocked.clock.advance(0.1)
    assert sorted(d["_id"] for d in coll.find()) == ["later", "missing", "string", "timestamp"]
    clocked.clock.advance(60)
    assert sorted(d["_id"] for d in coll.find()) == ["missing", "string", "timestamp"]


def test_ttl_passes_that_came_due_while_idle_are_one_pass(clocked: Clocked):
    coll = clocked.client.db.c
    coll.create_index("at", expireAfterSeconds=0)
    coll.insert_one({"_id": 1, "at": clocked.at(150)})
    coll.insert_one({"_id": 2, "at": clocked.at(181)})
    clocked.clock.advance(200)  # passes at 60, 120 and 180 came due: as of 180, only _id 1 expired
    assert [d["_id"] for d in coll.find()] == [2]


def test_ttl_deletions_are_delete_events(clocked: Clocked):
    client = clocked.client
    if clocked.flavour == "documentdb":
        client.admin.command({"modifyChangeStreams": 1, "database": "db", "collection": "", "enable": True})
    coll = client.db.c
    coll.create_index("at", expireAfterSeconds=10)
    with coll.watch(max_await_time_ms=10) as stream:
        coll.insert_many([{"_id": 2, "at": clocked.at(-1)}, {"_id": 1, "at": clocked.at(-50)}, {"_id": 3}])
        clocked.clock.advance(60)
        events = [stream.try_next() for _ in range(5)]
    events = [e for e in events if e is not None]
    assert [e["operationType"] for e in events] == ["insert"] * 3 + ["delete"] * 2
    assert [e["documentKey"] for e in events[3:]] == [{"_id": 1}, {"_id": 2}]  # oldest first


def test_ttl_partial_index_expires_only_matching_documents(clocked: Clocked):
    coll = clocked.client.db.c
    coll.create_index("at", expireAfterSeconds=0, partialFilterExpression={"kind": "session"})
    coll.insert_many(
        [{"_id": 1, "kind": "session", "at": clocked.at(0)}, {"_id": 2, "kind": "user", "at": clocked.at(0)}]
    )
    clocked.clock.advance(60)
    assert [d["_id"] for d in coll.find()] == [2]


def test_ttl_on_a_text_or_2dsphere_index_never_expires(clocked: Clocked):
    coll = clocked.client.db.c
    coll.create_index([("at", "2dsphere")], expireAfterSeconds=0)
    coll.insert_one({"_id": 1, "at": [1, 2]})
    clocked.clock.advance(120)
    assert coll.count_documents({}) == 1


# -- unique indexes: sparse, partial, arrays ------------------------------------------------------


def test_unique_partial_index_holds_only_matching_documents(client, db_name):
    coll = client[db_name].c
    coll.create_index("email", unique=True, partialFilterExpression={"active": True})
    coll.insert_many(
        [
            {"_id": 1, "email": "a", "active": True},
            {"_id": 2, "email": "a", "active": False},
            {"_id": 3, "email": "a"},
        ]
    )
    with pytest.raises(DuplicateKeyError):
        coll.insert_one({"_id": 4, "email": "a", "active": True})
    coll.update_one({"_id": 1}, {"$set": {"active": False}})  # leaves the index
    coll.insert_one({"_id": 4, "email": "a", "active": True})
    assert dict(_listed(coll)["email_1"])["partialFilterExpression"] == {"active": True}


def test_unique_sparse_indexes_skip_documents_missing_every_field(client, db_name):
    coll = client[db_name].c
    coll.create_index("email", unique=True, sparse=1)
    assert dict(_listed(coll)["email_1"])["sparse"] is True  # a safeBool: listed as a boolean
    coll.insert_many([{"_id": 1}, {"_id": 2}, {"_id": 3, "email": None}])
    with pytest.raises(DuplicateKeyError):
        coll.insert_one({"_id": 4, "email": None})  # null is indexed
    other = client[db_name].d
    other.create_index([("a", 1), ("b", 1)], unique=True, sparse=True)
    other.insert_many([{"_id": 1}, {"_id": 2}, {"_id": 3, "a": 1}])
    with pytest.raises(DuplicateKeyError):
        other.insert_one({"_id": 4, "a": 1, "b": None})


def test_partial_filter_expressions_are_validated(client, db_name, target):
    coll = client[db_name].c
    for bad in ({"a": {"$ne": 1}}, {"a": {"$exists": False}}, {"a": {"$regex": "x"}}, {"a": {"$size": 2}}):
        assert _code(coll.create_index, "k", partialFilterExpression=bad).code == 67, bad
    assert _code(coll.create_index, "k", partialFilterExpression={"a": 1}, sparse=True).code == 67
    coll.create_index(
        "k",
        name="k_eq",
        partialFilterExpression={"a": {"$gt": 1}, "b": {"$exists": True}, "c": {"$type": "string"}},
    )
    if target.flavour == "mongodb":  # MongoDB 6.0 also takes $or, $in and nested $and
        coll.create_index(
            "k", name="k_or", partialFilterExpression={"$or": [{"a": 1}, {"b": {"$in": [1, 2]}}]}
        )
    # Indexes with the same key and distinct filters coexist.
    coll.create_index("k", name="k_other", partialFilterExpression={"z": 1})
    assert {"k_eq", "k_other"} <= set(_listed(coll))


def test_unique_index_on_an_array_refuses_any_shared_element(client, db_name):
    coll = client[db_name].c
    coll.create_index("tags", unique=True)
    coll.insert_one({"_id": 1, "tags": ["a", "b"]})
    with pytest.raises(DuplicateKeyError) as e:
        coll.insert_one({"_id": 2, "tags": ["c", "b"]})
    assert e.value.details["keyValue"] == {"tags": "b"}
    coll.insert_one({"_id": 3, "tags": ["c", "c"]})  # repeats within one document are fine
    with pytest.raises(DuplicateKeyError):
        coll.insert_one({"_id": 4, "tags": "a"})
    coll.insert_many([{"_id": 5, "tags": []}, {"_id": 6, "tags": None}])  # undefined and null keys
    with pytest.raises(DuplicateKeyError):
        coll.insert_one({"_id": 7, "tags": []})
    with pytest.raises(DuplicateKeyError):
        coll.insert_one({"_id": 8})  # a missing field is null


def test_unique_compound_index_over_an_array(client, db_name):
    coll = client[db_name].c
    coll.create_index([("a", 1), ("tags", 1)], unique=True)
    coll.insert_one({"_id": 1, "a": 1, "tags": ["x", "y"]})
    with pytest.raises(DuplicateKeyError):
        coll.insert_one({"_id": 2, "a": 1, "tags": ["y", "z"]})
    coll.insert_one({"_id": 3, "a": 2, "tags": ["y"]})


def test_unique_index_through_an_array_of_documents(client, db_name):
    coll = client[db_name].c
    coll.create_index("items.sku", unique=True)
    coll.insert_one({"_id": 1, "items": [{"sku": 1}, {"sku": 2}]})
    with pytest.raises(DuplicateKeyError):
        coll.insert_one({"_id": 2, "items": [{"sku": 3}, {"sku": 2}]})
    coll.insert_one({"_id": 3, "items": [{"sku": 3}]})


def test_compound_index_refuses_parallel_arrays(client, db_name):
    coll = client[db_name].c
    coll.create_index([("a", 1), ("b", 1)])  # not unique: the keys are still made
    with pytest.raises(WriteError) as e:
        coll.insert_one({"_id": 1, "a": [1, 2], "b": [3, 4]})
    assert e.value.code == 171
    coll.insert_one({"_id": 2, "a": [1, 2], "b": 3})
    with pytest.raises(WriteError) as e:
        coll.update_one({"_id": 2}, {"$set": {"b": [3]}})
    assert e.value.code == 171
    client[db_name].d.insert_one({"_id": 1, "a": [1], "b": [2]})
    assert _code(client[db_name].d.create_index, [("a", 1), ("b", 1)]).code == 171


def test_unique_index_builds_index_each_array_element(client, db_name):
    coll = client[db_name].c
    coll.insert_many([{"_id": 1, "tags": ["a", "b"]}, {"_id": 2, "tags": ["b"]}])
    assert _code(coll.create_index, "tags", unique=True).code == 11000
    assert list(_listed(coll)) == ["_id_"]
    other = client[db_name].d
    other.insert_many([{"_id": 1, "items": [{"sku": 1}]}, {"_id": 2, "items": [{"sku": 2}, {"sku": 3}]}])
    other.create_index("items.sku", unique=True)
    with pytest.raises(DuplicateKeyError):
        other.insert_one({"_id": 3, "items": [{"sku": 3}]})


# -- text and 2dsphere indexes ----------------------------------------------------------------------


def test_text_index_is_listed_as_mongod_lists_it(client, db_name, target):
    coll = client[db_name].c
    name = coll.create_index([("title", "text"), ("body", "text")], weights={"title": 10})
    assert name == "title_text_body_text"
    listed = _listed(coll)[name]
    assert dict(listed)["key"] == {"_fts": "text", "_ftsx": 1}
    if target.flavour == "mongodb":
        assert listed == [
            ("v", 2),
            ("key", {"_fts": "text", "_ftsx": 1}),
            ("name", name),
            ("weights", {"body": 1, "title": 10}),
            ("default_language", "english"),
            ("language_override", "language"),
            ("textIndexVersion", 3),
        ]
    # The listed spec builds the same index again (what a copy of the indexes sends).
    spec = next(ix for ix in coll.list_indexes() if ix["name"] == name)
    reply = client[db_name].command("createIndexes", "c", indexes=[spec])
    assert reply["note"] == "all indexes already exist"


def test_only_one_text_index_per_collection(client, db_name):
    coll = client[db_name].c
    coll.create_index([("title", "text")])
    # The same key pattern ({_fts: "text", _ftsx: 1}) with other weights: an equivalent index.
    assert _code(coll.create_index, [("body", "text")]).code == 85
    # Another key pattern: a second text index.
    assert _code(coll.create_index, [("a", 1), ("body", "text")]).code == 67


def test_text_index_options_are_validated(client, db_name):
    coll = _fresh(client, db_name)
    assert _code(coll.create_index, [("t", "text")], default_language="klingon").code == 67
    assert _code(coll.create_index, [("t", "text")], weights={"t": 0}).code == 67
    assert _code(coll.create_index, [("t", "text")], textIndexVersion=7).code == 67
    assert _code(coll.create_index, [("t", "text")], language_override="$lang").code == 67
    assert list(_listed(coll)) == ["_id_"]


def test_text_index_refuses_an_unknown_language_override(client, db_name):
    coll = client[db_name].c
    coll.create_index([("t", "text")])
    coll.insert_one({"_id": 1, "t": "bonjour", "language": "French"})
    with pytest.raises(WriteError) as e:
        coll.insert_one({"_id": 2, "t": "x", "language": "klingon"})
    assert e.value.code == 17262
    with pytest.raises(WriteError) as e:
        coll.insert_one({"_id": 3, "t": "x", "language": 5})
    assert e.value.code == 17261


def test_text_query_runs_or_is_refused(client, db_name, target):
    coll = client[db_name].c
    coll.create_index([("t", "text")])
    coll.insert_one({"_id": 1, "t": "the quick fox"})
    if target.standin is None:
        assert [d["_id"] for d in coll.find({"$text": {"$search": "fox"}})] == [1]
        return
    error = _code(lambda: list(coll.find({"$text": {"$search": "fox"}})))
    assert error.code in (2, 303) and "$text" in str(error)


def test_2dsphere_index_is_listed_as_mongod_lists_it(client, db_name, target):
    coll = client[db_name].c
    assert coll.create_index([("loc", "2dsphere")]) == "loc_2dsphere"
    listed = _listed(coll)["loc_2dsphere"]
    assert dict(listed)["key"] == {"loc": "2dsphere"}
    if target.flavour == "mongodb":
        assert listed == [
            ("v", 2),
            ("key", {"loc": "2dsphere"}),
            ("name", "loc_2dsphere"),
            ("2dsphereIndexVersion", 3),
        ]


def test_2dsphere_index_refuses_what_it_cannot_index(client, db_name):
    coll = client[db_name].c
    coll.create_index([("loc", "2dsphere")])
    coll.insert_many(
        [
            {"_id": 1, "loc": {"type": "Point", "coordinates": [2.35, 48.85]}},
            {"_id": 2, "loc": [2.35, 48.85]},
            {"_id": 3, "loc": {"lng": -73.9, "lat": 40.7}},
            {"_id": 4, "loc": None},
            {"_id": 5},
            {"_id": 6, "loc": []},
        ]
    )
    for loc, code in (
        ({"type": "Point", "coordinates": [200, 0]}, 16755),
        ({"type": "Point", "coordinates": [1, 2, 3]}, 16755),
        ({"type": "Pont", "coordinates": [1, 2]}, 16755),
        ([1], 16755),
        ([math.inf, 0], 16755),
        ("somewhere", 16754),
        (5, 16754),
    ):
        with pytest.raises(WriteError) as e:
            coll.insert_one({"_id": 10, "loc": loc})
        assert e.value.code == code, loc
    assert coll.count_documents({}) == 6


def test_2dsphere_index_build_over_a_bad_document_fails(client, db_name):
    coll = client[db_name].c
    coll.insert_one({"_id": 1, "loc": [500, 500]})
    assert _code(coll.create_index, [("loc", "2dsphere")]).code == 16755
    assert list(_listed(coll)) == ["_id_"]


def test_geo_queries_run_or_are_refused(client, db_name, target):
    coll = client[db_name].c
    coll.create_index([("loc", "2dsphere")])
    coll.insert_one({"_id": 1, "loc": {"type": "Point", "coordinates": [0, 0]}})
    near = {"loc": {"$near": {"$geometry": {"type": "Point", "coordinates": [0, 0]}}}}
    square = [[[-1, -1], [1, -1], [1, 1], [-1, 1], [-1, -1]]]
    within = {"loc": {"$geoWithin": {"$geometry": {"type": "Polygon", "coordinates": square}}}}
    if target.standin is None:
        assert [d["_id"] for d in coll.find(within)] == [1]
        return
    for query in (near, within):
        error = _code(lambda q=query: list(coll.find(q)))
        assert error.code in (2, 303), query


# -- collMod: a TTL index's expiry ---------------------------------------------------------------


def test_coll_mod_changes_a_ttl_index_expiry_by_name_or_key_pattern(client, db_name):
    db = client[db_name]
    db.c.create_index("at", expireAfterSeconds=3)
    reply = db.command({"collMod": "c", "index": {"keyPattern": {"at": 1}, "expireAfterSeconds": 1000}})
    assert (reply["expireAfterSeconds_old"], reply["expireAfterSeconds_new"]) == (3, 1000)
    assert dict(_listed(db.c)["at_1"])["expireAfterSeconds"] == 1000
    reply = db.command({"collMod": "c", "index": {"name": "at_1", "expireAfterSeconds": 2147483647}})
    assert (reply["expireAfterSeconds_old"], reply["expireAfterSeconds_new"]) == (1000, 2147483647)
    assert dict(_listed(db.c)["at_1"])["expireAfterSeconds"] == 2147483647


def test_coll_mod_makes_a_single_field_index_a_ttl_index(client, db_name, target):
    if target.flavour == "documentdb" and target.standin is None:
        pytest.skip("MongoDB 5.1+ converts an index to TTL; DocumentDB's answer is not known here")
    db = client[db_name]
    db.c.create_index("at")
    reply = db.command({"collMod": "c", "index": {"name": "at_1", "expireAfterSeconds": 60}})
    assert "expireAfterSeconds_old" not in reply and reply["expireAfterSeconds_new"] == 60  # MongoDB 5.1+
    assert dict(_listed(db.c)["at_1"])["expireAfterSeconds"] == 60


def test_coll_mod_of_a_missing_index_or_collection(client, db_name):
    db = client[db_name]
    db.c.create_index("at", expireAfterSeconds=3)
    assert _code(db.command, {"collMod": "c", "index": {"name": "nope", "expireAfterSeconds": 5}}).code == 27
    missing = _code(db.command, {"collMod": "c", "index": {"keyPattern": {"b": 1}, "expireAfterSeconds": 5}})
    assert missing.code == 27
    assert (
        _code(db.command, {"collMod": "absent", "index": {"name": "at_1", "expireAfterSeconds": 5}}).code
        == 26
    )
    both = {"name": "at_1", "keyPattern": {"at": 1}, "expireAfterSeconds": 5}
    assert _code(db.command, {"collMod": "c", "index": both}).code == 72
    assert dict(_listed(db.c)["at_1"])["expireAfterSeconds"] == 3  # nothing changed


def test_coll_mod_options_the_standin_lacks_are_refused(client, db_name, target):
    if target.standin is None:
        pytest.skip("a real server implements these collMod options; only the stand-in refuses them")
    db = client[db_name]
    db.c.create_index("at")
    for command in (
        {"collMod": "c", "validator": {"a": {"$exists": True}}},
        {"collMod": "c", "index": {"name": "at_1", "hidden": True}},
        {"collMod": "c", "index": {"name": "at_1", "unique": True}},
    ):
        error = _code(db.command, command)
        assert error.code in (40415, 303), command
    assert "expireAfterSeconds" not in dict(_listed(db.c)["at_1"]) and not dict(_listed(db.c)["at_1"]).get(
        "hidden"
    )
