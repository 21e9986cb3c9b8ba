"""Fixtures for the initial-sync tests: a DocumentDB stand-in source with change streams on a fresh
database, an empty MongoDB stand-in target, and a started migration (``state/start.json`` with
T0) in a fresh moto bucket.

The capture and segment helpers are the restore tests' (``restore_streams``), put on ``sys.path``
here so they are reused, not copied.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

_RESTORE_TESTS = str(Path(__file__).resolve().parent.parent / "restore")
if _RESTORE_TESTS not in sys.path:
    sys.path.append(_RESTORE_TESTS)

from restore_streams import Migration, enable_streams, new_db_name, new_migration  # noqa: E402

from backover import state  # noqa: E402
from backover.connections import DatabaseUri  # noqa: E402
from backover.lifecycle.source import cluster_time  # noqa: E402
from backover.state import StartRecord, SyncPartitionCheckpoint  # noqa: E402
from backover.sync import SyncConfig, SyncResult, run_sync  # noqa: E402


@dataclass
class World:
    """A started migration: both sides (the same database name), its S3 side, the sync in-process."""

    source: MongoClient
    target: MongoClient
    db: str
    source_uri: str
    target_uri: str
    migration: Migration
    source_server: Any = None

    @property
    def layout(self):
        return self.migration.layout

    @property
    def s3(self):
        return self.migration.s3

    def start(self, *namespaces: str, t0: bool = True) -> StartRecord:
        """``state/start.json`` naming ``namespaces`` (default: the test's database), T0 = now."""
        names = list(namespaces) or [self.db]
        record = StartRecord(
            migration_id=self.layout.migration_id,
            t0=cluster_time(self.source) if t0 else None,
            databases=sorted({n.split(".")[0] for n in names}),
            namespaces=names,
            source_flavour="documentdb",
        )
        state.write(self.s3, self.layout.start_state, record)
        return record

    def config(self, **options: Any) -> SyncConfig:
        options.setdefault("progress_seconds", 60.0)
        return SyncConfig(
            layout=self.layout,
            source=DatabaseUri(self.source_uri, documentdb=True),
            target=DatabaseUri(self.target_uri),
            **options,
        )

    def sync(
        self, on_batch: Callable[[SyncPartitionCheckpoint], None] | None = None, **options: Any
    ) -> SyncResult:
        return run_sync(self.config(**options), s3=self.s3, on_batch=on_batch)

    def checkpoint(self, partition_id: str) -> SyncPartitionCheckpoint | None:
        return state.read(self.s3, self.layout.sync_partition(partition_id), SyncPartitionCheckpoint)

    def keys(self) -> list[str]:
        """Every key of the migration's folder but the start record."""
        return sorted(k for k in self.s3.list_keys(self.layout.root) if k != self.layout.start_state)


@pytest.fixture
def world(standins: dict[str, Any], standin_password: str, bucket: str) -> Iterator[World]:
    source_uri = standins["documentdb"].uri("root", standin_password)
    target_uri = standins["mongodb"].uri("root", standin_password)
    db = new_db_name("s")
    with MongoClient(source_uri) as source, MongoClient(target_uri) as target:
        enable_streams(source, db)
        yield World(source, target, db, source_uri, target_uri, new_migration(bucket), standins["documentdb"])
        source.drop_database(db)
        target.drop_database(db)
