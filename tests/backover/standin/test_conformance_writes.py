"""Writes as MongoDB answers them, written with plain pymongo: upserts, no-op detection, update
validation, ``_id`` and size limits, write concern, transactions and retryable writes, and the
write options the stand-in does not run.

Runs against both stand-in flavours and, when configured, a real server (conftest.py). Where only
the stand-in refuses something (a real server implements it), the case asserts the real answer on
a real server and the stand-in's refusal on the stand-in.
"""

from __future__ import annotations

import time

import pytest
from bson import Int64, Regex
from bson.son import SON
from pymongo import ASCENDING, WriteConcern
from pymongo.collation import Collation
from pymongo.errors import OperationFailure, WriteConcernError, WriteError

MIB = 1024 * 1024
MAX_BSON = 16 * MIB


def _enable_streams(client, target, db_name: str, coll: str) -> None:
    """DocumentDB streams only what ``modifyChangeStreams`` enabled; MongoDB needs nothing."""
    if target.flavour == "documentdb":
        client.admin.command(
            {"modifyChangeStreams": 1, "database": db_name, "collection": coll, "enable": True}
        )


def _standin_refuses(target) -> bool:
    return target.standin is not None


# -- 1. upserts of a null _id -----------------------------------------------------------------------
def test_an_upsert_of_a_null_id_reports_the_upserted_document(client, db_name) -> None:
    db = client[db_name]
    updated = db.a.update_one({"_id": None}, {"$set": {"a": 1}}, upsert=True)
    assert (updated.raw_result["n"], updated.raw_result["nModified"]) == (1, 0)
    assert "upserted" in updated.raw_result and updated.upserted_id is None
    raw = db.command(
        SON([("update", "b"), ("updates", [{"q": {"_id": None}, "u": {"a": 1}, "upsert": True}])])
    )
    assert (raw["n"], raw["nModified"], raw["upserted"]) == (1, 0, [{"index": 0, "_id": None}])

    reply = db.command(
        SON(
            [
                ("findAndModify", "c"),
                ("query", {"_id": None}),
                ("update", {"$set": {"a": 1}}),
                ("upsert", True),
            ]
        )
    )
    assert reply["lastErrorObject"] == {"n": 1, "updatedExisting": False, "upserted": None}
    assert [db.a.count_documents({}), db.b.count_documents({}), db.c.count_documents({})] == [1, 1, 1]


# -- 2. no-op updates are decided per operator, as mongod's update nodes decide -----------------------
def test_a_push_whose_slice_keeps_the_array_as_it_was_is_a_modification(client, target, db_name) -> None:
    coll = client[db_name].c
    coll.insert_many([{"_id": 1, "a": [3]}, {"_id": 2, "a": [1, 2]}])
    _enable_streams(client, target, db_name, "c")
    with coll.watch() as stream:
        # push_node.cpp: values pushed then sliced off, or a $sort, log the array all the same.
        trimmed = coll.update_one({"_id": 1}, {"$push": {"a": {"$each": [2, -1], "$slice": 1}}})
        assert (trimmed.matched_count, trimmed.modified_count) == (1, 1)
        sorted_ = coll.update_one({"_id": 2}, {"$push": {"a": {"$each": [], "$sort": 1}}})
        assert (sorted_.matched_count, sorted_.modified_count) == (1, 1)
        # Nothing pushed, no $sort, a $slice that keeps everything: a no-op, no event.
        noop = coll.update_one({"_id": 2}, {"$push": {"a": {"$each": [], "$slice": 5}}})
        assert (noop.matched_count, noop.modified_count) == (1, 0)
        coll.insert_one({"_id": 3})  # a marker: the no-op wrote nothing before it
        events = [stream.next() for _ in range(3)]
    assert [(e["operationType"], e["documentKey"]["_id"]) for e in events] == [
        ("update", 1),
        ("update", 2),
        ("insert", 3),
    ]
    assert events[0]["updateDescription"]["updatedFields"] == {"a": [3]}
    assert events[1]["updateDescription"]["updatedFields"] == {"a": [1, 2]}
    assert coll.find_one({"_id": 1}) == {"_id": 1, "a": [3]}


