"""The sync plan's pieces: the migrated collections of the source, their partitions, and the
target's side (what it already holds; its collections and indexes created before any copy).

Partitions are ``_id`` ranges of about ``partition_documents`` documents, found by walking the
``_id`` index in order (``find({}, {_id: 1}).sort({_id: 1}).skip(N).limit(1)`` from the last bound:
DocumentDB has no ``splitVector``), type bracket by type bracket (:mod:`.ranges`).
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from bson import json_util
from bson.raw_bson import RawBSONDocument
from pymongo import MongoClient
from pymongo.collection import Collection
from pymongo.errors import OperationFailure, PyMongoError

from ..bsonvalues import DECODE, raw_collection
from ..errors import JobFailed, UsageError
from ..mongo import errors as codes
from ..namespaces import Namespace, is_internal
from ..state import SyncCollection, SyncPartition
from . import ranges
from .ttl import held_spec, hold_existing, is_ttl

log = logging.getLogger("backover.sync")

#: Index fields that describe the server, not the index (as verify compares them).
SERVER_INDEX_FIELDS = frozenset({"v", "ns"})
#: ``backover backup --restore`` loads into these before renaming them into place; never copied.
STAGING_PREFIX = "backover.restore."
NOTHING_WRITTEN = "nothing was written to the target"
LEFT_NOTHING = "the sync stopped and left nothing on the target"


def errmsg(e: OperationFailure) -> str:
    details = e.details or {}
    return str(details.get("errmsg") or e).splitlines()[0]


@contextlib.contextmanager
def refusals(side: str, what: str, *, after: str = NOTHING_WRITTEN) -> Iterator[None]:
    """A server's refusal inside the block as one line: no privilege (13) exit 2, else exit 1."""
    try:
        yield
    except OperationFailure as e:
        if e.code == codes.UNAUTHORIZED:
            raise UsageError(
                f"the {side} refused {what}: {errmsg(e)} (code {e.code}): its user lacks a privilege "
                f"the sync needs; {after}"
            ) from None
        raise JobFailed(f"{what} on the {side} failed: {errmsg(e)} (code {e.code}); {after}") from None
    except PyMongoError as e:
        raise JobFailed(f"{what} on the {side} failed: {type(e).__name__}: {e}; {after}") from None


# -- the source's collections -------------------------------------------------------------------
@dataclass
class SourceCollection:
    """A collection to copy, as the source lists it."""

    db: str
    coll: str
    options: dict[str, Any] = field(default_factory=dict)
    indexes: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ns(self) -> str:
        return f"{self.db}.{self.coll}"


def _copied(info: Mapping[str, Any]) -> str | None:
    """Why a listed collection is not copied (None: it is): the namespaces rule, views."""
    name = str(info["name"])
    if name.startswith("system."):
        return "a system collection"
    if name.startswith(STAGING_PREFIX):
        return "left by an interrupted backover backup --restore"
    kind = info.get("type", "collection")
    if kind != "collection":
        return f"a {kind}, not a collection"
    return None


def source_collections(
    source: MongoClient[dict[str, Any]], namespaces: tuple[Namespace, ...]
) -> list[SourceCollection]:
    """Every collection the migration moves, with its options and index specifications.

    A ``db.coll`` the start record names that the source does not hold (or holds as a view) is
    refused (exit 2); a database's system collections, views and a backup restore's staging
    collections are skipped with a log line."""
    found: list[SourceCollection] = []
    listed: dict[str, dict[str, Mapping[str, Any]]] = {}
    for ns in namespaces:
        if is_internal(ns.db):
            raise UsageError(f"{ns.db} is an internal database: it is never copied")
        if ns.db not in listed:
            database = source.get_database(ns.db, codec_options=DECODE)
            with refusals("source", f"listCollections on {ns.db}"):
                infos = list(database.list_collections())
            listed[ns.db] = {str(i["name"]): i for i in infos}
        infos_of_db = listed[ns.db]
        if ns.coll:
            info = infos_of_db.get(ns.coll)
            if info is None:
                raise UsageError(
                    f"{ns} is named in the migration's start record but does not exist on the source; "
                    f"{NOTHING_WRITTEN}"
                )
            why = _copied(info)
            if why is not None:
                raise UsageError(f"{ns} cannot be copied: it is {why}; {NOTHING_WRITTEN}")
            chosen = [info]
        else:
            chosen = []
            for name, info in sorted(infos_of_db.items()):
                why = _copied(info)
                if why is None:
                    chosen.append(info)
                else:
                    log.info("sync: skipping %s.%s: %s", ns.db, name, why)
            if not chosen:
                log.warning("sync: database %s has no collection on the source: nothing to copy there", ns.db)
        for info in chosen:
            name = str(info["name"])
            coll = source.get_database(ns.db, codec_options=DECODE)[name]
            with refusals("source", f"listIndexes on {ns.db}.{name}"):
                specs = list(coll.list_indexes())
            found.append(
                SourceCollection(
                    ns.db,
                    name,
                    dict(info.get("options") or {}),
                    [
                        {k: v for k, v in dict(spec).items() if k not in SERVER_INDEX_FIELDS}
                        for spec in specs
                        if spec.get("name") != "_id_"
                    ],
                )
            )
    unique = {c.ns: c for c in found}  # a collection named twice (db and db.coll) is copied once
    return [unique[ns] for ns in sorted(unique)]


