"""Run a stand-in server as a separate process for a benchmark (its own interpreter and GIL)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from pymongo import MongoClient
from pymongo.errors import PyMongoError


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def standin_process(flavour: str, retention_seconds: float = 3 * 3600) -> Iterator[int]:
    """Start ``python -m backover_sandbox.standin`` without authentication; yields its port."""
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "backover_sandbox.standin",
            "--flavour",
            flavour,
            "--port",
            str(port),
            "--no-auth",
            "--retention-seconds",
            str(retention_seconds),
            "--log-level",
            "WARNING",
        ],
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with MongoClient(port=port, directConnection=True, serverSelectionTimeoutMS=200) as c:
                    c.admin.command("ping")
                break
            except PyMongoError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("the stand-in did not start") from None
                time.sleep(0.1)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)
