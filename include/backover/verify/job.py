"""``backover verify``: compare every namespace of the source with the target, report to S3.

:func:`run_verify` runs the comparison at the freeze: in full (every document), or, after a passed
live pass (:mod:`.live`), incrementally (:mod:`.incremental`); AUTO picks the second when a live
pass record exists."""

from __future__ import annotations

import logging
import time

from pymongo.errors import PyMongoError

from .. import state
from ..errors import JobFailed
from ..s3objects import S3Objects
from .compare import compare_namespace, namespaces
from .config import VerifyConfig, VerifyMode, connected
from .incremental import run_incremental
from .progress import Progress
from .report import VerifyReport

__all__ = ["compare_namespace", "namespaces", "run_verify"]

log = logging.getLogger("backover.verify")


def run_verify(config: VerifyConfig, *, s3: S3Objects | None = None) -> VerifyReport:
    """Compare, write ``reports/verify.json``, log a summary; the report says whether all is identical.

    FULL compares every document; INCREMENTAL (after a passed live pass) what may have changed
    since; AUTO is INCREMENTAL when ``reports/verify-live.json`` exists, else FULL. The live pass
    itself is :func:`backover.verify.live.run_verify_live`."""
    s3 = s3 or S3Objects(config.layout.bucket)
    s3.check_bucket()
    if config.mode is VerifyMode.LIVE:
        raise ValueError("the live pass is run_verify_live")
    if config.mode is not VerifyMode.FULL:
        record = state.read(s3, config.layout.verify_live_report, state.VerifyLiveRecord)
        if record is not None:
            return run_incremental(config, s3, record)
        if config.mode is VerifyMode.INCREMENTAL:
            raise JobFailed(
                f"no live verification record s3://{s3.bucket}/{config.layout.verify_live_report}: "
                "run `backover verify --live` before the freeze, or `backover verify --full`"
            )
        log.info("verify: no live pass record for this migration: comparing every document")
    return _run_full(config, s3)


def _run_full(config: VerifyConfig, s3: S3Objects) -> VerifyReport:
    started = time.monotonic()
    progress = Progress("verify", config.progress_seconds)
    with connected(config) as (source, target):
        try:
            pairs = namespaces(source, target, config.namespaces)
            log.info("verify: %d namespace(s) of %s against %s", len(pairs), config.source, config.target)
            progress.expect(sum(source[db][coll].estimated_document_count() for db, coll in pairs))
            reports = []
            for db, coll in pairs:
                compared = compare_namespace(
                    source, target, db, coll, config.batch_size, config.examples, progress
                )
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
