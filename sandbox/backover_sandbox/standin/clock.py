"""The server's clocks: its wall clock, and the cluster time (seconds, increment) built on it.

Everything a stand-in does by the time of day reads one :class:`WallClock`: cluster times (and the
``postBatchResumeToken`` of an idle stream, which follows them), the change log's ``wallTime`` and
retention window, ``startAtOperationTime`` checks, idle-cursor reaping, ``localTime`` and
``uptime``. A server runs on :class:`SystemClock`; a test passes a :class:`ManualClock` in
``ServerConfig(clock=...)`` and moves it with ``advance(seconds)``, which is what a real server sees
when that much time passes: the cluster time moves on, history older than the retention window is
forgotten, idle cursors are reaped. Waits for data (``maxAwaitTimeMS``) stay real waits.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Protocol

from bson.timestamp import Timestamp


class WallClock(Protocol):
    """A server's time of day."""

    def time(self) -> float:
        """Seconds since the epoch."""
        ...


class SystemClock:
    """The machine's clock (``time.time()``): what a server process runs on."""

    def time(self) -> float:
        return time.time()


class ManualClock:
    """A wall clock that moves only when a test says so, and only forward.

    :param start: its first reading, seconds since the epoch (default: now), so cluster times and
        ``wallTime`` look like a server's.
    """

    def __init__(self, start: float | None = None) -> None:
        self._lock = threading.Lock()
        self._now = time.time() if start is None else float(start)

    def time(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> float:
        """Let ``seconds`` pass; returns the new reading. A clock never goes back."""
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"a clock only moves forward: advance({seconds!r})")
        with self._lock:
            self._now += seconds
            return self._now


class ClusterClock:
    """Hands out strictly increasing cluster times, like an oplog's ``ts``.

    The seconds are the wall clock's; writes within one second get increasing increments.
    """

    def __init__(self, wall: WallClock | None = None) -> None:
        self._wall = wall or SystemClock()
        self._lock = threading.Lock()
        self._seconds = int(self._wall.time())
        self._increment = 0

    def tick(self) -> Timestamp:
        """The cluster time of a new write."""
        with self._lock:
            now = int(self._wall.time())
            if now > self._seconds:
                self._seconds, self._increment = now, 1
            else:
                self._increment += 1
            return Timestamp(self._seconds, self._increment)

    def now(self) -> Timestamp:
        """The current cluster time (``operationTime`` of a read).

        Like a replica set, whose primary writes a no-op to the oplog when idle, the cluster time
        keeps advancing with the wall clock even when nothing is written.
        """
        with self._lock:
            now = int(self._wall.time())
            if now > self._seconds:
                self._seconds, self._increment = now, 0
            return Timestamp(self._seconds, self._increment)
