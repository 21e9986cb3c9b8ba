"""What ``backover sandbox up`` puts in a fresh sandbox: bucket, secrets, worker, users, demo data."""

from __future__ import annotations

import json
import logging
import secrets
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
from bson import Binary, Decimal128, Int64, ObjectId, Regex, Timestamp
from bson.max_key import MaxKey
from bson.min_key import MinKey
from pymongo import MongoClient

from .config import WORKER_TAG, SandboxConfig, SandboxState

log = logging.getLogger(__name__)

APP_USER = "orders_app"
DEMO_DATABASES = ["shop", "inventory"]
SECRET_IDS = {
    "documentdb": "backover/sandbox/documentdb-master",
    "mongodb": "backover/sandbox/mongodb-master",
    "app_user": "backover/sandbox/app-user",
}
LAMBDAS = {"start": "backover-start", "restore": "backover-restore", "clean": "backover-clean"}
PROBE_LAMBDA = "backover-sandbox-probe"


def new_password() -> str:
    return secrets.token_urlsafe(18)


def master_secret(flavour: str, host: str, port: int, password: str) -> dict[str, Any]:
    """A master-credentials secret shaped like the one AWS keeps for a DocumentDB cluster."""
    return {
        "engine": "docdb" if flavour == "documentdb" else "mongo",
        "username": "root",
        "password": password,
        "host": host,
        "port": port,
        "ssl": False,
    }


def client(secret: dict[str, Any]) -> MongoClient:
    return MongoClient(
        host=secret["host"],
        port=int(secret["port"]),
        username=secret["username"],
        password=secret["password"],
        authSource="admin",
        directConnection=True,
        retryWrites=secret.get("engine") != "docdb",
        serverSelectionTimeoutMS=5000,
    )


def seed_aws(
    config: SandboxConfig, state: SandboxState, master: dict[str, dict[str, Any]], app_password: str
) -> None:
    """Bucket, secrets and the EC2 worker in moto (all idempotent)."""
    s3 = boto3.client("s3")
    try:
        s3.create_bucket(Bucket=config.bucket)
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass
    sm = boto3.client("secretsmanager")
    for label, value in {**master, "app_user": {"username": APP_USER, "password": app_password}}.items():
        secret_id = SECRET_IDS[label]
        try:
            sm.create_secret(Name=secret_id, SecretString=json.dumps(value))
        except sm.exceptions.ResourceExistsException:
            sm.put_secret_value(SecretId=secret_id, SecretString=json.dumps(value))
    state.secret_ids = dict(SECRET_IDS)
    ids = _ensure_workers(config.workers)
    state.worker_instance_id, state.worker_instance_ids = ids[0], ids
    # One worker: the Variable names it alone, as an environment without a tag does.
    state.worker_tag = dict(WORKER_TAG) if len(ids) > 1 else None


