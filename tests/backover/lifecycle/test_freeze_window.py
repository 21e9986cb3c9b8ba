"""The write freeze phase by phase, from the records as the Lambda, replicator, restore and verify
write them (``backover.lifecycle.window``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bson.timestamp import Timestamp

from backover.lifecycle.window import freeze_window
from backover.state import FreezeRecord, ReplicatorCheckpoint, RestoreCheckpoint, RestoreState

FROZEN = datetime(2026, 12, 2, 6, 0, 0, tzinfo=UTC)


def records(
    drained_after: float, completed_after: float
) -> tuple[FreezeRecord, ReplicatorCheckpoint, RestoreCheckpoint]:
    freeze = FreezeRecord("m", f=Timestamp(1_764_655_200, 1), frozen_at=FROZEN)
    replicator = ReplicatorCheckpoint(
        "m", state="drained", heartbeat_at=FROZEN + timedelta(seconds=drained_after)
    )
    restore = RestoreCheckpoint(
        "m", state="completed", follow=True, updated_at=FROZEN + timedelta(seconds=completed_after)
    )
    return freeze, replicator, restore


def test_the_window_is_read_only_to_verified_split_into_drain_restore_and_verify() -> None:
    window = freeze_window(*records(2.5, 3.0), FROZEN + timedelta(seconds=7.25))
    assert window.seconds == 7.25
    assert window.phases == {"drain": 2.5, "restore": 0.5, "verify": 4.25}
    assert window.line() == (
        "write freeze (read-only -> verified): 7.2 s (drain 2.5 s, restore 0.5 s, verify 4.2 s)"
    )
    assert window.to_json()["from"] == FROZEN.isoformat()


def test_a_phase_not_over_yet_is_shown_running_and_an_older_report_proves_nothing() -> None:
    freeze, replicator, restore = records(2.0, 3.0)
    restore.state = RestoreState.RUNNING
    window = freeze_window(freeze, replicator, restore, FROZEN - timedelta(minutes=5))
    assert window.seconds is None and window.phases == {"drain": 2.0, "restore": None, "verify": None}
    assert "restore running" in window.line()


def test_clock_skew_between_machines_never_gives_negative_phases() -> None:
    window = freeze_window(*records(2.0, 1.5), FROZEN + timedelta(seconds=4))  # restore's clock behind
    assert window.phases == {"drain": 2.0, "restore": 0.0, "verify": 2.5}


def test_not_frozen_yet() -> None:
    window = freeze_window(None, None, None, None)
    assert window.seconds is None and window.line() == "write freeze (read-only -> verified): not frozen"
