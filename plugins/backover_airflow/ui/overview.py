"""One migration as the Migrations page shows it: its phase, lags, rates, freeze and verdict.

Pure: built from the migration's records (:class:`Folder`, read by ``web_app`` through
:class:`~backover_airflow.hooks.migration.MigrationHook`) with the rules the rest of Back Over
already has, so the page says what the sensors, ``backover status`` and clean say:

* the capture's lag and heartbeat age: :func:`backover.replication.status.replicator_status`;
* the restore's lag behind the capture: :func:`backover.restore.follow.lag`;
* the write freeze: :func:`backover.lifecycle.window.freeze_window`;
* each phase's "what now" line: the sensors' own checks in :mod:`backover_airflow.progress`
  (replicator healthy, drained past F, restore completed, restore verified = clean's guard).

The phase is the furthest step the records prove, and a failure stops there: cleaned, aborted,
failed, then frozen (draining, restoring, verifying, verified or different) or not yet (starting,
initial sync, capturing).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bson.timestamp import Timestamp

from backover.lifecycle.window import FreezeWindow, freeze_window
from backover.replication.status import replicator_status
from backover.restore import follow
from backover.restore.follow import Lag
from backover.state import (
    AbortRecord,
    BackupManifest,
    ReplicatorState,
    RestoreState,
    VerifyLiveRecord,
    VerifyLiveState,
)
from backover_airflow import progress
from backover_airflow.report import MigrationSnapshot


class Phase(enum.StrEnum):
    """Where a migration is, as its records prove it."""

    NO_STATE = "no state"  # a folder without any of the records below
    STARTING = "starting"  # state/start.json without T0 yet
    SYNCING = "initial sync"  # a sync plan without its completion record, before the freeze
    CAPTURING = "capturing"  # T0 recorded, not frozen
    DRAINING = "frozen: draining"
    RESTORING = "frozen: restoring"
    VERIFYING = "frozen: verifying"
    VERIFIED = "verified"  # identical, and clean-up would be allowed
    DIFFERENT = "different"  # verification found differences
    CLEANING = "cleaning"
    CLEANED = "cleaned"
    ABORTED = "aborted"
    FAILED = "failed"

    @property
    def frozen(self) -> bool:
        return self in (Phase.DRAINING, Phase.RESTORING, Phase.VERIFYING)


class Health(enum.StrEnum):
    """How the page colours a phase."""

    GOOD = "good"  # going as it should, or done
    WAITING = "waiting"  # nothing wrong yet, nothing proven yet
    BAD = "bad"  # a human is needed (failed, different, no heartbeat)


def _health(status: progress.Status) -> Health:
    return {progress.SUCCESS: Health.GOOD, progress.FAILED: Health.BAD}.get(status, Health.WAITING)


@dataclass(frozen=True)
class Folder:
    """What a migration's folder holds (None / False where absent)."""

    snapshot: MigrationSnapshot
    verify_live: VerifyLiveRecord | None = None
    backup: BackupManifest | None = None  # backups/documentdb/_backup.json (clean's guard reads it)
    stop_requested: bool = False  # control/stop.json: an abort was asked for
    abort: AbortRecord | None = None  # state/abort.json: the abort gave the roles back (read back)
    sync_planned: bool = False  # sync/plan.json
    sync_complete: bool = False  # sync/complete.json
    files: frozenset[str] = frozenset()  # the names of :data:`web_app.FILES` that exist

    @property
    def empty(self) -> bool:
        s = self.snapshot
        return not any((s.start, s.freeze, s.replicator, s.restore, s.verify, s.clean, self.verify_live))


@dataclass(frozen=True)
class Verdict:
    """The verification result: ``identical`` True/False once ``reports/verify.json`` says so (None:
    not proven yet), and a line for people."""

    identical: bool | None
    line: str


