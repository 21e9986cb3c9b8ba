"""Document commands: insert, update, delete, findAndModify, find, getMore, killCursors, count,
distinct and aggregate (``$changeStream`` pipelines go to ``changestreams``)."""

from __future__ import annotations

import datetime
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import bson
from bson.decimal128 import Decimal128
from bson.raw_bson import RawBSONDocument

from backover.bsonvalues import (
    RAW,
    canonical_key,
    decode,
    element_document,
    element_value,
    elements,
    embedded_document,
    encode,
    first_element,
    id_of,
    to_plain,
)
from backover.mongo import errors
from backover.mongo.ordering import is_number, sort_key, type_name
from backover.mongo.query import compile_filter
from backover.mongo.update import (
    apply_update,
    apply_update_result,
    check_update,
    update_description,
    upsert_seed,
)

from .. import changestreams, readopts
from ..cursors import ListCursor, cursor_reply
from ..readopts import (
    bool_option,
    compile_projection,
    int_option,
    parse_sort,
    resolve_hint,
    sort_pairs,
)
from ..registry import Action, Context, command
from ..sessions import TxnStatements, statement_ids
from ..store import Collection, Store, raw_document, with_id_first
from ..unsupported import check_fields, refuse_collation, unknown_field
from ..wire import DocumentSequence
from .pipeline import run_pipeline


def collection_name(cmd: Mapping[str, Any], name: str) -> str:
    value = cmd[name]
    if not isinstance(value, str) or not value:
        raise errors.invalid_namespace(f"collection name has invalid type {type(value).__name__}")
    return value


def write_error(index: int, e: errors.CommandError) -> dict[str, Any]:
    err: dict[str, Any] = {"index": index, "code": e.code, "errmsg": e.message}
    err.update(e.extra)
    return err


def _required(command: str, doc: Mapping[str, Any], field: str) -> Any:
    """``doc[field]``; mongod's IDL 40414 when a required field is missing."""
    if field not in doc:
        raise errors.missing_field(command, field)
    return doc[field]


def _typed(command: str, doc: Mapping[str, Any], field: str, kind: type, expected: str, default: Any) -> Any:
    """``doc[field]`` (``default`` when absent) of an IDL field of one BSON type; 14 otherwise."""
    value = doc.get(field, default)
    if field in doc and not (isinstance(value, kind) and (kind is bool or not isinstance(value, bool))):
        raise errors.type_mismatch(
            f"BSON field '{command}.{field}' is the wrong type '{type_name(value)}', expected type '{expected}'"
        )
    return value


def _ordered(command: str, cmd: Mapping[str, Any]) -> bool:
    """A write command's ``ordered`` (IDL type bool, default true)."""
    return bool(_typed(command, cmd, "ordered", bool, "bool", True))


# -- selecting documents ----------------------------------------------------------------------
def _id_values(flt: Mapping[str, Any]) -> list[Any] | None:
    """The ``_id``s a filter is limited to, when it is ``{_id: v}``, ``$eq`` or ``$in`` on ``_id``."""
    if "_id" not in flt:
        return None
    v = flt["_id"]
    if isinstance(v, Mapping) and v and next(iter(v)).startswith("$"):
        if set(v) == {"$eq"}:
            return [v["$eq"]]
        if (
            set(v) == {"$in"}
            and isinstance(v["$in"], list)
            and not any(isinstance(x, bson.regex.Regex) for x in v["$in"])
        ):
            return list(v["$in"])
        return None
    return [v]


def select(
    store: Store, coll: Collection | None, flt: Mapping[str, Any] | None
) -> Iterator[tuple[Any, bytes]]:
    """``(key, raw)`` of matching documents; filters on ``_id`` alone are dictionary lookups."""
    flt = to_plain(flt) if flt is not None else {}
    if not isinstance(flt, Mapping):
        raise errors.type_mismatch("filter must be an object")
    ids = _id_values(flt)
    matcher = None if (ids is not None and len(flt) == 1) or not flt else compile_filter(flt)
    keys = _unique_index_keys(coll, flt) if ids is None and flt and coll is not None else None
    return store.scan(coll, matcher, ids, keys)


#: Values an equality on a unique index's field is looked up for in the index (null, documents,
#: arrays, regular expressions and the rest match more than their own index key: those scan).
_LOOKED_UP = (str, int, float, bson.ObjectId, datetime.datetime)


def _unique_index_keys(coll: Collection, flt: Mapping[str, Any]) -> list[Any] | None:
    """The ``_id`` keys of the only documents that can match ``flt`` when it pins every field of a
    unique, non-partial index to a plain value, or is an ``$or`` of such clauses: mongod answers
    these from the index (the restore's holder lookups), so the stand-in does too instead of
    scanning; the filter still decides which of them match. None: scan."""
    if set(flt) == {"$or"}:
        clauses = flt["$or"]
        if not isinstance(clauses, list) or not clauses:
            return None
        keys: list[Any] = []
        for clause in clauses:
            found = _unique_index_keys(coll, clause) if isinstance(clause, Mapping) else None
            if found is None:
                return None
            keys += found
        return list(dict.fromkeys(keys))
    for ix in coll.unique_indexes():
        if ix.partial_filter is not None or ix.kind != "btree":
            continue
        values = [_pinned(flt, path) for path, _ in ix.key]
        if all(v is not _NOT_PINNED for v in values):
            holder = ix.holder(tuple(values))
            return [] if holder is None else [holder]
    return None


_NOT_PINNED = object()


