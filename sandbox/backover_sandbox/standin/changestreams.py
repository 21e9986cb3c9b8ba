"""Change streams over the change log, as MongoDB 6.0 serves them (and DocumentDB where it differs).

``aggregate`` in ``commands/crud.py`` hands every pipeline whose first stage is ``$changeStream``
or ``$listChangeStreams`` to :func:`aggregate`, which answers the ``aggregate`` command and
registers a :class:`ChangeStreamCursor` that ``getMore`` then drains.

Resume tokens
    ``{"_data": "82" + time(8 hex) + inc(8 hex) + seq(16 hex) + flag(2 hex)}``, upper-case hex of
    fixed width, so tokens sort as strings in event order. ``time``/``inc`` are the cluster time of
    the change-log entry, ``seq`` its change-log sequence number and ``flag`` says what the token
    stands for: ``00`` a high-water mark (every event before entry ``seq`` was seen), ``01`` the
    event of entry ``seq``, ``02`` the ``invalidate`` that entry ``seq`` caused. Resuming reads
    from entry ``seq`` and skips its outputs whose flag is not above the token's: exact, never a
    lost or repeated event.

Levels
    collection (``db.coll.watch()``), database (``db.watch()``; not ``system.*`` collections) and
    cluster (``client.watch()`` = ``aggregate: 1`` on ``admin`` with ``allChangesForCluster``;
    every database but ``admin``, ``config`` and ``local``).

DocumentDB flavour
    A stream can only be opened on a namespace enabled with ``modifyChangeStreams`` (code 136
    ``modifyChangeStreams has not been run for this collection/database/cluster``), only changes
    made while the namespace was enabled are streamed, a resume point older than the enablement
    answers code 136 too, ``$listChangeStreams`` lists the enabled namespaces, and
    ``fullDocumentBeforeChange``, ``fullDocument: whenAvailable|required`` and
    ``showExpandedEvents`` are refused.
"""

from __future__ import annotations

import struct
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import bson
from bson.int64 import Int64
from bson.raw_bson import RawBSONDocument
from bson.timestamp import Timestamp

from backover.bsonvalues import RAW, canonical_key, decode, encode
from backover.mongo import errors

from . import stages
from .changelog import ChangeEntry, ChangeLog
from .cursors import MAX_BATCH_BYTES, cursor_reply
from .registry import Action, Context
from .unsupported import unknown_field_error

if TYPE_CHECKING:  # pragma: no cover
    from .server import StandinServer

__all__ = [
    "ChangeStreamCursor",
    "ResumeToken",
    "Scope",
    "aggregate",
    "disable",
    "enable",
    "enabled_namespaces",
]

# -- constants ----------------------------------------------------------------------------------
HWM, EVENT, INVALIDATE = 0, 1, 2
TOKEN_PREFIX = "82"
_TOKEN_MARK = 0x82  # KeyString's type byte for a Timestamp, as MongoDB's tokens start
_TOKEN = struct.Struct(">BIIQB")
_TOKEN_LEN = len(TOKEN_PREFIX) + 8 + 8 + 16 + 2

#: getMore without ``maxTimeMS`` waits this long for an event, like mongod's change streams.
DEFAULT_AWAIT_MS = 1000
#: Entries read from the change log at a time.
READ_CHUNK = 1000

INTERNAL_DBS = frozenset({"admin", "config", "local"})
FULL_DOCUMENT_MODES = ("default", "updateLookup", "whenAvailable", "required")
BEFORE_CHANGE_MODES = ("off", "whenAvailable", "required")
STAGE_OPTIONS = frozenset(
    {
        "allChangesForCluster",
        "fullDocument",
        "fullDocumentBeforeChange",
        "resumeAfter",
        "startAfter",
        "startAtOperationTime",
        "showExpandedEvents",
        "showMigrationEvents",
        "allowToRunOnConfigDB",
        "allowToRunOnSystemNS",
    }
)
DOCUMENTDB_STAGE_OPTIONS = frozenset(
    {
        "allChangesForCluster",
        "fullDocument",
        "resumeAfter",
        "startAfter",
        "startAtOperationTime",
    }
)
NO_MATCHING_DOCUMENT = 47
DOCUMENTDB_NOT_ENABLED = 136

HISTORY_LOST_MESSAGE = (
    "Resume of change stream was not possible, as the resume point may no longer be in the oplog."
)
NOT_ENABLED_MESSAGE = "modifyChangeStreams has not been run for this collection/database/cluster"


# -- errors -------------------------------------------------------------------------------------
def history_lost() -> errors.CommandError:
    """Code 286: the resume point is older than the retained change log."""
    return errors.CommandError(
        errors.CHANGE_STREAM_HISTORY_LOST,
        "ChangeStreamHistoryLost",
        HISTORY_LOST_MESSAGE,
        errorLabels=[errors.NON_RESUMABLE_CHANGE_STREAM_ERROR],
    )


def not_enabled() -> errors.CommandError:
    """DocumentDB's answer when ``modifyChangeStreams`` did not enable the namespace."""
    return errors.CommandError(DOCUMENTDB_NOT_ENABLED, "CappedPositionLost", NOT_ENABLED_MESSAGE)


