"""Batches read ahead on a thread: the one reader behind verify's merge and the sync's copy.

Iterates ``batches`` while a thread fetches the next ones; at most ``depth`` wait in memory. A
driver error on the thread is handed to the iterating side as the caller's one-line error
(``failed``), raised where the batch would have come.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from pymongo.errors import PyMongoError

from .errors import BackoverError

_END = object()


class ReadAhead:
    """Iterates ``batches`` while a thread fetches the next ones (bounded queue).

    :param failed: the error to raise for a driver error on the thread (its one-line message).
    :param name: the thread's name.
    """

    def __init__(
        self,
        batches: Iterable[bytes],
        depth: int,
        failed: Callable[[PyMongoError], BackoverError],
        name: str,
    ) -> None:
        self._batches = batches
        self._failed = failed
        self._queue: queue.Queue[Any] = queue.Queue(depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._fetch, name=name, daemon=True)
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
            self._put(self._failed(e))
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