def _pinned(flt: Mapping[str, Any], path: str) -> Any:
    """The plain value ``flt`` requires at ``path`` (``{path: v}`` or ``{path: {$eq: v}}``)."""
    if any(part.isdigit() for part in path.split(".")):
        return _NOT_PINNED  # an array position: the index key is not the element's
    value = flt.get(path, _NOT_PINNED)
    if isinstance(value, Mapping) and set(value) == {"$eq"}:
        value = value["$eq"]
    if not isinstance(value, _LOOKED_UP) or (isinstance(value, float) and value != value):
        return _NOT_PINNED
    return value


# -- writes -----------------------------------------------------------------------------------
#: mongod's BSONObjMaxUserSize: the largest document it stores.
MAX_DOCUMENT_SIZE = 16 * 1024 * 1024

_INSERT_FIELDS = ("documents", "ordered", "bypassDocumentValidation")
_UPDATE_FIELDS = ("updates", "ordered", "bypassDocumentValidation", "let")
_UPDATE_STATEMENT_FIELDS = ("q", "u", "multi", "upsert", "arrayFilters", "collation", "hint")
_DELETE_FIELDS = ("deletes", "ordered", "let")
_DELETE_STATEMENT_FIELDS = ("q", "limit", "collation", "hint")
_FIND_AND_MODIFY_FIELDS = (
    "query",
    "sort",
    "remove",
    "update",
    "new",
    "fields",
    "upsert",
    "bypassDocumentValidation",
    "arrayFilters",
    "collation",
    "hint",
    "let",
)
#: Type bytes of the ``_id`` values mongod refuses to store, with mongod's type names.
_INVALID_ID_TYPES = {4: "array", 6: "undefined", 11: "regex"}
_CHECKED_ID_TYPES = frozenset({3, *_INVALID_ID_TYPES})  # and documents, for $-prefixed fields


@dataclass
class UpdateOutcome:
    matched: int = 0
    modified: int = 0
    upserted: bool = False  # the statement inserted a document (its ``_id`` may be null)
    upserted_id: Any = None
    before: bytes | None = None
    after: bytes | None = None


def _refuse_unimplemented(ctx: Context, command: str, doc: Mapping[str, Any]) -> None:
    """Refuse the options of a write command or statement the stand-in does not run: a collation
    (other than the simple one), ``arrayFilters`` (no positional updates), ``let``."""
    refuse_collation(ctx, command, doc)
    if doc.get("arrayFilters"):
        raise unknown_field(ctx, command, "arrayFilters", documentdb_supports=True)
    if "let" in doc:
        raise unknown_field(ctx, command, "let", documentdb_supports=True)


def _scan_order(coll: Collection | None, hint: Any, command: str) -> readopts.SortPattern | None:
    """The order a ``hint`` scans documents in (the first match is the one a single-document write
    takes); a hint that names no index fails as mongod's planner does."""
    return readopts.resolve_hint(coll, hint, command) if hint is not None else None


def _is_replacement(update: Mapping[str, Any]) -> bool:
    """mongod's classification: a replacement unless the first field starts with ``$``."""
    first = next(iter(update), None)
    return first is None or not first.startswith("$")


def _id_element(raw: bytes) -> bytes | None:
    """The raw ``_id`` element of a document (type byte onwards), without decoding the rest."""
    first = first_element(raw)
    if first is None:
        return None
    if first[0] == "_id":
        return first[1]
    if b"_id\x00" not in raw:
        return None
    return elements(raw).get("_id")


def _dollar_field(doc: Mapping[str, Any]) -> str | None:
    """The first ``$``-prefixed field name mongod's storageValidEmbedded refuses (a DBRef's
    ``$ref``, ``$id`` and ``$db`` are allowed in that order), at any depth."""
    items = list(doc.items())
    start = 0
    if len(items) > 1 and items[0][0] == "$ref" and isinstance(items[0][1], str) and items[1][0] == "$id":
        start = 2
        if len(items) > 2 and items[2][0] == "$db" and isinstance(items[2][1], str):
            start = 3
    for name, value in items[start:]:
        if name.startswith("$"):
            return name
        found = _dollar_field_in(value)
        if found is not None:
            return found
    return None


def _dollar_field_in(value: Any) -> str | None:
    if isinstance(value, Mapping):
        return _dollar_field(value)
    if isinstance(value, list):
        for item in value:
            found = _dollar_field_in(item)
            if found is not None:
                return found
    return None


def check_id(raw: bytes) -> None:
    """Refuse an ``_id`` mongod does not store (storage_validation::storageValidIdField): an array,
    a regex or undefined (103 InvalidIdField), a document with a ``$``-prefixed field (52)."""
    element = _id_element(raw)
    if element is None:
        return
    kind = element[0]
    if kind in _INVALID_ID_TYPES:
        raise errors.CommandError(
            errors.INVALID_ID_FIELD,
            "InvalidIdField",
            f"The '_id' value cannot be of type {_INVALID_ID_TYPES[kind]}",
        )
    if kind == 3:
        embedded = embedded_document(element)
        if embedded is not None and b"$" in embedded:
            name = _dollar_field(decode(embedded))
            if name is not None:
                raise errors.CommandError(
                    errors.DOLLAR_PREFIXED_FIELD_NAME,
                    "DollarPrefixedFieldName",
                    f"_id fields may not contain '$'-prefixed fields: {name} is not valid for storage.",
                )


def check_insert(raw: bytes) -> None:
    """mongod's fixDocumentForInsert: the size (2 BadValue over 16 MiB), then the ``_id``."""
    if len(raw) > MAX_DOCUMENT_SIZE:
        raise errors.bad_value(
            f"object to insert too large. size in bytes: {len(raw)}, max size: {MAX_DOCUMENT_SIZE}"
        )
    if raw[5:9] != b"_id\x00" or raw[4] in _CHECKED_ID_TYPES:  # the common case: a scalar _id first
        check_id(raw)


