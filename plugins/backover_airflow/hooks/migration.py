"""Read a migration's state objects in S3 through the Amazon provider's ``S3Hook``.

The objects are canonical Extended JSON (cluster times stay ``Timestamp``, dates come back
UTC-aware); :class:`backover.s3objects.S3Objects` parses them with :mod:`backover.extjson`, the
records of :mod:`backover.state` (and :class:`backover.verify.report.VerifyReport`) check them, and
:class:`backover.layout.MigrationLayout` names every key, so the sensors read exactly what the
replicator, the restore, the Lambdas and clean write.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Concatenate, ParamSpec, TypeVar

from airflow.providers.amazon.aws.hooks.s3 import S3Hook

from backover import state
from backover.layout import MigrationLayout
from backover.lease import LeaseRecord
from backover.s3objects import S3Objects
from backover.state import (
    BackupManifest,
    CleanRecord,
    FreezeRecord,
    ReplicatorCheckpoint,
    RestoreCheckpoint,
    StartRecord,
)
from backover.verify.report import VerifyReport
from backover_airflow import progress
from backover_airflow.progress import Progress
from backover_airflow.report import MigrationSnapshot

R = TypeVar("R", bound=state.JsonRecord)
P = ParamSpec("P")


def _damaged_record_fails(
    check: Callable[Concatenate[MigrationHook, MigrationLayout, P], Progress],
) -> Callable[Concatenate[MigrationHook, MigrationLayout, P], Progress]:
    """A phase check that reads a damaged state file answers ``failed`` with the file's one-line
    reason (no retry can repair it), in the sensor's poke and in the trigger alike."""

    @functools.wraps(check)
    def looked(hook: MigrationHook, layout: MigrationLayout, *args: P.args, **kwargs: P.kwargs) -> Progress:
        try:
            return check(hook, layout, *args, **kwargs)
        except state.RecordError as e:
            return Progress(progress.FAILED, str(e))

    return looked


class MigrationHook(S3Hook):
    """The state of one migration, read from S3 (``aws_conn_id`` as for :class:`S3Hook`)."""

    def objects(self, layout: MigrationLayout) -> S3Objects:
        return S3Objects(layout.bucket, client=self.conn)

    def read(self, layout: MigrationLayout, key: str, cls: type[R]) -> R | None:
        """The record at ``key`` (checked: :class:`backover.state.RecordError`, one line naming the
        key, when it is not a ``cls``), or None when it does not exist yet."""
        return state.read(self.objects(layout), key, cls)

    def start_state(self, layout: MigrationLayout) -> StartRecord | None:
        return self.read(layout, layout.start_state, StartRecord)

    def freeze_state(self, layout: MigrationLayout) -> FreezeRecord | None:
        return self.read(layout, layout.freeze_state, FreezeRecord)

    def clean_state(self, layout: MigrationLayout) -> CleanRecord | None:
        return self.read(layout, layout.clean_state, CleanRecord)

    def verify_report(self, layout: MigrationLayout) -> VerifyReport | None:
        return self.read(layout, layout.verify_report, VerifyReport)

    def replicator_checkpoint(self, layout: MigrationLayout) -> ReplicatorCheckpoint | None:
        return self.read(layout, layout.replicator_checkpoint, ReplicatorCheckpoint)

    def restore_checkpoint(self, layout: MigrationLayout) -> RestoreCheckpoint | None:
        return self.read(layout, layout.restore_checkpoint, RestoreCheckpoint)

    def restore_lease(self, layout: MigrationLayout) -> LeaseRecord | None:
        """The restore lease as its holder last renewed it (None: nobody holds it)."""
        got = self.objects(layout).get_versioned(layout.restore_lease)
        return None if got is None else LeaseRecord.parse(got[0])

    def segments_left(self, layout: MigrationLayout) -> int:
        """How many change segments are under ``changes/`` (the checkpoint does not count)."""
        keys = self.objects(layout).list_keys(layout.changes_prefix)
        return sum(1 for key in keys if layout.parse_segment(key) is not None)

    def snapshot(self, layout: MigrationLayout) -> MigrationSnapshot:
        """Every state object of the migration (None where absent)."""
        return MigrationSnapshot(
            start=self.start_state(layout),
            freeze=self.freeze_state(layout),
            replicator=self.replicator_checkpoint(layout),
            restore=self.restore_checkpoint(layout),
            verify=self.verify_report(layout),
            clean=self.clean_state(layout),
        )

    # -- one look at each phase (shared by the sensors and the triggers) ---------------------------
    @_damaged_record_fails
    def replicator_health(self, layout: MigrationLayout, max_heartbeat_age_seconds: float) -> Progress:
        where = f"s3://{layout.bucket}/{layout.replicator_checkpoint}"
        return progress.replicator_health(
            self.replicator_checkpoint(layout), max_heartbeat_age_seconds, datetime.now(UTC), where
        )

    @_damaged_record_fails
    def replication_drained(self, layout: MigrationLayout, max_heartbeat_age_seconds: float) -> Progress:
        return progress.replication_drained(
            self.freeze_state(layout),
            self.replicator_checkpoint(layout),
            max_heartbeat_age_seconds,
            datetime.now(UTC),
        )

    @_damaged_record_fails
    def capture_window(self, layout: MigrationLayout, min_seconds: float) -> Progress:
        return progress.capture_window(
            self.start_state(layout), self.replicator_checkpoint(layout), min_seconds, datetime.now(UTC)
        )

    @_damaged_record_fails
    def restore_completed(self, layout: MigrationLayout, require_identical: bool) -> Progress:
        checkpoint = self.restore_checkpoint(layout)
        if not require_identical:
            return progress.restore_completed(checkpoint, self.replicator_checkpoint(layout), None, False)
        return progress.restore_completed(
            checkpoint,
            self.replicator_checkpoint(layout),
            self.verify_report(layout),
            True,
            self.clean_state(layout),
            self.freeze_state(layout),
            datetime.now(UTC),
            self.read(layout, layout.backup_manifest("documentdb"), BackupManifest),
        )

    @_damaged_record_fails
    def follow_restore_health(self, layout: MigrationLayout) -> Progress:
        return progress.follow_restore_health(
            self.restore_checkpoint(layout),
            self.replicator_checkpoint(layout),
            self.restore_lease(layout),
            datetime.now(UTC),
        )

    @_damaged_record_fails
    def clean_completed(self, layout: MigrationLayout) -> Progress:
        return progress.clean_completed(self.clean_state(layout), self.segments_left(layout))
