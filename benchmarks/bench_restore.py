"""Restore benchmarks (issue 4, figures (a)-(d)), one run on the same generated change streams.

Usage: ``.venv/bin/python benchmarks/bench_restore.py [--events 100000] [--naive-events 20000]
[--rss-events 1000000]``. moto and the ``mongodb`` stand-in run as separate processes; segments
of 10,000 events (zstd) are written to moto's S3 as the replicator writes them. Prints one line
per figure:

(a) planning + statement encoding with a null target vs merely decoding the same segments
    (``bson.decode_all`` of the verified, decompressed bytes): events/s and the ratio;
(b) ``run_restore`` into the stand-in vs a naive replay sending one write per event in order
    (decode the event, ``replace_one(upsert)``/``delete_one``), on a mixed and a hot-key stream;
(c) write commands per 1,000 events (counted by the target);
(d) peak RSS of ``python -m backover restore`` replaying ``--rss-events`` events (from wait4).
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import boto3
import bson
from bson import Decimal128, Int64
from bson.raw_bson import RawBSONDocument
from bson.timestamp import Timestamp
from pymongo import MongoClient

from backover import segments
from backover.connections import DatabaseUri
from backover.layout import MigrationLayout
from backover.restore import RestoreConfig, RestoreResult, run_restore
from backover.restore.applier import Applier
from backover.restore.planner import SegmentEvents, plan
from backover.restore.target import NullTarget
from backover.s3objects import S3Objects
from backover.state import ReplicatorCheckpoint
from standin_process import free_port, standin_process

PER_SEGMENT = 10_000
BUCKET = "bench-restore"


@contextmanager
def moto_process() -> Iterator[str]:
    """moto's server as its own process; yields its URL and points boto3 at it."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(url + "/moto-api/", timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("moto did not start") from None
                time.sleep(0.2)
        os.environ.update(
            {
                "AWS_ENDPOINT_URL": url,
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": "us-east-1",
            }
        )
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)


# -- workloads --------------------------------------------------------------------------------------
def document(key: int, n: int) -> bytes:
    return bson.encode(
        {
            "_id": key,
            "n": n,
            "total": Int64(n * 7),
            "price": Decimal128("19.99"),
            "name": f"customer {key}",
            "email": f"c{key}@example.org",
            "tags": ["a", "b", n % 7],
            "address": {"street": f"{n} Main St", "city": "Springfield", "zip": f"{key % 99999:05d}"},
        }
    )


