"""Document commands: insert, update, delete, findAndModify, find, getMore, killCursors, count,
distinct and aggregate (``$changeStream`` pipelines go to ``changestreams``)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import bson
from bson.raw_bson import RawBSONDocument

from backover.bsonvalues import (
    RAW,
    canonical_key,
    decode,
    element_document,
    element_value,
    encode,
    first_element,
    to_plain,
)
from backover.mongo import errors
from backover.mongo.ordering import sort_key
from backover.mongo.query import compile_filter
from backover.mongo.update import apply_update, is_replacement, update_description, upsert_seed

from .. import changestreams
from ..cursors import ListCursor, cursor_reply
from ..registry import Action, Context, command
from ..store import Collection, Store, raw_document, with_id_first
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
    return store.scan(coll, matcher, ids)


def sort_docs(docs: list[tuple[Any, bytes]], sort: Mapping[str, Any] | None) -> list[tuple[Any, bytes]]:
    """Sort ``(key, raw)`` pairs by a sort specification (stable, MongoDB's BSON order)."""
    if not sort:
        return docs
    spec = list(to_plain(sort).items())
    decoded = [(decode(pair[1]), pair) for pair in docs]
    for field, direction in reversed(spec):
        if direction not in (1, -1):
            raise errors.bad_value(
                f"$sort key ordering must be 1 (for ascending) or -1 (for descending): {field}"
            )

        def key(item: tuple[dict[str, Any], Any], f: str = field) -> Any:
            return sort_key(_get_path(item[0], f))

        decoded.sort(key=key, reverse=direction == -1)
    return [pair for _, pair in decoded]


def _get_path(doc: Any, path: str) -> Any:
    for part in path.split("."):
        if isinstance(doc, Mapping):
            doc = doc.get(part)
        elif isinstance(doc, list) and part.isdigit() and int(part) < len(doc):
            doc = doc[int(part)]
        else:
            return None
    return doc


def project(raw: bytes, projection: Mapping[str, Any] | None) -> bytes:
    """Apply a projection of top-level field inclusions or exclusions."""
    if not projection:
        return raw
    spec = to_plain(projection)
    doc = decode(raw)
    include_id = bool(spec.pop("_id", 1))
    for field, flag in spec.items():
        if "." in field or isinstance(flag, Mapping) or field.startswith("$"):
            raise errors.bad_value(
                f"projection {field!r} is not supported by the stand-in (top-level fields only)"
            )
    flags = {bool(f) for f in spec.values()}
    if len(flags) > 1:
        raise errors.CommandError(
            31254, "Location31254", "Cannot do exclusion on field in inclusion projection"
        )
    if flags == {True}:
        out = {k: v for k, v in doc.items() if k in spec or (k == "_id" and include_id)}
    else:
        out = {k: v for k, v in doc.items() if k not in spec and (k != "_id" or include_id)}
    return encode(out)


# -- writes -----------------------------------------------------------------------------------
@dataclass
class UpdateOutcome:
    matched: int = 0
    modified: int = 0
    upserted_id: Any = None
    before: bytes | None = None
    after: bytes | None = None


def apply_one_update(
    store: Store,
    coll: Collection,
    flt: Mapping[str, Any] | None,
    update: Any,
    *,
    multi: bool,
    upsert: bool,
    sort: Mapping[str, Any] | None = None,
    array_filters: list[Any] | None = None,
) -> UpdateOutcome:
    """Apply one update statement (the caller holds ``store.lock``)."""
    if isinstance(update, list):
        raise errors.bad_value("pipeline-style updates are not supported by the stand-in")
    if not isinstance(update, Mapping):
        raise errors.failed_to_parse("Update argument must be either an object or an array")
    plain_update = to_plain(update)
    replacement = is_replacement(plain_update)
    if replacement and multi:
        raise errors.failed_to_parse("multi update is not supported for replacement-style update")
    targets = list(select(store, coll, flt))
    if sort:
        targets = sort_docs(targets, sort)
    if not multi:
        targets = targets[:1]
    outcome = UpdateOutcome()
    for key, old_raw in targets:
        outcome.matched += 1
        id_value = bson.decode(old_raw, RAW)["_id"]
        if replacement:
            new_raw = _replacement_raw(update, id_value)
            if new_raw != old_raw:
                store.replace(coll, key, id_value, new_raw, op="replace")
                outcome.modified += 1
        else:
            before = decode(old_raw)
            after = apply_update(before, plain_update, inserting=False, array_filters=to_plain(array_filters))
            new_raw = encode(after)
            if new_raw != old_raw:
                store.update(coll, key, id_value, new_raw, update_description(before, after))
                outcome.modified += 1
        outcome.before, outcome.after = old_raw, coll.docs.get(key)
    if targets or not upsert:
        return outcome
    new_raw = _upsert_document(flt, update, plain_update, replacement, array_filters)
    store.insert(coll, new_raw)
    outcome.upserted_id = bson.decode(new_raw, RAW)["_id"]
    outcome.after = coll.docs[canonical_key(outcome.upserted_id)]
    return outcome


def _replacement_raw(update: Any, id_value: Any) -> bytes:
    raw = raw_document(update)
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
    array_filters: Any,
) -> bytes:
    seed = upsert_seed(to_plain(flt) or {})
    if replacement:
        raw = raw_document(update)
        if "_id" in bson.decode(raw, RAW):
            return raw
        return with_id_first(raw, seed.get("_id", bson.ObjectId()))
    doc = apply_update(seed, plain_update, inserting=True, array_filters=to_plain(array_filters))
    if "_id" not in doc:
        doc = {"_id": bson.ObjectId(), **doc}
    elif next(iter(doc)) != "_id":
        doc = {"_id": doc.pop("_id"), **doc}
    return encode(doc)


