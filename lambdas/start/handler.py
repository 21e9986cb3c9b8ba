"""Lambda "start replication": the microservices' user gets read-write roles (its prior roles are
saved), change streams are enabled, T0 goes to ``state/start.json`` (``backover.lifecycle.start``)."""

from __future__ import annotations

from typing import Any

from backover.lifecycle.lambda_entry import invoke
from backover.lifecycle.start import start


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return invoke(start, event)
