"""Replay and capture at the physical limit (issue 16): every contender side by side, in one run.

The DocumentDB stand-in (source), the MongoDB stand-in (target) and moto each run as their own
process; every ``backover`` command is its own ``python -m backover ...`` process, as a worker
runs it. The data: ``--documents`` (50,000) documents of about 400 bytes in ``bench.items`` (int
``_id``, a unique index on ``email``) on both sides, then a backlog of ``--events`` (100,000)
changes on the source, written in ordered bulk writes of 1,000: 40 % inserts, 40 % updates (10 % of
them on 100 hot documents; 5 % change the e-mail), 15 % replaces, 5 % deletes; inserts take an
e-mail a delete or an e-mail change freed some time before in 30 % of cases, so the replay meets
unique-key collisions (an ``updateLookup`` image is newer than its neighbours). Per round, each
contender starts from the target as it was at T0 (emptied, the initial documents and the index
written again, not timed):

* (a) ``limit``: the physical limit of the replay, in this process: ``delete_many`` (``$in`` of
  1,000 ``_id``) of every initial document the backlog touched, then ``insert_many(ordered=False)``
  of the final documents (RawBSONDocument, batches of 1,000) into the same target;
* (b) ``restore wN``: ``backover restore --workers N`` (``--workers-list``, default 1,4,8) of a
  capture made once before the rounds; its own clock (the ``seconds`` of its summary: from the
  connection to the last checkpoint) and the process's wall time;
* (c) ``raw read``: the raw change-stream read in this process (RawBSONDocument, the database's
  stream from T0 with ``updateLookup``, ``batch_size`` 2,000) until every event is read;
* (d) ``replicate``: ``replicate()`` (what ``backover replicate --start-at T0`` runs) draining at
  the end of the backlog, in this process as ``bench_replicate.py`` runs it (the connection, the
  lease, every segment and checkpoint and the final flush included; not the interpreter's start-up);
* (e) ``follow``: end to end in follow mode: ``backover replicate --max-seconds 1`` (as the start DAG
  runs it) and ``backover restore --follow`` (started once the replicator's first checkpoint is
  there) overlapping; from the replicator's launch to the restore's exit;
* (f) ``naive``: one write per event, in order, in this process (decode the event,
  ``replace_one(upsert)`` / ``delete_one``; an update whose lookup is null is skipped), over the
  capture's first ``--naive-events`` (20,000) events; duplicate-key refusals counted;
* the peer, only with ``--peer-path`` (awslabs amazon-documentdb-tools
  ``migration/migrator/cdc-multiprocess.py``, fetched by whoever runs this; never committed): its
  change-stream mode with ``--peer-threads`` (default 1,4) processes, from T0's second, until its
  own count reaches the backlog, it stalls for ``--peer-stall-seconds`` or a process dies; then
  stopped and the target compared.

Every contender but the naive one is checked: the target against the source (count and SHA-256
of every document in ``_id`` order). Ratios (medians of ``--rounds``, the contenders' order rotated
each round): restore (best of the worker counts) / (a) (target >= 0.8), capture (d) / (c) (target
>= 0.95), end to end (e) / the slower of (a) and (c) (target >= 0.8); with the cores each server and
our processes used (psutil) and the load average at the start and the end.

    .venv/bin/python benchmarks/bench_replay.py                      # 50k + 100k, 3 rounds (some 15 minutes)
    .venv/bin/python benchmarks/bench_replay.py --contenders limit,restore --rounds 5
    .venv/bin/python benchmarks/bench_replay.py --peer-path ~/amazon-documentdb-tools/migration/migrator/cdc-multiprocess.py
    .venv/bin/python benchmarks/bench_replay.py --quick --json /tmp/replay.json   # the smoke run

Exit status 0 when every checked contender left the target identical to the source (the peer's
result is reported, not judged); a missed target is printed ``MISSED``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import bson
import psutil
from bson import Decimal128, Int64
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument
from bson.timestamp import Timestamp
from pymongo import ASCENDING, DeleteOne, InsertOne, MongoClient, ReplaceOne, UpdateOne
from pymongo.errors import DuplicateKeyError

from backover import clustertime
from backover.bsonvalues import raw_collection
from backover.connections import DatabaseUri
from backover.layout import MigrationLayout
from backover.lifecycle.source import cluster_time
from backover.replication.config import ReplicateConfig
from backover.replication.service import replicate as run_replicator
from backover.restore.reader import list_segments, read_segment
from backover.s3objects import S3Objects
from backover.state import ReplicatorCheckpoint
from bench_sync import COLL, COPIERS, DB, CpuSampler, _child, contents, cores_line_of, load_average, verdict
from replicate_servers import MotoProcess, source_uri
from standin_process import standin_process

NS = f"{DB}.{COLL}"
MIB = 1024 * 1024
BATCH = 1000
READ_BATCH = 2000
HOT = 100
PREFIX = "bench-replay"
RESTORE_TARGET = 0.8  # restore / physical limit, at least
CAPTURE_TARGET = 0.95  # replicate / raw read, at least
FOLLOW_TARGET = 0.8  # end to end / the slower physical limit, at least
QUICK = {"documents": 2_000, "events": 4_000, "rounds": 1, "naive_events": 1_000, "workers": [1, 4]}
CONTENDERS = ("limit", "restore", "raw read", "replicate", "follow", "naive", "peer")
SERVERS = ("source stand-in", "target stand-in", "moto")
OURS = "benchmark's processes"


# -- the data ----------------------------------------------------------------------------------------
def document(key: int, n: int, email: str, rng: random.Random) -> dict[str, Any]:
    """About 400 bytes of mixed types."""
    return {
        "_id": key,
        "email": email,
        "n": n,
        "status": rng.choice(("new", "paid", "shipped", "returned")),
        "total": Int64(n * 7 + key),
        "price": Decimal128(f"{key % 1000}.{n % 100:02d}"),
        "visits": 0,
        "tags": ["red", "blue", n % 7],
        "address": {"street": f"{key} Main St", "city": "Springfield", "zip": f"{key % 99999:05d}"},
        "note": "n" * 180,
    }


@dataclass
class Backlog:
    """What the generator wrote: T0, the end, and which documents it touched."""

    t0: Timestamp
    until: Timestamp
    events: int
    initial: list[RawBSONDocument]  # the source (and the target) at T0, in _id order
    touched_initial: list[int]  # initial _ids the backlog touched
    final: list[RawBSONDocument]  # the final state of every document the backlog touched and left
    source_contents: tuple[int, str]  # (count, SHA-256) of the source at the end
    counts: dict[str, int] = field(default_factory=dict)


class Generator:
    """The backlog's operations, deterministic for a seed; tracks live documents and e-mails."""

    def __init__(self, documents: int, seed: int = 16) -> None:
        self.rng = random.Random(seed)
        self.live: list[int] = list(range(documents))
        self.where: dict[int, int] = {k: i for i, k in enumerate(self.live)}
        self.email: dict[int, str] = {k: f"user{k:08d}@example.com" for k in self.live}
        self.freed: list[str] = []
        self.next_id = documents
        self.fresh = 0
        self.touched: set[int] = set()
        self.counts = {"insert": 0, "update": 0, "replace": 0, "delete": 0}

    def _new_email(self) -> str:
        if self.freed and self.rng.random() < 0.3:
            return self.freed.pop(self.rng.randrange(len(self.freed)))
        self.fresh += 1
        return f"fresh{self.fresh:08d}@example.com"

    def _pick(self, hot_ok: bool) -> int:
        while True:
            key = self.live[self.rng.randrange(len(self.live))]
            if hot_ok or key >= HOT:
                return key

    def _remove(self, key: int) -> None:
        i = self.where.pop(key)
        last = self.live.pop()
        if last != key:
            self.live[i] = last
            self.where[last] = i

    def operation(self, n: int) -> InsertOne | UpdateOne | ReplaceOne | DeleteOne:
        draw = self.rng.random()
        if draw < 0.40 or len(self.live) <= HOT + 1:
            key, self.next_id = self.next_id, self.next_id + 1
            email = self._new_email()
            self.email[key] = email
            self.where[key] = len(self.live)
            self.live.append(key)
            self.touched.add(key)
            self.counts["insert"] += 1
            return InsertOne(document(key, n, email, self.rng))
        if draw < 0.95:
            hot = draw < 0.80 and self.rng.random() < 0.10
            key = self.rng.randrange(HOT) if hot else self._pick(hot_ok=True)
            self.touched.add(key)
            email = self.email[key]
            if self.rng.random() < 0.05:
                self.freed.append(email)
                email = self.email[key] = self._new_email()
            if draw < 0.80:
                self.counts["update"] += 1
                change = {"n": n, "status": self.rng.choice(("paid", "shipped")), "email": email}
                return UpdateOne({"_id": key}, {"$set": change, "$inc": {"visits": 1}})
            self.counts["replace"] += 1
            return ReplaceOne({"_id": key}, document(key, n, email, self.rng))
        key = self._pick(hot_ok=False)
        self.touched.add(key)
        self.freed.append(self.email.pop(key))
        self._remove(key)
        self.counts["delete"] += 1
        return DeleteOne({"_id": key})


