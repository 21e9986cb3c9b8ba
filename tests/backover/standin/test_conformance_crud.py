"""CRUD, indexes, namespaces and type fidelity, written with plain pymongo.

The same tests run against both stand-in flavours and, when configured, a real MongoDB or
DocumentDB (see conftest.py), so the stand-ins are held to what real servers answer.
"""

from __future__ import annotations

import datetime
import uuid
from decimal import Decimal

import bson
import pytest
from bson import Binary, Code, Decimal128, Int64, ObjectId, Regex, Timestamp
from bson.codec_options import CodecOptions, DatetimeConversion
from bson.max_key import MaxKey
from bson.min_key import MinKey
from bson.raw_bson import RawBSONDocument
from pymongo import ASCENDING, DESCENDING, DeleteOne, InsertOne, ReplaceOne, ReturnDocument, UpdateOne
from pymongo.errors import BulkWriteError, DuplicateKeyError, OperationFailure

RAW = CodecOptions(document_class=RawBSONDocument)


def every_type_document(i: int) -> dict:
    return {
        "_id": i,
        "int32": 7,
        "int64": Int64(7),
        "double": 7.0,
        "decimal": Decimal128("7.10"),
        "decimal_scale": Decimal128(Decimal("7.1")),
        "string": "sept ✓",
        "date": datetime.datetime(2026, 11, 27, 12, 30, 15, 123000),
        "timestamp": Timestamp(1_764_270_000, 3),
        "oid": ObjectId("65a1b2c3d4e5f60718293a4b"),
        "bin0": Binary(b"\x00\xff", 0),
        "bin4": Binary(uuid.UUID(int=5).bytes, 4),
        "bin128": Binary(b"custom", 128),
        "regex": Regex("^a.*z$", "im"),
        "code": Code("function() { return 1; }"),
        "bool": True,
        "null": None,
        "min": MinKey(),
        "max": MaxKey(),
        "nested": {"arr": [1, Int64(1), 1.0, [2, [3]], {"z": 1, "a": 2}]},
        "empty_doc": {},
        "empty_arr": [],
    }


def test_every_bson_type_round_trips_byte_for_byte(client, db_name):
    coll = client[db_name].types
    docs = [every_type_document(i) for i in range(3)]
    coll.insert_many(docs)
    raw_coll = coll.with_options(codec_options=RAW)
    stored = list(raw_coll.find({}, sort=[("_id", ASCENDING)]))
    assert [d.raw for d in stored] == [bson.encode(d) for d in docs]


def test_replace_keeps_types_and_field_order(client, db_name):
    coll = client[db_name].c
    coll.insert_one({"_id": 1, "a": 1})
    replacement = {"z": Int64(1), "a": 1.0, "m": Decimal128("1.000")}
    coll.replace_one({"_id": 1}, replacement)
    raw = coll.with_options(codec_options=RAW).find_one({"_id": 1})
    assert raw.raw == bson.encode({"_id": 1, **replacement})


def test_dates_outside_python_range_survive(client, db_name):
    coll = client[db_name].c.with_options(
        codec_options=CodecOptions(datetime_conversion=DatetimeConversion.DATETIME_MS)
    )
    far = bson.DatetimeMS(2**62)
    coll.insert_one({"_id": 1, "d": far})
    assert coll.find_one({"_id": 1})["d"] == far


def test_numeric_ids_of_different_types_are_the_same_key(client, db_name):
    coll = client[db_name].c
    coll.insert_one({"_id": 1, "v": "int"})
    with pytest.raises(DuplicateKeyError):
        coll.insert_one({"_id": Int64(1)})
    with pytest.raises(DuplicateKeyError):
        coll.insert_one({"_id": 1.0})
    assert coll.find_one({"_id": Int64(1)})["v"] == "int"


def test_insert_without_id_gets_object_id_first(client, db_name):
    coll = client[db_name].c
    raw = bson.encode({"a": 1})
    coll.with_options(codec_options=RAW).insert_one(RawBSONDocument(raw))
    stored = coll.find_one({"a": 1})
    assert isinstance(stored["_id"], ObjectId)
    assert list(stored) == ["_id", "a"]


def test_update_operators(client, db_name):
    coll = client[db_name].c
    coll.insert_one({"_id": 1, "n": 1, "tags": ["a"], "sub": {"x": 1}, "arr": [1, 2, 3]})
    result = coll.update_one(
        {"_id": 1},
        {
            "$set": {"sub.y": 2, "arr.1": 20},
            "$inc": {"n": 2},
            "$push": {"tags": {"$each": ["b", "c", "d"], "$slice": -3}},
            "$unset": {"sub.x": ""},
        },
    )
    assert (result.matched_count, result.modified_count) == (1, 1)
    assert coll.find_one({"_id": 1}) == {
        "_id": 1,
        "n": 3,
        "tags": ["b", "c", "d"],
        "sub": {"y": 2},
        "arr": [1, 20, 3],
    }
    coll.update_one({"_id": 1}, {"$pull": {"tags": "c"}})
    assert coll.find_one({"_id": 1})["tags"] == ["b", "d"]


