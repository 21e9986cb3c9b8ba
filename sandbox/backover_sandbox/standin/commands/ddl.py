"""Namespace and index commands: create, drop, dropDatabase, renameCollection, listDatabases,
listCollections, createIndexes, listIndexes, dropIndexes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bson.raw_bson import RawBSONDocument

from backover.bsonvalues import decode, encode, to_plain
from backover.mongo import errors
from backover.mongo.query import compile_filter

from ..cursors import ListCursor, cursor_reply
from ..registry import Action, Context, command
from ..store import Collection, Index, duplicate_key_error
from .crud import collection_name

_INDEX_OPTIONS = ("unique", "sparse", "expireAfterSeconds", "partialFilterExpression", "collation", "hidden")


@command("create", action=Action.WRITE)
def create(ctx: Context, cmd: Mapping[str, Any]) -> dict[str, Any]:
    name = collection_name(cmd, "create")
    options = {
        k: to_plain(v)
        for k, v in cmd.items()
        if k not in ("create", "$db", "lsid", "$clusterTime", "writeConcern", "txnNumber", "$readPreference")
    }
    with ctx.store.lock:
        ctx.store.create(ctx.db, name, options)
    return {}


@command("drop", action=Action.WRITE)
def drop(ctx: Context, cmd: Mapping[str, Any]) -> dict[str, Any]:
    name = collection_name(cmd, "drop")
    with ctx.store.lock:
        coll = ctx.store.require(ctx.db, name)
        n_indexes = len(coll.indexes)
        ctx.store.drop(ctx.db, name)
    return {"nIndexesWas": n_indexes, "ns": f"{ctx.db}.{name}"}


@command("dropDatabase", action=Action.DB_ADMIN)
def drop_database(ctx: Context, cmd: Mapping[str, Any]) -> dict[str, Any]:
    with ctx.store.lock:
        ctx.store.drop_database(ctx.db)
    return {"dropped": ctx.db}


@command("renameCollection", action=Action.CUSTOM)
def rename_collection(ctx: Context, cmd: Mapping[str, Any]) -> dict[str, Any]:
    if ctx.db != "admin":
        raise errors.unauthorized("renameCollection may only be run against the admin database.")
    source, target = cmd.get("renameCollection"), cmd.get("to")
    if not isinstance(source, str) or not isinstance(target, str) or "." not in source or "." not in target:
        raise errors.invalid_namespace(f"Invalid namespace specified '{source}'")
    src_db, src_coll = source.split(".", 1)
    dst_db, dst_coll = target.split(".", 1)
    ctx.authorize(Action.WRITE, src_db)
    ctx.authorize(Action.WRITE, dst_db)
    with ctx.store.lock:
        if ctx.store.get(src_db, src_coll) is None:
            raise errors.namespace_not_found("Source collection " + source + " does not exist")
        ctx.store.rename(src_db, src_coll, dst_db, dst_coll, bool(cmd.get("dropTarget", False)))
    return {}


@command("listDatabases", action=Action.CUSTOM)
def list_databases(ctx: Context, cmd: Mapping[str, Any]) -> dict[str, Any]:
    if ctx.db != "admin":
        raise errors.unauthorized("listDatabases may only be run against the admin database.")
    match = compile_filter(to_plain(cmd["filter"])) if cmd.get("filter") else None
    with ctx.store.lock:
        sizes = {
            db: sum(len(raw) for c in colls.values() for raw in c.docs.values())
            for db, colls in ctx.store.databases.items()
        }
    entries = []
    for db in sorted(sizes):
        if not _may_read(ctx, db):
            continue
        entry = {"name": db, "sizeOnDisk": float(sizes[db]), "empty": sizes[db] == 0}
        if match is None or match(entry):
            entries.append(entry)
    if cmd.get("nameOnly", False):
        return {"databases": [{"name": e["name"]} for e in entries]}
    return {"databases": entries, "totalSize": float(sum(e["sizeOnDisk"] for e in entries))}


def _may_read(ctx: Context, db: str) -> bool:
    """listDatabases shows only the databases the user may read (``authorizedDatabases``)."""
    try:
        ctx.authorize(Action.READ, db)
    except errors.CommandError:
        return False
    return True


def _collection_info(coll: Collection) -> dict[str, Any]:
    return {
        "name": coll.name,
        "type": "collection",
        "options": coll.options,
        "info": {"readOnly": False, "uuid": coll.uuid},
        "idIndex": coll.indexes["_id_"].spec,
    }


@command("listCollections", action=Action.READ)
def list_collections(ctx: Context, cmd: Mapping[str, Any]) -> dict[str, Any]:
    match = compile_filter(to_plain(cmd["filter"])) if cmd.get("filter") else None
    with ctx.store.lock:
        infos = [_collection_info(c) for _, c in sorted(ctx.store.databases.get(ctx.db, {}).items())]
    if match is not None:
        infos = [i for i in infos if match(i)]
    if cmd.get("nameOnly", False):
        infos = [{"name": i["name"], "type": i["type"]} for i in infos]
    docs = iter([RawBSONDocument(encode(i)) for i in infos])
    cursor = ListCursor(f"{ctx.db}.$cmd.listCollections", docs, frozenset(ctx.conn.principals))
    return cursor_reply(ctx.server.cursors, cursor, (cmd.get("cursor") or {}).get("batchSize"), first=True)


@command("listIndexes", action=Action.READ)
def list_indexes(ctx: Context, cmd: Mapping[str, Any]) -> dict[str, Any]:
    name = collection_name(cmd, "listIndexes")
    with ctx.store.lock:
        coll = ctx.store.require(ctx.db, name)
        specs = [RawBSONDocument(encode(ix.spec)) for ix in coll.indexes.values()]
    cursor = ListCursor(f"{ctx.db}.{name}", iter(specs), frozenset(ctx.conn.principals))
    return cursor_reply(ctx.server.cursors, cursor, (cmd.get("cursor") or {}).get("batchSize"), first=True)


def _index_from_spec(raw_spec: Any) -> Index:
    spec = to_plain(raw_spec)
    key, name = spec.get("key"), spec.get("name")
    if not isinstance(key, Mapping) or not key:
        raise errors.CommandError(67, "CannotCreateIndex", "Index key pattern must be a non-empty object")
    if not isinstance(name, str) or not name:
        raise errors.CommandError(
            9, "FailedToParse", "The 'name' field is a required property of an index specification"
        )
    for field, kind in key.items():
        if not (isinstance(kind, (int, float)) and not isinstance(kind, bool) and kind in (1, -1)):
            raise errors.bad_value(
                f"index type {kind!r} on {field!r} is not supported by the stand-in (1 or -1 only)"
            )
    unknown = set(spec) - {"key", "name", "v", *_INDEX_OPTIONS}
    if unknown:
        raise errors.CommandError(
            197,
            "InvalidIndexSpecificationOption",
            f"The field '{sorted(unknown)[0]}' is not valid for an index specification.",
        )
    shown = {"v": 2, "key": key, "name": name, **{k: spec[k] for k in _INDEX_OPTIONS if k in spec}}
    return Index(
        name, list(key.items()), shown, unique=bool(spec.get("unique")), sparse=bool(spec.get("sparse"))
    )


@command("createIndexes", action=Action.WRITE)
def create_indexes(ctx: Context, cmd: Mapping[str, Any]) -> dict[str, Any]:
    name = collection_name(cmd, "createIndexes")
    wanted = [_index_from_spec(s) for s in cmd.get("indexes", [])]
    if not wanted:
        raise errors.bad_value("Must specify at least one index to create")
    with ctx.store.lock:
        created_collection = ctx.store.get(ctx.db, name) is None
        coll = ctx.store.ensure(ctx.db, name)
        before = len(coll.indexes)
        for ix in wanted:
            _add_index(coll, ix)
        after = len(coll.indexes)
    reply: dict[str, Any] = {
        "numIndexesBefore": before,
        "numIndexesAfter": after,
        "createdCollectionAutomatically": created_collection,
    }
    if before == after:
        reply["note"] = "all indexes already exist"
    return reply


def _add_index(coll: Collection, ix: Index) -> None:
    for existing in coll.indexes.values():
        same_key = existing.key == ix.key
        if existing.name == ix.name and not same_key:
            raise errors.CommandError(
                86,
                "IndexKeySpecsConflict",
                f"An existing index has the same name as the requested index: {ix.name}",
            )
        if same_key:
            if existing.spec == {**ix.spec, "name": existing.name} and existing.name == ix.name:
                return
            raise errors.CommandError(
                85,
                "IndexOptionsConflict",
                f"Index already exists with a different name or options: {existing.name}",
            )
    if ix.unique:
        for key, raw in coll.docs.items():
            doc = decode(raw)
            for k in ix.keys_of(doc):
                if ix.entries.setdefault(k, key) != key:
                    raise duplicate_key_error(coll, ix, doc)
    coll.indexes[ix.name] = ix


@command("dropIndexes", action=Action.WRITE)
def drop_indexes(ctx: Context, cmd: Mapping[str, Any]) -> dict[str, Any]:
    name = collection_name(cmd, "dropIndexes")
    which = to_plain(cmd.get("index"))
    with ctx.store.lock:
        coll = ctx.store.require(ctx.db, name)
        before = len(coll.indexes)
        for ix_name in _indexes_to_drop(coll, which):
            del coll.indexes[ix_name]
    return {"nIndexesWas": before}


def _indexes_to_drop(coll: Collection, which: Any) -> list[str]:
    if which == "*":
        return [n for n in coll.indexes if n != "_id_"]
    names = which if isinstance(which, list) else [which]
    out = []
    for w in names:
        if isinstance(w, Mapping):
            found = [n for n, ix in coll.indexes.items() if dict(ix.key) == w]
            if not found:
                raise errors.CommandError(27, "IndexNotFound", f"can't find index with key: {w}")
            w = found[0]
        if w == "_id_":
            raise errors.CommandError(72, "InvalidOptions", "cannot drop _id index")
        if w not in coll.indexes:
            raise errors.CommandError(27, "IndexNotFound", f"index not found with name [{w}]")
        out.append(w)
    return out