def _fatal(message: str) -> errors.CommandError:
    """Code 280, labelled non-resumable as mongod labels it (drivers must not resume)."""
    return errors.CommandError(
        errors.CHANGE_STREAM_FATAL_ERROR,
        "ChangeStreamFatalError",
        message,
        errorLabels=[errors.NON_RESUMABLE_CHANGE_STREAM_ERROR],
    )


def _invalid_namespace(message: str) -> errors.CommandError:
    return errors.invalid_namespace(message)


# -- resume tokens ------------------------------------------------------------------------------
@dataclass(frozen=True, order=True, slots=True)
class ResumeToken:
    """A point in the change log: entry ``seq`` at cluster time ``ts``, and what of it was seen.

    ``flag`` is :data:`HWM` (nothing of entry ``seq`` yet), :data:`EVENT` (its event) or
    :data:`INVALIDATE` (also the invalidate it caused).
    """

    time: int
    inc: int
    seq: int
    flag: int

    @classmethod
    def of(cls, ts: Timestamp, seq: int, flag: int) -> ResumeToken:
        return cls(ts.time, ts.inc, seq, flag)

    @property
    def ts(self) -> Timestamp:
        return Timestamp(self.time, self.inc)

    @property
    def data(self) -> str:
        """The ``_data`` hex string."""
        return _token_data(self.time, self.inc, self.seq, self.flag)

    def to_doc(self) -> dict[str, str]:
        return {"_data": self.data}

    @classmethod
    def parse(cls, value: Any) -> ResumeToken:
        """Parse ``{_data: <hex>}``; code 9 FailedToParse for anything else."""
        if not isinstance(value, Mapping) or "_data" not in value:
            raise errors.failed_to_parse("Bad resume token: _data of missing or of wrong type")
        data = value["_data"]
        if not isinstance(data, str) or len(data) != _TOKEN_LEN or not data.startswith(TOKEN_PREFIX):
            raise errors.failed_to_parse(f"Bad resume token: unrecognised _data {data!r}")
        try:
            body = bytes.fromhex(data[len(TOKEN_PREFIX) :])
        except ValueError:
            raise errors.failed_to_parse(f"Bad resume token: _data {data!r} is not hex") from None
        flag = body[16]
        if flag not in (HWM, EVENT, INVALIDATE):
            raise errors.failed_to_parse(f"Bad resume token: unrecognised _data {data!r}")
        return cls(
            int.from_bytes(body[0:4], "big"),
            int.from_bytes(body[4:8], "big"),
            int.from_bytes(body[8:16], "big"),
            flag,
        )


def _token_data(t: int, i: int, seq: int, flag: int) -> str:
    return _TOKEN.pack(_TOKEN_MARK, t, i, seq, flag).hex().upper()


# -- scopes -------------------------------------------------------------------------------------
_CRUD_OPS = frozenset({"insert", "update", "replace", "delete"})
_EVENT_ONLY: tuple[int, ...] = (EVENT,)
_EVENT_AND_INVALIDATE: tuple[int, ...] = (EVENT, INVALIDATE)
_INVALIDATE_ONLY: tuple[int, ...] = (INVALIDATE,)
_NOTHING: tuple[int, ...] = ()


@dataclass(frozen=True)
class Scope:
    """What a stream watches: ``level`` is ``collection``, ``database`` or ``cluster``."""

    level: str
    db: str = ""
    coll: str = ""

    @property
    def ns(self) -> str:
        """The cursor namespace ``getMore`` must name."""
        if self.level == "collection":
            return f"{self.db}.{self.coll}"
        return f"{self.db or 'admin'}.$cmd.aggregate"

    @property
    def enable_keys(self) -> tuple[tuple[str, str], ...]:
        """The ``modifyChangeStreams`` entries that cover this scope (DocumentDB)."""
        if self.level == "collection":
            return ((self.db, self.coll), (self.db, ""), ("", ""))
        if self.level == "database":
            return ((self.db, ""), ("", ""))
        return (("", ""),)

    def outputs(self, entry: ChangeEntry) -> tuple[int, ...]:
        """The flags of what ``entry`` produces on this stream: event and/or invalidate."""
        if self.level == "collection":
            return self._collection_outputs(entry)
        if self.level == "database":
            return self._database_outputs(entry)
        return self._cluster_outputs(entry)

    def _collection_outputs(self, entry: ChangeEntry) -> tuple[int, ...]:
        op = entry.op
        if op == "dropDatabase":
            return _INVALIDATE_ONLY if entry.db == self.db else _NOTHING
        if op == "rename":
            if (entry.db == self.db and entry.coll == self.coll) or entry.to == (self.db, self.coll):
                return _EVENT_AND_INVALIDATE
            return _NOTHING
        if entry.coll != self.coll or entry.db != self.db:
            return _NOTHING
        return _EVENT_AND_INVALIDATE if op == "drop" else _EVENT_ONLY

    def _database_outputs(self, entry: ChangeEntry) -> tuple[int, ...]:
        op = entry.op
        if op == "dropDatabase":
            return _EVENT_AND_INVALIDATE if entry.db == self.db else _NOTHING
        if op == "rename":
            source = entry.db == self.db and not _is_system(entry.coll)
            target = entry.to is not None and entry.to[0] == self.db and not _is_system(entry.to[1])
            return _EVENT_ONLY if source or target else _NOTHING
        if entry.db != self.db or _is_system(entry.coll):
            return _NOTHING
        return _EVENT_ONLY

    @staticmethod
    def _cluster_outputs(entry: ChangeEntry) -> tuple[int, ...]:
        if entry.op == "rename" and entry.to is not None:
            visible = _visible_in_cluster(entry.db, entry.coll) or _visible_in_cluster(*entry.to)
            return _EVENT_ONLY if visible else _NOTHING
        return _EVENT_ONLY if _visible_in_cluster(entry.db, entry.coll) else _NOTHING


