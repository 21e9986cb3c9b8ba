"""Progress lines of a long comparison: documents compared of the source's estimate (percent),
their rate and the time left (:func:`backover.progress.amount`); without an estimate, documents
compared and their rate."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator

from backover.progress import amount

from .merge import count_documents

log = logging.getLogger("backover.verify")


class Progress:
    """Counts the source documents compared; logs a line at most every ``interval`` seconds.

    :param what: names the comparison in its lines (``verify``, ``verify --live``).
    :param interval: seconds between two lines.
    :param total: documents the comparison will read from the source (an estimate, the collections'
        ``estimatedDocumentCount``), 0 if not known; :meth:`expect` adds to it.
    """

    def __init__(self, what: str, interval: float, total: int = 0) -> None:
        self.what = what
        self.interval = interval
        self.total = total
        self.documents = 0
        self._started = self._last = time.monotonic()

    def expect(self, documents: int) -> None:
        """The source holds about ``documents`` more that this comparison will read."""
        self.total += documents

    def line(self, where: str) -> str:
        elapsed = time.monotonic() - self._started
        rate = self.documents / elapsed if elapsed > 0 else 0.0
        return f"{self.what}: compared {amount(self.documents, self.total, rate, 'documents')}; now {where}"

    def add(self, documents: int, where: str) -> None:
        self.documents += documents
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            log.info("%s", self.line(where))

    def counted(self, batches: Iterable[bytes], where: str) -> Iterator[bytes]:
        """``batches`` unchanged, counting the documents of each."""
        for batch in batches:
            self.add(count_documents(batch), where)
            yield batch
