"""Background service processes with pid and log files, started and stopped exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path

#: Marker put in every service's environment so ``down`` never kills a process it did not start.
MARKER_ENV = "BACKOVER_SANDBOX_SERVICE"


def start(name: str, argv: list[str], directory: Path, env: Mapping[str, str]) -> int:
    """Start ``argv`` in its own session, output to ``{directory}/{name}.log``; return its pid."""
    directory.mkdir(parents=True, exist_ok=True)
    log_path = directory / f"{name}.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**env, MARKER_ENV: f"{directory}:{name}"},
            start_new_session=True,
            cwd=os.getcwd(),
        )
    (directory / f"{name}.pid").write_text(str(proc.pid))
    return proc.pid


def is_ours(pid: int, directory: Path, name: str) -> bool:
    """True if ``pid`` is alive and is the service ``name`` this sandbox directory started."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False
    return f"{MARKER_ENV}={directory}:{name}".encode() in environ.split(b"\x00")


def stop(pid: int, directory: Path, name: str, timeout: float = 10.0) -> bool:
    """SIGTERM (then SIGKILL after ``timeout``) the service's process group; True if it was running."""
    if not is_ours(pid, directory, name):
        _forget(directory, name)
        return False
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        _forget(directory, name)
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            break
        time.sleep(0.05)
    else:
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        while _alive(pid) and time.monotonic() < deadline + 5:
            time.sleep(0.05)
    _forget(directory, name)
    return True


def stop_started_by(directory: Path, name: str, own_pid: int | None, timeout: float = 10.0) -> list[int]:
    """SIGTERM (then SIGKILL) every process that inherited service ``name``'s marker but is not the
    service itself: what it left running in the background (the worker's detached replicator and
    follow restore, started through the runner). Returns their pids."""
    marker = f"{MARKER_ENV}={directory}:{name}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in (own_pid, os.getpid()):
            continue
        try:
            if marker in (entry / "environ").read_bytes().split(b"\x00"):
                found.append(int(entry.name))
        except OSError:
            continue
    for pid in found:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    while any(_alive(pid) for pid in found) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in found:
        if _alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    return found


def _alive(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    try:
        status = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return status != "Z"


def _forget(directory: Path, name: str) -> None:
    (directory / f"{name}.pid").unlink(missing_ok=True)


def wait_until(check: Callable[[], bool], timeout: float, pid: int | None = None) -> bool:
    """Poll ``check`` until it is true, ``timeout`` passes, or process ``pid`` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        if pid is not None and not _alive(pid):
            return False
        time.sleep(0.1)
    return False


def tail(path: Path, lines: int = 5) -> str:
    """The last lines of a log file, for an error message."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
