"""The replicator keeps every event exactly as the server sent it: every event type, every BSON
type, compared byte for byte with a direct ``watch()`` after decompressing the segments."""

from __future__ import annotations

import datetime
import uuid
from decimal import Decimal
from typing import Any

import pytest
from bson import Binary, Code, DBRef, Decimal128, Int64, MaxKey, MinKey, ObjectId, Regex, Timestamp
from bson.raw_bson import RawBSONDocument
from pymongo import MongoClient
from replicate_testkit import (
    checkpoint,
    config_for,
    enable_change_streams,
    new_layout,
    operation_time,
    raw_target,
    read_events,
    reference_events,
    request_drain,
    start_thread,
    start_time,
    wait_until,
    write_start,
)

from backover.s3objects import S3Objects


def every_bson_type(i: int) -> dict[str, Any]:
    """A document with one field of each BSON type (and a few edge values)."""
    return {
        "_id": i,
        "double": 1.5,
        "negzero": -0.0,
        "nan": float("nan"),
        "inf": float("-inf"),
        "string": "déjà vu ✓",
        "empty": "",
        "doc": {"a": {"b": [1, {"c": None}]}},
        "array": [1, "two", 3.0, [4], {"five": 5}],
        "binary": Binary(b"\x00\x01\xff", 0),
        "uuid": Binary(uuid.UUID(int=i).bytes, 4),
        "oid": ObjectId(b"backover0001"),
        "bool": True,
        "date": datetime.datetime(2024, 2, 29, 12, 0, 0, 123000),
        "null": None,
        "regex": Regex("^a.*z$", "im"),
        "code": Code("function(){}"),
        "code_scope": Code("function(){return x}", {"x": 1}),
        "int32": 2**31 - 1,
        "timestamp": Timestamp(1700000000, 7),
        "int64": Int64(2**62),
        "decimal": Decimal128(Decimal("1234567890.123456789")),
        "min": MinKey(),
        "max": MaxKey(),
        "dbref": DBRef("other", 1, "db"),
    }


def _write_every_event_type(client: MongoClient, db: str) -> None:
    coll = client[db].orders
    coll.insert_one(every_bson_type(1))
    coll.insert_many([every_bson_type(i) for i in range(2, 6)])
    coll.update_one(
        {"_id": 1}, {"$set": {"string": "changed", "doc.a.new": Int64(5)}, "$unset": {"null": ""}}
    )
    coll.update_one({"_id": 2}, {"$push": {"array": 6}, "$inc": {"int32": -1}})
    coll.update_many({"_id": {"$gte": 4}}, {"$set": {"bool": False}})
    coll.replace_one({"_id": 3}, {"replaced": True, "when": datetime.datetime(2025, 1, 1)})
    coll.delete_one({"_id": 5})
    coll.update_one({"_id": 99}, {"$set": {"upserted": 1}}, upsert=True)
    client[db].scratch.insert_one({"_id": "x"})
    client[db].scratch.drop()
    client[db].old.insert_one({"_id": "r"})
    client.admin.command("renameCollection", f"{db}.old", to=f"{db}.renamed")
    client[db].renamed.update_one({"_id": "r"}, {"$set": {"after": "rename"}})


@pytest.mark.parametrize("compression", ["zstd", "gzip", "none"])
def test_segments_hold_the_servers_event_bytes(
    standins: dict, standin_password: str, bucket: str, compression: str
) -> None:
    """Database-level capture on DocumentDB: insert, update, replace, delete, drop, rename."""
    server = standins["documentdb"]
    uri = server.uri("root", standin_password)
    db = f"cap_{uuid.uuid4().hex[:8]}"
    s3 = S3Objects(bucket)
    layout = new_layout(bucket)
    with MongoClient(uri) as client:
        enable_change_streams(client, db)
        t0 = start_time(client)
        write_start(s3, layout, t0, [db])
        _write_every_event_type(client, db)
        until = operation_time(client)
        request_drain(s3, layout, until)
        result = start_thread(config_for(layout, uri, compression=compression, max_events=4)).wait()
        expected = reference_events(raw_target(client, db), t0, until)
    assert result.state == "drained" and result.drained_until == until
    captured = read_events(s3, layout)
    kinds = {RawBSONDocument(e)["operationType"] for e in captured}
    assert kinds == {"insert", "update", "replace", "delete", "drop", "rename"}
    assert len(captured) == len(expected) == 17
    assert captured == expected  # byte for byte
    assert result.last_seq == 5  # 17 events, 4 per segment


def test_cluster_capture_of_several_namespaces_keeps_only_theirs(
    standins: dict, standin_password: str, bucket: str
) -> None:
    """Namespaces in two databases are watched at the cluster level; events of other namespaces
    are left out, dropDatabase is captured as it is."""
    server = standins["mongodb"]
    uri = server.uri("root", standin_password)
    one, two = f"cap1_{uuid.uuid4().hex[:6]}", f"cap2_{uuid.uuid4().hex[:6]}"
    s3 = S3Objects(bucket)
    layout = new_layout(bucket)
    with MongoClient(uri) as client:
        client[one].a.insert_one({"_id": 0})
        client[two].wanted.insert_one({"_id": 0})
        t0 = start_time(client)
        config = config_for(layout, uri, namespaces=(one, f"{two}.wanted"), start_at=t0)
        running = start_thread(config)
        wait_until(lambda: checkpoint(s3, layout), what="the first checkpoint (input checked)")
        client[one].a.insert_one({"_id": 1, "v": every_bson_type(1)})
        client[two].wanted.insert_one({"_id": 1})
        client[two].unwanted.insert_one({"_id": 1})
        client[two].wanted.update_one({"_id": 1}, {"$set": {"x": 1}})
        client.drop_database(one)
        until = operation_time(client)
        request_drain(s3, layout, until)
        result = running.wait()
    with MongoClient(uri, document_class=RawBSONDocument) as raw_client:
        everything = reference_events(raw_client, t0, until)
    expected = [e for e in everything if _ns(e) in {(one, "a"), (two, "wanted"), (one, None)}]
    captured = read_events(s3, layout)
    assert result.state == "drained"
    assert [RawBSONDocument(e)["operationType"] for e in captured] == [
        "insert",
        "insert",
        "update",
        "drop",
        "dropDatabase",
    ]
    assert captured == expected


def _ns(event: bytes) -> tuple[str, str | None]:
    ns = RawBSONDocument(event)["ns"]
    return ns["db"], ns.get("coll")
