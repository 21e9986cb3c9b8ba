"""Update documents applied in memory, the way mongod applies them.

* :func:`apply_update` runs an operator update (``$set``, ``$inc``, ``$push`` ...) and returns a new
  document; the input is never mutated. :func:`apply_update_result` also says whether mongod
  counts the update as a modification (``nModified``, an oplog entry, a change event).
* :func:`check_update` validates an operator update without a document, as mongod parses an
  update before it looks for documents.
* :func:`apply_replacement` runs a replacement update (``_id`` kept, first).
* :func:`upsert_seed` builds the document an upsert starts from out of the filter's equalities.
* :func:`update_description` computes a change event's ``updateDescription`` from before/after.

Like mongod (5.0+), all the paths of one update are applied in path order, whatever operator
they belong to: string field names in binary order, numeric field names in numeric order. Existing
fields keep their place and new fields are appended, so new fields appear in that order.

Not supported (rejected with code 2 BadValue): the positional operators ``$``, ``$[]`` and
``$[<identifier>]`` (and therefore ``arrayFilters``), ``$bit``, and pipeline-style updates.
"""

from __future__ import annotations

import datetime
import decimal
import functools
import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, overload

from bson.decimal128 import Decimal128, create_decimal128_context
from bson.int64 import Int64
from bson.objectid import ObjectId
from bson.regex import Regex
from bson.timestamp import Timestamp

from ..bsonvalues import canonical_key, encode
from .errors import CommandError, bad_value, failed_to_parse, immutable_field, type_mismatch
from .ordering import NUMBER, as_decimal, bracket, compare, is_number, type_name
from .query import (
    MISSING,
    ValuePredicate,
    compile_filter,
    compile_value_predicate,
    is_operator_document,
    path_values,
    plain_spec,
)

_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_MAX_BACKFILL = 1_500_000
_DECIMAL_CONTEXT = create_decimal128_context()
_TIMESTAMP_INCREMENTS = itertools.count(1)

#: Real MongoDB update modifiers the stand-in does not implement.
UNSUPPORTED_MODIFIERS = frozenset({"$bit"})

_DELETE: Any = object()  # an operator's verdict: remove the field
_KEEP: Any = object()  # an operator's verdict: leave the value as it is

Verdict = Callable[[Any], Any]  # current value (or MISSING) -> new value, _DELETE or _KEEP


def path_not_viable(message: str) -> CommandError:
    """Code 28: the path cannot exist in this document (a field inside a number, say)."""
    return CommandError(28, "PathNotViable", message)


def conflicting_update(path: str, at: str) -> CommandError:
    """Code 40: two paths of one update overlap."""
    return CommandError(
        40, "ConflictingUpdateOperators", f"Updating the path '{path}' would create a conflict at '{at}'"
    )


@dataclass(frozen=True, slots=True)
class _Op:
    """One modification at one path."""

    parts: tuple[str, ...]
    path: str
    verdict: Verdict
    creates: bool  # whether a missing path is created (``$set``) or the op is a no-op (``$unset``)
    no_arrays: bool = False  # ``$rename`` may not go through arrays
    #: Whether a new value binary-equal to the current one is a no-op (mongod's $set, $inc ...);
    #: False where mongod counts the write all the same ($currentDate; $push decides itself).
    same_is_noop: bool = True


@dataclass(frozen=True, slots=True)
class AppliedUpdate:
    """The outcome of an operator update on one document.

    ``modified`` is mongod's verdict: False when every operator was a no-op (nothing logged,
    ``nModified`` 0), True otherwise, even when the new document has the same bytes (a ``$push``
    whose ``$slice`` drops what it added, ``$currentDate`` within the same millisecond).
    ``logged`` holds the path of every operator that was not a no-op, for
    :func:`update_description`.
    """

    document: dict[str, Any]
    modified: bool
    logged: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Context:
    """What operator builders may need besides their own argument."""

    doc: Mapping[str, Any]
    inserting: bool
    now: datetime.datetime


# ------------------------------------------------------------------------------------------ public


def is_replacement(update: Mapping[str, Any]) -> bool:
    """True for a replacement document (no ``$`` keys, or empty), False for an operator update.

    A mix of both raises FailedToParse (code 9).
    """
    names = list(update)
    dollars = [name.startswith("$") for name in names]
    if all(dollars) and names:
        return False
    if not any(dollars):
        return True
    if dollars[0]:
        plain = names[dollars.index(False)]
        raise failed_to_parse(
            f"Unknown modifier: {plain}. Expected a valid update modifier or pipeline-style update "
            "specified as an array"
        )
    dollar = names[dollars.index(True)]
    raise failed_to_parse(
        f"The dollar ($) prefixed field '{dollar}' in '{dollar}' is not allowed in the context of "
        "an update's replacement document. Consider using an aggregation pipeline with $replaceWith."
    )


