"""May this migration be cleaned? Only once nothing can still need its segments and checkpoints.

The rule, :func:`decide` (pure: the records in, allowed or the refusal out), is the one place it is
written; the clean Lambda and ``backover clean`` call it through :func:`check` (which reads the
records and keeps a passing check), and the Airflow "restore verified" sensor and trigger through
``backover_airflow.progress.restore_completed``:

* ``restore/_checkpoint.json`` says ``completed``;
* ``reports/verify.json`` says ``identical`` and is not older than the restore checkpoint;
* the migration was frozen (``state/freeze.json`` exists) and the replicator checkpoint says
  ``drained`` or ``stopped``: while it still captures, a restore completed and verified a moment
  ago says nothing about the writes to come, and deleting the segments would lose them;
* a DocumentDB backup whose dump began before F, while the capture ran (its manifest has
  ``capture_seq`` and ``b < F``), is sealed (``f`` recorded, its segments copied next to it):
  otherwise deleting the segments would leave a dump that can no longer be made consistent at F.

``force`` skips every check and says so. A passing check is kept in ``state/clean.json``
(``guard``), because clean-up deletes the checkpoints: a re-run is then allowed by the recorded
check. A recorded check is reused only when it passed unforced, or when the new run is forced
too: a failed ``clean --force`` never lets a later plain ``clean`` through.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from datetime import datetime

from ..errors import JobFailed
from ..layout import MigrationLayout
from ..s3objects import S3Objects
from ..state import (
    BackupManifest,
    CleanGuard,
    CleanRecord,
    FreezeRecord,
    ReplicatorCheckpoint,
    ReplicatorState,
    RestoreCheckpoint,
    RestoreState,
    read,
    utc_now,
)
from ..verify.report import VerifyReport
from . import record

log = logging.getLogger(__name__)


class CleanRefused(JobFailed):
    """The migration is not finished (restore, verification or capture not over)."""


class Check(enum.StrEnum):
    """Which part of the rule refused (the sensor words its wait after it)."""

    RESTORE = "restore"  # the restore has not completed
    NO_REPORT = "no-report"  # verification has not run
    STALE_REPORT = "stale-report"  # the report predates the restore
    DIFFERENT = "different"  # verification found differences
    CAPTURE = "capture"  # not frozen, or the replicator neither drained nor stopped
    FORCED = "forced"  # an earlier forced clean-up removed the checkpoints of an unverified migration
    UNSEALED = "unsealed"  # the DocumentDB backup taken during the capture still needs the segments


@dataclass(frozen=True)
class Verdict:
    """The guard's answer: allowed (``refusal`` None), or why not."""

    guard: CleanGuard  # the check as made (or as recorded, when ``recorded``)
    refusal: str | None = None
    check: Check | None = None
    final: bool = False  # waiting will not change it (never frozen, the restore failed, differences, forced)
    recorded: bool = False  # allowed by the check an earlier clean-up recorded in state/clean.json

    @property
    def allowed(self) -> bool:
        return self.refusal is None


def capture_refusal(replicator_state: ReplicatorState | None, frozen: bool) -> str | None:
    """Why the capture may still be running (None when it is over)."""
    if not frozen:
        return (
            "the migration was never frozen (no state/freeze.json): the app still writes and the replicator "
            "still captures; run backover_restore first"
        )
    if replicator_state is None or not replicator_state.capture_over():
        state = replicator_state or "without a checkpoint"
        return (
            f"the replicator is {state} (needs drained or stopped): segments deleted now would take later "
            "writes with them"
        )
    return None


