"""Benchmark the write freeze (issue 12): ``backover rehearsal`` at the issue's scales, watched from outside.

Each case is one ``python -m backover rehearsal --documents N --writes-per-second R --minutes M``
on its own sandbox (``--dir``, ``--port-base``): the three DAGs unchanged, follow mode on unless
said otherwise, ``--minutes`` chosen so that the capture holds the case's events since T0
(events = R x seconds of load; the load goes on while ``backover_restore`` works before the
freeze, so what a case of the same size wrote then is counted in, and the events actually
captured are printed). While it runs, this script reads the migration's state objects in the
sandbox's S3 and ``/proc``, and prints per case:

* the write-freeze window (read-only -> verified) and its phases (drain, restore, verify), from
  the rehearsal's report (``backover.lifecycle.window``), and whether it ended identical
  (target <= 10 s in every case);
* the physical limit: the drain lag plus the time to write the tail's final documents with a raw
  ``insert_many`` (RawBSONDocument) into a fresh collection of a MongoDB stand-in of its own
  (the tail: the events the restore applied after the freeze, from its checkpoint just before
  ``frozen_at`` and at the end; the documents: those the tail's events touch, read from the
  target once restored); freeze / limit (target <= 2);
* the follow restore's lag behind the capture, ``backover status``'s ``restore.lag.seconds``
  sampled every second during the load (target median <= 3 s), and the follow restore's peak RSS
  (VmHWM from ``/proc/<pid>/status``; pid file ``restore-<migration id>.pid`` in
  ``$BACKOVER_RUN_DIR``, which this script sets) (target <= 300 MiB);

then freeze(1M docs, 100k events) / freeze(20k docs, 5k events) (target <= 1.5, in one run), the
follow / no-follow freeze windows side by side, and the machine's load at the start and the end::

    .venv/bin/python benchmarks/bench_freeze.py                  # the grid (3 x 2, and 20k:5k no-follow)
    .venv/bin/python benchmarks/bench_freeze.py --cases 20k:5k --no-follow-cases ''
    .venv/bin/python benchmarks/bench_freeze.py --quick --json /tmp/freeze.json

Exit status 0 when every case's rehearsal passed (verified identical) and every figure could be
measured; a missed target is printed (``MISSED``), not an error.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument
from pymongo import MongoClient
from pymongo.errors import PyMongoError

from backover import state
from backover.detach import RUN_DIR_ENV
from backover.errors import BackoverError
from backover.layout import MigrationLayout
from backover.replication.status import status
from backover.restore.events import CRUD_OPS, parse_event
from backover.restore.reader import list_segments, read_segment
from backover.s3objects import S3Objects
from backover.state import FreezeRecord, RestoreCheckpoint, RestoreState
from backover_sandbox import seed
from backover_sandbox.config import AWS_TEST_KEY_ID, AWS_TEST_SECRET_KEY, REGION, SandboxConfig, SandboxState
from backover_sandbox.manager import master_credentials
from standin_process import standin_process

ROOT = Path(__file__).resolve().parents[1]
MIB = 1024 * 1024
WRITES_PER_SECOND = 500.0
GRID_DOCUMENTS = (20_000, 200_000, 1_000_000)
GRID_EVENTS = (5_000, 100_000)
QUICK = "2k:1k"
#: The issue's ratio: the largest case over the smallest.
RATIO = ((1_000_000, 100_000), (20_000, 5_000))
FREEZE_TARGET_SECONDS = 10.0
RATIO_TARGET = 1.5
LIMIT_RATIO_TARGET = 2.0
LAG_MEDIAN_TARGET_SECONDS = 3.0
RSS_TARGET_MIB = 300.0
POLL_SECONDS = 0.25
#: The shortest load before ``backover_restore`` (the rehearsal's --minutes must be above 0).
MIN_LOAD_SECONDS = 2.0
LAG_SAMPLE_SECONDS = 1.0
#: Apart from `sandbox up` (31000), the rehearsal (31200), the e2e tests (31400+) and the sandbox tests (31600+).
DEFAULT_PORT_BASE = 31800
#: The monitor's S3 client gives up fast: the sandbox goes away at the end of each rehearsal.
S3_CONFIG = Config(retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=2, read_timeout=5)
RAW = CodecOptions(document_class=RawBSONDocument)
_COUNT = re.compile(r"^(\d+(?:\.\d+)?)([kKmM]?)$")


# -- cases ------------------------------------------------------------------------------------------
def count(text: str) -> int:
    """``20000``, ``20k``, ``1M``, ``1.5k``."""
    match = _COUNT.match(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a count (20000, 20k, 1M)")
    number, unit = match.groups()
    value = int(float(number) * {"": 1, "k": 1_000, "m": 1_000_000}[unit.lower()])
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive count")
    return value


def shown(n: int) -> str:
    """``20k``, ``1M``, ``2500``."""
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1_000 and n % 1_000 == 0:
        return f"{n // 1_000}k"
    return str(n)


@dataclass(frozen=True)
class Case:
    documents: int
    events: int  # events since T0 wanted: writes per second x seconds of load
    follow: bool = True

    @property
    def name(self) -> str:
        return f"{shown(self.documents)}:{shown(self.events)}{'' if self.follow else ' no-follow'}"

    def load_seconds(self, writes_per_second: float, pre_freeze_events: int = 0) -> float:
        """How long the load runs before ``backover_restore``: the events wanted, less those the
        load will write while the restore DAG works before the freeze (the microservices write
        until they are made read-only), as a case of the same size showed."""
        return max(MIN_LOAD_SECONDS, (self.events - pre_freeze_events) / writes_per_second)


def cases_of(text: str, follow: bool = True) -> list[Case]:
    """``20k:5k,1M:100k`` (documents:events since T0, comma-separated)."""
    cases = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        documents, sep, events = item.partition(":")
        if not sep:
            raise argparse.ArgumentTypeError(f"{item!r}: a case is DOCUMENTS:EVENTS, e.g. 20k:5k")
        cases.append(Case(count(documents), count(events), follow))
    return cases


GRID = ",".join(f"{shown(d)}:{shown(e)}" for d in GRID_DOCUMENTS for e in GRID_EVENTS)


# -- watching one rehearsal -------------------------------------------------------------------------
@dataclass
class Watch:
    """What the monitor saw of one rehearsal, from outside."""

    migration_id: str | None = None
    lag_samples: list[float] = field(default_factory=list)
    restore_pid: int | None = None
    restore_hwm_bytes: int | None = None
    frozen_at: datetime | None = None
    at_freeze: RestoreCheckpoint | None = None  # the last checkpoint written before frozen_at
    at_end: RestoreCheckpoint | None = None  # the completed checkpoint
    #: When the restore first said completed (the follow restore, tail applied; the restore DAG's
    #: ``restore --wait`` rewrites the checkpoint after it, and the window's restore phase ends then).
    first_completed_at: datetime | None = None
    tail_documents: dict[str, list[RawBSONDocument]] = field(default_factory=dict)  # ns -> final docs
    tail_events_in_segments: int | None = None
    tail_read: bool = False  # the tail's segments and documents were read in full
    problem: str | None = None  # why a figure could not be measured


def _vm_hwm(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return None


def _restore_pid(run_dir: Path, migration_id: str) -> int | None:
    try:
        pid = int((run_dir / f"restore-{migration_id}.pid").read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\x00")
    except (OSError, ValueError):
        return None
    return pid if b"restore" in cmdline and b"--follow" in cmdline else None


class Monitor:
    """Polls a rehearsal's sandbox while it runs: state objects in its S3, its processes in /proc."""

    def __init__(self, config: SandboxConfig, run_dir: Path, launched: float) -> None:
        self.config = config
        self.run_dir = run_dir
        self.launched = launched  # time.time() when the rehearsal was started
        self.watch = Watch()
        self.sandbox: SandboxState | None = None
        self.s3: S3Objects | None = None
        self.layout: MigrationLayout | None = None
        self._history: list[RestoreCheckpoint] = []
        self._next_lag = 0.0
        self.done = False

    def _fresh(self, path: Path) -> bool:
        try:
            return path.stat().st_mtime >= self.launched
        except OSError:
            return False

    def _connect(self) -> bool:
        if not self._fresh(self.config.state_file):
            return False
        sandbox = SandboxState.load(self.config.state_file)
        if sandbox is None or not sandbox.secret_ids:
            return False
        client = boto3.client(
            "s3",
            endpoint_url=f"http://{sandbox.host}:{sandbox.ports['moto']}",
            aws_access_key_id=AWS_TEST_KEY_ID,
            aws_secret_access_key=AWS_TEST_SECRET_KEY,
            region_name=REGION,
            config=S3_CONFIG,
        )
        self.sandbox, self.s3 = sandbox, S3Objects(sandbox.bucket, client=client)
        return True

    def _find_migration(self) -> bool:
        """The rehearsal's migration id, from the replicator's pid file (``backover_start`` started it)."""
        assert self.sandbox is not None
        for pid_file in sorted(self.run_dir.glob("replicate-*.pid")):
            if self._fresh(pid_file):
                migration_id = pid_file.stem.removeprefix("replicate-")
                self.watch.migration_id = migration_id
                self.layout = MigrationLayout(self.sandbox.bucket, self.sandbox.prefix, migration_id)
                return True
        return False

    def tick(self) -> None:
        """One poll; never raises for a sandbox going away or a state object not there yet."""
        if self.done:
            return
        try:
            if self.s3 is None and not self._connect():
                return
            if self.layout is None and not self._find_migration():
                return
            self._poll()
        except (BackoverError, BotoCoreError, ClientError, PyMongoError, OSError) as e:
            self.watch.problem = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"

    def _poll(self) -> None:
        assert self.s3 is not None and self.layout is not None
        watch = self.watch
        if watch.restore_pid is None and watch.migration_id:
            watch.restore_pid = _restore_pid(self.run_dir, watch.migration_id)
        if watch.restore_pid is not None:
            hwm = _vm_hwm(watch.restore_pid)  # None once it exited: the last value read is its peak
            if hwm is not None:
                watch.restore_hwm_bytes = max(hwm, watch.restore_hwm_bytes or 0)
        checkpoint = state.read(self.s3, self.layout.restore_checkpoint, RestoreCheckpoint)
        if checkpoint is not None and (
            not self._history or self._history[-1].updated_at != checkpoint.updated_at
        ):
            self._history.append(checkpoint)
        if watch.frozen_at is None:
            freeze = state.read(self.s3, self.layout.freeze_state, FreezeRecord)
            if freeze is not None and freeze.frozen_at is not None:
                watch.frozen_at = freeze.frozen_at
            elif checkpoint is not None and checkpoint.follow and time.monotonic() >= self._next_lag:
                # During the load (the follow restore runs, not frozen yet): backover status's lag.
                self._next_lag = time.monotonic() + LAG_SAMPLE_SECONDS
                lag = (status(self.layout, self.s3).get("restore") or {}).get("lag") or {}
                if isinstance(lag.get("seconds"), (int, float)):
                    watch.lag_samples.append(float(lag["seconds"]))
            return
        if checkpoint is None or checkpoint.state is not RestoreState.COMPLETED:
            return
        if watch.first_completed_at is None:
            watch.first_completed_at = checkpoint.updated_at
        if self.s3.get_json(self.layout.verify_report) is None:
            return
        # Verified: the freeze window is over; the segments and checkpoints stay until clean.
        self.done = True
        watch.at_end = checkpoint
        before = [c for c in self._history if c.updated_at <= watch.frozen_at]
        watch.at_freeze = before[-1] if before else None
        self._read_tail()

    def _read_tail(self) -> None:
        """The documents the tail's events touch, as the restore left them in the target."""
        assert self.s3 is not None and self.layout is not None and self.sandbox is not None
        end = self.watch.at_end
        assert end is not None
        first = (self.watch.at_freeze.last_applied_seq if self.watch.at_freeze else 0) + 1
        keys: dict[str, dict[Any, Any]] = {}  # ns -> identity -> _id
        events = 0
        for ref in list_segments(self.s3, self.layout, first, end.last_applied_seq):
            for raw in read_segment(self.s3, ref).events:
                events += 1
                event = parse_event(raw)
                if event.op in CRUD_OPS and event.document_key is not None:
                    keys.setdefault(event.ns, {})[event.identity] = RawBSONDocument(event.document_key)["_id"]
        self.watch.tail_events_in_segments = events
        with seed.client(master_credentials(self.sandbox)["mongodb"]) as target:
            for ns, ids in keys.items():
                db, coll = ns.split(".", 1)
                collection = target[db].get_collection(coll, codec_options=RAW)
                found: list[RawBSONDocument] = []
                values = list(ids.values())
                for i in range(0, len(values), 1000):
                    found += collection.find({"_id": {"$in": values[i : i + 1000]}})
                self.watch.tail_documents[ns] = found
        self.watch.tail_read = True


