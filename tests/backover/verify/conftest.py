"""Fixtures for the verify tests that follow a migration as it moves: a DocumentDB stand-in source
with change streams on a fresh database, the MongoDB stand-in as target, a migration in a fresh
moto bucket, and the restore run in-process.

The capture and segment helpers are the restore tests' (``restore_streams``): that folder is put
on ``sys.path`` here so they are reused, not copied.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient
from pymongo.database import Database
from pymongo.errors import PyMongoError

_RESTORE_TESTS = str(Path(__file__).resolve().parent.parent / "restore")
if _RESTORE_TESTS not in sys.path:
    sys.path.append(_RESTORE_TESTS)

from restore_streams import Migration, capture, enable_streams, new_db_name, new_migration  # noqa: E402

from backover.connections import DatabaseUri  # noqa: E402
from backover.errors import BackoverError  # noqa: E402
from backover.lifecycle.source import cluster_time  # noqa: E402
from backover.namespaces import Namespace  # noqa: E402
from backover.restore import RestoreConfig, RestoreResult, run_restore  # noqa: E402
from backover.state import ReplicatorCheckpoint, VerifyLiveRecord  # noqa: E402
from backover.verify import VerifyConfig  # noqa: E402
from backover.verify.live import run_verify_live  # noqa: E402


@dataclass
class World:
    """One migration under way: both sides, its segments and its restore."""

    source: MongoClient
    target: MongoClient
    db: str
    source_uri: str
    target_uri: str
    migration: Migration
    seq: int = 0
    events_total: int = 0

    @property
    def layout(self):
        return self.migration.layout

    def config(self, **options: Any) -> VerifyConfig:
        options.setdefault("namespaces", (Namespace(self.db),))
        options.setdefault("poll_seconds", 0.02)
        options.setdefault("progress_seconds", 0.01)
        return VerifyConfig(
            layout=self.layout,
            source=DatabaseUri(self.source_uri, documentdb=True),
            target=DatabaseUri(self.target_uri),
            **options,
        )

    def seed(self, coll: str, docs: list[dict[str, Any]]) -> None:
        """The same documents on both sides, before any capture (the state at T0)."""
        for client in (self.source, self.target):
            client[self.db][coll].insert_many([dict(d) for d in docs])

    def capture(self, actions: Callable[[Database], None]) -> list[bytes]:
        """Source writes, with the change events they caused."""
        return capture(self.source, self.db, actions)

    def land(self, events: list[bytes], per_segment: int = 3) -> None:
        """The replicator writes ``events`` as the next segments and its checkpoint (running)."""
        for start in range(0, len(events), per_segment):
            self.seq += 1
            self.migration.put_segment(self.seq, events[start : start + per_segment])
        self.events_total += len(events)
        self.migration.put_checkpoint(self.seq, self.events_total, "running")

    def heartbeat(self) -> None:
        """The replicator's idle checkpoint: its capture position moves on to the source's now."""
        checkpoint = ReplicatorCheckpoint(
            self.layout.migration_id,
            last_seq=self.seq,
            events_total=self.events_total,
            state="running",
            last_cluster_time=cluster_time(self.source),
        )
        self.migration.s3.put_json(self.layout.replicator_checkpoint, checkpoint.to_json())

    def restore(self) -> RestoreResult:
        config = RestoreConfig(
            layout=self.layout,
            target=DatabaseUri(self.target_uri),
            progress_seconds=60.0,
            checkpoint_seconds=0.0,
        )
        result = run_restore(config, s3=self.migration.s3)
        assert isinstance(result, RestoreResult)
        return result

    def live_pass_then(self, action: Callable[[], None], **options: Any) -> VerifyLiveRecord | Exception:
        """Run the live pass on a thread; once it waits for the restore (or ended), run ``action``;
        returns the pass's record, or the exception it raised."""
        return self.when_waiting(
            lambda: run_verify_live(self.config(**options), s3=self.migration.s3), action
        )

    def when_waiting(self, step: Callable[[], Any], action: Callable[[], None]) -> Any:
        """Run ``step`` (a live pass, or one of its steps) on a thread; once it waits for the
        restore (or ended), run ``action``; returns what ``step`` returned, or the exception it
        raised."""
        waits = threading.Event()

        class Waits(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                if "wait for the restore" in record.getMessage():
                    waits.set()

        handler = Waits()
        logger = logging.getLogger("backover.verify")
        logger.addHandler(handler)
        previous = logger.level
        logger.setLevel(logging.INFO)
        outcome: list[Any] = []

        def run() -> None:
            try:
                outcome.append(step())
            except (BackoverError, PyMongoError) as e:  # handed to the test, which asserts on it
                outcome.append(e)

        thread = threading.Thread(target=run, name="live-pass", daemon=True)
        thread.start()
        try:
            while thread.is_alive() and not waits.wait(0.02):
                pass
            if thread.is_alive():
                action()
            thread.join(120)
        finally:
            logger.removeHandler(handler)
            logger.setLevel(previous)
        assert not thread.is_alive(), "the live pass did not end"
        return outcome[0]


@pytest.fixture
def world(standins: dict[str, Any], standin_password: str, bucket: str) -> Iterator[World]:
    source_uri = standins["documentdb"].uri("root", standin_password)
    target_uri = standins["mongodb"].uri("root", standin_password)
    db = new_db_name("lv")
    with MongoClient(source_uri) as source, MongoClient(target_uri) as target:
        enable_streams(source, db)
        yield World(source, target, db, source_uri, target_uri, new_migration(bucket))
        source.drop_database(db)
        target.drop_database(db)
