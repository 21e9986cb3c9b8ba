"""Progress lines: segments and events done, events per second and ETA, at most every interval."""

from __future__ import annotations

import logging

import pytest

from backover.restore.progress import Progress, eta


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_line_every_interval_with_rate_and_eta(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    progress = Progress(
        first_seq=3, total_segments=10, total_events=12_000, events_before=2_000, interval=5.0, clock=clock
    )
    with caplog.at_level(logging.INFO, logger="backover.restore"):
        clock.now += 2
        progress.advance(2_000, 4)  # 2 s: too early for a line
        assert caplog.messages == []
        clock.now += 3
        progress.advance(3_000, 6)
    assert caplog.messages == ["restore: segment 6/10, 5,000/10,000 events this run, 1,000 events/s, ETA 5s"]


def test_eta_is_unknown_without_totals_and_readable_when_long() -> None:
    clock = Clock()
    progress = Progress(first_seq=1, total_segments=5, total_events=0, events_before=0, clock=clock)
    clock.now += 1
    progress.advance(10)
    assert progress.line().endswith("ETA unknown")
    assert (eta(59.6), eta(61), eta(3 * 3600 + 120)) == ("1m00s", "1m01s", "3h02m")
