"""Cluster time: a BSON Timestamp (seconds, increment) that grows with every write."""

from __future__ import annotations

import threading
import time

from bson.timestamp import Timestamp


class ClusterClock:
    """Hands out strictly increasing cluster times, like an oplog's ``ts``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seconds = int(time.time())
        self._increment = 0

    def tick(self) -> Timestamp:
        """The cluster time of a new write."""
        with self._lock:
            now = int(time.time())
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
            now = int(time.time())
            if now > self._seconds:
                self._seconds, self._increment = now, 0
            return Timestamp(self._seconds, self._increment)