def test_update_that_changes_nothing_reports_not_modified(client, db_name):
    coll = client[db_name].c
    coll.insert_one({"_id": 1, "a": 1})
    result = coll.update_one({"_id": 1}, {"$set": {"a": 1}})
    assert (result.matched_count, result.modified_count) == (1, 0)


def test_upserts_by_id_and_by_filter(client, db_name):
    coll = client[db_name].c
    r1 = coll.replace_one({"_id": "k"}, {"v": 1}, upsert=True)
    r2 = coll.update_one({"email": "a@x"}, {"$set": {"v": 2}, "$setOnInsert": {"created": True}}, upsert=True)
    assert r1.upserted_id == "k"
    assert coll.find_one({"_id": "k"}) == {"_id": "k", "v": 1}
    doc = coll.find_one({"_id": r2.upserted_id})
    assert {k: doc[k] for k in ("email", "v", "created")} == {"email": "a@x", "v": 2, "created": True}
    coll.update_one({"email": "a@x"}, {"$set": {"v": 3}, "$setOnInsert": {"created": False}}, upsert=True)
    assert coll.find_one({"email": "a@x"})["created"] is True


def test_bulk_write_mixed_and_unordered_errors(client, db_name):
    coll = client[db_name].c
    result = coll.bulk_write(
        [
            InsertOne({"_id": 1}),
            ReplaceOne({"_id": 2}, {"a": 2}, upsert=True),
            UpdateOne({"_id": 1}, {"$set": {"a": 1}}),
            DeleteOne({"_id": 2}),
        ]
    )
    assert (result.inserted_count, result.upserted_count, result.modified_count, result.deleted_count) == (
        1,
        1,
        1,
        1,
    )
    with pytest.raises(BulkWriteError) as info:
        coll.bulk_write([InsertOne({"_id": 1}), InsertOne({"_id": 3})], ordered=False)
    assert info.value.details["nInserted"] == 1
    assert info.value.details["writeErrors"][0]["code"] == 11000
    assert sorted(d["_id"] for d in coll.find()) == [1, 3]


def test_unique_secondary_index_is_enforced(client, db_name):
    coll = client[db_name].users
    coll.create_index("email", unique=True)
    coll.insert_one({"_id": 1, "email": "a@x"})
    with pytest.raises(DuplicateKeyError) as info:
        coll.insert_one({"_id": 2, "email": "a@x"})
    assert info.value.code == 11000
    coll.update_one({"_id": 1}, {"$set": {"email": "b@x"}})
    coll.insert_one({"_id": 2, "email": "a@x"})  # the old value is free again
    with pytest.raises(DuplicateKeyError):
        coll.update_one({"_id": 2}, {"$set": {"email": "b@x"}})
    assert coll.count_documents({}) == 2


def test_creating_unique_index_over_duplicates_fails(client, db_name):
    coll = client[db_name].c
    coll.insert_many([{"_id": 1, "k": 1}, {"_id": 2, "k": 1}])
    with pytest.raises(OperationFailure) as info:
        coll.create_index("k", unique=True)
    assert info.value.code == 11000
    assert [ix["name"] for ix in coll.list_indexes()] == ["_id_"]


def test_find_filters_sort_limit_and_batches(client, db_name):
    coll = client[db_name].c
    coll.insert_many([{"_id": i, "n": i % 10, "sub": {"v": i}} for i in range(250)])
    assert coll.count_documents({"n": 3}) == 25
    assert coll.count_documents({"n": {"$in": [1, 2]}, "sub.v": {"$gte": 100, "$lt": 200}}) == 20
    ids = [d["_id"] for d in coll.find({}, sort=[("_id", DESCENDING)], batch_size=7, limit=30)]
    assert ids == list(range(249, 219, -1))
    assert len(list(coll.find({"n": {"$gt": 5}}, batch_size=10))) == 100
    assert coll.estimated_document_count() == 250
    assert sorted(coll.distinct("n")) == list(range(10))


def test_find_projection(client, db_name):
    coll = client[db_name].c
    coll.insert_one({"_id": 1, "a": 1, "b": 2, "c": 3})
    assert coll.find_one({}, {"a": 1}) == {"_id": 1, "a": 1}
    assert coll.find_one({}, {"a": 0, "_id": 0}) == {"b": 2, "c": 3}


def test_find_one_and_update_and_delete(client, db_name):
    coll = client[db_name].c
    coll.insert_many([{"_id": 1, "n": 5}, {"_id": 2, "n": 1}])
    after = coll.find_one_and_update(
        {"n": {"$gte": 1}}, {"$inc": {"n": 1}}, sort=[("n", ASCENDING)], return_document=ReturnDocument.AFTER
    )
    assert after == {"_id": 2, "n": 2}
    before = coll.find_one_and_replace({"_id": 1}, {"n": 0})
    assert before == {"_id": 1, "n": 5}
    gone = coll.find_one_and_delete({"_id": 1})
    assert gone == {"_id": 1, "n": 0}
    created = coll.find_one_and_update(
        {"_id": 9}, {"$set": {"n": 9}}, upsert=True, return_document=ReturnDocument.AFTER
    )
    assert created == {"_id": 9, "n": 9}


