"""Copying one partition: raw batches read ahead from the source, ``insert_many(ordered=False)`` of
the documents as read (bytes unchanged, never a replace), a checkpoint after each batch.

* One process per partition: the copy holds the partition's lease (:mod:`backover.lease`); a
  second copy of it exits 2, a restart after kill -9 takes the lease at once.
* The checkpoint (``sync/partitions/<id>.json``) is saved after every batch written, by a thread
  (the copy never waits for S3; a newer state replaces one not sent yet) with ``If-Match`` on the
  last one, so a copy paused past its lease cannot replace its successor's. It holds the last
  ``_id`` written: every document of the range up to it is on the target. A restart resumes
  after it (the range's filter narrowed with ``$gt``), never from the start.
* Duplicate keys: a document whose ``_id`` is on the target already was copied by an earlier run
  of this partition (its checkpoint lagged the writes): counted ``already_copied``. One that
  collides on a unique secondary index with another copied document is not inserted
  (``skipped_duplicates``): it changed after T0 and the replay brings it (docs/architecture.md,
  "Initial sync").
* Memory: ``read_ahead`` raw batches and the batch being written, whatever the collection's size.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, cast

import bson
from botocore.exceptions import BotoCoreError
from bson.raw_bson import RawBSONDocument
from pymongo import MongoClient
from pymongo.collection import Collection
from pymongo.errors import BulkWriteError, ConnectionFailure, OperationFailure, PyMongoError

from .. import extjson, state
from ..bsonvalues import DECODE, RAW, canonical_key, raw_collection
from ..errors import BackoverError, JobFailed, UsageError
from ..lease import Lease, holding
from ..mongo import errors as codes
from ..readahead import ReadAhead
from ..s3objects import Conflict, S3Objects
from ..state import (
    SyncCollection,
    SyncPartition,
    SyncPartitionCheckpoint,
    SyncPartitionState,
    SyncPlan,
    utc_now,
)
from . import ranges
from .config import SyncConfig
from .plan import errmsg
from .progress import Progress
from .scopes import range_filter

log = logging.getLogger("backover.sync")

NETWORK_RETRIES = 3
#: Skipped documents named in the log per partition (the count is always exact).
SKIPPED_SHOWN = 10


@dataclass
class PartitionResult:
    """One partition after this run (the counts are the checkpoint's: every run so far)."""

    partition: str
    ns: str
    state: SyncPartitionState
    documents: int = 0
    bytes_copied: int = 0
    skipped_duplicates: int = 0
    already_copied: int = 0
    copied_now: int = 0  # documents this run inserted
    resumed: bool = False  # this run went on after an earlier one's last _id
    seconds: float = 0.0

    @classmethod
    def of(cls, cp: SyncPartitionCheckpoint, ns: str, **extra: Any) -> PartitionResult:
        return cls(
            partition=cp.partition,
            ns=ns,
            state=cp.state,
            documents=cp.documents,
            bytes_copied=cp.bytes_copied,
            skipped_duplicates=cp.skipped_duplicates,
            already_copied=cp.already_copied,
            **extra,
        )


# -- reading ahead ------------------------------------------------------------------------------
def read_ahead(batches: Iterable[bytes], label: str, depth: int) -> ReadAhead:
    """The partition's batches read ahead on a thread; a refused read (13) is exit 2, another
    driver error exit 1 (a rerun resumes)."""

    def failed(e: PyMongoError) -> BackoverError:
        if isinstance(e, OperationFailure):
            if e.code == codes.UNAUTHORIZED:
                return UsageError(f"the source refused reading {label}: {errmsg(e)} (code {e.code})")
            return JobFailed(f"reading {label} failed: {errmsg(e)} (code {e.code})")
        return JobFailed(f"reading {label} failed: {type(e).__name__}: {e}")

    return ReadAhead(batches, depth, failed, f"sync-read-{label}")


# -- the checkpoint -----------------------------------------------------------------------------
class CheckpointSaver:
    """Writes a partition's checkpoint on a thread, always the newest state offered.

    Each state is serialised when offered (a consistent snapshot: the counts and the last ``_id``
    of the same batch). Writes are conditional on the last ETag (``If-None-Match: *`` for a new
    checkpoint); a refused one (another copy of this partition wrote it) or an S3 failure is raised
    by the next :meth:`offer` or by :meth:`close`."""

    def __init__(self, s3: S3Objects, key: str, etag: str | None) -> None:
        self.s3, self.key, self.etag = s3, key, etag
        self.saves = 0
        self._pending: bytes | None = None
        self._error: Exception | None = None
        self._unconfirmed: list[bytes] = []
        self._closing = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="sync-checkpoint", daemon=True)
        self._thread.start()

    def offer(self, record: SyncPartitionCheckpoint) -> None:
        body = extjson.dumps(record.to_json()).encode()
        with self._cond:
            self._raise_if_failed()
            self._pending = body
            self._cond.notify()

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._pending is None and not self._closing:
                    self._cond.wait()
                body, self._pending = self._pending, None
                if body is None:
                    return
            try:
                self._put(body)
            except (BackoverError, BotoCoreError) as e:  # kept for the copy's thread, which raises it
                with self._cond:
                    self._error = e
                    self._pending = None
                return

    def _put(self, body: bytes) -> None:
        self._unconfirmed.append(body)
        try:
            self.etag = self.s3.put_if(
                self.key, body, etag=self.etag, content_type="application/json", attempted=self._unconfirmed
            )
        except Conflict:
            raise JobFailed(
                f"s3://{self.s3.bucket}/{self.key} was changed by another copy of this partition: "
                "stopping without writing anything more"
            ) from None
        self._unconfirmed.clear()
        self.saves += 1

    def close(self, final: SyncPartitionCheckpoint | None = None) -> None:
        """Write what is pending, stop the thread, then ``final`` (synchronously)."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join()
        self._raise_if_failed()
        if final is not None:
            self._put(extjson.dumps(final.to_json()).encode())


def load_checkpoint(s3: S3Objects, key: str, migration_id: str) -> tuple[SyncPartitionCheckpoint, str] | None:
    """The partition's checkpoint and its ETag, or None; RecordError when it is not one (or another
    migration's)."""
    got = s3.get_versioned(key)
    if got is None:
        return None
    where = f"s3://{s3.bucket}/{key}"
    try:
        doc = s3.parse_json(key, got[0])
    except JobFailed as e:
        raise state.RecordError(str(e)) from None
    cp = SyncPartitionCheckpoint.from_json(doc, where)
    if cp.migration_id != migration_id:
        raise state.RecordError(f"{where} belongs to migration {cp.migration_id!r}, not {migration_id!r}")
    if cp.last_id is not None and not isinstance(cp.last_id, bytes):
        raise state.RecordError(f"{where} has an invalid last_id (not raw BSON)")
    return cp, got[2]


