"""``backover backup --restore``: bring a backup in S3 back into a database, byte for byte.

The counterpart of :mod:`.dump` (``mongorestore --gzip --dir <downloaded backups/{label}>`` does
the same from a local copy). Per collection, in parallel:

1. ``{coll}.metadata.json.gz`` first: a data file without it is an incomplete dump and is refused;
2. the target collection is dropped with ``drop``; otherwise it must be absent or empty (nothing
   is overwritten silently); it is created with the dumped options;
3. the gzip stream is read from S3 in chunks and split into raw BSON documents, inserted in
   batches as :class:`~bson.raw_bson.RawBSONDocument` (never decoded or re-encoded, so every
   value keeps its exact bytes and type);
4. count and SHA-256 are checked against the metadata's ``backover`` field, then the indexes
   (all but ``_id_``) are built, as mongorestore does, after the data.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import zlib
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from bson.raw_bson import RawBSONDocument
from pymongo import MongoClient
from pymongo.errors import PyMongoError

from .. import extjson
from ..connections import DatabaseUri
from ..errors import JobFailed, UsageError
from ..layout import MigrationLayout
from ..lifecycle.results import ResultRecord
from ..lifecycle.source import connect
from ..s3objects import S3Objects
from .bsonstream import BsonSplitter
from .dump import LABELS
from .multipart import GZIP_WBITS
from .names import unescape
from .parallel import run_parallel

log = logging.getLogger(__name__)

DATA_SUFFIX = ".bson.gz"
METADATA_SUFFIX = ".metadata.json.gz"
CHUNK = 1024 * 1024


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

    def __post_init__(self) -> None:
        if self.label not in LABELS:
            raise UsageError(f"label must be one of {', '.join(LABELS)}, not {self.label!r}")
        if self.parallel < 1:
            raise UsageError("--parallel must be at least 1")


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
    documents_total: int = 0


@dataclass(frozen=True)
class BackupFiles:
    """The two objects of one collection's backup."""

    db: str
    collection: str
    data_key: str
    metadata_key: str


def find_backups(s3: S3Objects, config: LoadConfig) -> list[BackupFiles]:
    """Every collection of the backup (of ``config.databases`` if given); UsageError when none."""
    prefix = config.layout.backup_prefix(config.label)
    keys = set(s3.list_keys(prefix))
    found = []
    for key in sorted(keys):
        relative = key[len(prefix):]
        db, sep, file_name = relative.partition("/")
        if not sep or "/" in file_name or not file_name.endswith(DATA_SUFFIX):
            continue
        if config.databases and db not in config.databases:
            continue
        escaped = file_name[: -len(DATA_SUFFIX)]
        metadata_key = f"{prefix}{db}/{escaped}{METADATA_SUFFIX}"
        if metadata_key not in keys:
            raise JobFailed(f"the backup of {db}.{unescape(escaped)} is incomplete: {metadata_key} is missing")
        found.append(BackupFiles(db, unescape(escaped), key, metadata_key))
    if not found:
        raise UsageError(f"no backup under s3://{s3.bucket}/{prefix}"
                         + (f" for {', '.join(config.databases)}" if config.databases else ""))
    return found


def _metadata(s3: S3Objects, key: str) -> dict[str, Any]:
    body = s3.get_bytes(key)
    if body is None:
        raise JobFailed(f"{key} disappeared during the restore")
    try:
        return extjson.loads(gzip.decompress(body))
    except (OSError, ValueError) as e:
        raise JobFailed(f"{key} is corrupt: {e}") from None


def _prepare(client: MongoClient, files: BackupFiles, metadata: dict[str, Any], drop: bool) -> None:
    db = client[files.db]
    namespace = f"{files.db}.{files.collection}"
    exists = files.collection in db.list_collection_names(filter={"name": files.collection})
    if exists and drop:
        db.drop_collection(files.collection)
        log.info("dropped %s before restoring it", namespace)
        exists = False
    if exists:
        if db[files.collection].find_one({}, projection={"_id": 1}) is not None:
            raise JobFailed(f"{namespace} is not empty on the target; pass --drop to replace it")
        return
    db.command({"create": files.collection, **(metadata.get("options") or {})})


