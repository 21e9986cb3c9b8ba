"""``backover backup --restore``: bring a backup in S3 back into a database, byte for byte, all or nothing.

The counterpart of :mod:`.dump` (``mongorestore --gzip --dir <downloaded backups/{label}>`` does
the same from a local copy). Three phases:

1. **Check, writing nothing.** Every collection of the backup has both objects; every metadata
   object parses and is complete (:class:`~.metadata.CollectionMetadata`); every data object is
   the one its metadata was written for (HEAD: size and ETag; when the ETag is not the recorded
   one, a copy or an older backup without it, the data is read once here to check count, size
   and SHA-256); and without ``--drop`` every target collection of the backup is absent or empty.
   For a DocumentDB backup that recorded B, the replay is prepared too (:func:`.replay.prepare`:
   the stop F or ``--until``, every segment covering (B, stop] there).
2. **Stage.** Each collection is loaded, in parallel, into ``backover.restore.<coll>`` in its
   database (:func:`.names.staging`): created with the dumped options, filled from the gzip
   stream read with ``If-Match`` (split into raw BSON documents, inserted as
   :class:`~bson.raw_bson.RawBSONDocument`, never decoded or re-encoded) and checked (count,
   uncompressed bytes, SHA-256). Then the captured changes in (B, stop] are replayed into the
   staging collections (:func:`.replay.apply`), and each collection gets its indexes (all but
   ``_id_``), as mongorestore does, after the data (and after the replay: at F unique keys hold).
   Any failure drops every staging collection: the target is as it was.
3. **Swap in.** Each staging collection is renamed onto its target (``renameCollection``,
   ``dropTarget``), replacing the old collection with ``--drop`` or an empty one without it; with
   ``--drop``, a collection of the dump that the replay dropped (or renamed away) is dropped.

Staging collections left by a killed restore are dropped at the start of phase 2.
"""

from __future__ import annotations

import hashlib
import logging
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from bson.raw_bson import RawBSONDocument
from bson.timestamp import Timestamp
from pymongo import MongoClient
from pymongo.errors import PyMongoError

from ..connections import DatabaseUri
from ..errors import JobFailed, UsageError
from ..layout import MigrationLayout
from ..lifecycle.results import ResultRecord
from ..lifecycle.source import connect
from ..namespaces import Namespace
from ..s3objects import S3Objects
from .bsonstream import BsonSplitter
from .dump import LABELS
from .metadata import CollectionMetadata, DataCheck, MemberCheck, normalise_etag, one_line
from .multipart import GZIP_WBITS
from .names import STAGING_PREFIX, staging, unescape
from .parallel import run_parallel
from .replay import ReplayResult
from .replay import apply as apply_replay
from .replay import prepare as prepare_replay

log = logging.getLogger(__name__)

DATA_SUFFIX = ".bson.gz"
METADATA_SUFFIX = ".metadata.json.gz"
CHUNK = 1024 * 1024
MAX_NAMESPACE_BYTES = 255  # MongoDB's limit for ``db.collection`` (4.4 and later)


@dataclass(frozen=True)
class LoadConfig:
    """Which backup to bring back, and into which database server."""

    target: DatabaseUri
    layout: MigrationLayout
    label: str
    databases: tuple[str, ...] = ()  # empty: every database in the backup
    drop: bool = False
    parallel: int = 4
    batch_documents: int = 1000
    batch_bytes: int = 8 * 1024 * 1024
    until: Timestamp | None = None  # replay up to this cluster time instead of F
    window: int = 10_000  # events per replay window

    def __post_init__(self) -> None:
        if self.label not in LABELS:
            raise UsageError(f"label must be one of {', '.join(LABELS)}, not {self.label!r}")
        if self.parallel < 1:
            raise UsageError("--parallel must be at least 1")
        if self.window < 1:
            raise UsageError("the replay window must be at least 1 event")


@dataclass
class LoadedCollection(ResultRecord):
    namespace: str
    documents: int
    indexes: int