# -- 3. an update is parsed before documents are looked for --------------------------------------------
INVALID_UPDATES = [
    ({"$foo": {"a": 1}}, 9),  # FailedToParse: Unknown modifier: $foo
    ({"$set": {"a": 1, "a.b": 2}}, 40),  # ConflictingUpdateOperators
    ({"$inc": {"a": "x"}}, 14),  # TypeMismatch: Cannot increment with non-numeric argument
    ({"$push": {"a": {"$each": 1}}}, 2),  # BadValue: The argument to $each in $push must be an array
    ({"$rename": {"a": 5}}, 2),  # BadValue: The 'to' field for $rename must be a string
    ({"$set": {"": 1}}, 56),  # EmptyFieldName
    ({"$pop": {"a": 2}}, 9),  # FailedToParse: $pop expects 1 or -1
    ({"$set": {"a": 1}, "b": 1}, 9),  # FailedToParse: Unknown modifier: b
]


def test_invalid_updates_fail_on_an_empty_collection_and_on_no_match(client, db_name) -> None:
    db = client[db_name]
    db.full.insert_one({"_id": 1, "a": 1})
    for spec, code in INVALID_UPDATES:
        for coll, flt in ((db.empty, {}), (db.full, {"_id": 2}), (db.full, {"_id": 1})):
            with pytest.raises(WriteError) as e:
                coll.update_one(flt, spec)
            assert e.value.code == code, (spec, coll.name, flt)
        with pytest.raises(OperationFailure) as e:
            db.empty.find_one_and_update({}, spec)
        assert e.value.code == code, spec
    # MongoDB 5.0+: an empty operand is accepted (a no-op).
    empty = db.full.update_one({"_id": 1}, {"$set": {}})
    assert (empty.matched_count, empty.modified_count) == (1, 0)


# -- 4. _id values mongod does not store ----------------------------------------------------------------
def test_ids_mongod_cannot_store_are_refused_on_insert_and_upsert(client, db_name) -> None:
    coll = client[db_name].c
    for bad_id, code in (
        ({"$a": 1}, 52),  # DollarPrefixedFieldName ("_id fields may not contain '$'-prefixed fields")
        ({"a": {"$b": 1}}, 52),
        ([1, 2], 103),  # InvalidIdField ("The '_id' value cannot be of type array")
        (Regex("^a"), 103),  # InvalidIdField ("... of type regex")
    ):
        with pytest.raises(WriteError) as e:
            coll.insert_one({"_id": bad_id, "x": 1})
        assert e.value.code == code, bad_id
    # A DBRef is a valid _id, and $-prefixed fields elsewhere are fine (MongoDB 5.0+).
    coll.insert_one({"_id": {"$ref": "other", "$id": 1}})
    coll.insert_one({"_id": 2, "a": {"$b": 1}})
    # Upserts are inserts: the same checks (jstests/core/field_name_validation.js).
    for flt, spec, code in (
        ({"k": 1}, {"$set": {"_id": {"$invalid": 1}}}, 52),
        ({"k": 1}, {"$setOnInsert": {"_id": {"$invalid": 1}}}, 52),
        ({"k": 1}, {"_id": {"$invalid": 1}}, 52),
        ({"k": 1}, {"_id": [1, 2]}, 103),
    ):
        with pytest.raises(WriteError) as e:
            if next(iter(spec)).startswith("$"):
                coll.update_one(flt, spec, upsert=True)
            else:
                coll.replace_one(flt, spec, upsert=True)
        assert e.value.code == code, spec
    assert coll.count_documents({}) == 2