def events(count: int, keys: int, hot: bool, db: str = "bench", seed: int = 1) -> Iterator[bytes]:
    """Change events as DocumentDB streams them with updateLookup: inserts of new keys, updates and
    replaces with the full document, deletes (8% of events on a live key), keys drawn uniformly
    from ``keys``; ``hot``: 90% of the events go to 1% of the keys."""
    rng = random.Random(seed)
    live: set[int] = set()
    ns = {"db": db, "coll": "customers"}
    for n in range(count):
        key = rng.randrange(max(1, keys // 100)) if hot and rng.random() < 0.9 else rng.randrange(keys)
        head = {"_id": {"_data": f"{n:032X}"}}
        if key in live and rng.random() < 0.08:
            live.discard(key)
            body = {
                "operationType": "delete",
                "clusterTime": Timestamp(1, n),
                "ns": ns,
                "documentKey": {"_id": key},
            }
        else:
            op = "insert" if key not in live else rng.choice(("update", "update", "replace"))
            live.add(key)
            body = {
                "operationType": op,
                "clusterTime": Timestamp(1, n),
                "fullDocument": RawBSONDocument(document(key, n)),
                "ns": ns,
                "documentKey": {"_id": key},
            }
        yield bson.encode({**head, **body})


@dataclass
class Dataset:
    layout: MigrationLayout
    count: int
    bodies: list[tuple[bytes, segments.SegmentInfo]]  # compressed bodies kept for (a)


def upload(s3: S3Objects, migration_id: str, stream: Iterator[bytes], keep_bodies: bool = True) -> Dataset:
    layout = MigrationLayout(BUCKET, "bench", migration_id)
    seq = count = 0
    bodies = []
    batch: list[bytes] = []
    positions: list[Timestamp] = []

    def flush() -> None:
        nonlocal seq
        seq += 1
        first, last = (RawBSONDocument(batch[i])["clusterTime"] for i in (0, -1))
        body, info = segments.build(batch, first, last, "zstd", migration_id=migration_id, seq=seq)
        positions.append(last)
        s3.put_bytes(layout.segment(seq, "zstd"), body, info.metadata())
        if keep_bodies:
            bodies.append((body, info))
        batch.clear()

    for event in stream:
        batch.append(event)
        count += 1
        if len(batch) == PER_SEGMENT:
            flush()
    if batch:
        flush()
    s3.put_json(
        layout.replicator_checkpoint,
        ReplicatorCheckpoint(
            migration_id,
            last_seq=seq,
            events_total=count,
            state="drained",
            last_cluster_time=positions[-1] if positions else None,
        ).to_doc(),
    )
    return Dataset(layout, count, bodies)


# -- (a) planning and encoding vs decoding -------------------------------------------------------------
def bench_plan_encode(data: Dataset) -> tuple[float, float, int]:
    """(decode events/s, plan+encode events/s, commands) over the same verified segments."""

    def verified() -> Iterator[bytes]:
        for seq, (body, info) in enumerate(data.bodies, start=1):
            yield segments.verified_events(body, info, "zstd", f"segment {seq}")

    started = time.perf_counter()
    decoded = sum(len(bson.decode_all(raw)) for raw in verified())
    decode_rate = decoded / (time.perf_counter() - started)

    target = NullTarget()
    applier = Applier(target, workers=1)
    started = time.perf_counter()
    planned = (
        SegmentEvents(seq, f"segment {seq}", list(segments.iter_raw_events(raw)))
        for seq, raw in enumerate(verified(), start=1)
    )
    for step in plan(planned, 10_000):
        applier.apply(step)
    plan_rate = data.count / (time.perf_counter() - started)
    return decode_rate, plan_rate, target.commands


# -- (b) replay vs naive --------------------------------------------------------------------------------
def naive_replay(client: MongoClient, data: Dataset, s3: S3Objects, limit: int) -> float:
    """One write per event, in order, decoding every event: events/s."""
    started = time.perf_counter()
    done = 0
    for seq in range(1, len(data.bodies) + 1):
        body, metadata = s3.get_object(data.layout.segment(seq, "zstd"))  # type: ignore[misc]
        info = segments.SegmentInfo.from_metadata(metadata, "segment")
        for event in bson.decode_all(segments.verified_events(body, info, "zstd", "segment")):
            coll = client[event["ns"]["db"]][event["ns"]["coll"]]
            if event["operationType"] == "delete":
                coll.delete_one(event["documentKey"])
            else:
                coll.replace_one(event["documentKey"], event["fullDocument"], upsert=True)
            done += 1
            if done == limit:
                return done / (time.perf_counter() - started)
    return done / (time.perf_counter() - started)


def restore(data: Dataset, uri: str, s3: S3Objects, workers: int = 4) -> RestoreResult:
    config = RestoreConfig(layout=data.layout, target=DatabaseUri(uri), workers=workers, progress_seconds=30)
    result = run_restore(config, s3=s3)
    assert isinstance(result, RestoreResult)
    return result


# -- (d) peak RSS ---------------------------------------------------------------------------------------
def peak_rss(data: Dataset, uri: str) -> tuple[float, float]:
    """(peak RSS MiB, seconds) of ``python -m backover restore`` as its own process."""
    argv = [
        sys.executable,
        "-m",
        "backover",
        "--log-level",
        "WARNING",
        "restore",
        "--bucket",
        BUCKET,
        "--prefix",
        data.layout.prefix,
        "--migration-id",
        data.layout.migration_id,
    ]
    started = time.perf_counter()
    proc = subprocess.Popen(argv, env={**os.environ, "BACKOVER_TARGET_URI": uri}, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError("the restore process failed")
    return usage.ru_maxrss / 1024, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000, help="events for (a), (b), (c)")
    parser.add_argument("--naive-events", type=int, default=20_000, help="events the naive baseline replays")
    parser.add_argument("--rss-events", type=int, default=1_000_000, help="events for (d); 0 skips it")
    args = parser.parse_args()
    keys = max(100, args.events)
    with moto_process(), standin_process("mongodb") as port:
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        s3 = S3Objects(BUCKET)
        uri = f"mongodb://127.0.0.1:{port}/?directConnection=true"
        with MongoClient(uri) as client:
            for name, hot in (("mixed", False), ("hot-keys", True)):
                data = upload(s3, f"bench-{name}", events(args.events, keys, hot))
                decode_rate, plan_rate, null_commands = bench_plan_encode(data)
                print(
                    f"(a) {name}: plan+encode (null target) {plan_rate:,.0f} events/s vs decode only "
                    f"{decode_rate:,.0f} events/s: ratio {plan_rate / decode_rate:.2f} (target >= 0.5)"
                )
                client.drop_database("bench")
                result = restore(data, uri, s3)
                ours = data.count / result.seconds
                client.drop_database("bench")
                naive = naive_replay(client, data, s3, args.naive_events)
                client.drop_database("bench")
                print(
                    f"(b) {name}: restore {ours:,.0f} events/s ({data.count:,} events, {result.writes:,} writes, "
                    f"4 workers) vs naive one-write-per-event {naive:,.0f} events/s ({args.naive_events:,} events): "
                    f"{ours / naive:.1f}x (target >= 5x)"
                )
                print(
                    f"(c) {name}: {1000 * result.commands / data.count:.2f} write commands per 1,000 events "
                    f"({result.commands:,} commands; null target {1000 * null_commands / data.count:.2f}) "
                    f"(target <= 1)"
                )
            if args.rss_events:
                started = time.perf_counter()
                data = upload(
                    s3,
                    "bench-rss",
                    events(args.rss_events, max(100, args.rss_events), False),
                    keep_bodies=False,
                )
                print(
                    f"    generated and uploaded {data.count:,} events in {time.perf_counter() - started:.0f} s"
                )
                rss, seconds = peak_rss(data, uri)
                print(
                    f"(d) peak RSS replaying {data.count:,} events: {rss:,.0f} MiB in {seconds:.0f} s "
                    f"({data.count / seconds:,.0f} events/s end to end) (target <= 300 MiB)"
                )


if __name__ == "__main__":
    main()