# -- writing --------------------------------------------------------------------------------------
@dataclass
class _Written:
    inserted: int = 0
    already: int = 0
    skipped: int = 0
    nbytes: int = 0  # of the documents inserted or found already there
    skipped_ids: list[Any] | None = None


def _insert(
    coll: Collection[RawBSONDocument], ns: str, docs: list[RawBSONDocument], sizes: list[int], bypass: bool
) -> _Written:
    """Insert ``docs`` unordered; sort the duplicate keys into already copied and skipped."""
    for attempt in range(NETWORK_RETRIES + 1):
        try:
            coll.insert_many(docs, ordered=False, bypass_document_validation=bypass)
            return _Written(inserted=len(docs), nbytes=sum(sizes))
        except BulkWriteError as e:
            return _duplicates(coll, ns, docs, sizes, e.details)
        except ConnectionFailure as e:
            # A retry meets the documents the lost attempt inserted as duplicate _ids: counted once.
            if attempt == NETWORK_RETRIES:
                raise JobFailed(
                    f"inserting into {ns}: the target cannot be reached ({type(e).__name__})"
                ) from None
            log.warning("sync: inserting into %s: %s, retrying", ns, type(e).__name__)
            time.sleep(0.5 * 2**attempt)
        except OperationFailure as e:
            if e.code == codes.UNAUTHORIZED:
                raise UsageError(
                    f"the target refused inserting into {ns}: {errmsg(e)} (code {e.code})"
                ) from None
            raise JobFailed(f"inserting into {ns} failed: {errmsg(e)} (code {e.code})") from None
        except PyMongoError as e:
            raise JobFailed(f"inserting into {ns} failed: {type(e).__name__}: {e}") from None
    raise AssertionError("unreachable")


