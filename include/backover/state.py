"""The JSON state objects a migration keeps in S3, as typed, versioned records.

Writers and readers (replicator, restore, Lambdas, sensors, clean, status) all go through these,
so a field is named once and read and written in one place (:meth:`Record.to_json`,
:meth:`Record.from_json`). Values that are BSON (cluster times, resume tokens) are stored as
canonical Extended JSON by :mod:`backover.s3objects`.

Every record is written with ``format_version`` (:data:`FORMAT_VERSION`); a file without one is
version 1 (the files written before the field existed, which have the same shape). A file of a
newer version than this code knows, or one that is not the record it should be (not an object, a
required field missing, a field of the wrong type, an unknown status), is refused with one line
naming its key (:class:`RecordError`, exit 1): a damaged state file is never guessed at.

Status values are :class:`enum.StrEnum` members, so the JSON keeps the same strings; their helpers
(``is_terminal()``, ``capture_over()``) are the one place each rule about a status is written.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, ClassVar, Protocol, Self, TypeVar

from bson.timestamp import Timestamp

from . import extjson
from .errors import JobFailed
from .s3objects import S3Objects

#: The format version of every record this code writes (a file without ``format_version``: 1).
FORMAT_VERSION = 1


def utc_now() -> datetime:
    return datetime.now(UTC)


class RecordError(JobFailed):
    """A state file that is not the record it should be; ``str(e)`` is one line naming its key."""


# -- statuses ---------------------------------------------------------------------------------------
class ReplicatorState(enum.StrEnum):
    """``changes/_checkpoint.json`` ``state``."""

    RUNNING = "running"
    DRAINING = "draining"
    DRAINED = "drained"
    FAILED = "failed"
    STOPPED = "stopped"

    def is_terminal(self) -> bool:
        """The replicator that wrote it has ended (a failed one may be run again)."""
        return self in (ReplicatorState.DRAINED, ReplicatorState.FAILED, ReplicatorState.STOPPED)

    def capture_over(self) -> bool:
        """No segment is written any more: drained past F, or stopped by an abort or a signal."""
        return self in (ReplicatorState.DRAINED, ReplicatorState.STOPPED)


class RestoreState(enum.StrEnum):
    """``restore/_checkpoint.json`` ``state``."""

    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    STOPPED = "stopped"  # a follow restore ended by a signal or an abort before the drain

    def is_terminal(self) -> bool:
        return self in (RestoreState.COMPLETED, RestoreState.FAILED)


class DdlState(enum.StrEnum):
    """``restore/_ddl.json`` ``state``: the DDL is about to be applied, or was applied."""

    STARTED = "started"
    APPLIED = "applied"


class ReadOnlyProof(enum.StrEnum):
    """How the freeze proved the app user read-only (``state/freeze.json`` ``read_only_proof``)."""

    WRITE_REFUSED = "write-refused"  # a write as the app user was refused with code 13
    ROLES_ONLY = "roles-only"  # no app secret: the roles the server reports hold no write role


class VerifyLiveState(enum.StrEnum):
    """``reports/verify-live.json`` ``state``: the pre-freeze verification pass."""

    RUNNING = "running"
    PASSED = "passed"  # every document equal, or left to the freeze-time check by the proof
    FAILED = "failed"  # a proven difference, keys that never settled, or a write by someone else


class SyncPartitionState(enum.StrEnum):
    """``sync/partitions/<id>.json`` ``state``: one partition of the initial copy."""

    RUNNING = "running"  # being copied, or stopped part-way (a rerun resumes after ``last_id``)
    COMPLETED = "completed"  # every document of the range was read and written (or skipped)


# -- the record machinery -------------------------------------------------------------------------
class JsonRecord(Protocol):
    """What :func:`read` needs of a record type: a checked ``from_json``."""

    @classmethod
    def from_json(cls, doc: Any, where: str) -> Self: ...


R = TypeVar("R", bound=JsonRecord)


class Record:
    """Mixin of the dataclass records: one ``to_json``/``from_json`` for all, with a format version.

    ``from_json`` checks each field against its type hint: ``int`` is a count (a non-negative
    integer, not a bool), ``str``/``bool``/``float``/``datetime``/``Timestamp`` their type, a
    :class:`enum.StrEnum` one of its values, ``list[X]``/``dict[str, X]`` each item, a nested
    record its own fields, ``X | None`` also null, ``Any`` anything. Fields without a default are
    required; unknown fields are ignored (a newer writer of the same version may add some)."""

    #: What the record is, for messages ("a restore checkpoint").
    WHAT: ClassVar[str] = "record"
    #: Fields not written while they are None (absent = not recorded yet).
    OMIT_NONE: ClassVar[frozenset[str]] = frozenset()

    def __post_init__(self) -> None:
        # Statuses given as plain strings (``state="drained"``) become their enum member.
        for f in fields(self):  # type: ignore[arg-type]
            kind = _hints(type(self)).get(f.name)
            enum_type = _enum_of(kind)
            value = getattr(self, f.name)
            if enum_type is not None and isinstance(value, str) and not isinstance(value, enum_type):
                setattr(self, f.name, enum_type(value))

    def to_json(self) -> dict[str, Any]:
        """The document to store (``format_version`` first)."""
        return {"format_version": FORMAT_VERSION, **self.fields_json()}

    def fields_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {}
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if value is None and f.name in self.OMIT_NONE:
                continue
            doc[f.name] = _plain(value)
        return doc

    @classmethod
    def from_json(cls, doc: Any, where: str) -> Self:
        """The record stored at ``where`` (``s3://bucket/key``); :class:`RecordError` when ``doc``
        is not one, or is of a format version this code does not know."""
        check_version(doc, where, cls.WHAT)
        return cls._from_fields(doc, where, "")

    @classmethod
    def _from_fields(cls, doc: dict[str, Any], where: str, path: str) -> Self:
        hints = _hints(cls)
        values: dict[str, Any] = {}
        for f in fields(cls):  # type: ignore[arg-type]
            if f.name not in doc:
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                    raise RecordError(f"{where} is not {cls.WHAT} (no {path}{f.name})")
                continue
            values[f.name] = checked(doc[f.name], hints[f.name], where, path + f.name)
        return cls(**values)

    # The names of before issue 11, kept for callers that still use them.
    def to_doc(self) -> dict[str, Any]:
        return self.to_json()

    @classmethod
    def from_doc(cls, doc: Any, where: str = "the state file") -> Self:
        return cls.from_json(doc, where)


def read(s3: S3Objects, key: str, cls: type[R]) -> R | None:
    """The record at ``key``, or None when there is none; RecordError naming ``s3://bucket/key``
    when it is not JSON or not a ``cls``."""
    data = s3.get_bytes(key)
    if data is None:
        return None
    try:
        doc = s3.parse_json(key, data)
    except JobFailed as e:  # not JSON at all: as damaged as a record of the wrong shape
        raise RecordError(str(e)) from None
    return cls.from_json(doc, f"s3://{s3.bucket}/{key}")


def write(s3: S3Objects, key: str, record: Record) -> None:
    s3.put_json(key, record.to_json())


def check_version(doc: Any, where: str, what: str) -> None:
    """RecordError unless ``doc`` is a JSON object of a format version this code reads."""
    if not isinstance(doc, dict):
        raise RecordError(f"{where} is not {what} (not a JSON object)")
    version = doc.get("format_version", 1)
    if not extjson.is_count(version) or version < 1:
        raise RecordError(f"{where} has an invalid format_version {_shown(version)}")
    if version > FORMAT_VERSION:
        raise RecordError(
            f"{where} is {what} of format version {version}; this Back Over reads format "
            f"versions up to {FORMAT_VERSION}: upgrade Back Over to read it"
        )


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:60] + "..."


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _enum_of(kind: Any) -> type[enum.StrEnum] | None:
    for option in typing.get_args(kind) if _is_union(kind) else (kind,):
        if isinstance(option, type) and issubclass(option, enum.StrEnum):
            return option
    return None


def _is_union(kind: Any) -> bool:
    return typing.get_origin(kind) in (typing.Union, types.UnionType)


def checked(value: Any, kind: Any, where: str, name: str) -> Any:
    """``value`` as a ``kind`` (enum members, nested records), or RecordError naming the field."""
    if kind is Any:
        return value
    if _is_union(kind):
        options = typing.get_args(kind)
        if value is None and type(None) in options:
            return None
        last: RecordError | None = None
        for option in options:
            if option is type(None):
                continue
            try:
                return checked(value, option, where, name)
            except RecordError as e:
                last = e
        assert last is not None
        raise last
    origin = typing.get_origin(kind)
    if origin is list:
        if not isinstance(value, list):
            raise RecordError(f"{where} has an invalid {name} {_shown(value)}")
        (item,) = typing.get_args(kind)
        return [checked(v, item, where, name) for v in value]
    if origin is dict:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise RecordError(f"{where} has an invalid {name} {_shown(value)}")
        _, item = typing.get_args(kind)
        return {k: checked(v, item, where, name) for k, v in value.items()}
    if isinstance(kind, type) and issubclass(kind, enum.StrEnum):
        if not isinstance(value, str) or value not in kind._value2member_map_:
            raise RecordError(f"{where} has an unknown {name} {_shown(value)}")
        return kind(value)
    if isinstance(kind, type) and issubclass(kind, Record):
        if not isinstance(value, dict):
            raise RecordError(f"{where} has an invalid {name} {_shown(value)}")
        return kind._from_fields(value, where, f"{name}.")
    ok = {
        int: extjson.is_count,
        bool: lambda v: isinstance(v, bool),
        float: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        str: lambda v: isinstance(v, str),
        datetime: lambda v: isinstance(v, datetime),
        Timestamp: lambda v: isinstance(v, Timestamp),
    }.get(kind)
    if ok is None:
        raise TypeError(f"a record field of type {kind!r} cannot be checked")
    if not ok(value):
        raise RecordError(f"{where} has an invalid {name} {_shown(value)}")
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, enum.StrEnum):
        return value.value
    if isinstance(value, Record):
        return value.fields_json()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


# -- the records -----------------------------------------------------------------------------------
@dataclass
class ReplicatorCheckpoint(Record):
    """``changes/_checkpoint.json``: written only after segment ``last_seq`` is durable in S3."""

    WHAT = "a replicator checkpoint"

    migration_id: str
    last_seq: int = 0
    resume_token: dict[str, Any] | None = None
    last_cluster_time: Timestamp | None = None
    events_total: int = 0
    bytes_total: int = 0
    state: ReplicatorState = ReplicatorState.RUNNING
    heartbeat_at: datetime | None = field(default_factory=utc_now)
    reason: str | None = None  # why the state is ``failed``
    drained_until: Timestamp | None = None


@dataclass
class RestoreCheckpoint(Record):
    """``restore/_checkpoint.json``: the last segment applied in full, and the outcome."""

    WHAT = "a restore checkpoint"

    migration_id: str
    last_applied_seq: int = 0
    events_applied: int = 0
    state: RestoreState = RestoreState.RUNNING
    per_namespace: dict[str, dict[str, int]] = field(default_factory=dict)
    updated_at: datetime = field(default_factory=utc_now)
    reason: str | None = None
    displaced_generation: int = 0  # the saved ``restore/displaced.bson`` this checkpoint relies on
    #: The cluster time of the last event of segment ``last_applied_seq``: every captured change
    #: up to it is in the target (None: no event applied yet).
    applied_cluster_time: Timestamp | None = None
    #: Written by ``backover restore --follow``, which applies segments as they land and rewrites
    #: the checkpoint (``updated_at``) at least every ``heartbeat_seconds`` while it waits.
    follow: bool = False
    heartbeat_seconds: float | None = None


@dataclass
class DdlRecord(Record):
    """``restore/_ddl.json``: the last DDL event, as started before it is applied and as applied after."""

    WHAT = "a DDL record"

    seq: int
    index: int
    state: DdlState
    op: str | None = None
    ns: str | None = None
    at: datetime | None = None
    displaced_generation: int = 0

    def applied_through(self) -> tuple[int, int]:
        """The position up to which every event is applied: an applied DDL and all before it; for
        a DDL only started, all before it."""
        return (self.seq, self.index) if self.state is DdlState.APPLIED else (self.seq, self.index - 1)


@dataclass
class StartRecord(Record):
    """``state/start.json`` (start Lambda): written before any role change, ``t0`` None until the
    start finished. ``namespaces`` are ``db`` or ``db.coll``; ``prior_roles`` ``{role, db}``;
    ``change_streams_enabled`` ``{database, collection}``: the streams *this* start enabled."""

    WHAT = "a start record (state/start.json)"

    migration_id: str | None = None
    t0: Timestamp | None = None
    databases: list[str] = field(default_factory=list)
    namespaces: list[str] = field(default_factory=list)
    app_user: str | None = None
    prior_roles: list[dict[str, str]] = field(default_factory=list)
    change_streams_enabled: list[dict[str, str]] = field(default_factory=list)
    source_flavour: str | None = None
    started_at: datetime | None = None

    @property
    def finished(self) -> bool:
        """The start recorded T0: the capture may begin."""
        return self.t0 is not None


@dataclass
class FreezeRecord(Record):
    """``state/freeze.json`` (restore Lambda): F, the cluster time after the app user became
    read-only, and the roles kept and removed."""

    WHAT = "a freeze record (state/freeze.json)"

    migration_id: str | None = None
    f: Timestamp | None = None
    app_user: str | None = None
    read_only_roles: list[dict[str, str]] = field(default_factory=list)
    roles_removed: list[dict[str, str]] = field(default_factory=list)
    read_only_proof: ReadOnlyProof | None = None
    frozen_at: datetime | None = None


@dataclass
class AbortRecord(Record):
    """``state/abort.json`` (abort): written only once the app user's roles, read back from the
    source, are its prior roles again (``control/stop.json`` is written before: it alone does not say
    the writes were given back). ``roles_now``: the roles as read back; ``can_write`` and
    ``cannot_write``: the migrated databases they let the user write, and the others; a second
    abort rewrites it with its own reading (``confirmed_at``)."""

    WHAT = "an abort record (state/abort.json)"

    migration_id: str | None = None
    app_user: str | None = None
    roles_now: list[dict[str, str]] = field(default_factory=list)
    can_write: list[str] = field(default_factory=list)
    cannot_write: list[str] = field(default_factory=list)
    confirmed_at: datetime | None = None


@dataclass
class BackupManifest(Record):
    """``backups/{label}/_backup.json`` (``backover backup``), written once every collection is dumped.

    ``b``: the source's cluster time taken before the first collection was read (every write at or
    before it is in the dump); ``dump_end``: its cluster time once the last one was read.
    ``capture_seq``: the replicator's ``last_seq`` read just before ``b`` (its segments hold only
    changes up to ``b``), so the segments after it hold every change after ``b``; None when no
    capture of this migration covers ``b`` (no T0 at or before it, or a MongoDB backup): then the
    dump cannot be made consistent by replay. ``backover backup --seal`` adds ``f`` (the freeze
    position), the sealed copies ``capture_seq + 1 .. sealed_through_seq`` and ``sealed_at``."""

    WHAT = "a backup manifest (backups/{label}/_backup.json)"
    OMIT_NONE = frozenset({"f", "sealed_through_seq", "sealed_at", "begin_id"})

    migration_id: str
    label: str
    b: Timestamp
    dump_end: Timestamp
    started_at: datetime
    finished_at: datetime
    databases: list[str] = field(default_factory=list)
    collections: list[str] = field(default_factory=list)
    capture_seq: int | None = None
    f: Timestamp | None = None
    sealed_through_seq: int | None = None
    sealed_at: datetime | None = None
    #: The partitioned backup (``--begin`` .. ``--finish``) this manifest completes; absent for a
    #: backup taken in one run without a sync plan.
    begin_id: str | None = None


# -- partitioned backups (backover.backup.partitioned) ---------------------------------------------
@dataclass
class BackupBegun(Record):
    """``backups/{label}/_begun.json`` (``backover backup --begin``): what every partition and the
    finish of one partitioned backup share. ``begin_id``: its id (the part objects' folder);
    ``b``, ``capture_seq``, ``started_at``: as in :class:`BackupManifest`, taken here, before any
    partition is read; ``databases``: what the backup holds; ``partitions``: the ids of
    ``sync/plan.json``'s partitions of those databases, in plan order (each needs its part before
    ``--finish``), and ``plan_created_at`` the plan's ``created_at`` (a plan made again since makes
    the parts and the begin stale)."""

    WHAT = "a begun backup (backups/{label}/_begun.json)"

    migration_id: str
    label: str
    begin_id: str
    b: Timestamp
    started_at: datetime
    databases: list[str] = field(default_factory=list)
    partitions: list[str] = field(default_factory=list)
    capture_seq: int | None = None
    plan_created_at: datetime | None = None


@dataclass
class BackupPart(Record):
    """``backups/{label}/.parts/{begin}/{partition}.json``: one partition's part object, written
    after the object (a gzip member of the partition's documents, sorted by ``_id``) is complete.
    ``etag`` and ``compressed_bytes`` are the object's as S3 completed it: a HEAD proves the object
    is the one this record describes (a re-run killed between the two is caught)."""

    WHAT = "a backup part record"

    migration_id: str
    begin_id: str
    partition: str
    namespace: str
    documents: int
    uncompressed_bytes: int
    sha256: str
    compressed_bytes: int
    etag: str
    written_at: datetime


@dataclass
class CleanGuard(Record):
    """The check that allowed a clean-up (``state/clean.json`` ``guard``)."""

    WHAT = "a clean guard"

    restore_state: RestoreState | None = None
    verified: bool = False
    replicator_state: ReplicatorState | None = None
    frozen: bool = False
    forced: bool = False
    checked_at: datetime | None = None

    @property
    def passed(self) -> bool:
        """An unforced check that passed every rule (it lets a re-run through after the
        checkpoints are gone)."""
        return (
            not self.forced
            and self.restore_state is RestoreState.COMPLETED
            and self.verified
            and self.frozen
            and self.replicator_state is not None
            and self.replicator_state.capture_over()
        )


@dataclass
class CleanRecord(Record):
    """``state/clean.json``, written in parts by the clean Lambda and ``backover clean``.

    ``cleaned_at`` present = the S3 clean-up finished. The counts are totals over every run; each
    batch is counted just before it is deleted, with its keys in ``deleting`` (empty once the run
    finished). ``backups_kept`` None = not recorded yet."""

    WHAT = "a clean record (state/clean.json)"
    OMIT_NONE = frozenset({"guard", "change_streams_disabled_at", "cleaned_at", "backups_kept"})

    migration_id: str | None = None
    guard: CleanGuard | None = None
    change_streams_disabled: list[dict[str, str]] = field(default_factory=list)
    change_streams_disabled_at: datetime | None = None
    cleaned_at: datetime | None = None
    segments_deleted: int = 0
    checkpoints_deleted: int = 0
    backups_deleted: int = 0
    backups_kept: bool | None = None
    deleting: list[str] = field(default_factory=list)


@dataclass
class VerifyLiveRecord(Record):
    """``reports/verify-live.json`` (``backover verify --live``): the pre-freeze pass, and what the
    freeze-time check needs to prove equality from it (docs/architecture.md, "Verify").

    ``applied_cluster_time``/``applied_seq``: A0 and its segment, the restore checkpoint's when the
    pass started (every event after them is in K, the keys compared again at the freeze);
    ``target_resume_token``: where the MongoDB target's change stream stood when the pass started
    (the pass reads it from there for writes no source event accounts for, up to
    ``target_checked_token``, and the freeze-time check from there on);
    ``namespaces``: the ``--namespace`` filter as given (empty: the default); ``compared``: the
    namespaces the pass compared. ``differences``: per namespace, the first ``_id``s proven
    different or never settled. ``begin_id``: this pass (``verify --live --begin``), which its
    partition records name; ``partitions``: the sync plan's partitions it compares one by one
    (:class:`VerifyLivePartitionRecord`), empty without a plan, and ``plan_created_at`` the
    plan's ``created_at`` (None: no plan) that each partition and the finish check the plan
    against (a plan made again since fails them: begin again); the figures are their sums with
    the rest's."""

    WHAT = "a live verification record (reports/verify-live.json)"

    migration_id: str
    state: VerifyLiveState = VerifyLiveState.RUNNING
    applied_cluster_time: Timestamp | None = None
    applied_seq: int = 0
    target_resume_token: dict[str, Any] | None = None
    target_cluster_time: Timestamp | None = None
    #: How far the pass itself read the target's stream (no foreign write up to there): the
    #: freeze-time check reads on from here.
    target_checked_token: dict[str, Any] | None = None
    namespaces: list[str] = field(default_factory=list)
    compared: list[str] = field(default_factory=list)
    started_at: datetime = field(default_factory=utc_now)
    finished_at: datetime | None = None
    documents: int = 0  # source documents compared
    differed: int = 0  # documents that differed when first compared
    settled: int = 0  # of those, found equal when compared again
    deferred: int = 0  # of those, still moving: keys of K, compared again at the freeze
    reason: str | None = None
    differences: dict[str, list[Any]] = field(default_factory=dict)
    foreign_writes: list[dict[str, Any]] = field(default_factory=list)
    begin_id: str | None = None
    partitions: list[str] = field(default_factory=list)
    plan_created_at: datetime | None = None


@dataclass
class VerifyLivePartitionRecord(Record):
    """``reports/verify-live/<begin_id>/<id>.json`` (``backover verify --live --partition ID``):
    one sync-plan partition compared for the live pass ``begin_id`` (in that pass's folder, so a
    partition of another begin neither counts nor replaces it). ``proven``/``unsettled``:
    differing documents proven different, or still waiting for the restore at the settle time;
    ``differences`` names the first of them per namespace; ``reason``: why the partition failed."""

    WHAT = "a live verification partition record (reports/verify-live/<begin_id>/)"

    migration_id: str
    partition: str
    begin_id: str
    ns: str
    state: VerifyLiveState = VerifyLiveState.RUNNING
    started_at: datetime = field(default_factory=utc_now)
    finished_at: datetime | None = None
    documents: int = 0
    differed: int = 0
    settled: int = 0
    deferred: int = 0
    proven: int = 0
    unsettled: int = 0
    differences: dict[str, list[Any]] = field(default_factory=dict)
    reason: str | None = None


# -- the initial sync (backover.sync) ------------------------------------------------------------
@dataclass
class SyncPartition(Record):
    """One ``_id`` range of a collection in the sync plan.

    ``types``: the ``$type`` aliases of the range's type bracket, empty when every ``_id`` of the
    collection was in one bracket at plan time (then no ``$type`` condition is needed).
    ``lower`` (inclusive) and ``upper`` (exclusive): each the raw BSON document ``{_id: bound}``
    (bytes, so every BSON type survives Extended JSON exactly), None for the bracket's start or
    end. ``shown``: the range's filter for people (never read back)."""

    WHAT = "a sync partition"

    id: str
    bracket: str
    types: list[str] = field(default_factory=list)
    lower: Any = None
    upper: Any = None
    estimated_documents: int = 0
    shown: str = ""


@dataclass
class SyncCollection(Record):
    """One collection of the sync plan: its options (``listCollections``), its index
    specifications (``listIndexes`` as given, without ``v``/``ns``), its document count when
    planned and its partitions (empty for an empty collection)."""

    WHAT = "a sync collection"

    db: str
    coll: str
    options: dict[str, Any] = field(default_factory=dict)
    indexes: list[dict[str, Any]] = field(default_factory=list)
    documents: int = 0
    partitions: list[SyncPartition] = field(default_factory=list)

    @property
    def ns(self) -> str:
        return f"{self.db}.{self.coll}"


@dataclass
class SyncPlan(Record):
    """``sync/plan.json`` (``backover sync --plan``): what the initial copy copies, written once the
    target's collections and indexes exist. ``t0``: the start record's T0 the copy follows;
    ``dropped``: target collections ``--drop-target`` dropped first."""

    WHAT = "a sync plan (sync/plan.json)"

    migration_id: str
    t0: Timestamp
    partition_documents: int
    created_at: datetime
    collections: list[SyncCollection] = field(default_factory=list)
    documents: int = 0
    dropped: list[str] = field(default_factory=list)

    def partition_ids(self) -> list[str]:
        """Every partition's id, in plan order (what Airflow maps over)."""
        return [p.id for c in self.collections for p in c.partitions]

    def find(self, partition_id: str) -> tuple[SyncCollection, SyncPartition] | None:
        for c in self.collections:
            for p in c.partitions:
                if p.id == partition_id:
                    return c, p
        return None


@dataclass
class SyncPartitionCheckpoint(Record):
    """``sync/partitions/<id>.json``: how far one partition's copy got, saved after batch writes.

    ``last_id``: the raw BSON ``{_id: value}`` of the last document written (every document of the
    range up to it is on the target), None before the first batch. ``documents``/``bytes_copied``:
    documents on the target from this range (inserted, or found there already by a resumed run:
    ``already_copied``); ``skipped_duplicates``: documents not inserted because another copied
    document held their unique key (the replay brings them: docs/architecture.md)."""

    WHAT = "a sync partition checkpoint"
    OMIT_NONE = frozenset({"completed_at"})

    migration_id: str
    partition: str
    state: SyncPartitionState = SyncPartitionState.RUNNING
    last_id: Any = None
    documents: int = 0
    bytes_copied: int = 0
    skipped_duplicates: int = 0
    already_copied: int = 0
    runs: int = 1
    started_at: datetime = field(default_factory=utc_now)
    updated_at: datetime = field(default_factory=utc_now)
    completed_at: datetime | None = None


@dataclass
class SyncComplete(Record):
    """``sync/complete.json``: every partition of the plan is copied; the totals. Its presence lets
    the restore start (it refuses while a plan exists without it)."""

    WHAT = "a sync completion record (sync/complete.json)"

    migration_id: str
    completed_at: datetime
    collections: int = 0
    partitions: int = 0
    documents: int = 0
    bytes_copied: int = 0
    skipped_duplicates: int = 0
    already_copied: int = 0
    planned_at: datetime | None = None
    per_collection: dict[str, dict[str, int]] = field(default_factory=dict)
