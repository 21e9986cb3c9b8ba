"""Helpers for the replicator tests: a migration in moto, a source on a stand-in, reading segments
back, and a reference ``watch()`` to compare them with."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import bson
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument
from bson.timestamp import Timestamp
from pymongo import MongoClient

from backover import segments
from backover.connections import DatabaseUri
from backover.layout import MigrationLayout
from backover.replication.capture import ReplicateResult
from backover.replication.config import ReplicateConfig
from backover.replication.service import replicate
from backover.s3objects import S3Objects
from backover.state import ReplicatorCheckpoint

RAW = CodecOptions(document_class=RawBSONDocument)
#: Small, fast settings for tests (defaults are for production).
FAST = {
    "heartbeat_seconds": 0.2,
    "drain_poll_seconds": 0.1,
    "await_ms": 100,
    "connect_timeout": 3.0,
    "give_up_seconds": 30.0,
    "progress_seconds": 5.0,
}


def new_layout(bucket: str) -> MigrationLayout:
    return MigrationLayout(bucket=bucket, prefix="backover", migration_id=f"m-{uuid.uuid4().hex[:8]}")


def operation_time(client: MongoClient) -> Timestamp:
    """The source's current cluster time (as the start and restore Lambdas record T0 and F)."""
    with client.start_session() as session:
        client.admin.command("ping", session=session)
        assert session.operation_time is not None
        return session.operation_time


def start_time(client: MongoClient) -> Timestamp:
    """A T0 after everything written so far (and after a ``modifyChangeStreams`` just run: DocumentDB
    refuses a start point older than the enablement)."""
    now = operation_time(client)
    return Timestamp(now.time, now.inc + 1)


def enable_change_streams(client: MongoClient, db: str, coll: str = "") -> None:
    client.admin.command("modifyChangeStreams", database=db, collection=coll, enable=True)


def write_start(s3: S3Objects, layout: MigrationLayout, t0: Timestamp, namespaces: list[str]) -> None:
    """``state/start.json`` in the documented shape (the start Lambda writes it in production)."""
    s3.put_json(
        layout.start_state,
        {
            "migration_id": layout.migration_id,
            "t0": t0,
            "databases": sorted({n.split(".")[0] for n in namespaces}),
            "namespaces": namespaces,
            "app_user": "app",
            "prior_roles": [],
            "change_streams_enabled": [],
            "source_flavour": "documentdb",
            "started_at": datetime.now(UTC),
        },
    )


def request_drain(s3: S3Objects, layout: MigrationLayout, until: Timestamp) -> None:
    s3.put_json(layout.drain_request, {"until": until})


def config_for(layout: MigrationLayout, uri: str, **overrides: Any) -> ReplicateConfig:
    settings = {**FAST, **overrides}
    return ReplicateConfig(
        layout=layout, source=DatabaseUri(uri, documentdb="retryWrites=false" in uri), **settings
    )


@dataclass
class Running:
    """A replicator running on a thread."""

    stop: threading.Event
    thread: threading.Thread
    outcome: dict[str, Any] = field(default_factory=dict)

    def wait(self, timeout: float = 60.0) -> ReplicateResult:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the replicator did not finish"
        if "error" in self.outcome:
            raise self.outcome["error"]
        return self.outcome["result"]


def start_thread(config: ReplicateConfig) -> Running:
    stop = threading.Event()
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["result"] = replicate(config, stop)
        except BaseException as e:  # noqa: BLE001 - handed to the test
            outcome["error"] = e

    thread = threading.Thread(target=target, name="replicator", daemon=True)
    thread.start()
    return Running(stop, thread, outcome)


def checkpoint(s3: S3Objects, layout: MigrationLayout) -> ReplicatorCheckpoint | None:
    doc = s3.get_json(layout.replicator_checkpoint)
    return None if doc is None else ReplicatorCheckpoint.from_doc(doc)


def segment_keys(s3: S3Objects, layout: MigrationLayout) -> list[str]:
    return [k for k in s3.list_keys(layout.changes_prefix) if layout.parse_segment(k) is not None]


def read_events(s3: S3Objects, layout: MigrationLayout) -> list[bytes]:
    """Every event of segments 1..last_seq, raw, after checking the numbers are gapless and each
    segment matches its metadata (count, cluster times, SHA-256)."""
    cp = checkpoint(s3, layout)
    assert cp is not None, "no checkpoint"
    parsed = sorted(layout.parse_segment(k) for k in segment_keys(s3, layout))
    seqs = [seq for seq, _ in parsed]
    assert seqs == list(range(1, cp.last_seq + 1)), f"segments {seqs} are not 1..{cp.last_seq}"
    events: list[bytes] = []
    for seq, compression in parsed:
        key = layout.segment(seq, compression)
        body, meta = s3.get_object(key)
        info = segments.SegmentInfo.from_metadata(meta, key)
        raw = segments.verified_events(body, info, compression, key)
        batch = list(segments.iter_raw_events(raw))
        assert len(batch) == info.events
        times = [RawBSONDocument(e)["clusterTime"] for e in batch]
        assert (times[0], times[-1]) == (info.first_cluster_time, info.last_cluster_time)
        events += batch
    assert len(events) == cp.events_total
    return events