@dataclass
class LoadResult(ResultRecord):
    label: str
    location: str
    collections: list[LoadedCollection] = field(default_factory=list)
    documents_total: int = 0  # as dumped (before the replay)
    staging_dropped: int = 0  # staging collections of an interrupted restore, dropped first
    replay: ReplayResult | None = None  # None: the dump restored as it is
    dropped: list[str] = field(default_factory=list)  # dumped, gone at the stop: dropped (--drop)


@dataclass(frozen=True)
class BackupFiles:
    """The two objects of one collection's backup."""

    db: str
    collection: str
    data_key: str
    metadata_key: str

    @property
    def namespace(self) -> str:
        return f"{self.db}.{self.collection}"


@dataclass(frozen=True)
class CheckedCollection:
    """A collection whose backup passed phase 1: its metadata, and the ETag its data was checked at."""

    files: BackupFiles
    metadata: CollectionMetadata
    etag: str

    @property
    def staging(self) -> str:
        return staging(self.files.collection)

    @property
    def namespace(self) -> Namespace:
        return Namespace(self.files.db, self.files.collection)


def find_backups(s3: S3Objects, config: LoadConfig) -> list[BackupFiles]:
    """Every collection of the backup (of ``config.databases`` if given); UsageError when none.

    JobFailed when a collection has only one of its two objects (an interrupted dump).
    """
    prefix = config.layout.backup_prefix(config.label)
    keys = set(s3.list_keys(prefix))
    found = []
    for key in sorted(keys):
        db, sep, file_name = key[len(prefix) :].partition("/")
        if not sep or "/" in file_name or (config.databases and db not in config.databases):
            continue
        if file_name.endswith(METADATA_SUFFIX):
            data_key = config.layout.backup_data(config.label, db, file_name[: -len(METADATA_SUFFIX)])
            if data_key not in keys:
                raise JobFailed(
                    f"the backup of {db}.{unescape(file_name[: -len(METADATA_SUFFIX)])} is "
                    f"incomplete: {data_key} is missing"
                )
            continue
        if not file_name.endswith(DATA_SUFFIX):
            continue
        escaped = file_name[: -len(DATA_SUFFIX)]
        metadata_key = config.layout.backup_metadata(config.label, db, escaped)
        if metadata_key not in keys:
            raise JobFailed(
                f"the backup of {db}.{unescape(escaped)} is incomplete: {metadata_key} is missing"
            )
        found.append(BackupFiles(db, unescape(escaped), key, metadata_key))
    if not found:
        raise UsageError(
            f"no backup under s3://{s3.bucket}/{prefix}"
            + (f" for {', '.join(config.databases)}" if config.databases else "")
        )
    return found


class _Member:
    """What one gzip member of a data object held, as read."""

    def __init__(self) -> None:
        self.inflate = zlib.decompressobj(GZIP_WBITS)
        self.digest = hashlib.sha256()
        self.documents = self.size = self.compressed = 0

    @property
    def started(self) -> bool:
        return self.compressed > 0


def _check_member(key: str, found: _Member, expected: MemberCheck, number: int, count: int) -> None:
    """JobFailed naming ``key`` (and the member, when there are several) unless ``found`` is ``expected``."""
    which = f" member {number} of {count}" if count > 1 else ""
    if found.documents != expected.documents or found.size != expected.uncompressed_bytes:
        raise JobFailed(
            f"{key}{which} holds {found.documents} documents ({found.size} bytes), its metadata says "
            f"{expected.documents} ({expected.uncompressed_bytes} bytes)"
        )
    if found.digest.hexdigest() != expected.sha256:
        raise JobFailed(f"{key}{which} does not match the SHA-256 in its metadata")
    if expected.compressed_bytes is not None and count > 1 and found.compressed != expected.compressed_bytes:
        raise JobFailed(
            f"{key}{which} is {found.compressed} bytes of gzip, its metadata says {expected.compressed_bytes}"
        )


