"""The main job: a full lifecycle rehearsal on a fresh local sandbox (``make rehearsal``).

It starts its own sandbox, probes every endpoint the lifecycle uses, then runs the three DAGs
(``backover_start``, ``backover_restore``, ``backover_clean``) unchanged with ``airflow dags test``
while a microservice load writes to DocumentDB as the microservices' user, stops the sandbox and
prints a summary. It passes only when verification found MongoDB byte-identical to DocumentDB.
"""

from __future__ import annotations

import logging
import time

from backover.errors import BackoverError

from .. import manager, seed
from ..airflow_local import LocalAirflow
from ..config import SandboxConfig
from .lifecycle import run_lifecycle
from .probes import sandbox_checks
from .report import RehearsalReport, RehearsalScale, summary

log = logging.getLogger(__name__)

#: The rehearsal runs its own sandbox, so a sandbox started by hand is left alone.
DEFAULT_DIR = ".sandbox/rehearsal"
DEFAULT_PORT_BASE = 31200

__all__ = ["DEFAULT_DIR", "DEFAULT_PORT_BASE", "RehearsalReport", "RehearsalScale", "run", "summary"]


def run(config: SandboxConfig, scale: RehearsalScale | None = None) -> RehearsalReport:
    """Start the sandbox, rehearse at ``scale`` (default: the small run), stop it; the report says
    what passed."""
    scale = scale or RehearsalScale()
    started = time.monotonic()
    report = RehearsalReport()
    manager.down(config)  # a sandbox left over from an interrupted rehearsal
    state = manager.up(config)
    try:
        if scale.documents > seed.DEMO_ORDERS:
            began = time.monotonic()
            added = seed.add_demo_orders(
                manager.master_credentials(state), scale.documents, empty_target=scale.empty_target
            )
            log.info(
                "seeded %d more orders on %s (%d in shop.orders) in %.1f s",
                added,
                "DocumentDB (MongoDB starts empty)" if scale.empty_target else "both sides",
                scale.documents,
                time.monotonic() - began,
            )
        with manager.aws_environment(state):
            sandbox_checks(state, report)
            if all(v == "ok" for v in report.checks.values()):
                airflow = LocalAirflow(config.directory / "airflow", config.project_root, manager.env(config))
                run_lifecycle(report, state, airflow, scale)
    except BackoverError as e:
        report.error = str(e)
    finally:
        manager.down(config)
    report.seconds = time.monotonic() - started
    return report
