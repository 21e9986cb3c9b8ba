"""Property-based: random histories of inserts, updates, replaces, deletes and DDL over a small key
space, replayed with random worker counts, window sizes and segment cuts, end to end (segments in
moto's S3, restore into the MongoDB stand-in). The target must equal the final state, and
applying every segment again must change nothing."""

from __future__ import annotations

from typing import Any

import bson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from restore_streams import built_event, capture, new_db_name, new_migration, raw_contents

from backover.restore import RestoreConfig, RestoreResult, run_restore

pytestmark = pytest.mark.slow  # property-based histories replayed end to end (a soak)

COLLS = ("c1", "c2")
KEYS = st.integers(0, 4)
VALUES = st.integers(0, 9)
SETTINGS = settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
REPLAY = st.fixed_dictionaries(
    {
        "workers": st.sampled_from([1, 2, 4]),
        "window": st.sampled_from([1, 2, 3, 7, 500]),
        "per_segment": st.sampled_from([1, 2, 5, 1000]),
        "compression": st.sampled_from(["zstd", "gzip", "none"]),
    }
)

OPS = st.one_of(
    st.tuples(st.just("put"), st.sampled_from(COLLS), KEYS, VALUES, st.sampled_from(["replace", "update"])),
    st.tuples(st.just("delta"), st.sampled_from(COLLS), KEYS, VALUES),
    st.tuples(st.just("gone"), st.sampled_from(COLLS), KEYS),
    st.tuples(st.just("delete"), st.sampled_from(COLLS), KEYS),
    st.tuples(st.just("drop"), st.sampled_from(COLLS)),
    st.tuples(st.just("rename"), st.sampled_from([("c1", "c2"), ("c2", "c1")])),
    st.tuples(st.just("dropDatabase")),
)


def document(key: int, value: int) -> dict[str, Any]:
    return {"_id": key, "v": value, "n": {"x": value, "y": "z"}, "arr": list(range(value % 5))}


def history(db: str, ops: list[tuple]) -> tuple[list[bytes], dict[str, dict[int, dict[str, Any]]]]:
    """The change events of ``ops`` as DocumentDB would stream them (with ``updateLookup`` images
    taken at once, and some updates without), and the final state."""
    model: dict[str, dict[int, dict[str, Any]]] = {}
    events: list[bytes] = []
    for op in ops:
        kind = op[0]
        if kind == "put":
            _, coll, key, value, how = op
            docs = model.setdefault(coll, {})
            full = document(key, value)
            events.append(built_event("insert" if key not in docs else how, coll, key, db=db, full=full))
            docs[key] = full
        elif kind == "delta" and op[2] in model.get(op[1], {}):
            _, coll, key, value = op
            doc = model[coll][key]
            size = min(len(doc["arr"]), value % 3)
            description = {
                "updatedFields": {"v": value, "n.x": value},
                "removedFields": ["n.y"] if value % 2 else [],
            }
            if size < len(doc["arr"]):
                description["truncatedArrays"] = [{"field": "arr", "newSize": size}]
            events.append(built_event("update", coll, key, db=db, description=description))
            doc["v"], doc["n"]["x"], doc["arr"] = value, value, doc["arr"][:size]
            if value % 2:
                doc["n"].pop("y", None)
        elif kind == "gone" and op[2] in model.get(op[1], {}):
            _, coll, key = op
            events.append(
                built_event("update", coll, key, db=db, full=None, description={"updatedFields": {"v": -1}})
            )
            events.append(built_event("delete", coll, key, db=db))
            del model[coll][key]
        elif kind == "delete" and op[2] in model.get(op[1], {}):
            events.append(built_event("delete", op[1], op[2], db=db))
            del model[op[1]][op[2]]
        elif kind == "drop" and op[1] in model:
            events.append(built_event("drop", op[1], db=db))
            del model[op[1]]
        elif kind == "rename" and op[1][0] in model:
            source, target = op[1]
            if target in model:
                events.append(built_event("drop", target, db=db))
            events.append(built_event("rename", source, db=db, to=(db, target)))
            model[target] = model.pop(source)
        elif kind == "dropDatabase" and model:
            events += [built_event("drop", coll, db=db) for coll in sorted(model)]
            events.append(built_event("dropDatabase", None, db=db))
            model = {}
    return events, model


