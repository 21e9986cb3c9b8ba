"""Benchmark the initial sync (issue 14): ``backover sync`` against a raw copy, two workers, memory.

The DocumentDB stand-in (source), the MongoDB stand-in (target) and moto each run as their own
process; every ``backover sync`` is its own ``python -m backover sync`` process, as a worker runs
it. The data: ``--documents`` documents of about 500 bytes in ``bench.items`` (ObjectId ``_id``,
strings, int32, int64, double, Decimal128, dates, booleans, null, arrays, a nested document with a
GeoJSON point, binary), with a unique secondary index on ``email``. Prints one line per figure:

* copy throughput: per round, the target emptied, then a raw ``find_raw_batches`` (sorted by
  ``_id``) -> ``insert_many(ordered=False)`` of the RawBSONDocuments in batches of
  ``--batch-size`` (in this process, the collection and its unique index created beforehand and
  not timed), then one ``backover sync`` of the same data with the same batch size: its copy
  phase (the partition checkpoint's ``started_at`` to ``completed_at``) and the whole command
  (the process's wall time: start-up, connections, plan, indexes, copy, completion record);
  median of ``--rounds``; copy / raw (target >= 0.8);
* two partitions on two workers: the same data planned in two partitions (``backover sync --plan
  --partition-documents N/2``), copied by one ``backover sync`` (both partitions in turn) vs two
  ``backover sync --partition ID`` processes started at once; wall time from launch to the last
  exit and the copy phase (first ``started_at`` to last ``completed_at``); two / one (target
  <= 0.7); the raw baseline the same two ways (one process copying both ranges in turn, two
  processes one range each: what the servers allow); with the cores each process used during the
  copy phases (the stand-ins, moto, the copy processes: psutil, sampled every 0.1 s) and the
  machine's busy cores (``psutil.cpu_times``: ``/proc/stat``), and a ``bound:`` line from them;
* peak RSS (VmHWM from ``/proc/<pid>/status``, polled) of one ``backover sync`` copying
  ``--rss-documents`` documents (target <= 300 MiB for 1,000,000), then a raw copy of the same;
* the load average at the start and the end.

Every copy is checked: the target's count; the target's bytes against the source's (SHA-256 of
every document in ``_id`` order) once per kind of run; the unique index on the target.

    .venv/bin/python benchmarks/bench_sync.py                      # 200k documents, 3 rounds, 1M for RSS
    .venv/bin/python benchmarks/bench_sync.py --figures two-workers --rounds 5   # one figure
    .venv/bin/python benchmarks/bench_sync.py --quick --json /tmp/sync.json   # the smoke run

Exit status 0 when every copy was complete and identical; a missed
target is printed as ``MISSED`` (and listed on the ``targets`` line), not an error.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import bson
import psutil
from bson import Binary, Decimal128, Int64, ObjectId
from bson.raw_bson import RawBSONDocument
from pymongo import ASCENDING, MongoClient
from pymongo.collection import Collection

from backover import state
from backover.bsonvalues import RAW, raw_collection
from backover.layout import MigrationLayout
from backover.lifecycle.source import cluster_time
from backover.s3objects import S3Objects
from backover.state import StartRecord, SyncPartitionCheckpoint, SyncPartitionState
from backover.sync import ranges, read_plan
from replicate_servers import MotoProcess, source_uri
from standin_process import standin_process

DB, COLL = "bench", "items"
NS = f"{DB}.{COLL}"
MIB = 1024 * 1024
DOC_BYTES = 500
BATCH = 1000
PREFIX = "bench-sync"
COPY_TARGET = 0.8  # copy / raw, at least
TWO_TARGET = 0.7  # two workers / one, at most
RSS_TARGET_MIB = 300  # for 1,000,000 documents
RETENTION_SECONDS = 120.0
FIGURES = ("throughput", "two-workers", "rss")
QUICK = {"documents": 10_000, "rss_documents": 20_000, "rounds": 1}


# -- the data ----------------------------------------------------------------------------------------
def document(i: int) -> dict[str, Any]:
    """About :data:`DOC_BYTES` bytes of mixed types; ``email`` is unique."""
    doc: dict[str, Any] = {
        "_id": ObjectId(i.to_bytes(12, "big")),
        "email": f"user{i:09d}@example.com",
        "n": i % 1_000_000,
        "total": Int64(i * 7),
        "price": Decimal128(f"{i % 1000}.{i % 100:02d}"),
        "ratio": i / 7,
        "active": i % 2 == 0,
        "created": datetime(2024, 1, 1, tzinfo=UTC) + timedelta(seconds=i),
        "deleted_at": None,
        "tags": ["red", "blue", i % 7],
        "address": {
            "street": f"{i} Main St",
            "zip": f"{i % 99999:05d}",
            "geo": {"type": "Point", "coordinates": [(i % 360) - 180.0, (i % 180) - 90.0]},
        },
        "token": Binary(i.to_bytes(16, "big")),
        "note": "",
    }
    doc["note"] = "n" * max(0, DOC_BYTES - len(bson.encode(doc)))
    return doc


def load(client: MongoClient, start: int, count: int) -> float:
    """Insert documents ``start`` .. ``start + count - 1`` on the source; seconds taken."""
    began = time.perf_counter()
    coll = client[DB][COLL]
    for first in range(start, start + count, BATCH):
        coll.insert_many(
            [document(i) for i in range(first, min(first + BATCH, start + count))], ordered=False
        )
    return time.perf_counter() - began


def raw_batches(
    coll: Collection[RawBSONDocument], filter: dict[str, Any], batch_size: int
) -> Iterator[bytes]:
    """Each batch's bytes of ``find(filter)`` sorted by ``_id`` (what the sync reads)."""
    # pymongo types a raw batch cursor as yielding documents; it yields each batch's bytes.
    yield from cast(
        "Iterator[bytes]", coll.find_raw_batches(filter, sort=[("_id", 1)], batch_size=batch_size)
    )