# -- one case ---------------------------------------------------------------------------------------
@dataclass
class CaseResult:
    case: Case
    report: dict[str, Any]
    watch: Watch
    seconds: float
    exit_status: int
    log: Path
    load_seconds: float  # the load before backover_restore (--minutes)
    insert_seconds: float | None = None

    @property
    def ok(self) -> bool:
        return self.exit_status == 0 and self.report.get("ok") is True

    @property
    def freeze(self) -> float | None:
        return (self.report.get("freeze_window") or {}).get("seconds")

    @property
    def phases(self) -> dict[str, float | None]:
        return (self.report.get("freeze_window") or {}).get("phases") or {}

    @property
    def events(self) -> int | None:
        """Events since T0 at the freeze: everything the replicator captured."""
        value = (self.report.get("figures") or {}).get("events captured (no-op writes make none)")
        return value if isinstance(value, int) else None

    def pre_freeze_events(self, writes_per_second: float) -> int:
        """Events the load wrote after ``--minutes``, while the restore DAG worked before the freeze."""
        return max(0, round((self.events or 0) - self.load_seconds * writes_per_second))

    @property
    def tail_events(self) -> int | None:
        end, at_freeze = self.watch.at_end, self.watch.at_freeze
        if end is None:
            return None
        return end.events_applied - (at_freeze.events_applied if at_freeze else 0)

    @property
    def tail_document_count(self) -> int:
        return sum(len(docs) for docs in self.watch.tail_documents.values())

    @property
    def limit(self) -> float | None:
        drain = self.phases.get("drain")
        if drain is None or self.insert_seconds is None:
            return None
        return drain + self.insert_seconds

    @property
    def tail_applied(self) -> float | None:
        """Seconds from the freeze until the restore first said completed."""
        frozen, done = self.watch.frozen_at, self.watch.first_completed_at
        return None if frozen is None or done is None else round((done - frozen).total_seconds(), 3)

    @property
    def lag_median(self) -> float | None:
        return statistics.median(self.watch.lag_samples) if self.watch.lag_samples else None

    @property
    def rss_mib(self) -> float | None:
        hwm = self.watch.restore_hwm_bytes
        return None if hwm is None else hwm / MIB

    def to_json(self) -> dict[str, Any]:
        w = self.watch
        return {
            "case": self.case.name,
            "documents": self.case.documents,
            "events_wanted": self.case.events,
            "events_since_t0": self.events,
            "load_seconds_before_restore": round(self.load_seconds, 1),
            "follow": self.case.follow,
            "ok": self.ok,
            "identical": self.report.get("identical"),
            "seconds": round(self.seconds, 1),
            "freeze_window": {"seconds": self.freeze, "phases": self.phases},
            "tail": {
                "events": self.tail_events,
                "events_in_segments": w.tail_events_in_segments,
                "documents": self.tail_document_count,
                "insert_seconds": self.insert_seconds,
                "applied_seconds_after_freeze": self.tail_applied,
            },
            "limit_seconds": self.limit,
            "freeze_over_limit": _ratio(self.freeze, self.limit),
            "lag_seconds": {
                "samples": len(w.lag_samples),
                "median": self.lag_median,
                "max": max(w.lag_samples) if w.lag_samples else None,
            },
            "restore_peak_rss_mib": None if self.rss_mib is None else round(self.rss_mib, 1),
            "migration_id": w.migration_id,
            "problem": w.problem,
            "log": str(self.log),
            "rehearsal": self.report,
        }


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else round(a / b, 3)


