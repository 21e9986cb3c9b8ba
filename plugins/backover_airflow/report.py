"""The rehearsal report: how long each phase took, how long writes were frozen, what moved, verdict.

Pure: built from the migration's state objects (:class:`MigrationSnapshot`) and the phases' run
states and durations, so it can be checked on any migration's files. Clean-up deletes the
checkpoints, so the counts come from :func:`figures`, taken before the clean phase; the state files
and reports stay. Written as plain JSON to ``reports/rehearsal.json`` and, as
:func:`summary_lines`, to the task log.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from backover.lifecycle.window import freeze_window
from backover.state import CleanRecord, FreezeRecord, ReplicatorCheckpoint, RestoreCheckpoint, StartRecord
from backover.verify.report import VerifyReport


@dataclass(frozen=True)
class MigrationSnapshot:
    """Every state object of one migration, as read at one moment (None where absent)."""

    start: StartRecord | None = None
    freeze: FreezeRecord | None = None
    replicator: ReplicatorCheckpoint | None = None
    restore: RestoreCheckpoint | None = None
    verify: VerifyReport | None = None
    clean: CleanRecord | None = None


@dataclass(frozen=True)
class Phase:
    """One phase of a rehearsal: its outcome and how long it took."""

    state: str | None
    seconds: float | None
    run_id: str | None = None
    tasks: Mapping[str, float | None] | None = None  # task id -> seconds, inside the phase's DAG run

    @property
    def ok(self) -> bool:
        return self.state == "success"


def _iso(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else None


def _seconds(start: Any, end: Any) -> float | None:
    if isinstance(start, datetime) and isinstance(end, datetime):
        return round((end - start).total_seconds(), 3)
    return None


def _rate(count: int | None, seconds: float | None) -> float | None:
    return round(count / seconds, 1) if count is not None and seconds else None


def figures(snap: MigrationSnapshot) -> dict[str, int | None]:
    """The counts the checkpoints hold (plain JSON, for XCom): read them before clean-up."""
    return {
        "events_captured": snap.replicator.events_total if snap.replicator else None,
        "bytes_captured": snap.replicator.bytes_total if snap.replicator else None,
        "segments": snap.replicator.last_seq if snap.replicator else None,
        "events_replayed": snap.restore.events_applied if snap.restore else None,
    }


def build(
    migration_id: str,
    phases: Mapping[str, Phase],
    snap: MigrationSnapshot,
    counts: Mapping[str, int | None] | None = None,
    restore_task: tuple[str, str] = ("restore", "restore.restore"),
) -> dict[str, Any]:
    """The report as plain JSON values.

    :param phases: phase name -> :class:`Phase`, in order.
    :param snap: the state objects now.
    :param counts: :func:`figures` taken before clean-up (default: from ``snap``).
    :param restore_task: ``(phase, task id)`` whose duration measures the replay throughput.
    """
    start, freeze, verify, clean = snap.start, snap.freeze, snap.verify, snap.clean
    counts = counts or figures(snap)
    captured, replayed = counts.get("events_captured"), counts.get("events_replayed")
    frozen_at = freeze.frozen_at if freeze else None
    checked_at = verify.checked_at if verify else None
    phase, task = restore_task
    restore_phase = phases.get(phase)
    restore_tasks = restore_phase.tasks if restore_phase is not None and restore_phase.tasks else {}
    restore_seconds = restore_tasks.get(task)
    identical = verify.identical if verify is not None else None
    passed = bool(phases) and all(p.ok for p in phases.values()) and identical is True
    return {
        "migration_id": migration_id,
        "passed": passed,
        "phases": {
            name: {"state": p.state, "seconds": p.seconds, "run_id": p.run_id, "tasks": dict(p.tasks or {})}
            for name, p in phases.items()
        },
        "write_freeze": freeze_window(freeze, snap.replicator, snap.restore, checked_at).to_json(),
        "events": {
            "captured": captured,
            "bytes_captured": counts.get("bytes_captured"),
            "segments": counts.get("segments"),
            "replayed": replayed,
        },
        "throughput": {
            "capture_events_per_second": _rate(
                captured, _seconds(start.started_at if start else None, frozen_at)
            ),
            "replay_events_per_second": _rate(replayed, restore_seconds),
        },
        "verification": {
            "identical": identical,
            "namespaces": len(verify.namespaces) if verify else 0,
            "differences": None if verify is None or identical else verify.differences(),
            "checked_at": _iso(checked_at),
        },
        "clean": {
            "cleaned_at": _iso(clean.cleaned_at if clean else None),
            "segments_deleted": clean.segments_deleted if clean else None,
        },
    }


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "n/a"
    return f"{value:.1f}{unit}" if isinstance(value, float) else f"{value}{unit}"


def _phases(phases: Mapping[str, float | None]) -> str:
    return " (" + ", ".join(f"{name} {_fmt(s, ' s')}" for name, s in phases.items()) + ")" if phases else ""


def summary_lines(report: Mapping[str, Any]) -> list[str]:
    """The report for a human, one fact per line."""
    verdict = {True: "identical", False: "DIFFERENT", None: "not run"}[report["verification"]["identical"]]
    lines = [f"rehearsal {report['migration_id']}: {'PASSED' if report['passed'] else 'FAILED'}"]
    for name, phase in report["phases"].items():
        lines.append(f"  phase {name:<10} {phase['state'] or 'not run':<16} {_fmt(phase['seconds'], ' s')}")
    lines += [
        f"  write freeze (read-only -> verified): {_fmt(report['write_freeze']['seconds'], ' s')}"
        + _phases(report["write_freeze"].get("phases") or {}),
        f"  events captured: {_fmt(report['events']['captured'])} in {_fmt(report['events']['segments'])} segments",
        f"  events replayed: {_fmt(report['events']['replayed'])}",
        f"  capture throughput: {_fmt(report['throughput']['capture_events_per_second'], ' events/s')}",
        f"  replay throughput: {_fmt(report['throughput']['replay_events_per_second'], ' events/s')}",
        f"  verification: {verdict} ({report['verification']['namespaces']} namespaces)",
    ]
    if report["verification"]["differences"]:
        lines.append(f"  differences: {report['verification']['differences']}")
    return lines