def _is_system(coll: str | None) -> bool:
    return coll is not None and coll.startswith("system.")


def _visible_in_cluster(db: str, coll: str | None) -> bool:
    return db not in INTERNAL_DBS and not _is_system(coll)


# -- DocumentDB enablement ----------------------------------------------------------------------
@dataclass
class _Interval:
    """Change-log seqs ``start <= seq < end`` during which an entry was enabled."""

    start: int
    end: int | None = None  # still enabled


@dataclass
class _Enablement:
    """When each ``modifyChangeStreams`` entry was enabled: change-log seq intervals."""

    intervals: dict[tuple[str, str], list[_Interval]]
    lock: threading.Lock


_ENABLEMENTS: weakref.WeakKeyDictionary[Any, _Enablement] = weakref.WeakKeyDictionary()
_ENABLEMENTS_LOCK = threading.Lock()


def _enablement(server: StandinServer) -> _Enablement:
    with _ENABLEMENTS_LOCK:
        state = _ENABLEMENTS.get(server)
        if state is None:
            state = _ENABLEMENTS[server] = _Enablement({}, threading.Lock())
        return state


def enable(server: StandinServer, db: str, coll: str) -> None:
    """Enable change streams on ``(db, coll)`` ("" = every): changes from now on are streamed."""
    state = _enablement(server)
    with server.store.lock, state.lock:
        key = (db, coll)
        history = state.intervals.setdefault(key, [])
        if key not in server.change_streams_enabled or not history or history[-1].end is not None:
            history.append(_Interval(server.store.changes.next_seq))
        server.change_streams_enabled.add(key)


def disable(server: StandinServer, db: str, coll: str) -> None:
    """Disable change streams on ``(db, coll)``: later changes are not streamed."""
    state = _enablement(server)
    with server.store.lock, state.lock:
        key = (db, coll)
        history = state.intervals.get(key)
        if history and history[-1].end is None:
            history[-1].end = server.store.changes.next_seq
        server.change_streams_enabled.discard(key)


def enabled_namespaces(server: StandinServer) -> list[dict[str, str]]:
    """``$listChangeStreams``: the enabled entries as ``{database, collection}`` documents."""
    return [{"database": db, "collection": coll} for db, coll in sorted(server.change_streams_enabled)]


def _enabled_since(server: StandinServer, keys: Iterable[tuple[str, str]]) -> int | None:
    """The earliest seq from which one of ``keys`` is enabled without a break; None if none is."""
    state = _enablement(server)
    since: int | None = None
    with state.lock:
        for key in keys:
            if key not in server.change_streams_enabled:
                continue
            history = state.intervals.get(key)
            start = history[-1].start if history and history[-1].end is None else 0
            since = start if since is None else min(since, start)
    return since


class _Visibility:
    """DocumentDB: whether a change-log entry was written while its namespace was enabled."""

    def __init__(self, server: StandinServer) -> None:
        self._server = server
        self._state = _enablement(server)

    def __call__(self, entry: ChangeEntry) -> bool:
        db, coll = entry.db, entry.coll
        if coll is None:
            keys: Iterable[tuple[str, str]] = [
                k
                for k in self._server.change_streams_enabled | set(self._state.intervals)
                if k[0] in (db, "")
            ]
        else:
            keys = ((db, coll), (db, ""), ("", ""))
        return any(self._covers(key, entry.seq) for key in keys)

    def _covers(self, key: tuple[str, str], seq: int) -> bool:
        history = self._state.intervals.get(key)
        if not history:
            return key in self._server.change_streams_enabled
        return any(i.start <= seq and (i.end is None or seq < i.end) for i in history)


# -- options ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StreamOptions:
    """The parsed ``$changeStream`` stage."""

    all_changes_for_cluster: bool = False
    full_document: str = "default"
    before_change: str = "off"
    resume_after: ResumeToken | None = None
    start_after: ResumeToken | None = None
    start_at: Timestamp | None = None


