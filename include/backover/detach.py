"""``--detach``: run a long job (the replicator, the follow restore) in the background with pid
and log files.

The parent starts ``python -m backover <command> ...`` (without ``--detach``) in its own session,
writes the pid file and waits until the child has checked its input and written its first
checkpoint (it says so through a pipe), so SSM Run Command returns while the job runs on, and
bad input still fails the command with the child's one-line reason and exit status. The child's
environment carries a marker (the job and the migration's folder), so a pid file left by a dead
job (and a recycled pid) is never taken for a running one. The environment variables keep the
names they had when only the replicator detached, so a replicator started before is still found.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import select
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from .errors import JobFailed, UsageError
from .layout import MigrationLayout

log = logging.getLogger(__name__)

READY_FD_ENV = "BACKOVER_REPLICATOR_READY_FD"
PID_FILE_ENV = "BACKOVER_REPLICATOR_PID_FILE"
MARKER_ENV = "BACKOVER_REPLICATOR"
RUN_DIR_ENV = "BACKOVER_RUN_DIR"
READY = b"ready\n"
DEFAULT_WAIT_SECONDS = 120.0


@dataclass(frozen=True)
class Detached:
    """The background job."""

    pid: int
    pid_file: Path
    log_file: Path
    already_running: bool = False
    finished: str | None = None  # the child's last line when it ended at once (already drained)


def default_run_dir() -> Path:
    """``$BACKOVER_RUN_DIR``, else ``~/.backover/run``."""
    return Path(os.environ.get(RUN_DIR_ENV) or Path.home() / ".backover" / "run")


def running_pid(pid_file: Path, marker: str) -> int | None:
    """The pid in ``pid_file`` if that process is alive and is the job of ``marker``."""
    try:
        pid = int(pid_file.read_text().strip())
        environ = Path(f"/proc/{pid}/environ").read_bytes()
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except (OSError, ValueError):
        return None
    if state == "Z" or f"{MARKER_ENV}={marker}".encode() not in environ.split(b"\x00"):
        return None
    return pid


def start(
    argv: list[str],
    env: Mapping[str, str],
    pid_file: Path,
    log_file: Path,
    marker: str,
    wait_seconds: float = DEFAULT_WAIT_SECONDS,
    what: str = "the replicator",
) -> Detached:
    """Start ``argv`` detached; return once it is ready (the replicator capturing, the restore
    following). UsageError/JobFailed with its last line if it exits first."""
    existing = running_pid(pid_file, marker)
    if existing is not None:
        return Detached(existing, pid_file, log_file, already_running=True)
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    read_end, write_end = os.pipe()
    try:
        child_env = {**env, READY_FD_ENV: str(write_end), PID_FILE_ENV: str(pid_file), MARKER_ENV: marker}
        with open(log_file, "ab") as log_out:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log_out,
                stderr=subprocess.STDOUT,
                env=child_env,
                start_new_session=True,
                pass_fds=(write_end,),
                close_fds=True,
            )
        os.close(write_end)
        write_end = -1
        pid_file.write_text(f"{proc.pid}\n")
        if _wait_ready(read_end, proc, wait_seconds, what):
            return Detached(proc.pid, pid_file, log_file)
    finally:
        os.close(read_end)
        if write_end >= 0:
            os.close(write_end)
    code = proc.wait()
    _forget(pid_file, proc.pid)
    reason = last_line(log_file) or f"{what} exited with status {code}"
    if code == 0:
        return Detached(proc.pid, pid_file, log_file, finished=reason)
    raise (UsageError if code == UsageError.exit_code else JobFailed)(reason)


def _wait_ready(read_end: int, proc: subprocess.Popen[bytes], wait_seconds: float, what: str) -> bool:
    """True once the child says it is ready; False if it exits first."""
    deadline = time.monotonic() + wait_seconds
    while time.monotonic() < deadline:
        ready, _, _ = select.select([read_end], [], [], 0.2)
        if ready:
            return os.read(read_end, len(READY)) == READY
        if proc.poll() is not None:
            return False
    log.warning("%s (pid %d) is still starting after %.0fs; leaving it running", what, proc.pid, wait_seconds)
    return True


def last_line(log_file: Path) -> str:
    """The child's last log line, without the ``backover <command>:`` prefix of its error line."""
    try:
        lines = [line for line in log_file.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    text = lines[-1] if lines else ""
    return re.sub(r"^backover [a-z]+: ", "", text)


def ready_notifier() -> Callable[[], None] | None:
    """In the detached child: a function telling the parent it is ready (None if not detached)."""
    fd_text = os.environ.pop(READY_FD_ENV, None)
    if not fd_text:
        return None
    fd = int(fd_text)

    def notify() -> None:
        try:
            os.write(fd, READY)
            os.close(fd)
        except OSError as e:
            log.debug("the detaching parent is gone: %s", e)

    return notify


def forget_own_pid_file() -> None:
    """In the detached child at exit: remove the pid file if it still names this process."""
    path = os.environ.get(PID_FILE_ENV)
    if path:
        _forget(Path(path), os.getpid())


def _forget(pid_file: Path, pid: int) -> None:
    try:
        if pid_file.read_text().strip() == str(pid):
            pid_file.unlink()
    except OSError as e:
        log.debug("pid file %s: %s", pid_file, e)


def run_detached(
    command: str,
    args: argparse.Namespace,
    forwarded: tuple[tuple[str, str], ...],
    *,
    layout: MigrationLayout,
    secret_env: Mapping[str, str],
    what: str,
    ready: str,
    extra: tuple[str, ...] = (),
) -> int:
    """``backover <command> --detach``: start ``backover <command>`` with the ``forwarded`` options
    (``(flag, argparse destination)``; a true boolean is passed as the bare flag) and ``extra``,
    in the background; print one line and return 0 once it is ``ready`` (or already running).

    ``secret_env``: a URI given on the command line goes to the child through its environment,
    never its command line. The pid and log files default to ``$BACKOVER_RUN_DIR`` (or
    ``~/.backover/run``) ``/<command>-<migration-id>.pid|.log``."""
    pid_file = args.pid_file or default_run_dir() / f"{command}-{layout.migration_id}.pid"
    log_file = args.log_file or pid_file.with_suffix(".log")
    argv = [sys.executable, "-m", "backover", "--log-level", args.log_level, command, *extra]
    for flag, dest in forwarded:
        value = getattr(args, dest)
        if value is True:
            argv.append(flag)
        elif value is not None and value is not False:
            argv += [flag, str(value)]
    marker = (
        f"{layout.bucket}/{layout.root}"
        if command == "replicate"
        else f"{command}:{layout.bucket}/{layout.root}"
    )
    started = start(argv, {**os.environ, **secret_env}, pid_file, log_file, marker, what=what)
    if started.finished is not None:
        print(started.finished)
        return 0
    verb = "already running" if started.already_running else ready
    print(
        f"{what.removeprefix('the ')} {verb}: pid {started.pid}, pid file {started.pid_file}, log {started.log_file}"
    )
    return 0