# -- 5. the 16 MiB document limit ----------------------------------------------------------------------
def test_documents_over_16_mib_are_refused(client, db_name) -> None:
    coll = client[db_name].c
    over = MAX_BSON + 1000  # the command carrying it stays under mongod's 16 MiB + 16 KiB
    with pytest.raises(WriteError) as e:
        coll.insert_one({"_id": 1, "s": "x" * over})
    assert e.value.code == 2  # BadValue: "object to insert too large"
    with pytest.raises(WriteError) as e:
        coll.update_one({"_id": 1}, {"$set": {"s": "x" * over}}, upsert=True)
    assert e.value.code == 17420  # "Document to upsert is larger than 16777216"
    coll.insert_one({"_id": 2, "a": "a" * (9 * MIB)})
    with pytest.raises(WriteError) as e:
        coll.update_one({"_id": 2}, {"$set": {"b": "b" * (8 * MIB)}})
    assert e.value.code == 17419  # "Resulting document after update is larger than 16777216"
    with pytest.raises(WriteError) as e:
        coll.replace_one({"_id": 2}, {"s": "x" * over})
    assert e.value.code == 17419
    assert coll.count_documents({}) == 1
    assert len(coll.find_one({"_id": 2})["a"]) == 9 * MIB


# -- 6. $rename through arrays --------------------------------------------------------------------------
def test_rename_through_an_array_or_a_scalar(client, db_name) -> None:
    coll = client[db_name].c
    coll.insert_many([{"_id": 1, "a": [{"b": 1}]}, {"_id": 2, "s": 5}, {"_id": 3, "a": [{}], "z": 1}])
    for _id, spec, code in (
        (1, {"a.b": "c"}, 28),  # PathNotViable: a non-numeric part through an array
        (2, {"s.x": "c"}, 28),  # PathNotViable: through a number
        (1, {"a.0.b": "c"}, 2),  # BadValue: "The source field cannot be an array element"
        (3, {"z": "a.0.y"}, 2),  # BadValue: "The destination field cannot be an array element"
    ):
        with pytest.raises(WriteError) as e:
            coll.update_one({"_id": _id}, {"$rename": spec})
        assert e.value.code == code, spec
    assert coll.update_one({"_id": 2}, {"$rename": {"s": "t.u"}}).modified_count == 1
    assert coll.find_one({"_id": 2}) == {"_id": 2, "t": {"u": 5}}


# -- 7. write concern on a replica set of few members ---------------------------------------------------
def _members(client) -> int:
    hello = client.admin.command("hello")
    return len(hello.get("hosts", [])) + len(hello.get("passives", [])) or 1


def test_a_write_concern_the_replica_set_cannot_satisfy_is_reported_after_the_write(
    client, target, db_name
) -> None:
    if target.name == "real-documentdb":
        pytest.skip("DocumentDB does not document its answer to w above its members")
    db = client[db_name]
    too_many = WriteConcern(w=_members(client) + 1)
    with pytest.raises(WriteConcernError) as e:
        db.get_collection("c", write_concern=too_many).insert_one({"_id": 1})
    assert (e.value.code, e.value.details["codeName"]) == (100, "UnsatisfiableWriteConcern")
    with pytest.raises(WriteConcernError) as e:
        db.get_collection("c", write_concern=WriteConcern(w="noSuchTag")).insert_one({"_id": 2})
    assert (e.value.code, e.value.details["codeName"]) == (79, "UnknownReplWriteConcern")
    assert sorted(d["_id"] for d in db.c.find()) == [1, 2]  # applied all the same

    reply = db.command("create", "d", writeConcern={"w": _members(client) + 1}, check=False)
    assert reply["ok"] == 1.0 and reply["writeConcernError"]["code"] == 100
    assert "d" in db.list_collection_names()
    with pytest.raises(OperationFailure) as e:
        db.command("drop", "d", writeConcern={"w": 51})
    assert e.value.code == 9  # FailedToParse: w has to be ... not greater than 50
    assert "d" in db.list_collection_names()

    db.get_collection("c", write_concern=WriteConcern(w=0)).insert_one({"_id": 3})
    deadline = time.monotonic() + 5
    while db.c.find_one({"_id": 3}) is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert db.c.find_one({"_id": 3}) == {"_id": 3}


