"""A collection's documents as raw BSON, in ``_id`` order, read ahead on a thread.

``find_raw_batches`` hands over each batch as the server sent it (the merge cuts documents out of
it without decoding). At most ``depth`` batches wait in memory, whatever the collection's size.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Mapping
from typing import Any

from bson.raw_bson import RawBSONDocument
from pymongo.collection import Collection
from pymongo.errors import PyMongoError

from ..errors import JobFailed

_END = object()


def raw_batches(
    collection: Collection[RawBSONDocument], batch_size: int, id_filter: Mapping[str, Any] | None = None
) -> Iterator[bytes]:
    """The collection's documents sorted by ``_id``, batch by batch (raw bytes); with ``id_filter``
    (a scope's filter on ``_id``, :mod:`backover.sync.scopes`) only those it matches."""
    yield from collection.find_raw_batches(dict(id_filter or {}), sort=[("_id", 1)], batch_size=batch_size)


class ReadAhead:
    """Iterates ``batches`` while a thread fetches the next ones (bounded queue)."""

    def __init__(self, batches: Iterator[bytes], label: str, depth: int = 4) -> None:
        self.label = label
        self._batches = batches
        self._queue: queue.Queue[Any] = queue.Queue(depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._fetch, name=f"verify-{label}", daemon=True)
        self._thread.start()

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def _fetch(self) -> None:
        try:
            for batch in self._batches:
                if not self._put(batch):
                    return
        except PyMongoError as e:
            self._put(JobFailed(f"reading the {self.label} failed: {type(e).__name__}: {e}"))
            return
        self._put(_END)

    def __iter__(self) -> Iterator[bytes]:
        try:
            while True:
                item = self._queue.get()
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            self.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