@dataclass(frozen=True)
class MigrationOverview:
    """One row of the Migrations page (and the head of a migration's own page)."""

    migration_id: str
    location: str  # s3://bucket/prefix/id/
    phase: Phase
    detail: str  # why it is in that phase / what it waits for (the sensors' words)
    health: Health
    started_at: datetime | None = None
    t0: Timestamp | None = None
    namespaces: list[str] = field(default_factory=list)
    replicator_state: ReplicatorState | None = None
    capture_lag_seconds: float | None = None
    heartbeat_age_seconds: float | None = None
    events: int | None = None
    segments: int | None = None
    bytes_captured: int | None = None
    events_per_second: float | None = None
    restore_state: RestoreState | None = None
    restore_follow: bool = False
    restore_lag: Lag | None = None
    events_applied: int | None = None
    freeze: FreezeWindow = field(default_factory=lambda: FreezeWindow(None, None))
    verdict: Verdict = field(default_factory=lambda: Verdict(None, "not verified yet"))
    files: frozenset[str] = frozenset()


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def events_per_second(snap: MigrationSnapshot) -> float | None:
    """Events captured per second, averaged from the start (``started_at``) to the freeze
    (``frozen_at``) or, while the capture runs, to the replicator's last heartbeat."""
    cp, start = snap.replicator, snap.start
    if cp is None or start is None or start.started_at is None:
        return None
    end = snap.freeze.frozen_at if snap.freeze and snap.freeze.frozen_at else cp.heartbeat_at
    if end is None:
        return None
    seconds = (_aware(end) - _aware(start.started_at)).total_seconds()
    return round(cp.events_total / seconds, 1) if seconds > 0 else None


def verdict(folder: Folder) -> Verdict:
    """What verification says: the report at the freeze, else how far the live pass got."""
    report = folder.snapshot.verify
    if report is not None:
        checked = (
            report.checked_at.isoformat(timespec="seconds") if report.checked_at else "at an unknown time"
        )
        if report.identical:
            return Verdict(
                True, f"identical ({report.mode}, {len(report.namespaces)} namespaces, checked {checked})"
            )
        return Verdict(False, f"DIFFERENT: {report.differences()} (checked {checked})")
    live = folder.verify_live
    if live is not None:
        line = f"live pass {live.state}: {live.documents:,} documents compared"
        if live.state is VerifyLiveState.FAILED:
            line += f", {live.reason or 'differences found'}"
        return Verdict(None, line + "; the check at the freeze has not run yet")
    return Verdict(None, "not verified yet")


def _aborted(record: AbortRecord | None) -> tuple[Phase, str, Health]:
    """An abort as its records prove it: asked for (``control/stop.json``, written first), and the
    roles given back only when ``state/abort.json`` says the source reported them so."""
    if record is None:
        return (
            Phase.ABORTED,
            "abort requested (control/stop.json); the app user's roles are not confirmed given back "
            "(no state/abort.json): see backover_abort's log and run it again",
            Health.BAD,
        )
    when = record.confirmed_at.isoformat(timespec="seconds") if record.confirmed_at else "at an unknown time"
    writes = ", ".join(record.can_write) or "none of the migrated databases"
    if record.cannot_write:
        writes += f" (not {', '.join(record.cannot_write)}: its prior roles are read-only there)"
    return (
        Phase.ABORTED,
        f"aborted {when}: {record.app_user} holds its prior roles again (read back from the source), "
        f"it can write {writes}; a new migration id is needed to start again",
        Health.WAITING,
    )