def contents(client: MongoClient) -> tuple[int, str]:
    """(documents, SHA-256 of every document's bytes in ``_id`` order) of ``bench.items``."""
    digest, n = hashlib.sha256(), 0
    for batch in raw_batches(raw_collection(client, DB, COLL), {}, BATCH):
        digest.update(batch)  # a raw batch is its documents' bytes one after the other
        n += len(bson.decode_all(batch, RAW))
    return n, digest.hexdigest()


def both_contents(source: MongoClient, target: MongoClient) -> tuple[tuple[int, str], tuple[int, str]]:
    """:func:`contents` of both sides, read at the same time."""
    out: dict[str, tuple[int, str]] = {}
    threads = [
        threading.Thread(target=lambda k=k, c=c: out.__setitem__(k, contents(c)))
        for k, c in (("source", source), ("target", target))
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out["source"], out["target"]


# -- measuring ---------------------------------------------------------------------------------------
def load_average() -> dict[str, Any]:
    one, five, fifteen = os.getloadavg()
    return {"1m": round(one, 2), "5m": round(five, 2), "15m": round(fifteen, 2), "cores": os.cpu_count()}


def _child(marker: list[str]) -> psutil.Process:
    """This process's child whose command line holds ``marker`` in sequence (a server we started)."""
    for proc in psutil.Process().children():
        cmd = proc.cmdline()
        if any(cmd[i : i + len(marker)] == marker for i in range(len(cmd))):
            return proc
    raise RuntimeError(f"no child process with {' '.join(marker)} on its command line")


COPIERS = "copy process(es)"


def _cpu(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return times.user + times.system


class CpuSampler:
    """CPU seconds sampled every 0.1 s on a thread: of the servers, of the copy processes (this
    process for the raw copy, the ``backover sync`` processes otherwise) and of the whole machine
    (``psutil.cpu_times``: ``/proc/stat``, every process on the machine). The cores each used
    during a copy phase are the differences between the first and the last sample inside it,
    summed over the rounds."""

    def __init__(self, servers: dict[str, psutil.Process]) -> None:
        self.servers = servers
        self.totals: dict[str, float] = {}
        self.seconds = 0.0

    @contextlib.contextmanager
    def watching(self, copiers: list[psutil.Process]) -> Iterator[list[tuple[float, dict[str, float]]]]:
        """Samples while the block runs (``copiers`` may be appended to meanwhile)."""
        samples: list[tuple[float, dict[str, float]]] = []
        last: dict[int, float] = {}
        stop = threading.Event()

        def sample() -> None:
            values = {name: _cpu(p) for name, p in self.servers.items()}
            for p in list(copiers):
                try:
                    last[p.pid] = _cpu(p)
                except psutil.Error:  # exited: its last sample stands
                    pass
            values[COPIERS] = sum(last.values())
            machine = psutil.cpu_times()
            values["machine (all processes)"] = sum(machine) - machine.idle - getattr(machine, "iowait", 0.0)
            samples.append((time.time(), values))

        def run() -> None:
            while not stop.wait(0.1):
                sample()

        thread = threading.Thread(target=run, daemon=True)
        sample()
        thread.start()
        try:
            yield samples
        finally:
            stop.set()
            thread.join()
            sample()

    def window(self, samples: list[tuple[float, dict[str, float]]], start: float, end: float) -> None:
        inside = [s for s in samples if start <= s[0] <= end]
        if len(inside) < 2:
            return
        (t0, first), (t1, last) = inside[0], inside[-1]
        self.seconds += t1 - t0
        for name, value in last.items():
            self.totals[name] = self.totals.get(name, 0.0) + value - first[name]

    def cores(self) -> dict[str, float]:
        """Average cores each used over the copy phases measured."""
        if self.seconds <= 0:
            return {}
        return {name: round(v / self.seconds, 2) for name, v in self.totals.items()}


# -- the servers and the sync processes --------------------------------------------------------------
@dataclass
class Bench:
    moto: MotoProcess
    bucket: str
    source_uri: str
    target_uri: str
    source: MongoClient
    target: MongoClient
    servers: dict[str, psutil.Process]
    log_dir: Path
    batch_size: int
    runs: int = 0

    @property
    def s3(self) -> S3Objects:
        return S3Objects(self.bucket)

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            **self.moto.environment(),
            "BACKOVER_SOURCE_URI": self.source_uri,  # through the environment, as a worker has it
            "BACKOVER_TARGET_URI": self.target_uri,
        }

    def new_migration(self) -> MigrationLayout:
        """A started migration (``state/start.json`` with T0 = now, naming ``bench.items``) and
        an empty target."""
        self.target.drop_database(DB)
        layout = MigrationLayout(self.bucket, PREFIX, f"m-{uuid.uuid4().hex[:10]}")
        state.write(
            self.s3,
            layout.start_state,
            StartRecord(
                migration_id=layout.migration_id,
                t0=cluster_time(self.source),
                databases=[DB],
                namespaces=[NS],
                source_flavour="documentdb",
            ),
        )
        return layout

    def sync_argv(self, layout: MigrationLayout, *extra: str) -> list[str]:
        return [
            sys.executable,
            "-m",
            "backover",
            "sync",
            "--bucket",
            layout.bucket,
            "--prefix",
            layout.prefix,
            "--migration-id",
            layout.migration_id,
            "--batch-size",
            str(self.batch_size),
            *extra,
        ]

    def launch(self, layout: MigrationLayout, *extra: str) -> tuple[subprocess.Popen[bytes], Path]:
        self.runs += 1
        log = self.log_dir / f"sync-{self.runs:03d}.log"
        with open(log, "wb") as err:
            proc = subprocess.Popen(
                self.sync_argv(layout, *extra), env=self.env(), stdout=subprocess.PIPE, stderr=err
            )
        return proc, log

    def finish(self, proc: subprocess.Popen[bytes], log: Path) -> dict[str, Any]:
        out, _ = proc.communicate()
        if proc.returncode != 0:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
            raise RuntimeError(
                f"{' '.join(str(a) for a in cast('list[str]', proc.args)[1:4])} exited with {proc.returncode} (log {log}):\n{tail}"
            )
        return json.loads(out.decode().strip().splitlines()[-1])

    def sync(self, layout: MigrationLayout, *extra: str) -> dict[str, Any]:
        return self.finish(*self.launch(layout, *extra))

    def launch_raw(
        self, copiers: list[psutil.Process], layout: MigrationLayout, partitions: list[str]
    ) -> tuple[subprocess.Popen[bytes], Path]:
        """The raw baseline of ``partitions`` in a process of its own (:func:`raw_child`)."""
        self.runs += 1
        log = self.log_dir / f"raw-{self.runs:03d}.log"
        argv = [sys.executable, str(Path(__file__).resolve()), "--raw-child"]
        argv += [layout.bucket, layout.prefix, layout.migration_id, *partitions]
        with open(log, "wb") as err:
            proc = subprocess.Popen(
                argv,
                env={**self.env(), "BENCH_BATCH": str(self.batch_size)},
                stdout=subprocess.PIPE,
                stderr=err,
            )
        try:
            copiers.append(psutil.Process(proc.pid))
        except psutil.Error:
            pass
        return proc, log

    def checkpoints(self, layout: MigrationLayout) -> list[SyncPartitionCheckpoint]:
        plan = read_plan(self.s3, layout)
        assert plan is not None, "no sync plan"
        out = []
        for pid in plan.partition_ids():
            cp = state.read(self.s3, layout.sync_partition(pid), SyncPartitionCheckpoint)
            assert cp is not None and cp.state is SyncPartitionState.COMPLETED, (pid, cp)
            out.append(cp)
        return out

    def copy_window(self, layout: MigrationLayout) -> tuple[float, float]:
        """The copy phase (epoch seconds): the first partition's ``started_at`` to the last one's
        ``completed_at``."""
        cps = self.checkpoints(layout)
        first = min(cp.started_at for cp in cps)
        last = max(cp.completed_at for cp in cps if cp.completed_at is not None)
        return first.timestamp(), last.timestamp()

    def launch_watched(
        self, copiers: list[psutil.Process], layout: MigrationLayout, *extra: str
    ) -> tuple[subprocess.Popen[bytes], Path]:
        proc, log = self.launch(layout, *extra)
        try:
            copiers.append(psutil.Process(proc.pid))
        except psutil.Error:
            pass
        return proc, log

    def check_target(self, documents: int, compare: bool) -> bool:
        """The target holds ``documents`` documents and the unique index (and, with ``compare``,
        the source's bytes)."""
        indexes = {tuple(ix["key"].items()): ix for ix in self.target[DB][COLL].list_indexes()}
        unique = indexes.get((("email", 1),), {}).get("unique") is True
        if compare:
            (n_src, h_src), (n_dst, h_dst) = both_contents(self.source, self.target)
            return unique and n_src == n_dst == documents and h_src == h_dst
        return unique and self.target[DB][COLL].count_documents({}) == documents


# -- the figures -------------------------------------------------------------------------------------
def raw_copy(bench: Bench, documents: int) -> tuple[float, float]:
    """The window (epoch seconds) of a raw find -> insert_many of the source into an empty target
    collection that has the unique index already (created before the clock starts, as the sync's
    plan does)."""
    bench.target.drop_database(DB)
    bench.target[DB].create_collection(COLL)
    bench.target[DB][COLL].create_index([("email", ASCENDING)], unique=True, name="email_1")
    began = time.time()
    n = copy_raw(bench.source, bench.target, {}, bench.batch_size)
    ended = time.time()
    assert n == documents, (n, documents)
    return began, ended


def copy_raw(source: MongoClient, target: MongoClient, filter: dict[str, Any], batch_size: int) -> int:
    """The baseline: ``find_raw_batches`` sorted by ``_id`` -> ``insert_many(ordered=False)`` of the
    RawBSONDocuments, batch by batch; the documents copied."""
    src = raw_collection(source, DB, COLL)
    dst = raw_collection(target, DB, COLL)
    n = 0
    for batch in raw_batches(src, filter, batch_size):
        docs = bson.decode_all(batch, RAW)
        dst.insert_many(docs, ordered=False)
        n += len(docs)
    return n


def raw_child(argv: list[str]) -> int:
    """``bench_sync.py --raw-child BUCKET PREFIX MIGRATION_ID PARTITION...``: the raw baseline of
    partitions of a plan, one after the other, as a process of its own (the URIs from
    ``BACKOVER_SOURCE_URI``/``BACKOVER_TARGET_URI``); prints ``{documents, began, ended}``."""
    bucket, prefix, migration_id, *partitions = argv
    layout = MigrationLayout(bucket, prefix, migration_id)
    plan = read_plan(S3Objects(bucket), layout)
    assert plan is not None
    filters = []
    for pid in partitions:
        found = plan.find(pid)
        assert found is not None, pid
        part = found[1]
        filters.append(ranges.id_filter(part.types, part.lower, part.upper))
    with (
        MongoClient[dict[str, Any]](os.environ["BACKOVER_SOURCE_URI"]) as source,
        MongoClient[dict[str, Any]](os.environ["BACKOVER_TARGET_URI"]) as target,
    ):
        source.admin.command("ping")
        target.admin.command("ping")
        began = time.time()
        n = sum(copy_raw(source, target, f, int(os.environ.get("BENCH_BATCH", BATCH))) for f in filters)
        ended = time.time()
    print(json.dumps({"documents": n, "began": began, "ended": ended}))
    return 0


def throughput(bench: Bench, documents: int, rounds: int) -> dict[str, Any]:
    raw_s: list[float] = []
    copy_s: list[float] = []
    whole_s: list[float] = []
    raw_cpu, sync_cpu = CpuSampler(bench.servers), CpuSampler(bench.servers)
    identical = True
    for r in range(rounds):
        # Raw first in odd rounds, the sync first in even ones: a load that drifts during a round
        # (other work on the machine) does not always favour the same side.
        for kind in ("raw", "sync") if r % 2 == 0 else ("sync", "raw"):
            if kind == "raw":
                with raw_cpu.watching([psutil.Process()]) as samples:
                    began, ended = raw_copy(bench, documents)
                raw_cpu.window(samples, began, ended)
                raw_s.append(ended - began)
                identical &= bench.check_target(documents, compare=r == 0)
                continue
            layout = bench.new_migration()
            copiers: list[psutil.Process] = []
            with sync_cpu.watching(copiers) as samples:
                started = time.perf_counter()
                summary = bench.finish(*bench.launch_watched(copiers, layout))
                whole_s.append(time.perf_counter() - started)
            assert summary["state"] == "complete", summary
            began, ended = bench.copy_window(layout)
            sync_cpu.window(samples, began, ended)
            copy_s.append(ended - began)
            identical &= bench.check_target(documents, compare=r == rounds - 1)
        print(
            f"  round {r + 1}: raw {raw_s[-1]:.2f}s, sync copy {copy_s[-1]:.2f}s, whole command {whole_s[-1]:.2f}s "
            f"(copy / raw {raw_s[-1] / copy_s[-1]:.2f})",
            flush=True,
        )
    raw, copy, whole = (statistics.median(x) for x in (raw_s, copy_s, whole_s))
    return {
        "documents": documents,
        "rounds": rounds,
        "raw_seconds": raw_s,
        "copy_seconds": copy_s,
        "whole_seconds": whole_s,
        "raw_docs_per_s": documents / raw,
        "copy_docs_per_s": documents / copy,
        "whole_docs_per_s": documents / whole,
        "copy_over_raw": raw / copy,
        "whole_over_raw": raw / whole,
        # Each round's pair measured back to back, then the median: steadier when the load drifts.
        "copy_over_raw_paired": statistics.median(a / b for a, b in zip(raw_s, copy_s, strict=True)),
        "cores_raw": raw_cpu.cores(),
        "cores_sync": sync_cpu.cores(),
        "identical": identical,
    }


KINDS = ("sync one", "sync two", "raw one", "raw two")


def two_workers(bench: Bench, documents: int, rounds: int) -> dict[str, Any]:
    """Per round, each on a fresh plan of two partitions: ``backover sync`` copying both in one
    process (``sync one``), two ``backover sync --partition`` processes at once (``sync two``),
    and the raw baseline the same two ways (``raw one``, ``raw two``: what the servers allow)."""
    half = (documents + 1) // 2
    wall: dict[str, list[float]] = {k: [] for k in KINDS}
    copy: dict[str, list[float]] = {k: [] for k in KINDS}
    cpu = {k: CpuSampler(bench.servers) for k in KINDS}
    identical = True
    for r in range(rounds):
        for kind in KINDS:
            layout = bench.new_migration()
            planned = bench.sync(layout, "--plan", "--partition-documents", str(half))
            partitions = planned["partitions"]
            assert len(partitions) == 2, planned
            groups = [partitions] if kind.endswith("one") else [[pid] for pid in partitions]
            copiers: list[psutil.Process] = []
            with cpu[kind].watching(copiers) as samples:
                started = time.perf_counter()
                if kind == "sync one":
                    procs = [bench.launch_watched(copiers, layout)]
                elif kind == "sync two":
                    procs = [bench.launch_watched(copiers, layout, "--partition", g[0]) for g in groups]
                else:
                    procs = [bench.launch_raw(copiers, layout, g) for g in groups]
                summaries = [bench.finish(*p) for p in procs]
                wall[kind].append(time.perf_counter() - started)
            if kind.startswith("sync"):
                assert "complete" in {s["state"] for s in summaries}, summaries
                began, ended = bench.copy_window(layout)
            else:
                assert sum(s["documents"] for s in summaries) == documents, summaries
                began, ended = min(s["began"] for s in summaries), max(s["ended"] for s in summaries)
            cpu[kind].window(samples, began, ended)
            copy[kind].append(ended - began)
            identical &= bench.check_target(documents, compare=r == 0 and kind.startswith("sync"))
        print(
            "  round "
            + str(r + 1)
            + ": "
            + "; ".join(f"{kind} {wall[kind][-1]:.2f}s (copy {copy[kind][-1]:.2f}s)" for kind in KINDS),
            flush=True,
        )
    med_wall = {k: statistics.median(v) for k, v in wall.items()}
    med_copy = {k: statistics.median(v) for k, v in copy.items()}
    return {
        "documents": documents,
        "rounds": rounds,
        "wall_seconds": wall,
        "copy_seconds": copy,
        "two_over_one_wall": med_wall["sync two"] / med_wall["sync one"],
        "two_over_one_copy": med_copy["sync two"] / med_copy["sync one"],
        "raw_two_over_one_wall": med_wall["raw two"] / med_wall["raw one"],
        "raw_two_over_one_copy": med_copy["raw two"] / med_copy["raw one"],
        # Each round's two / one, then the median: steadier when the load drifts.
        "two_over_one_wall_paired": statistics.median(
            a / b for a, b in zip(wall["sync two"], wall["sync one"], strict=True)
        ),
        "raw_two_over_one_wall_paired": statistics.median(
            a / b for a, b in zip(wall["raw two"], wall["raw one"], strict=True)
        ),
        "sync_one_over_raw_one_copy": med_copy["raw one"] / med_copy["sync one"],
        "sync_two_over_raw_two_copy": med_copy["raw two"] / med_copy["sync two"],
        "cores": {k: cpu[k].cores() for k in KINDS},
        "identical": identical,
    }


def peak_rss(bench: Bench, documents: int) -> dict[str, Any]:
    """One ``backover sync`` (plan and copy) of ``documents``: VmHWM polled from ``/proc``."""
    layout = bench.new_migration()
    began = time.perf_counter()
    proc, log = bench.launch(layout)
    peak = 0
    while proc.poll() is None:
        try:
            with open(f"/proc/{proc.pid}/status") as status:
                for line in status:
                    if line.startswith("VmHWM:"):
                        peak = max(peak, int(line.split()[1]) * 1024)
        except OSError:
            pass
        time.sleep(0.05)
    seconds = time.perf_counter() - began
    summary = bench.finish(proc, log)
    assert summary["state"] == "complete", summary
    began, ended = bench.copy_window(layout)
    copy = ended - began
    return {
        "documents": documents,
        "peak_rss_mib": peak / MIB,
        "whole_seconds": seconds,
        "copy_seconds": copy,
        "copy_docs_per_s": documents / copy,
        "identical": bench.check_target(documents, compare=False),
    }


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--raw-child"]:
        return raw_child(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=200_000, help="for throughput and two workers")
    parser.add_argument("--rss-documents", type=int, default=1_000_000, help="for the peak-RSS figure")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each kind (the median is kept)")
    parser.add_argument("--batch-size", type=int, default=BATCH)
    parser.add_argument("--quick", action="store_true", help=f"the smoke run: {QUICK}")
    parser.add_argument(
        "--figures",
        type=lambda text: [f for f in text.split(",") if f],
        default=list(FIGURES),
        help=f"which figures, comma-separated (default all: {','.join(FIGURES)})",
    )
    parser.add_argument("--json", type=Path, help="also write every figure as JSON to this file")
    args = parser.parse_args(argv)
    if not args.figures or set(args.figures) - set(FIGURES):
        parser.error(f"--figures: some of {','.join(FIGURES)}")
    if args.quick:
        args.documents, args.rss_documents, args.rounds = (
            QUICK["documents"],
            QUICK["rss_documents"],
            QUICK["rounds"],
        )
    if args.documents < 2 or args.rounds < 1 or args.rss_documents < 1:
        parser.error("--documents must be at least 2, --rounds and --rss-documents at least 1")
    if args.json is not None and not args.json.parent.is_dir():
        parser.error(f"--json {args.json}: the folder {args.json.parent} does not exist")

    load_start = load_average()
    print(
        f"load average at start: {load_start['1m']:.2f} {load_start['5m']:.2f} {load_start['15m']:.2f} "
        f"({load_start['cores']} cores); {args.documents:,} documents of about {DOC_BYTES} bytes, "
        f"{args.rounds} round(s), {args.rss_documents:,} for RSS",
        flush=True,
    )
    report: dict[str, Any] = {"load": {"start": load_start}, "batch_size": args.batch_size}
    with (
        tempfile.TemporaryDirectory(prefix="bench-sync-") as log_dir,
        MotoProcess() as moto,
        # A short change-log retention: the sync reads no change stream, and a stand-in holding
        # millions of change-log entries takes longer to exit than standin_process waits.
        standin_process("documentdb", retention_seconds=RETENTION_SECONDS) as source_port,
        standin_process("mongodb", retention_seconds=RETENTION_SECONDS) as target_port,
    ):
        os.environ.update(moto.environment())
        target_uri = f"mongodb://127.0.0.1:{target_port}/?directConnection=true"
        with (
            MongoClient[dict[str, Any]](source_uri(source_port)) as source,
            MongoClient[dict[str, Any]](target_uri) as target,
        ):
            bench = Bench(
                moto=moto,
                bucket=moto.bucket("backover-bench-sync"),
                source_uri=source_uri(source_port),
                target_uri=target_uri,
                source=source,
                target=target,
                servers={
                    "source stand-in": _child(["--port", str(source_port)]),
                    "target stand-in": _child(["--port", str(target_port)]),
                    "moto": _child(["-p", str(moto.port)]),
                },
                log_dir=Path(log_dir),
                batch_size=args.batch_size,
            )
            source[DB][COLL].create_index([("email", ASCENDING)], unique=True, name="email_1")
            seconds = load(source, 0, args.documents)
            size = len(bson.encode(document(args.documents - 1)))
            print(
                f"loaded {args.documents:,} documents in {seconds:.1f}s ({size} bytes each)",
                flush=True,
            )

            if "throughput" in args.figures:
                report["throughput"] = report_throughput(bench, args)
            if "two-workers" in args.figures:
                report["two_workers"] = report_two_workers(bench, args)
            if "rss" in args.figures:
                report["rss"] = report_rss(bench, args)
            # Emptied here, so that the stand-ins stop within standin_process's 10 s once told to.
            for client in (source, target):
                client.drop_database(DB)
            # The figures are out before the servers stop.
            code = conclude(args, report)
    return code


def report_throughput(bench: Bench, args: argparse.Namespace) -> dict[str, Any]:
    t = throughput(bench, args.documents, args.rounds)
    copy_ok = t["copy_over_raw"] >= COPY_TARGET
    print(
        f"copy throughput, {args.documents:,} documents, median of {args.rounds}: raw find -> insert_many "
        f"{t['raw_docs_per_s']:,.0f} docs/s; backover sync copy phase {t['copy_docs_per_s']:,.0f} docs/s, "
        f"whole command {t['whole_docs_per_s']:,.0f} docs/s; copy / raw {t['copy_over_raw']:.2f} "
        f"(target >= {COPY_TARGET}: {verdict(copy_ok)}; median of the rounds' own ratios "
        f"{t['copy_over_raw_paired']:.2f}), whole / raw {t['whole_over_raw']:.2f}",
        flush=True,
    )
    print(f"  cores used during the raw copy: {cores_line_of(t['cores_raw'])}", flush=True)
    print(f"  cores used during backover sync: {cores_line_of(t['cores_sync'])}", flush=True)
    return t


def report_two_workers(bench: Bench, args: argparse.Namespace) -> dict[str, Any]:
    w = two_workers(bench, args.documents, args.rounds)
    two_ok = w["two_over_one_wall"] <= TWO_TARGET
    print(
        f"two partitions, {args.documents:,} documents, median of {args.rounds}: two backover sync processes "
        f"at once / one copying both: {w['two_over_one_wall']:.2f} wall (target <= {TWO_TARGET}: "
        f"{verdict(two_ok)}; median of the rounds' own ratios {w['two_over_one_wall_paired']:.2f}), "
        f"{w['two_over_one_copy']:.2f} copy phase; the raw baseline the same two ways (what the servers "
        f"allow): {w['raw_two_over_one_wall']:.2f} wall (rounds' own {w['raw_two_over_one_wall_paired']:.2f}), "
        f"{w['raw_two_over_one_copy']:.2f} copy phase; sync / raw copy throughput: {w['sync_one_over_raw_one_copy']:.2f} in one process, "
        f"{w['sync_two_over_raw_two_copy']:.2f} in two",
        flush=True,
    )
    for kind in KINDS:
        print(f"  cores used, {kind}: {cores_line_of(w['cores'][kind])}", flush=True)
    print(f"  bound: {bound(w['cores'])}", flush=True)
    return w


def bound(cores: dict[str, dict[str, float]]) -> str:
    """What the CPU figures say bounds two copies at once: the machine's cores, when other work
    kept them busy, else the target stand-in (one Python process: at most one core)."""
    n = os.cpu_count() or 1
    two, one = cores["sync two"], cores["sync one"]
    busy = two.get("machine (all processes)", 0.0)
    ours = sum(v for k, v in two.items() if k != "machine (all processes)")
    if busy >= 0.9 * n:
        return (
            f"the machine's {n} cores: {busy:.2f} busy while two copies ran, {ours:.2f} of it the servers' and "
            f"the copies' processes, the rest other work; the target stand-in got {two.get('target stand-in', 0):.2f}"
        )
    alone = one.get("target stand-in", 0.0)
    return (
        f"the target stand-in (one Python process, a store lock: at most 1 core): {alone:.2f} cores written to by "
        f"one process, {two.get('target stand-in', 0):.2f} by two, so two writers bring the copy to about "
        f"{alone:.2f} of its time at best; the machine had {n - busy:.2f} of its {n} cores idle"
    )


def report_rss(bench: Bench, args: argparse.Namespace) -> dict[str, Any]:
    source = bench.source
    held = source[DB][COLL].count_documents({})  # documents 0 .. held - 1
    if held < args.rss_documents:
        seconds = load(source, held, args.rss_documents - held)
        print(f"loaded {args.rss_documents - held:,} more documents in {seconds:.1f}s", flush=True)
    elif held > args.rss_documents:
        source[DB][COLL].delete_many({"_id": {"$gte": ObjectId(args.rss_documents.to_bytes(12, "big"))}})
    m = peak_rss(bench, args.rss_documents)
    began, ended = raw_copy(bench, args.rss_documents)
    m["raw_docs_per_s"] = args.rss_documents / (ended - began)
    rss_ok = m["peak_rss_mib"] <= RSS_TARGET_MIB
    print(
        f"peak RSS of one backover sync copying {args.rss_documents:,} documents: {m['peak_rss_mib']:.0f} MiB "
        f"(target <= {RSS_TARGET_MIB} MiB for 1,000,000: {verdict(rss_ok)}); whole command "
        f"{m['whole_seconds']:.1f}s, copy phase {m['copy_docs_per_s']:,.0f} docs/s (raw find -> insert_many "
        f"of the same, once, after it: {m['raw_docs_per_s']:,.0f} docs/s)",
        flush=True,
    )
    return m


def conclude(args: argparse.Namespace, report: dict[str, Any]) -> int:
    """The targets line, the load at the end, the JSON; the exit status."""
    t, w, m = (report.get(k) for k in ("throughput", "two_workers", "rss"))
    checks = []
    if t is not None:
        checks.append(("copy / raw", t["copy_over_raw"] >= COPY_TARGET))
    if w is not None:
        checks.append(("two workers / one", w["two_over_one_wall"] <= TWO_TARGET))
    if m is not None:
        checks.append(("peak RSS", m["peak_rss_mib"] <= RSS_TARGET_MIB))
    missed = [name for name, ok in checks if not ok]
    identical = all(part["identical"] for part in (t, w, m) if part is not None)
    print("targets: all met" if not missed else f"targets MISSED: {', '.join(missed)}", flush=True)
    load_end = report["load"]["end"] = load_average()
    print(
        f"load average at the end: {load_end['1m']:.2f} {load_end['5m']:.2f} {load_end['15m']:.2f}",
        flush=True,
    )
    report["targets_missed"] = missed
    report["identical"] = identical
    if not identical:
        print("a copy was not complete and identical", file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")
    return 0 if identical else 1


def cores_line_of(cores: dict[str, float]) -> str:
    return ", ".join(f"{name} {value:.2f}" for name, value in cores.items())


if __name__ == "__main__":
    sys.exit(main())
