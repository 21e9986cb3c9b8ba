"""The kill -9 soak of a whole migration: replicator, backups, restore and clean, each killed at
random moments and restarted (sometimes two at once), under a load with unique-key swaps and DDL,
then an independent byte comparison.

``run(servers, kills=..., seed=...)`` is the engine; ``bench_kill9_soak.py`` runs it against its
own servers (``--kills 1000`` for the full soak) and ``tests/benchmarks/test_kill9_soak.py`` with
20+ kills against the suite's. "Independent" means the comparison reads both databases, the change
streams and the S3 objects here, with plain pymongo and boto3, not through Back Over's verify.

Outcomes a user cares about, all of which must be 0:
* lost: a source document missing from MongoDB, or an event of the source's change stream (T0..F)
  missing from the segments;
* divergent: a document whose bytes differ, an event captured twice or out of order, a backup
  document that differs from the source at F;
* stuck: a phase whose un-killed run after the kills does not finish (exit status not 0).
"""

from __future__ import annotations

import gzip
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import bson
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument
from bson.timestamp import Timestamp
from pymongo import MongoClient
from pymongo.errors import DuplicateKeyError, OperationFailure

from backover import segments
from backover.layout import MigrationLayout
from backover.s3objects import S3Objects

RAW = CodecOptions(document_class=RawBSONDocument)
PHASES = ("replicate", "backup", "restore", "clean")
#: Share of the kills per phase (the replicator and the restore have the most states to die in).
SHARES = {"replicate": 0.4, "backup": 0.15, "restore": 0.3, "clean": 0.15}
# The single-writer leases keep their defaults: a restart after a kill -9 on the same machine takes
# over a dead holder's lease at once, and a second process beside a live one is refused.
REPLICATE = [
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
RESTORE = ["--workers", "2", "--window", "50", "--checkpoint-seconds", "0.2"]


@dataclass
class Servers:
    """Where the soak runs: boto3's environment for moto, a bucket, the two databases."""

    env: dict[str, str]
    bucket: str
    source_uri: str  # the DocumentDB stand-in, a user with root
    target_uri: str  # the MongoDB stand-in


@dataclass
class SoakResult:
    kills: Counter[str] = field(default_factory=Counter)
    concurrent_starts: Counter[str] = field(default_factory=Counter)
    refused_second: Counter[str] = field(default_factory=Counter)  # a second process refused while one lived
    writes: int = 0
    events: int = 0
    segments: int = 0
    documents: int = 0
    lost: int = 0
    divergent: int = 0
    stuck: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def total_kills(self) -> int:
        return sum(self.kills.values())

    def summary(self) -> str:
        kills = ", ".join(f"{phase} {self.kills[phase]}" for phase in PHASES)
        second = ", ".join(
            f"{phase} refused {self.refused_second[phase]} of {n}"
            for phase, n in self.concurrent_starts.items()
        )
        return (
            f"soak: {self.total_kills} kill -9s ({kills}) in {self.seconds:.0f}s; {self.writes:,} load steps, "
            f"{self.events:,} events in {self.segments} segments, {self.documents:,} documents; "
            f"second process beside a live one: {second or 'none tried'}; "
            f"lost {self.lost}, divergent {self.divergent}, stuck {len(self.stuck)}"
            + (f" ({', '.join(self.stuck)})" if self.stuck else "")
            + "".join(f"\n  problem: {p}" for p in self.problems[:20])
        )


def kill_budget(kills: int) -> dict[str, int]:
    budget = {phase: max(1, int(kills * share)) for phase, share in SHARES.items()}
    budget["replicate"] += max(0, kills - sum(budget.values()))
    return budget


# -- the load ---------------------------------------------------------------------------------------
class Load(threading.Thread):
    """Writes as the microservices would until stopped: items (every update kind), users with a
    unique e-mail (swaps through a temporary key, a key handed from a deleted user to a new one)
    and DDL (a scratch collection created, filled, then dropped or renamed)."""

    def __init__(self, client: MongoClient, db: str, seed: int, pause: float = 0.002) -> None:
        super().__init__(name="soak-load", daemon=True)
        self.pause = pause
        self.db = client[db]
        self.rng = random.Random(seed)
        self.stopping = threading.Event()
        self.writes = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            n = 0
            while not self.stopping.is_set():
                n += 1
                self.step(n)
                time.sleep(self.pause)
        except BaseException as e:  # noqa: BLE001 - reported by the soak, which fails on it
            self.error = e

    def step(self, n: int) -> None:
        rng, db = self.rng, self.db
        choice = rng.random()
        if choice < 0.35:
            key = rng.randrange(400)
            db.items.replace_one(
                {"_id": key},
                {"_id": key, "n": n, "pad": "x" * rng.randrange(200), "at": Timestamp(n, 1), "f": n / 3},
                upsert=True,
            )
        elif choice < 0.55:
            key = rng.randrange(400)
            db.items.update_one(
                {"_id": key},
                rng.choice(
                    [
                        {"$inc": {"n": 1}},
                        {"$set": {"tag": f"t{n}"}},
                        {"$unset": {"pad": ""}},
                        {"$push": {"log": {"$each": [n], "$slice": -3}}},
                    ]
                ),
            )
        elif choice < 0.62:
            db.items.delete_one({"_id": rng.randrange(400)})
        elif choice < 0.85:
            self.swap_emails(rng.randrange(60), rng.randrange(60), n)
        elif choice < 0.95:
            self.hand_over_email(rng.randrange(60), n)
        else:
            self.ddl(n)
        self.writes += 1

    def swap_emails(self, a: int, b: int, n: int) -> None:
        users = self.db.users
        first, second = users.find_one({"_id": a}), users.find_one({"_id": b})
        if a == b or first is None or second is None:
            return
        users.update_one({"_id": a}, {"$set": {"email": f"tmp-{n}@x"}})
        users.update_one({"_id": b}, {"$set": {"email": first["email"], "n": n}})
        users.update_one({"_id": a}, {"$set": {"email": second["email"], "n": n}})

    def hand_over_email(self, a: int, n: int) -> None:
        users = self.db.users
        old = users.find_one_and_delete({"_id": a})
        email = old["email"] if old else f"new-{n}@x"
        try:
            users.insert_one({"_id": a, "email": email, "n": n, "since": n})
        except DuplicateKeyError:
            users.insert_one({"_id": a, "email": f"new-{n}@x", "n": n})

    def ddl(self, n: int) -> None:
        name = f"scratch_{n}"
        self.db[name].insert_many([{"_id": i, "n": n} for i in range(5)])
        self.db[name].update_one({"_id": 0}, {"$set": {"n": -n}})
        if self.rng.random() < 0.5:
            self.db[name].drop()
        else:
            try:
                self.db.client.admin.command(
                    "renameCollection", f"{self.db.name}.{name}", to=f"{self.db.name}.kept_{n}"
                )
            except OperationFailure:
                self.db[name].drop()


def seed_t0_state(client: MongoClient, db: str) -> None:
    """The state at T0, the same on both sides (the precondition of a migration)."""
    client[db].users.create_index("email", unique=True)
    client[db].users.insert_many([{"_id": i, "email": f"user{i}@x", "n": 0} for i in range(60)])
    client[db].items.insert_many([{"_id": i, "n": 0, "pad": "p" * (i % 50)} for i in range(400)])


def cluster_time(client: MongoClient) -> Timestamp:
    with client.start_session() as session:
        client.admin.command("ping", session=session)
        return session.operation_time


# -- running the commands, killing them -----------------------------------------------------------
class Commands:
    def __init__(
        self,
        servers: Servers,
        layout: MigrationLayout,
        db: str,
        rng: random.Random,
        result: SoakResult,
        say: Callable[[str], None],
    ) -> None:
        self.servers, self.layout, self.db, self.rng, self.result, self.say = (
            servers,
            layout,
            db,
            rng,
            result,
            say,
        )
        self.began = time.monotonic()
        self.common = [
            "--bucket",
            layout.bucket,
            "--prefix",
            layout.prefix,
            "--migration-id",
            layout.migration_id,
        ]
        self.env = {
            **servers.env,
            "BACKOVER_SOURCE_URI": servers.source_uri,
            "BACKOVER_TARGET_URI": servers.target_uri,
        }

    def argv(self, phase: str, extra: list[str]) -> list[str]:
        base = [sys.executable, "-m", "backover", "--log-level", "WARNING"]
        if phase == "replicate":
            return [*base, "replicate", *self.common, *REPLICATE, *extra]
        if phase == "restore":
            return [*base, "restore", *self.common, *RESTORE, *extra]
        return [*base, phase, *self.common, *extra]

    def start(self, phase: str, extra: list[str]) -> subprocess.Popen:
        return subprocess.Popen(
            self.argv(phase, extra),
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )

    def kill_cycles(
        self,
        phase: str,
        count: int,
        extra: Callable[[], list[str]],
        *,
        concurrent: float = 0.0,
        low: float = 0.05,
        high: float = 2.0,
    ) -> None:
        """Runs killed at a random moment until ``count`` kills; with probability ``concurrent`` a
        second process of the same command starts beside the first (it must be refused while the
        first lives). A run that ends by itself must exit 0 or be refused for the lease."""
        cycles = 0
        while self.result.kills[phase] < count and cycles < 4 * count:
            cycles += 1
            procs = [self.start(phase, extra())]
            delay = self.rng.uniform(low, high)
            if self.rng.random() < concurrent:
                time.sleep(self.rng.uniform(0.0, 0.8))
                procs.append(self.start(phase, extra()))
                self.result.concurrent_starts[phase] += 1
                delay = max(delay, self.rng.uniform(1.5, 3.0))  # both past start-up: one holds the lease
            time.sleep(delay)
            alive = [proc.poll() is None for proc in procs]
            for proc in procs:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGKILL)
                    self.result.kills[phase] += 1
                    if self.result.total_kills % 50 == 0:
                        self.say(
                            f"{self.result.total_kills} kills so far ({phase} {self.result.kills[phase]}), "
                            f"{time.monotonic() - self.began:.0f}s"
                        )
                proc.wait()
            for proc, was_alive in zip(procs, alive, strict=True):
                err = proc.stderr.read() if proc.stderr else ""
                if proc.stderr:
                    proc.stderr.close()
                if was_alive or proc.returncode == 0:
                    continue
                if "lease" in err:
                    if len(procs) == 2 and any(alive):
                        self.result.refused_second[phase] += 1
                    continue
                last = (err.strip().splitlines() or [""])[-1]
                self.result.problems.append(
                    f"{phase} ended by itself with exit {proc.returncode}: {last[:300]}"
                )

    def finish(self, phase: str, extra: list[str], *, attempts: int = 6, timeout: float = 3600) -> bool:
        """Run ``phase`` without killing it until it exits 0; a refusal because an earlier process's
        lease has not expired yet is waited out (a few attempts), anything else is stuck."""
        for _attempt in range(attempts):
            proc = subprocess.run(
                self.argv(phase, extra),
                env=self.env,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
            if proc.returncode == 0:
                return True
            last = (proc.stderr.strip().splitlines() or [""])[-1]
            if "lease" not in last:
                self.result.stuck.append(f"{phase}: exit {proc.returncode}: {last[:300]}")
                return False
            time.sleep(1.0)
        self.result.stuck.append(f"{phase}: still refused after {attempts} attempts: {last[:300]}")
        return False


# -- independent checks ----------------------------------------------------------------------------
def raw_collections(client: MongoClient, db: str) -> dict[str, dict[bytes, bytes]]:
    database = client.get_database(db, codec_options=RAW)
    out = {}
    for name in sorted(database.list_collection_names()):
        if name.startswith("system."):
            continue
        docs = {bson.encode({"_id": doc["_id"]}): doc.raw for doc in database[name].find()}
        if docs:
            out[name] = docs
    return out


def compare(
    source: dict[str, dict[bytes, bytes]],
    target: dict[str, dict[bytes, bytes]],
    what: str,
    result: SoakResult,
) -> None:
    for name in sorted(set(source) | set(target)):
        mine, theirs = source.get(name, {}), target.get(name, {})
        lost = [k for k in mine if k not in theirs]
        extra = [k for k in theirs if k not in mine]
        different = [k for k in mine if k in theirs and mine[k] != theirs[k]]
        result.lost += len(lost)
        result.divergent += len(different) + len(extra)
        for kind, keys in (("missing", lost), ("extra", extra), ("different", different)):
            if keys:
                result.problems.append(
                    f"{what} {name}: {len(keys)} {kind}, e.g. _id {bson.decode(keys[0])['_id']!r}"
                )


def reference_events(client: MongoClient, db: str, t0: Timestamp, until: Timestamp) -> list[bytes]:
    """The source's own change stream from T0 to F, read here."""
    database = client.get_database(db, codec_options=RAW)
    out: list[bytes] = []
    with database.watch(
        start_at_operation_time=t0, full_document="updateLookup", max_await_time_ms=100
    ) as stream:
        while True:
            event = stream.try_next()
            if event is None:
                data = stream.resume_token["_data"]
                if isinstance(data, str) and Timestamp(int(data[2:10], 16), int(data[10:18], 16)) >= until:
                    return out
                continue
            if event["clusterTime"] > until:
                return out
            out.append(bytes(event.raw))


def captured_events(s3: S3Objects, layout: MigrationLayout, result: SoakResult) -> list[bytes]:
    checkpoint = s3.get_json(layout.replicator_checkpoint)
    parsed = sorted(p for k in s3.list_keys(layout.changes_prefix) if (p := layout.parse_segment(k)))
    seqs = [seq for seq, _ in parsed]
    if seqs != list(range(1, checkpoint["last_seq"] + 1)):
        result.problems.append(f"segments are not 1..{checkpoint['last_seq']}: {len(seqs)} found")
        result.lost += 1
    events: list[bytes] = []
    for seq, compression in parsed:
        if seq > checkpoint["last_seq"]:
            continue
        key = layout.segment(seq, compression)
        body, meta = s3.get_object(key)
        raw = segments.verified_events(body, segments.SegmentInfo.from_metadata(meta, key), compression, key)
        events += segments.iter_raw_events(raw)
    result.segments = checkpoint["last_seq"]
    return events


def compare_events(captured: list[bytes], expected: list[bytes], result: SoakResult) -> None:
    got = [RawBSONDocument(e)["_id"]["_data"] for e in captured]
    want = [RawBSONDocument(e)["_id"]["_data"] for e in expected]
    result.events = len(got)
    if len(set(got)) != len(got):
        result.divergent += len(got) - len(set(got))
        result.problems.append(f"{len(got) - len(set(got))} events captured twice")
    missing = set(want) - set(got)
    if missing:
        result.lost += len(missing)
        result.problems.append(f"{len(missing)} events of the source's stream are in no segment")
    if not missing and len(set(got)) == len(got) and got != want:
        result.divergent += 1
        result.problems.append("the segments hold the source's events in another order")


def backup_documents(
    s3: S3Objects, layout: MigrationLayout, label: str, db: str
) -> dict[str, dict[bytes, bytes]]:
    out: dict[str, dict[bytes, bytes]] = {}
    prefix = layout.key(f"backups/{label}/{db}/")
    for key in s3.list_keys(prefix):
        if not key.endswith(".bson.gz"):
            continue
        name = key[len(prefix) : -len(".bson.gz")]
        docs = {}
        for doc in bson.decode_all(gzip.decompress(s3.get_bytes(key) or b""), RAW):
            docs[bson.encode({"_id": doc["_id"]})] = doc.raw
        if docs:
            out[name] = docs
    return out


# -- the soak ----------------------------------------------------------------------------------------
def run(
    servers: Servers,
    *,
    kills: int = 20,
    seed: int = 1,
    say: Callable[[str], None] = print,
    load_pause: float = 0.002,
) -> SoakResult:
    rng = random.Random(seed)
    result = SoakResult()
    began = time.monotonic()
    budget = kill_budget(kills)
    db = f"soak_{uuid.uuid4().hex[:8]}"
    s3 = S3Objects(servers.bucket)
    layout = MigrationLayout(servers.bucket, "soak", f"m-{uuid.uuid4().hex[:8]}")
    commands = Commands(servers, layout, db, rng, result, say)
    with MongoClient(servers.source_uri) as source, MongoClient(servers.target_uri) as target:
        source.admin.command("modifyChangeStreams", database=db, collection="", enable=True)
        seed_both = (source, target)
        for client in seed_both:
            seed_t0_state(client, db)
        t0 = cluster_time(source)
        s3.put_json(
            layout.start_state,
            {"migration_id": layout.migration_id, "t0": t0, "namespaces": [db], "databases": [db]},
        )
        load = Load(source, db, seed, load_pause)
        load.start()
        # 1. capture under load, killed (sometimes two replicators at once), then the drain
        drain_kills = max(1, budget["replicate"] // 5)
        commands.kill_cycles("replicate", budget["replicate"] - drain_kills, list, concurrent=0.25)
        say(f"capture: {result.kills['replicate']} kills, {load.writes:,} writes so far")
        load.stopping.set()
        load.join()
        if load.error is not None:
            raise RuntimeError(f"the load failed: {load.error!r}")
        result.writes = load.writes
        f = cluster_time(source)
        s3.put_json(layout.freeze_state, {"migration_id": layout.migration_id, "f": f, "app_user": "soak"})
        s3.put_json(layout.drain_request, {"until": f})
        commands.kill_cycles("replicate", drain_kills, list, concurrent=0.25, low=0.3, high=1.2)
        if not commands.finish("replicate", []):
            return _done(result, began, say)
        compare_events(captured_events(s3, layout, result), reference_events(source, db, t0, f), result)
        say(f"drained: {result.events:,} events in {result.segments} segments")
        # 2. backups of both sides (MongoDB's before the restore writes anything)
        for label, uri_env in (("mongodb", "BACKOVER_TARGET_URI"), ("documentdb", "BACKOVER_SOURCE_URI")):
            extra = ["--label", label, "--uri", commands.env[uri_env], "--databases", db]
            commands.kill_cycles(
                "backup",
                budget["backup"] // 2 + (label == "documentdb") * (budget["backup"] % 2),
                lambda extra=extra: extra,
                low=0.3,
                high=2.5,
            )
            if not commands.finish("backup", extra):
                return _done(result, began, say)
        expected = raw_collections(source, db)
        compare(expected, backup_documents(s3, layout, "documentdb", db), "backup documentdb", result)

        # 3. the restore, killed (sometimes two at once); after it completes, re-applying from 1
        def restore_extra() -> list[str]:
            checkpoint = s3.get_json(layout.restore_checkpoint)
            return ["--from-seq", "1"] if checkpoint and checkpoint.get("state") == "completed" else []

        # a drain or a backup that ends before it can be killed leaves kills over: the restore takes
        # them (it can always be killed again: once completed it re-applies from segment 1)
        restore_kills = budget["restore"] + sum(budget[p] - result.kills[p] for p in ("replicate", "backup"))
        commands.kill_cycles("restore", restore_kills, restore_extra, concurrent=0.25, low=0.3, high=3.0)
        if not commands.finish("restore", []):
            return _done(result, began, say)
        actual = raw_collections(target, db)
        result.documents = sum(map(len, actual.values()))
        compare(expected, actual, "target", result)
        say(f"restored: {result.documents:,} documents compared byte for byte")
        # 4. verify (the clean guard needs its report), then clean, killed
        if not commands.finish("verify", ["--namespace", db]):
            return _done(result, began, say)
        commands.kill_cycles("clean", budget["clean"], list, low=0.2, high=1.5)
        if commands.finish("clean", []):
            left = [k for k in s3.list_keys(layout.changes_prefix) if layout.parse_segment(k)]
            if left:
                result.stuck.append(f"clean: exit 0 but {len(left)} segments are left")
            record = s3.get_json(layout.clean_state) or {}
            if record.get("segments_deleted") != result.segments:
                result.problems.append(
                    f"clean says {record.get('segments_deleted')} segments deleted, "
                    f"{result.segments} were written"
                )
        source.drop_database(db)
        target.drop_database(db)
    return _done(result, began, say)


def _done(result: SoakResult, began: float, say: Callable[[str], None]) -> SoakResult:
    result.seconds = time.monotonic() - began
    say(result.summary())
    return result


def as_dict(result: SoakResult) -> dict[str, Any]:
    return {
        "kills": dict(result.kills),
        "lost": result.lost,
        "divergent": result.divergent,
        "stuck": result.stuck,
        "problems": result.problems,
    }