def _replace_statement(raw: bytes) -> tuple[bytes, bytes, bool] | None:
    """``(q, u, upsert)`` of a statement shaped exactly as drivers send ``ReplaceOne``/``UpdateOne``
    (``{q: {...}, u: {...}[, multi: false][, upsert: bool]}``), read straight from the bytes."""
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
    return raw[7:q_end], raw[u_start:u_end], upsert


def replace_by_id(store: Store, coll: Collection, stmt_raw: bytes) -> UpdateOutcome | None:
    """The restore's hot path, ``ReplaceOne({_id: x}, doc, upsert=True)``, without decoding the
    document; None when the statement is anything else (the general path handles it)."""
    parts = _replace_statement(stmt_raw)
    if parts is None:
        return None
    q_raw, u_raw, upsert = parts
    q_first = first_element(q_raw)
    if (
        q_first is None
        or q_first[0] != "_id"
        or len(q_raw) != len(q_first[1]) + 5
        or q_first[1][0] in (3, 4, 11)
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
        store.replace(coll, key, id_value, new_raw, op="insert", document_key=element_document(id_element))
        outcome.upserted_id = id_value
        return outcome
    outcome.matched = 1
    if old != new_raw:
        store.replace(coll, key, id_value, new_raw, op="replace", document_key=element_document(id_element))
        outcome.modified = 1
    return outcome


@command("insert", action=Action.WRITE)
def insert(ctx: Context, cmd: Mapping[str, Any]) -> dict[str, Any]:
    name = collection_name(cmd, "insert")
    ordered = cmd.get("ordered", True)
    n, write_errors = 0, []
    with ctx.store.lock:
        coll = ctx.store.ensure(ctx.db, name)
        documents = cmd.get("documents", [])
        for i, raw in enumerate(_raw_items(documents)):
            try:
                ctx.store.insert(coll, raw if raw is not None else raw_document(documents[i]))
                n += 1
            except errors.CommandError as e:
                write_errors.append(write_error(i, e))
                if ordered:
                    break
    reply: dict[str, Any] = {"n": n}
    if write_errors:
        reply["writeErrors"] = write_errors
    return reply


def _raw_items(statements: Any) -> Sequence[bytes | None]:
    """The raw bytes of each statement (None for one that is not a raw document)."""
    if isinstance(statements, DocumentSequence):
        return statements.raw_items()
    return [bytes(s.raw) if isinstance(s, RawBSONDocument) else None for s in statements]


@command("update", action=Action.WRITE)
def update(ctx: Context, cmd: Mapping[str, Any]) -> dict[str, Any]:
    name = collection_name(cmd, "update")
    ordered = cmd.get("ordered", True)
    n = modified = 0
    upserted: list[dict[str, Any]] = []
    write_errors: list[dict[str, Any]] = []
    with ctx.store.lock:
        coll = ctx.store.ensure(ctx.db, name)
        statements = cmd.get("updates", [])
        raw_statements = _raw_items(statements)
        for i, stmt_raw in enumerate(raw_statements):
            try:
                outcome = replace_by_id(ctx.store, coll, stmt_raw) if stmt_raw is not None else None
                if outcome is None:
                    stmt = statements[i]
                    outcome = apply_one_update(
                        ctx.store,
                        coll,
                        stmt.get("q"),
                        stmt.get("u"),
                        multi=bool(stmt.get("multi", False)),
                        upsert=bool(stmt.get("upsert", False)),
                        array_filters=stmt.get("arrayFilters"),
                    )
            except errors.CommandError as e:
                write_errors.append(write_error(i, e))
                if ordered:
                    break
                continue
            n += outcome.matched
            modified += outcome.modified
            if outcome.upserted_id is not None:
                n += 1
                upserted.append({"index": i, "_id": outcome.upserted_id})
    reply: dict[str, Any] = {"n": n, "nModified": modified}
    if upserted:
        reply["upserted"] = upserted
    if write_errors:
        reply["writeErrors"] = write_errors
    return reply


@command("delete", action=Action.WRITE)
def delete(ctx: Context, cmd: Mapping[str, Any]) -> dict[str, Any]:
    name = collection_name(cmd, "delete")
    ordered = cmd.get("ordered", True)
    n, write_errors = 0, []
    with ctx.store.lock:
        coll = ctx.store.get(ctx.db, name)
        for i, stmt in enumerate(cmd.get("deletes", [])):
            try:
                limit = stmt.get("limit", 0)
                if limit not in (0, 1):
                    raise errors.failed_to_parse("The limit field in delete objects must be 0 or 1")
                targets = list(select(ctx.store, coll, stmt.get("q")))
                for key, _ in targets[:1] if limit == 1 else targets:
                    ctx.store.delete(coll, key)
                    n += 1
            except errors.CommandError as e:
                write_errors.append(write_error(i, e))
                if ordered:
                    break
    reply: dict[str, Any] = {"n": n}
    if write_errors:
        reply["writeErrors"] = write_errors
    return reply


@command("findAndModify", "findandmodify", action=Action.WRITE)
def find_and_modify(ctx: Context, cmd: Mapping[str, Any]) -> dict[str, Any]:
    name = collection_name(cmd, cmd.name)  # type: ignore[attr-defined]
    remove, upd = bool(cmd.get("remove", False)), cmd.get("update")
    if remove == (upd is not None):
        raise errors.failed_to_parse("Either an update or remove=true must be specified")
    with ctx.store.lock:
        if remove:
            coll = ctx.store.get(ctx.db, name)
            targets = sort_docs(list(select(ctx.store, coll, cmd.get("query"))), cmd.get("sort"))[:1]
            for key, _ in targets:
                ctx.store.delete(coll, key)
            value = project(targets[0][1], cmd.get("fields")) if targets else None
            return {"lastErrorObject": {"n": len(targets)}, "value": _raw_or_none(value)}
        coll = ctx.store.ensure(ctx.db, name)
        outcome = apply_one_update(
            ctx.store,
            coll,
            cmd.get("query"),
            upd,
            multi=False,
            upsert=bool(cmd.get("upsert", False)),
            sort=cmd.get("sort"),
            array_filters=cmd.get("arrayFilters"),
        )
    shown = outcome.after if cmd.get("new", False) else outcome.before
    last: dict[str, Any] = {
        "n": outcome.matched or int(outcome.upserted_id is not None),
        "updatedExisting": bool(outcome.matched),
    }
    if outcome.upserted_id is not None:
        last["upserted"] = outcome.upserted_id
    value = project(shown, cmd.get("fields")) if shown is not None else None
    return {"lastErrorObject": last, "value": _raw_or_none(value)}


def _raw_or_none(raw: bytes | None) -> RawBSONDocument | None:
    return RawBSONDocument(raw) if raw is not None else None


# -- reads ------------------------------------------------------------------------------------
def _owner(ctx: Context) -> frozenset[tuple[str, str]]:
    return frozenset(ctx.conn.principals)


def _batch_size(value: Any) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise errors.bad_value("batchSize must be a non-negative integer")
    return value


@command("find", action=Action.READ)
def find(ctx: Context, cmd: Mapping[str, Any]) -> dict[str, Any]:
    name = collection_name(cmd, "find")
    skip, limit = int(cmd.get("skip", 0) or 0), int(cmd.get("limit", 0) or 0)
    if skip < 0:
        raise errors.bad_value("skip value must be non-negative")
    single = bool(cmd.get("singleBatch", False)) or limit < 0
    with ctx.store.lock:
        docs = sort_docs(
            list(select(ctx.store, ctx.store.get(ctx.db, name), cmd.get("filter"))), cmd.get("sort")
        )
    docs = docs[skip:]
    if limit:
        docs = docs[: abs(limit)]
    projection = cmd.get("projection")
    cursor = ListCursor(f"{ctx.db}.{name}", (project(raw, projection) for _, raw in docs), _owner(ctx))
    batch_size = _batch_size(cmd.get("batchSize"))
    if single:
        reply = cursor_reply(ctx.server.cursors, cursor, batch_size or abs(limit) or None, first=True)
        reply["cursor"]["id"] = bson.int64.Int64(0)
        return reply
    return cursor_reply(ctx.server.cursors, cursor, batch_size, first=True)


@command("getMore", action=Action.READ)
def get_more(ctx: Context, cmd: Mapping[str, Any]) -> dict[str, Any]:
    cursor_id = int(cmd["getMore"])
    cursor = ctx.server.cursors.get(cursor_id, _owner(ctx))
    expected = f"{ctx.db}.{cmd.get('collection')}"
    if cursor.ns != expected and not cursor.ns.endswith(".$cmd.aggregate"):
        raise errors.unauthorized(
            f"Requested getMore on namespace '{expected}', but cursor belongs to '{cursor.ns}'"
        )
    return cursor_reply(
        ctx.server.cursors,
        cursor,
        _batch_size(cmd.get("batchSize")),
        first=False,
        max_await_ms=cmd.get("maxTimeMS"),
        cursor_id=cursor_id,
    )


@command("killCursors", action=Action.READ)
def kill_cursors(ctx: Context, cmd: Mapping[str, Any]) -> dict[str, Any]:
    killed: list[Any] = []
    not_found: list[Any] = []
    for cursor_id in cmd.get("cursors", []):
        (killed if ctx.server.cursors.close(int(cursor_id)) else not_found).append(cursor_id)
    return {"cursorsKilled": killed, "cursorsNotFound": not_found, "cursorsAlive": [], "cursorsUnknown": []}


@command("count", action=Action.READ)
def count(ctx: Context, cmd: Mapping[str, Any]) -> dict[str, Any]:
    name = collection_name(cmd, "count")
    with ctx.store.lock:
        coll = ctx.store.get(ctx.db, name)
        query = cmd.get("query")
        n = (
            len(coll.docs)
            if coll is not None and not query
            else sum(1 for _ in select(ctx.store, coll, query))
        )
    n = max(0, n - int(cmd.get("skip", 0) or 0))
    if limit := abs(int(cmd.get("limit", 0) or 0)):
        n = min(n, limit)
    return {"n": n}


@command("distinct", action=Action.READ)
def distinct(ctx: Context, cmd: Mapping[str, Any]) -> dict[str, Any]:
    name = collection_name(cmd, "distinct")
    key = cmd.get("key")
    if not isinstance(key, str):
        raise errors.failed_to_parse("distinct key must be a string")
    seen: dict[Any, Any] = {}
    with ctx.store.lock:
        for _, raw in select(ctx.store, ctx.store.get(ctx.db, name), cmd.get("query")):
            value = _get_path(decode(raw), key)
            for v in value if isinstance(value, list) else [value]:
                if v is not None:
                    seen.setdefault(canonical_key(v), v)
    return {"values": sorted(seen.values(), key=sort_key)}


@command("aggregate", action=Action.CUSTOM)
def aggregate(ctx: Context, cmd: Mapping[str, Any]) -> dict[str, Any]:
    pipeline = to_plain(cmd.get("pipeline"))
    if not isinstance(pipeline, list):
        raise errors.type_mismatch("'pipeline' option must be specified as an array")
    if pipeline and next(iter(pipeline[0]), None) in ("$changeStream", "$listChangeStreams"):
        return changestreams.aggregate(ctx, cmd, pipeline)
    ctx.authorize(Action.READ)
    target = cmd.get("aggregate")
    if not isinstance(target, str):
        raise errors.bad_value("aggregate without a collection is supported only for $changeStream")
    with ctx.store.lock:
        docs = [raw for _, raw in select(ctx.store, ctx.store.get(ctx.db, target), None)]
    results = run_pipeline(docs, pipeline)
    cursor = ListCursor(f"{ctx.db}.{target}", iter(results), _owner(ctx))
    return cursor_reply(
        ctx.server.cursors, cursor, _batch_size((cmd.get("cursor") or {}).get("batchSize")), first=True
    )
