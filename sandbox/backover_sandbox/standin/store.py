"""In-memory databases: documents as raw BSON by ``_id``, unique indexes, and the change log.

Every write goes through :class:`Store` under one lock, gets a cluster time from the clock and
appends its change event to :class:`~backover_sandbox.standin.changelog.ChangeLog`, so change streams see
writes in exactly the order they were applied.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import bson
from bson import json_util
from bson.binary import Binary, UuidRepresentation
from bson.objectid import ObjectId
from bson.raw_bson import RawBSONDocument

from backover.bsonvalues import RAW, canonical_key, decode, encode, first_element, id_of
from backover.mongo import errors

from .changelog import ChangeLog
from .clock import ClusterClock
from .indexes import UNDEFINED, Index, id_index
from .ttl import TTLMonitor

__all__ = ["Collection", "Index", "Store", "duplicate_key_error", "raw_document", "with_id_first"]

Matcher = Callable[[dict[str, Any]], bool]


class Collection:
    """One collection: raw documents by canonical ``_id`` key, in insertion order."""

    def __init__(self, db: str, name: str, options: Mapping[str, Any] | None = None) -> None:
        self.db = db
        self.name = name
        self.uuid = Binary.from_uuid(uuid.uuid4(), UuidRepresentation.STANDARD)
        self.options: dict[str, Any] = dict(options or {})
        self.docs: dict[Any, bytes] = {}
        self.indexes: dict[str, Index] = {"_id_": id_index()}

    @property
    def full_name(self) -> str:
        return f"{self.db}.{self.name}"

    def unique_indexes(self) -> list[Index]:
        return [ix for ix in self.indexes.values() if ix.unique and not ix.is_id_index]

    def checked_indexes(self) -> list[Index]:
        """The indexes a write must decode the document for (unique, text, 2dsphere, compound)."""
        return [ix for ix in self.indexes.values() if ix.checks_writes and not ix.is_id_index]

    def check_write(self, doc: dict[str, Any], id_key: Any) -> None:
        """Raise what mongod raises when ``doc`` cannot go into an index, in index order: a
        document a special index cannot index, 11000 for a duplicate unique key, 171 ..."""
        for ix in self.checked_indexes():
            if not ix.unique:
                ix.check_document(doc)
                continue
            for key, values in ix.keys_of(doc):
                owner = ix.entries.get(key, id_key)
                if owner != id_key:
                    raise duplicate_key_error(self, ix, doc, values)

    def index_add(self, doc: dict[str, Any], id_key: Any) -> None:
        for ix in self.unique_indexes():
            for key, _ in ix.keys_of(doc):
                ix.entries[key] = id_key

    def index_remove(self, doc: dict[str, Any], id_key: Any) -> None:
        for ix in self.unique_indexes():
            for key, _ in ix.keys_of(doc):
                if ix.entries.get(key) == id_key:
                    del ix.entries[key]


def duplicate_key_error(
    coll: Collection, ix: Index, doc: dict[str, Any], values: tuple[Any, ...] | None = None
) -> errors.CommandError:
    """mongod's E11000 for ``doc`` in ``ix``; ``values`` is the index key that collided (one
    element of an array, for a multikey index), else the document's values at the key's paths."""
    key_pattern = dict(ix.key)
    if values is None:
        values = tuple(None if (v := _lookup_path(doc, path)) is _MISSING else v for path, _ in ix.key)
    key_value = {
        path: (None if value is UNDEFINED else value) for (path, _), value in zip(ix.key, values, strict=True)
    }
    shown = ", ".join(f"{k}: {_shown(v)}" for k, v in key_value.items())
    return errors.CommandError(
        errors.DUPLICATE_KEY,
        "DuplicateKey",
        f"E11000 duplicate key error collection: {coll.full_name} index: {ix.name} dup key: {{ {shown} }}",
        keyPattern=key_pattern,
        keyValue=key_value,
    )


_MISSING = object()


def _shown(value: Any) -> str:
    """A key value as mongod writes it in an E11000 message (``"x"``, ``null``, ``true``, ``5``,
    ``ObjectId('...')``); other types in relaxed Extended JSON."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, ObjectId):
        return f"ObjectId('{value}')"
    return json_util.dumps(value, json_options=json_util.RELAXED_JSON_OPTIONS)