def check_upsert(raw: bytes) -> None:
    """mongod's upsert stage: the ``_id`` (storage validation), then the size (17420)."""
    check_id(raw)
    if len(raw) > MAX_DOCUMENT_SIZE:
        raise errors.location(
            errors.UPSERT_RESULT_TOO_LARGE, f"Document to upsert is larger than {MAX_DOCUMENT_SIZE}"
        )


def check_updated_size(raw: bytes) -> None:
    """mongod's update stage: 17419 when the updated document is over 16 MiB."""
    if len(raw) > MAX_DOCUMENT_SIZE:
        raise errors.location(
            errors.UPDATE_RESULT_TOO_LARGE,
            f"Resulting document after update is larger than {MAX_DOCUMENT_SIZE}",
        )


def check_replacement_fields(raw: bytes) -> None:
    """A replacement of an existing document may not have ``$``-prefixed top-level fields (52)."""
    if b"$" not in raw:
        return
    for name in elements(raw):
        if name.startswith("$"):
            raise errors.CommandError(
                errors.DOLLAR_PREFIXED_FIELD_NAME,
                "DollarPrefixedFieldName",
                f"The dollar ($) prefixed field '{name}' in '{name}' is not allowed in the context of "
                "an update's replacement document. Consider using an aggregation pipeline with "
                "$replaceWith.",
            )


def apply_one_update(
    store: Store,
    coll: Collection,
    flt: Mapping[str, Any] | None,
    update: Any,
    *,
    multi: bool,
    upsert: bool,
    sort: readopts.SortPattern | None = None,
    order: readopts.SortPattern | None = None,
    command: str = "update",
) -> UpdateOutcome:
    """Apply one update statement (the caller holds ``store.lock``). The update is parsed before
    any document is read, as mongod parses it; ``order`` is a hint's scan order, ``sort`` a
    findAndModify's."""
    if isinstance(update, list):
        raise errors.bad_value("pipeline-style updates are not supported by the stand-in")
    if not isinstance(update, Mapping):
        raise errors.failed_to_parse("Update argument must be either an object or an array")
    plain_update = to_plain(update)
    replacement = _is_replacement(plain_update)
    if replacement and multi:
        raise errors.failed_to_parse("multi update is not supported for replacement-style update")
    if not replacement:
        check_update(plain_update)
    targets = list(select(store, coll, flt))
    targets = readopts.sort_pairs(targets, order, command) if order else targets
    targets = readopts.sort_pairs(targets, sort, command) if sort else targets
    if not multi:
        targets = targets[:1]
    outcome = UpdateOutcome()
    for key, old_raw in targets:
        outcome.matched += 1
        id_value = id_of(old_raw)
        if replacement:
            new_raw = _replacement_raw(update, id_value)
            check_updated_size(new_raw)
            if new_raw != old_raw:
                store.replace(coll, key, id_value, new_raw, op="replace")
                outcome.modified += 1
        else:
            before = decode(old_raw)
            applied = apply_update_result(before, plain_update, inserting=False)
            if applied.modified:  # mongod's verdict, even when the bytes end up the same
                new_raw = encode(applied.document)
                check_updated_size(new_raw)
                description = update_description(before, applied.document, applied.logged)
                store.update(coll, key, id_value, new_raw, description)
                outcome.modified += 1
        outcome.before, outcome.after = old_raw, coll.docs.get(key)
    if targets or not upsert:
        return outcome
    new_raw = _upsert_document(flt, update, plain_update, replacement)
    check_upsert(new_raw)
    store.insert(coll, new_raw)
    outcome.upserted = True
    outcome.upserted_id = id_of(new_raw)
    outcome.after = coll.docs[canonical_key(outcome.upserted_id)]
    return outcome


def _replacement_raw(update: Any, id_value: Any) -> bytes:
    raw = raw_document(update)
    check_replacement_fields(raw)
    doc = bson.decode(raw, RAW)
    if "_id" in doc and canonical_key(doc["_id"]) != canonical_key(id_value):
        raise errors.immutable_field(
            f"After applying the update, the (immutable) field '_id' was found to have been altered to _id: {doc['_id']!r}"
        )
    return with_id_first(raw, id_value)


def _upsert_document(
    flt: Mapping[str, Any] | None,
    update: Any,
    plain_update: dict[str, Any],
    replacement: bool,
) -> bytes:
    seed = upsert_seed(to_plain(flt) or {})
    if replacement:
        raw = raw_document(update)
        if "_id" in bson.decode(raw, RAW):
            return raw
        return with_id_first(raw, seed.get("_id", bson.ObjectId()))
    doc = apply_update(seed, plain_update, inserting=True)
    if "_id" not in doc:
        doc = {"_id": bson.ObjectId(), **doc}
    elif next(iter(doc)) != "_id":
        doc = {"_id": doc.pop("_id"), **doc}
    return encode(doc)


def _replace_statement(raw: bytes) -> tuple[bytes, bytes, bool] | None:
    """``(q, u, upsert)`` of a statement shaped exactly as drivers send ``ReplaceOne``/``UpdateOne``
    (``{q: {...}, u: {...}[, multi: false][, upsert: bool]}``), read straight from the bytes."""
    offsets = _replace_offsets(raw)
    if offsets is None:
        return None
    q_end, u_end, upsert = offsets
    return raw[7:q_end], raw[q_end + 3 : u_end], upsert