def test_delete_many_and_one(client, db_name):
    coll = client[db_name].c
    coll.insert_many([{"_id": i, "even": i % 2 == 0} for i in range(10)])
    assert coll.delete_one({"even": True}).deleted_count == 1
    assert coll.delete_many({"even": True}).deleted_count == 4
    assert coll.count_documents({}) == 5


def test_namespaces_create_list_rename_drop(client, db_name):
    db = client[db_name]
    db.create_collection("a")
    with pytest.raises(OperationFailure) as info:
        db.command("create", "a")
    assert info.value.code == 48
    db.a.insert_one({"_id": 1})
    db.a.rename("b")
    assert db.list_collection_names() == ["b"]
    assert db.b.find_one() == {"_id": 1}
    assert db_name in client.list_database_names()
    db.drop_collection("b")
    assert db.list_collection_names() == []


def test_index_management(client, db_name):
    coll = client[db_name].c
    coll.create_index([("a", ASCENDING), ("b", DESCENDING)], name="a_b")
    coll.create_index("email", unique=True)
    info = coll.index_information()
    assert info["a_b"]["key"] == [("a", 1), ("b", -1)]
    assert info["email_1"]["unique"] is True
    coll.drop_index("a_b")
    assert sorted(coll.index_information()) == ["_id_", "email_1"]
    with pytest.raises(OperationFailure) as err:
        coll.drop_index("_id_")
    assert err.value.code == 72


def test_unknown_command_is_command_not_found(client):
    with pytest.raises(OperationFailure) as info:
        client.admin.command("definitelyNotACommand")
    assert info.value.code == 59


def test_unknown_query_operator_is_bad_value(client, db_name):
    with pytest.raises(OperationFailure) as info:
        list(client[db_name].c.find({"a": {"$bogus": 1}}))
    assert info.value.code == 2
    assert "$bogus" in str(info.value)


def test_unknown_stage_is_rejected(client, db_name):
    client[db_name].c.insert_one({"_id": 1})
    with pytest.raises(OperationFailure) as info:
        list(client[db_name].c.aggregate([{"$bogusStage": {}}]))
    assert info.value.code == 40324


def test_hello_answers_like_a_replica_set_primary(client, target):
    hello = client.admin.command("hello")
    assert hello["isWritablePrimary"] is True
    assert hello["setName"]
    assert hello["maxWireVersion"] >= 13
    assert isinstance(client.admin.command("ping")["operationTime"], Timestamp)


def test_documents_of_4kb_and_more_are_written_by_every_command(client, db_name):
    """pymongo decodes the server's documents of 4 KB and more as memoryviews (so does the stand-in
    reading a command): a large replacement, upsert or insert is stored like a small one."""
    coll = client[db_name].c
    coll.insert_one({"_id": 1, "n": 5})
    large = {"_id": 1, "bio": "x" * 5000}
    assert coll.find_one_and_replace({"_id": 1}, {"bio": "x" * 5000}) == {"_id": 1, "n": 5}
    coll.find_one_and_update({"_id": 2}, {"$set": {"bio": "y" * 5000}}, upsert=True)
    coll.replace_one({"_id": 3}, {"bio": "z" * 5000}, upsert=True)
    coll.insert_one({"_id": 4, "bio": "w" * 5000})
    stored = [d.raw for d in coll.with_options(codec_options=RAW).find({}, sort=[("_id", ASCENDING)])]
    assert stored == [
        bson.encode(large),
        bson.encode({"_id": 2, "bio": "y" * 5000}),
        bson.encode({"_id": 3, "bio": "z" * 5000}),
        bson.encode({"_id": 4, "bio": "w" * 5000}),
    ]


def test_replace_by_id_variants_store_exact_documents(client, db_name):
    coll = client[db_name].c
    raw_coll = coll.with_options(codec_options=RAW)
    missing = coll.replace_one({"_id": 1}, {"a": 1})
    assert (missing.matched_count, missing.upserted_id) == (0, None)
    assert coll.count_documents({}) == 0
    coll.bulk_write(
        [
            ReplaceOne({"_id": 1}, {"_id": 1, "a": Int64(1)}, upsert=True),
            ReplaceOne({"_id": 2}, {"a": 2.0, "_id": 2}, upsert=True),  # _id not first: stored first
            ReplaceOne({"_id": 3}, {"a": "three"}, upsert=True),
        ]
    )
    coll.bulk_write([ReplaceOne({"_id": 3}, {"a": "THREE"}, upsert=False)])
    stored = [d.raw for d in raw_coll.find({}, sort=[("_id", ASCENDING)])]
    assert stored == [
        bson.encode({"_id": 1, "a": Int64(1)}),
        bson.encode({"_id": 2, "a": 2.0}),
        bson.encode({"_id": 3, "a": "THREE"}),
    ]
    same = coll.replace_one({"_id": 3}, {"a": "THREE"})
    assert (same.matched_count, same.modified_count) == (1, 0)
    with pytest.raises(OperationFailure) as info:
        coll.replace_one({"_id": 3}, {"_id": 4, "a": 1})
    assert info.value.code == 66