# -- 8. transactions -------------------------------------------------------------------------------------
def test_a_transaction_is_refused_by_the_standin_and_atomic_on_a_server(client, target, db_name) -> None:
    coll = client[db_name].c
    coll.insert_one({"_id": 0})  # transactions do not create collections before 4.4
    with client.start_session() as session:
        session.start_transaction()
        if _standin_refuses(target):
            with pytest.raises(OperationFailure) as e:
                coll.insert_one({"_id": 1}, session=session)
            assert e.value.code == 40415  # "BSON field 'insert.startTransaction' is an unknown field"
            session.abort_transaction()
        else:
            coll.insert_one({"_id": 1}, session=session)
            session.abort_transaction()
    assert coll.find_one({"_id": 1}) is None
    if _standin_refuses(target):
        with pytest.raises(OperationFailure) as e:
            client.admin.command("commitTransaction")
        assert e.value.code == 59


# -- 9. retryable writes ---------------------------------------------------------------------------------
def _retryable(session_db, session, command: SON) -> dict:
    return session_db.command(command, session=session)


def test_a_retried_write_is_applied_once(client, target, db_name) -> None:
    db = client[db_name]
    db.create_collection("c")
    with client.start_session() as session:
        insert = SON([("insert", "c"), ("documents", [{"_id": 1}, {"_id": 2}]), ("txnNumber", Int64(5))])
        if target.flavour == "documentdb":
            with pytest.raises(OperationFailure) as e:
                _retryable(db, session, insert)
            assert e.value.code == 301  # DocumentDB: "Retryable writes are not supported"
            return
        assert _retryable(db, session, insert)["n"] == 2
        again = _retryable(db, session, insert)
        assert (again["n"], again.get("writeErrors"), again["retriedStmtIds"]) == (2, None, [0, 1])

        inc = SON(
            [
                ("update", "c"),
                ("updates", [{"q": {"_id": 1}, "u": {"$inc": {"x": 1}}}]),
                ("txnNumber", Int64(6)),
            ]
        )
        first, second = _retryable(db, session, inc), _retryable(db, session, inc)
        assert (first["n"], first["nModified"]) == (1, 1)
        assert (second["n"], second["nModified"], second["retriedStmtIds"]) == (1, 1, [0])

        fam = SON(
            [
                ("findAndModify", "c"),
                ("query", {"_id": 2}),
                ("update", {"$inc": {"x": 1}}),
                ("new", True),
                ("txnNumber", Int64(7)),
            ]
        )
        first, second = _retryable(db, session, fam), _retryable(db, session, fam)
        assert first["value"] == second["value"] == {"_id": 2, "x": 1}
        assert second["retriedStmtId"] == 0

        with pytest.raises(OperationFailure) as e:
            _retryable(
                db, session, SON([("insert", "c"), ("documents", [{"_id": 9}]), ("txnNumber", Int64(6))])
            )
        assert e.value.code == 225  # TransactionTooOld
        with pytest.raises(OperationFailure) as e:
            _retryable(db, session, SON([("find", "c"), ("txnNumber", Int64(8))]))
        assert e.value.code == 50768  # txnNumber only for retryable writes and transactions
    assert sorted((d["_id"], d.get("x")) for d in db.c.find()) == [(1, 1), (2, 1)]


def test_a_retryable_write_on_another_session_is_not_a_retry(client, target, db_name) -> None:
    if target.flavour == "documentdb":
        pytest.skip("DocumentDB has no retryable writes (answered 301, see the test above)")
    db = client[db_name]
    insert = SON([("insert", "c"), ("documents", [{"_id": 1}]), ("txnNumber", Int64(1))])
    with client.start_session() as one, client.start_session() as two:
        assert _retryable(db, one, insert)["n"] == 1
        other = _retryable(db, two, insert)
    assert other["n"] == 0 and other["writeErrors"][0]["code"] == 11000
    multi = SON(
        [
            ("update", "c"),
            ("updates", [{"q": {}, "u": {"$set": {"y": 1}}, "multi": True}]),
            ("txnNumber", Int64(2)),
        ]
    )
    with client.start_session() as three:
        reply = _retryable(db, three, multi)
    assert reply["writeErrors"][0]["code"] == 72  # "Cannot use (or request) retryable writes with multi=true"


