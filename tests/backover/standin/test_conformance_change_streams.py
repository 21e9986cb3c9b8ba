"""Change-stream errors as MongoDB answers them, written with plain pymongo.

Runs against both stand-in flavours and, when configured, a real server (conftest.py). The
pipeline checks are MongoDB's (its change-stream allowlist); DocumentDB documents no answers for
them, so on a real DocumentDB those cases are skipped with the reason shown.
"""

from __future__ import annotations

import time

import pytest
from pymongo.errors import OperationFailure


def _enable(client, target, db_name: str, coll: str) -> None:
    """DocumentDB streams only what ``modifyChangeStreams`` enabled; MongoDB needs nothing."""
    if target.flavour == "documentdb":
        client.admin.command(
            {"modifyChangeStreams": 1, "database": db_name, "collection": coll, "enable": True}
        )


def _mongodb_answers_only(target) -> None:
    if target.name == "real-documentdb":
        pytest.skip("DocumentDB does not document its answers to invalid change-stream pipelines")


@pytest.mark.parametrize("stage", [{"$noSuchStage": {}}, {"$projection": {"a": 1}}], ids=["no-such", "typo"])
def test_an_unknown_stage_after_change_stream_is_unrecognized(client, target, db_name, stage) -> None:
    _mongodb_answers_only(target)
    client[db_name].create_collection("orders")
    _enable(client, target, db_name, "orders")
    with pytest.raises(OperationFailure) as e:
        client[db_name].orders.watch([stage])
    assert e.value.code == 40324


@pytest.mark.parametrize(
    "stage",
    [
        {"$group": {"_id": "$_id"}},
        {"$sort": {"_id": 1}},
        {"$skip": 100},
        {"$limit": 100},
        {"$unwind": "$_id"},
        {"$lookup": {"from": "c", "as": "as", "localField": "_id", "foreignField": "_id"}},
    ],
    ids=lambda s: next(iter(s)),
)
def test_a_stage_outside_the_allowlist_is_an_illegal_operation(client, target, db_name, stage) -> None:
    _mongodb_answers_only(target)
    client[db_name].create_collection("orders")
    _enable(client, target, db_name, "orders")
    with pytest.raises(OperationFailure) as e:
        client[db_name].orders.watch([stage])
    assert e.value.code == 20  # IllegalOperation: "... is not permitted in a $changeStream pipeline"


def test_projecting_out_the_resume_token_fails_without_resuming(client, target, db_name) -> None:
    _mongodb_answers_only(target)
    coll = client[db_name].orders
    client[db_name].create_collection("orders")
    _enable(client, target, db_name, "orders")
    with coll.watch([{"$project": {"_id": 0}}], max_await_time_ms=50) as stream:
        coll.insert_one({"_id": 1})
        with pytest.raises(OperationFailure) as e:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                stream.try_next()
    assert e.value.code == 280
    assert e.value.has_error_label("NonResumableChangeStreamError")