def build_backlog(source: MongoClient, target: MongoClient, documents: int, events: int) -> Backlog:
    """Seed both sides (the same bytes), then write the backlog on the source."""
    coll = source[DB][COLL]
    source.admin.command("modifyChangeStreams", database=DB, collection="", enable=True)
    coll.create_index([("email", ASCENDING)], unique=True, name="email_1")
    gen = Generator(documents)
    seed_rng = random.Random(1)
    for first in range(0, documents, BATCH):
        coll.insert_many(
            [document(k, 0, gen.email[k], seed_rng) for k in range(first, min(first + BATCH, documents))],
            ordered=False,
        )
    initial = list(raw_collection(source, DB, COLL).find({}, sort=[("_id", 1)]))
    # T0 one whole second after the seed: a peer that starts at a second (not a cluster time) sees
    # no seeding event.
    time.sleep(1.0 + (1 - time.time() % 1))
    now = cluster_time(source)
    t0 = Timestamp(now.time, now.inc + 1)
    began = time.perf_counter()
    ops: list[Any] = []
    for n in range(events):
        ops.append(gen.operation(n))
        if len(ops) == BATCH:
            coll.bulk_write(ops, ordered=True)
            ops = []
    if ops:
        coll.bulk_write(ops, ordered=True)
    until = cluster_time(source)
    print(
        f"backlog: {events:,} events ({', '.join(f'{k} {v:,}' for k, v in gen.counts.items())}) "
        f"written in {time.perf_counter() - began:.1f}s",
        flush=True,
    )
    touched = sorted(gen.touched)
    final = list(raw_collection(source, DB, COLL).find({"_id": {"$in": touched}}, sort=[("_id", 1)]))
    backlog = Backlog(
        t0=t0,
        until=until,
        events=events,
        initial=initial,
        touched_initial=[k for k in touched if k < documents],
        final=final,
        source_contents=contents(source),
        counts=dict(gen.counts),
    )
    reset_target(target, backlog)
    return backlog


