"""Checks, against EC2 (moto in the sandbox), that SSM may send a command to an instance.

SSM only reaches a *running* managed instance. The runner treats every running EC2 instance as
managed; an unknown, stopped or terminated instance makes ``SendCommand`` fail with
``InvalidInstanceId`` and SSM's message ``Instances [[i-...]] not in a valid state for account ...``.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from .aws_clients import RegionalClients
from .protocol import AwsError

log = logging.getLogger(__name__)

INSTANCE_ID = re.compile(r"^(i-(\w{8}|\w{17})|mi-\w{17})$")
_NOT_FOUND = {"InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed"}


def invalid_instances(instance_ids: list[str], account_id: str) -> AwsError:
    """Return SSM's ``InvalidInstanceId`` error for ``instance_ids``."""
    listed = ", ".join(f"[{instance_id}]" for instance_id in instance_ids)
    return AwsError(
        "InvalidInstanceId", f"Instances [{listed}] not in a valid state for account {account_id}"
    )


class InstanceChecker:
    """Looks instances up with ``DescribeInstances`` at ``endpoint_url`` (None: check format only)."""

    def __init__(self, endpoint_url: str | None, account_id: str) -> None:
        self.endpoint_url = endpoint_url
        self.account_id = account_id
        self._clients = RegionalClients("ec2", endpoint_url)

    def _client(self, region: str) -> Any:
        return self._clients.client(region)

    def check(self, instance_ids: list[str], region: str) -> None:
        """Accept ``instance_ids`` only if each is a running EC2 instance in ``region``.

        :raises AwsError: ``InvalidInstanceId`` for a malformed, unknown or not-running instance;
            ``InternalServerError`` if EC2 cannot be asked.
        """
        malformed = [instance_id for instance_id in instance_ids if not INSTANCE_ID.match(instance_id)]
        if malformed:
            raise invalid_instances(malformed, self.account_id)
        if self.endpoint_url is None:
            return
        states: dict[str, str] = {}
        owner = self.account_id
        for instance_id in instance_ids:
            try:
                reply = self._client(region).describe_instances(InstanceIds=[instance_id])
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in _NOT_FOUND:
                    continue
                log.warning("EC2 DescribeInstances failed: %s", exc)
                raise AwsError("InternalServerError", f"cannot check instances with EC2: {exc}", 500) from exc
            except BotoCoreError as exc:
                log.warning("EC2 DescribeInstances failed: %s", exc)
                raise AwsError("InternalServerError", f"cannot check instances with EC2: {exc}", 500) from exc
            for reservation in reply.get("Reservations", []):
                owner = reservation.get("OwnerId", owner)
                for instance in reservation.get("Instances", []):
                    states[instance["InstanceId"]] = instance.get("State", {}).get("Name", "")
        bad = [instance_id for instance_id in instance_ids if states.get(instance_id) != "running"]
        if bad:
            raise invalid_instances(bad, owner)