def _duplicates(
    coll: Collection[RawBSONDocument], ns: str, docs: list[RawBSONDocument], sizes: list[int], details: Any
) -> _Written:
    errors_ = list(details.get("writeErrors") or [])
    if details.get("writeConcernErrors"):
        first = details["writeConcernErrors"][0]
        raise JobFailed(f"inserting into {ns}: write concern error: {first.get('errmsg')}")
    other = [e for e in errors_ if e.get("code") != codes.DUPLICATE_KEY]
    if other:
        first = other[0]
        shown = bson.decode(ranges.id_document(docs[int(first["index"])].raw), DECODE)["_id"]
        raise JobFailed(
            f"inserting into {ns} failed for _id {shown!r}: {first.get('errmsg')} (code {first.get('code')})"
        )
    failed = sorted(int(e["index"]) for e in errors_)
    id_docs = [ranges.id_document(docs[i].raw) for i in failed]
    present = {
        canonical_key(bson.decode(ranges.id_document(d.raw), DECODE)["_id"])
        for d in coll.find(ranges.id_in(id_docs), {"_id": 1})
    }
    written = _Written(skipped_ids=[])
    failed_set = set(failed)
    for i, size in enumerate(sizes):
        if i not in failed_set:
            written.inserted += 1
            written.nbytes += size
    for i, id_doc in zip(failed, id_docs, strict=True):
        value = bson.decode(id_doc, DECODE)["_id"]
        if canonical_key(value) in present:
            written.already += 1
            written.nbytes += sizes[i]
        else:
            written.skipped += 1
            assert written.skipped_ids is not None
            written.skipped_ids.append(value)
    return written


# -- one partition ------------------------------------------------------------------------------------
def copy_partition(
    config: SyncConfig,
    s3: S3Objects,
    source: MongoClient[dict[str, Any]],
    target: MongoClient[dict[str, Any]],
    plan: SyncPlan,
    partition_id: str,
    progress: Progress,
    on_batch: Callable[[SyncPartitionCheckpoint], None] | None = None,
) -> PartitionResult:
    """Copy partition ``partition_id`` of ``plan`` (resuming after its checkpoint's last ``_id``);
    ``on_batch`` is called after each batch's checkpoint is offered (a test's crash point)."""
    found = plan.find(partition_id)
    if found is None:
        raise UsageError(
            f"no partition {partition_id!r} in s3://{s3.bucket}/{config.layout.sync_plan} "
            f"({len(plan.partition_ids())} partitions: `backover sync --plan` lists them)"
        )
    coll_info, part = found
    key = config.layout.sync_partition(partition_id)
    migration_id = config.layout.migration_id
    got = load_checkpoint(s3, key, migration_id)
    if got is not None and got[0].state is SyncPartitionState.COMPLETED:
        progress.already(coll_info.ns, got[0].documents)
        return PartitionResult.of(got[0], coll_info.ns)
    lease = Lease(
        s3,
        config.layout.sync_partition_lease(partition_id),
        role="sync",
        migration_id=migration_id,
        ttl_seconds=config.lease_ttl_seconds,
        renew_seconds=config.lease_renew_seconds,
    )
    with holding(lease):
        return _copy(config, s3, source, target, coll_info, part, key, lease, progress, on_batch)


