"""Dump every collection of the chosen databases to S3, as ``mongodump --gzip`` lays it out.

Per collection, in parallel (one thread each, up to ``parallel``):

* the documents, read with ``find_raw_batches`` (raw BSON batches, never decoded), pass through
  gzip into an S3 multipart upload: memory holds about one batch and one part, whatever the
  collection's size;
* the count read is checked against ``count_documents`` once the dump is complete: a collection
  that changed during the backup fails the job (back up a frozen source), unless the capture of
  this migration covers B (below): then the dump may run while the application writes, and the
  captured changes after B make it consistent at F when it is restored;
* ``{coll}.metadata.json.gz`` follows, only once the data is complete, in mongodump's format
  (canonical Extended JSON ``options``, ``indexes``, ``uuid``, ``collectionName``, ``type``) plus
  a ``backover`` field (documents, uncompressed and compressed bytes, SHA-256, the data object's
  ETag) that ``--restore`` checks (:mod:`.metadata`).

B, the source's cluster time, is taken before anything is read from the source (the collections
are listed and read after it, so every write at or before B is in the dump); the replicator
checkpoint is read just before it. Once every collection is dumped, ``backups/{label}/_backup.json``
(:class:`~backover.state.BackupManifest`) records B, the cluster time at the end of the dump, the
databases and collections, and ``capture_seq``: the last segment written before B, when
``state/start.json``'s T0 is at or before B (the capture covers B; DocumentDB backups only). The
manifest and the sealed segment copies of an earlier backup of the label are deleted before the
first upload, so a killed backup leaves no manifest that would describe another dump.

Before the first upload, the in-progress multipart uploads under ``backups/{label}/`` (left by a
killed backup of the same label) are aborted and counted. Skipped, with a log line:
``admin``/``config``/``local``, ``system.*`` collections, views (mongodump keeps only a view's
definition) and a restore's staging collections (:data:`.names.STAGING_PREFIX`). Objects of an
earlier dump of the same databases that this dump did not write (a collection dropped since) are
deleted, so the folder is one dump.

With a sync plan the same backup can be taken in steps over the plan's partitions, on several
workers (:mod:`.partitioned`); it shares this module's pieces: :func:`take_b` and
:func:`clear_label` (before the first upload), :func:`dump_scope` (the streaming of one scope of a
collection), :func:`check_count`, :func:`conclude` (stale objects, the manifest).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

from bson.timestamp import Timestamp
from pymongo import MongoClient
from pymongo.collection import Collection
from pymongo.errors import PyMongoError

from .. import state
from ..clustertime import format as format_time
from ..connections import DatabaseUri
from ..errors import JobFailed, UsageError
from ..layout import MigrationLayout
from ..lifecycle.results import ResultRecord, now_ms
from ..lifecycle.source import cluster_time, connect
from ..namespaces import INTERNAL_DATABASES
from ..replication import checkpoint as replication_checkpoint
from ..s3objects import S3Objects
from ..segments import iter_raw_events
from ..state import BackupManifest, StartRecord
from . import metadata
from .multipart import MIN_PART_SIZE, GzipMultipartUpload, abort_incomplete_uploads
from .names import STAGING_PREFIX, escape
from .parallel import run_parallel

log = logging.getLogger(__name__)

LABELS = ("documentdb", "mongodb")
PROGRESS_SECONDS = 10.0


@dataclass(frozen=True)
class BackupConfig:
    """What to back up, and where."""

    source: DatabaseUri
    layout: MigrationLayout
    label: str
    databases: tuple[str, ...] = ()  # empty: every database but admin/config/local
    parallel: int = 4
    batch_size: int = 1000
    part_size: int = 8 * 1024 * 1024

    def __post_init__(self) -> None:
        if self.label not in LABELS:
            raise UsageError(f"label must be one of {', '.join(LABELS)}, not {self.label!r}")
        if self.parallel < 1 or self.batch_size < 1:
            raise UsageError("--parallel and the batch size must be at least 1")
        if self.part_size < MIN_PART_SIZE:
            raise UsageError(f"the part size must be at least {MIN_PART_SIZE} bytes (S3's minimum)")


@dataclass
class CollectionBackup(ResultRecord):
    """One collection's backup."""

    namespace: str
    documents: int
    uncompressed_bytes: int
    compressed_bytes: int
    sha256: str
    indexes: int
    data_key: str
    metadata_key: str


