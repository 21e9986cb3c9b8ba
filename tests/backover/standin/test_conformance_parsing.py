"""Commands parsed as mongod parses them before it runs anything: required fields and field types
of write statements, ``$group`` specifications, and the fields of a ``$changeStream`` aggregate.
Written with plain pymongo, so they run unchanged against a real server (conftest.py).

Sources: mongod's ``write_ops.idl`` (``q``/``u``/``limit`` required, ``multi``/``upsert``/
``ordered`` of type bool: IDL 40414 "BSON field '...' is missing but a required field", 14
"... is the wrong type"); ``accumulation_statement.cpp`` (40234-40238); ``accumulator_sum.cpp``
(non-numeric values are ignored: a ``$sum`` of a string is 0; an int sum is an int or a long).
"""

from __future__ import annotations

import pytest
from bson import Decimal128, Int64
from bson.son import SON
from pymongo.errors import OperationFailure

MISSING_FIELD = 40414  # IDL: "BSON field 'delete.deletes.q' is missing but a required field"
TYPE_MISMATCH = 14  # IDL: "BSON field 'update.updates.multi' is the wrong type 'string', ..."


def _code(call, *args, **kwargs) -> OperationFailure:
    with pytest.raises(OperationFailure) as e:
        call(*args, **kwargs)
    return e.value


def _mongodb_answers_only(target) -> None:
    if target.name == "real-documentdb":
        pytest.skip("DocumentDB does not document its answers to malformed write commands")


# -- write statements -----------------------------------------------------------------------------
def test_a_write_statement_without_a_required_field_fails_the_command(client, target, db_name) -> None:
    _mongodb_answers_only(target)
    db = client[db_name]
    db.c.insert_many([{"_id": 1}, {"_id": 2}])
    for command in (
        SON([("delete", "c"), ("deletes", [{"limit": 1}])]),  # no q: not "every document"
        SON([("delete", "c"), ("deletes", [{"q": {}}])]),  # no limit: not "limit 0"
        SON([("update", "c"), ("updates", [{"u": {"$set": {"x": 1}}}])]),
        SON([("update", "c"), ("updates", [{"q": {}}])]),
        SON([("insert", "c")]),
        SON([("update", "c")]),
        SON([("delete", "c")]),
    ):
        assert _code(db.command, command).code == MISSING_FIELD, command
    assert list(db.c.find()) == [{"_id": 1}, {"_id": 2}]


def test_write_fields_of_the_wrong_type_fail_the_command(client, target, db_name) -> None:
    _mongodb_answers_only(target)
    db = client[db_name]
    db.c.insert_many([{"_id": 1}, {"_id": 2}])
    for command in (
        SON([("update", "c"), ("updates", [{"q": {}, "u": {"$set": {"x": 1}}, "multi": "yes"}])]),
        SON([("update", "c"), ("updates", [{"q": {}, "u": {"$set": {"x": 1}}, "multi": 1}])]),
        SON([("update", "c"), ("updates", [{"q": {"_id": 3}, "u": {"x": 1}, "upsert": 1}])]),
        SON([("update", "c"), ("updates", [{"q": 1, "u": {"$set": {"x": 1}}}])]),
        SON([("delete", "c"), ("deletes", [{"q": 1, "limit": 0}])]),
        SON([("insert", "c"), ("documents", [{"_id": 3}]), ("ordered", "no")]),
        SON([("delete", "c"), ("deletes", [{"q": {}, "limit": 0}]), ("ordered", 0)]),
    ):
        assert _code(db.command, command).code == TYPE_MISMATCH, command
    assert list(db.c.find()) == [{"_id": 1}, {"_id": 2}]


# -- $group ---------------------------------------------------------------------------------------
def test_group_field_specifications_are_checked(client, db_name) -> None:
    coll = client[db_name].c
    coll.insert_many([{"_id": 1, "n": 1}, {"_id": 2, "n": 2}])
    for fields, code in (
        ({"s": 1}, 40234),  # "The field 's' must be an accumulator object"
        ({"a.b": {"$sum": 1}}, 40235),  # "The field name 'a.b' cannot contain '.'"
        ({"$s": {"$sum": 1}}, 40236),  # "The field name '$s' cannot be an operator name"
        ({"s": {"$sum": 1, "$max": 1}}, 40238),  # "The field 's' must specify one accumulator"
        ({"s": {"$sum": [1, 2]}}, 40237),  # "The $sum accumulator is a unary operator"
    ):
        error = _code(coll.aggregate, [{"$group": {"_id": None, **fields}}])
        assert error.code == code, fields