def put_segment(
    s3: S3Objects,
    layout: MigrationLayout,
    seq: int,
    events: list[bytes],
    compression: str = "zstd",
    migration_id: str | None = None,
    writer: str = "test",
) -> str:
    """Segment ``seq`` the way the replicator writes it (identity metadata included)."""
    times = [RawBSONDocument(e)["clusterTime"] for e in events]
    body, info = segments.build(
        events,
        times[0],
        times[-1],
        compression,
        migration_id=migration_id or layout.migration_id,
        seq=seq,
        writer=writer,
    )
    key = layout.segment(seq, compression)
    s3.put_bytes(key, body, info.metadata())
    return key


def fake_event(cluster_time: Timestamp, i: int = 0) -> bytes:
    """A minimal insert event (as the server sends it) at ``cluster_time``."""
    return bson.encode(
        {
            "_id": {"_data": f"{cluster_time.time:08X}{cluster_time.inc:08X}{i:04X}"},
            "operationType": "insert",
            "clusterTime": cluster_time,
            "ns": {"db": "d", "coll": "c"},
            "documentKey": {"_id": i},
            "fullDocument": {"_id": i},
        }
    )


def put_captured(
    s3: S3Objects, layout: MigrationLayout, segments_count: int, per_segment: int = 10, state: str = "drained"
) -> ReplicatorCheckpoint:
    """Segments ``1..segments_count`` of ``per_segment`` events and the checkpoint counting them."""
    seconds = 1_700_000_000
    for seq in range(1, segments_count + 1):
        put_segment(
            s3, layout, seq, [fake_event(Timestamp(seconds + seq, i + 1), i) for i in range(per_segment)]
        )
    last = Timestamp(seconds + segments_count, per_segment)
    cp = ReplicatorCheckpoint(
        migration_id=layout.migration_id,
        last_seq=segments_count,
        events_total=segments_count * per_segment,
        state=state,
        last_cluster_time=last,
        drained_until=last if state == "drained" else None,
    )
    s3.put_json(layout.replicator_checkpoint, cp.to_doc())
    return cp


def reference_events(target: Any, start: Timestamp, until: Timestamp) -> list[bytes]:
    """What a plain ``watch()`` (raw codec, updateLookup) returns from ``start`` up to ``until``."""
    out: list[bytes] = []
    with target.watch(
        start_at_operation_time=start, full_document="updateLookup", max_await_time_ms=100
    ) as stream:
        while True:
            event = stream.try_next()
            if event is None:
                position = stream.resume_token
                data = position["_data"] if position is not None else ""
                if data and Timestamp(int(data[2:10], 16), int(data[10:18], 16)) >= until:
                    return out
                continue
            if event["clusterTime"] > until:
                return out
            out.append(event.raw)


def raw_target(client: MongoClient, db: str, coll: str | None = None) -> Any:
    database = client.get_database(db, codec_options=RAW)
    return database if coll is None else database[coll]


def tokens_of(events: list[bytes]) -> list[str]:
    return [RawBSONDocument(e)["_id"]["_data"] for e in events]


def cli_env(moto_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT_URL")}
    env.update(
        AWS_ENDPOINT_URL=moto_url,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        **extra,
    )
    return env


def cli_argv(layout: MigrationLayout, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "backover",
        "replicate",
        "--bucket",
        layout.bucket,
        "--prefix",
        layout.prefix,
        "--migration-id",
        layout.migration_id,
        *extra,
    ]


def run_cli(argv: list[str], env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)


def wait_until(predicate: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    """Poll ``predicate`` until truthy (a deadline, not a speed assertion)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def replicate_argv(layout: MigrationLayout, uri: str, db: str, *extra: str) -> list[str]:
    """``backover replicate`` of ``db`` on the stand-in, with short timeouts and polls for tests."""
    return [
        "replicate",
        "--bucket",
        layout.bucket,
        "--prefix",
        layout.prefix,
        "--migration-id",
        layout.migration_id,
        "--source-uri",
        uri,
        "--namespace",
        db,
        "--connect-timeout",
        "2",
        "--await-ms",
        "100",
        "--drain-poll-seconds",
        "0.1",
        "--heartbeat-seconds",
        "0.2",
        *extra,
    ]
