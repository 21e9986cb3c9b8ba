"""``backover backup --restore`` of a DocumentDB backup: the dump made consistent at F by the capture.

The dump was read after B (``backups/{label}/_backup.json``), so every write at or before B is in
it, and each collection holds its state at some moment after B. Replaying every captured change
with cluster time in (B, F] on top brings every document to its state at F, as
``mongorestore --oplogReplay`` does: a replayed insert, replace or update (with its
``updateLookup`` image) is a replace-with-upsert of the whole document and a delete removes it,
so a change the dump already holds is written again to the same result; a document deleted before
the dump read its collection comes back only if a later change inserts it again.

* **Which segments** (:func:`prepare`, before anything is written): those after the manifest's
  ``capture_seq`` (the replicator's ``last_seq`` read before B: earlier segments hold only changes
  up to B), up to the last one captured. Their sealed copies under ``backups/{label}/.changes/``
  (``backover backup --seal``) when the backup is sealed and the stop is at or before its F, else
  the capture's own ``changes/``, which must have reached the stop. Every one must be there
  (UsageError otherwise, nothing written). They are read and verified by
  :class:`~backover.restore.reader.SegmentReader`, planned by :func:`~backover.restore.planner.plan`
  and written by :class:`~backover.restore.applier.Applier`, as the migration's restore does.
* **The cut** (:func:`cut`): events at or before B and after the stop (F, or ``--until``) are
  never applied (the last segments may hold events after F); events of databases outside the
  backup are left out. A rename whose cluster time is inside the dump (B, end of dump] stops the
  restore, as ``mongodump --oplog`` refuses one: the dump may have read the collection under
  neither name.
* **Into the staging collections** (:class:`StagingTarget`): each namespace is written under its
  staging name (:func:`.names.staging`), so the target's collections are untouched until the
  swap-in, and any failure leaves them as they were. DDL is mapped the same way (drop and rename
  of staging collections; dropDatabase drops the database's staging collections only). The
  unique indexes are built after the replay (:mod:`.load`): a dump read while the application
  wrote may hold the same unique key in two documents (one read before a swap, one after); at F,
  as on the source, it cannot. The indexes follow their collection through a replayed rename.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from bson.raw_bson import RawBSONDocument
from bson.timestamp import Timestamp
from pymongo import MongoClient
from pymongo.errors import PyMongoError

from .. import state
from ..clustertime import format as format_time
from ..errors import JobFailed, UsageError
from ..layout import MigrationLayout
from ..lifecycle.results import ResultRecord
from ..namespaces import Namespace
from ..replication import checkpoint as replication_checkpoint
from ..restore.applier import Applier
from ..restore.displaced import Displaced
from ..restore.events import ChangeEvent
from ..restore.planner import SegmentEvents, Write, plan
from ..restore.reader import SegmentReader, SegmentRef, list_segments
from ..restore.target import MongoTarget, WriteFailure
from ..s3objects import S3Objects
from ..state import BackupManifest, FreezeRecord
from .names import STAGING_PREFIX, staging

log = logging.getLogger(__name__)

REPLAYED_LABEL = "documentdb"  # the capture is DocumentDB's changes: only its backup replays them


@dataclass(frozen=True)
class ReplayPlan:
    """What to replay on top of the dump: the changes in (``b``, ``until``] of ``databases``."""

    b: Timestamp
    until: Timestamp
    dump_end: Timestamp
    refs: list[SegmentRef]
    databases: frozenset[str]
    source: str  # where the segments are read, for the log


@dataclass
class ReplayResult(ResultRecord):
    """What the replay did (in the restore's summary)."""

    consistent_at: Timestamp
    b: Timestamp
    segments_from: str
    segments_read: int = 0
    events_replayed: int = 0
    events_after_stop: int = 0  # in the segments read, after F (or --until): never applied
    events_other_databases: int = 0
    writes: int = 0
    ddl: int = 0
    per_namespace: dict[str, dict[str, int]] = field(default_factory=dict)


def prepare(
    s3: S3Objects,
    layout: MigrationLayout,
    label: str,
    until: Timestamp | None,
    databases: Iterable[str],
) -> ReplayPlan | None:
    """The replay of the backup ``label`` (read-only, before any write), or None with one log line
    saying why the dump is restored as it is; UsageError when it should replay but cannot."""
    manifest = state.read(s3, layout.backup_manifest(label), BackupManifest)
    if label != REPLAYED_LABEL:
        if until is not None:
            raise UsageError(
                f"--until replays DocumentDB's captured changes: only for --label {REPLAYED_LABEL}"
            )
        log.info("backup %s: restored as it was dumped (the rollback point; no changes are replayed)", label)
        return None
    why = _no_replay(manifest, until, layout.backup_manifest(label))
    if why is not None:
        log.info("backup %s: the dump is restored as it is, not made consistent at F: %s", label, why)
        return None
    assert manifest is not None and manifest.capture_seq is not None
    if manifest.migration_id != layout.migration_id:
        raise UsageError(
            f"{layout.backup_manifest(label)} belongs to migration {manifest.migration_id!r}, "
            f"not {layout.migration_id!r}"
        )
    freeze = state.read(s3, layout.freeze_state, FreezeRecord)
    stop = until or manifest.f or (freeze.f if freeze is not None else None)
    if stop is None:
        log.info(
            "backup %s: the dump is restored as it is, not made consistent at F: the migration is not "
            "frozen (no F in state/freeze.json) and no --until was given",
            label,
        )
        return None
    if stop < manifest.b:
        raise UsageError(
            f"--until {format_time(stop)} is before the backup's B ({format_time(manifest.b)}): the dump "
            "already holds later changes"
        )
    wanted = set(databases)
    scope = frozenset(d for d in manifest.databases if not wanted or d in wanted)
    if manifest.f is not None and manifest.sealed_through_seq is not None and stop <= manifest.f:
        refs = sealed_segments(s3, layout, label, manifest.capture_seq + 1, manifest.sealed_through_seq)
        source = f"the sealed copies under s3://{s3.bucket}/{layout.backup_segments_prefix(label)}"
    else:
        refs = captured_segments(s3, layout, manifest.capture_seq + 1, stop)
        source = f"the capture's segments under s3://{s3.bucket}/{layout.changes_prefix}"
    log.info(
        "backup %s: the dump (B = %s) is made consistent at %s%s by segments %s from %s",
        label,
        format_time(manifest.b),
        format_time(stop),
        "" if until is None else " (--until)",
        f"{refs[0].seq}..{refs[-1].seq}" if refs else "(none: nothing was captured after B)",
        source,
    )
    return ReplayPlan(manifest.b, stop, manifest.dump_end, refs, scope, source)


def _no_replay(manifest: BackupManifest | None, until: Timestamp | None, key: str) -> str | None:
    if manifest is None:
        if until is not None:
            raise UsageError(f"--until needs a backup that recorded B: there is no {key}")
        return f"there is no {key} (a backup taken before Back Over recorded B, or interrupted): its B is unknown"
    if manifest.capture_seq is None:
        if until is not None:
            raise UsageError("--until: no capture of this migration covers the backup's B")
        return "no capture of this migration covered its B (state/start.json had no T0 at or before it)"
    return None


def captured_segments(
    s3: S3Objects, layout: MigrationLayout, first: int, stop: Timestamp
) -> list[SegmentRef]:
    """Segments ``first..last_seq`` of ``changes/``, all there; the capture must have reached ``stop``."""
    checkpoint = replication_checkpoint.load(s3, layout)
    if checkpoint is None:
        raise UsageError(
            f"the capture's segments are gone (no {layout.replicator_checkpoint}: cleaned?) and the backup "
            "is not sealed up to the stop: it cannot be made consistent (nothing written)"
        )
    position = checkpoint.last_cluster_time
    if position is None or position < stop:
        raise UsageError(
            f"the capture has reached only {format_time(position) if position else 'nothing'}, not "
            f"{format_time(stop)}: wait for it (or the drain), or pass an earlier --until (nothing written)"
        )
    try:
        return list_segments(s3, layout, first, checkpoint.last_seq)
    except JobFailed as e:
        raise UsageError(
            f"the segments covering the replay are not all there: {e} (nothing written)"
        ) from None


def sealed_segments(
    s3: S3Objects, layout: MigrationLayout, label: str, first: int, last: int
) -> list[SegmentRef]:
    """The sealed copies ``first..last``, each there exactly once; UsageError otherwise."""
    found: dict[int, list[str]] = {}
    compressions: dict[str, str] = {}
    for key in s3.list_keys(layout.backup_segments_prefix(label)):
        parsed = layout.parse_backup_segment(label, key)
        if parsed is not None and first <= parsed[0] <= last:
            found.setdefault(parsed[0], []).append(key)
            compressions[key] = parsed[1]
    refs = []
    for seq in range(first, last + 1):
        keys = found.get(seq, [])
        if len(keys) != 1:
            what = "is missing" if not keys else f"exists more than once ({', '.join(keys)})"
            raise UsageError(
                f"the sealed copy of segment {seq} {what} under s3://{s3.bucket}/"
                f"{layout.backup_segments_prefix(label)}: the backup cannot be made consistent (nothing written)"
            )
        refs.append(SegmentRef(seq, keys[0], compressions[keys[0]], layout.migration_id))
    return refs


def cut(
    segments: Iterable[SegmentEvents], replay: ReplayPlan, result: ReplayResult
) -> Iterator[SegmentEvents]:
    """Each segment with only its events in (B, stop] of the backup's databases; stops reading after
    the segment that reaches the stop."""
    for segment in segments:
        result.segments_read += 1
        kept = []
        for raw in segment.events:
            event = RawBSONDocument(raw)
            when = event.get("clusterTime")
            if not isinstance(when, Timestamp):
                raise JobFailed(f"{segment.key} is corrupt: an event without a clusterTime")
            if when <= replay.b:
                continue
            if when > replay.until:
                result.events_after_stop += 1
                continue
            ns = event.get("ns")
            db, coll = (ns.get("db"), ns.get("coll")) if isinstance(ns, RawBSONDocument) else (None, None)
            to = event.get("to")
            to_db = to.get("db") if isinstance(to, RawBSONDocument) else None
            if db is not None and db not in replay.databases:
                if to_db in replay.databases:
                    raise JobFailed(
                        f"{segment.key}: {db}.{coll} was renamed into {to_db}, a database of the "
                        "backup, from outside it: its documents are not in the backup; back up both databases"
                    )
                result.events_other_databases += 1
                continue
            if event.get("operationType") == "rename" and when <= replay.dump_end:
                raise JobFailed(
                    f"{segment.key}: {db}.{coll} was renamed at {format_time(when)}, while the dump "
                    "ran: the dump may hold its documents under neither name (mongodump --oplog refuses this "
                    "too); take the backup again"
                )
            kept.append(raw)
        result.events_replayed += len(kept)
        yield SegmentEvents(segment.seq, segment.key, kept, segment.last_cluster_time)
        if segment.last_cluster_time is not None and segment.last_cluster_time >= replay.until:
            return


class StagingTarget:
    """The replay's target: every namespace is written under its staging name, DDL included.

    ``indexes`` (namespace -> the dumped index specs to build after the replay) follows the
    collections through drops and renames."""

    def __init__(
        self,
        client: MongoClient[Any],
        databases: frozenset[str],
        indexes: dict[Namespace, list[dict[str, Any]]],
    ) -> None:
        self.inner = MongoTarget(client)
        self.client = client
        self.databases = databases
        self.indexes = indexes

    @staticmethod
    def staged(ns: Namespace) -> Namespace:
        return Namespace(ns.db, staging(ns.coll))

    @property
    def commands(self) -> int:
        return self.inner.commands

    def write(self, ns: Namespace, writes: list[Write]) -> list[WriteFailure]:
        return self.inner.write(self.staged(ns), writes)

    def find_holder(self, ns: Namespace, key_value: dict[str, Any], document_key: bytes) -> bytes | None:
        return self.inner.find_holder(self.staged(ns), key_value, document_key)

    def remove(self, ns: Namespace, document_key: bytes) -> None:
        self.inner.remove(self.staged(ns), document_key)

    def apply_ddl(self, event: ChangeEvent) -> None:
        if event.op == "dropDatabase":
            for name in self._staging_names(event.db):
                self.inner.apply_ddl(replace(event, op="drop", coll=name))
            for ns in [ns for ns in self.indexes if ns.db == event.db]:
                del self.indexes[ns]
            return
        assert event.coll is not None
        source = Namespace(event.db, event.coll)
        if event.op == "rename" and event.to is not None and event.to.db in self.databases:
            self.inner.apply_ddl(replace(event, coll=staging(event.coll), to=self.staged(event.to)))
            moved = self.indexes.pop(source, None)
            self.indexes.pop(event.to, None)
            if moved is not None:
                self.indexes[event.to] = moved
            return
        # a drop, or a rename out of the backup's databases: the collection leaves the backup
        self.inner.apply_ddl(replace(event, op="drop", coll=staging(event.coll), to=None))
        self.indexes.pop(source, None)

    def _staging_names(self, db: str) -> list[str]:
        try:
            return [n for n in self.client[db].list_collection_names() if n.startswith(STAGING_PREFIX)]
        except PyMongoError as e:
            raise JobFailed(
                f"dropDatabase of {db}: cannot list its collections: {type(e).__name__}: {e}"
            ) from None


def apply(
    s3: S3Objects,
    client: MongoClient[Any],
    replay: ReplayPlan,
    indexes: dict[Namespace, list[dict[str, Any]]],
    *,
    workers: int = 4,
    window: int = 10_000,
) -> ReplayResult:
    """Replay ``replay`` into the staging collections (``indexes`` follows the replayed DDL)."""
    result = ReplayResult(replay.until, replay.b, replay.source)
    target = StagingTarget(client, replay.databases, indexes)
    applier = Applier(target, workers=workers, displaced=Displaced())
    per_ns: dict[str, Counter[str]] = {}
    try:
        for step in plan(cut(SegmentReader(s3, replay.refs), replay, result), window):
            applier.apply(step)
            for done in step.done:
                for ns, counts in done.counts.items():
                    per_ns.setdefault(ns, Counter()).update(counts)
        if applier.displaced:
            applier.write_back_displaced()
    finally:
        applier.close()
    result.writes = applier.stats.writes
    result.ddl = applier.stats.barriers
    result.per_namespace = {ns: dict(counts) for ns, counts in sorted(per_ns.items())}
    log.info(
        "replayed %d change(s) of (%s, %s] from %d segment(s): %d writes, %d DDL; %d later change(s) "
        "left out, %d of other databases",
        result.events_replayed,
        format_time(replay.b),
        format_time(replay.until),
        result.segments_read,
        result.writes,
        result.ddl,
        result.events_after_stop,
        result.events_other_databases,
    )
    return result