def run_case(
    case: Case, args: argparse.Namespace, out_dir: Path, limit_port: int, pre_freeze_events: int = 0
) -> CaseResult:
    """One rehearsal, watched; then the tail's documents written raw into the stand-in at ``limit_port``."""
    load_seconds = case.load_seconds(args.writes_per_second, pre_freeze_events)
    config = SandboxConfig.from_env(args.dir, args.port_base)
    run_dir = out_dir / "run"
    run_dir.mkdir(parents=True, exist_ok=True)
    slug = case.name.replace(":", "x").replace(" ", "-")
    report_file, log_file = out_dir / f"{slug}.json", out_dir / f"{slug}.log"
    report_file.unlink(missing_ok=True)
    argv = [
        sys.executable,
        "-m",
        "backover",
        "rehearsal",
        "--dir",
        str(config.directory),
        "--port-base",
        str(args.port_base),
        "--documents",
        str(case.documents),
        "--writes-per-second",
        f"{args.writes_per_second:g}",
        "--minutes",
        f"{load_seconds / 60:.6f}",
        "--report",
        str(report_file),
    ]
    if not case.follow:
        argv.append("--no-follow")
    env = {**os.environ, RUN_DIR_ENV: str(run_dir)}
    launched = time.time()
    began = time.monotonic()
    with log_file.open("wb") as log:
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        monitor = Monitor(config, run_dir, launched)
        try:
            while proc.poll() is None:
                monitor.tick()
                time.sleep(POLL_SECONDS)
        except BaseException:
            proc.send_signal(signal.SIGINT)  # the rehearsal stops its sandbox on the way out
            proc.wait(timeout=120)
            raise
    seconds = time.monotonic() - began
    try:
        report = json.loads(report_file.read_text())
    except (OSError, ValueError):
        report = {}
    result = CaseResult(case, report, monitor.watch, seconds, proc.returncode, log_file, load_seconds)
    if monitor.watch.tail_read:
        result.insert_seconds = insert_raw(monitor.watch.tail_documents, limit_port, slug)
    return result


