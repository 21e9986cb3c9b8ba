"""The few aggregation stages the stand-in runs over stored documents.

pymongo's ``count_documents`` sends ``$match``, ``$skip``, ``$limit`` and ``$group`` with
``$sum: 1``; verification and tests use ``$match``, ``$sort``, ``$project``, ``$count``. Any other
MongoDB stage answers code 2 BadValue naming it; a name MongoDB does not know answers 40324.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from backover.bsonvalues import decode, encode
from backover.mongo import errors
from backover.mongo.ordering import sort_key
from backover.mongo.query import compile_filter

#: Stages real MongoDB has that the stand-in does not run (answered with BadValue, not 40324).
KNOWN_UNSUPPORTED = {
    "$addFields",
    "$bucket",
    "$bucketAuto",
    "$collStats",
    "$densify",
    "$facet",
    "$fill",
    "$geoNear",
    "$graphLookup",
    "$indexStats",
    "$lookup",
    "$merge",
    "$out",
    "$redact",
    "$replaceRoot",
    "$replaceWith",
    "$sample",
    "$search",
    "$set",
    "$setWindowFields",
    "$sortByCount",
    "$unionWith",
    "$unset",
    "$unwind",
    "$currentOp",
    "$listSessions",
    "$planCacheStats",
    "$documents",
}


def run_pipeline(raw_docs: list[bytes], pipeline: list[Mapping[str, Any]]) -> list[bytes]:
    """Run ``pipeline`` over raw documents and return raw result documents."""
    docs: list[Any] = list(raw_docs)
    for stage in pipeline:
        if not isinstance(stage, Mapping) or len(stage) != 1:
            raise errors.CommandError(
                40323,
                "Location40323",
                "A pipeline stage specification object must contain exactly one field.",
            )
        name, arg = next(iter(stage.items()))
        docs = _run_stage(name, arg, docs)
    return [d if isinstance(d, bytes) else encode(d) for d in docs]


def _run_stage(name: str, arg: Any, docs: list[Any]) -> list[Any]:
    if name == "$match":
        match = compile_filter(arg)
        return [d for d in docs if match(_plain(d))]
    if name == "$skip":
        return docs[_non_negative(name, arg) :]
    if name == "$limit":
        n = _non_negative(name, arg)
        if n == 0:
            raise errors.CommandError(15958, "Location15958", "the limit must be positive")
        return docs[:n]
    if name == "$sort":
        return _sort(arg, docs)
    if name == "$count":
        if not isinstance(arg, str) or not arg or arg.startswith("$") or "." in arg:
            raise errors.CommandError(40156, "Location40156", "the count field must be a non-empty string")
        return [{arg: len(docs)}] if docs else []
    if name == "$group":
        return _group(arg, docs)
    if name == "$project":
        return [_project(_plain(d), arg) for d in docs]
    if name in ("$changeStream", "$listChangeStreams"):
        raise errors.CommandError(
            40602, "Location40602", f"{name} is only valid as the first stage in a pipeline"
        )
    if name in KNOWN_UNSUPPORTED:
        raise errors.bad_value(f"stage {name} is not supported by the Back Over stand-in")
    raise errors.CommandError(40324, "Location40324", f"Unrecognized pipeline stage name: '{name}'")


def _plain(doc: Any) -> dict[str, Any]:
    return decode(doc) if isinstance(doc, bytes) else doc


def _non_negative(name: str, arg: Any) -> int:
    if not isinstance(arg, int) or isinstance(arg, bool) or arg < 0:
        raise errors.bad_value(f"invalid argument to {name} stage: must be a non-negative integer")
    return int(arg)


def _sort(spec: Any, docs: list[Any]) -> list[Any]:
    if not isinstance(spec, Mapping) or not spec:
        raise errors.CommandError(15976, "Location15976", "$sort stage must have at least one sort key")
    decorated = [(_plain(d), d) for d in docs]
    for field, direction in reversed(list(spec.items())):
        if direction not in (1, -1):
            raise errors.bad_value(
                f"$sort key ordering must be 1 (for ascending) or -1 (for descending): {field}"
            )

        def key(item: tuple[Any, Any], f: str = field) -> Any:
            return sort_key(_path(item[0], f))

        decorated.sort(key=key, reverse=direction == -1)
    return [d for _, d in decorated]


def _path(doc: Any, path: str) -> Any:
    for part in path.split("."):
        doc = doc.get(part) if isinstance(doc, Mapping) else None
    return doc


def _group(spec: Any, docs: list[Any]) -> list[dict[str, Any]]:
    """``$group`` by a constant (or null) ``_id`` with ``$sum`` of a constant or a field."""
    if not isinstance(spec, Mapping) or "_id" not in spec:
        raise errors.CommandError(15955, "Location15955", "a group specification must include an _id")
    group_id = spec["_id"]
    if isinstance(group_id, str) and group_id.startswith("$") or isinstance(group_id, Mapping):
        raise errors.bad_value("$group by a field is not supported by the stand-in (constant _id only)")
    out: dict[str, Any] = {"_id": group_id}
    for field, acc in spec.items():
        if field == "_id":
            continue
        if not isinstance(acc, Mapping) or list(acc) != ["$sum"]:
            raise errors.bad_value(
                f"$group accumulator for {field!r} is not supported by the stand-in ($sum only)"
            )
        operand = acc["$sum"]
        if isinstance(operand, str) and operand.startswith("$"):
            values = [_path(_plain(d), operand[1:]) for d in docs]
            out[field] = sum(v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool))
        else:
            out[field] = operand * len(docs)
    return [out] if docs else []


def _project(doc: dict[str, Any], spec: Any) -> dict[str, Any]:
    if not isinstance(spec, Mapping) or not spec:
        raise errors.CommandError(51272, "Location51272", "$project requires at least one output field")
    spec = dict(spec)
    include_id = bool(spec.pop("_id", 1))
    if any(not isinstance(v, (int, bool)) or "." in k for k, v in spec.items()):
        raise errors.bad_value(
            "$project supports only top-level field inclusion or exclusion in the stand-in"
        )
    if spec and all(spec.values()):
        return {k: v for k, v in doc.items() if k in spec or (k == "_id" and include_id)}
    return {k: v for k, v in doc.items() if k not in spec and (k != "_id" or include_id)}
