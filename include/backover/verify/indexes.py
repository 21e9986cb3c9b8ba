"""Index specifications of both sides, compared by name after dropping what only describes the
server (``v``, ``ns``). Key order matters: ``{a: 1, b: 1}`` is not ``{b: 1, a: 1}``."""

from __future__ import annotations

from typing import Any

from bson.raw_bson import RawBSONDocument
from pymongo.collection import Collection

IGNORED = frozenset({"v", "ns"})


def normalize(spec: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in spec.items() if k not in IGNORED}
    if "key" in out:
        out["key"] = [[field, direction] for field, direction in dict(out["key"]).items()]
    return out


def index_specs(collection: Collection[RawBSONDocument]) -> dict[str, dict[str, Any]]:
    return {spec["name"]: normalize(dict(spec)) for spec in collection.list_indexes()}


def differences(source: dict[str, dict[str, Any]], target: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per index name that is missing on a side or specified differently."""
    return [
        {"name": name, "source": source.get(name), "target": target.get(name)}
        for name in sorted(source.keys() | target.keys())
        if source.get(name) != target.get(name)
    ]
