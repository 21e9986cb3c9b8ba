"""The DocumentDB backup over the sync plan's partitions, in three steps that any worker may run.

The initial sync splits every collection into ``_id`` ranges (``sync/plan.json``); the same
partitions let Airflow spread a backup over several workers, one task per partition:

1. :func:`begin` (``backover backup --label documentdb --begin``) does what a backup does before
   its first upload (:func:`.dump.take_b`: the start record and the replicator checkpoint, then B,
   then the databases; :func:`.dump.clear_label`: abort the label's unfinished uploads, delete the
   earlier manifest and sealed copies), deletes the parts of earlier begins, and records it all in
   ``backups/documentdb/_begun.json`` (:class:`~backover.state.BackupBegun`) with a new begin id,
   the plan's partitions of the backed-up databases and the plan's ``created_at``.
2. :func:`dump_partition` (``--partition ID``) dumps the partition's scope
   (:func:`backover.sync.scopes.partition_scope`: its range, sorted by ``_id``) through the dump's
   own streaming (:func:`.dump.dump_scope`) into ``.parts/<begin>/<ID>.bson.gz``, then its record
   (:class:`~backover.state.BackupPart`: count, bytes, SHA-256, size, ETag). A re-run replaces
   both. A part is this begin's only: a new ``--begin`` makes every earlier part stale.
3. :func:`finish` (``--finish``) needs every partition's part, each the object its record
   describes (a HEAD: size and ETag), else exit 1 naming the missing ones. It then dumps what no
   partition holds (:func:`backover.sync.scopes.rest_scopes`) and the collections without
   partitions whole, as a one-run backup does; builds each partitioned collection's
   ``<coll>.bson.gz`` from its parts in plan order, its rest last (:func:`.compose.compose`:
   server-side copies, each part one gzip member), with metadata listing the members' checks
   (:class:`~.metadata.MemberCheck`); then, as a one-run backup, deletes stale objects and writes
   ``_backup.json`` with B, ``capture_seq`` and the begin id, and last deletes this begin's parts
   (only its own: a begin made meanwhile keeps its parts). A re-run after a failure does it all
   again from the parts; a re-run after success changes nothing.

Each step after the begin reads the sync plan again and goes on only when it is the one the begin
read (:func:`backover.sync.scopes.begun_plan`, as ``verify --live`` checks it), else exit 1.

Why it is the same backup: B is taken before any partition is read, and every partition, rest and
whole collection is read after it (between ``--begin`` and the end of ``--finish``, which is the
manifest's ``dump_end``), so the dump holds every write at or before B and each document as it was
at some moment after B, once (the partitions and the rests are disjoint and cover every document).
That is all the replay to F and the seal (:mod:`.replay`, :mod:`.seal`) need.

:func:`run_backup` is ``backover backup`` without a step: with a sync plan, the three steps in
one process (partitions ``--parallel`` at a time); without one (or for ``mongodb``), the one-run
:func:`.dump.backup`. For Airflow: :func:`partition_ids` (what to map over, from the begin record).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from bson.timestamp import Timestamp
from pymongo import MongoClient
from pymongo.errors import PyMongoError

from .. import state
from ..errors import JobFailed, UsageError
from ..layout import MigrationLayout
from ..lifecycle.results import ResultRecord, now_ms
from ..lifecycle.source import cluster_time, connect
from ..namespaces import Namespace
from ..s3objects import S3Objects
from ..state import BackupBegun, BackupManifest, BackupPart, SyncPlan
from ..sync.job import read_plan
from ..sync.scopes import begun_plan, partition_scope, partitioned, plan_partitions, rest_scopes
from .compose import Source, compose
from .dump import (
    BackupConfig,
    BackupResult,
    CollectionBackup,
    Progress,
    backup,
    check_count,
    clear_label,
    conclude,
    dump_collection,
    dump_scope,
    list_collections,
    take_b,
    write_metadata,
)
from .metadata import DataCheck, MemberCheck, normalise_etag
from .multipart import abort_incomplete_uploads
from .names import escape
from .parallel import run_parallel

log = logging.getLogger(__name__)

#: The sync plan partitions the source's collections: only the source's backup can use them.
PARTITIONED_LABEL = "documentdb"
SHOWN = 10  # missing partitions named in a message


def check_label(label: str) -> None:
    """UsageError unless ``label`` is the one a backup can be taken in partitions of."""
    if label != PARTITIONED_LABEL:
        raise UsageError(
            f"--begin, --partition and --finish back up the sync plan's partitions of the source: only "
            f"for --label {PARTITIONED_LABEL}, not {label!r} (a {label} backup is taken whole)"
        )


@dataclass
class BeginResult(ResultRecord):
    """What ``--begin`` recorded: the partitions to dump (``--partition ID`` each), then ``--finish``."""

    label: str
    begin_id: str
    begun: str  # the begin record's key
    b: Timestamp
    capture_seq: int | None
    databases: list[str]
    partitions: list[str]
    uploads_aborted: int = 0
    parts_deleted: int = 0  # of earlier begins


@dataclass
class PartResult(ResultRecord):
    """One partition's part."""

    label: str
    begin_id: str
    partition: str
    namespace: str
    documents: int
    uncompressed_bytes: int
    compressed_bytes: int
    sha256: str
    data_key: str
    record_key: str
    uploads_aborted: int = 0  # a killed earlier run's of this partition


