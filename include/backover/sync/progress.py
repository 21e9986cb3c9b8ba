"""Progress lines of the copy, per collection: documents copied of the estimate (percent),
documents/s, the time left at that rate (:func:`backover.progress.amount`) and MiB/s
(``--progress-seconds``)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from backover.progress import amount

log = logging.getLogger("backover.sync")

MIB = 1024 * 1024


@dataclass
class _Collection:
    total: int = 0  # documents estimated for the partitions this run copies
    done: int = 0  # of those, on the target (copied by this run or before it)
    copied: int = 0  # copied by this run
    copied_bytes: int = 0
    started: float | None = None
    last_line: float = 0.0


class Progress:
    """Counts per collection; a line at most every ``seconds`` and at the end of each partition."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._now = clock
        self._collections: dict[str, _Collection] = {}

    def _of(self, ns: str) -> _Collection:
        return self._collections.setdefault(ns, _Collection())

    def expect(self, ns: str, documents: int) -> None:
        """A partition of ``ns`` this run will copy, with its estimated documents."""
        self._of(ns).total += documents

    def already(self, ns: str, documents: int) -> None:
        """Documents of ``ns`` a run before this one copied (a resumed or completed partition)."""
        self._of(ns).done += documents

    def start(self, ns: str) -> None:
        c = self._of(ns)
        if c.started is None:
            c.started = c.last_line = self._now()

    def copied(self, ns: str, documents: int, nbytes: int) -> None:
        c = self._of(ns)
        c.done += documents
        c.copied += documents
        c.copied_bytes += nbytes
        now = self._now()
        if now - c.last_line >= self.seconds:
            c.last_line = now
            log.info("%s", self.line(ns))

    def line(self, ns: str, final: bool = False) -> str:
        c = self._of(ns)
        elapsed = max(self._now() - (c.started if c.started is not None else self._now()), 1e-9)
        rate = c.copied / elapsed
        return (
            f"sync {ns}: {amount(c.done, c.total, rate, 'documents', final=final)}, "
            f"{c.copied_bytes / MIB / elapsed:.2f} MiB/s"
        )
