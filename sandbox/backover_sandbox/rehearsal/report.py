"""What a rehearsal found, and its summary for the terminal."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class RehearsalReport:
    checks: dict[str, str] = field(default_factory=dict)  # probe -> "ok" or the failure
    phases: dict[str, dict[str, Any]] = field(default_factory=dict)  # DAG -> {ok, seconds, log}
    figures: dict[str, Any] = field(default_factory=dict)
    identical: bool | None = None  # verification result
    error: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        probes_ok = bool(self.checks) and all(v == "ok" for v in self.checks.values())
        phases_ok = bool(self.phases) and all(p["ok"] for p in self.phases.values())
        return probes_ok and phases_ok and self.identical is True and self.error is None


def summary(report: RehearsalReport) -> str:
    lines = [f"rehearsal {'PASSED' if report.ok else 'FAILED'} in {report.seconds:.1f} s"]
    lines.append("  sandbox probes:")
    lines += [f"    {name:<28} {result}" for name, result in report.checks.items()]
    if report.phases:
        lines.append("  lifecycle DAGs (airflow dags test):")
        for dag_id, phase in report.phases.items():
            lines.append(
                f"    {dag_id:<28} {'ok' if phase['ok'] else 'FAILED'} in {phase['seconds']:.1f} s"
                + ("" if phase["ok"] else f" (log: {phase['log']})")
            )
    if report.figures:
        lines.append("  figures:")
        lines += [f"    {name:<38} {value}" for name, value in report.figures.items()]
    verdict = {True: "identical", False: "DIFFERENT", None: "not run"}[report.identical]
    lines.append(f"  verification: {verdict}")
    if report.error:
        lines.append(f"  error: {report.error}")
    return "\n".join(lines)
