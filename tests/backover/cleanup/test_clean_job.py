"""``backover clean`` on moto (and the documentdb stand-in for the change streams)."""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest
from bson.timestamp import Timestamp
from pymongo import MongoClient

from backover.cleanup.guard import CleanRefused
from backover.cleanup.job import CleanConfig, clean
from backover.cli import main
from backover.layout import MigrationLayout
from backover.s3objects import S3Objects
from backover.state import BackupManifest, FreezeRecord, ReplicatorCheckpoint, RestoreCheckpoint, utc_now

PREFIX = "clean-tests"


@dataclass
class Migration:
    layout: MigrationLayout
    s3: S3Objects
    segments: list[str]
    backups: list[str]
    kept: list[str]  # state, control and report files: never deleted

    def cli(self, *args: str) -> list[str]:
        return [
            "clean",
            "--bucket",
            self.layout.bucket,
            "--prefix",
            PREFIX,
            "--migration-id",
            self.layout.migration_id,
            *args,
        ]

    def keys(self) -> set[str]:
        return set(self.s3.list_keys(self.layout.root))


def make_migration(
    bucket: str,
    segments: int = 3,
    restore_state: str = "completed",
    identical: bool = True,
    start: dict[str, Any] | None = None,
    replicator_state: str = "drained",
    frozen: bool = True,
) -> Migration:
    layout = MigrationLayout(bucket, PREFIX, f"cl-{uuid.uuid4().hex[:8]}")
    s3 = S3Objects(bucket)
    segment_keys = [layout.segment(seq, "zstd") for seq in range(1, segments + 1)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda key: s3.put_bytes(key, b"segment"), segment_keys))
    s3.put_json(
        layout.replicator_checkpoint,
        ReplicatorCheckpoint(layout.migration_id, last_seq=segments, state=replicator_state).to_doc(),
    )
    s3.put_json(
        layout.restore_checkpoint,
        RestoreCheckpoint(layout.migration_id, last_applied_seq=segments, state=restore_state).to_doc(),
    )
    s3.put_json(layout.verify_report, {"identical": identical, "namespaces": {}})
    backups = [
        layout.backup_data("documentdb", "shop", "orders"),
        layout.backup_metadata("documentdb", "shop", "orders"),
    ]
    for key in backups:
        s3.put_bytes(key, b"backup")
    s3.put_json(
        layout.start_state, start or {"migration_id": layout.migration_id, "change_streams_enabled": []}
    )
    s3.put_json(layout.drain_request, {"until": None})
    kept = [layout.start_state, layout.drain_request, layout.verify_report]
    if frozen:
        s3.put_json(layout.freeze_state, {"migration_id": layout.migration_id, "f": None})
        kept.append(layout.freeze_state)
    return Migration(layout, s3, segment_keys, backups, kept)


def test_clean_deletes_segments_and_checkpoints_keeps_backups_and_is_idempotent(
    bucket: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("backover.s3objects.DELETE_BATCH", 10)  # S3 takes 1,000 a batch; 3 batches here
    migration = make_migration(bucket, segments=25)
    assert main(migration.cli()) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["segments_deleted"], summary["checkpoints_deleted"], summary["backups_kept"]) == (
        25,
        2,
        True,
    )
    assert migration.keys() == set(migration.backups + migration.kept + [migration.layout.clean_state])
    state = migration.s3.get_json(migration.layout.clean_state)
    assert state["segments_deleted"] == 25 and state["backups_kept"] is True and "cleaned_at" in state
    assert state["guard"]["restore_state"] == "completed" and state["guard"]["verified"] is True

    assert main(migration.cli()) == 0  # the checkpoints are gone, the recorded check still allows it
    again = json.loads(capsys.readouterr().out)
    assert again["deleted_now"] == 0 and again["segments_deleted"] == 25
    assert migration.s3.get_json(migration.layout.clean_state) == state


def test_clean_deletes_the_sync_partition_files_and_keeps_its_plan_and_totals(
    bucket: str, capsys: pytest.CaptureFixture[str]
) -> None:
    migration = make_migration(bucket, segments=2)
    layout = migration.layout
    partition_files = [
        layout.sync_partition("shop.orders.0000"),
        layout.sync_partition_lease("shop.orders.0000"),
        layout.sync_partition("shop.orders.0001"),
    ]
    for key in partition_files:
        migration.s3.put_json(key, {"state": "completed"})
    record = [layout.sync_plan, layout.sync_complete]
    for key in record:
        migration.s3.put_json(key, {"migration_id": layout.migration_id})
    assert main(migration.cli()) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["checkpoints_deleted"] == 2 + len(partition_files)
    assert migration.keys() == set(
        migration.backups + migration.kept + record + [migration.layout.clean_state]
    )


