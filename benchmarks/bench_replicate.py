"""Benchmark the replicator (`backover replicate`) against the DocumentDB stand-in and moto.

Both servers run as their own processes. Prints one line per figure:

* capture throughput of the replicator divided by the rate of plain pymongo reading the same
  change stream and doing nothing (target >= 0.9), against a raw-BSON reader (the strict
  baseline; the faster of the server's default batches and the replicator's batch size) and
  against a default (dict-decoding) reader;
* S3 PUTs per 10,000 events at default settings with a backlog (target <= 1), counted from moto's
  request log;
* peak RSS of a ``python -m backover replicate`` process draining a backlog of ``--rss-events``
  events (target <= 200 MiB for 1,000,000).

    .venv/bin/python benchmarks/bench_replicate.py [--events 200000] [--rss-events 1000000]

The kill -9 soak is ``benchmarks/bench_replicate_soak.py``.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable

from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument
from bson.timestamp import Timestamp
from pymongo import MongoClient

from backover.connections import DatabaseUri
from backover.layout import MigrationLayout
from backover.replication.config import ReplicateConfig
from backover.replication.service import replicate
from backover.replication.source import BATCH_SIZE
from backover.s3objects import S3Objects
from replicate_servers import MotoProcess, source_uri
from standin_process import standin_process

DB = "bench"
BATCH = 1000
MIB = 1024 * 1024


def document(i: int) -> dict:
    """About 300 bytes, a few types (an event is about 450 bytes)."""
    return {
        "_id": i,
        "name": f"item-{i}",
        "qty": i % 100,
        "price": 19.99,
        "tags": ["red", "blue"],
        "nested": {"a": i, "b": "x" * 40},
        "payload": "p" * 160,
    }


def load(client: MongoClient, start: int, count: int) -> None:
    coll = client[DB].items
    for first in range(start, start + count, BATCH):
        coll.insert_many([document(i) for i in range(first, min(first + BATCH, start + count))], ordered=True)


def now(client: MongoClient) -> Timestamp:
    with client.start_session() as session:
        client.admin.command("ping", session=session)
        return session.operation_time


def read_plainly(
    client: MongoClient, start: Timestamp, count: int, raw: bool, batch_size: int | None = None
) -> float:
    """Seconds for pymongo to read ``count`` events from ``start``, doing nothing with them."""
    options = CodecOptions(document_class=RawBSONDocument) if raw else CodecOptions()
    coll = client.get_database(DB, codec_options=options).items
    began = time.perf_counter()
    seen = 0
    with coll.watch(
        start_at_operation_time=start,
        full_document="updateLookup",
        max_await_time_ms=100,
        batch_size=batch_size,
    ) as stream:
        while seen < count:
            if stream.try_next() is not None:
                seen += 1
    return time.perf_counter() - began


def replicate_once(
    uri: str, bucket: str, start: Timestamp, until: Timestamp
) -> tuple[float, MigrationLayout]:
    """Seconds for ``replicate()`` (in this process) to capture from ``start`` and drain at ``until``."""
    layout = MigrationLayout(bucket, "bench", f"m-{uuid.uuid4().hex[:8]}")
    S3Objects(bucket).put_json(layout.drain_request, {"until": until})
    config = ReplicateConfig(
        layout=layout,
        source=DatabaseUri(uri, documentdb=True),
        namespaces=(DB,),
        start_at=start,
        drain_poll_seconds=0.5,
        await_ms=100,
    )
    began = time.perf_counter()
    result = replicate(config)
    elapsed = time.perf_counter() - began
    assert result.state == "drained", result
    return elapsed, layout


def best(runs: int, measure: Callable[[], float]) -> float:
    return min(measure() for _ in range(runs))


def peak_rss(argv: list[str], env: dict[str, str]) -> tuple[int, float, int]:
    """(peak RSS in bytes, seconds, exit status) of a process, from ``/proc/<pid>/status``."""
    began = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL)
    peak = 0
    while proc.poll() is None:
        try:
            for line in open(f"/proc/{proc.pid}/status").read().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]) * 1024)
        except OSError:
            pass
        time.sleep(0.05)
    return peak, time.perf_counter() - began, proc.returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000, help="backlog for the throughput figures")
    parser.add_argument("--rss-events", type=int, default=1_000_000, help="backlog for the peak-RSS figure")
    parser.add_argument("--rounds", type=int, default=2, help="throughput runs of each reader (best is kept)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with MotoProcess() as moto, standin_process("documentdb") as port:
        os.environ.update(moto.environment())
        bucket = moto.bucket("backover-bench")
        uri = source_uri(port)
        with MongoClient(uri) as client:
            client.admin.command("modifyChangeStreams", database=DB, collection="", enable=True)
            client[DB].marker.insert_one({"_id": "t0"})
            t0 = now(client)
            t0 = Timestamp(t0.time, t0.inc + 1)
            began = time.perf_counter()
            load(client, 0, args.events)
            until = now(client)
            print(f"loaded {args.events:,} events in {time.perf_counter() - began:.1f}s", flush=True)

            # The strict baseline: the faster of the raw-BSON reader with the server's batches and
            # with the replicator's batch size.
            raw_s = min(
                best(args.rounds, lambda: read_plainly(client, t0, args.events, raw=True)),
                best(
                    args.rounds,
                    lambda: read_plainly(client, t0, args.events, raw=True, batch_size=BATCH_SIZE),
                ),
            )
            dict_s = best(args.rounds, lambda: read_plainly(client, t0, args.events, raw=False))
            puts_before = moto.put_count()
            runs = [replicate_once(uri, bucket, t0, until) for _ in range(args.rounds)]
            rep_s = min(s for s, _ in runs)
            layouts = [layout for _, layout in runs]
            puts = sum(moto.put_count(layout.root) for layout in layouts) / len(layouts)
            assert moto.put_count() >= puts_before
            n = args.events
            print(
                f"pymongo raw-BSON reader: {n / raw_s:,.0f} events/s; default dict reader: {n / dict_s:,.0f} "
                f"events/s; backover replicate: {n / rep_s:,.0f} events/s",
                flush=True,
            )
            print(
                f"capture throughput ratio (replicate / raw-BSON reader): {raw_s / rep_s:.2f} (target >= 0.9); "
                f"vs the dict reader: {dict_s / rep_s:.2f}",
                flush=True,
            )
            print(
                f"S3 PUTs per 10,000 events at defaults with a backlog of {n:,}: {puts / n * 10_000:.2f} "
                f"(target <= 1; {puts:.0f} PUTs: segments, checkpoints, heartbeats)",
                flush=True,
            )

            more = max(0, args.rss_events - args.events)
            began = time.perf_counter()
            load(client, args.events, more)
            rss_until = now(client)
            print(
                f"loaded {more:,} more events ({args.rss_events:,} backlog) in {time.perf_counter() - began:.1f}s",
                flush=True,
            )
        layout = MigrationLayout(bucket, "bench", f"m-{uuid.uuid4().hex[:8]}")
        S3Objects(bucket).put_json(layout.drain_request, {"until": rss_until})
        argv = [
            sys.executable,
            "-m",
            "backover",
            "--log-level",
            "WARNING",
            "replicate",
            "--bucket",
            bucket,
            "--prefix",
            "bench",
            "--migration-id",
            layout.migration_id,
            "--namespace",
            DB,
            "--start-at",
            f"{t0.time}:{t0.inc}",
            "--drain-poll-seconds",
            "0.5",
        ]
        rss, seconds, code = peak_rss(argv, {**os.environ, "BACKOVER_SOURCE_URI": uri})
        if code != 0:
            print(f"the replicator exited with {code}", file=sys.stderr)
            return 1
        checkpoint = S3Objects(bucket).get_json(layout.replicator_checkpoint)
        events = checkpoint["events_total"]
        print(
            f"peak RSS draining a backlog of {events:,} events: {rss / MIB:.0f} MiB (target <= 200 MiB); "
            f"{seconds:.0f}s, {events / seconds:,.0f} events/s, {checkpoint['last_seq']} segments "
            f"(python -m backover replicate, start-up included)",
            flush=True,
        )
        print(
            f"S3 PUTs per 10,000 events at defaults with a backlog of {events:,}: "
            f"{moto.put_count(layout.root) / events * 10_000:.2f} (target <= 1)",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
