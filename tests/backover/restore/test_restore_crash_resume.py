"""A restore killed with SIGKILL in the middle continues from its checkpoint to the exact end state,
counting every segment once; the command line's bad input is one line and exit status 2."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import bson
import pytest
from restore_streams import built_event, raw_contents

from backover.cli import main

pytestmark = pytest.mark.slow  # restore processes killed with kill -9

SEGMENTS, PER_SEGMENT, KEYS = 80, 150, 400


def stream(db: str) -> tuple[list[bytes], dict[bytes, bytes]]:
    """Inserts, updates (hot keys) and deletes over KEYS documents, and the final state."""
    events, final = [], {}
    for n in range(SEGMENTS * PER_SEGMENT):
        key = (n * 7919) % KEYS
        if n % 13 == 12 and key in final:
            events.append(built_event("delete", "c", key, db=db))
            del final[key]
        else:
            doc = {"_id": key, "n": n, "pad": "x" * 100}
            events.append(built_event("insert" if key not in final else "update", "c", key, db=db, full=doc))
            final[key] = bson.encode(doc)
    return events, {bson.encode({"_id": k})[4:-1]: v for k, v in final.items()}


def restore_command(sides, migration, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "backover",
        "restore",
        "--bucket",
        migration.layout.bucket,
        "--prefix",
        migration.layout.prefix,
        "--migration-id",
        migration.layout.migration_id,
        "--workers",
        "2",
        "--window",
        "25",
        "--checkpoint-seconds",
        "0",
        *extra,
    ]


def test_kill_9_mid_restore_then_continue(sides, migration, aws_endpoints) -> None:
    events, expected = stream(sides.db)
    migration.write_segments(events, PER_SEGMENT)
    env = {**os.environ, "BACKOVER_TARGET_URI": sides.target_uri_text}
    proc = subprocess.Popen(
        restore_command(sides, migration),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            checkpoint = migration.restore_checkpoint()
            if checkpoint and checkpoint["last_applied_seq"] >= 3:
                break
            time.sleep(0.02)
        assert proc.poll() is None, (
            f"the restore ended before it could be killed: {proc.stderr.read()[-500:]}"
        )
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    killed = migration.restore_checkpoint()
    assert proc.returncode == -signal.SIGKILL
    assert killed["state"] == "running" and 3 <= killed["last_applied_seq"] < SEGMENTS
    assert raw_contents(sides.target, sides.db).get("c") != expected

    resumed = subprocess.run(
        restore_command(sides, migration), env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    summary = json.loads(resumed.stdout)
    assert summary["first_seq"] == killed["last_applied_seq"] + 1 and summary["state"] == "completed"
    assert raw_contents(sides.target, sides.db) == {"c": expected}
    assert "restore: segment 80/80" in resumed.stderr  # the final progress line
    done = migration.restore_checkpoint()
    assert done["state"] == "completed" and done["last_applied_seq"] == SEGMENTS
    assert done["events_applied"] == len(events)  # the re-applied segment is counted once
    assert sum(done["per_namespace"][f"{sides.db}.c"].values()) == len(events)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param(
            ["--workers", "0", "--target-uri", "mongodb://h"],
            "--workers must be between 1 and 64, not 0",
            id="workers",
        ),
        pytest.param(
            ["--window", "0", "--target-uri", "mongodb://h"],
            "--window must be at least 1 event, not 0",
            id="window",
        ),
        pytest.param([], "no target: pass --target-uri or --target-secret-id", id="no-target"),
        pytest.param(
            ["--target-uri", "mongodb://h", "--migration-id", "bad id"],
            "invalid migration id 'bad id'",
            id="migration-id",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv, message, capsys, monkeypatch) -> None:
    monkeypatch.setenv("BACKOVER_BUCKET", "some-bucket")
    monkeypatch.setenv("BACKOVER_MIGRATION_ID", "m-1")
    monkeypatch.delenv("BACKOVER_TARGET_URI", raising=False)
    monkeypatch.delenv("BACKOVER_TARGET_SECRET_ID", raising=False)
    assert main(["restore", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("backover restore: ") and message in err


def test_unknown_migration_is_bad_input(sides, migration, capsys) -> None:
    code = main(
        [
            "restore",
            "--bucket",
            migration.layout.bucket,
            "--migration-id",
            "never-started",
            "--target-uri",
            sides.target_uri_text,
        ]
    )
    assert code == 2
    assert "no replicator checkpoint" in capsys.readouterr().err