def _replace_offsets(raw: bytes) -> tuple[int, int, bool] | None:
    """Where :func:`_replace_statement`'s ``q`` and ``u`` end, and ``upsert``; None for another shape."""
    if raw[4:7] != b"\x03q\x00":
        return None
    q_end = 7 + int.from_bytes(raw[7:11], "little")
    if raw[q_end : q_end + 3] != b"\x03u\x00":
        return None
    u_start = q_end + 3
    u_end = pos = u_start + int.from_bytes(raw[u_start : u_start + 4], "little")
    upsert = False
    if raw[pos : pos + 7] == b"\x08multi\x00":
        if raw[pos + 7] != 0:
            return None
        pos += 8
    if raw[pos : pos + 8] == b"\x08upsert\x00":
        upsert = raw[pos + 8] != 0
        pos += 9
    if pos != len(raw) - 1:
        return None  # other fields (arrayFilters, collation, hint...): the general path
    return q_end, u_end, upsert


def replace_by_id(
    store: Store, coll: Collection, parts: tuple[bytes, bytes, bool] | None
) -> UpdateOutcome | None:
    """The restore's hot path, ``ReplaceOne({_id: x}, doc, upsert=True)`` (``parts`` from
    :func:`_replace_statement`), without decoding the document; None when the statement is
    anything else (the general path handles it)."""
    if parts is None:
        return None
    q_raw, u_raw, upsert = parts
    q_first = first_element(q_raw)
    if (
        q_first is None
        or q_first[0] != "_id"
        or len(q_raw) != len(q_first[1]) + 5
        or q_first[1][0] in (3, 4, 6, 11)
    ):
        return None  # not exactly {_id: <scalar>}
    id_element = q_first[1]
    u_first = first_element(u_raw)
    if u_first is not None and u_first[0].startswith("$"):
        return None  # operator update
    if u_first is not None and u_first[0] == "_id":
        if u_first[1] != id_element:
            return None  # a differently encoded or different _id: the general path decides
        new_raw = u_raw
    elif b"_id\x00" in u_raw:
        return None  # an _id further down: the general path moves or checks it
    else:
        body = id_element + u_raw[4:]
        new_raw = (len(body) + 4).to_bytes(4, "little") + body
    id_value = element_value(id_element)
    key = canonical_key(id_value)
    old = coll.docs.get(key)
    outcome = UpdateOutcome(before=old, after=new_raw)
    if old is None:
        if not upsert:
            return UpdateOutcome()
        if len(new_raw) > MAX_DOCUMENT_SIZE:
            check_upsert(new_raw)  # the _id is a valid scalar: the size check raises
        store.replace(coll, key, id_value, new_raw, op="insert", document_key=element_document(id_element))
        outcome.upserted = True
        outcome.upserted_id = id_value
        return outcome
    outcome.matched = 1
    if b"$" in u_raw:
        check_replacement_fields(u_raw)
    if len(new_raw) > MAX_DOCUMENT_SIZE:
        check_updated_size(new_raw)
    if old != new_raw:
        store.replace(coll, key, id_value, new_raw, op="replace", document_key=element_document(id_element))
        outcome.modified = 1
    return outcome


class _Retries:
    """A write command's retryable-write record (its ``(lsid, txnNumber)``, which the server's
    dispatch has validated): statement ``i``'s id, and what it did if it already ran."""

    def __init__(self, ctx: Context, cmd: Mapping[str, Any], count: int) -> None:
        self.record: TxnStatements | None = None
        self.ids: list[int] = []
        self.retried: list[int] = []  # the reply's retriedStmtIds
        self.seen = False  # whether any statement of this transaction number already ran
        if "txnNumber" in cmd:
            self.record = ctx.server.retryable.begin(cmd["lsid"], int(cmd["txnNumber"]))
            self.ids = statement_ids(cmd, count)
            self.seen = bool(self.record.executed)

    @property
    def retryable(self) -> bool:
        return self.record is not None

    def done(self, i: int) -> Any:
        """What statement ``i`` did when it first ran (noted as retried), or None."""
        if not self.seen or self.record is None:
            return None
        outcome = self.record.get(self.ids[i])
        if outcome is not None:
            self.retried.append(self.ids[i])
        return outcome

    def put(self, i: int, outcome: Any) -> None:
        if self.record is not None:
            self.record.put(self.ids[i], outcome)

    def put_all(self, indexes: list[int], outcome: Any) -> None:
        """Record statements ``indexes`` as having done ``outcome`` (inserts and deletes: True)."""
        if self.record is not None:
            ids = self.ids
            self.record.executed.update(dict.fromkeys([ids[i] for i in indexes], outcome))


def _not_retryable(what: str) -> errors.CommandError:
    return errors.CommandError(
        errors.INVALID_OPTIONS, "InvalidOptions", f"Cannot use (or request) retryable writes with {what}"
    )


def _write_reply(
    n: int, write_errors: list[dict[str, Any]], retried: list[int], **counts: Any
) -> dict[str, Any]:
    reply: dict[str, Any] = {"n": n, **{k: v for k, v in counts.items() if v is not None}}
    if retried:
        reply["retriedStmtIds"] = retried
    if write_errors:
        reply["writeErrors"] = write_errors
    return reply


