"""Seed the Docker Compose environment once: the sandbox's AWS objects in moto, the demo data in both
MongoDB replica sets, and the Airflow Variable ``backover``.

It reuses the sandbox's own seeding (``backover_sandbox.seed``), so the compose environment holds
what ``backover sandbox up`` seeds: bucket, the three secrets, a running EC2 worker tagged
``backover-worker``, the microservices' user and the demo data. The difference: the databases are
real MongoDB replica sets whose root passwords come from the environment (``.env``), and the
Variable is written to Airflow's metadata database because the worker's instance id is only known
once moto has started it.

Usage (the compose service ``backover-seed`` runs it): ``python deploy/docker/seed.py``.
Environment: ``BACKOVER_BUCKET``, ``BACKOVER_PREFIX``, ``DOCUMENTDB_HOST``/``_PORT``,
``MONGODB_HOST``/``_PORT``, ``DOCUMENTDB_ROOT_PASSWORD``, ``MONGODB_ROOT_PASSWORD``,
``BACKOVER_APP_PASSWORD`` and boto3's ``AWS_*`` (moto and the runner). Exit 0 seeded, 2 a
variable is missing, 1 seeding failed.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("backover.compose.seed")

REQUIRED = ("DOCUMENTDB_ROOT_PASSWORD", "MONGODB_ROOT_PASSWORD", "BACKOVER_APP_PASSWORD")


class SeedUsageError(ValueError):
    """A required environment variable is missing (the message names it, never a value)."""


@dataclass(frozen=True)
class SeedConfig:
    """Where the compose services are, from the environment (passwords stay in memory)."""

    bucket: str
    prefix: str
    hosts: dict[str, tuple[str, int]]
    passwords: dict[str, str]
    app_password: str

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SeedConfig:
        missing = [name for name in REQUIRED if not env.get(name)]
        if missing:
            raise SeedUsageError(f"missing environment variable(s): {', '.join(missing)} (see .env.example)")
        return cls(
            bucket=env.get("BACKOVER_BUCKET", "backover-sandbox"),
            prefix=env.get("BACKOVER_PREFIX", "migrations"),
            hosts={
                "documentdb": (
                    env.get("DOCUMENTDB_HOST", "documentdb"),
                    int(env.get("DOCUMENTDB_PORT", "27017")),
                ),
                "mongodb": (env.get("MONGODB_HOST", "mongodb"), int(env.get("MONGODB_PORT", "27017"))),
            },
            passwords={
                "documentdb": env["DOCUMENTDB_ROOT_PASSWORD"],
                "mongodb": env["MONGODB_ROOT_PASSWORD"],
            },
            app_password=env["BACKOVER_APP_PASSWORD"],
        )


def master_secrets(config: SeedConfig) -> dict[str, dict[str, Any]]:
    """Master-credential secrets for both replica sets (both are real MongoDB: engine ``mongo``)."""
    from backover_sandbox import seed

    return {
        label: seed.master_secret("mongodb", host, port, config.passwords[label])
        for label, (host, port) in config.hosts.items()
    }


def variable(state: Any, backover_command: str = "python -m backover") -> dict[str, Any]:
    """The Airflow Variable ``backover`` (the fields ``backover sandbox env`` prints; no secret)."""
    from backover_sandbox.environment import airflow_variable

    return airflow_variable(state, poll_interval_seconds=5, backover_command=backover_command)


def seed_all(config: SeedConfig, databases: bool = True) -> dict[str, Any]:
    """Seed moto (and the databases unless ``databases`` is false); return the Variable."""
    from backover_sandbox import seed
    from backover_sandbox.config import Ports, SandboxConfig, SandboxState

    sandbox = SandboxConfig(
        directory=Path("/tmp"), ports=Ports.from_base(0), bucket=config.bucket, prefix=config.prefix
    )
    state = SandboxState(ports={}, pids={}, host="", bucket=config.bucket, prefix=config.prefix)
    master = master_secrets(config)
    seed.seed_aws(sandbox, state, master, config.app_password)
    log.info(
        "moto: bucket %s, secrets %s, worker %s",
        config.bucket,
        ", ".join(state.secret_ids.values()),
        state.worker_instance_id,
    )
    state.lambda_names = dict(seed.LAMBDAS)
    if databases:
        seed.seed_databases(state, master, config.app_password)
        log.info("databases: user %s and demo data in %s", state.app_user, ", ".join(state.databases))
    else:
        state.app_user, state.databases = seed.APP_USER, list(seed.DEMO_DATABASES)
    return variable(state)


def set_airflow_variable(value: dict[str, Any]) -> None:
    """``airflow variables set backover <json>`` (the Variable holds no secret), and
    ``backover_rehearsal``: the same environment marked ``"purpose": "rehearsal"`` (this compose
    deployment is a sandbox, so the rehearsal DAG may freeze its application)."""
    for name, doc in (("backover", value), ("backover_rehearsal", {**value, "purpose": "rehearsal"})):
        subprocess.run(
            ["airflow", "variables", "set", name, json.dumps(doc)], check=True, capture_output=True
        )


def main() -> int:
    logging.basicConfig(level="INFO", format="%(levelname)s %(name)s: %(message)s")
    try:
        config = SeedConfig.from_env(os.environ)
    except SeedUsageError as e:
        log.error("%s", e)
        return 2
    from botocore.exceptions import BotoCoreError, ClientError
    from pymongo.errors import PyMongoError

    try:
        value = seed_all(config)
        set_airflow_variable(value)
    except (OSError, subprocess.CalledProcessError, BotoCoreError, ClientError, PyMongoError) as e:
        log.error("seeding failed: %s", type(e).__name__)
        return 1
    log.info(
        "Airflow Variables 'backover' and 'backover_rehearsal' set: %s", json.dumps(value, sort_keys=True)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