@dataclass
class BackupResult(ResultRecord):
    """The whole backup."""

    label: str
    location: str
    databases: list[str]
    collections: list[CollectionBackup] = field(default_factory=list)
    documents_total: int = 0
    bytes_total: int = 0
    skipped: list[str] = field(default_factory=list)
    stale_deleted: int = 0
    uploads_aborted: int = 0  # unfinished multipart uploads of killed runs, aborted before this one
    b: Timestamp | None = None  # the source's cluster time before the first collection was read
    dump_end: Timestamp | None = None
    #: The segments after this one hold every change after B (None: no capture covers B).
    capture_seq: int | None = None
    manifest: str = ""
    #: A partitioned backup's (``--finish``): its begin id, and the partitions its collections
    #: were built from; None/0 for a backup taken in one run without a sync plan.
    begin_id: str | None = None
    partitions: int = 0


class Progress:
    """Throttled progress lines for one collection and for the whole backup."""

    def __init__(self, label: str, total: int) -> None:
        self.label, self.total = label, total
        self.done = 0
        self.documents = 0
        self._lock = threading.Lock()

    def collection(self, namespace: str) -> Callable[[int, int, bool], None]:
        last = [time.monotonic()]

        def report(documents: int, raw_bytes: int, final: bool) -> None:
            now = time.monotonic()
            if final or now - last[0] >= PROGRESS_SECONDS:
                last[0] = now
                state = "done" if final else "so far"
                log.info(
                    "backup %s %s: %d documents, %.1f MB %s",
                    self.label,
                    namespace,
                    documents,
                    raw_bytes / 1e6,
                    state,
                )

        return report

    def finished(self, backup: CollectionBackup) -> None:
        self.counted(backup.documents)

    def counted(self, documents: int, unit: str = "collections") -> None:
        """One more of the ``total`` collections (or partitions) done, with its documents."""
        with self._lock:
            self.done += 1
            self.documents += documents
            log.info(
                "backup %s: %d/%d %s, %d documents",
                self.label,
                self.done,
                self.total,
                unit,
                self.documents,
            )


def list_databases(client: MongoClient, wanted: Iterable[str]) -> list[str]:
    """The databases to back up: ``wanted``, or every one but admin/config/local."""
    wanted = list(wanted)
    if wanted:
        internal = sorted(set(wanted) & INTERNAL_DATABASES)
        if internal:
            raise UsageError(f"{internal[0]!r} is an internal database; it is never backed up")
        return sorted(set(wanted))
    names = client.list_database_names()
    return sorted(n for n in names if n not in INTERNAL_DATABASES)


def list_collections(client: MongoClient, db: str, skipped: list[str]) -> list[Mapping[str, Any]]:
    """The collections of ``db`` worth backing up (``skipped`` gets the others, with a log line)."""
    kept: list[Mapping[str, Any]] = []
    for info in client[db].list_collections():
        name = info["name"]
        if name.startswith("system."):
            log.info("skipping %s.%s: a system collection", db, name)
            skipped.append(f"{db}.{name}")
        elif name.startswith(STAGING_PREFIX):
            log.info("skipping %s.%s: left by an interrupted backover backup --restore", db, name)
            skipped.append(f"{db}.{name}")
        elif info.get("type", "collection") != "collection":
            log.info("skipping %s.%s: a %s (mongodump keeps only its definition)", db, name, info.get("type"))
            skipped.append(f"{db}.{name}")
        else:
            kept.append(info)
    return sorted(kept, key=lambda i: i["name"])


@dataclass(frozen=True)
class Dumped:
    """One scope of a collection as uploaded (one gzip member): what its checks record."""

    documents: int
    uncompressed_bytes: int
    compressed_bytes: int
    sha256: str
    etag: str

    def member(self) -> metadata.MemberCheck:
        return metadata.MemberCheck(
            self.documents, self.uncompressed_bytes, self.sha256, self.compressed_bytes
        )

    def check(self) -> metadata.DataCheck:
        return metadata.DataCheck(
            self.documents, self.uncompressed_bytes, self.sha256, self.compressed_bytes, self.etag
        )


def dump_scope(
    collection: Collection[Any],
    s3: S3Objects,
    config: BackupConfig,
    key: str,
    report: Callable[[int, int, bool], None],
    *,
    filter: Mapping[str, Any] | None = None,
    by_id: bool = False,
) -> Dumped:
    """Stream the documents of ``collection`` that match ``filter`` (all) through gzip into an S3
    multipart upload to ``key``: sorted by ``_id`` when ``by_id`` (a partition's range), else in
    the server's natural order (as mongodump). Raw batches, never decoded; memory: a batch and a
    part. PyMongoError is the caller's to name."""
    documents = 0
    with GzipMultipartUpload(s3.client, s3.bucket, key, config.part_size) as upload:
        batches = collection.find_raw_batches(
            dict(filter or {}), sort=[("_id", 1)] if by_id else None, batch_size=config.batch_size
        )
        for batch in batches:
            documents += sum(1 for _ in iter_raw_events(batch))
            upload.write(batch)
            report(documents, upload.raw_bytes, False)
        upload.complete()
    assert upload.etag is not None  # complete() sets it
    return Dumped(documents, upload.raw_bytes, upload.compressed_bytes, upload.sha256, upload.etag)


