"""Bad input: each case is a one-line reason on stderr, exit 2, and nothing written to S3."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import boto3
import pytest
from pymongo import MongoClient
from replicate_testkit import enable_change_streams, new_layout, operation_time, request_drain, start_time

from backover import cli
from backover.layout import MigrationLayout
from backover.s3objects import S3Objects
from backover.state import ReplicatorCheckpoint


@dataclass
class Case:
    """One replicator start: its command line and the migration it works on."""

    layout: MigrationLayout
    uri: str
    db: str
    t0: str

    def argv(
        self, *extra: str, uri: str | None = None, namespace: str | None = None, start_at: bool = True
    ) -> list[str]:
        argv = [
            "replicate",
            "--bucket",
            self.layout.bucket,
            "--prefix",
            self.layout.prefix,
            "--migration-id",
            self.layout.migration_id,
            "--connect-timeout",
            "1",
        ]
        argv += ["--source-uri", uri if uri is not None else self.uri]
        argv += ["--namespace", namespace or self.db]
        if start_at:
            argv += ["--start-at", self.t0]
        return argv + list(extra)


def _a_day_after(t0: str) -> str:
    seconds, inc = t0.split(":")
    return f"{int(seconds) + 86_400}:{inc}"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _other_migrations_checkpoint(case: Case) -> list[str]:
    S3Objects(case.layout.bucket).put_json(
        case.layout.replicator_checkpoint,
        ReplicatorCheckpoint(migration_id="someone-else", last_seq=7).to_doc(),
    )
    return case.argv()


def _other_migrations_start(case: Case) -> list[str]:
    S3Objects(case.layout.bucket).put_json(
        case.layout.start_state, {"migration_id": "someone-else", "t0": None}
    )
    return case.argv(start_at=False)


def _no_start_position(case: Case) -> list[str]:
    return case.argv(start_at=False)


def _not_enabled(case: Case) -> list[str]:
    with MongoClient(case.uri) as client:
        client[f"{case.db}_off"].items.insert_one({"_id": 1})
    return case.argv(namespace=f"{case.db}_off")


CASES: list[tuple[str, Callable[[Case], list[str]], str]] = [
    ("wrong-password", lambda c: c.argv(uri=c.uri.replace("root:", "root:x")), "authentication failed"),
    (
        "unreachable",
        lambda c: c.argv(uri=f"mongodb://127.0.0.1:{_closed_port()}/?directConnection=true"),
        "cannot reach",
    ),
    ("malformed-uri", lambda c: c.argv(uri="mongodb://"), "invalid database URI"),
    ("missing-bucket", lambda c: [*c.argv(), "--bucket", "no-such-bucket-backover"], "does not exist"),
    (
        "missing-database",
        lambda c: c.argv(namespace="no_such_db_backover"),
        "no database 'no_such_db_backover'",
    ),
    ("missing-collection", lambda c: c.argv(namespace=f"{c.db}.nope"), "has no collection 'nope'"),
    ("internal-namespace", lambda c: c.argv(namespace="admin"), "internal admin database"),
    ("change-streams-not-enabled", _not_enabled, "modifyChangeStreams: 1"),
    ("checkpoint-of-another-migration", _other_migrations_checkpoint, "belongs to migration 'someone-else'"),
    ("start-of-another-migration", _other_migrations_start, "belongs to migration 'someone-else'"),
    ("no-start-position", _no_start_position, "no start position"),
    ("bad-start-at", lambda c: [*c.argv(), "--start-at", "yesterday"], "not a cluster time"),
    (
        "start-at-a-day-ahead",
        lambda c: [*c.argv(start_at=False), "--start-at", _a_day_after(c.t0)],
        "s after the source's current cluster time",
    ),
    (
        "lease-renewal-too-slow",
        lambda c: [*c.argv(), "--lease-ttl-seconds", "4", "--lease-renew-seconds", "3"],
        "must be at most half of --lease-ttl-seconds",
    ),
    (
        "no-such-secret",
        lambda c: [*c.argv(uri=""), "--source-secret-id", "backover/none"],
        "cannot read secret",
    ),
    ("zero-max-events", lambda c: [*c.argv(), "--max-events", "0"], "--max-events must be at least 1"),
]


def _bucket_contents(bucket: str) -> dict[str, str]:
    s3 = boto3.client("s3")
    return {o["Key"]: o["ETag"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])}


@pytest.fixture
def case(standins: dict, standin_password: str, bucket: str) -> Case:
    uri = standins["documentdb"].uri("root", standin_password)
    db = f"bad_{uuid.uuid4().hex[:8]}"
    with MongoClient(uri) as client:
        enable_change_streams(client, db)
        client[db].items.insert_one({"_id": 1})
        t0 = start_time(client)
    return Case(new_layout(bucket), uri, db, f"{t0.time}:{t0.inc}")


@pytest.mark.parametrize(("name", "make_argv", "reason"), [pytest.param(*c, id=c[0]) for c in CASES])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(
    case: Case,
    bucket: str,
    name: str,
    make_argv: Callable[[Case], list[str]],
    reason: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = make_argv(case)
    before = _bucket_contents(bucket)
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("backover replicate: ") and "\n" not in err, err
    assert reason in err
    assert _password(case.uri) not in err
    assert _bucket_contents(bucket) == before


def _password(uri: str) -> str:
    return uri.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]


def test_the_same_input_without_the_fault_starts(case: Case, bucket: str) -> None:
    """The baseline of the cases above is good input: it gets as far as capturing and drains."""
    s3 = S3Objects(bucket)
    with MongoClient(case.uri) as client:
        request_drain(s3, case.layout, operation_time(client))
    assert cli.main(case.argv()) == 0
    assert s3.get_json(case.layout.replicator_checkpoint)["state"] == "drained"