def insert_raw(documents: dict[str, list[RawBSONDocument]], port: int, slug: str) -> float:
    """Seconds to ``insert_many`` the raw documents into fresh collections of the stand-in."""
    with MongoClient(port=port, directConnection=True) as client:
        db = client.get_database("bench_freeze", codec_options=RAW)
        names = [f"{slug}.{i}.{ns}" for i, ns in enumerate(documents)]
        for name in names:
            db.drop_collection(name)
        began = time.perf_counter()
        for name, docs in zip(names, documents.values(), strict=True):
            if docs:
                db[name].insert_many(docs)
        return time.perf_counter() - began


# -- what is printed --------------------------------------------------------------------------------
def _s(seconds: float | None) -> str:
    return "unknown" if seconds is None else f"{seconds:.1f} s"


def _verdict(value: float | None, target: float) -> str:
    return "unknown" if value is None else ("met" if value <= target else "MISSED")


def case_lines(r: CaseResult, writes_per_second: float) -> Iterator[str]:
    figures = r.report.get("figures") or {}
    verdict = {True: "identical", False: "DIFFERENT", None: "not verified"}[r.report.get("identical")]
    events = "?" if r.events is None else f"{r.events:,}"
    yield (
        f"{r.case.name} ({r.case.documents:,} documents, {r.case.events:,} events since T0 wanted at "
        f"{writes_per_second:g} writes/s): rehearsal {'PASSED' if r.ok else 'FAILED'} ({verdict}) in "
        f"{r.seconds:.0f} s; load before backover_restore {figures.get('load before the restore', '?')}; "
        f"{events} events since T0 at the freeze (the load goes on until the freeze)"
    )
    if not r.ok:
        yield f"  rehearsal log: {r.log}" + (f"; error: {r.report['error']}" if r.report.get("error") else "")
    phases = ", ".join(f"{name} {_s(seconds)}" for name, seconds in r.phases.items())
    yield (
        f"  write freeze (read-only -> verified): {_s(r.freeze)} ({phases or 'no phases'}) "
        f"(target <= {FREEZE_TARGET_SECONDS:g} s: {_verdict(r.freeze, FREEZE_TARGET_SECONDS)})"
    )
    if r.case.follow:
        yield f"  the restore first said completed (tail applied) {_s(r.tail_applied)} after the freeze"
    ratio = _ratio(r.freeze, r.limit)
    insert = "unknown" if r.insert_seconds is None else f"{r.insert_seconds:.2f} s"
    yield (
        f"  physical limit: drain {_s(r.phases.get('drain'))} + tail of {r.tail_events if r.tail_events is not None else '?'} "
        f"events ({r.tail_document_count:,} final documents) written raw in {insert} = {_s(r.limit)}; "
        f"freeze / limit {'unknown' if ratio is None else f'{ratio:.2f}'} "
        f"(target <= {LIMIT_RATIO_TARGET:g}: {_verdict(ratio, LIMIT_RATIO_TARGET)})"
    )
    if r.case.follow:
        samples = r.watch.lag_samples
        yield (
            f"  follow-restore lag (backover status, every {LAG_SAMPLE_SECONDS:g} s of the load): median "
            f"{_s(r.lag_median)}, max {_s(max(samples) if samples else None)} over {len(samples)} samples "
            f"(target median <= {LAG_MEDIAN_TARGET_SECONDS:g} s: {_verdict(r.lag_median, LAG_MEDIAN_TARGET_SECONDS)})"
        )
        rss = "unknown" if r.rss_mib is None else f"{r.rss_mib:.0f} MiB"
        yield (
            f"  follow restore peak RSS (VmHWM, pid {r.watch.restore_pid}): {rss} "
            f"(target <= {RSS_TARGET_MIB:g} MiB: {_verdict(r.rss_mib, RSS_TARGET_MIB)})"
        )
    if r.watch.problem and r.limit is None:
        yield f"  last monitor problem: {r.watch.problem}"


