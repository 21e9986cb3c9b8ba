"""May this migration be cleaned? Only once nothing can still need its segments and checkpoints.

The rule (used by the clean Lambda, ``backover clean`` and the Airflow "restore verified" sensor):

* ``restore/_checkpoint.json`` says ``completed``;
* ``reports/verify.json`` says ``identical`` and is not older than the restore checkpoint;
* the migration was frozen (``state/freeze.json`` exists) and the replicator checkpoint says
  ``drained`` or ``stopped``: while it still captures, a restore completed and verified a moment
  ago says nothing about the writes to come, and deleting the segments would lose them.

``force`` skips every check and says so. A passing check is kept in ``state/clean.json``
(``guard``), because clean-up deletes the checkpoints: a re-run is then allowed by the recorded
check. A recorded check is reused only when it passed unforced, or when the new run is forced
too: a failed ``clean --force`` never lets a later plain ``clean`` through.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ..errors import JobFailed
from ..layout import MigrationLayout
from ..s3objects import S3Objects
from ..state import ReplicatorCheckpoint, RestoreCheckpoint, utc_now
from . import record

log = logging.getLogger(__name__)

#: Replicator states after which no segment is written any more.
CAPTURE_OVER = ("drained", "stopped")


class CleanRefused(JobFailed):
    """The migration is not finished (restore, verification or capture not over)."""


def capture_refusal(replicator_state: str | None, frozen: bool) -> str | None:
    """Why the capture may still be running (None when it is over)."""
    if not frozen:
        return ("the migration was never frozen (no state/freeze.json): the app still writes and the replicator "
                "still captures")
    if replicator_state not in CAPTURE_OVER:
        state = replicator_state or "without a checkpoint"
        return (f"the replicator is {state} (needs drained or stopped): segments deleted now would take later "
                "writes with them")
    return None


def report_predates(report: Mapping[str, Any], restore: RestoreCheckpoint | None) -> bool:
    """Whether the verification report was made before the restore's last checkpoint."""
    checked = report.get("checked_at")
    updated = restore.updated_at if restore is not None else None
    if not isinstance(checked, datetime) or not isinstance(updated, datetime):
        return False
    return _aware(checked) < _aware(updated)


def recorded_pass(guard: Mapping[str, Any] | None) -> bool:
    """Whether a recorded guard is an unforced check that passed every rule."""
    return bool(
        isinstance(guard, Mapping)
        and not guard.get("forced")
        and guard.get("restore_state") == "completed"
        and guard.get("verified") is True
        and guard.get("frozen") is True
        and guard.get("replicator_state") in CAPTURE_OVER
    )


def check(s3: S3Objects, layout: MigrationLayout, force: bool = False) -> dict[str, Any]:
    """The guard record allowing clean-up, recorded in ``state/clean.json``; CleanRefused if none."""
    recorded = record.read(s3, layout).get("guard")
    if isinstance(recorded, Mapping) and (recorded_pass(recorded) or (force and recorded.get("forced"))):
        log.info("clean-up was allowed before (%s); going on", _describe(recorded))
        return dict(recorded)
    if isinstance(recorded, Mapping) and recorded.get("forced"):
        log.info("an earlier clean-up was forced; this run is not, so the checks run again")
    raw = s3.get_json(layout.restore_checkpoint)
    restore = RestoreCheckpoint.from_doc(raw) if raw else None
    restore_state = restore.state if restore is not None else None
    report = s3.get_json(layout.verify_report)
    stale = report is not None and report_predates(report, restore)
    verified = bool(report and report.get("identical") is True and not stale)
    raw_replicator = s3.get_json(layout.replicator_checkpoint)
    replicator_state = ReplicatorCheckpoint.from_doc(raw_replicator).state if raw_replicator else None
    frozen = s3.head(layout.freeze_state) is not None
    guard = {"restore_state": restore_state, "verified": verified, "replicator_state": replicator_state,
             "frozen": frozen, "forced": force, "checked_at": utc_now()}
    if not force:
        reason = _refusal(restore_state, report, stale, verified) or capture_refusal(replicator_state, frozen)
        if reason:
            raise CleanRefused(f"refusing to clean migration {layout.migration_id!r}: {reason}; --force to clean "
                               "anyway")
    else:
        log.warning("clean-up forced: restore %s, verified %s, replicator %s, frozen %s",
                    restore_state or "not started", verified, replicator_state or "without a checkpoint", frozen)
    record.update(s3, layout, guard=guard)
    return guard


def _refusal(restore_state: str | None, report: Mapping[str, Any] | None, stale: bool, verified: bool) -> str | None:
    if restore_state != "completed":
        return f"the restore is {restore_state or 'not started'} (needs completed)"
    if verified:
        return None
    if report is None:
        found = "has not run"
    elif stale:
        found = "predates the restore"
    else:
        found = "found differences"
    return f"verification {found} (needs identical)"


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _describe(guard: Mapping[str, Any]) -> str:
    if guard.get("forced"):
        return "forced"
    return (f"restore {guard.get('restore_state')}, verified {guard.get('verified')}, replicator "
            f"{guard.get('replicator_state')}")
