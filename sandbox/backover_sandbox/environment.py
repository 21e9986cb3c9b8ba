"""The environment that points boto3, pymongo and Airflow at a running sandbox."""

from __future__ import annotations

import json
import shlex
import sys
from typing import Any

from .config import AWS_TEST_KEY_ID, AWS_TEST_SECRET_KEY, REGION, SandboxState


def aws_env(state: SandboxState) -> dict[str, str]:
    """boto3's own settings for the sandbox endpoints (also given to the runner's commands)."""
    moto = f"http://{state.host}:{state.ports['moto']}"
    runner = f"http://{state.host}:{state.ports['runner']}"
    return {
        "AWS_ACCESS_KEY_ID": AWS_TEST_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": AWS_TEST_SECRET_KEY,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ENDPOINT_URL": moto,
        "AWS_ENDPOINT_URL_LAMBDA": runner,
        "AWS_ENDPOINT_URL_SSM": runner,
        "BACKOVER_BUCKET": state.bucket,
        "BACKOVER_PREFIX": state.prefix,
    }


def airflow_env(state: SandboxState, credentials: dict[str, dict[str, Any]]) -> dict[str, str]:
    """``AIRFLOW_CONN_*``, ``AIRFLOW_VAR_BACKOVER`` and ``AIRFLOW_VAR_BACKOVER_REHEARSAL`` (the same
    environment, ``"purpose": "rehearsal"``) for the sandbox.

    ``credentials`` maps ``documentdb``/``mongodb`` to the master secret's JSON (read from the
    sandbox's Secrets Manager, never from a file).
    """
    moto = f"http://{state.host}:{state.ports['moto']}"
    runner = f"http://{state.host}:{state.ports['runner']}"
    aws_conn = {
        "conn_type": "aws",
        "login": AWS_TEST_KEY_ID,
        "password": AWS_TEST_SECRET_KEY,
        "extra": {
            "region_name": REGION,
            "endpoint_url": moto,
            "service_config": {"lambda": {"endpoint_url": runner}, "ssm": {"endpoint_url": runner}},
        },
    }
    env = {"AIRFLOW_CONN_AWS_DEFAULT": json.dumps(aws_conn)}
    for label, secret in credentials.items():
        env[f"AIRFLOW_CONN_BACKOVER_{label.upper()}"] = json.dumps(mongo_connection(secret))
    # How SSM commands start backover on the worker (on AWS: the installed console script).
    variable = airflow_variable(
        state, poll_interval_seconds=2, backover_command=f"{sys.executable} -m backover"
    )
    env["AIRFLOW_VAR_BACKOVER"] = json.dumps(variable)
    # The rehearsal DAG's own environment: the same sandbox, marked as one a rehearsal may freeze.
    env["AIRFLOW_VAR_BACKOVER_REHEARSAL"] = json.dumps({**variable, "purpose": "rehearsal"})
    return env


def airflow_variable(state: Any, *, poll_interval_seconds: int, backover_command: str) -> dict[str, Any]:
    """The Airflow Variable ``backover`` of an environment seeded like the sandbox (no secret in it);
    with more than one worker, ``worker_tag`` names them all."""
    variable = {
        "bucket": state.bucket,
        "prefix": state.prefix,
        "worker_instance_id": state.worker_instance_id,
        "lambda_names": state.lambda_names,
        "secret_ids": state.secret_ids,
        "app_user": state.app_user,
        "databases": state.databases,
        "poll_interval_seconds": poll_interval_seconds,
        "backover_command": backover_command,
    }
    if getattr(state, "worker_tag", None):
        variable["worker_tag"] = dict(state.worker_tag)
    return variable


def mongo_connection(secret: dict[str, Any]) -> dict[str, Any]:
    """An Airflow ``mongo`` connection from a DocumentDB-style master secret."""
    extra: dict[str, Any] = {"directConnection": True, "authSource": "admin"}
    if secret.get("engine") == "docdb":
        extra["retryWrites"] = False
    return {
        "conn_type": "mongo",
        "host": secret["host"],
        "port": int(secret["port"]),
        "login": secret["username"],
        "password": secret["password"],
        "schema": "admin",
        "extra": extra,
    }


def exports(env: dict[str, str]) -> str:
    """``export NAME='value'`` lines a shell can ``eval``."""
    return "\n".join(f"export {name}={shlex.quote(value)}" for name, value in sorted(env.items()))
