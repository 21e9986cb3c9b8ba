"""The runner's Lambda function registry: which handler runs for a function name, and how.

A registry file is JSON::

    {
      "functions": {
        "backover-start": {
          "handler": "lambdas/start/handler.py:handler",
          "environment": {"BACKOVER_MODE": "sandbox"},
          "timeout": 60,
          "working_dir": ".",
          "memory_size": 256
        }
      }
    }

``handler`` is ``path/to/file.py:function`` (a file, relative to ``working_dir``), a dotted
``package.module:function``, or AWS's own ``module.function`` form. Only ``handler`` is required;
``timeout`` defaults to 3 seconds and ``memory_size`` to 128 MB as in AWS, ``environment`` to
nothing. A relative ``working_dir`` is taken from the registry file's folder (the runner's work
directory for functions registered through the admin endpoint), and defaults to that folder.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FUNCTION_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
DEFAULT_TIMEOUT = 3
MAX_TIMEOUT = 900
DEFAULT_MEMORY = 128
_KNOWN_KEYS = {"handler", "environment", "timeout", "working_dir", "memory_size"}


class RegistryError(ValueError):
    """A function definition (from the registry file or the admin endpoint) is invalid."""


@dataclass(frozen=True)
class FunctionSpec:
    """How to run one Lambda function locally."""

    name: str
    handler: str
    working_dir: Path
    environment: dict[str, str] = field(default_factory=dict)
    timeout: int = DEFAULT_TIMEOUT
    memory_size: int = DEFAULT_MEMORY

    def describe(self) -> dict[str, Any]:
        """Return the spec for the admin API, without environment values (they may be secrets)."""
        return {
            "name": self.name,
            "handler": self.handler,
            "working_dir": str(self.working_dir),
            "environment_keys": sorted(self.environment),
            "timeout": self.timeout,
            "memory_size": self.memory_size,
        }


def parse_function(name: str, raw: Any, base_dir: Path) -> FunctionSpec:
    """Build a :class:`FunctionSpec` from one JSON definition.

    :raises RegistryError: if the name or any field is invalid.
    """
    if not FUNCTION_NAME.match(name):
        raise RegistryError(f"invalid function name {name!r}: use 1-64 letters, digits, '-' or '_'")
    if not isinstance(raw, dict):
        raise RegistryError(f"function {name!r}: definition must be a JSON object")
    unknown = set(raw) - _KNOWN_KEYS
    if unknown:
        raise RegistryError(f"function {name!r}: unknown keys {sorted(unknown)}")
    handler = raw.get("handler")
    if not isinstance(handler, str) or not handler.strip():
        raise RegistryError(f"function {name!r}: 'handler' must be a non-empty string")
    environment = raw.get("environment", {})
    if not isinstance(environment, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in environment.items()
    ):
        raise RegistryError(f"function {name!r}: 'environment' must map strings to strings")
    timeout = raw.get("timeout", DEFAULT_TIMEOUT)
    if not isinstance(timeout, int) or isinstance(timeout, bool) or not 1 <= timeout <= MAX_TIMEOUT:
        raise RegistryError(f"function {name!r}: 'timeout' must be an integer from 1 to {MAX_TIMEOUT}")
    memory = raw.get("memory_size", DEFAULT_MEMORY)
    if not isinstance(memory, int) or isinstance(memory, bool) or memory < 1:
        raise RegistryError(f"function {name!r}: 'memory_size' must be a positive integer")
    working_dir = raw.get("working_dir", ".")
    if not isinstance(working_dir, str):
        raise RegistryError(f"function {name!r}: 'working_dir' must be a string")
    return FunctionSpec(
        name=name,
        handler=handler.strip(),
        working_dir=(base_dir / working_dir).resolve(),
        environment=dict(environment),
        timeout=timeout,
        memory_size=memory,
    )


class FunctionRegistry:
    """Thread-safe map of function name to :class:`FunctionSpec`."""

    def __init__(self, base_dir: Path) -> None:
        self.base_dir = base_dir
        self._lock = threading.Lock()
        self._functions: dict[str, FunctionSpec] = {}

    def load_file(self, path: Path) -> int:
        """Add every function of the registry file at ``path``; return how many.

        :raises RegistryError: if the file is not a valid registry.
        :raises OSError: if it cannot be read.
        """
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise RegistryError(f"{path}: not valid JSON: {exc}") from exc
        functions = document.get("functions") if isinstance(document, dict) else None
        if not isinstance(functions, dict):
            raise RegistryError(f"{path}: expected an object with a 'functions' object")
        specs = [parse_function(name, raw, path.parent.resolve()) for name, raw in functions.items()]
        with self._lock:
            for spec in specs:
                self._functions[spec.name] = spec
        return len(specs)

    def put(self, name: str, raw: Any) -> FunctionSpec:
        """Register (or replace) function ``name`` from a JSON definition.

        :raises RegistryError: if the definition is invalid.
        """
        spec = parse_function(name, raw, self.base_dir)
        with self._lock:
            self._functions[name] = spec
        return spec

    def delete(self, name: str) -> bool:
        """Forget function ``name``; return whether it existed."""
        with self._lock:
            return self._functions.pop(name, None) is not None

    def get(self, name: str) -> FunctionSpec | None:
        """Return the spec of ``name``, or None."""
        with self._lock:
            return self._functions.get(name)

    def all(self) -> list[FunctionSpec]:
        """Return every registered function, sorted by name."""
        with self._lock:
            return [self._functions[name] for name in sorted(self._functions)]