def apply_update(
    doc: Mapping[str, Any],
    update: Mapping[str, Any],
    *,
    inserting: bool,
    array_filters: list[Any] | None = None,
    now: datetime.datetime | None = None,
) -> dict[str, Any]:
    """Apply an operator update to ``doc`` and return the new document (``doc`` is not touched).

    ``inserting`` is True when the update runs on an upsert's seed document (``$setOnInsert``
    applies only then). ``now`` is the time ``$currentDate`` writes (default: the current time).
    Positional paths (``a.$``, ``a.$[]``, ``a.$[x]``) and ``array_filters`` are not supported and
    raise BadValue (code 2).
    """
    return apply_update_result(
        doc, update, inserting=inserting, array_filters=array_filters, now=now
    ).document


def apply_update_result(
    doc: Mapping[str, Any],
    update: Mapping[str, Any],
    *,
    inserting: bool,
    array_filters: list[Any] | None = None,
    now: datetime.datetime | None = None,
) -> AppliedUpdate:
    """:func:`apply_update`, also telling whether mongod counts it as a modification.

    mongod decides per operator, not by comparing documents: ``$set`` of a binary-equal value,
    ``$inc`` by 0, ``$addToSet`` of present values, a ``$pull`` that removes nothing are no-ops;
    ``$currentDate`` never is; ``$push`` is a no-op only without values, without ``$sort`` and
    with a ``$slice`` that keeps the whole array (mongod's push_node.cpp).
    """
    if array_filters:
        raise bad_value("arrayFilters are not supported by the stand-in (positional updates are not)")
    spec = plain_spec(update)
    if is_replacement(spec):
        raise bad_value("apply_update needs an operator update; use apply_replacement for a replacement")
    source = doc if isinstance(doc, dict) else plain_spec(doc)
    context = _Context(source, inserting, _utc_naive(now) if now is not None else _utc_now())
    ops = _plan(spec, context)
    ops.sort(key=lambda op: _PathKey(op.parts))
    result: dict[str, Any] = plain_spec(source)  # a deep copy of every dict and list
    logged = tuple(op.path for op in ops if _apply_op(result, op))
    _check_id_kept(source, result, ops)
    if inserting and "_id" in result and next(iter(result)) != "_id":
        result = {"_id": result["_id"], **{key: value for key, value in result.items() if key != "_id"}}
    return AppliedUpdate(result, bool(logged), logged)


def check_update(update: Mapping[str, Any]) -> None:
    """Validate an operator update as mongod parses it, before any document is read: unknown or
    misplaced modifiers (9), arguments of the wrong type (2, 9, 14), empty or conflicting paths
    (56, 40), unsupported positional paths. Raises :class:`CommandError`; returns None when the
    update would be accepted."""
    spec = plain_spec(update)
    if is_replacement(spec):
        return
    _plan(spec, _Context({}, True, _utc_now()))


def apply_replacement(old_id: Any, replacement: Mapping[str, Any]) -> dict[str, Any]:
    """The document a replacement update produces: ``_id`` first, then the replacement's fields.

    ``_id`` comes from the old document; a replacement carrying a different ``_id`` (even one of
    another numeric type) raises ImmutableField (code 66).
    """
    spec = plain_spec(replacement)
    if "_id" in spec and not _same_bson(spec["_id"], old_id):
        raise immutable_field(
            "After applying the update, the (immutable) field '_id' was found to have been "
            f"altered to _id: {format_value(spec['_id'])}"
        )
    result: dict[str, Any] = {"_id": clone(old_id)}
    for key, value in spec.items():
        if key != "_id":
            result[key] = clone(value)
    return result


def upsert_seed(filter: Mapping[str, Any]) -> dict[str, Any]:
    """The document an upsert starts from: the equality conditions of ``filter``.

    Plain ``field: value`` entries and ``$eq`` become fields (dotted paths become sub-documents),
    also inside ``$and`` and a single-clause ``$or``; ``_id`` comes first, the other fields in path
    order (as mongod builds them). A path matched twice raises NotSingleValueField (code 54).
    """
    equalities: list[tuple[str, Any]] = []
    _collect_equalities(plain_spec(filter), equalities)
    _check_single_values(equalities)
    equalities.sort(key=lambda item: (item[0].split(".")[0] != "_id", item[0].encode("utf-8")))
    seed: dict[str, Any] = {}
    for path, value in equalities:
        container, key = _locate(seed, tuple(path.split(".")), path, create=True)
        _store(container, key, clone(value))
    return seed


def update_description(
    before: Mapping[str, Any], after: Mapping[str, Any], logged: tuple[str, ...] = ()
) -> dict[str, Any]:
    """The change-stream ``updateDescription`` of an update that turned ``before`` into ``after``.

    Computed as mongod diffs documents: changed sub-document fields as dotted paths, array
    elements as ``"arr.3"``, a shrunk array as a ``truncatedArrays`` entry, and a whole new value
    where the type changed. A sub-document whose new fields ``$set`` could not recreate in the
    same order (fields moved, or added out of path order) is reported whole, so that replaying
    the description with ``$set``/``$unset`` rebuilds ``after`` exactly. Otherwise sub-diffs are
    always used (mongod may log a whole sub-document instead when that is smaller).

    ``logged`` (:attr:`AppliedUpdate.logged`) names the paths an operator rewrote: one whose value
    ended up as it was (a ``$push`` whose ``$slice`` drops what it added) is reported in
    ``updatedFields`` with that value, as mongod logs it.
    """
    description: dict[str, Any] = {"updatedFields": {}, "removedFields": [], "truncatedArrays": []}
    _diff_documents(before, after, "", description)
    for path in logged:
        if not _described(description, path):
            located = _locate(after, tuple(path.split(".")), path, create=False)
            value = MISSING if located is None else _load(*located)
            if value is not MISSING:
                description["updatedFields"][path] = clone(value)
    return description


