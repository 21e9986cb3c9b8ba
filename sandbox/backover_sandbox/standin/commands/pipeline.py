"""The few aggregation stages the stand-in runs over stored documents.

pymongo's ``count_documents`` sends ``$match``, ``$skip``, ``$limit`` and ``$group`` with
``$sum: 1``; verification and tests use ``$match``, ``$sort``, ``$project``, ``$count``. Any other
MongoDB stage, and what a run stage can say that the stand-in does not run (expressions, field
paths in ``$group``, accumulators other than ``$sum``), is refused: a stage with 40324 as mongod
answers a stage it does not know (with " (not implemented by the Back Over stand-in)"), a part of
a stage with 40415 naming it. ``$sort`` has MongoDB's sort semantics (arrays by their smallest
element ascending, largest descending; ``[]`` right after MinKey).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bson.int64 import Int64

from backover.bsonvalues import decode, encode
from backover.mongo import errors
from backover.mongo.ordering import is_number
from backover.mongo.query import compile_filter

from ..readopts import compile_document_projection, parse_sort, sort_items
from ..stages import MONGODB_STAGES, not_implemented_stage, unrecognized_stage
from ..unsupported import unknown_field_error

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def run_pipeline(raw_docs: list[bytes], pipeline: list[Mapping[str, Any]], ctx: Any = None) -> list[bytes]:
    """Run ``pipeline`` over raw documents and return raw result documents (``ctx``, the command
    context, is kept for flavour-dependent refusals)."""
    docs: list[Any] = list(raw_docs)
    for stage in pipeline:
        if not isinstance(stage, Mapping) or len(stage) != 1:
            raise errors.location(
                errors.PIPELINE_STAGE_NOT_ONE_FIELD,
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
            raise errors.location(errors.LIMIT_NOT_POSITIVE, "the limit must be positive")
        return docs[:n]
    if name == "$sort":
        return _sort(arg, docs)
    if name == "$count":
        if not isinstance(arg, str) or not arg or arg.startswith("$") or "." in arg:
            raise errors.location(errors.COUNT_FIELD_INVALID, "the count field must be a non-empty string")
        return [{arg: len(docs)}] if docs else []
    if name == "$group":
        return _group(arg, docs)
    if name == "$project":
        return _project(arg, docs)
    if name in ("$changeStream", "$listChangeStreams"):
        raise errors.location(
            errors.STAGE_ONLY_FIRST, f"{name} is only valid as the first stage in a pipeline"
        )
    if name in MONGODB_STAGES:
        raise not_implemented_stage(name)
    raise unrecognized_stage(name)


def _plain(doc: Any) -> dict[str, Any]:
    return decode(doc) if isinstance(doc, bytes) else doc


def _non_negative(name: str, arg: Any) -> int:
    if not isinstance(arg, int) or isinstance(arg, bool) or arg < 0:
        raise errors.bad_value(f"invalid argument to {name} stage: must be a non-negative integer")
    return int(arg)


def _sort(spec: Any, docs: list[Any]) -> list[Any]:
    if not isinstance(spec, Mapping) or not spec:
        raise errors.location(errors.SORT_STAGE_WITHOUT_KEY, "$sort stage must have at least one sort key")
    return sort_items(docs, parse_sort(spec, "aggregate"), _plain, "aggregate")


def _is_constant(value: Any) -> bool:
    """Whether an aggregation expression is a constant the stand-in takes as it is: a scalar other
    than a ``$`` string (a field path or a variable), or an array of such; a document is an
    expression the stand-in does not evaluate."""
    if isinstance(value, str):
        return not value.startswith("$")
    if isinstance(value, list):
        return all(_is_constant(item) for item in value)
    return not isinstance(value, Mapping)


def _group(spec: Any, docs: list[Any]) -> list[dict[str, Any]]:
    """``$group`` by a constant (or null) ``_id`` with ``$sum`` of a constant, checked as mongod's
    AccumulationStatement parses each field (40234-40238)."""
    if not isinstance(spec, Mapping) or "_id" not in spec:
        raise errors.location(errors.GROUP_WITHOUT_ID, "a group specification must include an _id")
    group_id = spec["_id"]
    if not _is_constant(group_id):
        raise unknown_field_error("aggregate", "pipeline.$group", detail="a group _id other than a constant")
    out: dict[str, Any] = {"_id": group_id}
    for field, acc in spec.items():
        if field == "_id":
            continue
        if not isinstance(acc, Mapping) or not acc or not next(iter(acc)).startswith("$"):
            raise errors.location(
                errors.GROUP_FIELD_NOT_ACCUMULATOR, f"The field '{field}' must be an accumulator object"
            )
        if "." in field:
            raise errors.location(errors.GROUP_FIELD_DOTTED, f"The field name '{field}' cannot contain '.'")
        if field.startswith("$"):
            raise errors.location(
                errors.GROUP_FIELD_OPERATOR_NAME, f"The field name '{field}' cannot be an operator name"
            )
        if len(acc) != 1:
            raise errors.location(
                errors.GROUP_FIELD_ONE_ACCUMULATOR, f"The field '{field}' must specify one accumulator"
            )
        name, operand = next(iter(acc.items()))
        if isinstance(operand, list):
            raise errors.location(
                errors.GROUP_ACCUMULATOR_UNARY, f"The {name} accumulator is a unary operator"
            )
        if name != "$sum":
            raise unknown_field_error(
                "aggregate", "pipeline.$group", detail=f"accumulator of {field!r} ($sum only)"
            )
        out[field] = _constant_sum(field, operand, len(docs))
    return [out] if docs else []


def _constant_sum(field: str, operand: Any, count: int) -> Any:
    """``$sum`` of a constant over ``count`` documents as mongod's AccumulatorSum makes it: a value
    that is not a number adds nothing (the int 0); an int sum is an int, or a long past 32 bits; a
    long sum a long. Field paths and expressions (whose sums need mongod's double-double and
    decimal arithmetic), double and decimal constants, and a long sum past 64 bits are refused."""
    if isinstance(operand, bool) or not is_number(operand):
        if _is_constant(operand):
            return 0
        raise unknown_field_error("aggregate", "pipeline.$group", detail=f"$sum of {operand!r} in {field!r}")
    if isinstance(operand, Int64):
        total: int = int(operand) * count
        if INT64_MIN <= total <= INT64_MAX:
            return Int64(total)
    elif isinstance(operand, int):
        total = operand * count
        if INT64_MIN <= total <= INT64_MAX:
            return total  # encoded as an int when it fits 32 bits, else as a long
    raise unknown_field_error("aggregate", "pipeline.$group", detail=f"$sum of {operand!r} in {field!r}")


def _project(spec: Any, docs: list[Any]) -> list[Any]:
    if not isinstance(spec, Mapping) or not spec:
        raise errors.location(errors.PROJECT_WITHOUT_FIELDS, "$project requires at least one output field")
    project = compile_document_projection(spec, "aggregate", "pipeline.$project")
    assert project is not None
    return [project(_plain(d)) for d in docs]
