"""SIGTERM and SIGINT as a stop request for the long jobs (the replicator, the follow restore)."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator

log = logging.getLogger(__name__)


@contextlib.contextmanager
def stop_on_signals(stop: threading.Event, doing: str) -> Iterator[None]:
    """While the block runs, SIGTERM and SIGINT set ``stop`` (the job finishes its step, saves its
    checkpoint and exits 0); ``doing`` says what happens then, for the log. Only in the main thread
    (elsewhere signals cannot be handled and the block runs as it is)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        log.info("signal %d: %s", signum, doing)
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
