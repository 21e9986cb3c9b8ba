"""``make bench`` (benchmarks/run_all.py) runs every benchmark script in benchmarks/, none skipped."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.mark.slow  # runs benchmarks/run_all.py
def test_make_bench_runs_every_script_of_the_folder() -> None:
    listed = subprocess.run(
        [sys.executable, str(BENCHMARKS / "run_all.py"), "--list"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.split()
    scripts = sorted(
        p.name
        for p in BENCHMARKS.glob("*.py")
        if p.name != "run_all.py" and 'if __name__ == "__main__":' in p.read_text()
    )
    assert listed == scripts
    assert "bench_replicate_soak.py" in listed and "bench_kill9_soak.py" in listed
