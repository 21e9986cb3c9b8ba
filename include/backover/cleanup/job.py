"""``backover clean``: delete a finished migration's change segments and checkpoints.

1. :func:`guard.check`: the restore must be ``completed`` and ``reports/verify.json`` identical,
   unless ``force`` (the passing check is recorded in ``state/clean.json``).
2. With the source given, the change streams ``state/start.json`` lists are disabled (as the
   clean Lambda does).
3. Everything under ``changes/`` (segments, orphan segments, the replicator checkpoint) and
   ``restore/_checkpoint.json`` go, in paginated batch deletes of 1,000 keys; the checkpoints last,
   so an interrupted run leaves a state a re-run finishes. ``backups/`` stays unless
   ``delete_backups``. State files, control files and reports stay: they are the record.
4. ``state/clean.json`` gets ``cleaned_at`` and the totals.

Idempotent: a re-run deletes what is left (usually nothing), and the totals stay the same.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

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
        disabled = [str(ns) for ns in disable_started_streams(layout, config.source, s3).change_streams_disabled]

    change_keys = list(s3.list_keys(layout.changes_prefix))
    segments = [k for k in change_keys if layout.parse_segment(k) is not None]
    others = [k for k in change_keys if layout.parse_segment(k) is None and k != layout.replicator_checkpoint]
    checkpoints = [k for k in (layout.replicator_checkpoint, layout.restore_checkpoint)
                   if k in change_keys or s3.head(k) is not None]
    backups = list(s3.list_keys(layout.key("backups/"))) if config.delete_backups else []
    log.info("clean %s: %d segments, %d other change files, %d checkpoints, %d backup files to delete",
             layout.migration_id, len(segments), len(others), len(checkpoints), len(backups))

    deleted = _delete(s3, "segments", segments + others)
    deleted += _delete(s3, "backup files", backups)
    deleted += _delete(s3, "checkpoints", checkpoints)

    before = record.read(s3, layout)
    totals = {
        "segments_deleted": int(before.get("segments_deleted", 0)) + len(segments),
        "checkpoints_deleted": int(before.get("checkpoints_deleted", 0)) + len(checkpoints),
        "backups_deleted": int(before.get("backups_deleted", 0)) + len(backups),
    }
    backups_kept = not config.delete_backups and before.get("backups_kept") is not False
    record.update(s3, layout, cleaned_at=before.get("cleaned_at") or now_ms(), backups_kept=backups_kept,
                  **totals)
    log.info("clean %s done: %d files deleted now; totals %s", layout.migration_id, deleted, totals)
    return CleanupResult(
        migration_id=layout.migration_id,
        backups_kept=backups_kept,
        change_streams_disabled=disabled,
        deleted_now=deleted,
        guard=allowed,
        **totals,
    )


def _delete(s3: S3Objects, what: str, keys: list[str]) -> int:
    if not keys:
        return 0
    deleted = s3.delete_keys(keys)
    log.info("deleted %d %s", deleted, what)
    return deleted
