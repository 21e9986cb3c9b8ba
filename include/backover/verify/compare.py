"""The comparison of one namespace (the streaming merge of both sides, then the index
specifications) and the choice of the namespaces to compare; used by every mode."""

from __future__ import annotations

from typing import Any

from pymongo import MongoClient

from ..bsonvalues import raw_collection
from ..namespaces import Namespace, is_internal
from .indexes import differences, index_specs
from .merge import OnDifference, merge_batches
from .progress import Progress
from .report import NamespaceReport
from .scan import ReadAhead, raw_batches


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
    """Merge both sides of ``db.coll`` (read in parallel), then compare the index specifications;
    ``on_difference`` is told of every difference (:func:`merge_batches`)."""
    sides = [raw_collection(client, db, coll) for client in (source, target)]
    readers = [
        ReadAhead(raw_batches(c, batch_size), label)
        for c, label in zip(sides, ("source", "target"), strict=True)
    ]
    source_batches = progress.counted(readers[0], f"{db}.{coll}") if progress is not None else readers[0]
    try:
        result = merge_batches(source_batches, readers[1], examples, on_difference)
    finally:
        for reader in readers:
            reader.close()
    index_diff = differences(index_specs(sides[0]), index_specs(sides[1]))
    return NamespaceReport(f"{db}.{coll}", result, index_diff)