def parse_options(spec: Any, flavour: str) -> StreamOptions:
    """Validate the ``$changeStream`` stage document as MongoDB (or DocumentDB) does."""
    if not isinstance(spec, Mapping):
        raise errors.CommandError(
            50808, "Location50808", "$changeStream stage expects a document as argument"
        )
    known = DOCUMENTDB_STAGE_OPTIONS if flavour == "documentdb" else STAGE_OPTIONS
    if flavour == "documentdb" and "fullDocumentBeforeChange" in spec:
        raise errors.bad_value(
            "fullDocumentBeforeChange is not supported by Amazon DocumentDB change streams"
        )
    for name in spec:
        if name not in known:
            raise errors.CommandError(
                40415, "Location40415", f"BSON field '$changeStream.{name}' is an unknown field."
            )
    starts = [
        name for name in ("resumeAfter", "startAfter", "startAtOperationTime") if spec.get(name) is not None
    ]
    if len(starts) > 1:
        raise errors.CommandError(
            40674, "Location40674", "Only one type of resume option is allowed, but multiple were found."
        )
    if spec.get("showExpandedEvents"):
        raise unknown_field_error("$changeStream", "showExpandedEvents")
    opts = StreamOptions(
        all_changes_for_cluster=_bool_option(spec, "allChangesForCluster"),
        full_document=_enum_option(spec, "fullDocument", FULL_DOCUMENT_MODES, "default"),
        before_change=_enum_option(spec, "fullDocumentBeforeChange", BEFORE_CHANGE_MODES, "off"),
        resume_after=_token_option(spec, "resumeAfter"),
        start_after=_token_option(spec, "startAfter"),
        start_at=_timestamp_option(spec, "startAtOperationTime"),
    )
    if flavour == "documentdb" and opts.full_document in ("whenAvailable", "required"):
        raise errors.bad_value(
            f"fullDocument: '{opts.full_document}' is not supported; use 'default' or 'updateLookup'"
        )
    return opts


def _bool_option(spec: Mapping[str, Any], name: str) -> bool:
    value = spec.get(name, False)
    if not isinstance(value, bool):
        raise errors.type_mismatch(
            f"BSON field '$changeStream.{name}' is the wrong type '{_type_name(value)}', expected type 'bool'"
        )
    return value


def _enum_option(spec: Mapping[str, Any], name: str, allowed: tuple[str, ...], default: str) -> str:
    value = spec.get(name, default)
    if not isinstance(value, str):
        raise errors.type_mismatch(
            f"BSON field '$changeStream.{name}' is the wrong type '{_type_name(value)}', "
            "expected type 'string'"
        )
    if value not in allowed:
        raise errors.bad_value(
            f"Enumeration value '{value}' for field '$changeStream.{name}' is not a valid value."
        )
    return value


def _token_option(spec: Mapping[str, Any], name: str) -> ResumeToken | None:
    value = spec.get(name)
    return None if value is None else ResumeToken.parse(value)


def _timestamp_option(spec: Mapping[str, Any], name: str) -> Timestamp | None:
    value = spec.get(name)
    if value is not None and not isinstance(value, Timestamp):
        raise errors.type_mismatch(
            f"BSON field '$changeStream.{name}' is the wrong type '{_type_name(value)}', "
            "expected type 'timestamp'"
        )
    return value


def _type_name(value: Any) -> str:
    names = {bool: "bool", int: "int", float: "double", str: "string", dict: "object", list: "array"}
    return names.get(type(value), type(value).__name__)


# -- pipeline stages after $changeStream -------------------------------------------------------
Stage = Callable[[dict[str, Any]], "dict[str, Any] | None"]


def compile_stages(stages: list[Any], *, change_stream: bool = True) -> list[Stage]:
    """``$match``, ``$project`` (top-level fields) and ``$unset``; anything else is refused."""
    compiled: list[Stage] = []
    for stage in stages:
        if not isinstance(stage, Mapping) or len(stage) != 1:
            raise errors.CommandError(
                40323,
                "Location40323",
                "A pipeline stage specification object must contain exactly one field.",
            )
        name, arg = next(iter(stage.items()))
        compiled.append(_compile_stage(name, arg, change_stream))
    return compiled


def _compile_stage(name: str, arg: Any, change_stream: bool) -> Stage:
    if name == "$match":
        return _match_stage(arg)
    if name == "$project":
        return _project_stage(arg, change_stream)
    if name == "$unset":
        fields = [arg] if isinstance(arg, str) else arg
        if not isinstance(fields, list) or not fields or not all(isinstance(f, str) for f in fields):
            raise errors.CommandError(
                31002, "Location31002", "$unset specification must be a string or an array"
            )
        return _project_stage(dict.fromkeys(fields, 0), change_stream)
    if name in ("$changeStream", "$listChangeStreams"):
        raise errors.CommandError(
            40602, "Location40602", f"{name} is only valid as the first stage in a pipeline"
        )
    if name not in stages.MONGODB_STAGES:
        raise stages.unrecognized_stage(name)
    if change_stream and name not in stages.CHANGE_STREAM_ALLOWED:
        raise stages.not_permitted_in_change_stream(name)
    raise stages.not_implemented_stage(name)


def _match_stage(spec: Any) -> Stage:
    if not isinstance(spec, Mapping):
        raise errors.CommandError(
            15959, "Location15959", "the match filter must be an expression in an object"
        )
    from backover.mongo.query import compile_filter  # the query engine; imported late (written separately)

    matcher = compile_filter(dict(spec))

    def match(event: dict[str, Any]) -> dict[str, Any] | None:
        return event if matcher(event) else None

    return match