def _described(description: Mapping[str, Any], path: str) -> bool:
    """Whether ``description`` already reports a change at, above or below ``path``."""
    changed = [*description["updatedFields"], *description["removedFields"]]
    changed += [entry["field"] for entry in description["truncatedArrays"]]
    return any(
        other == path or other.startswith(path + ".") or path.startswith(other + ".") for other in changed
    )


def clone(value: Any) -> Any:
    """A copy of ``value`` sharing no dict or list with it (BSON scalars are immutable)."""
    if isinstance(value, dict):
        return {key: clone(item) for key, item in value.items()}
    if isinstance(value, list):
        return [clone(item) for item in value]
    return value


def format_value(value: Any) -> str:
    """A value the way mongod prints it in error messages (``{ a: 1, b: "x" }``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}"'
    if isinstance(value, dict):
        if not value:
            return "{}"
        return "{ " + ", ".join(f"{key}: {format_value(item)}" for key, item in value.items()) + " }"
    if isinstance(value, list):
        if not value:
            return "[]"
        return "[ " + ", ".join(format_value(item) for item in value) + " ]"
    if isinstance(value, ObjectId):
        return f"ObjectId('{value}')"
    if isinstance(value, Decimal128):
        return f'NumberDecimal("{value}")'
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, int):
        return str(int(value))
    return repr(value)


# ------------------------------------------------------------------------------------------ plans


def _plan(spec: Mapping[str, Any], context: _Context) -> list[_Op]:
    """Validate every modifier and path, check for conflicts, and list the operations."""
    registry = _PathRegistry()
    ops: list[_Op] = []
    for modifier, fields in spec.items():
        builder = _BUILDERS.get(modifier)
        if builder is None:
            if modifier in UNSUPPORTED_MODIFIERS:
                raise bad_value(f"{modifier} is not supported by the stand-in")
            raise failed_to_parse(
                f"Unknown modifier: {modifier}. Expected a valid update modifier or pipeline-style "
                "update specified as an array"
            )
        if not isinstance(fields, Mapping):
            raise failed_to_parse(
                f"Modifiers operate on fields but we found type {type_name(fields)} instead. For "
                f"example: {{$mod: {{<field>: ...}}}} not {{{modifier}: {format_value(fields)}}}"
            )
        for path, arg in fields.items():
            parts = _parse_path(path)
            registry.add(path, parts)
            ops.extend(builder(parts, path, arg, context, registry))
    return ops


def _parse_path(path: str) -> tuple[str, ...]:
    if not path:
        raise CommandError(56, "EmptyFieldName", "An empty update path is not valid.")
    parts = tuple(path.split("."))
    for part in parts:
        if not part:
            raise CommandError(
                56,
                "EmptyFieldName",
                f"The update path '{path}' contains an empty field name, which is not allowed.",
            )
        if part == "$" or part.startswith("$["):
            raise bad_value(
                f"The positional operator '{part}' in the update path '{path}' is not supported by "
                "the stand-in"
            )
        if part.startswith("$"):
            raise CommandError(
                52,
                "DollarPrefixedFieldName",
                f"The dollar ($) prefixed field '{part}' in '{path}' is not valid for storage.",
            )
    return parts


class _PathRegistry:
    """The paths of one update so far; a path equal to or inside another is a conflict."""

    def __init__(self) -> None:
        self._paths: set[tuple[str, ...]] = set()
        self._prefixes: set[tuple[str, ...]] = set()

    def add(self, path: str, parts: tuple[str, ...]) -> None:
        for length in range(1, len(parts)):
            if parts[:length] in self._paths:
                raise conflicting_update(path, ".".join(parts[:length]))
        if parts in self._paths or parts in self._prefixes:
            raise conflicting_update(path, path)
        self._paths.add(parts)
        self._prefixes.update(parts[:length] for length in range(1, len(parts)))


def _compare_parts(left: str, right: str) -> int:
    if left.isdigit() and right.isdigit() and left.isascii() and right.isascii():
        return (int(left) > int(right)) - (int(left) < int(right)) or (left > right) - (left < right)
    return (left > right) - (left < right)


def _compare_paths(left: tuple[str, ...], right: tuple[str, ...]) -> int:
    for part_left, part_right in zip(left, right, strict=False):
        found = _compare_parts(part_left, part_right)
        if found:
            return found
    return len(left) - len(right)


_PathKey = functools.cmp_to_key(_compare_paths)


# ------------------------------------------------------------------------------------ application


@overload
def _locate(
    root: Mapping[str, Any],
    parts: tuple[str, ...],
    path: str,
    *,
    create: Literal[True],
    no_arrays: bool = False,
) -> tuple[Any, Any]: ...
@overload
def _locate(
    root: Mapping[str, Any], parts: tuple[str, ...], path: str, *, create: bool, no_arrays: bool = False
) -> tuple[Any, Any] | None: ...
def _locate(
    root: Mapping[str, Any],
    parts: tuple[str, ...],
    path: str,
    *,
    create: bool,
    no_arrays: bool = False,
) -> tuple[Any, Any] | None:
    """The container holding the last component of ``parts`` and the key in it, or None.

    With ``create``, missing documents on the way are created (an impossible path raises
    PathNotViable); without it, a path that cannot exist gives None.
    """
    current: Any = root
    for depth, part in enumerate(parts[:-1]):
        if no_arrays and isinstance(current, list):
            raise _rename_through_array(root, path, parts[depth - 1])
        child = _child(current, part)
        if child is MISSING:
            if not create:
                return None
            child = {}
            _store(current, _key_in(current, part, parts, depth), child)
        elif not isinstance(child, (dict, list)):
            if not create:
                return None
            raise path_not_viable(
                f"Cannot create field '{parts[depth + 1]}' in element {{{part}: {format_value(child)}}}"
            )
        current = child
    if no_arrays and isinstance(current, list):
        raise _rename_through_array(root, path, parts[-2])
    last = parts[-1]
    if isinstance(current, list) and _array_index(last) is None:
        if not create:
            return None
        parent = parts[-2] if len(parts) > 1 else ""
        raise path_not_viable(
            f"Cannot create field '{last}' in element {{{parent}: {format_value(current)}}}"
        )
    return current, _key_in(current, last, parts, len(parts) - 1)


def _rename_through_array(root: Mapping[str, Any], path: str, array_field: str) -> CommandError:
    """2 BadValue: a ``$rename`` target inside an array (mongod's rename_node)."""
    return bad_value(
        f"The destination field cannot be an array element, '{path}' in doc with {_id_text(root)} "
        f"has an array field called '{array_field}'"
    )


def _key_in(container: Any, part: str, parts: tuple[str, ...], depth: int) -> Any:
    if not isinstance(container, list):
        return part
    index = _array_index(part)
    if index is None:
        parent = parts[depth - 1] if depth else ""
        raise path_not_viable(
            f"Cannot create field '{part}' in element {{{parent}: {format_value(container)}}}"
        )
    return index


def _array_index(part: str) -> int | None:
    if part.isascii() and part.isdigit():
        return int(part)
    return None


def _child(container: Any, part: str) -> Any:
    if isinstance(container, dict):
        return container.get(part, MISSING)
    index = _array_index(part)
    if index is None or index >= len(container):
        return MISSING
    return container[index]


def _load(container: Any, key: Any) -> Any:
    if isinstance(container, dict):
        return container.get(key, MISSING)
    return container[key] if key < len(container) else MISSING


def _store(container: Any, key: Any, value: Any) -> None:
    if isinstance(container, dict):
        container[key] = value
        return
    if key >= len(container):
        if key >= _MAX_BACKFILL:
            raise bad_value(f"can't backfill array to larger than {_MAX_BACKFILL} elements")
        container.extend([None] * (key + 1 - len(container)))
    container[key] = value


def _remove(container: Any, key: Any) -> None:
    if isinstance(container, dict):
        container.pop(key, None)
    elif key < len(container):
        container[key] = None  # $unset of an array element leaves a null in its place


def _apply_op(root: dict[str, Any], op: _Op) -> bool:
    """Apply one operation; True unless mongod counts it as a no-op."""
    located = _locate(root, op.parts, op.path, create=op.creates, no_arrays=op.no_arrays)
    if located is None:
        return False
    container, key = located
    current = _load(container, key)
    if current is MISSING and not op.creates:
        return False
    outcome = op.verdict(current)
    if outcome is _DELETE:
        _remove(container, key)
        return True
    if outcome is _KEEP:
        return False
    _store(container, key, outcome)
    return current is MISSING or not op.same_is_noop or not _same(current, outcome)


def _check_id_kept(before: Mapping[str, Any], after: Mapping[str, Any], ops: list[_Op]) -> None:
    touching = [op.path for op in ops if op.parts[0] == "_id"]
    if not touching or "_id" not in before:
        return
    if "_id" not in after or not _same_bson(before["_id"], after["_id"]):
        raise immutable_field(
            f"Performing an update on the path '{touching[0]}' would modify the immutable field '_id'"
        )


def _same_bson(left: Any, right: Any) -> bool:
    """Binary equality, as mongod checks ``_id``: same types and same bytes."""
    return encode({"v": left}) == encode({"v": right})


def _utc_naive(moment: datetime.datetime) -> datetime.datetime:
    """A BSON date as decoded: naive UTC, millisecond precision."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(datetime.UTC).replace(tzinfo=None)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def _utc_now() -> datetime.datetime:
    now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


# ------------------------------------------------------------------------------------ arithmetic


def _number_kind(value: Any) -> str:
    if isinstance(value, Decimal128):
        return "decimal"
    if isinstance(value, float):
        return "double"
    if isinstance(value, Int64) or not _INT32_MIN <= value <= _INT32_MAX:
        return "long"
    return "int"


def _to_decimal(value: Any) -> decimal.Decimal:
    if isinstance(value, Decimal128):
        return value.to_decimal()
    if isinstance(value, float):
        return decimal.Decimal(f"{value:.15g}")  # mongod converts doubles with 15 digits
    return decimal.Decimal(int(value))


def _arithmetic(operator: str, left: Any, right: Any) -> Any:
    """``left + right`` or ``left * right`` with mongod's type promotion; None on int64 overflow."""
    kinds = {_number_kind(left), _number_kind(right)}
    if "decimal" in kinds:
        method = _DECIMAL_CONTEXT.add if operator == "+" else _DECIMAL_CONTEXT.multiply
        return Decimal128(method(_to_decimal(left), _to_decimal(right)))
    if "double" in kinds:
        return float(left) + float(right) if operator == "+" else float(left) * float(right)
    result = int(left) + int(right) if operator == "+" else int(left) * int(right)
    if kinds == {"int"} and _INT32_MIN <= result <= _INT32_MAX:
        return result
    if _INT64_MIN <= result <= _INT64_MAX:
        return Int64(result)
    return None


def _described_number(value: Any) -> str:
    label = {"int": "NumberInt", "long": "NumberLong", "double": "NumberDouble", "decimal": "NumberDecimal"}
    return f"({label[_number_kind(value)]}){value}"


def _arithmetic_builder(modifier: str, operator: str, verb: str) -> Callable[..., list[_Op]]:
    def build(parts: tuple[str, ...], path: str, arg: Any, context: _Context, _registry: Any) -> list[_Op]:
        if not is_number(arg):
            raise type_mismatch(
                f"Cannot {verb} with non-numeric argument: {{{parts[-1]}: {format_value(arg)}}}"
            )
        doc_id = context.doc.get("_id")

        def verdict(current: Any) -> Any:
            if current is MISSING:
                return arg if operator == "+" else _arithmetic("*", 0, arg)
            if not is_number(current):
                raise type_mismatch(
                    f"Cannot apply {modifier} to a value of non-numeric type. {{_id: "
                    f"{format_value(doc_id)}}} has the field '{parts[-1]}' of non-numeric type "
                    f"{type_name(current)}"
                )
            result = _arithmetic(operator, current, arg)
            if result is None:
                raise bad_value(
                    f"Failed to apply {modifier} operations to current value "
                    f"({_described_number(current)}) for document "
                    f"{{_id: {format_value(doc_id)}}}"
                )
            return result

        return [_Op(parts, path, verdict, creates=True)]

    return build


# --------------------------------------------------------------------------------- simple builders


def _build_set(parts: tuple[str, ...], path: str, arg: Any, _context: _Context, _registry: Any) -> list[_Op]:
    return [_Op(parts, path, lambda _current: clone(arg), creates=True)]


def _build_set_on_insert(
    parts: tuple[str, ...], path: str, arg: Any, context: _Context, registry: Any
) -> list[_Op]:
    if not context.inserting:
        return []
    return _build_set(parts, path, arg, context, registry)


def _build_unset(
    parts: tuple[str, ...], path: str, _arg: Any, _context: _Context, _registry: Any
) -> list[_Op]:
    return [_Op(parts, path, lambda _current: _DELETE, creates=False)]


def _bound_builder(want: int) -> Callable[..., list[_Op]]:
    """``$min`` (want -1) / ``$max`` (want 1): replace when the argument sorts below / above."""

    def build(parts: tuple[str, ...], path: str, arg: Any, _context: _Context, _registry: Any) -> list[_Op]:
        def verdict(current: Any) -> Any:
            if current is MISSING or compare(arg, current) * want > 0:
                return clone(arg)
            return _KEEP

        return [_Op(parts, path, verdict, creates=True)]

    return build


def _build_current_date(
    parts: tuple[str, ...], path: str, arg: Any, context: _Context, _registry: Any
) -> list[_Op]:
    if isinstance(arg, bool):
        value: Any = context.now
    elif isinstance(arg, Mapping):
        if set(arg) != {"$type"} or arg["$type"] not in ("date", "timestamp"):
            raise bad_value(
                "The '$type' string field is required to be 'date' or 'timestamp': "
                "{$currentDate: {field : {$type: 'date'}}}"
            )
        if arg["$type"] == "date":
            value = context.now
        else:
            seconds = int(context.now.replace(tzinfo=datetime.UTC).timestamp())
            value = Timestamp(seconds, next(_TIMESTAMP_INCREMENTS) % 2**32)
    else:
        raise bad_value(
            f"{type_name(arg)} is not valid type for $currentDate. Please use a boolean ('true') or a "
            "$type expression ({$type: 'timestamp/date'})."
        )
    return [_Op(parts, path, lambda _current: value, creates=True, same_is_noop=False)]


def _build_rename(parts: tuple[str, ...], path: str, arg: Any, context: _Context, registry: Any) -> list[_Op]:
    if not isinstance(arg, str):
        raise bad_value(f"The 'to' field for $rename must be a string: {path}: {format_value(arg)}")
    target = _parse_path(arg)
    if target == parts:
        raise bad_value(f"The source and target field for $rename must differ: {path}: {format_value(arg)}")
    if target[: len(parts)] == parts or parts[: len(target)] == target:
        raise bad_value(
            f"The source and target field for $rename must not be on the same path: {path}: "
            f"{format_value(arg)}"
        )
    registry.add(arg, target)
    value = _rename_source(context.doc, parts, path)
    if value is MISSING:
        return []
    moved = clone(value)
    return [
        _Op(parts, path, lambda _current: _DELETE, creates=False, no_arrays=True),
        _Op(target, arg, lambda _current: moved, creates=True, no_arrays=True),
    ]


def _id_text(doc: Mapping[str, Any]) -> str:
    """The ``_id`` element as mongod prints it in update errors (``_id: 1``, or ``no id``)."""
    return f"_id: {format_value(doc['_id'])}" if "_id" in doc else "no id"


def _element_text(name: Any, value: Any) -> str:
    return f"{name}: {format_value(value)}"


def _rename_source(doc: Mapping[str, Any], parts: tuple[str, ...], path: str) -> Any:
    """The value ``$rename`` moves, or MISSING (a no-op), as mongod's rename_node finds it.

    A path through a scalar, or through an array by a non-numeric part, cannot exist: 28
    PathNotViable. A source found inside an array element: 2 BadValue.
    """
    current: Any = doc
    name: Any = ""
    ancestors: list[tuple[Any, Any]] = []  # (field name, container) below the root
    for part in parts:
        if isinstance(current, dict):
            child = current.get(part, MISSING)
        elif isinstance(current, list) and _array_index(part) is not None:
            index = _array_index(part)
            assert index is not None
            child = current[index] if index < len(current) else MISSING
        else:
            raise path_not_viable(
                f"cannot use the part ({part} of {path}) to traverse the element "
                f"({{{_element_text(name, current)}}})"
            )
        if child is MISSING:
            return MISSING
        if current is not doc:
            ancestors.append((name, current))
        name, current = part, child
    for field, container in reversed(ancestors):
        if isinstance(container, list):
            raise bad_value(
                f"The source field cannot be an array element, '{path}' in doc with {_id_text(doc)} "
                f"has an array field called '{field}'"
            )
    return current


# ---------------------------------------------------------------------------------- array builders


def _require_array(current: Any, message: str) -> list[Any]:
    if not isinstance(current, list):
        raise bad_value(message)
    return current


def _whole_number(value: Any, message: str) -> int:
    if isinstance(value, bool) or bracket(value) != NUMBER:
        raise bad_value(message)
    number = as_decimal(value)
    if number != number or number in (float("inf"), float("-inf")) or number != int(number):
        raise bad_value(message)
    return int(number)


@dataclass(frozen=True, slots=True)
class _PushSpec:
    each: list[Any]
    slice: int | None = None
    position: int | None = None
    sort: Any = None


def _parse_push(arg: Any) -> _PushSpec:
    if not (isinstance(arg, Mapping) and "$each" in arg):
        return _PushSpec([arg])
    for clause in arg:
        if clause not in ("$each", "$slice", "$sort", "$position"):
            raise bad_value(f"Unrecognized clause in $push: {clause}")
    each = arg["$each"]
    if not isinstance(each, list):
        raise bad_value(
            f"The argument to $each in $push must be an array but it was of type: {type_name(each)}"
        )
    slice_to = position = None
    if "$slice" in arg:
        slice_to = _whole_number(
            arg["$slice"],
            f"The value for $slice must be an integer value but was given type: {type_name(arg['$slice'])}",
        )
    if "$position" in arg:
        position = _whole_number(
            arg["$position"],
            f"The value for $position must be an integer value, not of type: {type_name(arg['$position'])}",
        )
    sort = arg.get("$sort")
    if "$sort" in arg:
        _validate_push_sort(sort)
    return _PushSpec(each, slice_to, position, sort)


def _validate_push_sort(sort: Any) -> None:
    message = (
        "The $sort is invalid: use 1/-1 to sort the whole element, or {field:1/-1} to sort embedded fields"
    )
    directions = list(sort.values()) if isinstance(sort, Mapping) and sort else [sort]
    for direction in directions:
        if isinstance(direction, bool) or not is_number(direction) or as_decimal(direction) not in (1, -1):
            raise bad_value(message)


def _sorted_for_push(items: list[Any], sort: Any) -> list[Any]:
    if not isinstance(sort, Mapping):
        direction = int(as_decimal(sort))
        return sorted(items, key=functools.cmp_to_key(lambda a, b: compare(a, b) * direction))
    fields = [(field, int(as_decimal(direction))) for field, direction in sort.items()]

    def by_fields(left: Any, right: Any) -> int:
        for field, direction in fields:
            found = compare(_sort_value(left, field), _sort_value(right, field)) * direction
            if found:
                return found
        return 0

    return sorted(items, key=functools.cmp_to_key(by_fields))


def _sort_value(element: Any, field: str) -> Any:
    if not isinstance(element, dict):
        return None
    found = [value for value in path_values(element, field) if value is not MISSING]
    return found[-1] if found else None


def _build_push(parts: tuple[str, ...], path: str, arg: Any, context: _Context, _registry: Any) -> list[_Op]:
    push = _parse_push(arg)
    doc_id = context.doc.get("_id")

    def verdict(current: Any) -> Any:
        base = (
            []
            if current is MISSING
            else _require_array(
                current,
                f"The field '{parts[-1]}' must be an array but is of type {type_name(current)} in document "
                f"{{_id: {format_value(doc_id)}}}",
            )
        )
        if (
            current is not MISSING
            and not push.each
            and push.sort is None
            and (push.slice is None or len(base) <= abs(push.slice))
        ):
            return _KEEP  # mongod's push_node: nothing inserted, sorted or sliced off is a no-op
        items = list(base)
        where = len(items) if push.position is None else push.position
        if where < 0:
            where = max(0, len(items) + where)
        items[where:where] = [clone(value) for value in push.each]
        if push.sort is not None:
            items = _sorted_for_push(items, push.sort)
        if push.slice is not None:
            items = items[: push.slice] if push.slice >= 0 else items[push.slice :]
        return items

    # Values pushed, a $sort or a $slice that trims make mongod log the array even when it ends
    # up as it was: same_is_noop=False.
    return [_Op(parts, path, verdict, creates=True, same_is_noop=False)]


def _build_add_to_set(
    parts: tuple[str, ...], path: str, arg: Any, _context: _Context, _registry: Any
) -> list[_Op]:
    if isinstance(arg, Mapping) and next(iter(arg), "") == "$each":
        if len(arg) != 1:
            raise bad_value(f"Found unexpected fields after $each in $addToSet: {format_value(dict(arg))}")
        values = arg["$each"]
        if not isinstance(values, list):
            raise bad_value(
                f"The argument to $each in $addToSet must be an array but it was of type {type_name(values)}"
            )
    else:
        values = [arg]

    def verdict(current: Any) -> Any:
        base = (
            []
            if current is MISSING
            else _require_array(
                current,
                f"Cannot apply $addToSet to non-array field. Field named '{parts[-1]}' has non-array type "
                f"{type_name(current)}",
            )
        )
        seen = {canonical_key(item) for item in base}
        items = list(base)
        for value in values:
            key = canonical_key(value)
            if key not in seen:
                seen.add(key)
                items.append(clone(value))
        return items if len(items) != len(base) or current is MISSING else _KEEP

    return [_Op(parts, path, verdict, creates=True)]


def _pull_predicate(arg: Any) -> ValuePredicate:
    """Which elements ``$pull`` removes: a query on documents, operators on values, or equality."""
    if isinstance(arg, Mapping):
        if is_operator_document(arg) and next(iter(arg)) not in ("$and", "$or", "$nor", "$expr", "$where"):
            return compile_value_predicate(arg)
        matcher = compile_filter(arg)
        return lambda element: isinstance(element, dict) and matcher(element)
    if isinstance(arg, Regex):
        return compile_value_predicate({"$regex": arg})
    key = canonical_key(arg)
    return lambda element: canonical_key(element) == key


def _filtered_array(parts: tuple[str, ...], path: str, modifier: str, removes: ValuePredicate) -> list[_Op]:
    def verdict(current: Any) -> Any:
        items = _require_array(current, f"Cannot apply {modifier} to a non-array value")
        kept = [item for item in items if not removes(item)]
        return kept if len(kept) != len(items) else _KEEP

    return [_Op(parts, path, verdict, creates=False)]


def _build_pull(parts: tuple[str, ...], path: str, arg: Any, _context: _Context, _registry: Any) -> list[_Op]:
    return _filtered_array(parts, path, "$pull", _pull_predicate(arg))


def _build_pull_all(
    parts: tuple[str, ...], path: str, arg: Any, _context: _Context, _registry: Any
) -> list[_Op]:
    if not isinstance(arg, list):
        raise bad_value(f"$pullAll requires an array argument but was given a {type_name(arg)}")
    keys = {canonical_key(value) for value in arg}
    return _filtered_array(parts, path, "$pullAll", lambda element: canonical_key(element) in keys)


def _build_pop(parts: tuple[str, ...], path: str, arg: Any, _context: _Context, _registry: Any) -> list[_Op]:
    if isinstance(arg, bool) or not is_number(arg):
        raise failed_to_parse(f"Expected a number in: {parts[-1]}: {format_value(arg)}")
    if as_decimal(arg) not in (1, -1):
        raise failed_to_parse(f"$pop expects 1 or -1, found: {format_value(arg)}")
    from_front = as_decimal(arg) == -1

    def verdict(current: Any) -> Any:
        if not isinstance(current, list):
            raise type_mismatch(f"Path '{path}' contains an element of non-array type '{type_name(current)}'")
        if not current:
            return _KEEP
        return current[1:] if from_front else current[:-1]

    return [_Op(parts, path, verdict, creates=False)]


_BUILDERS: dict[str, Callable[..., list[_Op]]] = {
    "$set": _build_set,
    "$setOnInsert": _build_set_on_insert,
    "$unset": _build_unset,
    "$inc": _arithmetic_builder("$inc", "+", "increment"),
    "$mul": _arithmetic_builder("$mul", "*", "multiply"),
    "$min": _bound_builder(-1),
    "$max": _bound_builder(1),
    "$currentDate": _build_current_date,
    "$rename": _build_rename,
    "$push": _build_push,
    "$addToSet": _build_add_to_set,
    "$pull": _build_pull,
    "$pullAll": _build_pull_all,
    "$pop": _build_pop,
}


# ------------------------------------------------------------------------------------- upsert seed


def _collect_equalities(spec: Mapping[str, Any], out: list[tuple[str, Any]]) -> None:
    for key, value in spec.items():
        if key == "$and" and isinstance(value, list):
            for clause in value:
                if isinstance(clause, Mapping):
                    _collect_equalities(clause, out)
        elif key == "$or" and isinstance(value, list) and len(value) == 1 and isinstance(value[0], Mapping):
            _collect_equalities(value[0], out)
        elif key.startswith("$"):
            continue
        elif is_operator_document(value):
            if "$eq" in value:
                out.append((key, value["$eq"]))
        elif not isinstance(value, Regex):
            out.append((key, value))


def _check_single_values(equalities: list[tuple[str, Any]]) -> None:
    seen: dict[tuple[str, ...], str] = {}
    for path, _value in equalities:
        parts = tuple(path.split("."))
        for other_parts, other in seen.items():
            if other_parts == parts:
                raise CommandError(
                    54,
                    "NotSingleValueField",
                    f"cannot infer query fields to set, path '{path}' is matched twice",
                )
            shorter = min(len(parts), len(other_parts))
            if parts[:shorter] == other_parts[:shorter]:
                raise CommandError(
                    54,
                    "NotSingleValueField",
                    f"cannot infer query fields to set, both paths '{other}' and '{path}' are matched",
                )
        seen[parts] = path


# ------------------------------------------------------------------------------------------- diffs


def _join(prefix: str, name: Any) -> str:
    return f"{prefix}.{name}" if prefix else str(name)


def _same(left: Any, right: Any) -> bool:
    """Exact equality of two decoded BSON values (types, field order, -0.0 vs 0.0, NaN == NaN)."""
    if type(left) is not type(right):
        return False
    if isinstance(left, dict):
        return list(left) == list(right) and all(_same(value, right[key]) for key, value in left.items())
    if isinstance(left, list):
        return len(left) == len(right) and all(_same(a, b) for a, b in zip(left, right, strict=True))
    if isinstance(left, float):
        return _same_bson(left, right)
    return bool(left == right)


@dataclass(slots=True)
class _DocumentChanges:
    """How one document level changed, in mongod's diff terms."""

    removed: list[str]
    updated: list[tuple[str, Any]]
    inserted: list[tuple[str, Any]]
    nested: list[tuple[str, Any, Any]]


def _document_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> _DocumentChanges:
    """mongod's document diff: walk both in step; fields out of step are removed or (re)inserted."""
    deletes: dict[str, None] = {}
    changes = _DocumentChanges([], [], [], [])
    after_items = list(after.items())
    position = 0
    for key, old in before.items():
        if position < len(after_items) and after_items[position][0] == key:
            new = after_items[position][1]
            position += 1
            if (
                isinstance(old, dict)
                and isinstance(new, dict)
                or isinstance(old, list)
                and isinstance(new, list)
            ):
                changes.nested.append((key, old, new))
            elif not _same(old, new):
                changes.updated.append((key, new))
        else:
            deletes[key] = None
    changes.inserted = after_items[position:]
    for key, _new in changes.inserted:
        deletes.pop(key, None)
    changes.removed = list(deletes)
    return changes


def _replayable(before: Mapping[str, Any], inserted: list[tuple[str, Any]]) -> bool:
    """Whether ``$set`` of the inserted fields recreates their order (it appends new fields in path order)."""
    names = [key for key, _value in inserted]
    if any(name in before for name in names):
        return False  # a field that moved: $set would leave it where it was
    return all(_compare_parts(left, right) < 0 for left, right in itertools.pairwise(names))


def _diff_documents(
    before: Mapping[str, Any], after: Mapping[str, Any], prefix: str, out: dict[str, Any]
) -> None:
    changes = _document_changes(before, after)
    if prefix and not _replayable(before, changes.inserted):
        out["updatedFields"][prefix] = clone(after)  # dotted paths could not rebuild this field order
        return
    out["removedFields"].extend(_join(prefix, key) for key in changes.removed)
    for key, new in [*changes.updated, *changes.inserted]:
        out["updatedFields"][_join(prefix, key)] = clone(new)
    for key, old, new in changes.nested:
        _diff_values(old, new, _join(prefix, key), out)


def _diff_values(old: Any, new: Any, path: str, out: dict[str, Any]) -> None:
    if isinstance(old, dict):
        _diff_documents(old, new, path, out)
    else:
        _diff_arrays(old, new, path, out)


def _diff_arrays(before: list[Any], after: list[Any], path: str, out: dict[str, Any]) -> None:
    if len(after) < len(before):
        out["truncatedArrays"].append({"field": path, "newSize": len(after)})
    for index, new in enumerate(after):
        element_path = _join(path, index)
        if index >= len(before):
            out["updatedFields"][element_path] = clone(new)
            continue
        old = before[index]
        if isinstance(old, dict) and isinstance(new, dict) or isinstance(old, list) and isinstance(new, list):
            _diff_values(old, new, element_path, out)
        elif not _same(old, new):
            out["updatedFields"][element_path] = clone(new)
