"""Child processes of the runner: each runs in its own process group so it can be killed whole."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

log = logging.getLogger(__name__)


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process group led by ``proc`` (started with ``start_new_session``), children included."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    except PermissionError:
        if proc.poll() is None:
            proc.kill()


class ProcessTracker:
    """Starts child processes in new sessions and remembers them so shutdown can kill them all."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._procs: set[subprocess.Popen[bytes]] = set()
        self._closed = False

    def spawn(
        self,
        argv: Sequence[str],
        *,
        cwd: Path,
        env: Mapping[str, str],
        stdin: int | None = subprocess.DEVNULL,
        stdout: int | None = subprocess.PIPE,
        stderr: int | None = subprocess.PIPE,
    ) -> subprocess.Popen[bytes]:
        """Start ``argv`` as the leader of a new process group and track it.

        :raises RuntimeError: if the tracker is already shut down.
        :raises OSError: if the program cannot be started (e.g. ``cwd`` is missing).
        """
        with self._lock:
            if self._closed:
                raise RuntimeError("runner is shutting down")
            proc = subprocess.Popen(
                list(argv),
                cwd=str(cwd),
                env=dict(env),
                stdin=stdin,
                stdout=stdout,
                stderr=stderr,
                start_new_session=True,
            )
            self._procs.add(proc)
            return proc

    def release(self, proc: subprocess.Popen[bytes]) -> None:
        """Forget ``proc`` once it has finished."""
        with self._lock:
            self._procs.discard(proc)

    def kill_all(self) -> None:
        """Kill every tracked process group and refuse new ones."""
        with self._lock:
            self._closed = True
            procs = list(self._procs)
        for proc in procs:
            log.info("killing child process group %d", proc.pid)
            kill_group(proc)
