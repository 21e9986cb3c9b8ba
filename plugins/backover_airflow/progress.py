"""What a migration's state objects say about one phase: pending, done or failed, and how far.

Pure functions over the records of :mod:`backover.state` (and the verification report); the hook
reads S3 and calls them, the sensors and triggers log the message. "Restore verified" is clean's
own rule, :func:`backover.cleanup.guard.decide`, worded for a task log. Each message says what is
awaited and how far it is (lag behind the freeze position, segments left), so a task log answers
"what is it waiting for?" without opening S3.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Literal

from bson.timestamp import Timestamp

from backover import clustertime
from backover.cleanup import guard as clean_guard
from backover.lease import LeaseRecord
from backover.restore import follow
from backover.state import (
    BackupManifest,
    CleanRecord,
    FreezeRecord,
    ReplicatorCheckpoint,
    ReplicatorState,
    RestoreCheckpoint,
    RestoreState,
    StartRecord,
)
from backover.verify.report import VerifyReport

PENDING: Final = "pending"
SUCCESS: Final = "success"
FAILED: Final = "failed"
Status = Literal["pending", "success", "failed"]
#: How many namespaces with differences a failure message names.
MAX_NAMESPACES_IN_MESSAGE = 5


@dataclass(frozen=True)
class Progress:
    """One look at a phase: its status and a line that says why."""

    status: Status
    message: str

    @property
    def done(self) -> bool:
        return self.status == SUCCESS

    @property
    def failed(self) -> bool:
        return self.status == FAILED

    def to_event(self) -> dict[str, str]:
        """The trigger event payload."""
        return {"status": self.status, "message": self.message}


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _age(moment: datetime | None, now: datetime) -> float | None:
    if not isinstance(moment, datetime):
        return None
    return max(0.0, (_aware(now) - _aware(moment)).total_seconds())


def _ts(value: Timestamp | None) -> str:
    return clustertime.format(value) if isinstance(value, Timestamp) else "none"


def _captured(cp: ReplicatorCheckpoint) -> str:
    return f"{cp.events_total} events in {cp.last_seq} segments"


def _heartbeat(cp: ReplicatorCheckpoint, now: datetime) -> str:
    age = _age(cp.heartbeat_at, now)
    return "no heartbeat" if age is None else f"heartbeat {age:.0f} s ago"


def replicator_health(
    cp: ReplicatorCheckpoint | None, max_age_seconds: float, now: datetime, where: str
) -> Progress:
    """Healthy = a checkpoint in state running (or already draining/drained) with a fresh heartbeat."""
    if cp is None:
        return Progress(PENDING, f"waiting for the replicator's first checkpoint at {where}")
    if cp.state is ReplicatorState.FAILED:
        return Progress(FAILED, f"replicator failed: {cp.reason or 'no reason given'}")
    if cp.state is ReplicatorState.STOPPED:
        return Progress(FAILED, f"replicator is stopped (aborted?) after {_captured(cp)}")
    age = _age(cp.heartbeat_at, now)
    if age is None or age > max_age_seconds:
        return Progress(
            PENDING,
            f"replicator state {cp.state} but {_heartbeat(cp, now)} (older than {max_age_seconds:.0f} s); "
            "waiting for a fresh heartbeat",
        )
    return Progress(
        SUCCESS,
        f"replicator healthy: state {cp.state}, {_heartbeat(cp, now)}, {_captured(cp)}, "
        f"last event at cluster time {_ts(cp.last_cluster_time)}",
    )


def replication_drained(
    freeze: FreezeRecord | None, cp: ReplicatorCheckpoint | None, max_age_seconds: float, now: datetime
) -> Progress:
    """Drained = the checkpoint says ``drained`` at or past the freeze position F."""
    if freeze is None or freeze.f is None:
        return Progress(
            PENDING, "waiting for the freeze position F (state/freeze.json, from the restore Lambda)"
        )
    f = freeze.f
    if cp is None:
        return Progress(PENDING, f"F = {_ts(f)}; waiting for the replicator's first checkpoint")
    if cp.state is ReplicatorState.FAILED:
        return Progress(
            FAILED, f"replicator failed before draining past F = {_ts(f)}: {cp.reason or 'no reason given'}"
        )
    reached = max(
        (t for t in (cp.drained_until, cp.last_cluster_time) if isinstance(t, Timestamp)), default=None
    )
    if cp.state is ReplicatorState.DRAINED and reached is not None and reached >= f:
        return Progress(
            SUCCESS, f"replication drained past F = {_ts(f)}: captured up to {_ts(reached)}, {_captured(cp)}"
        )
    if cp.state is ReplicatorState.STOPPED:
        return Progress(FAILED, f"replicator stopped before draining past F = {_ts(f)} ({_captured(cp)})")
    behind = f"{max(0, f.time - reached.time)} s behind" if reached is not None else "nothing captured yet"
    line = (
        f"state {cp.state}: captured up to {_ts(reached)}, F = {_ts(f)} ({behind}); "
        f"{_captured(cp)}, {_heartbeat(cp, now)}"
    )
    age = _age(cp.heartbeat_at, now)
    if age is None or age > max_age_seconds:
        line += f" - the replicator may not be running (no heartbeat for over {max_age_seconds:.0f} s)"
    return Progress(PENDING, line)


#: How the "restore verified" check words the waits of clean's guard (the other refusals say it themselves).
_WAITING = {
    clean_guard.Check.NO_REPORT: "waiting for the verification report (reports/verify.json)",
    clean_guard.Check.STALE_REPORT: "the verification report predates the restore, waiting for a new one",
}


def restore_completed(
    cp: RestoreCheckpoint | None,
    replicator: ReplicatorCheckpoint | None,
    report: VerifyReport | None,
    require_identical: bool,
    clean: CleanRecord | None = None,
    freeze: FreezeRecord | None = None,
    now: datetime | None = None,
    backup: BackupManifest | None = None,
) -> Progress:
    """Completed = the restore checkpoint says ``completed``. With ``require_identical`` (the clean
    DAG's "restore verified") it is clean's own rule, :func:`backover.cleanup.guard.decide`: done
    when clean-up would be allowed (restore completed, verification newer than it and identical,
    frozen, the replicator drained or stopped, or a passing check recorded in ``state/clean.json``
    by a clean-up that removed the checkpoints); failed when the guard's refusal is final."""
    if not require_identical:
        return _restore_progress(cp, replicator)
    verdict = clean_guard.decide(
        restore=cp,
        report=report,
        replicator=replicator,
        freeze=freeze,
        clean=clean,
        force=False,
        now=now or datetime.now(UTC),
        backup=backup,
    )
    if verdict.recorded:
        return Progress(
            SUCCESS,
            "restore completed and verified identical (recorded in state/clean.json "
            "by the clean-up, which removed the restore checkpoint)",
        )
    if verdict.check is clean_guard.Check.RESTORE and cp is not None:
        return _restore_progress(cp, replicator)
    if verdict.final:
        return Progress(FAILED, verdict.refusal or "")
    if cp is None:
        return Progress(PENDING, "waiting for the restore's checkpoint (restore/_checkpoint.json)")
    done = _restore_done(cp)
    if verdict.check in _WAITING:
        return Progress(PENDING, f"{done}; {_WAITING[verdict.check]}")
    count = len(report.namespaces) if report is not None else 0
    if not verdict.allowed:
        return Progress(PENDING, f"{done}; verified identical ({count} namespaces), but {verdict.refusal}")
    return Progress(SUCCESS, f"{done}; verified identical ({count} namespaces)")


def _restore_done(cp: RestoreCheckpoint) -> str:
    return f"restore completed: {cp.last_applied_seq} segments, {cp.events_applied} events applied"


def _restore_progress(cp: RestoreCheckpoint | None, replicator: ReplicatorCheckpoint | None) -> Progress:
    if cp is None:
        return Progress(PENDING, "waiting for the restore's checkpoint (restore/_checkpoint.json)")
    if cp.state is RestoreState.FAILED:
        return Progress(FAILED, f"restore failed: {cp.reason or 'no reason given'}")
    if cp.state is not RestoreState.COMPLETED:
        total = replicator.last_seq if replicator is not None else None
        left = str(follow.lag(cp, replicator)) if replicator is not None else "total unknown"
        return Progress(
            PENDING,
            f"restoring{' (follow mode)' if cp.follow else ''}: applied segment {cp.last_applied_seq} of "
            f"{total if total is not None else '?'} ({left}), {cp.events_applied} events applied",
        )
    return Progress(SUCCESS, _restore_done(cp))


#: What a user does about a follow restore that is not running (the writes are not frozen yet).
_RESTART_FOLLOWER = "run backover_start again to restart it (the microservices keep writing meanwhile)"


def follow_restore_health(
    cp: RestoreCheckpoint | None,
    replicator: ReplicatorCheckpoint | None,
    lease: LeaseRecord | None,
    now: datetime,
) -> Progress:
    """Healthy = the restore checkpoint says ``running`` in follow mode and its holder renews the
    restore lease (a thread renews it every few seconds, even while a long segment is applied, so
    a lease past its TTL means the process is gone). Failed at once when it failed, stopped, or
    its lease lapsed: the freeze must not start while nothing applies the changes."""
    if cp is None:
        return Progress(
            PENDING, "waiting for the follow restore's first checkpoint (restore/_checkpoint.json)"
        )
    behind = f"; {follow.lag(cp, replicator)}" if replicator is not None else ""
    if cp.state is RestoreState.FAILED:
        return Progress(
            FAILED, f"the follow restore failed: {cp.reason or 'no reason given'}; {_RESTART_FOLLOWER}"
        )
    if cp.state is RestoreState.STOPPED:
        return Progress(
            FAILED, f"the follow restore is stopped ({cp.reason or 'no reason given'}); {_RESTART_FOLLOWER}"
        )
    if cp.state is RestoreState.COMPLETED:
        return Progress(SUCCESS, _restore_done(cp))
    if not cp.follow:
        return Progress(PENDING, "a one-off restore is running, not a follow restore; waiting")
    if lease is None or lease.expired(now):
        when = "no restore lease" if lease is None else f"its lease expired at {lease.expires_at.isoformat()}"
        return Progress(FAILED, f"the follow restore is not running ({when}); {_RESTART_FOLLOWER}")
    return Progress(
        SUCCESS,
        f"follow restore healthy ({lease.holder}): segment {cp.last_applied_seq} applied, "
        f"{cp.events_applied} events{behind}",
    )


def _namespaces(docs: list[dict[str, str]]) -> str:
    if not docs:
        return "none"
    names = [".".join(p for p in (d.get("database"), d.get("collection")) if p) for d in docs]
    return ", ".join(names) or "the whole cluster"


def clean_completed(clean: CleanRecord | None, segments_left: int) -> Progress:
    """Completed = ``state/clean.json`` has ``cleaned_at`` (the S3 clean-up finished) and no change
    segment is left. The clean Lambda and clean's own guard write the file earlier, without it."""
    if clean is None or clean.cleaned_at is None:
        return Progress(
            PENDING,
            f"waiting for the clean-up to finish (state/clean.json 'cleaned_at'); "
            f"{segments_left} change segments left",
        )
    if segments_left:
        return Progress(PENDING, f"clean-up recorded but {segments_left} change segments are left")
    return Progress(
        SUCCESS,
        f"clean completed: {clean.segments_deleted} segments deleted, no segments left; "
        f"change streams disabled: {_namespaces(clean.change_streams_disabled)}",
    )


def capture_window(
    start: StartRecord | None, cp: ReplicatorCheckpoint | None, min_seconds: float, now: datetime
) -> Progress:
    """Done once the capture has run ``min_seconds`` since T0 (``state/start.json``) and the replicator
    has not failed; the message counts what was captured so far (a rehearsal's load window)."""
    t0 = start.t0 if start else None
    if t0 is None:
        return Progress(
            PENDING, "waiting for the start position T0 (state/start.json, from the start Lambda)"
        )
    if cp is not None and cp.state in (ReplicatorState.FAILED, ReplicatorState.STOPPED):
        why = (cp.reason or "no reason given") if cp.state is ReplicatorState.FAILED else "aborted?"
        return Progress(FAILED, f"replicator {cp.state} during the capture window: {why}")
    elapsed = max(0.0, _aware(now).timestamp() - t0.time)
    captured = _captured(cp) if cp is not None else "nothing captured yet"
    if elapsed >= min_seconds:
        return Progress(SUCCESS, f"capture window over: {captured} in {elapsed:.0f} s since T0 = {_ts(t0)}")
    return Progress(
        PENDING, f"capturing: {captured}; {elapsed:.0f} s of {min_seconds:.0f} s since T0 = {_ts(t0)}"
    )
