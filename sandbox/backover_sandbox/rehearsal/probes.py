"""Probes that reach every sandbox endpoint the lifecycle uses, before the lifecycle runs."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError
from pymongo import MongoClient
from pymongo.errors import OperationFailure, PyMongoError

from .. import seed
from ..config import SandboxState
from .report import RehearsalReport

log = logging.getLogger(__name__)


def _check(report: RehearsalReport, name: str, fn: Callable[[], str | None]) -> None:
    try:
        detail = fn()
        report.checks[name] = "ok"
        log.info("check %-28s ok%s", name, f" ({detail})" if detail else "")
    except (PyMongoError, BotoCoreError, ClientError, AssertionError, KeyError, ValueError) as e:
        report.checks[name] = f"failed: {type(e).__name__}: {e}"
        log.error("check %-28s FAILED: %s", name, e)


def sandbox_checks(state: SandboxState, report: RehearsalReport) -> None:
    """Reach every endpoint the lifecycle uses."""
    secrets = boto3.client("secretsmanager")

    def secret(label: str) -> dict:
        return json.loads(secrets.get_secret_value(SecretId=state.secret_ids[label])["SecretString"])

    def app_user_writes() -> str:
        master, app = secret("documentdb"), secret("app_user")
        c: MongoClient[dict[str, Any]]
        with MongoClient(
            host=master["host"],
            port=master["port"],
            username=app["username"],
            password=app["password"],
            authSource="admin",
            directConnection=True,
            retryWrites=False,
        ) as c:
            # The probe leaves no trace: the migrated databases must stay as both sides were seeded.
            c.shop.rehearsal_probe.replace_one({"_id": "probe"}, {"at": time.time()}, upsert=True)
            c.shop.drop_collection("rehearsal_probe")
            try:
                c.admin.command("createUser", "intruder", pwd="x", roles=[])
            except OperationFailure as e:
                assert e.code == 13, e
            else:
                raise AssertionError("the microservices' user could create users")
            return f"{app['username']} writes shop, {c.shop.orders.estimated_document_count()} demo orders"

    def master_login(label: str) -> Callable[[], str]:
        def run() -> str:
            s = secret(label)
            with seed.client(s) as c:
                version = c.admin.command("buildInfo")["version"]
            return f"SCRAM as {s['username']}, version {version}"

        return run

    def s3_round_trip() -> str:
        s3 = boto3.client("s3")
        key = f"{state.prefix}/_rehearsal/probe.txt"
        s3.put_object(Bucket=state.bucket, Key=key, Body=b"probe")
        assert s3.get_object(Bucket=state.bucket, Key=key)["Body"].read() == b"probe"
        return f"s3://{state.bucket}/{key}"

    def worker_running() -> str:
        ec2 = boto3.client("ec2")
        ids = state.worker_instance_ids or [state.worker_instance_id]
        found = ec2.describe_instances(InstanceIds=ids)["Reservations"]
        states = {i["InstanceId"]: i["State"]["Name"] for r in found for i in r["Instances"]}
        assert all(states.get(i) == "running" for i in ids), states
        return ", ".join(ids)

    def lambda_invoke() -> str:
        resp = boto3.client("lambda").invoke(FunctionName=seed.PROBE_LAMBDA, Payload=b'{"hello": "sandbox"}')
        payload = json.loads(resp["Payload"].read())
        assert resp["StatusCode"] == 200 and "FunctionError" not in resp, payload
        assert payload["echo"] == {"hello": "sandbox"}, payload
        return f"{seed.PROBE_LAMBDA} answered"

    def ssm_command() -> str:
        ssm = boto3.client("ssm")
        cmd = ssm.send_command(
            InstanceIds=[state.worker_instance_id],
            DocumentName="AWS-RunShellScript",
            Parameters={"commands": ["echo worker says hello"]},
        )["Command"]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            inv = ssm.get_command_invocation(CommandId=cmd["CommandId"], InstanceId=state.worker_instance_id)
            if inv["Status"] not in ("Pending", "InProgress", "Delayed"):
                break
            time.sleep(0.2)
        assert inv["Status"] == "Success", inv
        assert "worker says hello" in inv["StandardOutputContent"], inv
        return f"command {cmd['CommandId']} Success"

    _check(report, "documentdb master login", master_login("documentdb"))
    _check(report, "mongodb master login", master_login("mongodb"))
    _check(report, "microservices' user", app_user_writes)
    _check(report, "s3 round trip", s3_round_trip)
    _check(report, "ec2 worker running", worker_running)
    _check(report, "lambda invoke (runner)", lambda_invoke)
    _check(report, "ssm run command (runner)", ssm_command)
