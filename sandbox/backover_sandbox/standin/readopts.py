"""The options of the read commands, parsed and answered as mongod does: numbers (skip, limit,
batchSize), booleans, projections, sort patterns, hints, and reads of views.

What the stand-in does not run is refused through :mod:`.unsupported` (40415 naming the field;
DocumentDB has projections, sorts and hints too, so both flavours refuse those the mongodb way).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from bson.decimal128 import Decimal128

from backover.bsonvalues import decode, encode, id_of, to_plain
from backover.mongo import errors
from backover.mongo.ordering import PositionalSortPath, is_number, sort_documents, sort_key, type_name

from .store import Collection, Index
from .unsupported import unknown_field_error

#: A sort pattern: (dotted path, ascending) in order.
SortPattern = list[tuple[str, bool]]
Projector = Callable[[bytes], bytes]


# -- numbers and booleans -------------------------------------------------------------------------
def int_option(command: str, field: str, value: Any, *, minimum: int | None = 0) -> int | None:
    """An IDL ``safeInt64`` field: int, long, double (truncated) or decimal; None when absent;
    14 TypeMismatch for another type, 51024 below ``minimum``."""
    if value is None:
        return None
    if isinstance(value, bool) or not is_number(value):
        raise errors.type_mismatch(
            f"BSON field '{command}.{field}' is the wrong type '{type_name(value)}', "
            "expected types '[long, int, decimal, double]'"
        )
    number: Any = value.to_decimal() if isinstance(value, Decimal128) else value
    if isinstance(number, float) or not isinstance(number, int):
        if not math.isfinite(number):
            raise errors.failed_to_parse(f"Cannot represent as a 64-bit integer: {field}: {value}")
        number = int(number)  # truncated toward zero, as safeInt64 does
    number = int(number)
    if minimum is not None and number < minimum:
        raise errors.location(
            errors.IDL_VALUE_OUT_OF_RANGE,
            f"BSON field '{field}' value must be >= {minimum}, actual value '{number}'",
        )
    return number


def bool_option(field: str, value: Any) -> bool:
    """An IDL ``optionalBool`` field (absent: False); 14 TypeMismatch for a non-boolean."""
    if value is None:
        return False
    if not isinstance(value, bool):
        raise errors.type_mismatch(
            f"Field '{field}' should be a boolean value, but found: {type_name(value)}"
        )
    return value


# -- projections ----------------------------------------------------------------------------------
def compile_projection(spec: Any, command: str, field: str) -> Projector | None:
    """:func:`compile_document_projection` over raw documents."""
    project = compile_document_projection(spec, command, field)
    if project is None:
        return None
    return lambda raw: encode(project(decode(raw)))


def compile_document_projection(
    spec: Any, command: str, field: str
) -> Callable[[Mapping[str, Any]], dict[str, Any]] | None:
    """A projection of top-level fields (``1``/``true`` include, ``0``/``false`` exclude,
    ``_id`` either way) as a function over raw documents; None for no projection. Mixing
    inclusion and exclusion fails as mongod's parser does (31254 / 31253); anything else a
    projection can say (dotted paths, ``$slice``, ``$elemMatch``, positional ``$``, literals and
    expressions) is refused."""
    if spec is None:
        return None
    plain = to_plain(spec)
    if not isinstance(plain, Mapping):
        raise errors.type_mismatch(
            f"BSON field '{command}.{field}' is the wrong type '{type_name(plain)}', expected type 'object'"
        )
    if not plain:
        return None
    include_id = True
    inclusion: bool | None = None
    fields: set[str] = set()
    for name, flag in plain.items():
        if not name or name.startswith("$") or "." in name or not (isinstance(flag, bool) or is_number(flag)):
            raise unknown_field_error(
                command, field, detail=f"projection {name!r}: {flag!r} (top-level 1/true or 0/false only)"
            )
        included = bool(flag.to_decimal() if isinstance(flag, Decimal128) else flag)
        if name == "_id":
            include_id = included
            continue
        if inclusion is None:
            inclusion = included
        elif inclusion != included:
            if inclusion:
                raise errors.location(
                    errors.PROJECTION_EXCLUSION_IN_INCLUSION,
                    f"Cannot do exclusion on field {name} in inclusion projection",
                )
            raise errors.location(
                errors.PROJECTION_INCLUSION_IN_EXCLUSION,
                f"Cannot do inclusion on field {name} in exclusion projection",
            )
        fields.add(name)
    if inclusion is None:  # only _id: {_id: 1} keeps _id alone, {_id: 0} drops it
        inclusion = include_id
        fields = {"_id"} if include_id else set()
        include_id = inclusion
    if inclusion:
        keep = fields | ({"_id"} if include_id else set())
        return lambda doc: {k: v for k, v in doc.items() if k in keep}
    drop = fields | (set() if include_id else {"_id"})
    return lambda doc: {k: v for k, v in doc.items() if k not in drop}


# -- sort patterns ----------------------------------------------------------------------------------
def parse_sort(spec: Any, command: str, *, natural: bool = False) -> SortPattern | None:
    """A sort specification as mongod's SortPattern parses it; None when empty. With ``natural``
    (find), ``{$natural: 1}`` is the natural order (None) and ``{$natural: -1}`` the reverse
    (``[("$natural", False)]``)."""
    if spec is None:
        return None
    plain = to_plain(spec)
    if not isinstance(plain, Mapping):
        raise errors.type_mismatch(
            f"BSON field '{command}.sort' is the wrong type '{type_name(plain)}', expected type 'object'"
        )
    pattern: SortPattern = []
    for path, direction in plain.items():
        if isinstance(direction, Mapping):
            if list(direction) != ["$meta"]:
                raise errors.location(
                    errors.SORT_EXPRESSION_NOT_META,
                    "$meta is the only expression supported by $sort right now",
                )
            raise unknown_field_error(command, "sort", detail=f"$meta sort of {path!r}")
        if isinstance(direction, bool) or not is_number(direction):
            raise errors.location(
                errors.SORT_KEY_NOT_A_NUMBER, f"Illegal key in $sort specification: {path}: {direction!r}"
            )
        value = direction.to_decimal() if isinstance(direction, Decimal128) else direction
        if isinstance(value, float) and not math.isfinite(value):
            steps = 0
        else:
            steps = int(value)  # safeNumberLong truncates
        if steps not in (1, -1):
            raise errors.location(
                errors.SORT_DIRECTION_INVALID,
                "$sort key ordering must be 1 (for ascending) or -1 (for descending)",
            )
        if natural and path == "$natural":
            if len(plain) != 1:
                raise unknown_field_error(command, "sort", detail="$natural with other sort keys")
            return None if steps == 1 else [("$natural", False)]
        if not path or path.startswith("$") or "" in path.split("."):
            raise unknown_field_error(command, "sort", detail=f"sort path {path!r}")
        pattern.append((path, steps == 1))
    return pattern or None


def sort_items(
    items: list[Any], pattern: SortPattern | None, document: Callable[[Any], Any], command: str
) -> list[Any]:
    """``items`` sorted by ``pattern`` with MongoDB's sort semantics (arrays by their smallest
    element ascending, largest descending, ``[]`` before null); ``$natural: -1`` reverses."""
    if not pattern:
        return items
    if pattern == [("$natural", False)]:
        return items[::-1]
    try:
        return sort_documents(items, pattern, document)
    except PositionalSortPath as e:
        raise unknown_field_error(
            command, "sort", detail=f"positional sort path {e} through an array"
        ) from None


def sort_pairs(
    pairs: list[tuple[Any, bytes]], pattern: SortPattern | None, command: str
) -> list[tuple[Any, bytes]]:
    """:func:`sort_items` over ``(key, raw)`` pairs; a sort on ``_id`` alone (never an array)
    reads the ``_id`` from the bytes without decoding the documents."""
    if pattern and len(pattern) == 1 and pattern[0][0] == "_id":
        return sorted(pairs, key=lambda pair: sort_key(id_of(pair[1])), reverse=not pattern[0][1])
    return sort_items(pairs, pattern, lambda pair: decode(pair[1]), command)


# -- hints --------------------------------------------------------------------------------------------
#: Index options that make an index hold other documents than a full scan finds.
_PARTIAL_INDEX_OPTIONS = ("sparse", "partialFilterExpression", "hidden", "collation")


def resolve_hint(coll: Collection | None, hint: Any, command: str) -> SortPattern | None:
    """The scan order a hint asks for: an index's key pattern (its documents in index order),
    ``$natural`` (None / reversed), or None without a hint. A name or key pattern that is no
    index fails as mongod's planner does (2 BadValue); an index whose scan would find other
    documents than a full scan (sparse, partial, hidden, collated, not ascending/descending) is
    refused."""
    if hint is None:
        return None
    plain = to_plain(hint)
    if isinstance(plain, Mapping):
        if not plain:
            return None
        if list(plain) == ["$natural"]:
            return parse_sort(plain, command, natural=True)
    elif not isinstance(plain, str):
        raise unknown_field_error(command, "hint", detail=f"hint {plain!r}")
    if coll is None:  # no collection: an EOF plan, the planner never sees the hint
        return None
    index = _find_index(coll, plain)
    if index is None:
        raise errors.bad_value(
            f"error processing query: ns={coll.full_name} planner returned error :: caused by :: "
            "hint provided does not correspond to an existing index"
        )
    if (
        any(index.spec.get(option) for option in _PARTIAL_INDEX_OPTIONS)
        or index.sparse
        or getattr(index, "hidden", False)
        or getattr(index, "partial_filter", None) is not None
        or getattr(index, "kind", "btree") != "btree"
    ):
        raise unknown_field_error(command, "hint", detail=f"hint of the {index.name!r} index (its options)")
    pattern: SortPattern = []
    for path, direction in index.key:
        if isinstance(direction, bool) or not is_number(direction) or int(direction) not in (1, -1):
            raise unknown_field_error(
                command, "hint", detail=f"hint of the {index.name!r} index ({direction!r})"
            )
        pattern.append((path, int(direction) == 1))
    return pattern


def _find_index(coll: Collection, hint: str | Mapping[str, Any]) -> Index | None:
    if isinstance(hint, str):
        return coll.indexes.get(hint)
    wanted = list(hint.items())
    for index in coll.indexes.values():
        if len(index.key) == len(wanted) and all(
            path == want_path and _same_direction(direction, want)
            for (path, direction), (want_path, want) in zip(index.key, wanted, strict=True)
        ):
            return index
    return None


def _same_direction(a: Any, b: Any) -> bool:
    if is_number(a) and is_number(b) and not isinstance(a, bool) and not isinstance(b, bool):
        return bool(to_plain(a) == to_plain(b))
    return bool(a == b and type(a) is type(b))
