"""A Lambda handler the sandbox registers as ``backover-sandbox-probe``: proves Invoke works."""

from __future__ import annotations

import platform
from typing import Any


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {
        "ok": True,
        "echo": event,
        "function": getattr(context, "function_name", None),
        "python": platform.python_version(),
    }