def _ensure_workers(count: int) -> list[str]:
    """``count`` EC2 workers in moto, each tagged ``Name=backover-worker`` and :data:`WORKER_TAG`
    (the ones already there first, in launch order)."""
    ec2 = boto3.client("ec2")
    found = ec2.describe_instances(
        Filters=[
            {"Name": "tag:Name", "Values": ["backover-worker"]},
            {"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]},
        ]
    )
    instances = [i for r in found["Reservations"] for i in r["Instances"]]
    ids = [i["InstanceId"] for i in sorted(instances, key=lambda i: (i["LaunchTime"], i["InstanceId"]))]
    if ids:
        ec2.create_tags(Resources=ids, Tags=[WORKER_TAG])
    if len(ids) < count:
        image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
        started = ec2.run_instances(
            ImageId=image,
            MinCount=count - len(ids),
            MaxCount=count - len(ids),
            InstanceType="t3.medium",
            TagSpecifications=[
                {
                    "ResourceType": "instance",
                    "Tags": [{"Key": "Name", "Value": "backover-worker"}, dict(WORKER_TAG)],
                }
            ],
        )
        ids += sorted(i["InstanceId"] for i in started["Instances"])
    return ids[:count]


def lambda_registry(config: SandboxConfig) -> dict[str, Any]:
    """The runner's registry: the probe, and each Lambda whose handler exists in ``lambdas/``."""
    functions: dict[str, Any] = {PROBE_LAMBDA: {"handler": "backover_sandbox.probe:handler", "timeout": 30}}
    for short, name in LAMBDAS.items():
        handler = config.project_root / "lambdas" / short / "handler.py"
        if handler.exists():
            functions[name] = {
                "handler": f"{handler}:handler",
                "timeout": 120,
                "working_dir": str(config.project_root),
            }
    return {"functions": functions}


def write_lambda_registry(config: SandboxConfig, state: SandboxState) -> Path:
    registry = lambda_registry(config)
    path = config.directory / "lambdas.json"
    path.write_text(json.dumps(registry, indent=2))
    state.lambda_names = {short: name for short, name in LAMBDAS.items() if name in registry["functions"]}
    return path


def seed_databases(
    state: SandboxState, master: dict[str, dict[str, Any]], app_password: str, empty_target: bool = False
) -> None:
    """The microservices' user (read-write on the demo databases) and a little demo data.

    The same demo data goes into both stand-ins: MongoDB is the database the application left for
    DocumentDB, so it holds the data as it was when the capture starts (T0), and replaying the
    captured changes brings it forward. ``empty_target``: MongoDB gets nothing (a fresh cluster:
    the initial sync copies DocumentDB's data after T0).
    """
    if not empty_target:
        with client(master["mongodb"]) as mongodb:
            _demo_data(mongodb)
    with client(master["documentdb"]) as docdb:
        admin = docdb.admin
        roles = [{"role": "readWrite", "db": db} for db in DEMO_DATABASES]
        existing = admin.command("usersInfo", APP_USER)["users"]
        if existing:
            admin.command("updateUser", APP_USER, pwd=app_password, roles=roles)
        else:
            admin.command("createUser", APP_USER, pwd=app_password, roles=roles)
        _demo_data(docdb)
    state.app_user = APP_USER
    state.databases = list(DEMO_DATABASES)


def demo_document(i: int) -> dict[str, Any]:
    """A document holding every BSON type the microservices write (deterministic for ``i``)."""
    return {
        "_id": ObjectId(f"{i:024x}"),
        "number": i,
        "total": Int64(i * 1_000_000_007),
        "ratio": i / 7,
        "price": Decimal128(Decimal(i) / Decimal(100)),
        "created": datetime(2026, 1, 1, 12, 0, i % 60),
        "stamp": Timestamp(1_764_000_000 + i, 1),
        "uuid": Binary(bytes(range(16)), 4),
        "blob": Binary(b"\x00\x01" * (i % 5), 0),
        "pattern": Regex(f"^order-{i}", "i"),
        "flags": [True, False, None],
        "nested": {"level": {"deeper": [1, Int64(2), 3.0, {"x": "y"}]}},
        "bounds": [MinKey(), MaxKey()],
        "status": "new",
    }


#: Orders the demo data holds; a rehearsal at the user's scale adds more (:func:`add_demo_orders`).
DEMO_ORDERS = 50


def add_demo_orders(
    master: dict[str, dict[str, Any]], documents: int, batch: int = 1000, empty_target: bool = False
) -> int:
    """Orders ``DEMO_ORDERS + 1 .. documents`` into ``shop.orders`` of both stand-ins (the same
    documents: MongoDB holds DocumentDB's data as of T0; with ``empty_target`` DocumentDB only);
    returns how many were added to each."""
    for label in ("documentdb",) if empty_target else ("documentdb", "mongodb"):
        with client(master[label]) as side:
            for first in range(DEMO_ORDERS + 1, documents + 1, batch):
                last = min(first + batch, documents + 1)
                side.shop.orders.insert_many([demo_document(i) for i in range(first, last)], ordered=False)
    return max(0, documents - DEMO_ORDERS)


def _demo_data(docdb: MongoClient) -> None:
    orders = docdb.shop.orders
    if orders.estimated_document_count() == 0:
        orders.insert_many([demo_document(i) for i in range(1, DEMO_ORDERS + 1)])
    customers = docdb.shop.customers
    customers.create_index("email", unique=True)
    if customers.estimated_document_count() == 0:
        customers.insert_many(
            [{"_id": i, "email": f"customer{i}@example.com", "name": f"Customer {i}"} for i in range(1, 21)]
        )
    items = docdb.inventory.items
    if items.estimated_document_count() == 0:
        items.insert_many([{"_id": f"sku-{i:04d}", "stock": i * 3} for i in range(1, 31)])
