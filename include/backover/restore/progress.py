"""Progress lines in the log every few seconds: segments, events done of the total (percent),
events/s, ETA (:func:`backover.progress.amount`)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from backover.progress import amount

log = logging.getLogger("backover.restore")


class Progress:
    """Counts what this run applied and logs a line at most every ``interval`` seconds.

    :param total_segments: the last segment to apply (``last_seq``).
    :param total_events: events in every segment (the replicator's ``events_total``), 0 if unknown.
    :param events_before: events applied by earlier runs (the restore checkpoint's count).
    :param follow: a follow restore: the totals grow as segments land (:meth:`extend`), and while
        it waits for them a line says how far it trails the capture (:meth:`idle`).
    """

    def __init__(
        self,
        *,
        first_seq: int,
        total_segments: int,
        total_events: int,
        events_before: int,
        interval: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        follow: bool = False,
    ) -> None:
        self.follow = follow
        self.first_seq = first_seq
        self.total_segments = total_segments
        self.total_events = total_events
        self.events_before = events_before
        self.interval = interval
        self.clock = clock
        self.started = clock()
        self._last_log = self.started
        self.events = 0
        self.segment = first_seq - 1

    def advance(self, events: int, segment: int | None = None) -> None:
        self.events += events
        if segment is not None:
            self.segment = segment
        if self.clock() - self._last_log >= self.interval:
            self.log_line()

    @property
    def rate(self) -> float:
        elapsed = self.clock() - self.started
        return self.events / elapsed if elapsed > 0 else 0.0

    def line(self) -> str:
        total = self.total_events - self.events_before if self.total_events else 0
        return (
            f"restore: segment {self.segment}/{self.total_segments}; this run "
            f"{amount(self.events, total, self.rate, 'events')}"
        )

    def extend(self, total_segments: int, total_events: int) -> None:
        """A follow restore saw more segments captured."""
        self.total_segments, self.total_events = total_segments, total_events

    def idle(self, behind: object) -> None:
        """A follow restore waiting for segments: a line at most every ``interval`` seconds."""
        if self.clock() - self._last_log >= self.interval:
            self._last_log = self.clock()
            log.info(
                "restore following: segment %d/%d applied, %s events this run; %s",
                self.segment,
                self.total_segments,
                f"{self.events:,}",
                behind,
            )

    def log_line(self) -> None:
        self._last_log = self.clock()
        log.info("%s", self.line())
