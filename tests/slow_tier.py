"""The test tiers: what ``@pytest.mark.slow`` means, and the check that keeps it honest.

``make test`` (CI) runs every test; ``make test-fast`` runs ``pytest -m "not slow"`` for the inner
loop. A test is marked ``slow`` when it starts Python processes (the ``backover`` command line,
a Lambda through the local runner, kill -9 runs, the sandbox), runs a DAG (``run_dag``), builds
something (the Lambda zips, the worker wheel), soaks (long property-based histories) or injects
faults that go on for seconds by design (dropped connections, a failover, S3 backoffs). Two of those are checked on every run (a
pytest plugin, loaded by ``tests/conftest.py``), so a new test of that kind without the mark fails:

* a test using the ``run_dag`` fixture fails at setup, before the DAG runs;
* a test during which a Python interpreter was started (``subprocess.Popen`` of ``python...`` or
  ``sys.executable``, from any thread: the runner starts Lambdas on its own threads) fails at
  teardown, naming the command.

Processes started through a shell (``bash -c 'python ...'``) are not seen; the mark is still the
rule for them. With ``-m "not slow"`` the summary says how many slow tests were left out.
"""

from __future__ import annotations

import os
import re
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

_PYTHON = re.compile(r"python[0-9.]*")
_DESELECTED = pytest.StashKey[int]()


def is_python(program: str) -> bool:
    """Whether ``program`` (an argv[0]) is a Python interpreter."""
    if _PYTHON.fullmatch(os.path.basename(program)):
        return True
    return os.path.realpath(program) == os.path.realpath(sys.executable)


class PythonStarts:
    """Records the command lines of Python interpreters started while a recording is open.

    Watches ``subprocess.Popen`` through the interpreter's audit hook (``sys.addaudithook``: an
    observer, nothing is patched); recordings nest.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._recordings: list[list[str]] = []

        def audit(event: str, args: tuple[Any, ...]) -> None:
            # Called for every audited event of the process (opens, imports...): return at once.
            if event == "subprocess.Popen":
                self._popen(args)

        sys.addaudithook(audit)

    def _popen(self, args: tuple[Any, ...]) -> None:
        if not self._recordings:
            return
        executable, argv = args[0], args[1]  # Popen has made both final: the program, a list
        if not is_python(os.fsdecode(executable)):
            return
        line = " ".join(os.fsdecode(a) for a in argv)
        with self._lock:
            for recording in self._recordings:
                recording.append(line[:120])

    @contextmanager
    def recording(self) -> Iterator[list[str]]:
        started: list[str] = []
        with self._lock:
            self._recordings.append(started)
        try:
            yield started
        finally:
            with self._lock:
                self._recordings = [r for r in self._recordings if r is not started]


PYTHON_STARTS = PythonStarts()


def _marked_slow(node: pytest.Item) -> bool:
    return node.get_closest_marker("slow") is not None


@pytest.fixture(autouse=True)
def _slow_tests_are_marked(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test that runs a DAG or starts Python processes but is not marked ``slow``."""
    node = request.node
    if not _marked_slow(node) and "run_dag" in request.fixturenames:
        pytest.fail(
            f"{node.nodeid} runs a DAG (run_dag) but is not marked slow: add @pytest.mark.slow", pytrace=False
        )
    with PYTHON_STARTS.recording() as started:
        yield
    if started and not _marked_slow(node):
        pytest.fail(
            f"{node.nodeid} starts Python processes ({started[0]!r}"
            f"{f' and {len(started) - 1} more' if len(started) > 1 else ''}) but is not marked slow: "
            "add @pytest.mark.slow",
            pytrace=False,
        )


def pytest_deselected(items: list[pytest.Item]) -> None:
    if items:
        config = items[0].config
        config.stash[_DESELECTED] = config.stash.get(_DESELECTED, 0) + sum(map(_marked_slow, items))


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    left_out = config.stash.get(_DESELECTED, 0)
    if left_out and "slow" in config.option.markexpr:  # not when only -k left them out
        terminalreporter.write_sep(
            "=",
            f"{left_out} slow {'test' if left_out == 1 else 'tests'} not run (-m {config.option.markexpr!r}): "
            "`make test` runs every test",
            yellow=True,
        )