@dataclass
class FinishResult(BackupResult):
    """The whole backup, as :class:`~.dump.BackupResult`, plus what ``--finish`` did with the parts."""

    parts_deleted: int = 0
    already_finished: bool = False  # a re-run after success: nothing changed
    collections_built: list[str] = field(default_factory=list)  # from parts (the others whole)


def new_begin_id() -> str:
    """A begin id: the UTC time, for people, and random hex, so two begins never share one."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(4)


def read_begun(s3: S3Objects, layout: MigrationLayout, label: str = PARTITIONED_LABEL) -> BackupBegun:
    """The begin record; UsageError when there is none (or it is another migration's)."""
    key = layout.backup_begun(label)
    begun = state.read(s3, key, BackupBegun)
    if begun is None:
        raise UsageError(
            f"no begun backup: s3://{s3.bucket}/{key} is missing (run backover backup --label {label} "
            "--begin first)"
        )
    if begun.migration_id != layout.migration_id:
        raise UsageError(f"{key} belongs to migration {begun.migration_id!r}, not {layout.migration_id!r}")
    return begun


def _databases(databases: list[str]) -> list[Namespace]:
    """The backed-up databases as the namespaces whose partitions the backup dumps."""
    return [Namespace(db) for db in databases]


def _plan_of(s3: S3Objects, layout: MigrationLayout, begun: BackupBegun) -> SyncPlan | None:
    """The sync plan the begin read; JobFailed when it was made again (or removed) since."""
    return begun_plan(
        read_plan(s3, layout),
        begun.plan_created_at,
        begun.partitions,
        _databases(begun.databases),
        begun=f"the backup begun as {begun.begin_id}",
        again=f"backover backup --label {begun.label} --begin",
    )


def _finished(s3: S3Objects, layout: MigrationLayout, begun: BackupBegun) -> BackupManifest | None:
    """The manifest when ``--finish`` of this begin wrote it already, else None."""
    manifest = state.read(s3, layout.backup_manifest(begun.label), BackupManifest)
    return manifest if manifest is not None and manifest.begin_id == begun.begin_id else None


def _delete_parts(s3: S3Objects, layout: MigrationLayout, label: str, begin_id: str | None) -> int:
    """Delete the part objects and records of begin ``begin_id`` (None: of every begin, under
    ``.parts/``); how many."""
    keys = list(s3.list_keys(layout.backup_parts_prefix(label, begin_id)))
    if keys:
        s3.delete_keys(keys)
    return len(keys)


def _open(config: BackupConfig, s3: S3Objects | None) -> S3Objects:
    check_label(config.label)
    s3 = s3 or S3Objects(config.layout.bucket)
    s3.check_bucket()
    return s3


# -- 1. begin ------------------------------------------------------------------------------------
def begin(config: BackupConfig, s3: S3Objects | None = None) -> BeginResult:
    """Take B and record the partitioned backup's start (``backups/documentdb/_begun.json``)."""
    s3 = _open(config, s3)
    layout, label = config.layout, config.label
    plan = read_plan(s3, layout)
    with connect(config.source) as client:
        taken = take_b(s3, config, client)
    partitions = plan_partitions(plan, _databases(taken.databases))
    # Only now (the source answered, the databases are known): the first change to S3.
    aborted = clear_label(s3, config)
    deleted = _delete_parts(s3, layout, label, None)
    begun = BackupBegun(
        layout.migration_id,
        label,
        new_begin_id(),
        taken.b,
        taken.started_at,
        taken.databases,
        partitions,
        taken.capture_seq,
        plan.created_at if plan is not None else None,
    )
    key = layout.backup_begun(label)
    state.write(s3, key, begun)
    log.info(
        "backup %s begun as %s: %d partition(s) of the sync plan to dump (--partition ID each), "
        "then --finish; %d part object(s) of earlier begins deleted",
        label,
        begun.begin_id,
        len(partitions),
        deleted,
    )
    return BeginResult(
        label,
        begun.begin_id,
        key,
        taken.b,
        taken.capture_seq,
        taken.databases,
        partitions,
        uploads_aborted=aborted,
        parts_deleted=deleted,
    )


def partition_ids(
    s3: S3Objects,
    layout: MigrationLayout,
    *,
    label: str = PARTITIONED_LABEL,
    missing_only: bool = False,
    parallel: int = 4,
) -> list[str]:
    """The partitions of the begun backup, in plan order (what Airflow maps ``--partition`` over);
    ``missing_only``: those whose part is not there yet (a re-run maps only those)."""
    check_label(label)
    s3.check_bucket()
    begun = read_begun(s3, layout, label)
    if not missing_only:
        return list(begun.partitions)
    found = _find_parts(s3, layout, begun, parallel)
    return [pid for pid in begun.partitions if pid not in found]


# -- 2. one partition ------------------------------------------------------------------------------
def dump_partition(config: BackupConfig, partition_id: str, s3: S3Objects | None = None) -> PartResult:
    """Dump one partition of the begun backup into its part (``.parts/<begin>/<ID>.bson.gz``)."""
    s3 = _open(config, s3)
    begun = read_begun(s3, config.layout, config.label)
    if partition_id not in begun.partitions:
        raise UsageError(
            f"no partition {partition_id!r} in the backup begun as {begun.begin_id} "
            f"({len(begun.partitions)} partition(s), from sync/plan.json at --begin)"
        )
    if _finished(s3, config.layout, begun) is not None:
        raise UsageError(
            f"the backup begun as {begun.begin_id} is finished: run backover backup --begin to take another"
        )
    plan = _plan_of(s3, config.layout, begun)
    assert plan is not None  # the begin recorded partitions, so a plan
    with connect(config.source) as client:
        return _dump_part(client, s3, config, begun, plan, partition_id, Progress(config.label, 1))


def _dump_part(
    client: MongoClient,
    s3: S3Objects,
    config: BackupConfig,
    begun: BackupBegun,
    plan: SyncPlan,
    partition_id: str,
    progress: Progress,
) -> PartResult:
    layout, label = config.layout, config.label
    scope = partition_scope(plan, partition_id)
    key = layout.backup_part(label, begun.begin_id, partition_id)
    aborted = abort_incomplete_uploads(s3.client, s3.bucket, key)  # a killed run of this partition
    what = f"{partition_id} ({scope.ns})"
    report = progress.collection(partition_id)
    collection = client[scope.ns.db][scope.ns.coll]
    try:
        dumped = dump_scope(collection, s3, config, key, report, filter=scope.filter, by_id=True)
        expected = collection.count_documents(scope.filter)
    except PyMongoError as e:
        raise JobFailed(f"backup of {what} failed: {type(e).__name__}: {e}") from None
    check_count(config, what, dumped.documents, expected, begun.capture_seq is not None, "its range")
    record_key = layout.backup_part_record(label, begun.begin_id, partition_id)
    state.write(
        s3,
        record_key,
        BackupPart(
            layout.migration_id,
            begun.begin_id,
            partition_id,
            str(scope.ns),
            dumped.documents,
            dumped.uncompressed_bytes,
            dumped.sha256,
            dumped.compressed_bytes,
            normalise_etag(dumped.etag),
            now_ms(),
        ),
    )
    report(dumped.documents, dumped.uncompressed_bytes, True)
    progress.counted(dumped.documents, "partitions")
    return PartResult(
        label,
        begun.begin_id,
        partition_id,
        str(scope.ns),
        dumped.documents,
        dumped.uncompressed_bytes,
        dumped.compressed_bytes,
        dumped.sha256,
        key,
        record_key,
        uploads_aborted=aborted,
    )


# -- 3. finish -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Part:
    """A partition's part, checked: its record and the object as S3 shows it."""

    record: BackupPart
    source: Source

    @property
    def member(self) -> MemberCheck:
        r = self.record
        return MemberCheck(r.documents, r.uncompressed_bytes, r.sha256, r.compressed_bytes)


def _check_part(
    s3: S3Objects, layout: MigrationLayout, begun: BackupBegun, partition_id: str
) -> _Part | None:
    """The part of ``partition_id`` when its record is this begin's and the object is the one it
    describes (size and ETag), else None."""
    record = state.read(s3, layout.backup_part_record(begun.label, begun.begin_id, partition_id), BackupPart)
    if record is None or record.begin_id != begun.begin_id or record.partition != partition_id:
        return None
    key = layout.backup_part(begun.label, begun.begin_id, partition_id)
    head = s3.head(key)
    if head is None:
        return None
    etag, size = normalise_etag(head["ETag"]), head["ContentLength"]
    if etag != normalise_etag(record.etag) or size != record.compressed_bytes:
        return None
    return _Part(record, Source(key, size, etag))


def _find_parts(
    s3: S3Objects, layout: MigrationLayout, begun: BackupBegun, parallel: int
) -> dict[str, _Part]:
    checks = [partial(_check_part, s3, layout, begun, pid) for pid in begun.partitions]
    found = run_parallel(checks, parallel) if checks else []
    return {pid: part for pid, part in zip(begun.partitions, found, strict=True) if part is not None}


def finish(config: BackupConfig, s3: S3Objects | None = None) -> FinishResult:
    """Build the backup from the begun backup's parts, the rests and the collections without
    partitions, then write ``_backup.json``; JobFailed naming the partitions without their part."""
    s3 = _open(config, s3)
    layout, label = config.layout, config.label
    begun = read_begun(s3, layout, label)
    prefix = layout.backup_prefix(label)
    result = FinishResult(
        label,
        f"s3://{s3.bucket}/{prefix}",
        list(begun.databases),
        b=begun.b,
        capture_seq=begun.capture_seq,
        begin_id=begun.begin_id,
        partitions=len(begun.partitions),
    )
    done = _finished(s3, layout, begun)
    if done is not None:
        result.already_finished = True
        result.dump_end = done.dump_end
        result.manifest = layout.backup_manifest(label)
        result.parts_deleted = _delete_parts(s3, layout, label, begun.begin_id)
        log.info("backup %s begun as %s is finished already: nothing to do", label, begun.begin_id)
        return result
    plan = _plan_of(s3, layout, begun)
    parts = _find_parts(s3, layout, begun, config.parallel)
    missing = [pid for pid in begun.partitions if pid not in parts]
    if missing:
        shown = ", ".join(missing[:SHOWN]) + (
            f" and {len(missing) - SHOWN} more" if len(missing) > SHOWN else ""
        )
        raise JobFailed(
            f"the backup begun as {begun.begin_id} lacks the part of {len(missing)} of its "
            f"{len(begun.partitions)} partition(s): {shown}; run backover backup --label {label} "
            "--partition ID for each, then --finish again"
        )
    live = begun.capture_seq is not None
    log.info(
        "backup %s begun as %s: every one of its %d part(s) is there; finishing",
        label,
        begun.begin_id,
        len(parts),
    )
    with connect(config.source) as client:
        listed = [
            (db, info) for db in begun.databases for info in list_collections(client, db, result.skipped)
        ]
        # Every part is here, so no partition of this begin is being dumped: the first change to S3.
        result.uploads_aborted = clear_label(s3, config)
        _log_gone(plan, begun, {Namespace(db, info["name"]) for db, info in listed})
        progress = Progress(label, len(listed))
        tasks = []
        for db, info in listed:
            if partitioned(plan, Namespace(db, info["name"])):
                assert plan is not None
                result.collections_built.append(f"{db}.{info['name']}")
                tasks.append(
                    partial(_build_collection, client, s3, config, begun, plan, parts, db, info, progress)
                )
            else:
                tasks.append(partial(dump_collection, client, s3, config, db, info, progress, live=live))
        result.collections = run_parallel(tasks, config.parallel)
        result.dump_end = cluster_time(client)
    conclude(s3, config, result, begun.started_at)
    # This begin's parts only: a --begin made while this finish ran has parts of its own.
    result.parts_deleted = _delete_parts(s3, layout, label, begun.begin_id)
    return result


def _log_gone(plan: SyncPlan | None, begun: BackupBegun, listed: set[Namespace]) -> None:
    for c in plan.collections if plan is not None else []:
        ns = Namespace(c.db, c.coll)
        if c.partitions and c.db in begun.databases and ns not in listed:
            log.info(
                "backup %s: %s is in the sync plan but no longer on the source: left out (the "
                "replay brings its changes after B, its drop included)",
                begun.label,
                ns,
            )


def _build_collection(
    client: MongoClient,
    s3: S3Objects,
    config: BackupConfig,
    begun: BackupBegun,
    plan: SyncPlan,
    parts: dict[str, _Part],
    db: str,
    info: Mapping[str, Any],
    progress: Progress,
) -> CollectionBackup:
    """One partitioned collection: its rest dumped, then ``<coll>.bson.gz`` = its parts in plan
    order and the rest, then its metadata (the members' checks)."""
    name = info["name"]
    ns = Namespace(db, name)
    planned = next(c for c in plan.collections if Namespace(c.db, c.coll) == ns)
    chosen = [parts[p.id] for p in planned.partitions]
    sources = [p.source for p in chosen]
    members = [p.member for p in chosen]
    report = progress.collection(str(ns))
    collection = client[db][name]
    try:
        for rest in rest_scopes(plan, [ns]):
            key = config.layout.backup_rest_part(config.label, begun.begin_id, db, name)
            dumped = dump_scope(
                collection, s3, config, key, progress.collection(rest.label), filter=rest.filter, by_id=True
            )
            sources.append(Source(key, dumped.compressed_bytes, normalise_etag(dumped.etag)))
            members.append(dumped.member())
        expected = collection.count_documents({})
        indexes = [dict(ix) for ix in collection.list_indexes()]
    except PyMongoError as e:
        raise JobFailed(f"backup of {ns} failed: {type(e).__name__}: {e}") from None
    data_key = config.layout.backup_data(config.label, db, escape(name))
    composed = compose(s3.client, s3.bucket, data_key, sources)
    check = DataCheck.of_members(members, normalise_etag(composed.etag))
    check_count(config, str(ns), check.documents, expected, begun.capture_seq is not None)
    log.info(
        "backup %s %s: built from %d part(s)%s: %d S3 part(s) copied server-side, %d uploaded (%.1f MB read)",
        config.label,
        ns,
        len(chosen),
        " and its rest" if len(sources) > len(chosen) else "",
        composed.copied_parts,
        composed.uploaded_parts,
        composed.bytes_read / 1e6,
    )
    return write_metadata(s3, config, db, info, indexes, check, progress, report)


# -- in one process -------------------------------------------------------------------------------
def run_backup(config: BackupConfig, s3: S3Objects | None = None) -> BackupResult:
    """``backover backup`` without a step: over the sync plan's partitions when there is a plan
    (a DocumentDB backup: begin, every partition, finish), else whole in one run, as always."""
    s3 = s3 or S3Objects(config.layout.bucket)
    s3.check_bucket()
    if config.label != PARTITIONED_LABEL or read_plan(s3, config.layout) is None:
        return backup(config, s3)
    log.info("backup %s: a sync plan exists; taking the backup over its partitions", config.label)
    begin(config, s3)
    begun = read_begun(s3, config.layout, config.label)
    if begun.partitions:
        plan = _plan_of(s3, config.layout, begun)
        assert plan is not None
        progress = Progress(config.label, len(begun.partitions))
        with connect(config.source) as client:
            run_parallel(
                [
                    partial(_dump_part, client, s3, config, begun, plan, pid, progress)
                    for pid in begun.partitions
                ],
                config.parallel,
            )
    return finish(config, s3)
