"""May this migration be cleaned? Only after the restore completed and verify found no difference.

The check reads ``restore/_checkpoint.json`` (state must be ``completed``) and
``reports/verify.json`` (``identical`` must be true). ``force`` skips both, and says so. Once a
check has passed it is kept in ``state/clean.json`` (``guard``), because clean-up deletes the
restore checkpoint: a re-run is then allowed by the recorded check.
"""

from __future__ import annotations

import logging
from typing import Any

from ..errors import JobFailed
from ..layout import MigrationLayout
from ..s3objects import S3Objects
from ..state import RestoreCheckpoint, utc_now
from . import record

log = logging.getLogger(__name__)


class CleanRefused(JobFailed):
    """The migration is not finished (restore not completed, or not verified identical)."""


def check(s3: S3Objects, layout: MigrationLayout, force: bool = False) -> dict[str, Any]:
    """The guard record allowing clean-up, recorded in ``state/clean.json``; CleanRefused if none."""
    recorded = record.read(s3, layout).get("guard")
    if recorded:
        log.info("clean-up was allowed before (%s); going on", _describe(recorded))
        return recorded
    raw = s3.get_json(layout.restore_checkpoint)
    restore_state = RestoreCheckpoint.from_doc(raw).state if raw else None
    report = s3.get_json(layout.verify_report)
    verified = bool(report and report.get("identical") is True)
    guard = {"restore_state": restore_state, "verified": verified, "forced": force, "checked_at": utc_now()}
    if not force:
        if restore_state != "completed":
            raise CleanRefused(f"refusing to clean migration {layout.migration_id!r}: the restore is "
                               f"{restore_state or 'not started'} (needs completed); --force to clean anyway")
        if not verified:
            found = "has not run" if report is None else "found differences"
            raise CleanRefused(f"refusing to clean migration {layout.migration_id!r}: verification {found} "
                               "(needs identical); --force to clean anyway")
    else:
        log.warning("clean-up forced: restore %s, verified %s", restore_state or "not started", verified)
    record.update(s3, layout, guard=guard)
    return guard


def _describe(guard: dict[str, Any]) -> str:
    if guard.get("forced"):
        return "forced"
    return f"restore {guard.get('restore_state')}, verified {guard.get('verified')}"
