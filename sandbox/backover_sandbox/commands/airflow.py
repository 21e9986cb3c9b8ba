"""``backover airflow``: the Airflow UI (``airflow standalone``) against the sandbox (``make airflow``).

Starts the sandbox if it is not up, prepares a local Airflow home in the sandbox directory, then
replaces itself with ``airflow standalone`` (stop it with Ctrl-C, i.e. SIGINT). The sandbox keeps
running afterwards; ``backover sandbox down`` stops it.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from .. import manager
from ..airflow_local import UI_USER, LocalAirflow
from ..config import SandboxConfig


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("airflow", help="run the Airflow UI against the sandbox (airflow standalone)")
    parser.add_argument("--dir", help="sandbox directory (default .sandbox or BACKOVER_SANDBOX_DIR)")
    parser.add_argument("--port-base", type=int, help="first of the sandbox's loopback ports")
    parser.add_argument("--port", type=int, default=8080, help="the UI's port on 127.0.0.1 (default 8080)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    config = SandboxConfig.from_env(args.dir, args.port_base)
    manager.up(config)
    airflow = LocalAirflow(config.directory / "airflow", Path.cwd(), manager.env(config))
    airflow.migrate()
    env = airflow.environment()
    env.update({"AIRFLOW__API__HOST": "127.0.0.1", "AIRFLOW__API__PORT": str(args.port)})
    print(
        f"Airflow UI on http://127.0.0.1:{args.port}: log in as {UI_USER!r} with the password standalone prints "
        f"(also in {airflow.home / 'simple_auth_manager_passwords.json.generated'}); Ctrl-C stops it",
        flush=True,
    )
    os.execve(airflow.airflow, [airflow.airflow, "standalone"], env)
    return 0  # not reached
