"""The CI tier of the kill -9 soak (``benchmarks/bench_kill9_soak.py`` runs 1,000 kills): at least
20 kills across the replicator, the backups, the restore and clean, some with two processes at
once, under a load with unique-key swaps and DDL, against the suite's moto and stand-ins; then the
soak's own byte comparison, independent of ``backover verify``."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from soak_lifecycle import PHASES, Servers, run

KILLS = 30


@pytest.mark.slow
def test_kill_9_soak_loses_nothing_and_gets_stuck_nowhere(standins, standin_password, bucket) -> None:
    servers = Servers(
        env=dict(os.environ),
        bucket=bucket,
        source_uri=standins["documentdb"].uri("root", standin_password),
        target_uri=standins["mongodb"].uri("root", standin_password),
    )
    lines: list[str] = []
    result = run(servers, kills=KILLS, seed=7, say=lines.append)
    report = "\n".join(lines)
    assert result.stuck == [], report
    assert (result.lost, result.divergent) == (0, 0), report
    assert result.problems == [], report
    assert result.total_kills >= 20, report
    assert all(result.kills[phase] >= 1 for phase in PHASES), report
    assert result.events > 0 and result.documents > 0, report
