"""Fixtures for the restore tests: a source (DocumentDB stand-in with change streams on a fresh
database), the MongoDB stand-in as target, and a migration in a fresh moto bucket."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from pymongo import MongoClient
from restore_streams import Migration, enable_streams, new_db_name, new_migration

from backover.connections import DatabaseUri
from backover.restore import RestoreConfig, RestoreResult, run_restore


@dataclass
class Sides:
    """Source and target clients, the database name (the same on both sides) and the target URI."""

    source: MongoClient
    target: MongoClient
    db: str
    target_uri: DatabaseUri
    target_uri_text: str


@pytest.fixture
def sides(standins: dict[str, Any], standin_password: str) -> Iterator[Sides]:
    source_uri = standins["documentdb"].uri("root", standin_password)
    target_uri = standins["mongodb"].uri("root", standin_password)
    db = new_db_name()
    with MongoClient(source_uri) as source, MongoClient(target_uri) as target:
        enable_streams(source, db)
        yield Sides(source, target, db, DatabaseUri(target_uri), target_uri)
        source.drop_database(db)
        target.drop_database(db)


@pytest.fixture
def migration(bucket: str) -> Migration:
    return new_migration(bucket)


@pytest.fixture
def restore(migration: Migration, sides: Sides):
    """``restore(**options)`` runs the restore in-process against the target stand-in."""

    def run(**options: Any) -> RestoreResult:
        options.setdefault("progress_seconds", 60.0)
        options.setdefault("checkpoint_seconds", 0.0)
        config = RestoreConfig(layout=migration.layout, target=sides.target_uri, **options)
        result = run_restore(config, s3=migration.s3)
        assert isinstance(result, RestoreResult)
        return result

    return run