def _lookup_path(doc: Any, path: str) -> Any:
    for part in path.split("."):
        if isinstance(doc, Mapping) and part in doc:
            doc = doc[part]
        elif isinstance(doc, list) and part.isdigit() and int(part) < len(doc):
            doc = doc[int(part)]
        else:
            return _MISSING
    return doc


def with_id_first(raw: bytes, id_value: Any) -> bytes:
    """``raw`` with ``_id`` as its first field, as mongod stores documents.

    The common case (``_id`` already first) returns the bytes untouched; a document without
    ``_id`` gets the given one prepended without re-encoding its other fields.
    """
    first = first_element(raw)
    if first is not None and first[0] == "_id":
        return raw
    doc = bson.decode(raw, RAW)
    if "_id" not in doc:
        element = bson.encode({"_id": id_value})[4:-1]
        body = element + raw[4:]
        return (len(body) + 4).to_bytes(4, "little", signed=True) + body
    plain = decode(raw)
    return encode({"_id": plain.pop("_id"), **plain})


class Store:
    """All databases of one server, guarded by one re-entrant lock."""

    def __init__(self, changes: ChangeLog | None = None) -> None:
        self.lock = threading.RLock()
        self.changes = changes or ChangeLog()
        self.wall = self.changes.wall  # the server's wall clock: the change log's and the cluster time's
        self.clock = ClusterClock(self.wall)
        self.databases: dict[str, dict[str, Collection]] = {}
        self.ttl = TTLMonitor(self)  # run_due() before each command (the server's dispatch)

    # -- namespaces -----------------------------------------------------------------------
    def get(self, db: str, name: str) -> Collection | None:
        return self.databases.get(db, {}).get(name)

    def require(self, db: str, name: str) -> Collection:
        coll = self.get(db, name)
        if coll is None:
            raise errors.namespace_not_found(f"ns not found: {db}.{name}")
        return coll

    def ensure(self, db: str, name: str) -> Collection:
        """The collection, created implicitly (as an insert does) when missing."""
        _check_name(db, name)
        coll = self.get(db, name)
        if coll is None:
            coll = Collection(db, name)
            self.databases.setdefault(db, {})[name] = coll
        return coll

    def create(self, db: str, name: str, options: Mapping[str, Any]) -> Collection:
        _check_name(db, name)
        if self.get(db, name) is not None:
            raise errors.namespace_exists(f"Collection {db}.{name} already exists.")
        coll = Collection(db, name, options)
        self.databases.setdefault(db, {})[name] = coll
        return coll

    def drop(self, db: str, name: str) -> None:
        coll = self.require(db, name)
        ts = self.clock.tick()
        del self.databases[db][name]
        if not self.databases[db]:
            del self.databases[db]
        self.changes.append(ts, "drop", coll)

    def drop_database(self, db: str) -> None:
        for name in sorted(self.databases.get(db, {})):
            self.drop(db, name)
        self.changes.append(self.clock.tick(), "dropDatabase", None, db=db)

    def rename(self, db: str, name: str, to_db: str, to_name: str, drop_target: bool) -> None:
        coll = self.require(db, name)
        _check_name(to_db, to_name)
        if self.get(to_db, to_name) is not None:
            if not drop_target:
                raise errors.namespace_exists("target namespace exists")
            self.drop(to_db, to_name)
        ts = self.clock.tick()
        del self.databases[db][name]
        if not self.databases[db]:
            del self.databases[db]
        self.changes.append(ts, "rename", coll, to=(to_db, to_name))
        coll.db, coll.name = to_db, to_name
        self.databases.setdefault(to_db, {})[to_name] = coll

    # -- documents -------------------------------------------------------------------------
    def insert(self, coll: Collection, raw: bytes) -> None:
        """Insert one raw document (``_id`` added or moved first); code 11000 on a duplicate."""
        try:
            id_value = id_of(raw)
        except KeyError:
            id_value = bson.ObjectId()
        raw = with_id_first(raw, id_value)
        key = canonical_key(id_value)
        if key in coll.docs:
            raise duplicate_key_error(coll, coll.indexes["_id_"], {"_id": id_value})
        self._put(coll, key, raw, None, "insert", id_value)

    def replace(
        self,
        coll: Collection,
        key: Any,
        id_value: Any,
        raw: bytes,
        *,
        op: str,
        document_key: bytes | None = None,
    ) -> None:
        """Store ``raw`` under ``key`` (insert or replace), enforcing unique indexes."""
        self._put(coll, key, raw, None, op, id_value, document_key)

    def update(
        self, coll: Collection, key: Any, id_value: Any, raw: bytes, description: dict[str, Any]
    ) -> None:
        """Store the result of an operator update and log its ``updateDescription``."""
        self._put(coll, key, raw, description, "update", id_value)

    def delete(self, coll: Collection, key: Any) -> None:
        raw = coll.docs[key]
        ts = self.clock.tick()
        if coll.unique_indexes():
            coll.index_remove(decode(raw), key)
        del coll.docs[key]
        self.changes.append(ts, "delete", coll, document_key=_document_key(id_of(raw)))

    def _put(
        self,
        coll: Collection,
        key: Any,
        raw: bytes,
        description: dict[str, Any] | None,
        op: str,
        id_value: Any,
        document_key: bytes | None = None,
    ) -> None:
        if coll.checked_indexes():
            new_doc = decode(raw)
            coll.check_write(new_doc, key)
            old = coll.docs.get(key)
            if old is not None:
                coll.index_remove(decode(old), key)
            coll.index_add(new_doc, key)
        ts = self.clock.tick()
        coll.docs[key] = raw
        self.changes.append(
            ts,
            op,
            coll,
            document_key=document_key or _document_key(id_value),
            full_document=None if op == "update" else raw,
            update_description=description,
        )

    # -- reads -----------------------------------------------------------------------------
    def scan(
        self,
        coll: Collection | None,
        matcher: Matcher | None,
        id_values: list[Any] | None,
        keys: list[Any] | None = None,
    ) -> Iterator[tuple[Any, bytes]]:
        """``(key, raw)`` of the documents of ``coll`` that match; ``id_values`` (or canonical
        ``keys``, from a unique index) narrow first."""
        if coll is None:
            return
        if id_values is not None or keys is not None:
            if keys is None:
                keys = [canonical_key(v) for v in id_values or []]
            candidates = [(k, raw) for k in dict.fromkeys(keys) if (raw := coll.docs.get(k)) is not None]
        else:
            candidates = list(coll.docs.items())
        for key, raw in candidates:
            if matcher is None or matcher(decode(raw)):
                yield key, raw


def _document_key(id_value: Any) -> bytes:
    return bson.encode({"_id": id_value})


def _check_name(db: str, name: str) -> None:
    if not db or any(c in db for c in '/\\. "$\x00'):
        raise errors.invalid_namespace(f"Invalid database name: '{db}'")
    if not name or "$" in name or "\x00" in name or name.startswith("."):
        raise errors.invalid_namespace(f"Invalid collection name: {name}")


def raw_document(value: Any) -> bytes:
    """The raw bytes of a command argument that holds a document."""
    if isinstance(value, RawBSONDocument):
        return bytes(value.raw)  # a memoryview for 4 KB and more
    if isinstance(value, Mapping):
        return encode(value)
    raise errors.type_mismatch(f"expected a document, got {type(value).__name__}")