def check_count(
    config: BackupConfig, what: str, documents: int, expected: int, live: bool, holder: str = "the collection"
) -> None:
    """``documents`` dumped of ``what``, ``expected`` there now: a difference fails the backup,
    unless ``live`` (the capture covers B: the replay of the changes after B makes it consistent)."""
    if documents == expected:
        return
    if live:
        log.info(
            "backup %s %s: %d documents dumped, %d now: it changed during the dump (the captured "
            "changes after B make it consistent)",
            config.label,
            what,
            documents,
            expected,
        )
        return
    raise JobFailed(
        f"backup of {what}: dumped {documents} documents but {holder} holds "
        f"{expected}; it changed during the backup (is the source frozen?)"
    )


def dump_collection(
    client: MongoClient,
    s3: S3Objects,
    config: BackupConfig,
    db: str,
    info: Mapping[str, Any],
    progress: Progress,
    *,
    live: bool = False,
) -> CollectionBackup:
    """Stream one collection to S3, check its count (unless ``live``: the capture covers B, so the
    replay of the changes after B makes the dump consistent), then write its metadata."""
    name = info["name"]
    namespace = f"{db}.{name}"
    data_key = config.layout.backup_data(config.label, db, escape(name))
    report = progress.collection(namespace)
    collection = client[db][name]
    try:
        dumped = dump_scope(collection, s3, config, data_key, report)
        expected = collection.count_documents({})
        indexes = [dict(ix) for ix in collection.list_indexes()]
    except PyMongoError as e:
        raise JobFailed(f"backup of {namespace} failed: {type(e).__name__}: {e}") from None
    check_count(config, namespace, dumped.documents, expected, live)
    return write_metadata(s3, config, db, info, indexes, dumped.check(), progress, report)


def write_metadata(
    s3: S3Objects,
    config: BackupConfig,
    db: str,
    info: Mapping[str, Any],
    indexes: list[dict[str, Any]],
    check: metadata.DataCheck,
    progress: Progress,
    report: Callable[[int, int, bool], None],
) -> CollectionBackup:
    """``{coll}.metadata.json.gz``, once the collection's data object is complete."""
    name = info["name"]
    backup = CollectionBackup(
        f"{db}.{name}",
        check.documents,
        check.uncompressed_bytes,
        check.compressed_bytes or 0,
        check.sha256,
        len(indexes),
        config.layout.backup_data(config.label, db, escape(name)),
        config.layout.backup_metadata(config.label, db, escape(name)),
    )
    s3.put_bytes(
        backup.metadata_key,
        metadata.encode(metadata.metadata_document(info, indexes, check)),
        content_type="application/gzip",
    )
    report(check.documents, check.uncompressed_bytes, True)
    progress.finished(backup)
    return backup


def delete_stale(s3: S3Objects, config: BackupConfig, databases: list[str], written: set[str]) -> int:
    """Delete objects under each backed-up database's folder that this dump did not write."""
    stale = []
    for db in databases:
        stale += [
            k
            for k in s3.list_keys(config.layout.backup_database_prefix(config.label, db))
            if k not in written
        ]
    for key in stale:
        log.info("deleting %s: not part of this backup (dropped since an earlier one?)", key)
    return s3.delete_keys(stale) if stale else 0


def forget_previous(s3: S3Objects, config: BackupConfig) -> None:
    """Delete an earlier backup's manifest, then its sealed segment copies: they describe that dump."""
    manifest = config.layout.backup_manifest(config.label)
    keys = [manifest] if s3.head(manifest) is not None else []
    keys += list(s3.list_keys(config.layout.backup_segments_prefix(config.label)))
    if keys:
        s3.delete_keys(keys)
        log.info(
            "backup %s: the earlier backup's manifest and %d sealed segment(s) deleted",
            config.label,
            len(keys) - (keys[0] == manifest),
        )


def default_databases(layout: MigrationLayout, s3: S3Objects | None = None) -> tuple[str, ...]:
    """The migration's databases from ``state/start.json``; empty (= every database) without it."""
    s3 = s3 or S3Objects(layout.bucket)
    s3.check_bucket()  # a missing bucket is bad usage (exit 2), not a failed read
    started = state.read(s3, layout.start_state, StartRecord)
    return tuple(started.databases) if started is not None else ()


def capture_before(s3: S3Objects, config: BackupConfig) -> tuple[StartRecord | None, int]:
    """Read before B: the start record and the replicator's ``last_seq`` (0: nothing captured yet).

    Every event of segments ``1..last_seq`` happened before this read, so before B."""
    if config.label != "documentdb":
        return None, 0
    started = state.read(s3, config.layout.start_state, StartRecord)
    captured = replication_checkpoint.load(s3, config.layout) if started is not None else None
    return started, captured.last_seq if captured is not None else 0


