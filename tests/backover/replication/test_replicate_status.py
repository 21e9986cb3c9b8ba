"""``backover status``: the replicator's state, heartbeat age, lag, events, segments, bytes and
last cluster time as JSON, with the restore and clean state when present."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from bson.timestamp import Timestamp
from pymongo import MongoClient
from replicate_testkit import (
    config_for,
    enable_change_streams,
    new_layout,
    operation_time,
    request_drain,
    start_thread,
    start_time,
    write_start,
)

from backover import cli
from backover.replication.status import replicator_status
from backover.s3objects import S3Objects
from backover.state import ReplicatorCheckpoint, RestoreCheckpoint


def _status(layout, capsys: pytest.CaptureFixture[str]) -> dict:
    code = cli.main(
        [
            "status",
            "--bucket",
            layout.bucket,
            "--prefix",
            layout.prefix,
            "--migration-id",
            layout.migration_id,
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    return json.loads(out)


def test_status_of_a_drained_migration_with_restore_and_clean(
    standins: dict, standin_password: str, bucket: str, capsys: pytest.CaptureFixture[str]
) -> None:
    uri = standins["documentdb"].uri("root", standin_password)
    db = f"st_{uuid.uuid4().hex[:8]}"
    s3 = S3Objects(bucket)
    layout = new_layout(bucket)
    with MongoClient(uri) as client:
        enable_change_streams(client, db)
        client[db].items.insert_one({"_id": "x"})
        t0 = start_time(client)
        write_start(s3, layout, t0, [db])
        client[db].items.insert_many([{"_id": i} for i in range(12)])
        until = operation_time(client)
        request_drain(s3, layout, until)
        result = start_thread(config_for(layout, uri, max_events=5)).wait()
    s3.put_json(
        layout.restore_checkpoint,
        RestoreCheckpoint(
            migration_id=layout.migration_id, last_applied_seq=3, events_applied=12, state="completed"
        ).to_doc(),
    )
    s3.put_json(
        layout.clean_state,
        {
            "cleaned_at": datetime.now(UTC),
            "segments_deleted": 3,
            "change_streams_disabled": [{"database": db, "collection": ""}],
            "backups_kept": True,
        },
    )
    report = _status(layout, capsys)
    replicator = report["replicator"]
    assert replicator["state"] == "drained"
    assert (replicator["events"], replicator["segments"]) == (12, 3) == (result.events_total, result.last_seq)
    assert replicator["bytes"] > 12 * 100
    assert replicator["drained_until"] == f"{until.time}:{until.inc}"
    assert replicator["last_cluster_time"] is not None and replicator["lag_seconds"] >= 0
    assert replicator["heartbeat_age_seconds"] >= 0
    assert report["start"]["t0"] == f"{t0.time}:{t0.inc}" and report["start"]["namespaces"] == [db]
    assert report["drain"] == {"until": f"{until.time}:{until.inc}"}
    assert report["restore"]["state"] == "completed" and report["restore"]["last_applied_seq"] == 3
    assert report["clean"]["segments_deleted"] == 3


def test_status_of_a_migration_not_started(bucket: str, capsys: pytest.CaptureFixture[str]) -> None:
    report = _status(new_layout(bucket), capsys)
    assert report["replicator"] is None and report["restore"] is None and report["clean"] is None


def test_status_of_a_missing_bucket_is_bad_input(
    aws_endpoints: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["status", "--bucket", "no-such-bucket-backover", "--migration-id", "m1"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_lag_and_heartbeat_age() -> None:
    """Lag: how far the captured position was behind the clock at the last heartbeat."""
    beat = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
    checkpoint = ReplicatorCheckpoint(
        migration_id="m",
        last_seq=4,
        events_total=40,
        bytes_total=4000,
        last_cluster_time=Timestamp(int(beat.timestamp()) - 3, 9),
        heartbeat_at=beat,
    )
    status = replicator_status(checkpoint, now=beat + timedelta(seconds=7.5))
    assert status["lag_seconds"] == 3 and status["heartbeat_age_seconds"] == 7.5
    assert status["last_cluster_time"] == f"{int(beat.timestamp()) - 3}:9"
    assert replicator_status(ReplicatorCheckpoint(migration_id="m"))["lag_seconds"] is None