def summary(results: list[CaseResult]) -> tuple[list[str], dict[str, Any], list[str]]:
    """Lines, the JSON of the run's ratios, and the targets missed."""
    lines: list[str] = []
    missed: list[str] = []
    follow = {(r.case.documents, r.case.events): r for r in results if r.case.follow}
    for r in follow.values():
        for what, value, target in (
            ("freeze", r.freeze, FREEZE_TARGET_SECONDS),
            ("freeze / limit", _ratio(r.freeze, r.limit), LIMIT_RATIO_TARGET),
            ("lag median", r.lag_median, LAG_MEDIAN_TARGET_SECONDS),
            ("restore RSS MiB", r.rss_mib, RSS_TARGET_MIB),
        ):
            if value is not None and value > target:
                missed.append(f"{r.case.name} {what} {value:.2f} > {target:g}")
    large, small = (follow.get(key) for key in RATIO)
    ratio = _ratio(large.freeze, small.freeze) if large and small else None
    if large and small:
        lines.append(
            f"freeze({large.case.name}) / freeze({small.case.name}): "
            f"{'unknown' if ratio is None else f'{ratio:.2f}'} ({_s(large.freeze)} / {_s(small.freeze)}) "
            f"(target <= {RATIO_TARGET:g}: {_verdict(ratio, RATIO_TARGET)})"
        )
        if ratio is not None and ratio > RATIO_TARGET:
            missed.append(f"freeze ratio {ratio:.2f} > {RATIO_TARGET:g}")
    side_by_side = {}
    for r in results:
        if not r.case.follow and (r.case.documents, r.case.events) in follow:
            f = follow[(r.case.documents, r.case.events)]
            side_by_side[f.case.name] = {"follow": f.freeze, "no_follow": r.freeze}
            lines.append(
                f"{f.case.name}: freeze {_s(f.freeze)} in follow mode vs {_s(r.freeze)} restoring after "
                f"the freeze (--no-follow): {', '.join(f'{k} {_s(v)}' for k, v in r.phases.items())}"
            )
    return lines, {"freeze_ratio": ratio, "follow_vs_no_follow": side_by_side}, missed