def reset_target(target: MongoClient, backlog: Backlog) -> None:
    """The target as it was at T0: the initial documents (the source's bytes) and the index."""
    target.drop_database(DB)
    target[DB].create_collection(COLL)
    target[DB][COLL].create_index([("email", ASCENDING)], unique=True, name="email_1")
    dst = raw_collection(target, DB, COLL)
    for first in range(0, len(backlog.initial), BATCH):
        dst.insert_many(backlog.initial[first : first + BATCH], ordered=False)


# -- running things ----------------------------------------------------------------------------------
@dataclass
class Run:
    """One timed run of a contender."""

    seconds: float  # what the figure is taken from
    wall: float
    identical: bool | None = None  # None: not checked
    peak_rss_mib: float = 0.0
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class Bench:
    moto: MotoProcess
    bucket: str
    source_uri: str
    target_uri: str
    source: MongoClient
    target: MongoClient
    backlog: Backlog
    log_dir: Path
    servers: dict[str, psutil.Process]
    capture: MigrationLayout | None = None
    profile_dir: Path | None = None
    restore_options: tuple[str, ...] = ()  # --restore-window
    runs: int = 0

    @property
    def s3(self) -> S3Objects:
        return S3Objects(self.bucket)

    def env(self, tree: Path | None = None) -> dict[str, str]:
        """The children's environment; with ``tree``, its ``backover`` instead of this one's."""
        env = {
            **os.environ,
            **self.moto.environment(),
            "BACKOVER_SOURCE_URI": self.source_uri,  # through the environment, as a worker has it
            "BACKOVER_TARGET_URI": self.target_uri,
            "PYTHONUNBUFFERED": "1",  # the peer's progress lines are read while it runs
        }
        if tree is not None:
            env["PYTHONPATH"] = os.pathsep.join(str(tree / part) for part in ("include", "sandbox"))
        return env

    def layout(self) -> MigrationLayout:
        """A new migration whose drain request is the end of the backlog."""
        layout = MigrationLayout(self.bucket, PREFIX, f"m-{uuid.uuid4().hex[:10]}")
        self.s3.put_json(layout.drain_request, {"until": self.backlog.until})
        return layout

    def backover(self, layout: MigrationLayout, command: str, *extra: str) -> list[str]:
        return [
            sys.executable,
            "-m",
            "backover",
            "--log-level",
            "WARNING",
            command,
            "--bucket",
            layout.bucket,
            "--prefix",
            layout.prefix,
            "--migration-id",
            layout.migration_id,
            *extra,
        ]

    def replicate_argv(self, layout: MigrationLayout, *extra: str) -> list[str]:
        t0 = self.backlog.t0
        return self.backover(
            layout, "replicate", "--namespace", DB, "--start-at", clustertime.format(t0), *extra
        )

    def launch(self, argv: list[str], name: str, tree: Path | None = None) -> Process:
        self.runs += 1
        return Process(argv, self.env(tree), self.log_dir / f"{self.runs:03d}-{name.replace(' ', '-')}.log")

    def profiled(self, argv: list[str], name: str) -> tuple[list[str], list[subprocess.Popen[bytes]]]:
        """With ``--profile``: ``argv`` under py-spy, and py-spy on the target stand-in meanwhile."""
        if self.profile_dir is None:
            return argv, []
        stem = self.profile_dir / f"{name}-{self.runs + 1:03d}"
        target = self.servers["target stand-in"].pid
        spy = subprocess.Popen([*py_spy(f"{stem}.target.txt"), "--pid", str(target)])
        return [*py_spy(f"{stem}.restore.txt"), "--", *argv], [spy]

    def identical(self) -> bool:
        return contents(self.target) == self.backlog.source_contents

    def checkpoint(self, layout: MigrationLayout) -> ReplicatorCheckpoint | None:
        doc = self.s3.get_json(layout.replicator_checkpoint)
        return None if doc is None else ReplicatorCheckpoint.from_json(doc, layout.replicator_checkpoint)


