"""Helpers for the partitioned-backup tests: a sync plan made by the sync's own planner, the
backup's config, and the documents of a gzip data object."""

from __future__ import annotations

import gzip
from typing import Any

import boto3
from backup_world import World, natural_bytes
from bson.timestamp import Timestamp

from backover import state
from backover.backup import BackupConfig
from backover.backup.bsonstream import BsonSplitter
from backover.lifecycle.results import now_ms
from backover.s3objects import S3Objects
from backover.state import StartRecord, SyncCollection, SyncPlan
from backover.sync.plan import partitions_of

LABEL = "documentdb"


def write_plan(world: World, *collections: str, size: int) -> SyncPlan:
    """``sync/plan.json`` for ``collections`` of the test's database, ``size`` documents a
    partition, as ``backover sync --plan`` writes it (its T0 the start record's, when there is one)."""
    s3 = S3Objects(world.bucket)
    started = state.read(s3, world.layout.start_state, StartRecord)
    planned = []
    for name in collections:
        partitions, total = partitions_of(world.source, world.db, name, size)
        planned.append(SyncCollection(world.db, name, documents=total, partitions=partitions))
    plan = SyncPlan(
        world.layout.migration_id,
        t0=started.t0 if started is not None and started.t0 is not None else Timestamp(1, 1),
        partition_documents=size,
        created_at=now_ms(),
        collections=planned,
    )
    state.write(s3, world.layout.sync_plan, plan)
    return plan


def config(world: World, **options: Any) -> BackupConfig:
    options.setdefault("parallel", 2)
    return BackupConfig(world.source_db_uri, world.layout, LABEL, (world.db,), **options)


def documents_of(bucket: str, key: str) -> list[bytes]:
    """The raw BSON documents of a data object, through Python's gzip (every member) alone."""
    data = gzip.decompress(boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())
    splitter = BsonSplitter(key)
    found = list(splitter.feed(data))
    splitter.finish()
    return found


def source_documents(world: World, collection: str) -> list[bytes]:
    """The source collection's raw BSON documents."""
    splitter = BsonSplitter(collection)
    return list(splitter.feed(natural_bytes(world.source, world.db, collection)))


def keys_under(bucket: str, prefix: str) -> list[str]:
    return sorted(S3Objects(bucket).list_keys(prefix))