def _load() -> dict[str, Any]:
    one, five, fifteen = os.getloadavg()
    return {"1m": round(one, 2), "5m": round(five, 2), "15m": round(fifteen, 2), "cores": os.cpu_count()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cases",
        type=cases_of,
        default=None,
        help=f"DOCUMENTS:EVENTS,... in follow mode (default the grid {GRID})",
    )
    parser.add_argument(
        "--no-follow-cases",
        type=lambda text: cases_of(text, follow=False),
        default=None,
        help="the same, rehearsed with --no-follow too, to compare (default 20k:5k; '' for none)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"one small case ({QUICK}, follow mode only): the smoke run tests/benchmarks runs",
    )
    parser.add_argument("--writes-per-second", type=float, default=WRITES_PER_SECOND)
    parser.add_argument("--dir", default=".sandbox/bench-freeze", help="the rehearsals' sandbox directory")
    parser.add_argument("--port-base", type=int, default=DEFAULT_PORT_BASE)
    parser.add_argument("--json", type=Path, help="also write every figure as JSON to this file")
    args = parser.parse_args(argv)
    if args.quick and (args.cases or args.no_follow_cases):
        parser.error("--quick runs its own case; leave out --cases and --no-follow-cases")
    if args.json is not None and not args.json.parent.is_dir():
        parser.error(f"--json {args.json}: the folder {args.json.parent} does not exist")
    if not 0 < args.writes_per_second <= 10_000:
        parser.error(f"--writes-per-second must be above 0 and at most 10000, not {args.writes_per_second:g}")
    if args.quick:
        cases = cases_of(QUICK)
    else:
        cases = (args.cases if args.cases is not None else cases_of(GRID)) + (
            args.no_follow_cases if args.no_follow_cases is not None else cases_of("20k:5k", follow=False)
        )
    if not cases:
        parser.error("no case to run")
    out_dir = Path(f"{Path(args.dir).resolve()}-out")
    out_dir.mkdir(parents=True, exist_ok=True)

    load_start = _load()
    print(
        f"load average at start: {load_start['1m']:.2f} {load_start['5m']:.2f} {load_start['15m']:.2f} "
        f"({load_start['cores']} cores); {len(cases)} case(s): {', '.join(c.name for c in cases)}",
        flush=True,
    )
    results: list[CaseResult] = []
    with standin_process("mongodb") as limit_port:
        for case in cases:
            # The load goes on while backover_restore works before the freeze (verify --live, the
            # DocumentDB backup: longer for more documents), so a case counts with what the last
            # case of its size and mode wrote then.
            same = [r for r in results if (r.case.documents, r.case.follow) == (case.documents, case.follow)]
            before = same[-1].pre_freeze_events(args.writes_per_second) if same else 0
            result = run_case(case, args, out_dir, limit_port, before)
            results.append(result)
            for line in case_lines(result, args.writes_per_second):
                print(line, flush=True)
    lines, ratios, missed = summary(results)
    for line in lines:
        print(line, flush=True)
    print("targets: all met" if not missed else f"targets MISSED: {'; '.join(missed)}", flush=True)
    load_end = _load()
    print(
        f"load average at the end: {load_end['1m']:.2f} {load_end['5m']:.2f} {load_end['15m']:.2f}",
        flush=True,
    )
    unmeasured = [
        r.case.name
        for r in results
        if r.freeze is None
        or r.limit is None
        or (r.case.follow and (r.lag_median is None or r.rss_mib is None))
    ]
    if unmeasured:
        print(f"not measured in full: {', '.join(unmeasured)}", file=sys.stderr)
    if args.json:
        document = {
            "writes_per_second": args.writes_per_second,
            "load": {"start": load_start, "end": load_end},
            "cases": [r.to_json() for r in results],
            **ratios,
            "targets_missed": missed,
        }
        args.json.write_text(json.dumps(document, indent=2, default=str) + "\n")
    return 0 if all(r.ok for r in results) and not unmeasured else 1


if __name__ == "__main__":
    sys.exit(main())
