"""The smoke run of ``benchmarks/bench_sync.py`` (``--quick``): every copy (raw, ``backover sync``
in one process, two partitions in two processes, the RSS run) ends complete and identical, and
every figure of issue 14's targets is measured (the figures themselves are the benchmark's
business, not asserted here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.mark.slow  # starts moto, two stand-ins and some ten `backover sync` processes
def test_quick_sync_benchmark_copies_identically_and_measures_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "sync.json"
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "bench_sync.py"), "--quick", "--json", str(out)],
        cwd=BENCHMARKS.parent,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(out.read_text())
    assert report["identical"] is True
    t = report["throughput"]
    assert (
        t["rounds"] == 1 and len(t["raw_seconds"]) == len(t["copy_seconds"]) == len(t["whole_seconds"]) == 1
    )
    assert 0 < t["copy_seconds"][0] < t["whole_seconds"][0]
    assert t["copy_over_raw"] == pytest.approx(t["raw_seconds"][0] / t["copy_seconds"][0])
    w = report["two_workers"]
    kinds = ("sync one", "sync two", "raw one", "raw two")
    assert set(w["wall_seconds"]) == set(w["copy_seconds"]) == set(w["cores"]) == set(kinds)
    assert all(len(w["copy_seconds"][k]) == 1 and w["copy_seconds"][k][0] > 0 for k in kinds), w
    assert w["two_over_one_wall"] > 0 and w["raw_two_over_one_wall"] > 0
    for cores in (t["cores_raw"], t["cores_sync"], *w["cores"].values()):
        assert {"source stand-in", "target stand-in", "moto", "copy process(es)"} <= set(cores), cores
    m = report["rss"]
    assert m["documents"] == 20_000 and m["peak_rss_mib"] > 0 and m["copy_docs_per_s"] > 0
    assert m["raw_docs_per_s"] > 0 and m["identical"] is True
    assert report["load"]["start"]["cores"] >= 1 and "1m" in report["load"]["end"]
    for line in ("copy throughput", "two partitions", "peak RSS", "load average at the end", "targets"):
        assert line in result.stdout, result.stdout