def _stream_documents(s3: S3Objects, key: str) -> Any:
    try:
        return s3.client.get_object(Bucket=s3.bucket, Key=key)["Body"]
    except (ClientError, BotoCoreError) as e:
        raise JobFailed(f"cannot read s3://{s3.bucket}/{key}: {e}") from None


def load_collection(client: MongoClient, s3: S3Objects, config: LoadConfig, files: BackupFiles) -> LoadedCollection:
    """Restore one collection; checks count and SHA-256 against the metadata."""
    namespace = f"{files.db}.{files.collection}"
    metadata = _metadata(s3, files.metadata_key)
    expected = metadata.get("backover") or {}
    collection = client[files.db][files.collection]
    splitter = BsonSplitter(files.data_key)
    inflate = zlib.decompressobj(GZIP_WBITS)
    digest = hashlib.sha256()
    batch: list[RawBSONDocument] = []
    batch_bytes = documents = 0

    def flush() -> None:
        nonlocal batch, batch_bytes
        if batch:
            collection.insert_many(batch, ordered=True, bypass_document_validation=True)
            batch, batch_bytes = [], 0

    try:
        _prepare(client, files, metadata, config.drop)
        body = _stream_documents(s3, files.data_key)
        for chunk in body.iter_chunks(CHUNK):
            data = inflate.decompress(chunk)
            digest.update(data)
            for raw in splitter.feed(data):
                batch.append(RawBSONDocument(raw))
                batch_bytes += len(raw)
                documents += 1
                if len(batch) >= config.batch_documents or batch_bytes >= config.batch_bytes:
                    flush()
        tail = inflate.flush()
        digest.update(tail)
        for raw in splitter.feed(tail):
            batch.append(RawBSONDocument(raw))
            documents += 1
        flush()
        splitter.finish()
        if not inflate.eof:
            raise JobFailed(f"{files.data_key} is truncated: the gzip stream does not end")
        if "documents" in expected and documents != expected["documents"]:
            raise JobFailed(f"restore of {namespace}: {documents} documents read, the backup says "
                            f"{expected['documents']}")
        if "sha256" in expected and digest.hexdigest() != expected["sha256"]:
            raise JobFailed(f"restore of {namespace}: the data does not match the backup's SHA-256")
        indexes = [{k: v for k, v in ix.items() if k != "ns"} for ix in metadata.get("indexes", [])
                   if ix.get("name") != "_id_"]
        if indexes:
            client[files.db].command("createIndexes", files.collection, indexes=indexes)
    except PyMongoError as e:
        raise JobFailed(f"restore of {namespace} failed: {type(e).__name__}: {e}") from None
    except zlib.error as e:
        raise JobFailed(f"{files.data_key} is corrupt: {e}") from None
    log.info("restored %s from backup %s: %d documents, %d indexes", namespace, config.label, documents,
             len(indexes))
    return LoadedCollection(namespace, documents, len(indexes))


def load(config: LoadConfig, s3: S3Objects | None = None) -> LoadResult:
    """Restore the ``config.label`` backup into ``config.target``."""
    s3 = s3 or S3Objects(config.layout.bucket)
    s3.check_bucket()
    prefix = config.layout.backup_prefix(config.label)
    backups = find_backups(s3, config)
    log.info("restore of backup %s: %d collections from s3://%s/%s into %s", config.label, len(backups),
             s3.bucket, prefix, config.target)
    with connect(config.target) as client:
        tasks = [lambda files=files: load_collection(client, s3, config, files) for files in backups]
        collections = run_parallel(tasks, config.parallel)
    result = LoadResult(config.label, f"s3://{s3.bucket}/{prefix}", collections,
                        sum(c.documents for c in collections))
    log.info("restore of backup %s done: %d collections, %d documents", config.label, len(collections),
             result.documents_total)
    return result
