"""The runner's own boto3 clients of the AWS services it stands on (moto in the sandbox): one per
service and region, made on first use, with short timeouts and few retries."""

from __future__ import annotations

import os
import threading
from typing import Any

import boto3
from botocore.config import Config


class RegionalClients:
    """``service`` clients at ``endpoint_url``, one per region (thread-safe)."""

    def __init__(self, service: str, endpoint_url: str | None) -> None:
        self.service = service
        self.endpoint_url = endpoint_url
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    def client(self, region: str) -> Any:
        with self._lock:
            client = self._clients.get(region)
            if client is None:
                client = boto3.session.Session().client(
                    self.service,
                    endpoint_url=self.endpoint_url,
                    region_name=region,
                    aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
                    aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
                    config=Config(
                        retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=5, read_timeout=10
                    ),
                )
                self._clients[region] = client
            return client
