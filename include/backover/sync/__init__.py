"""The initial sync (``backover sync``): copy every migrated collection from DocumentDB to MongoDB
after T0, as raw BSON, in resumable ``_id`` partitions, before the replay from T0 brings MongoDB to
DocumentDB's state (docs/architecture.md, "Initial sync").

Modules: ``ranges`` (type brackets, filters from raw bounds; pure), ``plan`` (the source's
collections, their partitions, the target's collections and indexes), ``copy`` (one partition:
read ahead, insert, checkpoint), ``progress``, ``job`` (the command: plan, copy, complete).

The API Airflow maps over: :func:`run_sync` with ``SyncConfig(plan_only=True)`` writes the plan and
returns its partition ids (``SyncResult.partitions``; also :meth:`backover.state.SyncPlan.partition_ids`
of ``sync/plan.json``), then :func:`run_sync` with ``SyncConfig(partition=ID)`` copies one partition
(on any worker; the last one to complete writes ``sync/complete.json``), and :func:`run_sync` with
neither copies whatever is left and completes.
"""

from __future__ import annotations

from .config import SyncConfig
from .copy import PartitionResult
from .job import SyncResult, SyncState, check_restore_may_start, finish, read_plan, run_sync

__all__ = [
    "PartitionResult",
    "SyncConfig",
    "SyncResult",
    "SyncState",
    "check_restore_may_start",
    "finish",
    "read_plan",
    "run_sync",
]
