"""Soak: kill -9 the replicator again and again while a writer is busy, then prove the segments
hold every write exactly once, in order, with gapless sequence numbers.

The longer companion of ``tests/backover/replication/test_replicate_kill9.py`` (20 kills):
the stand-in and moto run as their own processes, the replicator as ``python -m backover
replicate``, killed at a random moment (during start-up, between a segment and its checkpoint,
while idle...) ``--kills`` times, restarted each time, then drained::

    .venv/bin/python benchmarks/bench_replicate_soak.py [--kills 200] [--seed 1]
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid

from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument
from bson.timestamp import Timestamp
from pymongo import MongoClient

from backover import segments
from backover.layout import MigrationLayout
from backover.s3objects import S3Objects
from replicate_servers import MotoProcess, source_uri
from standin_process import standin_process

DB = "soak"


class Writer(threading.Thread):
    """Inserts, updates and deletes until stopped; remembers the inserted ids in order."""

    def __init__(self, client: MongoClient) -> None:
        super().__init__(daemon=True)
        self.coll = client[DB].items
        self.stopping = threading.Event()
        self.inserted: list[int] = []

    def run(self) -> None:
        i = 0
        while not self.stopping.is_set():
            self.coll.insert_one({"_id": i, "n": i, "pad": "x" * (i % 300)})
            self.inserted.append(i)
            if i % 3 == 0:
                self.coll.update_one({"_id": i // 2}, {"$inc": {"n": 1}})
            if i % 7 == 0 and i:
                self.coll.delete_one({"_id": i - 7})
            i += 1
            time.sleep(0.001)


def now(client: MongoClient) -> Timestamp:
    with client.start_session() as session:
        client.admin.command("ping", session=session)
        return session.operation_time


def captured_events(s3: S3Objects, layout: MigrationLayout) -> tuple[list[bytes], int]:
    checkpoint = s3.get_json(layout.replicator_checkpoint)
    parsed = sorted(p for k in s3.list_keys(layout.changes_prefix) if (p := layout.parse_segment(k)))
    seqs = [seq for seq, _ in parsed]
    if seqs != list(range(1, checkpoint["last_seq"] + 1)):
        raise AssertionError(f"segments are not 1..{checkpoint['last_seq']}: {seqs[:5]}...{seqs[-5:]}")
    events: list[bytes] = []
    for seq, compression in parsed:
        key = layout.segment(seq, compression)
        body, meta = s3.get_object(key)
        raw = segments.verified_events(body, segments.SegmentInfo.from_metadata(meta, key), compression, key)
        events += segments.iter_raw_events(raw)
    return events, checkpoint["last_seq"]


def reference(client: MongoClient, start: Timestamp, until: Timestamp) -> list[bytes]:
    coll = client.get_database(DB, codec_options=CodecOptions(document_class=RawBSONDocument)).items
    out: list[bytes] = []
    with coll.watch(
        start_at_operation_time=start, full_document="updateLookup", max_await_time_ms=100
    ) as stream:
        while True:
            event = stream.try_next()
            if event is None:
                data = stream.resume_token["_data"]
                if Timestamp(int(data[2:10], 16), int(data[10:18], 16)) >= until:
                    return out
            elif event["clusterTime"] > until:
                return out
            else:
                out.append(bytes(event.raw))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    began = time.perf_counter()
    with MotoProcess() as moto, standin_process("documentdb") as port:
        os.environ.update(moto.environment())
        bucket = moto.bucket("backover-soak")
        s3 = S3Objects(bucket)
        layout = MigrationLayout(bucket, "soak", f"m-{uuid.uuid4().hex[:8]}")
        uri = source_uri(port)
        env = {**os.environ, "BACKOVER_SOURCE_URI": uri}
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
            "soak",
            "--migration-id",
            layout.migration_id,
            "--max-events",
            "40",
            "--max-seconds",
            "0.3",
            "--await-ms",
            "100",
            "--heartbeat-seconds",
            "0.2",
            "--drain-poll-seconds",
            "0.1",
        ]
        with MongoClient(uri) as client:
            client.admin.command("modifyChangeStreams", database=DB, collection="", enable=True)
            client[DB].items.insert_one({"_id": -1})
            t0 = now(client)
            t0 = Timestamp(t0.time, t0.inc + 1)
            s3.put_json(
                layout.start_state, {"migration_id": layout.migration_id, "t0": t0, "namespaces": [DB]}
            )
            writer = Writer(client)
            writer.start()
            orphans_seen = 0
            for kill in range(args.kills):
                proc = subprocess.Popen(argv, env=env)
                time.sleep(rng.uniform(0.05, 3.0))
                if proc.poll() is not None:
                    raise AssertionError(
                        f"kill {kill}: the replicator exited by itself with {proc.returncode}"
                    )
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                checkpoint = s3.get_json(layout.replicator_checkpoint)
                last_seq = checkpoint["last_seq"] if checkpoint else 0
                orphans_seen += any(s3.head(layout.segment(last_seq + 1, c)) for c in ("zstd",))
                if kill % 20 == 19:
                    print(
                        f"{kill + 1} kills, {last_seq} segments, {len(writer.inserted):,} inserts so far",
                        flush=True,
                    )
            writer.stopping.set()
            writer.join()
            until = now(client)
            s3.put_json(layout.drain_request, {"until": until})
            final = subprocess.run(argv, env=env, timeout=600, stdout=subprocess.DEVNULL)
            if final.returncode != 0:
                raise AssertionError(f"the final drain exited with {final.returncode}")
            expected = reference(client, t0, until)
        captured, last_seq = captured_events(s3, layout)
    tokens = [RawBSONDocument(e)["_id"]["_data"] for e in captured]
    if len(set(tokens)) != len(tokens):
        raise AssertionError("an event was captured twice")
    if tokens != [RawBSONDocument(e)["_id"]["_data"] for e in expected]:
        raise AssertionError("an event is missing or out of order")
    inserted = [
        RawBSONDocument(e)["documentKey"]["_id"]
        for e in captured
        if RawBSONDocument(e)["operationType"] == "insert"
    ]
    if inserted != writer.inserted:
        raise AssertionError("the inserts captured are not the inserts written, in order")
    print(
        f"soak: {args.kills} kill -9s in {time.perf_counter() - began:.0f}s; {len(captured):,} events "
        f"({len(writer.inserted):,} inserts) in {last_seq} gapless segments, each exactly once and in order; "
        f"an orphan segment was left by {orphans_seen} kills and overwritten",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