def decide(
    *,
    restore: RestoreCheckpoint | None,
    report: VerifyReport | None,
    replicator: ReplicatorCheckpoint | None,
    freeze: FreezeRecord | None,
    clean: CleanRecord | None,
    force: bool,
    now: datetime,
    backup: BackupManifest | None = None,
) -> Verdict:
    """Whether clean-up is allowed now, from the migration's records (None where absent;
    ``backup``: the DocumentDB backup's manifest)."""
    recorded = clean.guard if clean is not None else None
    if recorded is not None and (recorded.passed or (force and recorded.forced)):
        return Verdict(recorded, recorded=True)
    restore_state = restore.state if restore is not None else None
    stale = report is not None and report.predates(restore.updated_at if restore is not None else None)
    verified = report is not None and report.identical and not stale
    replicator_state = replicator.state if replicator is not None else None
    guard = CleanGuard(
        restore_state=restore_state,
        verified=verified,
        replicator_state=replicator_state,
        frozen=freeze is not None,
        forced=force,
        checked_at=now,
    )
    if force:
        return Verdict(guard)
    if recorded is not None and recorded.forced and restore is None:
        return Verdict(
            guard,
            "the clean-up was forced without a verified restore (state/clean.json) and its "
            "checkpoints are gone",
            Check.FORCED,
            final=True,
        )
    if freeze is None:
        # Final: the freeze is backover_restore's, and a clean run does not wait for one to be triggered.
        return Verdict(guard, capture_refusal(replicator_state, False), Check.CAPTURE, final=True)
    if restore_state is not RestoreState.COMPLETED:
        failed = restore_state is RestoreState.FAILED
        reason = f": {restore.reason or 'no reason given'}" if failed and restore is not None else ""
        return Verdict(
            guard,
            f"the restore is {restore_state or 'not started'} (needs completed){reason}",
            Check.RESTORE,
            final=failed,
        )
    if report is None:
        return Verdict(guard, "verification has not run (needs identical)", Check.NO_REPORT)
    if stale:
        return Verdict(guard, "verification predates the restore (needs identical)", Check.STALE_REPORT)
    if not verified:
        return Verdict(
            guard,
            f"verification found differences: {report.differences()} (needs identical)",
            Check.DIFFERENT,
            final=True,
        )
    capture = capture_refusal(replicator_state, freeze is not None)
    if capture:
        return Verdict(guard, capture, Check.CAPTURE)
    if _unsealed(backup, freeze):
        assert backup is not None
        return Verdict(
            guard,
            f"the {backup.label} backup taken during the capture is not sealed (no F in its manifest): "
            f"run `backover backup --label {backup.label} --seal` first, or the segments it needs to be "
            "consistent at F go with the clean-up",
            Check.UNSEALED,
        )
    return Verdict(guard)


def _unsealed(backup: BackupManifest | None, freeze: FreezeRecord | None) -> bool:
    """A backup whose dump began before F (while the app wrote) and was not sealed since; a dump
    that began at or after F read the frozen source and needs no segment."""
    if backup is None or backup.capture_seq is None or backup.f is not None:
        return False
    f = freeze.f if freeze is not None else None
    return f is None or backup.b < f


def check(s3: S3Objects, layout: MigrationLayout, force: bool = False) -> CleanGuard:
    """The check allowing clean-up, recorded in ``state/clean.json``; CleanRefused if refused."""
    clean = record.read(s3, layout)
    if clean.guard is not None and clean.guard.forced and not force:
        log.info("an earlier clean-up was forced; this run is not, so the checks run again")
    verdict = decide(
        restore=read(s3, layout.restore_checkpoint, RestoreCheckpoint),
        report=read(s3, layout.verify_report, VerifyReport),
        replicator=read(s3, layout.replicator_checkpoint, ReplicatorCheckpoint),
        freeze=read(s3, layout.freeze_state, FreezeRecord),
        clean=clean,
        force=force,
        now=utc_now(),
        backup=read(s3, layout.backup_manifest("documentdb"), BackupManifest),
    )
    guard = verdict.guard
    if verdict.recorded:
        log.info("clean-up was allowed before (%s); going on", _describe(guard))
        return guard
    if not verdict.allowed:
        raise CleanRefused(
            f"refusing to clean migration {layout.migration_id!r}: {verdict.refusal}; --force to clean anyway"
        )
    if force:
        log.warning(
            "clean-up forced: restore %s, verified %s, replicator %s, frozen %s",
            guard.restore_state or "not started",
            guard.verified,
            guard.replicator_state or "without a checkpoint",
            guard.frozen,
        )
    record.update(s3, layout, guard=guard)
    return guard


def _describe(guard: CleanGuard) -> str:
    if guard.forced:
        return "forced"
    return f"restore {guard.restore_state}, verified {guard.verified}, replicator {guard.replicator_state}"