def read_documents(s3: S3Objects, key: str, check: DataCheck, etag: str) -> Iterator[bytes]:
    """The raw BSON documents of data object ``key`` at ``etag``; JobFailed naming ``key`` when the
    object changed, is not gzip, is truncated, or does not match ``check`` (each gzip member is
    checked when it ends: one for a collection dumped whole, one per part for one built from a
    partitioned backup's parts)."""
    try:
        body = s3.client.get_object(Bucket=s3.bucket, Key=key, IfMatch=etag)["Body"]
    except ClientError as e:
        code = str(e.response.get("Error", {}).get("Code", ""))
        if code in ("PreconditionFailed", "412"):
            raise JobFailed(
                f"{key} changed since it was checked (is another backup of this label running?)"
            ) from None
        raise JobFailed(f"cannot read s3://{s3.bucket}/{key}: {code or one_line(e)}") from None
    except BotoCoreError as e:
        raise JobFailed(f"cannot read s3://{s3.bucket}/{key}: {one_line(e)}") from None
    splitter = BsonSplitter(key)
    expected = check.expected_members()
    member, done = _Member(), 0

    def inflated(out: bytes) -> Iterator[bytes]:
        member.digest.update(out)
        member.size += len(out)
        for raw in splitter.feed(out):
            member.documents += 1
            yield raw

    try:
        for chunk in body.iter_chunks(CHUNK):
            data: bytes = chunk
            while data:
                if done == len(expected):
                    raise JobFailed(f"{key} is corrupt: bytes follow the end of its gzip stream")
                yield from inflated(member.inflate.decompress(data))
                if not member.inflate.eof:
                    member.compressed += len(data)
                    break
                rest = member.inflate.unused_data
                member.compressed += len(data) - len(rest)
                _check_member(key, member, expected[done], done + 1, len(expected))
                member, done, data = _Member(), done + 1, rest
        if member.started:
            yield from inflated(member.inflate.flush())
    except zlib.error as e:
        raise JobFailed(f"{key} is corrupt: {one_line(e)}") from None
    except (BotoCoreError, ClientError) as e:
        raise JobFailed(f"cannot read s3://{s3.bucket}/{key}: {one_line(e)}") from None
    finally:
        body.close()  # also when the caller stops early (a failed insert)
    splitter.finish()
    if member.started or done < len(expected):  # a member begun and not ended, or one missing
        gone = f" ({done} of {len(expected)} gzip members whole)" if len(expected) > 1 else ""
        raise JobFailed(f"{key} is truncated: the gzip stream does not end{gone}")


def check_collection(s3: S3Objects, files: BackupFiles) -> CheckedCollection:
    """Phase 1 for one collection (reads only): metadata complete, data object the one it describes."""
    body = s3.get_bytes(files.metadata_key)
    if body is None:
        raise JobFailed(f"{files.metadata_key} disappeared during the restore")
    metadata = CollectionMetadata.parse(files.metadata_key, body, files.collection)
    head = s3.head(files.data_key)
    if head is None:
        raise JobFailed(f"{files.data_key} disappeared during the restore")
    etag, size = normalise_etag(head["ETag"]), head["ContentLength"]
    check = metadata.check
    mismatch = (
        f"{files.data_key} is not the object its metadata describes (ETag {etag}, {size} bytes; the "
        f"metadata says {check.etag}, {check.compressed_bytes} bytes): a backup was interrupted between "
        "the two? run the backup again"
    )
    if check.compressed_bytes is not None and size != check.compressed_bytes:
        raise JobFailed(mismatch)
    if check.etag is None or etag != check.etag:
        # An older backup (no ETag recorded), or a copied object (a copy gets an ETag of its own):
        # only the content can tell, so it is read once now, before any write.
        log.info(
            "%s: %s; reading it once now, before any write, to check it",
            files.data_key,
            "its metadata has no ETag (an older backup)"
            if check.etag is None
            else "its ETag is not the one recorded (copied, or a dump interrupted after it)",
        )
        try:
            for _ in read_documents(s3, files.data_key, check, etag):
                pass
        except JobFailed as e:
            raise JobFailed(str(e) if check.etag is None else f"{mismatch}; {e}") from None
    return CheckedCollection(files, metadata, etag)