def covered_seq(started: StartRecord | None, last_seq: int, b: Timestamp) -> int | None:
    """``last_seq`` when the capture covers B (it starts at T0, at or before B), else None."""
    if started is None or started.t0 is None or started.t0 > b:
        return None
    return last_seq


@dataclass(frozen=True)
class TakenB:
    """What a backup reads before its first upload: B and what goes with it."""

    started_at: datetime
    b: Timestamp
    capture_seq: int | None  # the replicator's last_seq read before B, when the capture covers B
    databases: list[str]

    @property
    def live(self) -> bool:
        """The capture covers B: the dump may change while it runs."""
        return self.capture_seq is not None


def take_b(s3: S3Objects, config: BackupConfig, client: MongoClient) -> TakenB:
    """Read the start record and the replicator checkpoint, then take B (before anything is
    listed or read), then the databases to back up. Writes nothing."""
    started, last_seq = capture_before(s3, config)
    started_at = now_ms()
    b = cluster_time(client)
    capture_seq = covered_seq(started, last_seq, b)
    taken = TakenB(started_at, b, capture_seq, list_databases(client, config.databases))
    log.info(
        "backup %s: B = %s; %s",
        config.label,
        format_time(b),
        "the capture covers it: the dump may change while it runs, the changes after B make it "
        f"consistent when restored (segments after {capture_seq})"
        if capture_seq is not None
        else "no capture of this migration covers it: the source must not change during the dump",
    )
    return taken


def clear_label(s3: S3Objects, config: BackupConfig) -> int:
    """The first change to S3 of a backup: abort the label's unfinished multipart uploads (how
    many), then delete the earlier backup's manifest and sealed copies."""
    aborted = abort_incomplete_uploads(s3.client, s3.bucket, config.layout.backup_prefix(config.label))
    log.info("backup %s: %d unfinished upload(s) of an interrupted backup aborted", config.label, aborted)
    forget_previous(s3, config)
    return aborted


def conclude(s3: S3Objects, config: BackupConfig, result: BackupResult, started_at: datetime) -> None:
    """Once every collection is written: delete what this dump did not write, then the manifest."""
    assert result.b is not None and result.dump_end is not None
    written = {k for c in result.collections for k in (c.data_key, c.metadata_key)}
    result.stale_deleted = delete_stale(s3, config, result.databases, written)
    result.documents_total = sum(c.documents for c in result.collections)
    result.bytes_total = sum(c.uncompressed_bytes for c in result.collections)
    result.manifest = config.layout.backup_manifest(config.label)
    state.write(
        s3,
        result.manifest,
        BackupManifest(
            config.layout.migration_id,
            config.label,
            result.b,
            result.dump_end,
            started_at,
            now_ms(),
            result.databases,
            [c.namespace for c in result.collections],
            result.capture_seq,
            begin_id=result.begin_id,
        ),
    )
    log.info(
        "backup %s done: %d collections, %d documents, %.1f MB",
        config.label,
        len(result.collections),
        result.documents_total,
        result.bytes_total / 1e6,
    )


def backup(config: BackupConfig, s3: S3Objects | None = None) -> BackupResult:
    """Back up ``config.databases`` of ``config.source`` under ``backups/{label}/``, every
    collection whole, in one run (:func:`.partitioned.run_backup` takes it over a sync plan's
    partitions when there is one)."""
    s3 = s3 or S3Objects(config.layout.bucket)
    s3.check_bucket()
    prefix = config.layout.backup_prefix(config.label)
    log.info("backup %s: from %s to s3://%s/%s", config.label, config.source, s3.bucket, prefix)
    with connect(config.source) as client:
        taken = take_b(s3, config, client)
        result = BackupResult(config.label, f"s3://{s3.bucket}/{prefix}", taken.databases, b=taken.b)
        result.capture_seq = taken.capture_seq
        plan = [(db, info) for db in taken.databases for info in list_collections(client, db, result.skipped)]
        # Only now (the source answered, the databases are known): the first change to S3.
        result.uploads_aborted = clear_label(s3, config)
        progress = Progress(config.label, len(plan))
        log.info(
            "backup %s: %d collections in %d databases, %d at a time",
            config.label,
            len(plan),
            len(taken.databases),
            config.parallel,
        )
        tasks = [
            partial(dump_collection, client, s3, config, db, info, progress, live=taken.live)
            for db, info in plan
        ]
        result.collections = run_parallel(tasks, config.parallel)
        result.dump_end = cluster_time(client)
    conclude(s3, config, result, taken.started_at)
    return result
