"""A local Airflow (SQLite, no scheduler) pointed at the project's DAGs and the sandbox.

Used by the rehearsal (``airflow dags test`` runs each DAG unchanged, in-process) and by
``make airflow`` (``airflow standalone``, the UI). Airflow reads its configuration from the
environment, so everything here is environment variables; nothing is written into the project.

The caller's own Airflow settings (``AIRFLOW__<SECTION>__<KEY>``) are kept, except the ones that
point Airflow at this project and the sandbox (:data:`PROJECT_SETTINGS`, and the ports of
:func:`server_ports`); the caller's connections and Variables (``AIRFLOW_CONN_*``,
``AIRFLOW_VAR_*``) and AWS settings are not: the sandbox's replace them.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backover.errors import JobFailed, UsageError

log = logging.getLogger(__name__)

#: The UI login of ``make airflow`` (a local, loopback-only Airflow).
UI_USER = "admin"
#: ``make airflow``'s API server (the UI) port when ``PORT`` is not given.
DEFAULT_PORT = 8080
#: The Airflow settings that point it at this project and the sandbox: a caller's value is replaced.
PROJECT_SETTINGS = (
    "AIRFLOW__CORE__DAGS_FOLDER",
    "AIRFLOW__CORE__PLUGINS_FOLDER",
    "AIRFLOW__CORE__LOAD_EXAMPLES",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS",
    "AIRFLOW__LOGGING__BASE_LOG_FOLDER",
    "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION",
)


#: The ports of :func:`server_ports`, as a refusal names them.
PORT_NAMES = {
    "AIRFLOW__API__PORT": "the API server (UI, execution API)",
    "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": "the worker log server",
    "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": "the triggerer log server",
    "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": "the scheduler health check",
}


def server_ports(port: int, host: str = "127.0.0.1") -> dict[str, str]:
    """Every port ``airflow standalone`` listens on or calls, from the API server's ``port``: the API
    server (the UI) and the execution API on ``port`` (the workers and the triggerer call it there,
    not at Airflow's default ``localhost:8080``), the worker's and the triggerer's log servers on
    ``port + 1`` and ``port + 2`` (Airflow's defaults 8793, 8794), the scheduler's health check on
    ``port + 3`` (when enabled)."""
    base_url = f"http://{host}:{port}"
    return {
        "AIRFLOW__API__HOST": host,
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": base_url,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base_url}/execution/",
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(port + 1),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(port + 2),
        "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(port + 3),
    }


def _callers(name: str) -> bool:
    """Whether the caller's environment variable ``name`` reaches the local Airflow."""
    if name.startswith("AIRFLOW__"):
        return name not in PROJECT_SETTINGS
    return not name.startswith(("AIRFLOW_", "AWS_"))


@dataclass
class DagRunResult:
    dag_id: str
    ok: bool
    seconds: float
    log_file: Path
    conf: dict[str, Any] = field(default_factory=dict)


class LocalAirflow:
    """An ``AIRFLOW_HOME`` under the sandbox directory, with the project's dags/ and plugins/."""

    def __init__(self, home: Path, project_root: Path, sandbox_env: dict[str, str]) -> None:
        self.home = home
        self.project_root = project_root
        self.sandbox_env = sandbox_env
        self.airflow = str(Path(sys.executable).with_name("airflow"))

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if _callers(k)}
        env.update(self.sandbox_env)
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.project_root / "dags"),
                "AIRFLOW__CORE__PLUGINS_FOLDER": str(self.project_root / "plugins"),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.home / 'airflow.db'}",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{UI_USER}:admin",
                "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.home / "logs"),
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
                # `airflow standalone` starts its components as `airflow ...` found on PATH.
                "PATH": os.pathsep.join([str(Path(self.airflow).parent), env.get("PATH", "")]),
                "PYTHONPATH": os.pathsep.join(
                    [str(self.project_root / "plugins"), env.get("PYTHONPATH", "")]
                ).rstrip(os.pathsep),
            }
        )
        return env

    def migrate(self) -> None:
        """Create or upgrade the metadata database (idempotent)."""
        self.home.mkdir(parents=True, exist_ok=True)
        log_file = self.home / "db-migrate.log"
        with open(log_file, "wb") as out:
            result = subprocess.run(
                [self.airflow, "db", "migrate"],
                env=self.environment(),
                stdout=out,
                stderr=subprocess.STDOUT,
                check=False,
                timeout=600,
            )
        if result.returncode != 0:
            raise UsageError(f"airflow db migrate failed (see {log_file})")

    def dags_test(self, dag_id: str, conf: dict[str, Any], *, stream_to: Any = None) -> DagRunResult:
        """``airflow dags test DAG_ID -c CONF``: one DAG run, unchanged, in-process; its log in a file."""
        log_file = self.home / f"{dag_id}.log"
        started = time.monotonic()
        log.info("running DAG %s (log: %s)", dag_id, log_file)
        with open(log_file, "wb") as out:
            proc = subprocess.Popen(
                [self.airflow, "dags", "test", dag_id, "-c", json.dumps(conf)],
                env=self.environment(),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
            assert proc.stdout is not None
            for line in proc.stdout:
                out.write(line)
                if stream_to is not None:
                    stream_to(line.decode(errors="replace").rstrip())
            proc.wait()
        result = DagRunResult(dag_id, proc.returncode == 0, time.monotonic() - started, log_file, conf)
        log.info("DAG %s %s in %.1f s", dag_id, "succeeded" if result.ok else "FAILED", result.seconds)
        return result

    def require(self, result: DagRunResult) -> DagRunResult:
        if not result.ok:
            raise JobFailed(f"DAG {result.dag_id} failed (log: {result.log_file})")
        return result