@command("insert", action=Action.WRITE)
def insert(ctx: Context, cmd: Mapping[str, Any]) -> dict[str, Any]:
    name = collection_name(cmd, "insert")
    check_fields(ctx, cmd, "insert", _INSERT_FIELDS)
    ordered = _ordered("insert", cmd)
    _required("insert", cmd, "documents")
    n, write_errors = 0, []
    with ctx.store.lock:
        coll = ctx.store.ensure(ctx.db, name)
        documents = cmd.get("documents", [])
        raw_items = _raw_items(documents)
        retries = _Retries(ctx, cmd, len(raw_items))
        seen, inserted = retries.seen, []
        for i, raw in enumerate(raw_items):
            if seen and retries.done(i) is not None:
                n += 1
                continue
            try:
                raw = raw if raw is not None else raw_document(documents[i])
                if len(raw) > MAX_DOCUMENT_SIZE or raw[5:9] != b"_id\x00" or raw[4] in _CHECKED_ID_TYPES:
                    check_insert(raw)  # else: a scalar _id first, a size within the limit
                ctx.store.insert(coll, raw)
                inserted.append(i)
            except errors.CommandError as e:
                write_errors.append(write_error(i, e))
                if ordered:
                    break
        n += len(inserted)
        retries.put_all(inserted, True)
    return _write_reply(n, write_errors, retries.retried)


def _raw_items(statements: Any) -> Sequence[bytes | None]:
    """The raw bytes of each statement (None for one that is not a raw document)."""
    if isinstance(statements, DocumentSequence):
        return statements.raw_items()
    return [bytes(s.raw) if isinstance(s, RawBSONDocument) else None for s in statements]


def _check_statements(
    ctx: Context,
    command: str,
    statements: Any,
    raw_statements: Sequence[bytes | None],
    accepted: tuple[str, ...],
) -> tuple[list[int], list[int]]:
    """mongod parses a write command whole before it runs a statement: an unknown field of a
    statement, or an option the stand-in does not run, fails the command (not one statement).
    The restore's ``ReplaceOne`` statements (only q, u, multi, upsert) are not decoded: returns
    where each one's ``q`` and ``u`` end (``u``'s end doubled, plus 1 for ``upsert: true``; 0 for
    any other statement), flat lists of ints that the loop slices without parsing again."""
    q_ends = [0] * len(raw_statements)
    u_ends = [0] * len(raw_statements)
    for i, raw in enumerate(raw_statements):
        offsets = _replace_offsets(raw) if raw is not None else None
        if offsets is not None:
            q_ends[i], u_ends[i] = offsets[0], 2 * offsets[1] + offsets[2]
            continue
        stmt = statements[i]
        if not isinstance(stmt, Mapping):
            raise errors.type_mismatch(
                f"BSON field '{command}.{i}' is the wrong type '{type(stmt).__name__}', expected type 'object'"
            )
        check_fields(ctx, stmt, command, accepted, generic=False)
        _typed(command, stmt, "q", Mapping, "object", None)
        _required(command, stmt, "q")
        if command == "delete.deletes":
            if _required(command, stmt, "limit") not in (0, 1) or isinstance(stmt["limit"], bool):
                raise errors.failed_to_parse("The limit field in delete objects must be 0 or 1")
        else:
            _required(command, stmt, "u")
            _typed(command, stmt, "multi", bool, "bool", False)
            _typed(command, stmt, "upsert", bool, "bool", False)
        _refuse_unimplemented(ctx, command, stmt)
    return q_ends, u_ends


def _update_statement(
    ctx: Context, coll: Collection, stmt: Mapping[str, Any], *, retryable: bool
) -> UpdateOutcome:
    multi = bool(stmt.get("multi", False))
    if multi and retryable:
        raise _not_retryable("multi=true")
    return apply_one_update(
        ctx.store,
        coll,
        stmt.get("q"),
        stmt.get("u"),
        multi=multi,
        upsert=bool(stmt.get("upsert", False)),
        order=_scan_order(coll, stmt.get("hint"), "update"),
    )


@command("update", action=Action.WRITE)
def update(ctx: Context, cmd: Mapping[str, Any]) -> dict[str, Any]:
    name = collection_name(cmd, "update")
    check_fields(ctx, cmd, "update", _UPDATE_FIELDS)
    _refuse_unimplemented(ctx, "update", cmd)
    ordered = _ordered("update", cmd)
    _required("update", cmd, "updates")
    n = modified = 0
    upserted: list[dict[str, Any]] = []
    write_errors: list[dict[str, Any]] = []
    with ctx.store.lock:
        coll = ctx.store.ensure(ctx.db, name)
        statements = cmd.get("updates", [])
        raw_statements = _raw_items(statements)
        q_ends, u_ends = _check_statements(
            ctx, "update.updates", statements, raw_statements, _UPDATE_STATEMENT_FIELDS
        )
        retries = _Retries(ctx, cmd, len(raw_statements))
        done = retries.done if retries.seen else None
        retryable, updated = retries.retryable, []
        for i, stmt_raw in enumerate(raw_statements):
            outcome = _retried(done(i)) if done is not None else None  # a retry: what it did first
            if outcome is None:
                try:
                    q_end = q_ends[i]
                    if q_end and stmt_raw is not None:
                        u_end, upsert = divmod(u_ends[i], 2)
                        parts = stmt_raw[7:q_end], stmt_raw[q_end + 3 : u_end], bool(upsert)
                        outcome = replace_by_id(ctx.store, coll, parts)
                    else:
                        outcome = None
                    if outcome is None:
                        outcome = _update_statement(ctx, coll, statements[i], retryable=retries.retryable)
                except errors.CommandError as e:
                    write_errors.append(write_error(i, e))
                    if ordered:
                        break
                    continue
                if retryable and outcome.upserted:  # what wrote is recorded, as mongod does
                    retries.put(i, (outcome.upserted_id,))
                elif retryable and outcome.modified:
                    updated.append(i)
            n += outcome.matched
            modified += outcome.modified
            if outcome.upserted:
                n += 1
                upserted.append({"index": i, "_id": outcome.upserted_id})
        retries.put_all(updated, _RETRIED_UPDATE)
    return _write_reply(n, write_errors, retries.retried, nModified=modified, upserted=upserted or None)


