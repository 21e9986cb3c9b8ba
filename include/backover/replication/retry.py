"""Exponential backoff for transient errors: the source dropping connections, S3 throttling."""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """Delays of ``first``, doubling up to ``cap`` seconds, with jitter; ``give_up_after`` of failing.

    ``failed()`` records one more failure and says whether to keep trying; ``wait()`` sleeps the
    next delay (returning early when ``stop`` is set); ``reset()`` after a success.
    """

    first: float = 0.2
    cap: float = 30.0
    give_up_after: float = 600.0
    stop: threading.Event | None = None
    attempts: int = 0
    _since: float | None = field(default=None, repr=False)

    def failed(self) -> bool:
        """Count a failure; False once failures have lasted longer than ``give_up_after``."""
        now = time.monotonic()
        if self._since is None:
            self._since = now
        self.attempts += 1
        return now - self._since < self.give_up_after

    @property
    def failing_for(self) -> float:
        return 0.0 if self._since is None else time.monotonic() - self._since

    def delay(self) -> float:
        base = min(self.cap, self.first * (2.0 ** max(0, self.attempts - 1)))
        return base * (0.5 + random.random() / 2)  # jitter, not security

    def wait(self) -> None:
        delay = self.delay()
        if self.stop is not None:
            self.stop.wait(delay)
        else:
            time.sleep(delay)

    def reset(self) -> None:
        self.attempts = 0
        self._since = None