@pytest.mark.parametrize(
    ("restore_state", "identical", "reason"),
    [
        pytest.param("running", True, "the restore is running", id="restore-running"),
        pytest.param("failed", True, "the restore is failed", id="restore-failed"),
        pytest.param("completed", False, "verification found differences", id="not-identical"),
    ],
)
def test_clean_refuses_an_unfinished_migration_and_deletes_nothing(
    bucket: str, capsys: pytest.CaptureFixture[str], restore_state: str, identical: bool, reason: str
) -> None:
    migration = make_migration(bucket, restore_state=restore_state, identical=identical)
    before = migration.keys()
    assert main(migration.cli()) == 1
    assert reason in capsys.readouterr().err
    assert migration.keys() == before

    assert main(migration.cli("--force")) == 0
    assert migration.s3.get_json(migration.layout.clean_state)["guard"]["forced"] is True
    assert not set(migration.segments) & migration.keys()


@pytest.mark.parametrize(
    ("replicator_state", "frozen", "reason"),
    [
        pytest.param(
            "running", True, "the replicator is running (needs drained or stopped)", id="still-capturing"
        ),
        pytest.param("draining", True, "the replicator is draining", id="still-draining"),
        pytest.param("stopped", False, "the migration was never frozen", id="stopped-but-never-frozen"),
        pytest.param("running", False, "the migration was never frozen", id="not-frozen"),
    ],
)
def test_clean_refuses_while_the_replicator_may_still_capture(
    bucket: str, capsys: pytest.CaptureFixture[str], replicator_state: str, frozen: bool, reason: str
) -> None:
    """Restore completed and verified identical *now* says nothing about the writes still to come."""
    migration = make_migration(bucket, replicator_state=replicator_state, frozen=frozen)
    before = migration.keys()
    assert main(migration.cli()) == 1
    assert reason in capsys.readouterr().err
    assert migration.keys() == before


