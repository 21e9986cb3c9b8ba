"""Read a migration's state objects in S3 through the Amazon provider's ``S3Hook``.

The objects are canonical Extended JSON (cluster times stay ``Timestamp``, dates come back
UTC-aware); :class:`backover.s3objects.S3Objects` parses them with :mod:`backover.extjson` and
:class:`backover.layout.MigrationLayout` names every key, so the sensors read exactly what the
replicator, the restore, the Lambdas and clean write.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from airflow.providers.amazon.aws.hooks.s3 import S3Hook

from backover.layout import MigrationLayout
from backover.s3objects import S3Objects
from backover.state import ReplicatorCheckpoint, RestoreCheckpoint
from backover_airflow import progress
from backover_airflow.progress import Progress
from backover_airflow.report import MigrationSnapshot


class MigrationHook(S3Hook):
    """The state of one migration, read from S3 (``aws_conn_id`` as for :class:`S3Hook`)."""

    def objects(self, layout: MigrationLayout) -> S3Objects:
        return S3Objects(layout.bucket, client=self.conn)

    def read_state(self, layout: MigrationLayout, key: str) -> Any:
        """A JSON state object (Extended JSON parsed), or None when it does not exist yet."""
        return self.objects(layout).get_json(key)

    def start_state(self, layout: MigrationLayout) -> dict[str, Any] | None:
        return self.read_state(layout, layout.start_state)

    def freeze_state(self, layout: MigrationLayout) -> dict[str, Any] | None:
        return self.read_state(layout, layout.freeze_state)

    def clean_state(self, layout: MigrationLayout) -> dict[str, Any] | None:
        return self.read_state(layout, layout.clean_state)

    def verify_report(self, layout: MigrationLayout) -> dict[str, Any] | None:
        return self.read_state(layout, layout.verify_report)

    def replicator_checkpoint(self, layout: MigrationLayout) -> ReplicatorCheckpoint | None:
        doc = self.read_state(layout, layout.replicator_checkpoint)
        return None if doc is None else ReplicatorCheckpoint.from_doc(doc)

    def restore_checkpoint(self, layout: MigrationLayout) -> RestoreCheckpoint | None:
        doc = self.read_state(layout, layout.restore_checkpoint)
        return None if doc is None else RestoreCheckpoint.from_doc(doc)

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
    def replicator_health(self, layout: MigrationLayout, max_heartbeat_age_seconds: float) -> Progress:
        where = f"s3://{layout.bucket}/{layout.replicator_checkpoint}"
        return progress.replicator_health(
            self.replicator_checkpoint(layout), max_heartbeat_age_seconds, datetime.now(UTC), where
        )

    def replication_drained(self, layout: MigrationLayout, max_heartbeat_age_seconds: float) -> Progress:
        return progress.replication_drained(
            self.freeze_state(layout), self.replicator_checkpoint(layout), max_heartbeat_age_seconds,
            datetime.now(UTC),
        )

    def capture_window(self, layout: MigrationLayout, min_seconds: float) -> Progress:
        return progress.capture_window(
            self.start_state(layout), self.replicator_checkpoint(layout), min_seconds, datetime.now(UTC)
        )

    def restore_completed(self, layout: MigrationLayout, require_identical: bool) -> Progress:
        report = self.verify_report(layout) if require_identical else None
        checkpoint = self.restore_checkpoint(layout)
        clean = self.clean_state(layout) if checkpoint is None else None
        frozen = self.freeze_state(layout) is not None if require_identical else None
        return progress.restore_completed(
            checkpoint, self.replicator_checkpoint(layout), report, require_identical, clean, frozen
        )

    def clean_completed(self, layout: MigrationLayout) -> Progress:
        return progress.clean_completed(self.clean_state(layout), self.segments_left(layout))
