"""Transient trouble is retried from the last token without a gap or a duplicate (connections
dropped, the source away for a while, S3 throttling); drain under load stops exactly at F; the
heartbeat advances while idle; lost history and invalidation end in state ``failed``."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import pytest
from bson.raw_bson import RawBSONDocument
from pymongo import MongoClient
from pymongo.errors import PyMongoError
from replicate_s3_proxy import FaultyS3Proxy
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
    tokens_of,
    wait_until,
    write_start,
)

from backover.errors import JobFailed
from backover.s3objects import S3Objects
from backover_sandbox.standin.clock import ManualClock
from backover_sandbox.standin.server import ServerConfig, StandinServer, start_in_thread


class Writer(threading.Thread):
    """Inserts until stopped, carrying on through connection errors (they are expected here)."""

    def __init__(self, uri: str, db: str, pause: float = 0.002) -> None:
        super().__init__(name="test-writer", daemon=True)
        self.client = MongoClient(uri, serverSelectionTimeoutMS=10_000)
        self.coll = self.client[db].items
        self.pause = pause
        self.stopping = threading.Event()
        self.count = 0

    def run(self) -> None:
        i = 0
        while not self.stopping.is_set():
            try:
                self.coll.insert_one({"_id": i, "v": "x" * (i % 50)})
                self.count += 1
            except PyMongoError:
                pass  # the stand-in dropped us: the reference watch says what was written
            i += 1
            time.sleep(self.pause)

    def finish(self) -> None:
        self.stopping.set()
        self.join()
        self.client.close()


@pytest.fixture
def docdb(standins: dict, standin_password: str) -> tuple[StandinServer, str, str]:
    """The shared DocumentDB stand-in, a fresh database with change streams enabled."""
    server = standins["documentdb"]
    uri = server.uri("root", standin_password)
    db = f"res_{uuid.uuid4().hex[:8]}"
    with MongoClient(uri) as client:
        enable_change_streams(client, db)
        client[db].items.insert_one({"_id": "first"})
    return server, uri, db


def _capture_while(uri: str, db: str, bucket: str, trouble, **config) -> tuple[list[bytes], list[bytes]]:
    """Run the replicator while a writer writes and ``trouble()`` happens; drain; return
    (captured events, reference events)."""
    s3 = S3Objects(bucket)
    layout = new_layout(bucket)
    with MongoClient(uri) as client:
        t0 = start_time(client)
        write_start(s3, layout, t0, [db])
        running = start_thread(config_for(layout, uri, **config))
        writer = Writer(uri, db)
        writer.start()
        wait_until(lambda: checkpoint(s3, layout), what="the replicator to start")
        trouble()
        writer.finish()
        until = operation_time(client)
        request_drain(s3, layout, until)
        result = running.wait(120)
        expected = reference_events(raw_target(client, db), t0, until)
    assert result.state == "drained" and writer.count > 0
    return read_events(s3, layout), expected


@pytest.fixture
def own_docdb(standin_password: str) -> Iterator[tuple[StandinServer, str, str]]:
    """A DocumentDB stand-in of this test's own (dropping every connection of the shared one
    would disturb other tests' clients)."""
    server = start_in_thread(
        ServerConfig(flavour="documentdb", root_user="root", root_password=standin_password)
    )
    uri = server.uri("root", standin_password)
    with MongoClient(uri) as client:
        enable_change_streams(client, "dropped")
        client.dropped.items.insert_one({"_id": "first"})
    yield server, uri, "dropped"
    server.stop()


@pytest.mark.slow  # faults go on for seconds by design (drops, a failover, S3 backoffs)
def test_resumes_after_the_source_drops_every_connection(own_docdb: tuple, bucket: str) -> None:
    server, uri, db = own_docdb
    dropped: list[int] = []

    def drop_connections() -> None:
        for _ in range(6):
            time.sleep(0.6)
            dropped.append(server.drop_all_connections())

    captured, expected = _capture_while(uri, db, bucket, drop_connections, max_events=30, max_seconds=0.2)
    assert sum(dropped) >= 6 and len(expected) > 30
    assert tokens_of(captured) == tokens_of(expected)
    assert captured == expected


@pytest.fixture
def restartable() -> Iterator[list[StandinServer]]:
    """A mongodb stand-in of this test's own, restarted on the same port with the same data."""
    servers = [start_in_thread(ServerConfig(flavour="mongodb", auth=False))]
    yield servers
    servers[-1].stop()


def _restart(servers: list[StandinServer], down_for: float) -> None:
    """Stop the server, wait, start a new one on the same port keeping the data (a failover)."""
    old = servers[-1]
    port = old.port
    old.stop()
    time.sleep(down_for)
    new = StandinServer(ServerConfig(flavour="mongodb", auth=False, port=port))
    new.store, new.auth, new.cursors = old.store, old.auth, old.cursors
    new.bind()
    threading.Thread(target=new.serve_forever, daemon=True).start()
    servers.append(new)


