"""What a rehearsal found, and its summary for the terminal."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from backover.errors import UsageError

from ..config import MAX_WORKERS


@dataclass(frozen=True)
class RehearsalScale:
    """How big the rehearsal is: the user's own figures, to measure their own freeze window.

    :param documents: orders in ``shop.orders`` on both sides before the capture starts (the demo
        data's 50, or more).
    :param writes_per_second: the microservices' load during the capture; None: as fast as the
        load runs (a 1 ms pause between writes).
    :param minutes: how long the load runs between ``backover_start`` and ``backover_restore``;
        None: until :data:`~backover_sandbox.rehearsal.lifecycle.LOAD_WRITES_BEFORE_RESTORE` writes.
    :param follow: the DAGs' ``follow`` Param: the follow-mode restore (default), or off, the
        restore only after the freeze (the seed's order), to compare the two freeze windows.
    :param empty_target: MongoDB starts empty and ``backover_start``'s initial sync (Param
        ``initial_sync`` auto) copies DocumentDB to it after T0.
    :param workers: EC2 workers in the sandbox; the copy's partitions are spread over them (needs
        ``empty_target``: without a copy only the first worker has work).
    :param partition_documents: the Param ``sync_partition_documents``; None: the sync's default
        with one worker, with several ``ceil(documents / workers)``, so ``shop.orders`` makes a
        partition for each worker.
    """

    documents: int = 50
    writes_per_second: float | None = None
    minutes: float | None = None
    follow: bool = True
    empty_target: bool = False
    workers: int = 1
    partition_documents: int | None = None

    def __post_init__(self) -> None:
        if self.documents < 1:
            raise UsageError(f"--documents must be at least 1, not {self.documents}")
        if self.writes_per_second is not None and not 0 < self.writes_per_second <= MAX_WRITES_PER_SECOND:
            raise UsageError(
                f"--writes-per-second must be above 0 and at most {MAX_WRITES_PER_SECOND:g}, "
                f"not {self.writes_per_second:g}"
            )
        if self.minutes is not None and not 0 < self.minutes <= MAX_MINUTES:
            raise UsageError(f"--minutes must be above 0 and at most {MAX_MINUTES:g}, not {self.minutes:g}")
        if not 1 <= self.workers <= MAX_WORKERS:
            raise UsageError(f"--workers must be between 1 and {MAX_WORKERS}, not {self.workers}")
        if self.partition_documents is not None and self.partition_documents < 1:
            raise UsageError(f"--partition-documents must be at least 1, not {self.partition_documents}")
        if not self.empty_target and (self.workers > 1 or self.partition_documents is not None):
            given = "--workers" if self.workers > 1 else "--partition-documents"
            raise UsageError(
                f"{given} needs --empty-target: only the initial sync's copy is spread over the workers, and "
                "without --empty-target MongoDB holds the data, so nothing is copied"
            )

    @property
    def sync_partition_documents(self) -> int | None:
        """The Param ``sync_partition_documents`` of the start DAG (None: the DAG's default)."""
        if self.partition_documents is not None:
            return self.partition_documents
        if self.workers > 1:
            return -(-self.documents // self.workers)
        return None


#: Bounds a rehearsal on one machine can hold (the load is one thread; a day of capture at most).
MAX_WRITES_PER_SECOND = 10_000.0
MAX_MINUTES = 24 * 60.0


@dataclass
class RehearsalReport:
    checks: dict[str, str] = field(default_factory=dict)  # probe -> "ok" or the failure
    phases: dict[str, dict[str, Any]] = field(default_factory=dict)  # DAG -> {ok, seconds, log}
    figures: dict[str, Any] = field(default_factory=dict)
    identical: bool | None = None  # verification result
    freeze_window: dict[str, Any] | None = None  # backover.lifecycle.window.FreezeWindow.to_json()
    sync: dict[str, Any] | None = None  # the initial sync's figures (None: no copy)
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