#: What a retried update statement answers, read back from its oplog entry as mongod does: an
#: update is n 1, nModified 1 (an upsert: n 1 and the upserted ``_id``, recorded as ``(_id,)``).
_RETRIED_UPDATE = UpdateOutcome(matched=1, modified=1)


def _retried(recorded: Any) -> UpdateOutcome | None:
    if recorded is None or recorded is _RETRIED_UPDATE:
        return recorded
    return UpdateOutcome(upserted=True, upserted_id=recorded[0])


@command("delete", action=Action.WRITE)
def delete(ctx: Context, cmd: Mapping[str, Any]) -> dict[str, Any]:
    name = collection_name(cmd, "delete")
    check_fields(ctx, cmd, "delete", _DELETE_FIELDS)
    _refuse_unimplemented(ctx, "delete", cmd)
    ordered = _ordered("delete", cmd)
    _required("delete", cmd, "deletes")
    n, write_errors = 0, []
    with ctx.store.lock:
        coll = ctx.store.get(ctx.db, name)
        statements = cmd.get("deletes", [])
        _check_statements(
            ctx, "delete.deletes", statements, [None] * len(statements), _DELETE_STATEMENT_FIELDS
        )
        retries = _Retries(ctx, cmd, len(statements))
        for i, stmt in enumerate(statements):
            if retries.done(i) is not None:
                n += 1
                continue
            try:
                limit = stmt.get("limit", 0)
                if limit == 0 and retries.retryable:
                    raise _not_retryable("limit=0")
                order = _scan_order(coll, stmt.get("hint"), "delete")
                targets = list(select(ctx.store, coll, stmt.get("q")))
                targets = readopts.sort_pairs(targets, order, "delete") if order else targets
                for key, _ in targets[:1] if limit == 1 else targets:
                    ctx.store.delete(coll, key)
                    n += 1
                    retries.put(i, True)
            except errors.CommandError as e:
                write_errors.append(write_error(i, e))
                if ordered:
                    break
    return _write_reply(n, write_errors, retries.retried)


def _check_find_and_modify(cmd: Mapping[str, Any]) -> tuple[bool, Any]:
    """``(remove, update)`` of a findAndModify, with mongod's checks of their combinations."""
    remove = bool(cmd.get("remove", False))
    upd = cmd.get("update")
    if not remove and upd is None:
        raise errors.failed_to_parse("Either an update or remove=true must be specified")
    if remove:
        if upd is not None:
            raise errors.failed_to_parse("Cannot specify both an update and remove=true")
        if cmd.get("upsert", False):
            raise errors.failed_to_parse("Cannot specify both upsert=true and remove=true ")
        if cmd.get("new", False):
            raise errors.failed_to_parse(
                "Cannot specify both new=true and remove=true; 'remove' always returns the deleted document"
            )
        if "arrayFilters" in cmd:
            raise errors.failed_to_parse("Cannot specify arrayFilters and remove=true")
    return remove, upd


@command("findAndModify", "findandmodify", action=Action.WRITE)
def find_and_modify(ctx: Context, cmd: Mapping[str, Any]) -> dict[str, Any]:
    command_name = cmd.name  # type: ignore[attr-defined]
    name = collection_name(cmd, command_name)
    check_fields(ctx, cmd, command_name, _FIND_AND_MODIFY_FIELDS)
    remove, upd = _check_find_and_modify(cmd)
    _refuse_unimplemented(ctx, command_name, cmd)
    sort = readopts.parse_sort(cmd.get("sort"), "findAndModify")
    projector = readopts.compile_projection(cmd.get("fields"), "findAndModify", "fields")
    with ctx.store.lock:
        retries = _Retries(ctx, cmd, 1)
        if (done := retries.done(0)) is not None:
            return {**done, "retriedStmtId": retries.ids[0]}
        if remove:
            coll = ctx.store.get(ctx.db, name)
            targets = list(select(ctx.store, coll, cmd.get("query")))
            order = _scan_order(coll, cmd.get("hint"), "findAndModify")
            targets = readopts.sort_pairs(targets, order, "findAndModify") if order else targets
            targets = readopts.sort_pairs(targets, sort, "findAndModify")[:1] if sort else targets[:1]
            for key, _ in targets:
                ctx.store.delete(coll, key)
            value = _shown(targets[0][1] if targets else None, projector)
            reply = {"lastErrorObject": {"n": len(targets)}, "value": value}
            if targets:
                retries.put(0, reply)
            return reply
        coll = ctx.store.ensure(ctx.db, name)
        outcome = apply_one_update(
            ctx.store,
            coll,
            cmd.get("query"),
            upd,
            multi=False,
            upsert=bool(cmd.get("upsert", False)),
            sort=sort,
            order=_scan_order(coll, cmd.get("hint"), "findAndModify"),
            command="findAndModify",
        )
        shown = outcome.after if cmd.get("new", False) else outcome.before
        last: dict[str, Any] = {
            "n": outcome.matched or int(outcome.upserted),
            "updatedExisting": bool(outcome.matched),
        }
        if outcome.upserted:
            last["upserted"] = outcome.upserted_id
        reply = {"lastErrorObject": last, "value": _shown(shown, projector)}
        if outcome.modified or outcome.upserted:
            retries.put(0, reply)
        return reply


def _shown(raw: bytes | None, projector: readopts.Projector | None) -> RawBSONDocument | None:
    if raw is None:
        return None
    return RawBSONDocument(raw if projector is None else projector(raw))


# -- reads ------------------------------------------------------------------------------------
def _owner(ctx: Context) -> frozenset[tuple[str, str]]:
    return frozenset(ctx.conn.principals)


