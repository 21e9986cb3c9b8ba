"""One replicator per migration: a second ``backover replicate`` (an SSM retry, a human) is refused
while the first lives, and a holder paused past its lease is fenced when it resumes. Under a busy
writer, the segments then hold every event exactly once."""

from __future__ import annotations

import json
import signal
import subprocess
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
from test_replicate_kill9 import FAST_ROLL, BusyWriter

from backover import segments
from backover.lease import LeaseRecord
from backover.replication.status import status as migration_status
from backover.s3objects import S3Objects

pytestmark = pytest.mark.slow  # two replicator processes at once, kill -9


def _lease(s3: S3Objects, key: str) -> LeaseRecord | None:
    got = s3.get_versioned(key)
    return None if got is None else LeaseRecord.parse(got[0])


def _writers(s3: S3Objects, layout) -> list[str]:
    """The writer token of each segment 1..n, in order."""
    keys = sorted(segment_keys(s3, layout))
    return [s3.head(k)["Metadata"][segments.META_WRITER] for k in keys]


def _check_exactly_once(
    s3: S3Objects, layout, client: MongoClient, db: str, t0, until, writer: BusyWriter
) -> None:
    captured = read_events(s3, layout)  # gapless 1..last_seq, identity, metadata and SHA-256 checked
    tokens = [RawBSONDocument(e)["_id"]["_data"] for e in captured]
    assert len(set(tokens)) == len(tokens), f"{len(tokens) - len(set(tokens))} events captured twice"
    expected = reference_events(raw_target(client, db, "items"), t0, until)
    assert tokens == [RawBSONDocument(e)["_id"]["_data"] for e in expected], (
        "an event is missing or out of order"
    )
    inserted = [
        RawBSONDocument(e)["documentKey"]["_id"]
        for e in captured
        if RawBSONDocument(e)["operationType"] == "insert"
    ]
    assert inserted == writer.inserted


def test_a_second_replicator_is_refused_and_the_first_loses_nothing(
    standins: dict, standin_password: str, bucket: str, moto_server: str
) -> None:
    uri = standins["documentdb"].uri("root", standin_password)
    db = f"two_{uuid.uuid4().hex[:8]}"
    s3 = S3Objects(bucket)
    layout = new_layout(bucket)
    env = cli_env(moto_server, BACKOVER_SOURCE_URI=uri)
    argv = cli_argv(layout, *FAST_ROLL)
    with MongoClient(uri) as client:
        enable_change_streams(client, db)
        client[db].items.insert_one({"_id": -1})
        t0 = start_time(client)
        write_start(s3, layout, t0, [db])
        writer = BusyWriter(client, db)
        writer.start()
        first = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            for attempt in range(2):  # at different moments of the first one's segments
                wait_until(
                    lambda n=attempt: (cp := checkpoint(s3, layout)) and cp.last_seq > 2 * n + 1,
                    what="the first replicator's segments",
                )
                second = run_cli(argv, env)
                assert second.returncode == 2, second.stderr
                line = second.stderr.strip()
                assert "\n" not in line and f"pid {first.pid}" in line and "expires in" in line, line
                assert "removed orphan" not in second.stderr
            lease = _lease(s3, layout.replicator_lease)
            assert lease is not None and lease.holder.pid == first.pid
            status = json.loads(json.dumps(migration_status(layout)))
            assert status["replicator_lease"]["holder"].endswith(f"pid {first.pid}")
            assert 0 < status["replicator_lease"]["expires_in_seconds"] <= 30
        finally:
            writer.stopping.set()
            writer.join()
        until = operation_time(client)
        request_drain(s3, layout, until)
        out, err = first.communicate(timeout=60)
        assert first.returncode == 0, err[-2000:]
        _check_exactly_once(s3, layout, client, db, t0, until, writer)
    assert set(_writers(s3, layout)) == {lease.holder.token}
    assert s3.head(layout.replicator_lease) is None  # released at the clean exit