def _project_stage(spec: Any, change_stream: bool) -> Stage:
    if not isinstance(spec, Mapping) or not spec:
        raise errors.CommandError(
            51272, "Location51272", "$project specification must be an object with at least one field"
        )
    modes: dict[str, bool] = {}
    for path, value in spec.items():
        if "." in path or path.startswith("$") or isinstance(value, (Mapping, str, list)):
            raise unknown_field_error(
                "$project", path, detail="only top-level inclusions and exclusions after $changeStream"
            )
        modes[path] = bool(value)
    keep_id = modes.pop("_id", True)
    inclusive = any(modes.values()) or not modes and keep_id
    if len(set(modes.values())) > 1:
        raise errors.CommandError(
            31254,
            "Location31254",
            "Invalid $project :: caused by :: Cannot do exclusion on field in inclusion projection",
        )
    fields = frozenset(modes)
    if change_stream and not keep_id:
        return _id_removed

    def project(event: dict[str, Any]) -> dict[str, Any]:
        if inclusive:
            return {k: v for k, v in event.items() if k in fields or (k == "_id" and keep_id)}
        return {k: v for k, v in event.items() if k not in fields and (k != "_id" or keep_id)}

    return project


def _id_removed(event: dict[str, Any]) -> dict[str, Any]:
    raise _fatal(
        "Encountered an event whose _id field, which contains the resume token, was modified by the "
        "pipeline. Modifying the _id field of an event makes it impossible to resume the stream from "
        "that point. Only transformations that retain the unmodified _id field are allowed."
    )


def _apply(stages: list[Stage], event: dict[str, Any]) -> dict[str, Any] | None:
    for stage in stages:
        result = stage(event)
        if result is None:
            return None
        event = result
    return event


# -- events -------------------------------------------------------------------------------------
# Events are built directly as BSON bytes: the stored documents and keys are copied, not decoded.
_INT32 = struct.Struct("<i")
_TIMESTAMP = struct.Struct("<II")  # BSON Timestamp: increment, then seconds
_INT64 = struct.Struct("<q")

_ID_PREFIX = (
    b"\x03_id\x00"
    + _INT32.pack(4 + 1 + 6 + 4 + _TOKEN_LEN + 1 + 1)
    + b"\x02_data\x00"
    + _INT32.pack(_TOKEN_LEN + 1)
)
_ID_SUFFIX = b"\x00\x00"
_CLUSTER_TIME = b"\x11clusterTime\x00"
_WALL_TIME = b"\x09wallTime\x00"
_FULL_DOCUMENT = b"\x03fullDocument\x00"
_FULL_DOCUMENT_NULL = b"\x0afullDocument\x00"
_DOCUMENT_KEY = b"\x03documentKey\x00"
_UPDATE_DESCRIPTION = b"\x03updateDescription\x00"
_BEFORE_CHANGE_NULL = b"\x0afullDocumentBeforeChange\x00"
_OPERATION_TYPES = {
    op: b"\x02operationType\x00" + _INT32.pack(len(op) + 1) + op.encode() + b"\x00"
    for op in ("insert", "update", "replace", "delete", "drop", "rename", "dropDatabase", "invalidate")
}


def _document(parts: list[bytes]) -> bytes:
    """A BSON document from its encoded elements."""
    parts.append(b"\x00")
    return _INT32.pack(4 + sum(map(len, parts))) + b"".join(parts)


class EventBuilder:
    """Builds event documents as BSON bytes, fields in MongoDB's order."""

    def __init__(self, server: StandinServer, full_document: str, before_change: str) -> None:
        self._store = server.store
        self._full_document = full_document
        self._before_change = before_change
        self._ns_cache: dict[tuple[bytes, str, str | None], bytes] = {}

    def build(self, entry: ChangeEntry, flag: int) -> bytes:
        """The event of ``entry`` (``flag`` EVENT) or the invalidate it causes (INVALIDATE)."""
        ts = entry.ts
        op = "invalidate" if flag == INVALIDATE else entry.op
        parts = [
            _ID_PREFIX,
            _TOKEN.pack(_TOKEN_MARK, ts.time, ts.inc, entry.seq, flag).hex().upper().encode(),
            _ID_SUFFIX,
            _OPERATION_TYPES[op],
            _CLUSTER_TIME,
            _TIMESTAMP.pack(ts.inc, ts.time),
            _WALL_TIME,
            _INT64.pack(entry.wall_ms),
        ]
        if flag == INVALIDATE:
            pass
        elif op in _CRUD_OPS:
            self._crud_fields(entry, parts)
        elif op == "dropDatabase":
            parts.append(b"\x03ns\x00" + bson.encode({"db": entry.db}))
        else:
            parts.append(self._ns(b"ns", entry.db, entry.coll))
            if op == "rename" and entry.to is not None:
                parts.append(self._ns(b"to", *entry.to))
        return _document(parts)

    def _crud_fields(self, entry: ChangeEntry, parts: list[bytes]) -> None:
        op = entry.op
        if entry.full_document is not None:
            parts += (_FULL_DOCUMENT, entry.full_document)
        elif op == "update" and self._full_document != "default":
            post_image = self._post_image(entry)
            parts += (_FULL_DOCUMENT_NULL,) if post_image is None else (_FULL_DOCUMENT, post_image)
        parts.append(self._ns(b"ns", entry.db, entry.coll))
        if entry.document_key is not None:
            parts += (_DOCUMENT_KEY, entry.document_key)
        if op == "update":
            parts += (_UPDATE_DESCRIPTION, _raw(update_description(entry.update_description)))
        if self._before_change != "off" and op != "insert":
            if self._before_change == "required":
                raise _no_image("pre-image", entry)
            parts.append(_BEFORE_CHANGE_NULL)

    def _post_image(self, entry: ChangeEntry) -> bytes | None:
        if self._full_document == "updateLookup":
            return self.lookup(entry)
        if self._full_document == "required":
            raise _no_image("post-image", entry)
        return None  # whenAvailable: the stand-in records no post-images

    def lookup(self, entry: ChangeEntry) -> bytes | None:
        """The current version of the entry's document (``updateLookup``), None if it is gone."""
        if entry.document_key is None or entry.coll is None:
            return None
        coll = self._store.get(entry.db, entry.coll)
        if coll is None or coll.uuid != entry.uuid:
            return None
        return coll.docs.get(canonical_key(bson.decode(entry.document_key, RAW)["_id"]))

    def _ns(self, name: bytes, db: str, coll: str | None) -> bytes:
        key = (name, db, coll)
        element = self._ns_cache.get(key)
        if element is None:
            element = self._ns_cache[key] = b"\x03" + name + b"\x00" + bson.encode({"db": db, "coll": coll})
        return element


