"""Helpers for the lifecycle Lambda tests: invoking through the runner, a source to act on.

Each Lambda runs through the runner's real Lambda Invoke API (a fresh interpreter per call, as
in AWS). The source is the documentdb stand-in (``standins``); its master credentials sit in
moto's Secrets Manager exactly as AWS keeps a DocumentDB cluster's. Every test gets its own
databases, app user, secrets and bucket, so tests share the session's servers safely.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from pymongo import MongoClient

ROOT = Path(__file__).resolve().parents[2]
EVENTS = Path(__file__).with_name("events")
FUNCTION_LOGGER = "backover_sandbox.runner.function"
LAMBDAS = ("start", "restore", "clean")


@dataclass
class Invocation:
    """One Lambda invocation: its payload, function error (or None) and the Tail log."""

    payload: Any
    function_error: str | None
    log_tail: str


@dataclass
class LambdaWorld:
    """The registered functions and how to call them."""

    runner_url: str
    names: dict[str, str]
    log_lines: list[str] = field(default_factory=list)

    def invoke(self, short: str, event: Any) -> Invocation:
        client = boto3.client("lambda", endpoint_url=self.runner_url, region_name="us-east-1")
        reply = client.invoke(
            FunctionName=self.names[short], Payload=json.dumps(event).encode(), LogType="Tail"
        )
        tail = base64.b64decode(reply.get("LogResult", "")).decode("utf-8", "replace")
        return Invocation(json.loads(reply["Payload"].read()), reply.get("FunctionError"), tail)


def register(runner_url: str, name: str, definition: dict[str, Any]) -> None:
    request = urllib.request.Request(
        f"{runner_url}/_runner/functions/{name}", method="PUT", data=json.dumps(definition).encode()
    )
    with urllib.request.urlopen(request, timeout=10) as reply:
        assert reply.status == 200


@dataclass
class Source:
    """One test's view of the documentdb stand-in: its databases, app user and secrets."""

    flavour: str
    root: MongoClient
    uri_for: Any  # (user, password) -> URI
    master_password: str
    app_user: str
    app_password: str
    databases: list[str]
    other_db: str
    master_secret_id: str
    app_secret_id: str
    bucket: str
    migration_id: str
    prior_roles: list[dict[str, str]]

    def app_client(self) -> MongoClient:
        return MongoClient(
            self.uri_for(self.app_user, self.app_password), serverSelectionTimeoutMS=5000, retryWrites=False
        )

    def values(self) -> dict[str, str]:
        """What ``${NAME}`` stands for in the event fixtures."""
        return {
            "MIGRATION_ID": self.migration_id,
            "BUCKET": self.bucket,
            "MASTER_SECRET_ID": self.master_secret_id,
            "APP_SECRET_ID": self.app_secret_id,
            "APP_USER": self.app_user,
            "DB_ORDERS": self.databases[0],
            "DB_STOCK": self.databases[1],
        }

    def event(self, name: str, **changes: Any) -> dict[str, Any]:
        """The event fixture ``events/<name>.json`` with this test's values; ``None`` drops a field."""
        event = load_event(name, self.values())
        for key, value in changes.items():
            if value is None:
                event.pop(key, None)
            else:
                event[key] = value
        return event

    def user_roles(self) -> list[dict[str, str]]:
        users = self.root.admin.command("usersInfo", {"user": self.app_user, "db": "admin"})["users"]
        return [{"role": r["role"], "db": r["db"]} for r in users[0]["roles"]]

    def enabled_streams(self) -> list[dict[str, str]]:
        return [
            dict(d)
            for d in self.root.admin.aggregate([{"$listChangeStreams": {}}])
            if d["database"] in [*self.databases, self.other_db, ""]
        ]

    def secrets(self) -> list[str]:
        return [self.master_password, self.app_password]


def load_event(name: str, values: dict[str, str]) -> dict[str, Any]:
    text = (EVENTS / f"{name}.json").read_text(encoding="utf-8")
    return json.loads(re.sub(r"\$\{(\w+)\}", lambda m: values[m.group(1)], text))


def make_source(
    flavour: str, standins: dict[str, Any], password: str, bucket: str, moto_server: str
) -> Source:
    """A fresh app user (readWrite on the first database, read on another) and both secrets."""
    server = standins[flavour]
    tag = uuid.uuid4().hex[:8]
    databases = [f"lc{tag}_orders", f"lc{tag}_stock"]
    other = f"lc{tag}_reports"
    app_user, app_password = f"app_{tag}", secrets.token_urlsafe(16)
    root = MongoClient(server.uri("root", password), serverSelectionTimeoutMS=5000, retryWrites=False)
    prior = [{"role": "readWrite", "db": databases[0]}, {"role": "read", "db": other}]
    root.admin.command("createUser", app_user, pwd=app_password, roles=prior)
    for db in databases:
        root[db].items.insert_one({"_id": "seed", "n": 1})
    sm = boto3.client("secretsmanager", endpoint_url=moto_server, region_name="us-east-1")
    master_id, app_id = f"lc/{tag}/master", f"lc/{tag}/app"
    sm.create_secret(
        Name=master_id,
        SecretString=json.dumps(
            {
                "engine": "docdb" if flavour == "documentdb" else "mongo",
                "username": "root",
                "password": password,
                "host": "127.0.0.1",
                "port": server.port,
                "ssl": False,
            }
        ),
    )
    sm.create_secret(Name=app_id, SecretString=json.dumps({"username": app_user, "password": app_password}))
    return Source(
        flavour,
        root,
        server.uri,
        password,
        app_user,
        app_password,
        databases,
        other,
        master_id,
        app_id,
        bucket,
        f"mig-{tag}",
        prior,
    )


def s3_keys(bucket: str) -> list[str]:
    s3 = boto3.client("s3")
    return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]


def s3_json(bucket: str, key: str) -> Any:
    from backover import extjson

    return extjson.loads(boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())
