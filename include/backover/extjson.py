"""JSON state files hold BSON values as canonical MongoDB Extended JSON.

``{"t0": {"$timestamp": {"t": 1764270000, "i": 3}}}``: cluster times, resume tokens and Int64
counters survive the round trip with their exact types.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

from bson import json_util
from bson.json_util import CANONICAL_JSON_OPTIONS

#: Dates come back timezone-aware (UTC), so ages can be computed without guessing.
OPTIONS = CANONICAL_JSON_OPTIONS.with_options(tz_aware=True, tzinfo=UTC)


def dumps(doc: Any) -> str:
    return json_util.dumps(doc, json_options=OPTIONS, indent=2, sort_keys=False)


def loads(text: str | bytes) -> Any:
    return json_util.loads(text, json_options=OPTIONS)


def is_int(value: Any) -> bool:
    """An integer read from a JSON file (``true``/``false`` are not: bool is an int in Python)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_count(value: Any) -> bool:
    """A non-negative integer read from a JSON file (a count, a size, a sequence number)."""
    return is_int(value) and value >= 0