def test_group_sum_of_constants(client, db_name) -> None:
    coll = client[db_name].c
    coll.insert_many([{"_id": 1, "n": 1}, {"_id": 2, "n": 2}])

    def summed(operand):
        (result,) = coll.aggregate([{"$group": {"_id": None, "s": {"$sum": operand}}}])
        return result["s"]

    for operand in ("abc", True, None):  # not numbers: ignored, the sum stays the int 0
        value = summed(operand)
        assert value == 0 and type(value) is int, operand
    assert summed(1) == 2 and type(summed(1)) is int
    assert summed(Int64(3)) == 6 and isinstance(summed(Int64(3)), Int64)  # a long stays a long
    assert summed(2**30) == 2**31 and isinstance(summed(2**30), Int64)  # an int sum overflows to long


def test_group_by_an_expression_or_a_sum_of_a_field_is_run_or_refused(client, target, db_name) -> None:
    coll = client[db_name].c
    coll.insert_many([{"_id": 1, "n": 1}, {"_id": 2, "n": Decimal128("2.5")}])
    by_array = [{"$group": {"_id": ["$n"], "c": {"$sum": 1}}}, {"$sort": {"_id": 1}}]
    of_field = [{"$group": {"_id": None, "s": {"$sum": "$n"}}}]
    if target.standin is None:
        assert [g["c"] for g in coll.aggregate(by_array)] == [1, 1]  # an array of expressions
        (result,) = coll.aggregate(of_field)
        assert isinstance(result["s"], Decimal128) and result["s"].to_decimal() == 3.5
        return
    for pipeline in (by_array, of_field):  # neither a constant nor what it computes is faked
        assert _code(coll.aggregate, pipeline).code == 40415, pipeline


# -- the fields of a $changeStream aggregate ------------------------------------------------------
def _enable(client, target, db_name: str, coll: str) -> None:
    if target.flavour == "documentdb":
        client.admin.command(
            {"modifyChangeStreams": 1, "database": db_name, "collection": coll, "enable": True}
        )


def test_an_unknown_field_of_a_change_stream_aggregate_is_refused(client, target, db_name) -> None:
    _mongodb_answers_only(target)
    db = client[db_name]
    db.create_collection("c")
    _enable(client, target, db_name, "c")
    error = _code(db.command, "aggregate", "c", pipeline=[{"$changeStream": {}}], cursor={}, noSuchField=1)
    assert error.code == (303 if target.flavour == "documentdb" else 40415)
    error = _code(db.command, "aggregate", "c", pipeline=[{"$changeStream": {}}], cursor={"noSuchField": 1})
    assert error.code == (303 if target.flavour == "documentdb" else 40415)


def test_a_change_stream_collation_is_honoured_or_refused(client, target, db_name) -> None:
    # Sent as a command: pymongo's watch() does not send its collation argument.
    db = client[db_name]
    db.create_collection("c")
    _enable(client, target, db_name, "c")
    strength_2 = {"locale": "en", "strength": 2}
    pipeline = [{"$changeStream": {}}, {"$match": {"fullDocument.x": "PING"}}]
    if target.standin is None and target.flavour == "mongodb":
        cursor = db.command("aggregate", "c", pipeline=pipeline, cursor={}, collation=strength_2)["cursor"]
        db.c.insert_one({"_id": 1, "x": "ping"})
        events: list = []
        for _ in range(10):
            reply = db.command("getMore", Int64(cursor["id"]), collection="c", maxTimeMS=500)
            events += reply["cursor"]["nextBatch"]
            if events:
                break
        assert [e["fullDocument"] for e in events] == [{"_id": 1, "x": "ping"}]
        return
    error = _code(db.command, "aggregate", "c", pipeline=pipeline, cursor={}, collation=strength_2)
    if target.flavour == "documentdb":
        assert error.code == 303 and "collation" in str(error)
    else:
        assert error.code == 40415


