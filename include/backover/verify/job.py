"""``backover verify``: compare every namespace of the source with the target, report to S3."""

from __future__ import annotations

import logging
import time
from typing import Any

from pymongo import MongoClient
from pymongo.errors import PyMongoError

from ..bsonvalues import raw_collection
from ..connections import check_connection
from ..errors import JobFailed
from ..namespaces import Namespace, is_internal
from ..s3objects import S3Objects
from .config import VerifyConfig
from .indexes import differences, index_specs
from .merge import merge_batches
from .report import NamespaceReport, VerifyReport
from .scan import ReadAhead, raw_batches

log = logging.getLogger("backover.verify")


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
) -> NamespaceReport:
    """Merge both sides of ``db.coll`` (read in parallel), then compare the index specifications."""
    sides = [raw_collection(client, db, coll) for client in (source, target)]
    readers = [
        ReadAhead(raw_batches(c, batch_size), label)
        for c, label in zip(sides, ("source", "target"), strict=True)
    ]
    try:
        result = merge_batches(readers[0], readers[1], examples)
    finally:
        for reader in readers:
            reader.close()
    index_diff = differences(index_specs(sides[0]), index_specs(sides[1]))
    return NamespaceReport(f"{db}.{coll}", result, index_diff)


def run_verify(config: VerifyConfig, *, s3: S3Objects | None = None) -> VerifyReport:
    """Compare, write ``reports/verify.json``, log a summary; the report says whether all is identical."""
    s3 = s3 or S3Objects(config.layout.bucket)
    s3.check_bucket()
    started = time.monotonic()
    with config.source.client() as source, config.target.client() as target:
        check_connection(config.source, source)
        check_connection(config.target, target)
        try:
            pairs = namespaces(source, target, config.namespaces)
            log.info("verify: %d namespace(s) of %s against %s", len(pairs), config.source, config.target)
            reports = []
            for db, coll in pairs:
                compared = compare_namespace(source, target, db, coll, config.batch_size, config.examples)
                log.info("%s", compared.line())
                reports.append(compared)
        except PyMongoError as e:
            raise JobFailed(f"verify could not read a side: {type(e).__name__}: {e}") from None
    report = VerifyReport(reports, seconds=time.monotonic() - started)
    s3.put_json(config.layout.verify_report, report.to_doc())
    log.info(
        "%s (%.1f s); report in s3://%s/%s",
        report.summary(),
        report.seconds,
        s3.bucket,
        config.layout.verify_report,
    )
    return report