def _batch_size(value: Any, command: str = "find") -> int | None:
    """A ``batchSize`` (find, getMore, aggregate's ``cursor``): a number >= 0, truncated."""
    return int_option(command, "batchSize", value)


#: The fields find runs (or accepts at their neutral value), and those without an observable
#: effect on a single in-memory node; any other field is refused (40415 / DocumentDB's 303).
_FIND_FIELDS = frozenset(
    {
        "filter",
        "projection",
        "sort",
        "hint",
        "skip",
        "limit",
        "batchSize",
        "singleBatch",
        "collation",
        "min",
        "max",
        "returnKey",
        "showRecordId",
        "tailable",
        "awaitData",
        "allowDiskUse",
        "noCursorTimeout",
        "allowPartialResults",
        "oplogReplay",
        "readOnce",
        "allowSpeculativeMajorityRead",
        "$queryOptions",
    }
)
#: find's fields that the stand-in accepts only at the value that changes nothing.
_FIND_NEUTRAL_FLAGS = ("returnKey", "showRecordId", "tailable", "awaitData")
_FIND_NEUTRAL_BOUNDS = ("min", "max")
_FIND_NO_EFFECT_FLAGS = ("allowDiskUse", "noCursorTimeout", "allowPartialResults", "readOnce")


@command("find", action=Action.READ)
def find(ctx: Context, cmd: Mapping[str, Any]) -> dict[str, Any]:
    name = collection_name(cmd, "find")
    check_fields(ctx, cmd, "find", _FIND_FIELDS)
    refuse_collation(ctx, "find", cmd)
    for field in _FIND_NEUTRAL_FLAGS:
        if bool_option(field, cmd.get(field)):
            raise unknown_field(ctx, "find", field)
    for field in _FIND_NEUTRAL_BOUNDS:
        if cmd.get(field):  # an empty or null bound is ignored, as by mongod
            raise unknown_field(ctx, "find", field)
    for field in _FIND_NO_EFFECT_FLAGS:
        bool_option(field, cmd.get(field))
    skip = int_option("find", "skip", cmd.get("skip")) or 0
    limit = int_option("find", "limit", cmd.get("limit")) or 0
    batch_size = _batch_size(cmd.get("batchSize"))
    single = bool_option("singleBatch", cmd.get("singleBatch"))
    projector = compile_projection(cmd.get("projection"), "find", "projection")
    sort = parse_sort(cmd.get("sort") or None, "find", natural=True)
    with ctx.store.lock:
        coll = ctx.store.get(ctx.db, name)
        scan_order = resolve_hint(coll, cmd.get("hint"), "find")
        docs = list(select(ctx.store, coll, cmd.get("filter")))
    docs = sort_pairs(sort_pairs(docs, scan_order, "find"), sort, "find")
    docs = docs[skip:]
    if limit:
        docs = docs[:limit]
    raws = (raw for _, raw in docs) if projector is None else (projector(raw) for _, raw in docs)
    cursor = ListCursor(f"{ctx.db}.{name}", raws, _owner(ctx))
    cursor.no_timeout = bool_option("noCursorTimeout", cmd.get("noCursorTimeout"))
    return cursor_reply(
        ctx.server.cursors,
        cursor,
        batch_size,
        first=True,
        single_batch=single or coll is None and batch_size == 0,
    )


@command("getMore", action=Action.READ)
def get_more(ctx: Context, cmd: Mapping[str, Any]) -> dict[str, Any]:
    check_fields(ctx, cmd, "getMore", ("collection", "batchSize", "term", "lastKnownCommittedOpTime"))
    cursor_id = int(cmd["getMore"])
    batch_size = _batch_size(cmd.get("batchSize"), "getMore")
    cursor = ctx.server.cursors.get(cursor_id, _owner(ctx))
    expected = f"{ctx.db}.{cmd.get('collection')}"
    if cursor.ns != expected and not cursor.ns.endswith(".$cmd.aggregate"):
        raise errors.unauthorized(
            f"Requested getMore on namespace '{expected}', but cursor belongs to '{cursor.ns}'"
        )
    if "maxTimeMS" in cmd and isinstance(cursor, ListCursor):  # only change streams await data
        raise errors.bad_value("cannot set maxTimeMS on getMore command for a non-awaitData cursor")
    return cursor_reply(
        ctx.server.cursors,
        cursor,
        batch_size,
        first=False,
        max_await_ms=cmd.get("maxTimeMS"),
        cursor_id=cursor_id,
    )


@command("killCursors", action=Action.READ)
def kill_cursors(ctx: Context, cmd: Mapping[str, Any]) -> dict[str, Any]:
    check_fields(ctx, cmd, "killCursors", ("cursors",))
    killed: list[Any] = []
    not_found: list[Any] = []
    for cursor_id in cmd.get("cursors", []):
        (killed if ctx.server.cursors.close(int(cursor_id)) else not_found).append(cursor_id)
    return {"cursorsKilled": killed, "cursorsNotFound": not_found, "cursorsAlive": [], "cursorsUnknown": []}


#: count's fields (``fields`` is the shell's, ignored by mongod too).
_COUNT_FIELDS = frozenset({"query", "limit", "skip", "hint", "collation", "fields", "$queryOptions"})


def _count_number(field: str, value: Any) -> int:
    """count's ``limit`` / ``skip`` as mongod's count parser reads them: a number with an integral
    value (a negative limit counts as its absolute value, a negative skip fails)."""
    if value is None:
        return 0
    if isinstance(value, bool) or not is_number(value):
        raise errors.bad_value(f"{field} value is not a valid number")
    number = value.to_decimal() if isinstance(value, Decimal128) else value
    if number != number or number in (float("inf"), float("-inf")) or number != int(number):
        raise errors.failed_to_parse(f"Expected an integer: {field}: {value}")
    if field == "skip" and number < 0:
        raise errors.failed_to_parse(f"Expected a non-negative number in: {field}: {value}")
    return abs(int(number))