# -- getMore --------------------------------------------------------------------------------------
def test_max_time_ms_on_a_get_more_of_a_non_await_data_cursor_fails(client, target, db_name) -> None:
    # getmore_cmd.cpp: BadValue "cannot set maxTimeMS on getMore command for a non-awaitData cursor"
    _mongodb_answers_only(target)
    db = client[db_name]
    db.c.insert_many([{"_id": i} for i in range(3)])
    cursor = db.command("find", "c", batchSize=1)["cursor"]
    error = _code(db.command, "getMore", Int64(cursor["id"]), collection="c", maxTimeMS=10)
    assert error.code == 2 and "non-awaitData" in str(error)


# -- collection and index commands ------------------------------------------------------------------
@pytest.mark.parametrize(
    "command",
    [
        lambda db: db.command("drop", "c", noSuchField=1),
        lambda db: db.command("listCollections", noSuchField=1),
        lambda db: db.command("listIndexes", "c", noSuchField=1),
        lambda db: db.command("dropIndexes", "c", index="*", noSuchField=1),
        lambda db: db.client.admin.command("listDatabases", noSuchField=1),
    ],
    ids=["drop", "listCollections", "listIndexes", "dropIndexes", "listDatabases"],
)
def test_an_unknown_field_of_a_collection_command_is_refused(client, target, db_name, command) -> None:
    db = client[db_name]
    db.c.insert_one({"_id": 1})
    with pytest.raises(OperationFailure) as e:
        command(db)
    if target.flavour == "mongodb":
        assert e.value.code == 40415
    assert db_name in client.list_database_names() and db.c.count_documents({}) == 1


def test_drop_indexes_needs_the_index_field(client, db_name) -> None:
    db = client[db_name]
    db.c.create_index("a")
    with pytest.raises(OperationFailure) as e:
        db.command("dropIndexes", "c")
    assert e.value.code == 40414
    assert {ix["name"] for ix in db.c.list_indexes()} == {"_id_", "a_1"}


def test_a_duplicate_key_message_shows_the_value_as_mongod_does(client, db_name) -> None:
    db = client[db_name]
    db.c.create_index("email", unique=True)
    db.c.insert_one({"_id": 1, "email": "x@example.com"})
    with pytest.raises(OperationFailure) as e:
        db.c.insert_one({"_id": 2, "email": "x@example.com"})
    assert e.value.code == 11000
    assert 'dup key: { email: "x@example.com" }' in str(e.value)


# -- read and write concerns on reads --------------------------------------------------------------
def test_a_read_concern_of_one_member_reads_what_is_there(client, db_name) -> None:
    db = client[db_name]
    db.c.insert_one({"_id": 1})
    for level in ("local", "majority", "available"):
        reply = db.command("find", "c", readConcern={"level": level})
        assert [d["_id"] for d in reply["cursor"]["firstBatch"]] == [1], level


@pytest.mark.parametrize(
    "concern, code",
    [({"level": "bogus"}, 2), ({"level": "local", "noSuchField": 1}, 40415)],
    ids=["unknown-level", "unknown-field"],
)
def test_a_malformed_read_concern_is_refused(client, target, db_name, concern, code) -> None:
    if target.name == "real-documentdb":
        pytest.skip("DocumentDB does not document its answers to malformed read concerns")
    db = client[db_name]
    db.c.insert_one({"_id": 1})
    with pytest.raises(OperationFailure) as e:
        db.command("find", "c", readConcern=concern)
    assert e.value.code == code


def test_a_snapshot_read_in_the_past_is_run_or_refused(client, target, db_name) -> None:
    """MongoDB reads the data as of atClusterTime; the stand-ins cannot, so they refuse."""
    db = client[db_name]
    db.c.insert_one({"_id": 1})
    with client.start_session() as session:
        db.c.find_one({}, session=session)
        before = session.operation_time
    db.c.insert_one({"_id": 2})
    concern = {"level": "snapshot", "atClusterTime": before}
    if target.standin is None and target.flavour == "mongodb":
        reply = db.command("find", "c", readConcern=concern)
        assert [d["_id"] for d in reply["cursor"]["firstBatch"]] == [1]
        return
    with pytest.raises(OperationFailure):
        db.command("find", "c", readConcern=concern)


def test_a_write_concern_on_a_read_is_refused(client, target, db_name) -> None:
    if target.name == "real-documentdb":
        pytest.skip("DocumentDB does not document its answer to a write concern on a read")
    db = client[db_name]
    db.c.insert_one({"_id": 1})
    with pytest.raises(OperationFailure) as e:
        db.command("find", "c", writeConcern={"w": 1})
    assert e.value.code == 72
