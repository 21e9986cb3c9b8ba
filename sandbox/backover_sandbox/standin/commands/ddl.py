"""Namespace and index commands: create, drop, dropDatabase, renameCollection, listDatabases,
listCollections, createIndexes, listIndexes, dropIndexes, collMod (a TTL index's expiry only).

``create`` takes no collection option the stand-in does not implement: capped collections,
validators, views, time series, clustered collections, pre- and post-images, collations,
``storageEngine`` ... are refused (40415 on flavour mongodb; DocumentDB's 303 where DocumentDB
lacks the feature), so ``listCollections`` shows ``options: {}`` as mongod does for a plain
collection. Index specifications are validated, built, listed and enforced by :mod:`..indexes`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bson.raw_bson import RawBSONDocument

from backover.bsonvalues import decode, encode, to_plain
from backover.mongo import errors
from backover.mongo.ordering import is_number, type_name
from backover.mongo.query import compile_filter

from ..cursors import ListCursor, cursor_reply
from ..indexes import (
    BTREE,
    Index,
    check_conflicts,
    prepare_index,
    safe_long,
    show,
    validate_spec,
    validate_ttl,
)
from ..registry import Action, Context, command
from ..store import Collection, duplicate_key_error
from ..unsupported import GENERIC_FIELDS, check_fields, refuse_collation, unknown_field
from .crud import collection_name

#: ``create`` options DocumentDB has (``$jsonSchema`` validators, 4.0+) but the stand-in does not
#: implement: refused the mongodb way on both flavours.
_DOCUMENTDB_CREATE_OPTIONS = frozenset({"validator", "validationLevel", "validationAction"})


@command("create", action=Action.WRITE)
def create(ctx: Context, cmd: Mapping[str, Any]) -> dict[str, Any]:
    name = collection_name(cmd, "create")
    for field in cmd:
        if field == "create" or field in GENERIC_FIELDS:
            continue
        value = cmd[field]
        if field == "capped" and (isinstance(value, bool) or is_number(value)) and not value:
            continue  # capped: false is a plain collection (mongod shows no option)
        if field == "collation":
            refuse_collation(ctx, "create", cmd)  # the simple collation is the stand-in's own
            continue
        feature = "capped:true" if field == "capped" else field
        raise unknown_field(
            ctx, "create", field, feature=feature, documentdb_supports=field in _DOCUMENTDB_CREATE_OPTIONS
        )
    with ctx.store.lock:
        ctx.store.create(ctx.db, name, {})
    return {}


@command("drop", action=Action.WRITE)
def drop(ctx: Context, cmd: Mapping[str, Any]) -> dict[str, Any]:
    name = collection_name(cmd, "drop")
    check_fields(ctx, cmd, "drop", ())
    with ctx.store.lock:
        coll = ctx.store.require(ctx.db, name)
        n_indexes = len(coll.indexes)
        ctx.store.drop(ctx.db, name)
    return {"nIndexesWas": n_indexes, "ns": f"{ctx.db}.{name}"}


@command("dropDatabase", action=Action.DB_ADMIN)
def drop_database(ctx: Context, cmd: Mapping[str, Any]) -> dict[str, Any]:
    check_fields(ctx, cmd, "dropDatabase", ())
    with ctx.store.lock:
        ctx.store.drop_database(ctx.db)
    return {"dropped": ctx.db}


@command("renameCollection", action=Action.CUSTOM)
def rename_collection(ctx: Context, cmd: Mapping[str, Any]) -> dict[str, Any]:
    if ctx.db != "admin":
        raise errors.unauthorized("renameCollection may only be run against the admin database.")
    check_fields(ctx, cmd, "renameCollection", ("to", "dropTarget"))
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
    # authorizedDatabases: the stand-in lists the databases the user may read whatever it says
    # (its users hold database-level roles only, so both answers are the same).
    check_fields(ctx, cmd, "listDatabases", ("filter", "nameOnly", "authorizedDatabases"))
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
    # authorizedCollections: roles are per database, so the collections a user may read are all.
    check_fields(ctx, cmd, "listCollections", ("filter", "nameOnly", "cursor", "authorizedCollections"))
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
    check_fields(ctx, cmd, "listIndexes", ("cursor",))
    with ctx.store.lock:
        coll = ctx.store.require(ctx.db, name)
        specs = [RawBSONDocument(encode(ix.spec)) for ix in coll.indexes.values()]
    cursor = ListCursor(f"{ctx.db}.{name}", iter(specs), frozenset(ctx.conn.principals))
    return cursor_reply(ctx.server.cursors, cursor, (cmd.get("cursor") or {}).get("batchSize"), first=True)


@command("createIndexes", action=Action.WRITE)
def create_indexes(ctx: Context, cmd: Mapping[str, Any]) -> dict[str, Any]:
    name = collection_name(cmd, "createIndexes")
    check_fields(ctx, cmd, "createIndexes", ("indexes",))
    raw_specs = cmd.get("indexes")
    if raw_specs is None:
        raise errors.missing_field("createIndexes", "indexes")
    if not isinstance(raw_specs, list):
        raise errors.type_mismatch(
            "BSON field 'createIndexes.indexes' is the wrong type, expected type 'array'"
        )
    specs = [validate_spec(ctx.flavour, s) for s in raw_specs]
    if not specs:
        raise errors.bad_value("Must specify at least one index to create")
    for spec in specs:
        validate_ttl(spec)
    with ctx.store.lock:
        created_collection = ctx.store.get(ctx.db, name) is None
        coll = ctx.store.ensure(ctx.db, name)
        before = len(coll.indexes)
        wanted: list[Index] = []
        for spec in specs:
            index = prepare_index(ctx.flavour, spec)
            if check_conflicts(index, [*coll.indexes.values(), *wanted], coll.full_name):
                wanted.append(index)
        for index in wanted:
            _build(coll, index)
        for index in wanted:
            coll.indexes[index.name] = index
        after = len(coll.indexes)
    reply: dict[str, Any] = {
        "numIndexesBefore": before,
        "numIndexesAfter": after,
        "createdCollectionAutomatically": created_collection,
    }
    if before == after:
        reply["note"] = "all indexes already exist"
    return reply


def _build(coll: Collection, index: Index) -> None:
    """Index the documents already there: a duplicate unique key (11000) or a document the index
    cannot take fails the build, and no index of the command is created."""
    if not index.checks_writes:
        return
    for key, raw in coll.docs.items():
        doc = decode(raw)
        if not index.unique:
            index.check_document(doc)
            continue
        for entry, values in index.keys_of(doc):
            if index.entries.setdefault(entry, key) != key:
                index.entries.clear()
                raise duplicate_key_error(coll, index, doc, values)


@command("dropIndexes", action=Action.WRITE)
def drop_indexes(ctx: Context, cmd: Mapping[str, Any]) -> dict[str, Any]:
    name = collection_name(cmd, "dropIndexes")
    check_fields(ctx, cmd, "dropIndexes", ("index",))
    if "index" not in cmd:
        raise errors.missing_field("dropIndexes", "index")
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
                raise errors.CommandError(
                    errors.INDEX_NOT_FOUND, "IndexNotFound", f"can't find index with key: {w}"
                )
            w = found[0]
        if w == "_id_":
            raise errors.CommandError(errors.INVALID_OPTIONS, "InvalidOptions", "cannot drop _id index")
        if w not in coll.indexes:
            raise errors.CommandError(
                errors.INDEX_NOT_FOUND, "IndexNotFound", f"index not found with name [{w}]"
            )
        out.append(w)
    return out


#: ``collMod.index`` fields mongod has and the stand-in does not implement (refused, 40415).
_COLLMOD_INDEX_UNIMPLEMENTED = ("hidden", "prepareUnique", "unique", "forceNonUnique")


@command("collMod", action=Action.WRITE)
def coll_mod(ctx: Context, cmd: Mapping[str, Any]) -> dict[str, Any]:
    """``collMod`` with ``index: {name | keyPattern, expireAfterSeconds}``: a TTL index's expiry
    changed, or a single-field index made a TTL index (MongoDB 5.1+); the reply holds
    ``expireAfterSeconds_old`` (when it had one) and ``expireAfterSeconds_new``. Every other
    ``collMod`` option (validators, views, capped sizes, pre-images, ``hidden``/``unique`` of an
    index ...) is refused (40415 or DocumentDB's 303), not ignored."""
    name = collection_name(cmd, "collMod")
    check_fields(ctx, cmd, "collMod", ("index",))
    spec = cmd.get("index")
    if spec is None:
        with ctx.store.lock:
            ctx.store.require(ctx.db, name)
        return {}
    if not isinstance(spec, Mapping):
        raise errors.type_mismatch(
            f"BSON field 'collMod.index' is the wrong type '{type_name(spec)}', expected type 'object'"
        )
    for field in spec:
        if field in _COLLMOD_INDEX_UNIMPLEMENTED:
            raise unknown_field(ctx, "collMod.index", field)
    check_fields(ctx, spec, "collMod.index", ("name", "keyPattern", "expireAfterSeconds"), generic=False)
    if "name" in spec and "keyPattern" in spec:
        raise errors.CommandError(
            errors.INVALID_OPTIONS, "InvalidOptions", "Cannot specify both key pattern and name."
        )
    if "name" not in spec and "keyPattern" not in spec:
        raise errors.CommandError(
            errors.INVALID_OPTIONS, "InvalidOptions", "Must specify either index name or key pattern."
        )
    if "expireAfterSeconds" not in spec:
        raise errors.CommandError(
            errors.INVALID_OPTIONS, "InvalidOptions", "no expireAfterSeconds or hidden field"
        )
    with ctx.store.lock:
        coll = ctx.store.require(ctx.db, name)
        if "name" in spec:
            found = [ix for ix in coll.indexes.values() if ix.name == spec["name"]]
            wanted = spec["name"]
        else:
            pattern = to_plain(spec["keyPattern"])
            found = [ix for ix in coll.indexes.values() if dict(ix.spec["key"]) == pattern]
            wanted = show(pattern)
        if not found:
            raise errors.CommandError(
                errors.INDEX_NOT_FOUND, "IndexNotFound", f"cannot find index {wanted} for ns {coll.full_name}"
            )
        index = found[0]
        validate_ttl({"key": index.spec["key"], "expireAfterSeconds": spec["expireAfterSeconds"]})
        if index.is_id_index or index.kind != BTREE:
            raise errors.CommandError(
                errors.INVALID_OPTIONS,
                "InvalidOptions",
                f"the index {index.name} cannot be a TTL index (the _id index and special indexes cannot)",
            )
        new = safe_long(spec["expireAfterSeconds"])
        old = index.expire_after_seconds
        reply: dict[str, Any] = {}
        if old != new:
            if old is not None:
                reply["expireAfterSeconds_old"] = old
            reply["expireAfterSeconds_new"] = new
            index.spec["expireAfterSeconds"] = new
            index.stored["expireAfterSeconds"] = new
            index.expire_after_seconds = new
    return reply