def _copy(
    config: SyncConfig,
    s3: S3Objects,
    source: MongoClient[dict[str, Any]],
    target: MongoClient[dict[str, Any]],
    coll_info: SyncCollection,
    part: SyncPartition,
    key: str,
    lease: Lease,
    progress: Progress,
    on_batch: Callable[[SyncPartitionCheckpoint], None] | None,
) -> PartitionResult:
    started = time.monotonic()
    ns = coll_info.ns
    got = load_checkpoint(s3, key, config.layout.migration_id)  # again, now that this run holds the lease
    if got is not None and got[0].state is SyncPartitionState.COMPLETED:
        progress.already(ns, got[0].documents)
        return PartitionResult.of(got[0], ns)
    if got is not None:
        cp, etag = got
        cp.runs += 1
    else:
        cp, etag = SyncPartitionCheckpoint(config.layout.migration_id, part.id), None
    resumed = cp.last_id is not None
    progress.already(ns, cp.documents)
    progress.start(ns)
    if resumed:
        log.info(
            "sync: partition %s of %s: resuming after _id %r (%d documents copied before, run %d)",
            part.id,
            ns,
            bson.decode(cp.last_id, DECODE)["_id"],
            cp.documents,
            cp.runs,
        )
    else:
        log.info(
            "sync: partition %s of %s: copying %s (about %d documents)",
            part.id,
            ns,
            part.shown,
            part.estimated_documents,
        )
    cp.state, cp.updated_at = SyncPartitionState.RUNNING, utc_now()
    saver = CheckpointSaver(s3, key, etag)
    saver.offer(cp)
    copied_now = skipped_shown = 0
    bypass = "validator" in coll_info.options
    target_coll = raw_collection(target, coll_info.db, coll_info.coll)
    filter = range_filter(part, cp.last_id)
    batches = raw_collection(source, coll_info.db, coll_info.coll).find_raw_batches(
        filter, sort=[("_id", 1)], batch_size=config.batch_size
    )
    # pymongo types a raw batch cursor as yielding documents; it yields each batch's bytes.
    reader = read_ahead(cast("Iterable[bytes]", batches), f"{ns} on the source", config.read_ahead)
    docs: list[RawBSONDocument] = []
    sizes: list[int] = []
    size = 0

    def write() -> None:
        nonlocal copied_now, skipped_shown, size
        lease.check()
        done = _insert(target_coll, ns, docs, sizes, bypass)
        cp.documents += done.inserted + done.already
        cp.already_copied += done.already
        cp.skipped_duplicates += done.skipped
        cp.bytes_copied += done.nbytes
        cp.last_id = ranges.id_document(docs[-1].raw)
        cp.updated_at = utc_now()
        copied_now += done.inserted
        for value in done.skipped_ids or []:
            if skipped_shown < SKIPPED_SHOWN:
                skipped_shown += 1
                log.info(
                    "sync: %s: _id %r not inserted: another copied document holds its unique key "
                    "(it changed after T0: the replay brings it)",
                    ns,
                    value,
                )
        saver.offer(cp)
        progress.copied(ns, done.inserted + done.already, done.nbytes)
        docs.clear()
        sizes.clear()
        size = 0
        if on_batch is not None:
            on_batch(cp)

    try:
        for batch in reader:
            for doc in bson.decode_all(batch, RAW):
                n = len(doc.raw)
                if docs and (len(docs) >= config.batch_size or size + n > config.batch_bytes):
                    write()
                docs.append(doc)
                sizes.append(n)
                size += n
        if docs:
            write()
    except BaseException:
        reader.close()
        try:
            saver.close()  # the last state offered is a consistent one: keep it
        except BackoverError as e:
            log.error("sync: partition %s: the last checkpoint was not saved: %s", part.id, e)
        raise
    cp.state = SyncPartitionState.COMPLETED
    cp.completed_at = cp.updated_at = utc_now()
    saver.close(final=cp)
    seconds = time.monotonic() - started
    log.info(
        "sync: partition %s of %s completed: %d documents (%d this run), %.1f MiB, %d skipped "
        "duplicate(s), %d already copied, %.1f s",
        part.id,
        ns,
        cp.documents,
        copied_now,
        cp.bytes_copied / (1024 * 1024),
        cp.skipped_duplicates,
        cp.already_copied,
        seconds,
    )
    return PartitionResult.of(cp, ns, copied_now=copied_now, resumed=resumed, seconds=seconds)
