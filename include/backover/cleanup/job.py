"""``backover clean``: delete a finished migration's change segments and checkpoints.

1. :func:`guard.check`: the restore must be ``completed``, ``reports/verify.json`` identical, the
   migration frozen and the replicator ``drained`` or ``stopped``, unless ``force`` (the passing
   check is recorded in ``state/clean.json``).
2. With the source given, the change streams ``state/start.json`` lists are disabled (as the
   clean Lambda does).
3. Everything under ``changes/`` (segments, orphan segments, the replicator checkpoint),
   ``restore/_checkpoint.json`` and the initial sync's partition checkpoints and leases
   (``sync/partitions/``; the plan and ``sync/complete.json`` stay, as the record) go, in paginated batch deletes of 1,000 keys; the checkpoints last,
   so an interrupted run leaves a state a re-run finishes. ``backups/`` stays unless
   ``delete_backups``. State files, control files and reports stay: they are the record.
4. ``state/clean.json`` gets ``cleaned_at`` and the totals.

The totals count what is really gone, even across a run killed mid-way: before each batch is
deleted, ``state/clean.json`` records the totals with that batch counted and the batch's keys
(``deleting``). A run killed after that write leaves keys of that batch behind; the next run
deletes them without counting them again. So a key is counted once, when it is about to go.

Idempotent: a re-run deletes what is left (usually nothing), and the totals stay the same.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from .. import s3objects
from ..connections import DatabaseUri
from ..layout import MigrationLayout
from ..lifecycle.clean import disable_started_streams
from ..lifecycle.results import ResultRecord, now_ms
from ..s3objects import S3Objects
from . import guard, record

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CleanConfig:
    """What ``backover clean`` was asked to do."""

    layout: MigrationLayout
    delete_backups: bool = False
    force: bool = False
    source: DatabaseUri | None = None


@dataclass
class CleanupResult(ResultRecord):
    """What this run deleted, and the totals over every run."""

    migration_id: str
    segments_deleted: int
    checkpoints_deleted: int
    backups_deleted: int
    backups_kept: bool
    change_streams_disabled: list[str] = field(default_factory=list)
    deleted_now: int = 0
    guard: dict[str, object] = field(default_factory=dict)


def clean(config: CleanConfig, s3: S3Objects | None = None) -> CleanupResult:
    """Run the clean-up of ``config.layout``'s migration."""
    layout = config.layout
    s3 = s3 or S3Objects(layout.bucket)
    s3.check_bucket()
    allowed = guard.check(s3, layout, force=config.force)
    disabled: list[str] = []
    if config.source is not None:
        disabled = [
            str(ns) for ns in disable_started_streams(layout, config.source, s3).change_streams_disabled
        ]

    change_keys = list(s3.list_keys(layout.changes_prefix))
    segments = [k for k in change_keys if layout.parse_segment(k) is not None]
    others = [k for k in change_keys if layout.parse_segment(k) is None and k != layout.replicator_checkpoint]
    checkpoints = list(s3.list_keys(layout.sync_partitions_prefix)) + [
        k
        for k in (layout.replicator_checkpoint, layout.restore_checkpoint)
        if k in change_keys or s3.head(k) is not None
    ]
    backups = list(s3.list_keys(layout.backups_prefix)) if config.delete_backups else []
    log.info(
        "clean %s: %d segments, %d other change files, %d checkpoints, %d backup files to delete",
        layout.migration_id,
        len(segments),
        len(others),
        len(checkpoints),
        len(backups),
    )

    before = record.read(s3, layout)
    run = _Deletion(s3, layout, {name: getattr(before, name) for name in TOTALS}, set(before.deleting))
    deleted = run.delete("segments", "segments_deleted", segments)
    deleted += run.delete("other change files", None, others)
    deleted += run.delete("backup files", "backups_deleted", backups)
    deleted += run.delete("checkpoints", "checkpoints_deleted", checkpoints)

    totals = run.totals
    backups_kept = not config.delete_backups and before.backups_kept is not False
    record.update(
        s3, layout, cleaned_at=before.cleaned_at or now_ms(), backups_kept=backups_kept, deleting=[], **totals
    )
    log.info("clean %s done: %d files deleted now; totals %s", layout.migration_id, deleted, totals)
    return CleanupResult(
        migration_id=layout.migration_id,
        backups_kept=backups_kept,
        change_streams_disabled=disabled,
        deleted_now=deleted,
        guard=allowed.fields_json(),
        **totals,
    )


TOTALS = ("segments_deleted", "checkpoints_deleted", "backups_deleted")


@dataclass
class _Deletion:
    """Deletes batch by batch, counting each batch in ``state/clean.json`` before deleting it."""

    s3: S3Objects
    layout: MigrationLayout
    totals: dict[str, int]
    counted: set[str]  # keys an earlier run counted and may not have deleted

    def delete(self, what: str, total: str | None, keys: list[str]) -> int:
        deleted = 0
        size = s3objects.DELETE_BATCH
        for i in range(0, len(keys), size):
            batch = keys[i : i + size]
            if total is not None:
                self.totals[total] += sum(1 for key in batch if key not in self.counted)
            record.update(self.s3, self.layout, deleting=batch, **self.totals)
            deleted += self.s3.delete_keys(batch)
        if keys:
            log.info("deleted %d %s", deleted, what)
        return deleted
