"""The slow tier's check (``tests/slow_tier.py``) on a small suite of its own: a test that starts a
Python process or runs a DAG without ``@pytest.mark.slow`` fails, with the mark it passes, and
``-m "not slow"`` says in the summary how many slow tests it left out."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow  # the suite under test starts Python processes

CONFTEST = """
import pytest

pytest_plugins = ["slow_tier"]


@pytest.fixture
def run_dag():
    raise AssertionError("run_dag ran")
"""

CASES = """
import subprocess
import sys
import threading

import pytest


def start_python():
    subprocess.run([sys.executable, "-I", "-S", "-c", "pass"], check=True)


def test_unmarked_python():
    start_python()


def test_unmarked_python_from_another_thread():
    thread = threading.Thread(target=start_python)
    thread.start()
    thread.join()


def test_unmarked_other_program():
    subprocess.run(["true"], check=True)


def test_unmarked_dag(run_dag):
    pass


@pytest.mark.slow
def test_marked_python():
    start_python()


@pytest.mark.slow
def test_marked_dag(run_dag):
    pass
"""


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(CONFTEST)
    pytester.makeini("[pytest]\nmarkers =\n    slow: slow\n")
    pytester.makepyfile(test_cases=CASES)
    return pytester


def _outcomes(suite: pytest.Pytester, *args: str) -> dict[str, list[tuple[str, str]]]:
    """Each test's (phase, outcome) pairs that were not plain passes, and its failure text."""
    reprec = suite.inline_run(*args)
    seen: dict[str, list[tuple[str, str]]] = {}
    for report in reprec.getreports("pytest_runtest_logreport"):
        name = report.nodeid.split("::")[-1]
        if report.outcome != "passed":
            seen.setdefault(name, []).append((report.when, str(report.longrepr)))
        else:
            seen.setdefault(name, [])
    return seen


def test_unmarked_tests_that_start_python_or_run_a_dag_fail_and_marked_ones_pass(
    suite: pytest.Pytester,
) -> None:
    seen = _outcomes(suite)
    for name in ("test_unmarked_python", "test_unmarked_python_from_another_thread"):
        [(when, text)] = seen[name]
        assert when == "teardown" and "starts Python processes" in text and "-I -S -c pass" in text, seen[
            name
        ]
        assert "add @pytest.mark.slow" in text
    [(when, text)] = seen["test_unmarked_dag"]
    assert when == "setup" and "runs a DAG (run_dag) but is not marked slow" in text  # before the DAG ran
    assert seen["test_unmarked_other_program"] == []
    assert seen["test_marked_python"] == []
    [(when, text)] = seen["test_marked_dag"]  # not stopped by the check: its (failing) fixture ran
    assert when == "setup" and "run_dag ran" in text


def test_the_fast_tier_says_what_it_left_out(suite: pytest.Pytester) -> None:
    result = suite.runpytest("-m", "not slow", "-k", "other_program or test_marked_")
    result.assert_outcomes(passed=1, deselected=5)
    result.stdout.fnmatch_lines(["*= 2 slow tests not run (-m 'not slow'): `make test` runs every test =*"])
