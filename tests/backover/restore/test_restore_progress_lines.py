"""Progress lines: segments, events done of the total with percent, events per second and ETA, at
most every interval; without a total, no percent and no ETA."""

from __future__ import annotations

import logging

import pytest

from backover.progress import eta
from backover.restore.progress import Progress


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
    assert caplog.messages == [
        "restore: segment 6/10; this run 5,000/10,000 events (50.0%), 1,000 events/s, ETA 5s"
    ]


def test_no_percent_nor_eta_without_a_total_and_a_readable_eta_when_long() -> None:
    clock = Clock()
    progress = Progress(first_seq=1, total_segments=5, total_events=0, events_before=0, clock=clock)
    clock.now += 1
    progress.advance(10)
    assert progress.line() == "restore: segment 0/5; this run 10 events, 10 events/s"
    assert (eta(59.6), eta(61), eta(3 * 3600 + 120)) == ("1m00s", "1m01s", "3h02m")