def check_target(client: MongoClient, checked: list[CheckedCollection], drop: bool) -> None:
    """Phase 1 on the target (reads only): every target collection absent or empty unless ``drop``."""
    try:
        for c in checked:
            if len(f"{c.files.db}.{c.staging}".encode()) > MAX_NAMESPACE_BYTES:
                raise JobFailed(
                    f"{c.files.namespace}: the staging name {c.staging} is longer than MongoDB's "
                    f"{MAX_NAMESPACE_BYTES}-byte namespace limit"
                )
        if drop:
            return
        full = [
            c.files.namespace
            for c in checked
            if client[c.files.db][c.files.collection].find_one({}, projection={"_id": 1}) is not None
        ]
    except PyMongoError as e:
        raise JobFailed(f"cannot check the target's collections: {type(e).__name__}: {e}") from None
    if full:
        raise JobFailed(
            f"not empty on the target: {', '.join(full)}; pass --drop to replace "
            + ("it" if len(full) == 1 else "them")
            + " (nothing was written)"
        )


def drop_leftover_staging(client: MongoClient, databases: list[str]) -> int:
    """Drop the staging collections an interrupted restore left in ``databases``; how many."""
    dropped = 0
    try:
        for db in databases:
            for name in client[db].list_collection_names():
                if name.startswith(STAGING_PREFIX):
                    client[db].drop_collection(name)
                    log.info("dropped %s.%s: left by an interrupted restore", db, name)
                    dropped += 1
    except PyMongoError as e:
        raise JobFailed(
            f"cannot drop the staging collections of an earlier restore: {type(e).__name__}: {e}"
        ) from None
    return dropped


def stage_collection(
    client: MongoClient, s3: S3Objects, config: LoadConfig, c: CheckedCollection
) -> LoadedCollection:
    """Phase 2 for one collection: load and check it under its staging name (indexes come later)."""
    db = client[c.files.db]
    staged = db[c.staging]
    batch: list[RawBSONDocument] = []
    batch_bytes = documents = 0
    try:
        db.command({"create": c.staging, **c.metadata.options})
        for raw in read_documents(s3, c.files.data_key, c.metadata.check, c.etag):
            batch.append(RawBSONDocument(raw))
            batch_bytes += len(raw)
            documents += 1
            if len(batch) >= config.batch_documents or batch_bytes >= config.batch_bytes:
                staged.insert_many(batch, ordered=True, bypass_document_validation=True)
                batch, batch_bytes = [], 0
        if batch:
            staged.insert_many(batch, ordered=True, bypass_document_validation=True)
    except PyMongoError as e:
        raise JobFailed(f"restore of {c.files.namespace} failed: {type(e).__name__}: {e}") from None
    log.info(
        "loaded %s from backup %s: %d documents (staged as %s)",
        c.files.namespace,
        config.label,
        documents,
        c.staging,
    )
    return LoadedCollection(c.files.namespace, documents, len(c.metadata.secondary_indexes))


def build_indexes(client: MongoClient, ns: Namespace, indexes: list[dict[str, Any]]) -> None:
    """The dumped secondary indexes of ``ns``, on its staging collection."""
    try:
        client[ns.db].command("createIndexes", staging(ns.coll), indexes=indexes)
    except PyMongoError as e:
        raise JobFailed(f"restore of {ns}: its indexes cannot be built: {type(e).__name__}: {e}") from None
    log.info("%s: %d index(es) built", ns, len(indexes))


def staged_namespaces(client: MongoClient, databases: list[str]) -> list[Namespace]:
    """The collections staged in ``databases`` (after a replay: the collections at the stop)."""
    try:
        return sorted(
            Namespace(db, name[len(STAGING_PREFIX) :])
            for db in databases
            for name in client[db].list_collection_names()
            if name.startswith(STAGING_PREFIX)
        )
    except PyMongoError as e:
        raise JobFailed(f"cannot list the staged collections: {type(e).__name__}: {e}") from None


def discard_staging(client: MongoClient, namespaces: list[Namespace]) -> None:
    """After a failure in phase 2: drop these staging collections (errors are logged, never raised)."""
    for ns in namespaces:
        try:
            client[ns.db].drop_collection(staging(ns.coll))
        except PyMongoError as e:
            log.warning("could not drop %s.%s (the next restore drops it): %s", ns.db, staging(ns.coll), e)


