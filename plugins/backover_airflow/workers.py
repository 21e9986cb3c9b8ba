"""Which EC2 instances are the environment's workers, and which worker copies which partition.

One worker by default: the Variable's ``worker_instance_id``. With the Variable's ``worker_tag``
(``{"Key": "backover-worker", "Value": "prod"}``), every instance carrying that tag and not
terminated is a worker too; ``worker_instance_id`` stays the first one (the replicator, the
restore, the backups, verify and the sync's plan run there), the others follow in instance-id
order, so every task of a run sees the same list. Looked up when a task runs, never at parse time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from backover_airflow.config import BackoverConfig, ConfigError

#: The instance states a worker can be in (a terminated instance is gone for good).
LIVE_STATES = ("pending", "running", "stopping", "stopped")


def worker_ids(config: BackoverConfig, ec2: Any) -> list[str]:
    """The environment's workers, the first one first (``ec2``: a boto3 EC2 client)."""
    if config.worker_tag is None:
        return [config.worker_instance_id]
    tag = config.worker_tag
    found: set[str] = set()
    for page in ec2.get_paginator("describe_instances").paginate(
        Filters=[
            {"Name": f"tag:{tag['Key']}", "Values": [tag["Value"]]},
            {"Name": "instance-state-name", "Values": list(LIVE_STATES)},
        ]
    ):
        for reservation in page.get("Reservations", []):
            found.update(instance["InstanceId"] for instance in reservation.get("Instances", []))
    found.discard(config.worker_instance_id)
    return [config.worker_instance_id, *sorted(found)]


def spread(
    partitions: Sequence[str], workers: Sequence[str], options: Mapping[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Partitions over the workers round-robin, as a mapped task's arguments: one
    ``{"options": {**options, "partition": ID}, "worker": INSTANCE}`` per partition, in plan order."""
    if not workers:
        raise ConfigError("no worker to run the partitions on")
    return [
        {"options": {**(options or {}), "partition": partition}, "worker": workers[i % len(workers)]}
        for i, partition in enumerate(partitions)
    ]
