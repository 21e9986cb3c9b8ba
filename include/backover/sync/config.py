"""What one ``backover sync`` run is asked to do."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pymongo import MongoClient

from ..connections import DatabaseUri, check_connection
from ..errors import UsageError
from ..layout import MigrationLayout
from ..lease import DEFAULT_RENEW_SECONDS, DEFAULT_TTL_SECONDS, check_timing

#: About this many documents per partition (``--partition-documents``).
DEFAULT_PARTITION_DOCUMENTS = 1_000_000
#: Documents per insert (``--batch-size``); a batch also ends at :data:`BATCH_BYTES`.
DEFAULT_BATCH = 1000
#: A batch ends before it passes this many bytes (MongoDB's largest document is 16 MiB).
BATCH_BYTES = 16 * 1024 * 1024
DEFAULT_PROGRESS_SECONDS = 10.0
#: Batches read ahead of the writes (memory: this many batches plus the one being written).
DEFAULT_READ_AHEAD = 3


@dataclass(frozen=True)
class SyncConfig:
    """:param layout: the migration's S3 keys.
    :param source: DocumentDB, read.
    :param target: MongoDB, written.
    :param plan_only: write the plan (and the target's collections and indexes) and stop.
    :param partition: copy only this partition of the plan (a worker's share); None: every one.
    :param drop_target: drop the migrated collections the target already has before planning.
    :param if_needed: copy only when every migrated collection is absent or empty on the target;
        otherwise do nothing (exit 0, no plan).
    :param partition_documents: about this many documents per partition.
    :param batch_size: documents per insert (a batch also ends at ``batch_bytes``).
    :param progress_seconds: seconds between progress lines.
    """

    layout: MigrationLayout
    source: DatabaseUri
    target: DatabaseUri
    plan_only: bool = False
    partition: str | None = None
    drop_target: bool = False
    if_needed: bool = False
    partition_documents: int = DEFAULT_PARTITION_DOCUMENTS
    batch_size: int = DEFAULT_BATCH
    batch_bytes: int = BATCH_BYTES
    progress_seconds: float = DEFAULT_PROGRESS_SECONDS
    read_ahead: int = DEFAULT_READ_AHEAD
    lease_ttl_seconds: float = DEFAULT_TTL_SECONDS
    lease_renew_seconds: float = DEFAULT_RENEW_SECONDS

    def __post_init__(self) -> None:
        if self.partition_documents < 1:
            raise UsageError("--partition-documents must be at least 1")
        if self.batch_size < 1:
            raise UsageError("--batch-size must be at least 1")
        if self.batch_bytes < 1 or self.read_ahead < 1:
            raise UsageError("the batch bytes and the read-ahead must be at least 1")
        if not self.progress_seconds > 0:
            raise UsageError("--progress-seconds must be positive")
        if self.plan_only and self.partition is not None:
            raise UsageError("--plan and --partition exclude each other")
        if self.drop_target and self.if_needed:
            raise UsageError("--drop-target and --if-needed exclude each other")
        if self.partition is not None and not self.partition:
            raise UsageError("--partition needs a partition id (from `backover sync --plan`)")
        check_timing(self.lease_ttl_seconds, self.lease_renew_seconds)


@contextlib.contextmanager
def connected(
    config: SyncConfig,
) -> Iterator[tuple[MongoClient[dict[str, Any]], MongoClient[dict[str, Any]]]]:
    """Clients of both sides, each checked to answer (one line, exit 2, when it does not)."""
    with config.source.client() as source, config.target.client() as target:
        check_connection(config.source, source)
        check_connection(config.target, target)
        yield source, target
