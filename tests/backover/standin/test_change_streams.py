"""Change streams of the stand-in server, driven through plain pymongo ``watch()``.

The servers here run on a :class:`ManualClock`: a test lets time pass on the server with
``clock.advance(seconds)`` instead of sleeping (cluster times, retention, idle cursors). One test
runs the same checks on the machine's clock, end to end.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from bson.timestamp import Timestamp
from hypothesis import given
from hypothesis import strategies as st
from pymongo import MongoClient
from pymongo.change_stream import ChangeStream
from pymongo.errors import CursorNotFound, OperationFailure

from backover_sandbox.standin.changestreams import ResumeToken
from backover_sandbox.standin.clock import ManualClock, SystemClock, WallClock
from backover_sandbox.standin.cursors import IDLE_TIMEOUT_SECONDS
from backover_sandbox.standin.server import ServerConfig, StandinServer, start_in_thread

COMMON = ["_id", "operationType", "clusterTime", "wallTime"]


# -- fixtures -----------------------------------------------------------------------------------
def _start(flavour: str, clock: WallClock, retention: float | None = 3600.0) -> StandinServer:
    return start_in_thread(
        ServerConfig(flavour=flavour, port=0, auth=False, retention_seconds=retention, clock=clock)
    )


def _client(server: StandinServer) -> MongoClient:
    return MongoClient(f"mongodb://127.0.0.1:{server.port}/?directConnection=true", retryWrites=False)


@pytest.fixture
def clock() -> ManualClock:
    """The servers' clock in this test: time passes only through ``clock.advance(seconds)``."""
    return ManualClock()


@pytest.fixture
def server(clock: ManualClock) -> Iterator[StandinServer]:
    srv = _start("mongodb", clock)
    yield srv
    srv.stop()


@pytest.fixture
def short_history(clock: ManualClock) -> Iterator[StandinServer]:
    """A mongodb stand-in that keeps one second of change history."""
    srv = _start("mongodb", clock, retention=1.0)
    yield srv
    srv.stop()


@pytest.fixture
def client(server: StandinServer) -> Iterator[MongoClient]:
    c = _client(server)
    yield c
    c.close()


@pytest.fixture
def docdb(clock: ManualClock) -> Iterator[StandinServer]:
    srv = _start("documentdb", clock)
    yield srv
    srv.stop()


@pytest.fixture
def docdb_client(docdb: StandinServer) -> Iterator[MongoClient]:
    c = _client(docdb)
    yield c
    c.close()