def _phase(folder: Folder, now: datetime, heartbeat_max_age: float, where: str) -> tuple[Phase, str, Health]:
    s = folder.snapshot
    rep, res = s.replicator, s.restore
    if s.clean is not None:
        if s.clean.cleaned_at is not None:
            return (
                Phase.CLEANED,
                f"clean-up finished {s.clean.cleaned_at.isoformat(timespec='seconds')}: "
                f"{s.clean.segments_deleted} change segments deleted",
                Health.GOOD,
            )
        return Phase.CLEANING, "clean-up started (state/clean.json), not finished yet", Health.WAITING
    if folder.stop_requested or folder.abort is not None:
        return _aborted(folder.abort)
    if rep is not None and rep.state is ReplicatorState.FAILED:
        return Phase.FAILED, f"replicator failed: {rep.reason or 'no reason given'}", Health.BAD
    if res is not None and res.state is RestoreState.FAILED:
        return Phase.FAILED, f"restore failed: {res.reason or 'no reason given'}", Health.BAD
    if s.freeze is None:
        if s.start is None:
            if folder.empty:
                return Phase.NO_STATE, "no state objects in this folder", Health.WAITING
            return (
                Phase.FAILED,
                "records without state/start.json: not a migration started by Back Over",
                Health.BAD,
            )
        if s.start.t0 is None:
            return Phase.STARTING, "the start Lambda has not recorded T0 yet", Health.WAITING
        health = progress.replicator_health(rep, heartbeat_max_age, now, where)
        # A sensor waits for a stale heartbeat; during weeks of capture it means nothing captures.
        shown = Health.BAD if rep is not None and not health.done else _health(health.status)
        if folder.sync_planned and not folder.sync_complete:
            return Phase.SYNCING, f"copying DocumentDB to MongoDB; {health.message}", shown
        return Phase.CAPTURING, health.message, shown
    drained = progress.replication_drained(s.freeze, rep, heartbeat_max_age, now)
    if not drained.done:
        return (Phase.FAILED if drained.failed else Phase.DRAINING), drained.message, _health(drained.status)
    restored = progress.restore_completed(res, rep, None, False)
    if not restored.done:
        return (
            (Phase.FAILED if restored.failed else Phase.RESTORING),
            restored.message,
            _health(restored.status),
        )
    verified = progress.restore_completed(res, rep, s.verify, True, s.clean, s.freeze, now, folder.backup)
    if verified.failed:
        different = s.verify is not None and not s.verify.identical
        return (Phase.DIFFERENT if different else Phase.FAILED), verified.message, Health.BAD
    if verified.done:
        return Phase.VERIFIED, verified.message, Health.GOOD
    return Phase.VERIFYING, verified.message, Health.WAITING


def overview(
    migration_id: str,
    location: str,
    folder: Folder,
    *,
    heartbeat_max_age: float,
    now: datetime | None = None,
) -> MigrationOverview:
    """The page's view of one migration (``location``: its ``s3://`` folder)."""
    now = now or datetime.now(UTC)
    s = folder.snapshot
    phase, detail, health = _phase(folder, now, heartbeat_max_age, location)
    rep, res = s.replicator, s.restore
    shown: dict[str, Any] = replicator_status(rep, now) if rep is not None else {}
    checked_at = s.verify.checked_at if s.verify is not None else None
    return MigrationOverview(
        migration_id=migration_id,
        location=location,
        phase=phase,
        detail=detail,
        health=health,
        started_at=s.start.started_at if s.start else None,
        t0=s.start.t0 if s.start else None,
        namespaces=list(s.start.namespaces) if s.start else [],
        replicator_state=rep.state if rep else None,
        capture_lag_seconds=shown.get("lag_seconds"),
        heartbeat_age_seconds=shown.get("heartbeat_age_seconds"),
        events=rep.events_total if rep else None,
        segments=rep.last_seq if rep else None,
        bytes_captured=rep.bytes_total if rep else None,
        events_per_second=events_per_second(s),
        restore_state=res.state if res else None,
        restore_follow=bool(res and res.follow),
        restore_lag=follow.lag(res, rep) if res is not None and rep is not None else None,
        events_applied=res.events_applied if res else None,
        freeze=freeze_window(s.freeze, rep, res, checked_at),
        verdict=verdict(folder),
        files=folder.files,
    )


def damaged(migration_id: str, location: str, reason: str) -> MigrationOverview:
    """The row of a migration whose records cannot be read (``reason``: the record's one line)."""
    return MigrationOverview(migration_id, location, Phase.FAILED, reason, Health.BAD)
