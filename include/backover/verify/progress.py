"""Progress lines of a long comparison: documents compared so far and their rate."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator

from .merge import count_documents

log = logging.getLogger("backover.verify")


class Progress:
    """Counts the source documents compared; logs a line at most every ``interval`` seconds."""

    def __init__(self, what: str, interval: float) -> None:
        self.what = what
        self.interval = interval
        self.documents = 0
        self._started = self._last = time.monotonic()

    def add(self, documents: int, where: str) -> None:
        self.documents += documents
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            elapsed = now - self._started
            log.info(
                "%s: %s documents compared in %.0f s (%s documents/s), now %s",
                self.what,
                f"{self.documents:,}",
                elapsed,
                f"{self.documents / elapsed:,.0f}" if elapsed > 0 else "-",
                where,
            )

    def counted(self, batches: Iterable[bytes], where: str) -> Iterator[bytes]:
        """``batches`` unchanged, counting the documents of each."""
        for batch in batches:
            self.add(count_documents(batch), where)
            yield batch