# -- partitions ---------------------------------------------------------------------------------
def _first_id(
    coll: Collection[RawBSONDocument], filter: Mapping[str, Any], order: int, skip: int = 0
) -> bytes | None:
    """``{_id: value}`` of the document at position ``skip`` of ``filter`` in ``_id`` order."""
    cursor = coll.find(filter, {"_id": 1}, sort=[("_id", order)], skip=skip, limit=1)
    for doc in cursor:
        return ranges.id_document(doc.raw)
    return None


def partitions_of(
    source: MongoClient[dict[str, Any]], db: str, name: str, per_partition: int
) -> tuple[list[SyncPartition], int]:
    """The partitions of ``db.name`` and the collection's count, both read now.

    The brackets present are found from the smallest and the largest ``_id`` (one bracket: no
    ``$type`` needed) and, when they differ, the smallest ``_id`` of the brackets after each one
    found. In each bracket, bound ``i + 1`` is the ``_id`` ``per_partition`` documents after bound
    ``i``: every partition but a bracket's last holds exactly ``per_partition`` documents now."""
    coll = raw_collection(source, db, name)
    ns = f"{db}.{name}"

    def read() -> tuple[list[SyncPartition], int]:
        smallest = _first_id(coll, {}, 1)
        if smallest is None:
            return [], coll.count_documents({})
        largest = _first_id(coll, {}, -1)
        assert largest is not None
        brackets = [ranges.bracket_of(smallest)]
        last = ranges.bracket_of(largest)
        while brackets[-1] != last:
            between = ranges.after(brackets[-1])
            later = [t for b in between[: between.index(last) + 1] for t in b.types]
            found = _first_id(coll, {"_id": {"$type": later}}, 1)
            if found is None:  # the largest was deleted meanwhile
                break
            brackets.append(ranges.bracket_of(found))
        typed = len(brackets) > 1
        total = coll.count_documents({})
        partitions: list[SyncPartition] = []
        for bracket in brackets:
            types = list(bracket.types) if typed else []
            bounds: list[bytes] = []
            while True:
                lower = bounds[-1] if bounds else None
                bound = _first_id(coll, ranges.id_filter(types, lower, None), 1, per_partition)
                if bound is None:
                    break
                bounds.append(bound)
            edges: list[bytes | None] = [None, *bounds, None]
            for i in range(len(edges) - 1):
                lower, upper = edges[i], edges[i + 1]
                filter = ranges.id_filter(types, lower, upper)
                if upper is not None:
                    estimated = per_partition
                elif typed:
                    estimated = coll.count_documents(filter)
                else:  # one bracket: the last range is what the other ranges leave of the count
                    estimated = max(total - per_partition * (len(edges) - 2), 0)
                partitions.append(
                    SyncPartition(
                        id=f"{ns}.{len(partitions):04d}",
                        bracket=bracket.name,
                        types=types,
                        lower=lower,
                        upper=upper,
                        estimated_documents=estimated,
                        shown=ranges.shown(filter),
                    )
                )
        return partitions, total

    with refusals("source", f"reading the _id index of {ns}"):
        return read()


def plan_collection(
    source: MongoClient[dict[str, Any]], found: SourceCollection, per_partition: int
) -> SyncCollection:
    partitions, total = partitions_of(source, found.db, found.coll, per_partition)
    in_ranges = sum(p.estimated_documents for p in partitions)
    if in_ranges != total:
        log.warning(
            "sync: %s: the partitions held %d documents and the collection %d when they were counted "
            "(writes go on: the change stream since T0 carries the difference)",
            found.ns,
            in_ranges,
            total,
        )
    log.info(
        "sync: %s: %d documents in %d partition(s) (%s)",
        found.ns,
        total,
        len(partitions),
        ", ".join(sorted({p.bracket for p in partitions})) or "empty",
    )
    return SyncCollection(
        db=found.db,
        coll=found.coll,
        options=found.options,
        indexes=found.indexes,
        documents=total,
        partitions=partitions,
    )


# -- the target ----------------------------------------------------------------------------------
def target_documents(
    target: MongoClient[dict[str, Any]], collections: list[SyncCollection]
) -> dict[str, int]:
    """``{ns: documents}`` of the migrated collections the target already has (absent: not listed)."""
    held: dict[str, int] = {}
    names: dict[str, set[str]] = {}
    for c in collections:
        if c.db not in names:
            with refusals("target", f"listCollections on {c.db}"):
                names[c.db] = set(target[c.db].list_collection_names())
        if c.coll in names[c.db]:
            with refusals("target", f"counting {c.ns}"):
                held[c.ns] = target[c.db][c.coll].count_documents({})
    return held