class Process:
    """A child process, its stdout and stderr in a log file, its peak RSS polled from ``/proc``."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self.out = log.with_suffix(".out")
        with open(log, "wb") as err, open(self.out, "wb") as out:
            self.proc = subprocess.Popen(argv, env=env, stdout=out, stderr=err, start_new_session=True)
        self.started = time.perf_counter()
        self.ended: float | None = None
        self.peak = 0
        try:
            self.ps: psutil.Process | None = psutil.Process(self.proc.pid)
        except psutil.Error:
            self.ps = None

    def poll(self) -> bool:
        """True once it has exited (its end time taken then)."""
        try:
            with open(f"/proc/{self.proc.pid}/status") as status:
                for line in status:
                    if line.startswith("VmHWM:"):
                        self.peak = max(self.peak, int(line.split()[1]) * 1024)
        except OSError:
            pass
        if self.ended is None and self.proc.poll() is not None:
            self.ended = time.perf_counter()
        return self.ended is not None

    def wait(self, timeout: float = 900.0) -> float:
        """Wall seconds from the launch to the exit; RuntimeError when it failed."""
        deadline = time.monotonic() + timeout
        while not self.poll():
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.proc.args[3:6]} did not end in {timeout:.0f}s (log {self.log})")
            time.sleep(0.02)
        if self.proc.returncode != 0:
            tail = "\n".join(self.log.read_text(errors="replace").splitlines()[-15:])
            raise RuntimeError(f"exit {self.proc.returncode} (log {self.log}):\n{tail}")
        assert self.ended is not None
        return self.ended - self.started

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.poll()

    def summary(self) -> dict[str, Any]:
        """The last line of its output that is a JSON object (a command's summary)."""
        for line in reversed(self.out.read_text().strip().splitlines()):
            if line.startswith("{"):
                return cast("dict[str, Any]", json.loads(line))
        return {}


# -- the contenders ----------------------------------------------------------------------------------
def physical_limit(bench: Bench, copiers: list[psutil.Process]) -> Run:
    """(a): delete_many of the touched initial documents, insert_many of the final documents."""
    copiers.append(psutil.Process())
    dst = raw_collection(bench.target, DB, COLL)
    ids, final = bench.backlog.touched_initial, bench.backlog.final
    began = time.perf_counter()
    for first in range(0, len(ids), BATCH):
        dst.delete_many({"_id": {"$in": ids[first : first + BATCH]}})
    deleted = time.perf_counter()
    for first in range(0, len(final), BATCH):
        dst.insert_many(final[first : first + BATCH], ordered=False)
    seconds = time.perf_counter() - began
    detail = {"delete_seconds": deleted - began, "deleted": len(ids), "inserted": len(final)}
    return Run(seconds, seconds, bench.identical(), detail=detail)


def restore(bench: Bench, copiers: list[psutil.Process], workers: int, tree: Path | None = None) -> Run:
    """(b): ``backover restore --workers N --reset`` of the capture (the target is at T0 again)."""
    assert bench.capture is not None
    name = f"restore-w{workers}"
    argv = bench.backover(
        bench.capture, "restore", "--workers", str(workers), "--reset", *bench.restore_options
    )
    argv, profilers = bench.profiled(argv, name)
    proc = bench.launch(argv, name, tree)
    if proc.ps is not None:
        copiers.append(proc.ps)
    try:
        wall = proc.wait()
    finally:
        stop_profilers(profilers)
    summary = proc.summary()
    keys = (
        "writes",
        "commands",
        "conflicts_resolved",
        "holder_lookups",
        "already_reflected",
        "events_applied",
    )
    detail = {k: summary.get(k) for k in keys} | {"wall_seconds": wall}
    return Run(float(summary["seconds"]), wall, bench.identical(), proc.peak / MIB, detail)


def stop_profilers(profilers: list[subprocess.Popen[bytes]]) -> None:
    for profiler in profilers:
        profiler.send_signal(signal.SIGINT)  # py-spy writes its file and exits
        profiler.wait(timeout=30)


def py_spy(out: str) -> list[str]:
    """``py-spy record`` (every thread, idle ones too: waits are what this looks for), collapsed
    stacks to ``out``. py-spy is not a dependency: ``.venv/bin/pip install py-spy``."""
    exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    return [exe, "record", "--idle", "--threads", "--format", "raw", "--rate", "100", "-o", out]


def raw_read(bench: Bench, copiers: list[psutil.Process]) -> Run:
    """(c): the database's change stream from T0, RawBSONDocument, batches of 2,000."""
    copiers.append(psutil.Process())
    options = CodecOptions(document_class=RawBSONDocument)
    db = bench.source.get_database(DB, codec_options=options)
    want, seen = bench.backlog.events, 0
    began = time.perf_counter()
    with db.watch(
        start_at_operation_time=bench.backlog.t0,
        full_document="updateLookup",
        batch_size=READ_BATCH,
        max_await_time_ms=100,
    ) as stream:
        while seen < want:
            if stream.try_next() is not None:
                seen += 1
    seconds = time.perf_counter() - began
    return Run(seconds, seconds)


def replicate(bench: Bench, copiers: list[psutil.Process], tree: Path | None = None) -> Run:
    """(d): ``replicate()`` (what ``backover replicate`` runs) from T0, draining at the end of the
    backlog, timed inside a process of its own (:func:`replicate_child`) as ``bench_replicate.py``
    times it: the connection, the lease, every segment and checkpoint and the final flush
    included, the interpreter's start-up not."""
    layout = bench.layout()
    argv = [sys.executable, str(Path(__file__).resolve()), "--replicate-child", layout.bucket, layout.prefix]
    argv += [layout.migration_id, clustertime.format(bench.backlog.t0)]
    proc = bench.launch(argv, "replicate", tree)
    if proc.ps is not None:
        copiers.append(proc.ps)
    wall = proc.wait()
    out = proc.summary()
    assert out["state"] == "drained" and out["events_total"] == bench.backlog.events, out
    if bench.capture is None:
        bench.capture = layout
    return Run(float(out["seconds"]), wall, None, proc.peak / MIB, {"segments": out["last_seq"]})


def replicate_child(argv: list[str]) -> int:
    """``bench_replay.py --replicate-child BUCKET PREFIX MIGRATION_ID START``: ``replicate()`` with
    the defaults (the drain read every 0.5 s), the source from ``BACKOVER_SOURCE_URI``; prints
    ``{seconds, state, events_total, last_seq}``."""
    bucket, prefix, migration_id, start = argv
    config = ReplicateConfig(
        layout=MigrationLayout(bucket, prefix, migration_id),
        source=DatabaseUri(os.environ["BACKOVER_SOURCE_URI"], documentdb=True),
        namespaces=(DB,),
        start_at=clustertime.parse(start),
        drain_poll_seconds=0.5,
    )
    began = time.perf_counter()
    result = run_replicator(config)
    seconds = time.perf_counter() - began
    out = {"seconds": seconds, "state": str(result.state), "events_total": result.events_total}
    print(json.dumps(out | {"last_seq": result.last_seq}))
    return 0


def follow(bench: Bench, copiers: list[psutil.Process], workers: int, tree: Path | None = None) -> Run:
    """(e): the replicator (follow-mode segments) and ``restore --follow`` at once."""
    layout = bench.layout()
    capture = bench.launch(
        bench.replicate_argv(layout, "--max-seconds", "1", "--drain-poll-seconds", "1"),
        "follow-replicate",
        tree,
    )
    if capture.ps is not None:
        copiers.append(capture.ps)
    try:
        while bench.s3.head(layout.replicator_checkpoint) is None:  # the restore needs it to start
            if capture.poll():
                capture.wait()
            time.sleep(0.02)
        argv, profilers = bench.profiled(
            bench.backover(layout, "restore", "--follow", "--workers", str(workers), *bench.restore_options),
            "follow",
        )
        replay = bench.launch(argv, "follow", tree)
    except BaseException:
        capture.stop()
        raise
    if replay.ps is not None:
        copiers.append(replay.ps)
    try:
        capture_wall = capture.wait()
        replay.wait()
    finally:
        capture.stop()
        replay.stop()
        stop_profilers(profilers)
    assert replay.ended is not None
    wall = replay.ended - capture.started
    summary = replay.summary()
    detail = {
        "capture_seconds": capture_wall,
        "restore_started_after": replay.started - capture.started,
        "restore_after_capture": replay.ended - (capture.ended or replay.ended),
        "writes": summary.get("writes"),
        "conflicts_resolved": summary.get("conflicts_resolved"),
        "holder_lookups": summary.get("holder_lookups"),
    }
    cp = bench.checkpoint(layout)
    detail["segments"] = cp.last_seq if cp else None
    return Run(wall, wall, bench.identical(), replay.peak / MIB, detail)


def naive(bench: Bench, copiers: list[psutil.Process], limit: int) -> Run:
    """(f): one write per event, in order, from the capture's segments."""
    assert bench.capture is not None
    copiers.append(psutil.Process())
    cp = bench.checkpoint(bench.capture)
    assert cp is not None
    coll = bench.target[DB][COLL]
    done = refused = 0
    began = time.perf_counter()
    for ref in list_segments(bench.s3, bench.capture, 1, cp.last_seq):
        for raw in read_segment(bench.s3, ref).events:
            event = bson.decode(raw)
            try:
                if event["operationType"] == "delete":
                    coll.delete_one(event["documentKey"])
                elif event.get("fullDocument") is not None:
                    coll.replace_one(event["documentKey"], event["fullDocument"], upsert=True)
            except DuplicateKeyError:
                refused += 1
            done += 1
            if done == limit:
                break
        if done == limit:
            break
    seconds = time.perf_counter() - began
    rate = done / seconds
    # Reported as the time the whole backlog would take at this rate.
    return Run(
        bench.backlog.events / rate, seconds, None, detail={"events": done, "duplicate_key_refused": refused}
    )


TOT = re.compile(r"\|\s*tot\s+([\d,]+)")


def peer(bench: Bench, copiers: list[psutil.Process], path: Path, threads: int, stall: float) -> Run:
    """The peer's change-stream mode with ``threads`` processes, from T0's second."""
    start = datetime.fromtimestamp(bench.backlog.t0.time, UTC).strftime("%Y-%m-%d %H:%M:%S")
    argv = [
        sys.executable,
        str(path),
        "--source-uri",
        bench.source_uri,
        "--target-uri",
        bench.target_uri,
        "--source-namespace",
        NS,
        "--start-position",
        start,
        "--use-change-stream",
        "--threads",
        str(threads),
        "--feedback-seconds",
        "1",
    ]
    proc = bench.launch(argv, f"peer-t{threads}")
    if proc.ps is not None:
        copiers.append(proc.ps)
        copiers.extend(proc.ps.children(recursive=True))
    total, last_change, reached, how = 0, time.monotonic(), None, "stalled"
    try:
        while True:
            time.sleep(0.2)
            if proc.ps is not None:
                try:
                    known = {p.pid for p in copiers}
                    copiers.extend(c for c in proc.ps.children(recursive=True) if c.pid not in known)
                except psutil.Error:
                    pass
            found = TOT.findall(proc.out.read_text(errors="replace"))
            now = int(found[-1].replace(",", "")) if found else 0
            if now != total:
                total, last_change = now, time.monotonic()
            if total >= bench.backlog.events:
                reached, how = time.perf_counter() - proc.started, "finished"
                break
            if proc.poll():
                how = f"exited {proc.proc.returncode}"
                break
            if time.monotonic() - last_change > stall:
                break
    finally:
        wall = time.perf_counter() - proc.started
        proc.stop()
    log_lines = proc.log.read_text(errors="replace").splitlines()
    errors = [line[:300] for line in log_lines if "Error" in line][-3:]
    if how == "stalled" and any(line.startswith("Traceback") for line in log_lines):
        how = "a worker process died"
    held = bench.target[DB][COLL].count_documents({})
    detail = {
        "threads": threads,
        "ended": how,
        "reported_operations": total,
        "target_documents": held,
        "source_documents": bench.backlog.source_contents[0],
        "errors": errors,
    }
    return Run(reached if reached is not None else wall, wall, bench.identical(), detail=detail)


# -- the rounds --------------------------------------------------------------------------------------
@dataclass
class Contender:
    name: str
    run: Callable[[Bench, list[psutil.Process]], Run]
    resets_target: bool = True


def contenders(args: argparse.Namespace) -> list[Contender]:
    """The contenders chosen; with ``--baseline``, the restores, the capture and the follow mode
    of that tree as well (``... (before)``), in the same rounds."""
    out: list[Contender] = []
    chosen = set(args.contenders)
    trees: list[tuple[str, Path | None]] = [("", None)]
    if args.baseline is not None:
        trees.append((" (before)", args.baseline))
    if "limit" in chosen:
        out.append(Contender("limit", physical_limit))
    for suffix, tree in trees:
        if "restore" in chosen:
            for w in args.workers_list:
                out.append(Contender(f"restore w{w}{suffix}", lambda b, c, w=w, t=tree: restore(b, c, w, t)))
        if "replicate" in chosen:
            out.append(
                Contender(f"replicate{suffix}", lambda b, c, t=tree: replicate(b, c, t), resets_target=False)
            )
        if "follow" in chosen:
            out.append(
                Contender(f"follow{suffix}", lambda b, c, t=tree: follow(b, c, args.follow_workers, t))
            )
    if "raw read" in chosen:
        out.append(Contender("raw read", raw_read, resets_target=False))
    if "naive" in chosen:
        out.append(Contender("naive", lambda b, c: naive(b, c, args.naive_events)))
    if "peer" in chosen and args.peer_path is not None:
        for t in args.peer_threads:
            out.append(
                Contender(
                    f"peer t{t}", lambda b, c, t=t: peer(b, c, args.peer_path, t, args.peer_stall_seconds)
                )
            )
    return out


def run_rounds(bench: Bench, chosen: list[Contender], rounds: int) -> dict[str, Any]:
    runs: dict[str, list[Run]] = {c.name: [] for c in chosen}
    cpu = {c.name: CpuSampler(bench.servers) for c in chosen}
    for r in range(rounds):
        shift = r % len(chosen)
        order = chosen[shift:] + chosen[:shift]  # each round starts with another contender
        line = []
        for contender in order:
            if contender.resets_target:
                reset_target(bench.target, bench.backlog)
            copiers: list[psutil.Process] = []
            with cpu[contender.name].watching(copiers) as samples:
                began = time.time()
                result = contender.run(bench, copiers)
                ended = time.time()
            cpu[contender.name].window(samples, began, ended)
            runs[contender.name].append(result)
            rate = bench.backlog.events / result.seconds
            mark = "" if result.identical is not False else " NOT IDENTICAL"
            line.append(f"{contender.name} {rate:,.0f}/s{mark}")
        print(f"  round {r + 1}: " + "; ".join(line), flush=True)
    figures: dict[str, Any] = {}
    for name, done in runs.items():
        seconds = statistics.median(x.seconds for x in done)
        figures[name] = {
            "seconds": [round(x.seconds, 3) for x in done],
            "wall_seconds": [round(x.wall, 3) for x in done],
            "median_seconds": seconds,
            "events_per_s": bench.backlog.events / seconds,
            "identical": [x.identical for x in done],
            "peak_rss_mib": max(x.peak_rss_mib for x in done),
            "detail": [x.detail for x in done],
            "cores": {k.replace(COPIERS, OURS): v for k, v in cpu[name].cores().items()},
        }
    return figures


def ratios(figures: dict[str, Any], suffix: str = "") -> dict[str, float | None]:
    """The issue's ratios, of this tree's contenders (``suffix`` " (before)": the baseline's)."""

    def rate(name: str) -> float | None:
        return figures[name]["events_per_s"] if name in figures else None

    restores = [
        v["events_per_s"] for k, v in figures.items() if re.fullmatch(rf"restore w\d+{re.escape(suffix)}", k)
    ]
    best = max(restores) if restores else None
    limit, read = rate("limit"), rate("raw read")
    capture, end = rate(f"replicate{suffix}"), rate(f"follow{suffix}")
    slower = min(limit, read) if limit and read else None
    return {
        "restore_over_limit": best / limit if best and limit else None,
        "capture_over_raw_read": capture / read if capture and read else None,
        "follow_over_slower_limit": end / slower if end and slower else None,
        "restore_over_naive": best / naive if best and (naive := rate("naive")) else None,
        "best_restore_events_per_s": best,
    }


def report(
    bench: Bench, figures: dict[str, Any], r: dict[str, float | None], before: dict[str, float | None] | None
) -> list[str]:
    """Print the figures; returns the names of the targets missed."""
    b = bench.backlog
    for name, f in figures.items():
        identical = f["identical"]
        checked = (
            ""
            if all(x is None for x in identical)
            else (
                ", identical"
                if all(identical)
                else f", NOT identical in {identical.count(False)} of {len(identical)}"
            )
        )
        extra = ""
        if name.startswith(("restore", "follow")):
            d = f["detail"][0]
            extra = (
                f", {d.get('writes')} writes, {d.get('conflicts_resolved')} unique-key conflicts resolved "
                f"({d.get('holder_lookups')} holder lookups)"
            )
            extra += f", peak RSS {f['peak_rss_mib']:.0f} MiB"
        if name.startswith("restore"):
            extra += f"; wall (start-up included) {statistics.median(f['wall_seconds']):.2f}s"
        if name.startswith("follow"):
            d = f["detail"][-1]
            extra += f"; capture ended at {d['capture_seconds']:.2f}s, the restore {d['restore_after_capture']:.2f}s after"
        if name == "naive":
            d = f["detail"][0]
            extra = f" (over {d['events']:,} events, {d['duplicate_key_refused']} duplicate-key refusals)"
        if name.startswith("peer"):
            d = f["detail"][-1]
            extra = (
                f"; {d['ended']}, reported {d['reported_operations']:,} operations, target {d['target_documents']:,} "
                f"documents vs source {d['source_documents']:,}"
                + (f"; {d['errors'][-1]}" if d["errors"] else "")
            )
        rate = f"{f['events_per_s']:>9,.0f} events/s"
        if name.startswith("peer") and any(d["ended"] != "finished" for d in f["detail"]):
            rate = "did not finish"
        print(
            f"{name:>11}: {rate} (median {f['median_seconds']:.2f}s of "
            f"{', '.join(f'{s:.2f}' for s in f['seconds'])}){checked}{extra}",
            flush=True,
        )
        print(f"{'':>13}cores: {cores_line_of(f['cores'])}", flush=True)
    missed = ratio_line(b, r, "")
    if before is not None:
        ratio_line(b, before, " (before)")
    return missed


def ratio_line(b: Backlog, r: dict[str, float | None], suffix: str) -> list[str]:
    """Print the ratios; the names of the targets missed."""
    missed: list[str] = []
    lines = []
    checks = (
        ("restore_over_limit", "restore (best) / physical limit", RESTORE_TARGET, "restore / limit"),
        ("capture_over_raw_read", "capture / raw read", CAPTURE_TARGET, "capture / raw read"),
        (
            "follow_over_slower_limit",
            "end to end in follow mode / the slower physical limit",
            FOLLOW_TARGET,
            "end to end / slower limit",
        ),
    )
    for key, text, target, short in checks:
        value = r[key]
        if value is None:
            continue
        ok = value >= target
        missed += [] if ok else [short]
        lines.append(f"{text} {value:.2f} (target >= {target}: {verdict(ok)})")
    if r["restore_over_naive"] is not None:
        lines.append(f"restore / naive {r['restore_over_naive']:.1f}x")
    print(
        f"ratios{suffix} ({b.events:,} events over {len(b.initial):,} documents): " + "; ".join(lines),
        flush=True,
    )
    return missed


def parse_ints(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: comma-separated numbers") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: comma-separated numbers of at least 1")
    return values


def parse_contenders(text: str) -> list[str]:
    chosen = [x.strip() for x in text.split(",") if x.strip()]
    if not chosen or set(chosen) - set(CONTENDERS):
        raise argparse.ArgumentTypeError(f"some of {','.join(CONTENDERS)}")
    return chosen


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--replicate-child"]:
        return replicate_child(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=50_000, help="documents on both sides at T0")
    parser.add_argument("--events", type=int, default=100_000, help="the backlog's events")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each contender (the median is kept)")
    parser.add_argument(
        "--workers-list", type=parse_ints, default=[1, 4, 8], help="restore --workers (default 1,4,8)"
    )
    parser.add_argument(
        "--follow-workers", type=int, default=4, help="restore --follow --workers (default 4)"
    )
    parser.add_argument("--restore-window", type=int, help="restore --window (default: the restore's own)")
    parser.add_argument("--naive-events", type=int, default=20_000, help="events the naive replay writes")
    parser.add_argument(
        "--contenders",
        type=parse_contenders,
        default=list(CONTENDERS),
        help=f"some of {','.join(CONTENDERS)}",
    )
    parser.add_argument(
        "--peer-path", type=Path, help="the peer's cdc-multiprocess.py (fetched by you; never committed)"
    )
    parser.add_argument(
        "--peer-threads", type=parse_ints, default=[1, 4], help="the peer's --threads (default 1,4)"
    )
    parser.add_argument(
        "--peer-stall-seconds",
        type=float,
        default=20.0,
        help="a peer making no progress this long is stopped",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="run each restore under py-spy (and py-spy on the target stand-in meanwhile): collapsed "
        "stacks in DIR (not for figures: the profiler slows what it samples)",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        metavar="TREE",
        help="also run the restores, the capture and the follow mode of another checkout (e.g. a "
        "git worktree of an older commit: its include/ and sandbox/ on PYTHONPATH), in the same rounds",
    )
    parser.add_argument("--quick", action="store_true", help=f"the smoke run: {QUICK}")
    parser.add_argument("--json", type=Path, help="also write every figure as JSON to this file")
    args = parser.parse_args(argv)
    if args.quick:
        args.documents, args.events, args.rounds = QUICK["documents"], QUICK["events"], QUICK["rounds"]
        args.naive_events, args.workers_list = QUICK["naive_events"], QUICK["workers"]
    if args.documents < HOT + 2 or args.events < 1 or args.rounds < 1 or args.naive_events < 1:
        parser.error(f"--documents at least {HOT + 2}; --events, --rounds, --naive-events at least 1")
    if args.peer_path is not None and not args.peer_path.is_file():
        parser.error(f"--peer-path {args.peer_path}: no such file")
    if args.baseline is not None and not (args.baseline / "include" / "backover").is_dir():
        parser.error(f"--baseline {args.baseline}: no include/backover there")
    if args.profile is not None and not args.profile.is_dir():
        parser.error(f"--profile {args.profile}: no such folder")
    if args.json is not None and not args.json.parent.is_dir():
        parser.error(f"--json {args.json}: the folder {args.json.parent} does not exist")

    load_start = load_average()
    print(
        f"load average at start: {load_start['1m']:.2f} {load_start['5m']:.2f} {load_start['15m']:.2f} "
        f"({load_start['cores']} cores); {args.documents:,} documents, {args.events:,} events, "
        f"{args.rounds} round(s)",
        flush=True,
    )
    report_doc: dict[str, Any] = {"load": {"start": load_start}, "documents": args.documents}
    with (
        tempfile.TemporaryDirectory(prefix="bench-replay-") as log_dir,
        MotoProcess() as moto,
        standin_process("documentdb") as source_port,
        standin_process("mongodb", retention_seconds=120.0) as target_port,
    ):
        os.environ.update(moto.environment())
        target_uri = f"mongodb://127.0.0.1:{target_port}/?directConnection=true"
        with (
            MongoClient[dict[str, Any]](source_uri(source_port)) as source,
            MongoClient[dict[str, Any]](target_uri) as target,
        ):
            began = time.perf_counter()
            backlog = build_backlog(source, target, args.documents, args.events)
            print(
                f"  {len(backlog.final):,} final documents touched by the backlog, {len(backlog.touched_initial):,} "
                f"of them at T0; set up in {time.perf_counter() - began:.1f}s",
                flush=True,
            )
            bench = Bench(
                moto=moto,
                bucket=moto.bucket("backover-bench-replay"),
                source_uri=source_uri(source_port),
                target_uri=target_uri,
                source=source,
                target=target,
                backlog=backlog,
                log_dir=Path(log_dir),
                profile_dir=args.profile,
                restore_options=("--window", str(args.restore_window)) if args.restore_window else (),
                servers={
                    "source stand-in": _child(["--port", str(source_port)]),
                    "target stand-in": _child(["--port", str(target_port)]),
                    "moto": _child(["-p", str(moto.port)]),
                },
            )
            chosen = contenders(args)
            if any(c.name.startswith(("restore", "naive")) for c in chosen):
                replicate(bench, [])  # the capture the restores and the naive replay read
            figures = run_rounds(bench, chosen, args.rounds)
            r = ratios(figures)
            before = ratios(figures, " (before)") if args.baseline is not None else None
            missed = report(bench, figures, r, before)
            for client in (source, target):  # emptied, so that the stand-ins stop quickly
                client.drop_database(DB)
    report_doc.update(
        events=args.events,
        operations=backlog.counts,
        final_documents=len(backlog.final),
        touched_at_t0=len(backlog.touched_initial),
        rounds=args.rounds,
        figures=figures,
        ratios=r,
        ratios_before=before,
        baseline=str(args.baseline) if args.baseline else None,
        targets_missed=missed,
    )
    identical = all(
        all(x is not False for x in f["identical"])
        for name, f in figures.items()
        if not name.startswith("peer")
    )
    report_doc["identical"] = identical
    print("targets: all met" if not missed else f"targets MISSED: {', '.join(missed)}", flush=True)
    load_end = report_doc["load"]["end"] = load_average()
    print(
        f"load average at the end: {load_end['1m']:.2f} {load_end['5m']:.2f} {load_end['15m']:.2f}",
        flush=True,
    )
    if not identical:
        print("a contender left the target different from the source", file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps(report_doc, indent=2, default=str) + "\n")
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
