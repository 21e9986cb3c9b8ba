"""``backover airflow``: the Airflow UI (``airflow standalone``) against the sandbox (``make airflow``).

Starts the sandbox if it is not up, prepares a local Airflow home in the sandbox directory, then
replaces itself with ``airflow standalone`` (stop it with Ctrl-C, i.e. SIGINT). The sandbox keeps
running afterwards; ``backover sandbox down`` stops it. ``--port P`` (``make airflow PORT=P``)
moves every Airflow port (:func:`backover_sandbox.airflow_local.server_ports`: the UI and the
execution API on P, the log servers on P+1 and P+2, the scheduler's health check on P+3); one of
them in use is refused in one line before anything starts (exit 2).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from .. import manager
from ..airflow_local import DEFAULT_PORT, PORT_NAMES, UI_USER, LocalAirflow, server_ports
from ..config import SandboxConfig, port_free


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("airflow", help="run the Airflow UI against the sandbox (airflow standalone)")
    parser.add_argument("--dir", help="sandbox directory (default .sandbox or BACKOVER_SANDBOX_DIR)")
    parser.add_argument("--port-base", type=int, help="first of the sandbox's loopback ports")
    parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"the UI's port on 127.0.0.1 (default {DEFAULT_PORT}); the log servers use the next two, the "
        "scheduler's health check the third",
    )
    parser.set_defaults(run=run)


def check_ports(port: int, host: str = "127.0.0.1") -> dict[str, str]:
    """The Airflow settings of :func:`server_ports`; SandboxError (one line, exit 2) for a port out
    of range or in use."""
    if not 1024 <= port <= 65535 - 3:
        raise manager.SandboxError(f"--port {port}: must be between 1024 and {65535 - 3}")
    settings = server_ports(port, host)
    busy = [
        f"{name} port {settings[key]}"
        for key, name in PORT_NAMES.items()
        if not port_free(host, int(settings[key]))
    ]
    if busy:
        raise manager.SandboxError(
            f"cannot start Airflow: {', '.join(busy)} already in use (make airflow PORT=... moves them all)"
        )
    return settings


def run(args: argparse.Namespace) -> int:
    ports = check_ports(args.port)  # before the sandbox starts
    config = SandboxConfig.from_env(args.dir, args.port_base)
    manager.up(config)
    airflow = LocalAirflow(config.directory / "airflow", Path.cwd(), manager.env(config))
    airflow.migrate()
    env = airflow.environment()
    env.update(ports)
    print(
        f"Airflow UI on http://127.0.0.1:{args.port}: log in as {UI_USER!r} with the password standalone prints "
        f"(also in {airflow.home / 'simple_auth_manager_passwords.json.generated'}); Ctrl-C stops it",
        flush=True,
    )
    os.execve(airflow.airflow, [airflow.airflow, "standalone"], env)
    return 0  # not reached