def update_description(desc: Mapping[str, Any] | None) -> Any:
    """``{updatedFields, removedFields, truncatedArrays}`` in MongoDB's order."""
    if desc is None:
        return {"updatedFields": {}, "removedFields": [], "truncatedArrays": []}
    if isinstance(desc, RawBSONDocument) or list(desc) == [
        "updatedFields",
        "removedFields",
        "truncatedArrays",
    ]:
        return desc
    out = {
        "updatedFields": desc.get("updatedFields", {}),
        "removedFields": desc.get("removedFields", []),
        "truncatedArrays": desc.get("truncatedArrays", []),
    }
    out.update((k, v) for k, v in desc.items() if k not in out)
    return out


def _raw(doc: Any) -> bytes:
    return bytes(doc.raw) if isinstance(doc, RawBSONDocument) else encode(doc)


def _no_image(which: str, entry: ChangeEntry) -> errors.CommandError:
    shown = decode(entry.document_key) if entry.document_key else {}
    return errors.CommandError(
        NO_MATCHING_DOCUMENT,
        "NoMatchingDocument",
        f"Change stream was configured to require a {which} for all update, delete and replace events, "
        f"but the {which} was not found for event: {{documentKey: {shown}}}",
    )


# -- the cursor ---------------------------------------------------------------------------------
#: A cursor position as a plain tuple (time, inc, seq, flag): it orders like the resume token.
Position = tuple[int, int, int, int]


