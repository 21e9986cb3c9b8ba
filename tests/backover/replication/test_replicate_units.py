"""The replicator's pure parts: namespaces and watch scope, token times, segment rolling, the
drain rule, checkpoint validation, configuration."""

from __future__ import annotations

import bson
import pytest
from bson.regex import Regex
from bson.timestamp import Timestamp

from backover.connections import DatabaseUri
from backover.errors import JobFailed, UsageError
from backover.layout import MigrationLayout
from backover.namespaces import Namespace, parse_all
from backover.replication import drain, tokens
from backover.replication.checkpoint import validate
from backover.replication.config import ReplicateConfig
from backover.replication.events import RawEvent, pack, unpack
from backover.replication.namespaces import NamespaceFilter, WatchScope, narrowest_scope
from backover.replication.retry import Backoff
from backover.replication.segment_writer import SegmentBuffer


@pytest.mark.parametrize(
    ("namespaces", "scope"),
    [
        pytest.param(["shop.orders"], WatchScope("collection", "shop", "orders"), id="one-collection"),
        pytest.param(["shop"], WatchScope("database", "shop"), id="one-database"),
        pytest.param(["shop.orders", "shop.carts"], WatchScope("database", "shop"), id="two-collections"),
        pytest.param(
            ["shop", "shop.orders"], WatchScope("database", "shop"), id="database-and-its-collection"
        ),
        pytest.param(["shop.orders", "billing"], WatchScope("cluster"), id="two-databases"),
    ],
)
def test_the_narrowest_scope_covering_the_namespaces(namespaces: list[str], scope: WatchScope) -> None:
    assert narrowest_scope(parse_all(namespaces)) == scope


def test_namespace_parsing() -> None:
    assert parse_all(["shop", "shop.orders", "a.b.c"]) == (Namespace("a", "b.c"), Namespace("shop"))
    for bad in ["", ".x", "shop.", "sh op", "admin", "local.x", "shop.system.views", "a$b"]:
        with pytest.raises(UsageError):
            Namespace.parse(bad)
    with pytest.raises(UsageError, match="--namespace"):
        narrowest_scope(())


def test_the_filter_keeps_the_wanted_namespaces_and_ddl_touching_them() -> None:
    wanted = parse_all(["shop.orders", "billing"])
    keep = NamespaceFilter(wanted).keep
    assert keep({"ns": {"db": "shop", "coll": "orders"}})
    assert not keep({"ns": {"db": "shop", "coll": "carts"}})
    assert keep({"ns": {"db": "billing", "coll": "anything"}})
    assert keep({"ns": {"db": "billing"}})  # dropDatabase
    assert keep({"ns": {"db": "shop"}})  # dropDatabase of a database holding a wanted collection
    assert keep(
        {"ns": {"db": "shop", "coll": "tmp"}, "to": {"db": "shop", "coll": "orders"}}
    )  # rename onto it
    assert keep({"operationType": "invalidate"})
    assert keep({"ns": {"coll": "orders"}})  # a namespace without a database: kept, never dropped
    assert not NamespaceFilter.needed(parse_all(["shop"]), WatchScope("database", "shop"))
    assert NamespaceFilter.needed(parse_all(["shop.a", "shop.b"]), WatchScope("database", "shop"))


def test_enable_command_names_the_scope() -> None:
    assert WatchScope("database", "shop").enable_command() == (
        'db.adminCommand({modifyChangeStreams: 1, database: "shop", collection: "", enable: true})'
    )
    assert 'database: "", collection: ""' in WatchScope("cluster").enable_command()


def test_cluster_time_of_keystring_tokens() -> None:
    assert tokens.cluster_time({"_data": "826B09F92C00000006000000000000000700"}) == Timestamp(0x6B09F92C, 6)
    assert tokens.cluster_time({"_data": "0164ABCDEF"}) is None  # another server's format
    assert tokens.cluster_time({"_data": 5}) is None and tokens.cluster_time(None) is None


def test_segments_roll_on_events_bytes_and_age() -> None:
    buffer = SegmentBuffer(max_events=3, max_bytes=100, max_seconds=10)
    ts = [pack(Timestamp(100, i)) for i in range(1, 5)]
    assert not buffer.add(b"a" * 10, ts[0], now=0.0)
    assert not buffer.add(b"b" * 10, ts[1], now=1.0)
    assert not buffer.due(9.9) and buffer.due(10.0)
    assert buffer.add(b"c" * 10, ts[2], now=2.0)  # third event: full
    batch = buffer.take()
    assert (batch.events, batch.first, batch.last, batch.size) == (
        [b"a" * 10, b"b" * 10, b"c" * 10],
        Timestamp(100, 1),
        Timestamp(100, 3),
        30,
    )
    assert len(buffer) == 0 and not buffer.due(100.0)
    assert buffer.add(b"x" * 100, ts[3], now=50.0)  # max bytes reached by one event
    assert not buffer.due(59.0) and buffer.due(60.0)  # the age counts from the first event of a segment


