"""The smoke run of ``benchmarks/bench_replay.py`` (``--quick``): every contender that writes the
target (the physical limit, each restore, the follow-mode end to end) leaves it identical to the
source, and every figure and ratio of issue 16 is measured with the load recorded (the figures
themselves are the benchmark's business, not asserted here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.mark.slow  # starts moto, two stand-ins and several `backover` processes
def test_quick_replay_benchmark_restores_identically_and_measures_every_ratio(tmp_path: Path) -> None:
    out = tmp_path / "replay.json"
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "bench_replay.py"), "--quick", "--json", str(out)],
        cwd=BENCHMARKS.parent,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(out.read_text())
    assert report["identical"] is True
    figures = report["figures"]
    expected = {"limit", "restore w1", "restore w4", "raw read", "replicate", "follow", "naive"}
    assert set(figures) == expected, set(figures)
    for name, f in figures.items():
        assert len(f["seconds"]) == 1 and f["events_per_s"] > 0, (name, f)
    for name in ("limit", "restore w1", "restore w4", "follow"):
        assert figures[name]["identical"] == [True], name
    assert figures["follow"]["detail"][0]["capture_seconds"] > 0
    assert figures["restore w4"]["peak_rss_mib"] > 0
    ratios = report["ratios"]
    for key in ("restore_over_limit", "capture_over_raw_read", "follow_over_slower_limit"):
        assert ratios[key] is not None and ratios[key] > 0, (key, ratios)
    assert sum(report["operations"].values()) == report["events"] == 4_000
    assert report["load"]["start"]["cores"] >= 1 and "1m" in report["load"]["end"]
    for line in ("physical limit", "capture / raw read", "follow mode", "load average at the end", "targets"):
        assert line in result.stdout, result.stdout