@pytest.mark.slow  # faults go on for seconds by design (drops, a failover, S3 backoffs)
def test_resumes_after_the_source_is_away_for_a_while(
    restartable: list[StandinServer], bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Longer than the driver's own single resume attempt: the replicator's backoff takes over."""
    uri = f"mongodb://127.0.0.1:{restartable[0].port}/?directConnection=true"
    db = f"away_{uuid.uuid4().hex[:6]}"
    with MongoClient(uri) as client:
        client[db].items.insert_one({"_id": "first"})
    caplog.set_level("INFO", logger="backover")

    def failover() -> None:
        time.sleep(0.5)
        _restart(restartable, down_for=1.5)
        time.sleep(0.5)

    captured, expected = _capture_while(uri, db, bucket, failover, connect_timeout=0.3, max_events=20)
    assert tokens_of(captured) == tokens_of(expected)
    assert "change stream re-opened" in caplog.text


@pytest.mark.slow  # faults go on for seconds by design (drops, a failover, S3 backoffs)
def test_s3_throttling_and_errors_are_retried(
    docdb: tuple, bucket: str, moto_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Segment PUTs answered 503 SlowDown (botocore retries) and then 403 (the replicator's own
    backoff retries): every event still lands once."""
    _, uri, db = docdb
    with FaultyS3Proxy(moto_server) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        proxy.fail_segment_puts([503, 403, 403])

        def wait_for_faults() -> None:
            wait_until(lambda: proxy.failures_left == 0, what="the injected S3 faults")

        captured, expected = _capture_while(uri, db, bucket, wait_for_faults, max_events=25, max_seconds=0.2)
    assert proxy.failed == 3
    assert tokens_of(captured) == tokens_of(expected)


def test_drain_under_load_with_a_backlog_stops_exactly_at_f(docdb: tuple, bucket: str) -> None:
    """The drain request is there before capture reaches F; writes go on during and after F."""
    _, uri, db = docdb
    s3 = S3Objects(bucket)
    layout = new_layout(bucket)
    with MongoClient(uri) as client:
        t0 = start_time(client)
        write_start(s3, layout, t0, [db])
        writer = Writer(uri, db, pause=0.001)
        writer.start()
        wait_until(lambda: writer.count >= 300, what="a backlog")
        until = operation_time(client)
        request_drain(s3, layout, until)
        result = start_thread(config_for(layout, uri, max_events=50)).wait(120)
        writer.finish()
        later = operation_time(client)
        expected = reference_events(raw_target(client, db), t0, until)
        everything = reference_events(raw_target(client, db), t0, later)
    captured = read_events(s3, layout)
    assert result.state == "drained" and result.drained_until == until
    assert len(captured) >= 300 and captured == expected
    assert len(everything) > len(captured)  # writes after F existed, and were left out
    cp = checkpoint(s3, layout)
    assert cp.state == "drained" and cp.drained_until == until and cp.last_cluster_time <= until


def test_drain_requested_after_capture_read_past_f_leaves_out_buffered_events(
    docdb: tuple, bucket: str
) -> None:
    """The replicator keeps up with a busy writer and reads past F before it sees the request:
    the events after F still in its buffer are left out."""
    _, uri, db = docdb
    s3 = S3Objects(bucket)
    layout = new_layout(bucket)
    with MongoClient(uri) as client:
        t0 = start_time(client)
        write_start(s3, layout, t0, [db])
        writer = Writer(uri, db, pause=0.001)
        writer.start()
        running = start_thread(config_for(layout, uri, max_seconds=120))
        wait_until(lambda: writer.count >= 200, what="writes")
        until = operation_time(client)
        wait_until(lambda: writer.count >= 400, what="writes after F")  # captured before the request
        request_drain(s3, layout, until)
        result = running.wait(120)
        writer.finish()
        expected = reference_events(raw_target(client, db), t0, until)
    assert result.state == "drained"
    assert read_events(s3, layout) == expected


@pytest.fixture
def clock() -> ManualClock:
    """The stand-in's clock in this test: its time passes only through ``clock.advance(seconds)``."""
    return ManualClock()


@pytest.fixture
def idle_docdb(standin_password: str, clock: ManualClock) -> Iterator[tuple[StandinServer, str, str]]:
    """A DocumentDB stand-in of this test's own on ``clock``, change streams enabled on ``idle``."""
    server = start_in_thread(
        ServerConfig(flavour="documentdb", root_user="root", root_password=standin_password, clock=clock)
    )
    uri = server.uri("root", standin_password)
    with MongoClient(uri) as client:
        enable_change_streams(client, "idle")
    yield server, uri, "idle"
    server.stop()


def test_idle_heartbeat_advances_and_its_token_resumes_exactly(
    idle_docdb: tuple, bucket: str, clock: ManualClock
) -> None:
    _, uri, db = idle_docdb
    s3 = S3Objects(bucket)
    layout = new_layout(bucket)
    with MongoClient(uri) as client:
        t0 = start_time(client)
        write_start(s3, layout, t0, [db])
        running = start_thread(config_for(layout, uri))
        first = wait_until(lambda: checkpoint(s3, layout), what="the first checkpoint")
        assert first.last_cluster_time is None or first.last_cluster_time.time <= t0.time
        clock.advance(2)  # the source's cluster time moves on while nothing is written
        later = wait_until(
            lambda: (
                (cp := checkpoint(s3, layout))
                and cp.last_cluster_time
                and cp.last_cluster_time.time > t0.time + 1
                and cp
            ),
            what="an advanced heartbeat",
        )
        running.stop.set()
        stopped = running.wait()
        assert stopped.state == "stopped"
        assert later.heartbeat_at > first.heartbeat_at
        assert later.resume_token != first.resume_token and later.resume_token is not None
        assert (later.last_seq, later.events_total) == (0, 0)
        cp = checkpoint(s3, layout)
        assert cp.state == "stopped"
        # Resuming after the idle token: the next write is the first event captured.
        client[db].items.insert_one({"_id": "after-idle"})
        until = operation_time(client)
        request_drain(s3, layout, until)
        assert start_thread(config_for(layout, uri)).wait().state == "drained"
    events = read_events(s3, layout)
    assert [RawBSONDocument(e)["documentKey"]["_id"] for e in events] == ["after-idle"]


@pytest.fixture
def short_history(clock: ManualClock) -> Iterator[StandinServer]:
    server = start_in_thread(ServerConfig(flavour="mongodb", auth=False, retention_seconds=1.0, clock=clock))
    yield server
    server.stop()


def test_resuming_past_the_retained_history_fails(
    short_history: StandinServer, bucket: str, clock: ManualClock
) -> None:
    uri = f"mongodb://127.0.0.1:{short_history.port}/?directConnection=true"
    db = "retention"
    s3 = S3Objects(bucket)
    layout = new_layout(bucket)
    with MongoClient(uri) as client:
        client[db].items.insert_one({"_id": 0})
        t0 = start_time(client)
        write_start(s3, layout, t0, [db])
        client[db].items.insert_one({"_id": 1})
        request_drain(s3, layout, operation_time(client))
        assert start_thread(config_for(layout, uri)).wait().state == "drained"
        s3.client.delete_object(Bucket=bucket, Key=layout.drain_request)
        cp = checkpoint(s3, layout)
        cp.state = "stopped"
        s3.put_json(layout.replicator_checkpoint, cp.to_doc())  # as if stopped before the drain
        client[db].items.insert_one({"_id": 2})
        clock.advance(2.5)  # the replicator is down longer than the source keeps history
        client[db].items.insert_one({"_id": 3})  # the log forgets what is older than 1 s
        with pytest.raises(JobFailed, match="code 286"):
            start_thread(config_for(layout, uri)).wait()
    cp = checkpoint(s3, layout)
    assert cp.state == "failed" and "ChangeStreamHistoryLost" in cp.reason
    assert cp.last_seq == 1  # what was captured before is kept


def test_an_invalidated_stream_fails_after_keeping_what_came_before(docdb: tuple, bucket: str) -> None:
    _, uri, db = docdb
    s3 = S3Objects(bucket)
    layout = new_layout(bucket)
    with MongoClient(uri) as client:
        t0 = start_time(client)
        running = start_thread(config_for(layout, uri, namespaces=(f"{db}.items",), start_at=t0))
        wait_until(lambda: checkpoint(s3, layout), what="the replicator to start")
        client[db].items.insert_one({"_id": "before"})
        client[db].items.drop()
        with pytest.raises(JobFailed, match="invalidated"):
            running.wait()
    cp = checkpoint(s3, layout)
    assert cp.state == "failed" and "invalidated" in cp.reason
    assert [RawBSONDocument(e)["operationType"] for e in read_events(s3, layout)] == ["insert", "drop"]


def test_abort_stop_request_stops_the_capture_and_keeps_every_file(docdb: tuple, bucket: str) -> None:
    """``control/stop.json`` (written by abort) ends the capture like SIGTERM: flushed, ``stopped``."""
    _, uri, db = docdb
    s3 = S3Objects(bucket)
    layout = new_layout(bucket)
    with MongoClient(uri) as client:
        t0 = start_time(client)
        write_start(s3, layout, t0, [db])
        client[db].items.insert_many([{"_id": f"before-{i}"} for i in range(50)])
        until = operation_time(client)
        running = start_thread(config_for(layout, uri, max_seconds=120))
        wait_until(lambda: checkpoint(s3, layout) is not None, what="a first checkpoint")
        s3.put_json(layout.stop_request, {"requested_at": time.time(), "reason": "abort"})
        result = running.wait(60)
        expected = reference_events(raw_target(client, db), t0, until)
    assert result.state == "stopped"
    assert checkpoint(s3, layout).state == "stopped"
    captured = read_events(s3, layout)
    assert captured == expected[: len(captured)]  # what was read is flushed, in order, without gaps