def test_clean_refuses_while_the_documentdb_backup_taken_during_the_capture_is_unsealed(
    bucket: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Deleting the segments (B, F] would leave a dump that can never be made consistent at F."""
    migration = make_migration(bucket)
    manifest = BackupManifest(
        migration.layout.migration_id,
        "documentdb",
        b=Timestamp(1_764_270_000, 1),
        dump_end=Timestamp(1_764_270_050, 1),
        started_at=utc_now(),
        finished_at=utc_now(),
        capture_seq=1,
    )
    key = migration.layout.backup_manifest("documentdb")
    migration.s3.put_json(key, manifest.to_json())
    freeze = FreezeRecord(migration.layout.migration_id, f=Timestamp(1_764_270_100, 1))
    migration.s3.put_json(migration.layout.freeze_state, freeze.to_json())
    before = migration.keys()
    assert main(migration.cli()) == 1
    assert "backup --label documentdb --seal" in capsys.readouterr().err
    assert migration.keys() == before
    manifest.f = freeze.f  # sealed: F recorded, the segments copied beside it
    migration.s3.put_json(key, manifest.to_json())
    assert main(migration.cli()) == 0
    assert not set(migration.segments) & migration.keys()


def test_a_documentdb_backup_begun_after_the_freeze_needs_no_seal(bucket: str) -> None:
    migration = make_migration(bucket)
    f = Timestamp(1_764_270_100, 1)
    migration.s3.put_json(
        migration.layout.freeze_state, FreezeRecord(migration.layout.migration_id, f=f).to_json()
    )
    manifest = BackupManifest(
        migration.layout.migration_id,
        "documentdb",
        b=Timestamp(f.time + 5, 1),  # the dump read the frozen source (follow mode off)
        dump_end=Timestamp(f.time + 9, 1),
        started_at=utc_now(),
        finished_at=utc_now(),
        capture_seq=3,
    )
    migration.s3.put_json(migration.layout.backup_manifest("documentdb"), manifest.to_json())
    assert clean(CleanConfig(migration.layout)).segments_deleted == 3


def test_clean_after_a_stop_following_the_freeze_is_allowed(bucket: str) -> None:
    migration = make_migration(bucket, replicator_state="stopped")
    result = clean(CleanConfig(migration.layout))
    assert result.segments_deleted == 3 and result.guard["replicator_state"] == "stopped"


def test_a_failed_forced_clean_does_not_let_a_plain_clean_through(
    bucket: str, standins: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    migration = make_migration(bucket, restore_state="running", replicator_state="running", frozen=False)
    before = migration.keys()
    # The forced run records its approval, then fails before deleting (the source refuses it; an
    # unreachable one fails the same way after the 10 s server selection).
    refused = standins["documentdb"].uri("root", "not-the-password")
    assert main(migration.cli("--force", "--source-uri", refused)) != 0
    assert migration.s3.get_json(migration.layout.clean_state)["guard"]["forced"] is True
    capsys.readouterr()
    assert main(migration.cli()) == 1
    assert "the migration was never frozen" in capsys.readouterr().err
    assert set(migration.segments) <= migration.keys() and before <= migration.keys()


def test_totals_are_right_after_a_run_killed_mid_way(bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run killed after deleting some keys and before it recorded them: the re-run's totals
    still count every key deleted once."""
    monkeypatch.setattr("backover.s3objects.DELETE_BATCH", 10)
    migration = make_migration(bucket, segments=25)
    real_delete = S3Objects.delete_keys
    calls = []

    def killed_on_the_second_delete(self: S3Objects, keys: list[str]) -> int:
        calls.append(len(keys))
        deleted = real_delete(self, keys)
        if len(calls) == 2:
            raise KeyboardInterrupt("killed")  # the keys are gone; the process dies before recording more
        return deleted

    monkeypatch.setattr(S3Objects, "delete_keys", killed_on_the_second_delete)
    with pytest.raises(KeyboardInterrupt):
        clean(CleanConfig(migration.layout))
    monkeypatch.setattr(S3Objects, "delete_keys", real_delete)
    assert len([k for k in migration.segments if k in migration.keys()]) < 25  # some were deleted

    result = clean(CleanConfig(migration.layout))
    assert (result.segments_deleted, result.checkpoints_deleted) == (25, 2)
    state = migration.s3.get_json(migration.layout.clean_state)
    assert (state["segments_deleted"], state["checkpoints_deleted"], state["deleting"]) == (25, 2, [])
    assert clean(CleanConfig(migration.layout)).segments_deleted == 25  # and a further run changes nothing


def test_clean_without_a_verify_report_is_refused(bucket: str) -> None:
    migration = make_migration(bucket)
    migration.s3.delete_keys([migration.layout.verify_report])
    with pytest.raises(CleanRefused, match="verification has not run"):
        clean(CleanConfig(migration.layout))


def test_delete_backups_removes_them_too(bucket: str) -> None:
    migration = make_migration(bucket)
    result = clean(CleanConfig(migration.layout, delete_backups=True))
    assert result.backups_deleted == 2 and result.backups_kept is False
    assert migration.keys() == set(migration.kept + [migration.layout.clean_state])


def test_clean_given_the_source_disables_the_change_streams_start_enabled(
    bucket: str, standins: dict[str, Any], standin_password: str
) -> None:
    uri = standins["documentdb"].uri("root", standin_password)
    tag = uuid.uuid4().hex[:8]
    mine, theirs = f"cl{tag}_mine", f"cl{tag}_theirs"
    with MongoClient(uri) as root:
        for db in (mine, theirs):
            root.admin.command("modifyChangeStreams", 1, database=db, collection="", enable=True)
        migration = make_migration(
            bucket, start={"change_streams_enabled": [{"database": mine, "collection": ""}]}
        )
        assert main(migration.cli("--source-uri", uri)) == 0
        enabled = [
            d["database"]
            for d in root.admin.aggregate([{"$listChangeStreams": {}}])
            if d["database"].startswith(f"cl{tag}")
        ]
        assert enabled == [theirs]
        root.admin.command("modifyChangeStreams", 1, database=theirs, collection="", enable=False)
    state = migration.s3.get_json(migration.layout.clean_state)
    assert state["change_streams_disabled"] == [{"database": mine, "collection": ""}]