def test_keep_first_trims_the_buffer() -> None:
    buffer = SegmentBuffer(max_events=10, max_bytes=1000, max_seconds=10)
    for i in range(4):
        buffer.add(bytes([i]) * (i + 1), i + 1, now=0.0)
    buffer.keep_first(2, 2)
    assert buffer.events == [b"\x00", b"\x01\x01"] and buffer.size == 3 and buffer.last == 2
    buffer.keep_first(0, None)
    assert len(buffer) == 0 and buffer.first is None


def test_raw_events_read_their_head_without_decoding() -> None:
    body = {
        "_id": {"_data": "826B09F92C0000000601"},
        "operationType": "update",
        "clusterTime": Timestamp(1700000000, 7),
        "fullDocument": {"a": 1},
    }
    event = RawEvent(bson.encode(body))
    assert dict(event["_id"]) == body["_id"] and event.operation_type == "update"
    assert unpack(event.cluster_time) == Timestamp(1700000000, 7)
    assert event["fullDocument"]["a"] == 1 and event.data == bson.encode(body)
    # Another field order (or type) falls back to the normal decoding.
    odd = RawEvent(
        bson.encode(
            {
                "clusterTime": Timestamp(5, 1),
                "x": Regex("a"),
                "operationType": "insert",
                "_id": {"_data": "82"},
            }
        )
    )
    assert (odd.operation_type, unpack(odd.cluster_time), dict(odd["_id"])) == (
        "insert",
        Timestamp(5, 1),
        {"_data": "82"},
    )
    assert pack(Timestamp(2, 0)) > pack(Timestamp(1, 2**32 - 1))


def test_the_drain_rule() -> None:
    f = Timestamp(100, 5)
    assert not drain.past(Timestamp(100, 5), f) and drain.past(Timestamp(100, 6), f)
    assert drain.reached(Timestamp(100, 5), f) and drain.reached(Timestamp(101, 0), f)
    assert not drain.reached(Timestamp(100, 4), f) and not drain.reached(None, f)
    assert drain.parse_request({"until": f}) == f
    assert drain.parse_request({"until": "100:5"}) is None and drain.parse_request(None) is None


def test_checkpoint_validation() -> None:
    good = {
        "migration_id": "m",
        "last_seq": 3,
        "resume_token": {"_data": "82"},
        "state": "running",
        "last_cluster_time": Timestamp(1, 1),
        "unknown_field": 1,
    }
    assert validate(good, "k").last_seq == 3
    for bad in [
        {"last_seq": 1},
        {**good, "last_seq": -1},
        {**good, "last_seq": "3"},
        {**good, "state": "dancing"},
        {**good, "resume_token": "x"},
        {**good, "last_cluster_time": 5},
        ["not", "a", "dict"],
    ]:
        with pytest.raises(JobFailed):
            validate(bad, "k")


def test_config_is_validated() -> None:
    layout = MigrationLayout("bkt", "p", "m")
    uri = DatabaseUri("mongodb://h/")
    assert ReplicateConfig(layout, uri).max_events == 100_000
    for bad in [
        {"compression": "lz4"},
        {"max_events": 0},
        {"max_bytes": 0},
        {"max_seconds": 0},
        {"heartbeat_seconds": -1},
    ]:
        with pytest.raises(UsageError):
            ReplicateConfig(layout, uri, **bad)


def test_backoff_doubles_to_its_cap_and_gives_up() -> None:
    backoff = Backoff(first=1.0, cap=4.0, give_up_after=3600)
    delays = []
    for _ in range(5):
        assert backoff.failed()
        delays.append(backoff.delay())
    assert [round(d / b, 1) <= 1.0 for d, b in zip(delays, [1, 2, 4, 4, 4], strict=True)] == [True] * 5
    assert all(d >= b / 2 for d, b in zip(delays, [1, 2, 4, 4, 4], strict=True))
    assert not Backoff(give_up_after=0).failed()
    backoff.reset()
    assert backoff.attempts == 0