class ChangeStreamCursor:
    """A live change stream: ``getMore`` blocks up to ``maxTimeMS`` waiting for events.

    State: ``_read_from`` is the next change-log entry to read; outputs of entry ``_skip_seq``
    with a flag up to ``_skip_flag`` were already returned; ``_position`` is the
    ``postBatchResumeToken`` (the last returned event, or a high-water mark).
    """

    def __init__(
        self,
        server: StandinServer,
        scope: Scope,
        start: ResumeToken,
        *,
        owner: frozenset[tuple[str, str]],
        builder: EventBuilder,
        stages: list[Stage],
        visible: Callable[[ChangeEntry], bool] | None = None,
    ) -> None:
        self.ns = scope.ns
        self.owner = owner
        self._server = server
        self._changes: ChangeLog = server.store.changes
        self._scope = scope
        self._builder = builder
        self._stages = stages
        self._visible = visible
        # A high-water mark also says nothing before its cluster time is wanted (startAtOperationTime).
        self._min_ts = start.ts if start.flag == HWM else None
        self._position: Position = (start.time, start.inc, start.seq, start.flag)
        self._read_from = start.seq if start.flag < INVALIDATE else start.seq + 1
        self._skip_seq, self._skip_flag = start.seq, start.flag
        self._closed = False
        self._lock = threading.Lock()

    # -- Cursor protocol ----------------------------------------------------------------------
    @property
    def exhausted(self) -> bool:
        """True only once the stream was invalidated."""
        return self._closed

    @property
    def resume_token(self) -> ResumeToken:
        """The ``postBatchResumeToken``: resuming from it loses and repeats nothing."""
        return ResumeToken(*self._position)

    def extra_fields(self) -> dict[str, Any]:
        return {"postBatchResumeToken": {"_data": _token_data(*self._position)}}

    def next_batch(self, batch_size: int | None, max_await_ms: int | None) -> list[Any]:
        """Events available now; if none, wait up to ``max_await_ms`` (default 1 s) for some."""
        if self._closed or batch_size == 0:
            return []
        limit = batch_size if batch_size and batch_size > 0 else None
        wait_ms = DEFAULT_AWAIT_MS if max_await_ms is None else max(0, int(max_await_ms))
        deadline = time.monotonic() + wait_ms / 1000
        with self._lock:
            return self._collect(limit, deadline)

    # -- internals ----------------------------------------------------------------------------
    def _collect(self, limit: int | None, deadline: float) -> list[Any]:
        batch: list[Any] = []
        while True:
            full = self._fill(batch, limit)
            if batch or full or self._closed:
                return batch
            if self._catch_up():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return batch
                self._changes.wait_for(self._read_from, remaining)

    def _fill(self, batch: list[Any], limit: int | None) -> bool:
        """Append events to ``batch``; True when it is full or the stream was invalidated."""
        size = 0
        while True:
            if self._read_from < self._changes.first_retained_seq:
                raise history_lost()
            entries = self._changes.read(self._read_from, READ_CHUNK)
            if not entries:
                return False
            if entries[0].seq != self._read_from:
                raise history_lost()
            for entry in entries:
                size = self._take(entry, batch, limit, size)
                if self._closed or self._read_from == entry.seq:
                    return True  # invalidated, or stopped between an event and its invalidate
                if (limit is not None and len(batch) >= limit) or size >= MAX_BATCH_BYTES:
                    return True

    def _take(self, entry: ChangeEntry, batch: list[Any], limit: int | None, size: int) -> int:
        """Append the entry's outputs to ``batch`` and advance; returns the batch's new size."""
        flags = self._scope.outputs(entry)
        if flags and (
            (self._visible is not None and not self._visible(entry))
            or (self._min_ts is not None and entry.ts < self._min_ts)
        ):
            flags = _NOTHING
        emitted = False
        for flag in flags:
            if flag <= self._skip_flag and entry.seq == self._skip_seq:
                continue
            if limit is not None and len(batch) >= limit:  # an invalidate waits for the next batch
                self._skip_seq, self._skip_flag = entry.seq, flag - 1
                return size
            raw = self._builder.build(entry, flag)
            event = _apply(self._stages, decode(raw)) if self._stages else RawBSONDocument(raw)
            emitted = event is not None
            if emitted:
                batch.append(event)
                size += len(raw)
            self._position = (entry.ts.time, entry.ts.inc, entry.seq, flag)
            if flag == INVALIDATE:
                self._closed = True
                return size
        if not emitted:
            mark = max((entry.ts.time, entry.ts.inc), self._position[:2])
            self._position = (*mark, entry.seq + 1, HWM)
        self._read_from = entry.seq + 1
        return size

    def _catch_up(self) -> bool:
        """Every entry was read: make the token a high-water mark at the current cluster time.

        Cluster time and change-log position are taken together under the store lock, so the
        token sorts after every event read and before every later one. False when an entry
        arrived meanwhile (read again rather than wait); True if the store is busy.
        """
        store = self._server.store
        if not store.lock.acquire(timeout=0.05):
            return True
        try:
            now = store.clock.now()
            if self._changes.next_seq != self._read_from:
                return False
            mark = (now.time, now.inc, self._read_from, HWM)
            if mark > self._position:
                self._position = mark
            return True
        finally:
            store.lock.release()


# -- opening a stream ---------------------------------------------------------------------------
def aggregate(ctx: Context, cmd: Mapping[str, Any], pipeline: list[Any]) -> dict[str, Any]:
    """Answer an ``aggregate`` whose first stage is ``$changeStream`` or ``$listChangeStreams``."""
    first = pipeline[0]
    if not isinstance(first, Mapping) or len(first) != 1:
        raise errors.CommandError(
            40323, "Location40323", "A pipeline stage specification object must contain exactly one field."
        )
    if "$listChangeStreams" in first:
        return _list_change_streams(ctx, cmd, pipeline)
    if cmd.get("explain"):
        raise unknown_field_error("aggregate", "explain")
    options = parse_options(first["$changeStream"], ctx.flavour)
    scope = _scope_of(ctx, cmd, options)
    _authorize(ctx, scope)
    stages = compile_stages(pipeline[1:])
    server = ctx.server
    documentdb = ctx.flavour == "documentdb"
    if documentdb and _enabled_since(server, scope.enable_keys) is None:
        raise not_enabled()
    start = _start_token(server, scope, options)
    if documentdb:
        _check_after_enablement(server, scope, start)
    cursor = ChangeStreamCursor(
        server,
        scope,
        start,
        owner=frozenset(ctx.conn.principals),
        builder=EventBuilder(server, options.full_document, options.before_change),
        stages=stages,
        visible=_Visibility(server) if documentdb else None,
    )
    return cursor_reply(server.cursors, cursor, _first_batch_size(cmd), first=True, max_await_ms=0)