def _next(stream: ChangeStream, timeout: float = 5.0) -> dict:
    """The next event, waiting up to ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        event = stream.try_next()
        if event is not None:
            return event
    raise AssertionError("no change event arrived")


def _drain(stream: ChangeStream, n: int) -> list[dict]:
    return [_next(stream) for _ in range(n)]


def _watch(target, *args, **kwargs) -> ChangeStream:
    return target.watch(*args, max_await_time_ms=50, **kwargs)


# -- resume tokens ------------------------------------------------------------------------------
@given(
    st.lists(
        st.tuples(
            st.integers(0, 2**32 - 1),
            st.integers(0, 2**32 - 1),
            st.integers(1, 2**63 - 1),
            st.sampled_from([0, 1, 2]),
        ),
        min_size=2,
        max_size=10,
    )
)
def test_tokens_sort_as_strings_like_positions(positions: list[tuple[int, int, int, int]]) -> None:
    tokens = [ResumeToken(*p) for p in positions]
    assert sorted(t.data for t in tokens) == [t.data for t in sorted(tokens)]
    for token in tokens:
        assert ResumeToken.parse(token.to_doc()) == token


def test_malformed_token_fails_to_parse(client: MongoClient) -> None:
    with pytest.raises(OperationFailure) as e:
        client.db.c.watch(resume_after={"_data": "not a token"})
    assert e.value.code == 9


# -- event formats ------------------------------------------------------------------------------
def test_collection_stream_events_in_mongodb_field_order(client: MongoClient) -> None:
    coll = client.shop.orders
    stream = _watch(coll)
    coll.insert_one({"_id": 1, "a": 1, "b": [1, 2, 3]})
    coll.update_one({"_id": 1}, {"$set": {"c": 3}, "$unset": {"a": ""}})
    coll.replace_one({"_id": 1}, {"z": 26})
    coll.delete_one({"_id": 1})
    insert, update, replace, delete = _drain(stream, 4)

    assert list(insert) == [*COMMON, "fullDocument", "ns", "documentKey"]
    assert insert["operationType"] == "insert"
    assert insert["fullDocument"] == {"_id": 1, "a": 1, "b": [1, 2, 3]}
    assert insert["ns"] == {"db": "shop", "coll": "orders"}
    assert insert["documentKey"] == {"_id": 1}
    assert isinstance(insert["clusterTime"], Timestamp)
    assert isinstance(insert["wallTime"], datetime)

    assert list(update) == [*COMMON, "ns", "documentKey", "updateDescription"]
    assert list(update["updateDescription"]) == ["updatedFields", "removedFields", "truncatedArrays"]
    assert update["updateDescription"]["updatedFields"] == {"c": 3}
    assert update["updateDescription"]["removedFields"] == ["a"]
    assert update["updateDescription"]["truncatedArrays"] == []

    assert list(replace) == [*COMMON, "fullDocument", "ns", "documentKey"]
    assert replace["fullDocument"] == {"_id": 1, "z": 26}
    assert list(delete) == [*COMMON, "ns", "documentKey"]
    assert delete["documentKey"] == {"_id": 1}

    times = [e["clusterTime"] for e in (insert, update, replace, delete)]
    assert times == sorted(times) and len(set(times)) == 4
    tokens = [e["_id"]["_data"] for e in (insert, update, replace, delete)]
    assert tokens == sorted(tokens)


def test_drop_gives_drop_then_invalidate_and_closes(client: MongoClient) -> None:
    coll = client.shop.orders
    coll.insert_one({"_id": 0})
    stream = _watch(coll)
    coll.drop()
    drop, invalidate = _drain(stream, 2)
    assert list(drop) == [*COMMON, "ns"]
    assert drop["operationType"] == "drop" and drop["ns"] == {"db": "shop", "coll": "orders"}
    assert list(invalidate) == COMMON and invalidate["operationType"] == "invalidate"
    assert invalidate["clusterTime"] == drop["clusterTime"]
    assert not stream.alive


def test_rename_gives_rename_with_to_then_invalidate(client: MongoClient) -> None:
    coll = client.shop.orders
    coll.insert_one({"_id": 0})
    stream = _watch(coll)
    coll.rename("archive")
    rename, invalidate = _drain(stream, 2)
    assert list(rename) == [*COMMON, "ns", "to"]
    assert rename["ns"] == {"db": "shop", "coll": "orders"}
    assert rename["to"] == {"db": "shop", "coll": "archive"}
    assert invalidate["operationType"] == "invalidate"


def test_start_after_invalidate_works_and_resume_after_fails(client: MongoClient) -> None:
    coll = client.shop.orders
    coll.insert_one({"_id": 0})
    stream = _watch(coll)
    coll.drop()
    invalidate = _drain(stream, 2)[1]
    coll.insert_one({"_id": "again"})
    with pytest.raises(OperationFailure) as e:
        coll.watch(resume_after=invalidate["_id"])
    assert e.value.code == 260
    restarted = _watch(coll, start_after=invalidate["_id"])
    assert _next(restarted)["documentKey"] == {"_id": "again"}


def test_resume_after_drop_event_gives_the_invalidate_again(client: MongoClient) -> None:
    coll = client.shop.orders
    coll.insert_one({"_id": 0})
    stream = _watch(coll)
    coll.drop()
    drop = _next(stream)
    again = _watch(coll, resume_after=drop["_id"])
    assert _next(again)["operationType"] == "invalidate"


# -- levels -------------------------------------------------------------------------------------
def test_database_stream_sees_all_collections_then_drop_database(client: MongoClient) -> None:
    db = client.shop
    stream = _watch(db)
    db.a.insert_one({"_id": 1})
    db.b.insert_one({"_id": 2})
    client.other.c.insert_one({"_id": 3})
    db.a.drop()
    client.drop_database("shop")
    events = _drain(stream, 6)
    assert [(e["operationType"], e.get("ns")) for e in events] == [
        ("insert", {"db": "shop", "coll": "a"}),
        ("insert", {"db": "shop", "coll": "b"}),
        ("drop", {"db": "shop", "coll": "a"}),
        ("drop", {"db": "shop", "coll": "b"}),
        ("dropDatabase", {"db": "shop"}),
        ("invalidate", None),
    ]
    assert list(events[4]) == [*COMMON, "ns"]
    assert not stream.alive


def test_cluster_stream_sees_every_user_database(client: MongoClient) -> None:
    stream = _watch(client)
    client.one.c.insert_one({"_id": 1})
    client.admin.c.insert_one({"_id": "skipped"})
    client.two.d.insert_one({"_id": 2})
    client.drop_database("one")
    events = _drain(stream, 4)
    assert [(e["operationType"], e["ns"]) for e in events] == [
        ("insert", {"db": "one", "coll": "c"}),
        ("insert", {"db": "two", "coll": "d"}),
        ("drop", {"db": "one", "coll": "c"}),
        ("dropDatabase", {"db": "one"}),
    ]
    assert stream.try_next() is None and stream.alive


def test_internal_namespaces_are_refused(client: MongoClient) -> None:
    with pytest.raises(OperationFailure) as e:
        client.admin.watch()
    assert e.value.code == 73
    with pytest.raises(OperationFailure) as e:
        client.local.oplog.watch()
    assert e.value.code == 73


# -- resuming -----------------------------------------------------------------------------------
def test_resume_after_client_restart_loses_and_repeats_nothing(server: StandinServer) -> None:
    first = _client(server)
    coll = first.shop.orders
    stream = _watch(coll)
    coll.insert_many([{"_id": i} for i in range(10)])
    seen = [e["documentKey"]["_id"] for e in _drain(stream, 5)]
    token = stream.resume_token
    first.close()

    second = _client(server)
    second.shop.orders.insert_many([{"_id": i} for i in range(10, 15)])
    resumed = _watch(second.shop.orders, resume_after=token)
    seen += [e["documentKey"]["_id"] for e in _drain(resumed, 10)]
    assert seen == list(range(15))
    assert resumed.try_next() is None
    second.close()


def test_start_at_operation_time_is_inclusive(client: MongoClient) -> None:
    coll = client.shop.orders
    coll.insert_one({"_id": "before"})
    with client.start_session() as session:
        coll.insert_one({"_id": "at"}, session=session)
        at = session.operation_time
    coll.insert_one({"_id": "after"})
    stream = _watch(coll, start_at_operation_time=at)
    assert [e["documentKey"]["_id"] for e in _drain(stream, 2)] == ["at", "after"]
    assert _drain(_watch(coll, start_at_operation_time=at), 1)[0]["clusterTime"] == at


@pytest.mark.parametrize(
    "manual", [pytest.param(True, id="manual-clock"), pytest.param(False, id="system-clock")]
)
def test_post_batch_resume_token_advances_on_empty_batches(manual: bool) -> None:
    clock = ManualClock() if manual else SystemClock()

    def let_pass(seconds: float) -> None:
        clock.advance(seconds) if isinstance(clock, ManualClock) else time.sleep(seconds)

    srv = _start("mongodb", clock)
    client = _client(srv)
    try:
        coll = client.shop.orders
        stream = _watch(coll)
        assert stream.try_next() is None
        first = stream.resume_token
        client.shop.elsewhere.insert_one({"_id": 1})  # not on this stream
        let_pass(1.1)  # the cluster time moves on with the server's clock, writes or not
        assert stream.try_next() is None
        later = stream.resume_token
        assert later != first and later["_data"] > first["_data"]
        coll.insert_one({"_id": 2})
        event = _next(stream)
        assert event["_id"]["_data"] > later["_data"]
        # Resuming from an empty batch's token misses nothing.
        assert _next(_watch(coll, resume_after=later))["_id"] == event["_id"]
    finally:
        client.close()
        srv.stop()


def test_an_idle_stream_token_stays_put_while_no_time_passes(client: MongoClient, clock: ManualClock) -> None:
    stream = _watch(client.shop.orders)
    assert stream.try_next() is None
    first = stream.resume_token
    assert stream.try_next() is None
    assert stream.resume_token == first  # no write, no time: nothing to report
    clock.advance(1)
    assert stream.try_next() is None
    assert stream.resume_token["_data"] > first["_data"]


def test_cluster_times_increase_strictly_whether_or_not_the_clock_moves(
    client: MongoClient, clock: ManualClock
) -> None:
    coll = client.shop.orders
    stream = _watch(coll)
    for i in range(3):
        coll.insert_one({"_id": f"same-second-{i}"})
    clock.advance(0.2)  # still the same second (or the next one): never an earlier time
    coll.insert_one({"_id": "a moment later"})
    clock.advance(5)
    coll.insert_one({"_id": "five seconds later"})
    events = _drain(stream, 5)
    times = [(e["clusterTime"].time, e["clusterTime"].inc) for e in events]
    assert times == sorted(set(times))  # strictly increasing
    assert events[-1]["clusterTime"].time == int(clock.time()) and events[-1]["clusterTime"].inc == 1
    wall = events[-1]["wallTime"].replace(tzinfo=UTC)  # the server's time of the write
    assert abs(wall - datetime.fromtimestamp(clock.time(), UTC)).total_seconds() < 0.001
    with pytest.raises(ValueError, match="only moves forward"):
        clock.advance(-1)


def test_history_lost_when_resume_point_expired(short_history: StandinServer, clock: ManualClock) -> None:
    c = _client(short_history)
    coll = c.shop.orders
    stream = _watch(coll)
    coll.insert_one({"_id": 1})
    token = _next(stream)["_id"]
    with c.start_session() as session:
        coll.insert_one({"_id": 2}, session=session)
        at = session.operation_time
    starts = ({"resume_after": token}, {"start_after": token}, {"start_at_operation_time": at})
    clock.advance(0.9)
    coll.insert_one({"_id": 3})  # within the window: nothing is forgotten yet
    for kwargs in starts:
        coll.watch(**kwargs).close()
    clock.advance(0.2)
    coll.insert_one({"_id": 4})  # expires the entries older than one second
    for kwargs in starts:
        with pytest.raises(OperationFailure) as e:
            coll.watch(**kwargs)
        assert e.value.code == 286, kwargs
        assert e.value.has_error_label("NonResumableChangeStreamError"), kwargs
        assert "Resume of change stream was not possible" in str(e.value)
    c.close()


def test_history_lost_on_get_more_of_a_lagging_stream(
    short_history: StandinServer, clock: ManualClock
) -> None:
    c = _client(short_history)
    coll = c.shop.orders
    stream = _watch(coll, batch_size=1)
    coll.insert_many([{"_id": i} for i in range(3)])
    _next(stream)  # the rest wait for the next getMore
    clock.advance(1.5)
    coll.insert_one({"_id": "late"})
    with pytest.raises(OperationFailure) as e:
        for _ in range(5):
            stream.try_next()
    assert e.value.code == 286 and e.value.has_error_label("NonResumableChangeStreamError")
    c.close()


def test_an_idle_cursor_is_reaped_after_ten_minutes_of_server_time(
    client: MongoClient, clock: ManualClock
) -> None:
    coll = client.shop.orders
    coll.insert_many([{"_id": i} for i in range(6)])
    kept, idle = coll.find(batch_size=2), coll.find(batch_size=2)
    assert [next(kept)["_id"], next(idle)["_id"]] == [0, 0]
    clock.advance(IDLE_TIMEOUT_SECONDS - 1)
    assert [d["_id"] for d in (next(kept), next(kept), next(kept))] == [1, 2, 3]  # a getMore: kept alive
    next(idle)  # the rest of its first batch: no getMore, so the server still counts it as idle
    clock.advance(2)
    assert next(kept)["_id"] == 4
    with pytest.raises(CursorNotFound) as e:
        next(idle)
    assert e.value.code == 43


def test_server_status_reports_the_server_clock(client: MongoClient, clock: ManualClock) -> None:
    before = client.admin.command("serverStatus")
    clock.advance(3600)
    after = client.admin.command("serverStatus")
    assert after["uptime"] - before["uptime"] == 3600
    assert (after["localTime"] - before["localTime"]).total_seconds() == pytest.approx(3600, abs=0.001)


# -- fullDocument -------------------------------------------------------------------------------
def test_update_lookup_reads_the_current_document(client: MongoClient) -> None:
    coll = client.shop.orders
    stream = _watch(coll, full_document="updateLookup")
    coll.insert_one({"_id": 1, "n": 0})
    coll.update_one({"_id": 1}, {"$inc": {"n": 1}})
    coll.update_one({"_id": 1}, {"$inc": {"n": 1}})
    insert, first, second = _drain(stream, 3)
    assert insert["fullDocument"] == {"_id": 1, "n": 0}
    assert first["fullDocument"] == {"_id": 1, "n": 2}  # looked up at read time
    assert list(first) == [*COMMON, "fullDocument", "ns", "documentKey", "updateDescription"]
    coll.update_one({"_id": 1}, {"$inc": {"n": 1}})
    coll.delete_one({"_id": 1})
    update, delete = _drain(stream, 2)
    assert "fullDocument" in update and update["fullDocument"] is None
    assert "fullDocument" not in delete


def test_mutually_exclusive_start_options(client: MongoClient) -> None:
    token = {"_data": ResumeToken(1, 1, 1, 1).data}
    stage = {"$changeStream": {"resumeAfter": token, "startAtOperationTime": Timestamp(1, 1)}}
    with pytest.raises(OperationFailure) as e:
        client.shop.command({"aggregate": "orders", "pipeline": [stage], "cursor": {}})
    assert e.value.code == 40674


# -- pipelines ----------------------------------------------------------------------------------
def test_match_stage_filters_events(client: MongoClient) -> None:
    coll = client.shop.orders
    stream = _watch(coll, [{"$match": {"operationType": "insert", "fullDocument.qty": {"$gt": 1}}}])
    coll.insert_many([{"_id": 1, "qty": 1}, {"_id": 2, "qty": 5}])
    coll.delete_one({"_id": 2})
    coll.insert_one({"_id": 3, "qty": 9})
    assert [e["documentKey"]["_id"] for e in _drain(stream, 2)] == [2, 3]
    assert stream.try_next() is None


def test_project_stage_keeps_the_resume_token(client: MongoClient) -> None:
    coll = client.shop.orders
    stream = _watch(coll, [{"$project": {"operationType": 1, "documentKey": 1}}])
    coll.insert_one({"_id": 1})
    assert list(_next(stream)) == ["_id", "operationType", "documentKey"]


def test_allowed_stage_the_standin_does_not_run_is_refused_by_name(client: MongoClient) -> None:
    with pytest.raises(OperationFailure) as e:
        client.shop.orders.watch([{"$addFields": {"x": 1}}])
    assert e.value.code == 40324 and "$addFields" in str(e.value) and "stand-in" in str(e.value)


def test_list_change_streams_and_modify_are_unknown_on_mongodb(client: MongoClient) -> None:
    with pytest.raises(OperationFailure) as e:
        client.admin.command({"modifyChangeStreams": 1, "database": "", "collection": "", "enable": True})
    assert e.value.code == 59
    with pytest.raises(OperationFailure) as e:
        client.admin.command({"aggregate": 1, "pipeline": [{"$listChangeStreams": {}}], "cursor": {}})
    assert e.value.code == 40324
    assert "Unrecognized pipeline stage name: '$listChangeStreams'" in str(e.value)


# -- DocumentDB ---------------------------------------------------------------------------------
def _modify(client: MongoClient, database: str, collection: str, enable: bool) -> None:
    client.admin.command(
        {"modifyChangeStreams": 1, "database": database, "collection": collection, "enable": enable}
    )


def _listed(client: MongoClient) -> list[dict]:
    reply = client.admin.command({"aggregate": 1, "pipeline": [{"$listChangeStreams": 1}], "cursor": {}})
    return reply["cursor"]["firstBatch"]


def _refused(target) -> OperationFailure:
    with pytest.raises(OperationFailure) as e:
        target.watch()
    return e.value


def test_documentdb_needs_modify_change_streams_at_each_level(docdb_client: MongoClient) -> None:
    c = docdb_client
    error = _refused(c.shop.orders)
    assert error.code == 136 and "modifyChangeStreams" in str(error)

    _modify(c, "shop", "orders", True)
    stream = _watch(c.shop.orders)
    assert _refused(c.shop).code == 136
    _modify(c, "shop", "", True)
    db_stream = _watch(c.shop)
    assert _refused(c).code == 136
    _modify(c, "", "", True)
    cluster_stream = _watch(c)
    assert _listed(c) == [
        {"database": "", "collection": ""},
        {"database": "shop", "collection": ""},
        {"database": "shop", "collection": "orders"},
    ]
    c.shop.orders.insert_one({"_id": 1})
    for s in (stream, db_stream, cluster_stream):
        assert _next(s)["documentKey"] == {"_id": 1}

    for database, collection in (("", ""), ("shop", "")):
        _modify(c, database, collection, False)
    assert _listed(c) == [{"database": "shop", "collection": "orders"}]
    assert _refused(c.shop).code == 136
    _modify(c, "shop", "orders", False)
    assert _refused(c.shop.orders).code == 136


def test_documentdb_streams_only_changes_made_while_enabled(docdb_client: MongoClient) -> None:
    c = docdb_client
    coll = c.shop.orders
    with c.start_session() as session:
        coll.insert_one({"_id": "before"}, session=session)
        before = session.operation_time
    _modify(c, "shop", "orders", True)
    with pytest.raises(OperationFailure) as e:
        coll.watch(start_at_operation_time=before)
    assert e.value.code == 136
    stream = _watch(coll)
    coll.insert_one({"_id": "on"})
    assert _next(stream)["documentKey"] == {"_id": "on"}
    _modify(c, "shop", "orders", False)
    coll.insert_one({"_id": "off"})
    _modify(c, "shop", "orders", True)
    coll.insert_one({"_id": "on again"})
    assert _next(stream)["documentKey"] == {"_id": "on again"}


def test_documentdb_refuses_pre_and_post_images(docdb_client: MongoClient) -> None:
    _modify(docdb_client, "", "", True)
    coll = docdb_client.shop.orders
    for kwargs in (
        {"full_document_before_change": "whenAvailable"},
        {"full_document": "whenAvailable"},
        {"full_document": "required"},
    ):
        with pytest.raises(OperationFailure) as e:
            coll.watch(**kwargs)
        assert e.value.code == 2, kwargs


def test_documentdb_update_lookup(docdb_client: MongoClient) -> None:
    _modify(docdb_client, "shop", "", True)
    coll = docdb_client.shop.orders
    stream = _watch(coll, full_document="updateLookup")
    coll.insert_one({"_id": 1, "v": 1})
    coll.update_one({"_id": 1}, {"$set": {"v": 2}})
    assert _drain(stream, 2)[1]["fullDocument"] == {"_id": 1, "v": 2}


def test_documentdb_drop_invalidates_collection_stream(docdb_client: MongoClient) -> None:
    _modify(docdb_client, "shop", "orders", True)
    coll = docdb_client.shop.orders
    coll.insert_one({"_id": 1})
    stream = _watch(coll)
    coll.drop()
    assert [e["operationType"] for e in _drain(stream, 2)] == ["drop", "invalidate"]
    assert not stream.alive


def test_batch_size_one_splits_an_event_from_its_invalidate(client: MongoClient) -> None:
    coll = client.shop.orders
    coll.insert_one({"_id": 0})
    stream = _watch(coll, batch_size=1)
    coll.drop()
    drop = _next(stream)
    assert stream.alive and stream.resume_token == drop["_id"]
    assert _next(stream)["operationType"] == "invalidate"
    assert not stream.alive


def test_start_at_a_future_time_skips_earlier_events(client: MongoClient, clock: ManualClock) -> None:
    coll = client.shop.orders
    with client.start_session() as session:
        coll.insert_one({"_id": "now"}, session=session)
        now = session.operation_time
    stream = _watch(coll, start_at_operation_time=Timestamp(now.time + 2, 0))
    coll.insert_one({"_id": "too early"})
    assert stream.try_next() is None
    clock.advance(2.1)
    coll.insert_one({"_id": "late enough"})
    assert _next(stream)["documentKey"] == {"_id": "late enough"}


def test_full_document_before_change_when_available_is_null_on_mongodb(client: MongoClient) -> None:
    coll = client.shop.orders
    stream = _watch(coll, full_document_before_change="whenAvailable")
    coll.insert_one({"_id": 1})
    coll.delete_one({"_id": 1})
    insert, delete = _drain(stream, 2)
    assert "fullDocumentBeforeChange" not in insert
    assert list(delete) == [*COMMON, "ns", "documentKey", "fullDocumentBeforeChange"]
    assert delete["fullDocumentBeforeChange"] is None


def test_cluster_stream_needs_read_on_every_database() -> None:
    srv = start_in_thread(ServerConfig(flavour="mongodb", port=0, root_user="root", root_password="pw"))
    try:
        srv.auth.create_user("shop", "reader", "pw", ["read"])
        srv.auth.create_user("admin", "everything", "pw", ["readAnyDatabase"])
        base = f"mongodb://{{}}:pw@127.0.0.1:{srv.port}/?directConnection=true&authSource={{}}"
        with MongoClient(base.format("reader", "shop")) as reader:
            _watch(reader.shop.orders).close()
            _watch(reader.shop).close()
            for target in (reader, reader.other):
                with pytest.raises(OperationFailure) as e:
                    target.watch()
                assert e.value.code == 13
        with MongoClient(base.format("everything", "admin")) as everything:
            _watch(everything).close()
    finally:
        srv.stop()


def test_documentdb_database_stream_sees_rename_and_drop_database(docdb_client: MongoClient) -> None:
    c = docdb_client
    _modify(c, "shop", "", True)
    c.shop.orders.insert_one({"_id": 1})
    stream = _watch(c.shop)
    c.shop.orders.rename("archive")
    c.drop_database("shop")
    events = _drain(stream, 4)
    assert [e["operationType"] for e in events] == ["rename", "drop", "dropDatabase", "invalidate"]
    assert events[0]["to"] == {"db": "shop", "coll": "archive"}


def test_documentdb_list_change_streams_accepts_a_match(docdb_client: MongoClient) -> None:
    _modify(docdb_client, "shop", "", True)
    _modify(docdb_client, "crm", "people", True)
    reply = docdb_client.admin.command(
        {
            "aggregate": 1,
            "cursor": {},
            "pipeline": [{"$listChangeStreams": 1}, {"$match": {"database": "crm"}}],
        }
    )
    assert reply["cursor"]["firstBatch"] == [{"database": "crm", "collection": "people"}]
    with pytest.raises(OperationFailure) as e:
        docdb_client.admin.command({"modifyChangeStreams": 1, "database": "shop", "enable": True})
    assert e.value.code == 40414
