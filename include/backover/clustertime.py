"""Cluster times (BSON Timestamps) as the command line writes them: ``<seconds>:<increment>``."""

from __future__ import annotations

from bson.timestamp import Timestamp

from .errors import UsageError


def parse(text: str) -> Timestamp:
    """``"1764270000:3"`` -> ``Timestamp(1764270000, 3)``; anything else is a UsageError."""
    seconds, sep, increment = text.partition(":")
    try:
        if not sep:
            raise ValueError(text)
        return Timestamp(int(seconds), int(increment))
    except (ValueError, TypeError, OverflowError) as e:
        raise UsageError(
            f"not a cluster time {text!r}: write it <seconds>:<increment>, e.g. 1764270000:3"
        ) from e


def format(ts: Timestamp) -> str:
    return f"{ts.time}:{ts.inc}"
