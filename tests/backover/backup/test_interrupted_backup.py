"""A backup that fails or is killed leaves no multipart upload behind once the next one has started,
and a re-run after a kill ends with a complete backup that restores byte for byte."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from typing import Any

import boto3
import pytest
from backup_world import World, multipart_uploads, raw_by_id
from bson import Binary

from backover.backup.dump import BackupConfig, Progress, backup, dump_collection
from backover.backup.load import LoadConfig, load
from backover.errors import JobFailed
from backover.s3objects import S3Objects

pytestmark = pytest.mark.slow  # backup processes killed mid-upload

PART = 5 * 1024 * 1024


def _blobs(world: World, name: str, count: int) -> None:
    """``count`` documents of 100 kB of random bytes (gzip cannot shrink them)."""
    world.source[world.db][name].insert_many(
        [{"_id": i, "blob": Binary(os.urandom(100_000))} for i in range(count)]
    )


def test_a_backup_aborts_the_unfinished_uploads_under_its_own_label_only(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    s3 = boto3.client("s3")
    ours = world.layout.backup_data("documentdb", world.db, "orders")
    theirs = world.layout.backup_data("mongodb", world.db, "orders")
    for key in (ours, theirs):  # what a killed dump leaves: an upload with a part, never completed
        upload = s3.create_multipart_upload(Bucket=world.bucket, Key=key)["UploadId"]
        s3.upload_part(Bucket=world.bucket, Key=key, UploadId=upload, PartNumber=1, Body=b"x" * 1000)
    world.source[world.db].orders.insert_many([{"_id": i} for i in range(5)])

    with caplog.at_level(logging.INFO, logger="backover"):
        result = backup(BackupConfig(world.source_db_uri, world.layout, "documentdb", (world.db,)))
    assert result.uploads_aborted == 1
    assert "1 unfinished upload(s) of an interrupted backup aborted" in caplog.text
    assert multipart_uploads(world.bucket, world.layout.backup_prefix("documentdb")) == []
    assert multipart_uploads(world.bucket, world.layout.backup_prefix("mongodb")) == [theirs]
    assert (
        backup(BackupConfig(world.source_db_uri, world.layout, "documentdb", (world.db,))).uploads_aborted
        == 0
    )


def test_a_dump_failing_after_some_parts_aborts_its_upload(world: World) -> None:
    _blobs(world, "blobs", 80)  # 8 MB: part 1 is uploaded before the failure
    config = BackupConfig(world.source_db_uri, world.layout, "documentdb", (world.db,), part_size=PART)
    uploaded: list[int] = []

    class FailingMidway(Progress):
        def collection(self, namespace: str) -> Any:
            def report(documents: int, raw_bytes: int, final: bool) -> None:
                parts = boto3.client("s3").list_multipart_uploads(Bucket=world.bucket).get("Uploads", [])
                uploaded.append(len(parts))
                if raw_bytes > PART + 1_000_000:
                    raise JobFailed("the source went away")

            return report

    info = next(world.source[world.db].list_collections(filter={"name": "blobs"}))
    with pytest.raises(JobFailed, match="the source went away"):
        dump_collection(
            world.source, S3Objects(world.bucket), config, world.db, info, FailingMidway("documentdb", 1)
        )
    assert uploaded and uploaded[-1] == 1  # an upload was in progress when it failed
    assert multipart_uploads(world.bucket, world.layout.backup_prefix("documentdb")) == []
    assert S3Objects(world.bucket).head(world.layout.backup_data("documentdb", world.db, "blobs")) is None


def _backup_process(world: World) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        "-m",
        "backover.cli",
        *world.cli(
            "--uri", world.source_uri, "--label", "documentdb", "--databases", world.db, "--parallel", "1"
        ),
    ]
    return subprocess.Popen(
        command, env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def _parts_uploaded(world: World, key: str) -> int:
    s3 = boto3.client("s3")
    uploads = [
        u for u in s3.list_multipart_uploads(Bucket=world.bucket).get("Uploads", []) if u["Key"] == key
    ]
    if not uploads:
        return 0
    return len(s3.list_parts(Bucket=world.bucket, Key=key, UploadId=uploads[0]["UploadId"]).get("Parts", []))


def test_a_backup_killed_mid_upload_is_complete_and_restores_byte_for_byte_after_a_re_run(
    world: World,
) -> None:
    db = world.source[world.db]
    db.accounts.insert_many([{"_id": i, "v": 1} for i in range(20)])
    _blobs(world, "blobs", 300)  # 30 MB: several 8 MiB parts
    db.zones.insert_many([{"_id": i} for i in range(10)])
    backup(BackupConfig(world.source_db_uri, world.layout, "documentdb", (world.db,)))  # an earlier backup
    db.accounts.update_many({}, {"$set": {"v": 2}})
    db.zones.insert_many([{"_id": 100 + i} for i in range(5)])
    blobs_key = world.layout.backup_data("documentdb", world.db, "blobs")

    process = _backup_process(world)
    try:
        deadline = time.monotonic() + 60
        while _parts_uploaded(world, blobs_key) < 1:
            assert process.poll() is None, "the backup ended before it could be killed mid-upload"
            assert time.monotonic() < deadline
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    assert multipart_uploads(world.bucket, world.layout.backup_prefix("documentdb")) == [blobs_key]

    result = backup(BackupConfig(world.source_db_uri, world.layout, "documentdb", (world.db,)))
    assert result.uploads_aborted == 1
    assert multipart_uploads(world.bucket, world.layout.backup_prefix("documentdb")) == []
    assert {c.namespace: c.documents for c in result.collections} == {
        f"{world.db}.accounts": 20,
        f"{world.db}.blobs": 300,
        f"{world.db}.zones": 15,
    }

    load(LoadConfig(world.target_db_uri, world.layout, "documentdb"))
    for name in ("accounts", "blobs", "zones"):
        assert raw_by_id(world.target, world.db, name) == raw_by_id(world.source, world.db, name)