@command("count", action=Action.READ)
def count(ctx: Context, cmd: Mapping[str, Any]) -> dict[str, Any]:
    name = collection_name(cmd, "count")
    check_fields(ctx, cmd, "count", _COUNT_FIELDS)
    refuse_collation(ctx, "count", cmd)
    skip = _count_number("skip", cmd.get("skip"))
    limit = _count_number("limit", cmd.get("limit"))
    with ctx.store.lock:
        coll = ctx.store.get(ctx.db, name)
        resolve_hint(coll, cmd.get("hint"), "count")  # a hint changes no count (partial ones are refused)
        query = cmd.get("query")
        n = (
            len(coll.docs)
            if coll is not None and not query
            else sum(1 for _ in select(ctx.store, coll, query))
        )
    n = max(0, n - skip)
    if limit:
        n = min(n, limit)
    return {"n": n}


_MISSING = object()


def _field_of(value: Any, name: str) -> Any:
    """``value[name]`` of a document, or of an array by its position ("0", "1"...)."""
    if isinstance(value, Mapping):
        return value.get(name, _MISSING)
    if isinstance(value, list) and name.isascii() and name.isdigit() and str(int(name)) == name:
        index = int(name)
        return value[index] if index < len(value) else _MISSING
    return _MISSING


def _distinct_values(value: Any, parts: list[str], out: list[Any]) -> None:
    """The values distinct takes from ``value`` at ``parts``, as mongod extracts them along a path:
    the arrays met on the way are traversed (their documents; positionally when the next part is
    a number), a trailing array gives its elements, a missing path gives nothing."""
    found = _field_of(value, parts[0])
    if found is _MISSING:
        return
    rest = parts[1:]
    if not rest:
        out.extend(found) if isinstance(found, list) else out.append(found)
    elif isinstance(found, Mapping):
        _distinct_values(found, rest, out)
    elif isinstance(found, list):
        if rest[0][:1].isdigit():
            _distinct_values(found, rest, out)
        else:
            for element in found:
                if isinstance(element, Mapping):
                    _distinct_values(element, rest, out)


@command("distinct", action=Action.READ)
def distinct(ctx: Context, cmd: Mapping[str, Any]) -> dict[str, Any]:
    name = collection_name(cmd, "distinct")
    check_fields(ctx, cmd, "distinct", ("key", "query"))
    refuse_collation(ctx, "distinct", cmd)
    key = cmd.get("key")
    if not isinstance(key, str):
        raise errors.failed_to_parse("distinct key must be a string")
    parts = key.split(".")
    seen: dict[Any, Any] = {}
    with ctx.store.lock:
        coll = ctx.store.get(ctx.db, name)
        for _, raw in select(ctx.store, coll, cmd.get("query")):
            values: list[Any] = []
            _distinct_values(decode(raw), parts, values)
            for v in values:
                seen.setdefault(canonical_key(v), v)
    return {"values": sorted(seen.values(), key=sort_key)}


#: aggregate's fields that the stand-in runs, or that have no observable effect on it.
_AGGREGATE_FIELDS = frozenset(
    {
        "pipeline",
        "cursor",
        "explain",
        "allowDiskUse",
        "bypassDocumentValidation",
        "collation",
        "hint",
        "$queryOptions",
    }
)


@command("aggregate", action=Action.CUSTOM)
def aggregate(ctx: Context, cmd: Mapping[str, Any]) -> dict[str, Any]:
    pipeline = to_plain(cmd.get("pipeline"))
    if not isinstance(pipeline, list):
        raise errors.type_mismatch("'pipeline' option must be specified as an array")
    # The command's fields are parsed before the pipeline runs, for change streams too.
    check_fields(ctx, cmd, "aggregate", _AGGREGATE_FIELDS)
    refuse_collation(ctx, "aggregate", cmd)
    if isinstance(cmd.get("cursor"), Mapping):
        check_fields(ctx, cmd["cursor"], "aggregate.cursor", ("batchSize",), generic=False)
    if pipeline and next(iter(pipeline[0]), None) in ("$changeStream", "$listChangeStreams"):
        return changestreams.aggregate(ctx, cmd, pipeline)
    ctx.authorize(Action.READ)
    if bool_option("explain", cmd.get("explain")):
        raise unknown_field(ctx, "aggregate", "explain", documentdb_supports=True)
    bool_option("allowDiskUse", cmd.get("allowDiskUse"))
    options = cmd.get("cursor")
    if options is None:
        raise errors.failed_to_parse(
            "The 'cursor' option is required, except for aggregate with the explain argument"
        )
    if not isinstance(options, Mapping):
        raise errors.type_mismatch("cursor field must be missing or an object")
    batch_size = _batch_size(options.get("batchSize"), "aggregate")
    target = cmd.get("aggregate")
    if not isinstance(target, str):
        raise errors.bad_value("aggregate without a collection is supported only for $changeStream")
    with ctx.store.lock:
        coll = ctx.store.get(ctx.db, target)
        scan_order = resolve_hint(coll, cmd.get("hint"), "aggregate")
        docs = list(select(ctx.store, coll, None))
    docs = sort_pairs(docs, scan_order, "aggregate")
    results = run_pipeline([raw for _, raw in docs], pipeline, ctx)
    cursor = ListCursor(f"{ctx.db}.{target}", iter(results), _owner(ctx))
    return cursor_reply(ctx.server.cursors, cursor, batch_size, first=True)
