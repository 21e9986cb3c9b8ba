"""``backover replicate --detach``: runs on in the background with pid and log files, logs
progress, flushes and checkpoints on SIGTERM; bad input still fails the command."""

from __future__ import annotations

import os
import re
import signal
import uuid
from pathlib import Path

import pytest
from pymongo import MongoClient
from replicate_testkit import (
    checkpoint,
    cli_argv,
    cli_env,
    enable_change_streams,
    new_layout,
    put_captured,
    read_events,
    run_cli,
    start_time,
    wait_until,
    write_start,
)

from backover.s3objects import S3Objects

pytestmark = pytest.mark.slow  # backover replicate --detach: processes

FAST = [
    "--max-seconds",
    "120",
    "--progress-seconds",
    "0.2",
    "--await-ms",
    "100",
    "--heartbeat-seconds",
    "0.2",
    "--drain-poll-seconds",
    "0.1",
    "--connect-timeout",
    "5",
]


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except OSError:
        return True
    return state == "Z"


def test_detached_replicator_runs_on_and_flushes_on_sigterm(
    standins: dict, standin_password: str, bucket: str, moto_server: str, tmp_path: Path
) -> None:
    uri = standins["documentdb"].uri("root", standin_password)
    db = f"det_{uuid.uuid4().hex[:8]}"
    s3 = S3Objects(bucket)
    layout = new_layout(bucket)
    pid_file, log_file = tmp_path / "replicate.pid", tmp_path / "replicate.log"
    argv = cli_argv(layout, "--detach", "--pid-file", str(pid_file), "--log-file", str(log_file), *FAST)
    env = cli_env(moto_server, BACKOVER_SOURCE_URI=uri)
    with MongoClient(uri) as client:
        enable_change_streams(client, db)
        client[db].items.insert_one({"_id": "before-t0"})
        write_start(s3, layout, start_time(client), [db])
        started = run_cli(argv, env)
        assert started.returncode == 0, started.stderr
        pid = int(pid_file.read_text())
        try:
            assert f"pid {pid}" in started.stdout and not _gone(pid)
            assert checkpoint(s3, layout).state == "running"  # it returned once capturing
            client[db].items.insert_many([{"_id": i} for i in range(5)])
            wait_until(
                lambda: re.search(r"5 events captured this run .* 5 buffered", log_file.read_text()),
                what="the five events buffered",
            )
            again = run_cli(argv, env)
            assert again.returncode == 0 and f"already running: pid {pid}" in again.stdout
            os.kill(pid, signal.SIGTERM)
            wait_until(lambda: _gone(pid), what="the replicator to stop")
        finally:
            if not _gone(pid):
                os.kill(pid, signal.SIGKILL)
    cp = checkpoint(s3, layout)
    assert (cp.state, cp.last_seq, cp.events_total) == ("stopped", 1, 5)  # the buffer was flushed
    assert len(read_events(s3, layout)) == 5
    assert not pid_file.exists()
    log = log_file.read_text()
    assert "segment 1: 5 events" in log and "lag " in log and "replicator stopped" in log
    password = standin_password
    assert password not in log and password not in started.stdout + started.stderr


def test_detach_with_bad_input_fails_the_command(
    standins: dict, standin_password: str, bucket: str, moto_server: str, tmp_path: Path
) -> None:
    uri = standins["documentdb"].uri("root", standin_password)
    layout = new_layout(bucket)
    pid_file = tmp_path / "replicate.pid"
    argv = cli_argv(
        layout,
        "--detach",
        "--pid-file",
        str(pid_file),
        "--namespace",
        "no_such_db_backover",
        "--start-at",
        "1:1",
        *FAST,
    )
    done = run_cli(argv, cli_env(moto_server, BACKOVER_SOURCE_URI=uri))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        "backover replicate: namespace no_such_db_backover does not "
        "exist on the source: there is no database 'no_such_db_backover'"
    )
    assert not pid_file.exists()
    assert list(S3Objects(bucket).list_keys(layout.root)) == []


def test_detach_on_a_drained_migration_reports_it_and_exits_0(
    standins: dict, standin_password: str, bucket: str, moto_server: str, tmp_path: Path
) -> None:
    """Re-running the start of an SSM step after the drain is harmless."""
    uri = standins["documentdb"].uri("root", standin_password)
    layout = new_layout(bucket)
    s3 = S3Objects(bucket)
    put_captured(s3, layout, 3, per_segment=10, state="drained")
    before = s3.get_bytes(layout.replicator_checkpoint)
    pid_file = tmp_path / "replicate.pid"
    done = run_cli(
        cli_argv(layout, "--detach", "--pid-file", str(pid_file), *FAST),
        cli_env(moto_server, BACKOVER_SOURCE_URI=uri),
    )
    assert done.returncode == 0 and done.stdout.startswith("replicator drained: 0 events"), done.stdout
    assert not pid_file.exists() and s3.get_bytes(layout.replicator_checkpoint) == before
