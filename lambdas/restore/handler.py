"""Lambda "restore replication": the microservices' user becomes read-only (proven), F goes to
``state/freeze.json`` and the drain request to ``control/drain.json`` (``backover.lifecycle.freeze``)."""

from __future__ import annotations

from typing import Any

from backover.lifecycle.freeze import freeze
from backover.lifecycle.lambda_entry import invoke


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return invoke(freeze, event)
