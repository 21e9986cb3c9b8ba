"""The write freeze, phase by phase: how long the microservices could not write, and where it went.

From the state objects alone (each written by a different machine, so a small clock skew between
them is clamped to 0): the freeze starts at ``state/freeze.json`` ``frozen_at`` (the restore
Lambda, once the app user is read-only) and ends when ``reports/verify.json`` proves the two sides
identical (``checked_at``). Inside it:

* **drain**: until the replicator checkpoint says ``drained`` (its ``heartbeat_at``);
* **restore** (follow mode: the tail after F, and the restore DAG's ``restore --wait``; otherwise
  the backups and the whole replay): until the restore checkpoint says ``completed`` (its
  ``updated_at``);
* **verify**: until the report.

The rehearsal report, ``backover rehearsal`` and the restore DAG's last task show it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..state import FreezeRecord, ReplicatorCheckpoint, ReplicatorState, RestoreCheckpoint, RestoreState


@dataclass(frozen=True)
class FreezeWindow:
    """``seconds``: read-only -> verified (None while it lasts); ``phases``: name -> seconds (None
    for a phase not over yet), in order."""

    frozen_at: datetime | None
    verified_at: datetime | None
    phases: dict[str, float | None] = field(default_factory=dict)

    @property
    def seconds(self) -> float | None:
        return _between(self.frozen_at, self.verified_at)

    def to_json(self) -> dict[str, Any]:
        return {
            "from": self.frozen_at.isoformat() if self.frozen_at else None,
            "to": self.verified_at.isoformat() if self.verified_at else None,
            "seconds": self.seconds,
            "phases": dict(self.phases),
        }

    def line(self) -> str:
        """``write freeze (read-only -> verified): 7.9 s (drain 2.1 s, restore 0.4 s, verify 5.4 s)``."""
        parts = ", ".join(f"{name} {_shown(s)}" for name, s in self.phases.items())
        total = _shown(self.seconds) if self.frozen_at else "not frozen"
        return f"write freeze (read-only -> verified): {total}" + (f" ({parts})" if parts else "")


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _between(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return round(max(0.0, (_aware(end) - _aware(start)).total_seconds()), 3)


def _shown(seconds: float | None) -> str:
    return "running" if seconds is None else f"{seconds:.1f} s"


def freeze_window(
    freeze: FreezeRecord | None,
    replicator: ReplicatorCheckpoint | None,
    restore: RestoreCheckpoint | None,
    verified_at: datetime | None,
) -> FreezeWindow:
    """The freeze window from the records (``verified_at``: an identical report's ``checked_at``)."""
    frozen_at = freeze.frozen_at if freeze else None
    if frozen_at is None:
        return FreezeWindow(None, None)
    drained_at = (
        replicator.heartbeat_at if replicator and replicator.state is ReplicatorState.DRAINED else None
    )
    completed_at = restore.updated_at if restore and restore.state is RestoreState.COMPLETED else None
    if verified_at is not None and _aware(verified_at) < _aware(frozen_at):
        verified_at = None  # a report from before this freeze proves nothing about it
    phases = {
        "drain": _between(frozen_at, drained_at),
        "restore": _between(drained_at, completed_at),
        "verify": _between(completed_at, verified_at),
    }
    return FreezeWindow(frozen_at, verified_at, phases)
