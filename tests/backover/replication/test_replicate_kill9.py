"""Fault injection: ``kill -9`` the replicator process at random moments while a writer is busy,
restart it each time, and prove the segments hold every write exactly once, in order, with
gapless sequence numbers (a longer soak: ``benchmarks/bench_replicate.py --soak``)."""

from __future__ import annotations

import random
import signal
import subprocess
import threading
import time
import uuid

import pytest
from bson.raw_bson import RawBSONDocument
from pymongo import MongoClient
from replicate_testkit import (
    checkpoint,
    cli_argv,
    cli_env,
    enable_change_streams,
    new_layout,
    operation_time,
    raw_target,
    read_events,
    reference_events,
    request_drain,
    run_cli,
    segment_keys,
    start_time,
    wait_until,
    write_start,
)

from backover.s3objects import S3Objects

KILLS = 20
FAST_ROLL = [
    "--max-events",
    "25",
    "--max-seconds",
    "0.3",
    "--await-ms",
    "100",
    "--heartbeat-seconds",
    "0.2",
    "--drain-poll-seconds",
    "0.1",
    "--connect-timeout",
    "5",
]


class BusyWriter(threading.Thread):
    """Inserts, updates and deletes without pause until stopped; remembers the inserted ids."""

    def __init__(self, client: MongoClient, db: str) -> None:
        super().__init__(name="busy-writer", daemon=True)
        self.coll = client[db].items
        self.stopping = threading.Event()
        self.inserted: list[int] = []

    def run(self) -> None:
        i = 0
        while not self.stopping.is_set():
            self.coll.insert_one({"_id": i, "n": i, "pad": "x" * (i % 200)})
            self.inserted.append(i)
            if i % 3 == 0:
                self.coll.update_one({"_id": i // 2}, {"$inc": {"n": 1}})
            if i % 7 == 0 and i:
                self.coll.delete_one({"_id": i - 7})
            i += 1
            time.sleep(0.002)


@pytest.mark.slow
def test_kill_9_at_random_moments_loses_and_repeats_nothing(
    standins: dict, standin_password: str, bucket: str, moto_server: str
) -> None:
    server = standins["documentdb"]
    uri = server.uri("root", standin_password)
    db = f"kill_{uuid.uuid4().hex[:8]}"
    s3 = S3Objects(bucket)
    layout = new_layout(bucket)
    env = cli_env(moto_server, BACKOVER_SOURCE_URI=uri)
    argv = cli_argv(layout, *FAST_ROLL)
    rng = random.Random(20240229)
    progress: list[int] = []
    with MongoClient(uri) as client:
        enable_change_streams(client, db)
        client[db].items.insert_one({"_id": -1})
        t0 = start_time(client)
        write_start(s3, layout, t0, [db])
        writer = BusyWriter(client, db)
        writer.start()
        try:
            for kill in range(KILLS):
                proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                try:
                    if kill % 5 == 4:  # somewhere in start-up or the first segments
                        time.sleep(rng.uniform(0.05, 1.5))
                    else:  # while capturing: after a new segment, at a random point of the next ones
                        seen = progress[-1] if progress else 0
                        wait_until(
                            lambda seen=seen: (cp := checkpoint(s3, layout)) and cp.last_seq > seen,
                            what="a new segment",
                        )
                        time.sleep(rng.uniform(0.0, 0.4))
                    assert proc.poll() is None, "the replicator exited by itself"
                finally:
                    proc.send_signal(signal.SIGKILL)
                    proc.wait()
                cp = checkpoint(s3, layout)
                progress.append(cp.last_seq if cp else 0)
        finally:
            writer.stopping.set()
            writer.join()
        until = operation_time(client)
        request_drain(s3, layout, until)
        final = run_cli(argv, env, timeout=120)
        assert final.returncode == 0, final.stderr[-2000:]
        expected = reference_events(raw_target(client, db, "items"), t0, until)

    captured = read_events(s3, layout)  # gapless 1..last_seq, metadata and SHA-256 checked
    tokens = [RawBSONDocument(e)["_id"]["_data"] for e in captured]
    assert len(set(tokens)) == len(tokens), "an event was captured twice"
    assert tokens == [RawBSONDocument(e)["_id"]["_data"] for e in expected], (
        "an event is missing or out of order"
    )
    inserted = [
        RawBSONDocument(e)["documentKey"]["_id"]
        for e in captured
        if RawBSONDocument(e)["operationType"] == "insert"
    ]
    assert inserted == writer.inserted  # every write exactly once, in write order
    cp = checkpoint(s3, layout)
    assert cp.state == "drained" and cp.drained_until == until
    assert len(segment_keys(s3, layout)) == cp.last_seq  # no orphan segment left behind
    assert len(progress) == KILLS and cp.last_seq > progress[-1]