def test_a_paused_holder_is_fenced_once_another_took_over(
    standins: dict, standin_password: str, bucket: str, moto_server: str
) -> None:
    """SIGSTOP past the lease's TTL, a new replicator takes over; after SIGCONT the old one stops
    with a one-line reason (exit 1) and none of its writes lands after the takeover."""
    uri = standins["documentdb"].uri("root", standin_password)
    db = f"fence_{uuid.uuid4().hex[:8]}"
    s3 = S3Objects(bucket)
    layout = new_layout(bucket)
    env = cli_env(moto_server, BACKOVER_SOURCE_URI=uri)
    argv = cli_argv(layout, *FAST_ROLL, "--lease-ttl-seconds", "1.5", "--lease-renew-seconds", "0.3")
    with MongoClient(uri) as client:
        enable_change_streams(client, db)
        client[db].items.insert_one({"_id": -1})
        t0 = start_time(client)
        write_start(s3, layout, t0, [db])
        writer = BusyWriter(client, db)
        writer.start()
        old = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        new = None
        try:
            wait_until(lambda: (cp := checkpoint(s3, layout)) and cp.last_seq >= 3, what="segments")
            old_token = _lease(s3, layout.replicator_lease).holder.token
            old.send_signal(signal.SIGSTOP)
            time.sleep(2.0)  # past the TTL
            new = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            wait_until(
                lambda: (lease := _lease(s3, layout.replicator_lease)) and lease.holder.pid == new.pid,
                what="the takeover",
            )
            taken_at = checkpoint(s3, layout).last_seq
            wait_until(
                lambda: checkpoint(s3, layout).last_seq >= taken_at + 2, what="the new holder's segments"
            )
            old.send_signal(signal.SIGCONT)
            _, old_err = old.communicate(timeout=30)
            assert old.returncode == 1, old_err[-2000:]
            last = old_err.strip().splitlines()[-1]
            # Fenced by its lease renewal, or, when paused just past that check, by its conditional
            # checkpoint PUT (the new holder's checkpoint is not the one it last wrote).
            assert (
                last.startswith("backover replicate: lost the replicator lease")
                and f"pid {new.pid}" in last
                or last.endswith(
                    "changed by another replicator since this one last wrote it: stopping without "
                    "writing anything more"
                )
            ), last
        finally:
            if old.poll() is None:
                old.send_signal(signal.SIGCONT)
                old.kill()
            writer.stopping.set()
            writer.join()
        until = operation_time(client)
        request_drain(s3, layout, until)
        _, err = new.communicate(timeout=60)
        assert new.returncode == 0, err[-2000:]
        _check_exactly_once(s3, layout, client, db, t0, until, writer)
    writers = _writers(s3, layout)
    kept = writers.index(next(w for w in writers if w != old_token))
    assert kept >= 1 and set(writers[:kept]) == {old_token} and old_token not in writers[kept:], (
        "a segment of the fenced replicator landed after the takeover"
    )


def test_detach_refuses_when_another_replicator_holds_the_lease(
    standins: dict, standin_password: str, bucket: str, moto_server: str, tmp_path
) -> None:
    uri = standins["documentdb"].uri("root", standin_password)
    db = f"det2_{uuid.uuid4().hex[:8]}"
    s3 = S3Objects(bucket)
    layout = new_layout(bucket)
    env = cli_env(moto_server, BACKOVER_SOURCE_URI=uri, BACKOVER_RUN_DIR=str(tmp_path))
    with MongoClient(uri) as client:
        enable_change_streams(client, db)
        write_start(s3, layout, start_time(client), [db])
        first = run_cli(cli_argv(layout, "--detach", *FAST_ROLL), env)
        assert first.returncode == 0, first.stderr
        pid = int(first.stdout.split("pid ")[1].split(",")[0])
        try:
            other = run_cli(
                cli_argv(layout, "--detach", "--pid-file", str(tmp_path / "other.pid"), *FAST_ROLL), env
            )
            assert other.returncode == 2, other.stdout + other.stderr
            assert f"pid {pid}" in other.stderr and "another replicator holds" in other.stderr
        finally:
            request_drain(s3, layout, operation_time(client))
            wait_until(lambda: checkpoint(s3, layout).state == "drained", what="the drain")
    wait_until(lambda: s3.head(layout.replicator_lease) is None, what="the lease's release")
