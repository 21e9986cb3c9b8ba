"""Lambda "clean replication": the change streams that start enabled are disabled, and only those;
``state/clean.json`` records it (``backover.lifecycle.clean``)."""

from __future__ import annotations

from typing import Any

from backover.lifecycle.clean import clean
from backover.lifecycle.lambda_entry import invoke


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return invoke(clean, event)