def discard_all_staging(client: MongoClient, databases: list[str]) -> None:
    """After a failure in phase 2: drop every staging collection of ``databases`` (never raises)."""
    try:
        found = staged_namespaces(client, databases)
    except JobFailed as e:
        log.warning("%s (the next restore drops them)", e)
        return
    discard_staging(client, found)


def swap_in(client: MongoClient, namespaces: list[Namespace], drop: bool, gone: list[Namespace]) -> None:
    """Phase 3: rename each staging collection onto its target; with ``drop``, drop ``gone``."""
    done = 0
    try:
        for ns in namespaces:
            target = client[ns.db][ns.coll]
            if not drop and target.find_one({}, projection={"_id": 1}) is not None:
                raise JobFailed(f"{ns} was written to during the restore; pass --drop to replace it")
            client.admin.command(
                {"renameCollection": f"{ns.db}.{staging(ns.coll)}", "to": str(ns), "dropTarget": True}
            )
            done += 1
    except (PyMongoError, JobFailed) as e:
        discard_staging(client, namespaces[done:])
        reason = f"{type(e).__name__}: {e}" if isinstance(e, PyMongoError) else str(e)
        raise JobFailed(
            f"restore stopped after {done} of {len(namespaces)} collections were put in place "
            f"({', '.join(str(ns) for ns in namespaces[:done]) or 'none'}): {reason}"
        ) from None
    for ns in gone:
        if not drop:
            log.info("%s was dropped or renamed after B: left as it is on the target (no --drop)", ns)
            continue
        try:
            client[ns.db].drop_collection(ns.coll)
        except PyMongoError as e:
            raise JobFailed(
                f"restore put every collection in place but could not drop {ns}, which the replay "
                f"dropped: {type(e).__name__}: {e}"
            ) from None
        log.info("%s dropped: the replay dropped (or renamed) it after B", ns)


def load(config: LoadConfig, s3: S3Objects | None = None) -> LoadResult:
    """Restore the ``config.label`` backup into ``config.target``: check all, stage all, swap all in."""
    s3 = s3 or S3Objects(config.layout.bucket)
    s3.check_bucket()
    prefix = config.layout.backup_prefix(config.label)
    found = find_backups(s3, config)
    replaying = prepare_replay(s3, config.layout, config.label, config.until, config.databases)
    log.info(
        "restore of backup %s: %d collections from s3://%s/%s into %s",
        config.label,
        len(found),
        s3.bucket,
        prefix,
        config.target,
    )
    with connect(config.target) as client:
        checked = run_parallel([partial(check_collection, s3, files) for files in found], config.parallel)
        check_target(client, checked, config.drop)
        log.info(
            "restore of backup %s: all %d collections checked; nothing written yet",
            config.label,
            len(checked),
        )
        result = LoadResult(config.label, f"s3://{s3.bucket}/{prefix}")
        databases = sorted({c.files.db for c in checked} | (replaying.databases if replaying else set()))
        result.staging_dropped = drop_leftover_staging(client, databases)
        dumped = [c.namespace for c in checked]
        indexes = {c.namespace: c.metadata.secondary_indexes for c in checked}
        try:
            result.collections = run_parallel(
                [partial(stage_collection, client, s3, config, c) for c in checked], config.parallel
            )
            final = dumped
            if replaying is not None:
                result.replay = apply_replay(
                    s3, client, replaying, indexes, workers=config.parallel, window=config.window
                )
                final = staged_namespaces(client, databases)
            run_parallel(
                [partial(build_indexes, client, ns, indexes[ns]) for ns in final if indexes.get(ns)],
                config.parallel,
            )
        except BaseException:
            discard_all_staging(client, databases)
            raise
        gone = [ns for ns in dumped if ns not in set(final)]
        result.dropped = [str(ns) for ns in gone] if config.drop else []
        swap_in(client, final, config.drop, gone)
    result.documents_total = sum(c.documents for c in result.collections)
    log.info(
        "restore of backup %s done: %d collections, %d documents",
        config.label,
        len(result.collections),
        result.documents_total,
    )
    return result
