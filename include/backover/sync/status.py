"""The initial sync as ``backover status`` shows it: planned, how far each partition got, done."""

from __future__ import annotations

from typing import Any

from ..layout import MigrationLayout
from ..s3objects import S3Objects
from ..state import SyncComplete, SyncPartitionState, read
from .copy import load_checkpoint
from .job import read_plan


def sync_status(s3: S3Objects, layout: MigrationLayout) -> dict[str, Any] | None:
    """None without a plan; else the plan's size, the partitions completed and the documents
    copied so far (from each partition's checkpoint), and the completion record's totals (times as
    datetimes: the caller makes it JSON-ready)."""
    plan = read_plan(s3, layout)
    if plan is None:
        return None
    ids = plan.partition_ids()
    copied = completed = 0
    for partition_id in ids:
        got = load_checkpoint(s3, layout.sync_partition(partition_id), layout.migration_id)
        if got is None:
            continue
        copied += got[0].documents
        completed += got[0].state == SyncPartitionState.COMPLETED
    complete = read(s3, layout.sync_complete, SyncComplete)
    return {
        "planned_at": plan.created_at,
        "collections": len(plan.collections),
        "partitions": len(ids),
        "partitions_completed": completed,
        "documents_planned": plan.documents,
        "documents_copied": copied if complete is None else complete.documents,
        "complete": complete is not None,
        "completed_at": None if complete is None else complete.completed_at,
        "skipped_duplicates": None if complete is None else complete.skipped_duplicates,
    }