def drop_on_target(
    target: MongoClient[dict[str, Any]], collections: list[SyncCollection], held: Mapping[str, int]
) -> list[str]:
    """``--drop-target``: drop every migrated collection the target has; their names."""
    dropped = []
    for c in collections:
        if c.ns in held:
            log.warning("sync: --drop-target: dropping %s on the target (%d documents)", c.ns, held[c.ns])
            with refusals("target", f"dropping {c.ns}", after="nothing else was written"):
                target[c.db].drop_collection(c.coll)
            dropped.append(c.ns)
    return dropped


def _json(value: Any) -> str:
    try:
        return json_util.dumps(value, json_options=json_util.RELAXED_JSON_OPTIONS)
    except (TypeError, ValueError, OverflowError):
        return json.dumps(str(value))


def _spec_shown(spec: Mapping[str, Any]) -> str:
    return _json(dict(spec.get("key") or {}))


def create_on_target(target: MongoClient[dict[str, Any]], collections: list[SyncCollection]) -> None:
    """Each collection with its options and every index with every option, before any document.

    A collection or an index MongoDB refuses stops here with its name and MongoDB's reason (exit
    2), after dropping what this call created (collections, and indexes added to collections that
    were there already, empty): nothing is left on the target."""
    created: list[SyncCollection] = []
    added: list[tuple[SyncCollection, str]] = []
    held: list[tuple[SyncCollection, str, Any]] = []
    try:
        with refusals("target", "creating the collections and indexes", after=LEFT_NOTHING):
            _create(target, collections, created, added, held)
    except BaseException:
        _undo(target, created, added, held)
        raise


def _create(
    target: MongoClient[dict[str, Any]],
    collections: list[SyncCollection],
    created: list[SyncCollection],
    added: list[tuple[SyncCollection, str]],
    held: list[tuple[SyncCollection, str, Any]],
) -> None:
    for c in collections:
        database = target.get_database(c.db, codec_options=DECODE)
        listed = list(database.list_collections(filter={"name": c.coll}))
        existed = bool(listed)
        if existed and dict(listed[0].get("options") or {}) != c.options:
            raise UsageError(
                f"{c.ns} exists on the target (empty) with the options {_json(listed[0].get('options') or {})}, "
                f"not the source's {_json(c.options)}: pass --drop-target to create it as the source has it; "
                f"{LEFT_NOTHING}"
            )
        if not existed:
            try:
                database.command({"create": c.coll, **c.options})
            except OperationFailure as e:
                raise UsageError(
                    f"MongoDB refused to create {c.ns} with the source's options {_json(c.options)}: "
                    f"{errmsg(e)} (code {e.code}); {LEFT_NOTHING}"
                ) from None
            created.append(c)
            log.info("sync: created %s on the target", c.ns)
        there = {str(ix.get("name")): dict(ix) for ix in database[c.coll].list_indexes()} if existed else {}
        for spec in c.indexes:
            name = str(spec.get("name"))
            if hold_existing(database, c.coll, spec, there.get(name)):
                held.append((c, name, spec["expireAfterSeconds"]))  # the empty collection had it already
                continue
            try:
                reply = database.command({"createIndexes": c.coll, "indexes": [held_spec(spec)]})
            except OperationFailure as e:
                raise UsageError(
                    f"MongoDB refused index {name!r} {_spec_shown(spec)} of {c.ns}: {errmsg(e)} "
                    f"(code {e.code}); {LEFT_NOTHING}"
                ) from None
            if existed and reply.get("numIndexesAfter", 0) > reply.get("numIndexesBefore", 0):
                added.append((c, name))
        if c.indexes:
            ttl = [str(spec.get("name")) for spec in c.indexes if is_ttl(spec)]
            log.info(
                "sync: %s: %d index(es) on the target%s",
                c.ns,
                len(c.indexes),
                f" (TTL held back until the cutover: {', '.join(ttl)})" if ttl else "",
            )


def _undo(
    target: MongoClient[dict[str, Any]],
    created: list[SyncCollection],
    added: list[tuple[SyncCollection, str]],
    held: list[tuple[SyncCollection, str, Any]],
) -> None:
    for c, name, value in held:
        try:
            target[c.db].command({"collMod": c.coll, "index": {"name": name, "expireAfterSeconds": value}})
        except PyMongoError as e:
            log.error(
                "sync: could not give index %s of %s its expireAfterSeconds %s back: %s", name, c.ns, value, e
            )
    for c, name in added:
        try:
            target[c.db][c.coll].drop_index(name)
        except PyMongoError as e:
            log.error("sync: could not drop index %s of %s again: %s", name, c.ns, e)
    for c in created:
        try:
            target[c.db].drop_collection(c.coll)
            log.info("sync: dropped %s again (created by this run)", c.ns)
        except PyMongoError as e:
            log.error("sync: could not drop %s again: %s", c.ns, e)
