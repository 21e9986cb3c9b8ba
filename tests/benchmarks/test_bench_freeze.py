"""The smoke run of ``benchmarks/bench_freeze.py`` (``--quick``): one small rehearsal in follow
mode under a steady load, watched from outside, ends identical and reports every figure of issue
12's targets (the figures themselves are the benchmark's business, not asserted here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from backover_sandbox.config import free_port_base

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.mark.slow  # runs the benchmark, which runs a whole rehearsal
def test_quick_freeze_benchmark_ends_identical_and_measures_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "freeze.json"
    result = subprocess.run(
        [
            sys.executable,
            str(BENCHMARKS / "bench_freeze.py"),
            "--quick",
            "--dir",
            str(tmp_path / "sandbox"),
            "--port-base",
            str(free_port_base(31900)),
            "--json",
            str(out),
        ],
        cwd=BENCHMARKS.parent,
        capture_output=True,
        text=True,
        check=False,
        timeout=1200,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(out.read_text())
    assert [case["case"] for case in report["cases"]] == ["2k:1k"]
    case = report["cases"][0]
    assert case["ok"] is True and case["identical"] is True, result.stdout
    assert case["follow"] is True and case["rehearsal"]["scale"]["follow"] is True
    window = case["freeze_window"]
    assert window["seconds"] > 0 and set(window["phases"]) == {"drain", "restore", "verify"}
    assert all(seconds is not None for seconds in window["phases"].values()), window
    assert window == {k: case["rehearsal"]["freeze_window"][k] for k in ("seconds", "phases")}
    # The load ran before and during the restore DAG, so there were events, and the restore applied
    # some after the freeze (the tail); the final documents of the tail exist in the target.
    assert case["events_since_t0"] >= 1000
    tail = case["tail"]
    assert 0 < tail["events"] <= case["events_since_t0"]
    assert tail["events_in_segments"] == tail["events"]
    assert 0 < tail["documents"] <= tail["events_in_segments"]
    assert case["limit_seconds"] >= window["phases"]["drain"]
    assert case["freeze_over_limit"] == pytest.approx(window["seconds"] / case["limit_seconds"], rel=1e-2)
    assert case["lag_seconds"]["samples"] > 0 and case["lag_seconds"]["median"] is not None
    assert case["lag_seconds"]["max"] >= case["lag_seconds"]["median"] >= 0
    assert case["restore_peak_rss_mib"] > 0
    assert report["load"]["start"]["cores"] >= 1 and "1m" in report["load"]["end"]
    for line in ("write freeze (read-only -> verified)", "physical limit", "follow-restore lag", "peak RSS"):
        assert line in result.stdout, result.stdout