def restore(migration, target_uri, replay: dict[str, Any], **extra: Any) -> RestoreResult:
    config = RestoreConfig(
        layout=migration.layout,
        target=target_uri,
        workers=replay["workers"],
        window=replay["window"],
        progress_seconds=60,
        checkpoint_seconds=0,
        **extra,
    )
    result = run_restore(config, s3=migration.s3)
    assert isinstance(result, RestoreResult) and result.state == "completed"
    return result


@SETTINGS
@given(ops=st.lists(OPS, max_size=40), replay=REPLAY)
def test_built_histories_replay_to_the_model_and_again_to_the_same(ops, replay, sides, bucket) -> None:
    db = new_db_name("p")
    events, model = history(db, ops)
    migration = new_migration(bucket)
    migration.write_segments(events, replay["per_segment"], replay["compression"])
    expected = {
        coll: {bson.encode({"_id": k})[4:-1]: bson.encode(doc) for k, doc in docs.items()}
        for coll, docs in model.items()
        if docs
    }
    try:
        restore(migration, sides.target_uri, replay)
        assert raw_contents(sides.target, db) == expected
        restore(migration, sides.target_uri, replay, from_seq=1)
        assert raw_contents(sides.target, db) == expected
    finally:
        sides.target.drop_database(db)


SOURCE_OPS = st.one_of(
    st.tuples(st.just("insert_or_replace"), st.sampled_from(COLLS), KEYS, VALUES),
    st.tuples(st.just("update"), st.sampled_from(COLLS), KEYS, VALUES),
    st.tuples(st.just("delete"), st.sampled_from(COLLS), KEYS),
    st.tuples(st.just("drop"), st.sampled_from(COLLS)),
    st.tuples(st.just("rename"), st.sampled_from([("c1", "c2"), ("c2", "c1")])),
)


def run_on_source(database, ops: list[tuple]) -> None:
    for op in ops:
        kind, coll = op[0], database[op[1]] if isinstance(op[1], str) else None
        if kind == "insert_or_replace":
            if coll.find_one({"_id": op[2]}) is None:
                coll.insert_one(document(op[2], op[3]))
            else:
                coll.replace_one({"_id": op[2]}, {"w": op[3], "nested": {"list": [op[3]] * op[3]}})
        elif kind == "update":
            update = [
                {"$set": {"v": op[3], "n.x": op[3]}},
                {"$unset": {"n": ""}},
                {"$push": {"arr": op[3]}},
                {"$pop": {"arr": 1}},
            ][op[3] % 4]
            coll.update_one({"_id": op[2]}, update)
        elif kind == "delete":
            coll.delete_one({"_id": op[2]})
        elif kind == "drop":
            coll.drop()
        elif kind == "rename" and op[1][0] in database.list_collection_names():
            database[op[1][0]].rename(op[1][1], dropTarget=True)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(SOURCE_OPS, max_size=30), replay=REPLAY, lookup=st.booleans())
def test_captured_histories_replay_to_the_source_and_again_to_the_same(
    ops, replay, lookup, sides, bucket
) -> None:
    from restore_streams import enable_streams

    db = new_db_name("q")
    enable_streams(sides.source, db)
    migration = new_migration(bucket)
    try:
        events = capture(sides.source, db, lambda database: run_on_source(database, ops), lookup=lookup)
        migration.write_segments(events, replay["per_segment"], replay["compression"])
        restore(migration, sides.target_uri, replay)
        expected = raw_contents(sides.source, db)
        assert raw_contents(sides.target, db) == expected
        restore(migration, sides.target_uri, replay, from_seq=1)
        assert raw_contents(sides.target, db) == expected
    finally:
        sides.source.drop_database(db)
        sides.target.drop_database(db)
