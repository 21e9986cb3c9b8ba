"""The comparison of one namespace (the streaming merge of both sides, then the index
specifications) and the choice of the namespaces to compare; used by every mode."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pymongo import MongoClient

from ..bsonvalues import raw_collection
from ..namespaces import Namespace, is_internal
from ..sync.ttl import comparable
from .indexes import differences, index_specs
from .merge import MergeResult, OnDifference, merge_batches
from .progress import Progress
from .report import NamespaceReport
from .scan import raw_batches, read_ahead


def _collections(client: MongoClient[dict[str, Any]], db: str) -> set[str]:
    return {
        info["name"]
        for info in client[db].list_collections()
        if info.get("type", "collection") == "collection" and not info["name"].startswith("system.")
    }


def namespaces(
    source: MongoClient[dict[str, Any]], target: MongoClient[dict[str, Any]], wanted: tuple[Namespace, ...]
) -> list[Namespace]:
    """``(db, coll)`` pairs to compare: the given ``db.coll``s, every collection of a given ``db``
    on either side, or by default every non-system collection of the source's non-system
    databases (with the target's collections in those databases)."""
    if wanted:
        databases = [ns.db for ns in wanted if not ns.coll]
        pairs = {ns for ns in wanted if ns.coll}
    else:
        databases = [db for db in source.list_database_names() if not is_internal(db)]
        pairs = set()
    for db in databases:
        pairs |= {Namespace(db, coll) for coll in _collections(source, db) | _collections(target, db)}
    return sorted(pairs)


def compare_documents(
    source: MongoClient[dict[str, Any]],
    target: MongoClient[dict[str, Any]],
    db: str,
    coll: str,
    batch_size: int,
    examples: int,
    progress: Progress | None = None,
    on_difference: OnDifference | None = None,
    id_filter: Mapping[str, Any] | None = None,
    label: str | None = None,
) -> MergeResult:
    """Merge both sides of ``db.coll`` (read in parallel), or of the documents ``id_filter`` (a
    scope's, :mod:`backover.sync.scopes`) matches on both; ``on_difference`` is told of every
    difference (:func:`merge_batches`); ``label`` names the progress lines' place."""
    sides = [raw_collection(client, db, coll) for client in (source, target)]
    readers = [
        read_ahead(raw_batches(c, batch_size, id_filter), side)
        for c, side in zip(sides, ("source", "target"), strict=True)
    ]
    where = label or f"{db}.{coll}"
    source_batches = progress.counted(readers[0], where) if progress is not None else readers[0]
    try:
        return merge_batches(source_batches, readers[1], examples, on_difference)
    finally:
        for reader in readers:
            reader.close()


def compare_indexes(
    source: MongoClient[dict[str, Any]], target: MongoClient[dict[str, Any]], db: str, coll: str
) -> list[dict[str, Any]]:
    """The index specifications of ``db.coll`` that differ between the sides (:func:`differences`);
    a TTL index an initial sync holds back on the target compares as the source's until released
    (``backover.sync.ttl.comparable``)."""
    sides = [raw_collection(client, db, coll) for client in (source, target)]
    source_specs = index_specs(sides[0])
    target_specs = {
        name: dict(comparable(source_specs.get(name), spec)) for name, spec in index_specs(sides[1]).items()
    }
    return differences(source_specs, target_specs)


def compare_namespace(
    source: MongoClient[dict[str, Any]],
    target: MongoClient[dict[str, Any]],
    db: str,
    coll: str,
    batch_size: int,
    examples: int,
    progress: Progress | None = None,
    on_difference: OnDifference | None = None,
) -> NamespaceReport:
    """Merge both sides of ``db.coll`` (:func:`compare_documents`), then compare the index
    specifications (:func:`compare_indexes`)."""
    merged = compare_documents(source, target, db, coll, batch_size, examples, progress, on_difference)
    return NamespaceReport(f"{db}.{coll}", merged, compare_indexes(source, target, db, coll))