# -- 10. write options the stand-in does not run ---------------------------------------------------------
def test_a_collation_on_a_write_is_honoured_or_refused(client, target, db_name) -> None:
    coll = client[db_name].c
    coll.insert_one({"_id": 1, "x": "ping"})
    strength_2 = Collation("en", strength=2)
    writes = [
        lambda: coll.update_one({"x": "PING"}, {"$set": {"y": 1}}, collation=strength_2),
        lambda: coll.find_one_and_update({"x": "PING"}, {"$set": {"y": 2}}, collation=strength_2),
        lambda: coll.delete_one({"x": "PING"}, collation=strength_2),
    ]
    for write in writes:
        if target.flavour == "documentdb":
            with pytest.raises(OperationFailure) as e:
                write()
            assert e.value.code == 303  # "option collation is not currently supported"
        elif _standin_refuses(target):
            with pytest.raises(OperationFailure) as e:
                write()
            assert e.value.code == 40415
        else:
            write()
    expected = 1 if target.flavour == "documentdb" or _standin_refuses(target) else 0
    assert coll.count_documents({}) == expected


def test_a_hint_chooses_the_document_a_single_write_takes(client, db_name) -> None:
    coll = client[db_name].c
    coll.insert_many([{"_id": 1, "x": 2}, {"_id": 2, "x": 1}])
    coll.create_index([("x", ASCENDING)])
    coll.update_one({}, {"$set": {"hit": True}}, hint=[("x", ASCENDING)])
    assert [d["_id"] for d in coll.find({"hit": True})] == [2]
    coll.delete_one({}, hint="x_1")
    assert [d["_id"] for d in coll.find()] == [1]
    with pytest.raises(WriteError) as e:
        coll.update_one({}, {"$set": {"y": 1}}, hint="no_such_index")
    assert e.value.code == 2  # BadValue: hint provided does not correspond to an existing index


def test_array_filters_and_let_are_run_or_refused(client, target, db_name) -> None:
    coll = client[db_name].c
    coll.insert_one({"_id": 1, "a": [1, 5]})
    filtered = lambda: coll.update_one(  # noqa: E731
        {"_id": 1}, {"$set": {"a.$[big]": 0}}, array_filters=[{"big": {"$gt": 3}}]
    )
    with_let = lambda: coll.update_one(  # noqa: E731
        {"$expr": {"$eq": ["$_id", "$$target"]}}, {"$set": {"z": 1}}, let={"target": 1}
    )
    if _standin_refuses(target):
        for write in (filtered, with_let):
            with pytest.raises(OperationFailure) as e:
                write()
            assert e.value.code == 40415  # refused, naming the field
        assert coll.find_one({"_id": 1}) == {"_id": 1, "a": [1, 5]}
    else:
        assert filtered().modified_count == 1
        assert with_let().modified_count == 1
        assert coll.find_one({"_id": 1}) == {"_id": 1, "a": [1, 0], "z": 1}


def test_an_unknown_field_of_a_write_command_is_refused(client, target, db_name) -> None:
    if target.name == "real-documentdb":
        pytest.skip("DocumentDB does not document its answer to an unknown field")
    db = client[db_name]
    code = 303 if target.flavour == "documentdb" else 40415  # DocumentDB's "Feature not supported"
    with pytest.raises(OperationFailure) as e:
        db.command(SON([("insert", "c"), ("documents", [{"_id": 1}]), ("noSuchField", 1)]))
    assert e.value.code == code
    with pytest.raises(OperationFailure) as e:
        db.command(SON([("delete", "c"), ("deletes", [{"q": {}, "limit": 1, "noSuchField": 1}])]))
    assert e.value.code == code
    assert db.c.count_documents({}) == 0