def _scope_of(ctx: Context, cmd: Mapping[str, Any], options: StreamOptions) -> Scope:
    target = cmd.get("aggregate")
    db = ctx.db
    if options.all_changes_for_cluster:
        if db != "admin" or isinstance(target, str):
            raise _invalid_namespace(
                "A $changeStream with 'allChangesForCluster:true' may only be opened on the 'admin' database, "
                f"and with no collection name; found {db}.{target if isinstance(target, str) else '$cmd.aggregate'}"
            )
        return Scope("cluster")
    if db in INTERNAL_DBS:
        raise _invalid_namespace(f"$changeStream may not be opened on the internal {db} database")
    if isinstance(target, str):
        if _is_system(target):
            raise _invalid_namespace(
                f"$changeStream may not be opened on the internal {db}.{target} collection"
            )
        return Scope("collection", db, target)
    if target == 1 and not isinstance(target, bool):
        return Scope("database", db)
    raise errors.failed_to_parse("Invalid aggregate namespace: 'aggregate' must be a collection name or 1")


def _authorize(ctx: Context, scope: Scope) -> None:
    """READ on the database; a cluster stream needs READ on every database."""
    if scope.level != "cluster":
        ctx.authorize(Action.READ, scope.db)
        return
    auth = ctx.server.auth
    principals = ctx.conn.principals
    # "" is no database's name: only privileges granted on every database apply to it.
    if not auth.is_authorized(principals, Action.READ, ""):
        ctx.authorize(Action.AUTHENTICATED, "admin")
        raise errors.unauthorized(
            "not authorized on admin to execute command { aggregate: 1, pipeline: "
            "[ { $changeStream: { allChangesForCluster: true } } ] }"
        )


def _start_token(server: StandinServer, scope: Scope, options: StreamOptions) -> ResumeToken:
    """Where the stream starts, checked against the retained change log."""
    changes = server.store.changes
    if options.resume_after is not None:
        if options.resume_after.flag == INVALIDATE:
            raise errors.CommandError(
                errors.INVALID_RESUME_TOKEN,
                "InvalidResumeToken",
                "Attempting to resume a change stream using 'resumeAfter' is not allowed from an invalidate "
                "notification.",
            )
        return _checked_token(changes, options.resume_after)
    if options.start_after is not None:
        return _checked_token(changes, options.start_after)
    if options.start_at is not None:
        return _start_at(changes, options.start_at)
    with server.store.lock:
        return ResumeToken.of(server.store.clock.now(), changes.next_seq, HWM)


def _checked_token(changes: ChangeLog, token: ResumeToken) -> ResumeToken:
    """The token itself, if the change log still holds the point it names."""
    next_seq = changes.next_seq
    if token.seq > next_seq or (token.flag != HWM and token.seq == next_seq):
        raise _fatal(f'cannot resume stream; the resume token was not found. {{_data: "{token.data}"}}')
    if token.seq < changes.first_retained_seq:  # an event token's own entry must be retained too
        raise history_lost()
    if token.flag != HWM:
        found = changes.read(token.seq, 1)
        if not found or found[0].seq != token.seq:
            raise history_lost()
        if found[0].ts != token.ts:
            raise _fatal(f'cannot resume stream; the resume token was not found. {{_data: "{token.data}"}}')
    return token


def _start_at(changes: ChangeLog, ts: Timestamp) -> ResumeToken:
    """``startAtOperationTime``: the first entry at or after ``ts`` (inclusive)."""
    if changes.first_retained_seq > 1:
        oldest = changes.oldest_ts()
        horizon = changes.wall.time() - (changes.retention_seconds or 0)
        if (oldest is not None and oldest > ts) or (oldest is None and ts.time < horizon):
            raise history_lost()
    seq = changes.first_seq_at_or_after(ts)
    if seq < changes.first_retained_seq:
        raise history_lost()
    return ResumeToken(ts.time, ts.inc, seq, HWM)


def _check_after_enablement(server: StandinServer, scope: Scope, start: ResumeToken) -> None:
    """DocumentDB refuses a start point older than the namespace's enablement (code 136)."""
    since = _enabled_since(server, scope.enable_keys)
    if since is not None and start.seq < since:
        raise not_enabled()


def _first_batch_size(cmd: Mapping[str, Any]) -> int | None:
    spec = cmd.get("cursor")
    size = spec.get("batchSize") if isinstance(spec, Mapping) else None
    if size is None:
        return None
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise errors.bad_value("cursor.batchSize must not be negative")
    return int(size)


# -- $listChangeStreams -------------------------------------------------------------------------
def _list_change_streams(ctx: Context, cmd: Mapping[str, Any], pipeline: list[Any]) -> dict[str, Any]:
    """DocumentDB's ``$listChangeStreams`` on ``admin``: the enabled namespaces."""
    if ctx.flavour != "documentdb":
        raise errors.CommandError(
            40324, "Location40324", "Unrecognized pipeline stage name: '$listChangeStreams'"
        )
    ctx.authorize(Action.READ, "admin")
    if ctx.db != "admin" or cmd.get("aggregate") != 1:
        raise _invalid_namespace(
            "$listChangeStreams must be run against the admin database with {aggregate: 1}"
        )
    stages = compile_stages(pipeline[1:], change_stream=False)
    docs = [doc for d in enabled_namespaces(ctx.server) if (doc := _apply(stages, d)) is not None]
    return {"cursor": {"firstBatch": docs, "id": Int64(0), "ns": "admin.$cmd.aggregate"}}
