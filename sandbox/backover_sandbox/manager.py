"""``backover sandbox up | down | status | env``: the whole AWS + database side on loopback.

``up`` starts moto (S3, Secrets Manager, EC2), the local Lambda/SSM runner and the two MongoDB
stand-ins (flavours ``documentdb`` and ``mongodb``), waits until each answers, and seeds them.
Passwords are generated at start-up and kept only in the sandbox's Secrets Manager.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
from pymongo import MongoClient
from pymongo.errors import PyMongoError

from backover.errors import UsageError

from . import environment, processes, seed
from .config import SandboxConfig, SandboxState, port_free

log = logging.getLogger(__name__)

SERVICES = ("moto", "documentdb", "mongodb", "runner")
START_TIMEOUT_SECONDS = 30.0


class SandboxError(UsageError):
    """The sandbox could not do what was asked; the message is one line for the user (exit 2)."""


# -- helpers -------------------------------------------------------------------------------------
def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _mongo_ok(host: str, port: int) -> bool:
    c: MongoClient[dict[str, Any]]
    try:
        with MongoClient(host=host, port=port, directConnection=True, serverSelectionTimeoutMS=500) as c:
            c.admin.command("ping")
        return True
    except PyMongoError:
        return False


@contextmanager
def aws_environment(state: SandboxState):
    """boto3 calls in this block go to the sandbox (restores the caller's environment after)."""
    saved = dict(os.environ)
    os.environ.update(environment.aws_env(state))
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _checks(config: SandboxConfig) -> dict[str, Callable[[], bool]]:
    p, h = config.ports, config.host
    return {
        "moto": lambda: _http_ok(f"{config.url(p.moto)}/moto-api/"),
        "runner": lambda: _http_ok(f"{config.url(p.runner)}/_runner/health"),
        "documentdb": lambda: _mongo_ok(h, p.documentdb),
        "mongodb": lambda: _mongo_ok(h, p.mongodb),
    }


def _argv(config: SandboxConfig, name: str, registry: Path) -> list[str]:
    py, p, h = sys.executable, config.ports, config.host
    if name == "moto":
        return [py, "-m", "moto.server", "-H", h, "-p", str(p.moto)]
    if name == "runner":
        return [
            py,
            "-m",
            "backover_sandbox.runner",
            "--host",
            h,
            "--port",
            str(p.runner),
            "--registry",
            str(registry),
            "--ec2-endpoint",
            config.url(p.moto),
            "--workdir",
            str(config.project_root),
        ]
    port = p.documentdb if name == "documentdb" else p.mongodb
    return [py, "-m", "backover_sandbox.standin", "--flavour", name, "--host", h, "--port", str(port)]


# -- commands ------------------------------------------------------------------------------------
def up(config: SandboxConfig) -> SandboxState:
    """Start and seed the sandbox; a running one is left as it is."""
    current = SandboxState.load(config.state_file)
    if current is not None:
        if all(status(config)[name]["answering"] for name in SERVICES):
            log.info("sandbox already up in %s", config.directory)
            return current
        down(config)
    busy = [
        f"{name} port {port}" for name, port in vars(config.ports).items() if not port_free(config.host, port)
    ]
    if busy:
        raise SandboxError(
            f"cannot start the sandbox: {', '.join(busy)} already in use "
            "(set BACKOVER_SANDBOX_PORT_BASE to use other ports)"
        )
    config.directory.mkdir(parents=True, exist_ok=True)
    state = SandboxState(
        ports=dict(vars(config.ports)), pids={}, host=config.host, bucket=config.bucket, prefix=config.prefix
    )
    passwords = {"documentdb": seed.new_password(), "mongodb": seed.new_password()}
    try:
        _start_services(config, state, passwords)
        master = {
            flavour: seed.master_secret(flavour, config.host, state.ports[flavour], passwords[flavour])
            for flavour in ("documentdb", "mongodb")
        }
        app_password = seed.new_password()
        with aws_environment(state):
            seed.seed_aws(config, state, master, app_password)
        seed.seed_databases(state, master, app_password, empty_target=config.empty_target)
    except BaseException:
        _stop_pids(config, state.pids)
        config.state_file.unlink(missing_ok=True)
        raise
    state.save(config.state_file)
    log.info("sandbox up in %s", config.directory)
    return state


def _start_services(config: SandboxConfig, state: SandboxState, passwords: dict[str, str]) -> None:
    registry = seed.write_lambda_registry(config, state)
    checks = _checks(config)
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    for name in SERVICES:
        env = dict(base_env)
        if name in passwords:
            env["BACKOVER_STANDIN_ROOT_PASSWORD"] = passwords[name]
        if name == "runner":
            env.update(environment.aws_env(state))
        pid = processes.start(name, _argv(config, name, registry), config.directory, env)
        state.pids[name] = pid
        state.save(config.state_file)
        if not processes.wait_until(checks[name], START_TIMEOUT_SECONDS, pid):
            log_file = config.directory / f"{name}.log"
            last = processes.tail(log_file, 1).strip() or "no output"
            raise SandboxError(f"{name} did not come up on port {state.ports[name]}: {last} (see {log_file})")


def _stop_pids(config: SandboxConfig, pids: dict[str, int]) -> list[str]:
    # First what the runner left running on "the worker" (detached replicators, follow restores),
    # while S3 still answers, so they stop cleanly (state stopped) rather than retry for minutes.
    left = processes.stop_started_by(config.directory, "runner", pids.get("runner"))
    if left:
        log.info("stopped %d background job(s) the worker was running: pids %s", len(left), left)
    stopped = []
    for name in reversed(SERVICES):
        pid = pids.get(name)
        if pid is not None and processes.stop(pid, config.directory, name):
            stopped.append(name)
    return stopped


def down(config: SandboxConfig) -> list[str]:
    """Stop exactly what ``up`` started; returns the services that were running."""
    state = SandboxState.load(config.state_file)
    if state is None:
        return []
    stopped = _stop_pids(config, state.pids)
    config.state_file.unlink(missing_ok=True)
    (config.directory / "lambdas.json").unlink(missing_ok=True)
    return stopped


def status(config: SandboxConfig) -> dict[str, dict[str, Any]]:
    """Per service: pid, whether it runs, whether it answers, its port."""
    state = SandboxState.load(config.state_file)
    checks = _checks(config)
    out = {}
    for name in SERVICES:
        pid = state.pids.get(name) if state else None
        running = pid is not None and processes.is_ours(pid, config.directory, name)
        out[name] = {
            "pid": pid,
            "running": running,
            "answering": running and checks[name](),
            "port": getattr(config.ports, name),
        }
    return out


def require_state(config: SandboxConfig) -> SandboxState:
    state = SandboxState.load(config.state_file)
    if state is None:
        raise SandboxError(f"no sandbox is up in {config.directory}: run `backover sandbox up` first")
    return state


def master_credentials(state: SandboxState) -> dict[str, dict[str, Any]]:
    """The stand-ins' master secrets, read from the sandbox's Secrets Manager."""
    with aws_environment(state):
        sm = boto3.client("secretsmanager")
        return {
            label: json.loads(sm.get_secret_value(SecretId=state.secret_ids[label])["SecretString"])
            for label in ("documentdb", "mongodb")
        }


def env(config: SandboxConfig) -> dict[str, str]:
    """Every export that points boto3, pymongo and Airflow at the running sandbox."""
    state = require_state(config)
    out = environment.aws_env(state)
    out.update(environment.airflow_env(state, master_credentials(state)))
    out["BACKOVER_SANDBOX_DIR"] = str(config.directory)
    return out
