"""Query filters compiled into plain Python predicates, with MongoDB's matching semantics.

``compile_filter(filter)`` parses and validates a filter once and returns ``match(doc) -> bool``;
documents are plain dicts as :func:`backover.bsonvalues.decode` returns them.

Paths are walked the way mongod's ``BSONElementIterator`` walks them: a field holding an array
matches when the whole array or any element matches; a path continuing through an array of
documents looks into each document (a document without the field counts as a missing value, so
``{"a.b": null}`` matches ``{a: [{}]}``), and a numeric component also indexes the array.

Supported: implicit equality, ``$eq $ne $gt $gte $lt $lte $in $nin $exists $type $regex $options
$not $elemMatch $size $all $mod``, and ``$and $or $nor $comment`` at the top level.

Not supported (rejected as unknown operators): ``$expr``, ``$where``, ``$text``, ``$jsonSchema``,
geospatial and bitwise operators, collations. Regular expressions run on Python's ``re`` engine,
which agrees with PCRE on the common syntax only.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bson.decimal128 import Decimal128
from bson.max_key import MaxKey
from bson.min_key import MinKey
from bson.objectid import ObjectId
from bson.raw_bson import RawBSONDocument
from bson.regex import Regex

from ..bsonvalues import canonical_key, decode
from .errors import bad_value
from .ordering import (
    MAXKEY,
    MINKEY,
    NUMBER,
    TYPE_ALIASES,
    as_decimal,
    bracket,
    bson_type,
    compare,
    is_nan,
    regex_parts,
)

Matcher = Callable[[Mapping[str, Any]], bool]
ValuePredicate = Callable[[Any], bool]


class _Missing:
    """The value at a path that does not exist (mongod's EOO element)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()

# Top-level operators an $elemMatch / $pull document may start with and still be a query on
# the elements' fields (rather than an operator expression on the elements themselves).
_LOGICAL = frozenset({"$and", "$or", "$nor", "$where", "$expr", "$text", "$comment", "$jsonSchema"})
_VALID_TYPE_CODES = frozenset(TYPE_ALIASES.values())
_NUMBER_TYPE_CODES = frozenset({1, 16, 18, 19})
_REGEX_OPTION_FLAGS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL, "x": re.VERBOSE, "u": 0, "l": 0}
_PYTHON_FLAGS = re.IGNORECASE | re.MULTILINE | re.DOTALL | re.VERBOSE


def _match_all(_doc: Mapping[str, Any]) -> bool:
    return True


def _never(_value: Any) -> bool:
    return False


@dataclass(frozen=True, slots=True)
class _Clause:
    """One compiled condition, usable on a document (through its path) or on a single value."""

    on_doc: Matcher
    on_value: ValuePredicate


# --------------------------------------------------------------------------------------- public


def compile_filter(filter: Mapping[str, Any]) -> Matcher:
    """Compile a query filter into ``match(doc) -> bool``; raise CommandError(2) if it is invalid.

    ``{}`` compiles to a constant and ``{"_id": <scalar>}`` to about one dict lookup.
    """
    spec = plain_spec(filter)
    if not isinstance(spec, Mapping):
        raise bad_value("filter must be an object")
    if not spec:
        return _match_all
    if len(spec) == 1 and "_id" in spec:
        fast = _fast_id_matcher(spec["_id"])
        if fast is not None:
            return fast
    return _all_of(_compile_document(spec))


def compile_value_predicate(spec: Mapping[str, Any]) -> ValuePredicate:
    """Compile an operator document (``{$gte: 6, $lt: 9}``) into a test on one value.

    This is how ``$elemMatch`` and ``$pull`` apply operators to array elements: the operators see
    the element itself, never its members.
    """
    clause = _operators(("",), plain_spec(spec))
    return clause.on_value


def is_operator_document(value: Any) -> bool:
    """True when ``value`` is a document of query operators (its first field starts with ``$``)."""
    if not isinstance(value, Mapping) or not value:
        return False
    first = next(iter(value))
    return first.startswith("$") and first not in ("$ref", "$id", "$db")


def plain_spec(value: Any) -> Any:
    """Decode RawBSONDocuments anywhere inside a filter or update spec into dicts."""
    if isinstance(value, RawBSONDocument):
        return decode(value.raw)
    if isinstance(value, dict):
        return {key: plain_spec(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain_spec(item) for item in value]
    return value


def path_values(doc: Mapping[str, Any], path: str) -> list[Any]:
    """The values a path reaches in ``doc`` (leaf arrays expanded), ``MISSING`` where it stops."""
    parts = tuple(path.split("."))
    out: list[Any] = []
    _walk(doc, parts, _indexes(parts), 0, True, out)
    return out


# ------------------------------------------------------------------------------------- top level


def _fast_id_matcher(value: Any) -> Matcher | None:
    """A matcher for ``{_id: value}`` that skips the general machinery (``_id`` is never an array)."""
    cls = type(value)
    if cls is str or cls is ObjectId:

        def match_exact(doc: Mapping[str, Any]) -> bool:
            found = doc.get("_id")
            return found.__class__ is cls and found == value

        return match_exact
    if value is None or isinstance(value, (Mapping, list, Regex, re.Pattern)):
        return None
    key = canonical_key(value)
    kind = bracket(value)

    def match_key(doc: Mapping[str, Any]) -> bool:
        found = doc.get("_id", MISSING)
        if found.__class__ is cls and found == value:
            return True
        # another type of the same bracket (1 vs 1.0 vs Int64(1)), or NaN
        return found is not MISSING and bracket(found) == kind and canonical_key(found) == key

    return match_key


def _compile_document(spec: Mapping[str, Any]) -> list[Matcher]:
    """The matchers of every top-level entry of a filter (they must all match)."""
    matchers: list[Matcher] = []
    for key, value in spec.items():
        if key.startswith("$"):
            matcher = _top_level_operator(key, value)
            if matcher is not None:
                matchers.append(matcher)
        else:
            matchers.append(_field(key, value).on_doc)
    return matchers


def _top_level_operator(name: str, value: Any) -> Matcher | None:
    if name == "$comment":
        return None
    if name not in ("$and", "$or", "$nor"):
        raise bad_value(f"unknown top level operator: {name}")
    if not isinstance(value, list) or not value:
        raise bad_value(f"{name} argument must be a non-empty array")
    branches: list[Matcher] = []
    for entry in value:
        if not isinstance(entry, Mapping):
            raise bad_value(f"{name} argument's entries must be objects")
        branches.append(_all_of(_compile_document(entry)))
    if name == "$and":
        return _all_of(branches)
    any_branch = _any_of(branches)
    if name == "$or":
        return any_branch
    return lambda doc: not any_branch(doc)


def _all_of(matchers: Sequence[Matcher]) -> Matcher:
    if not matchers:
        return _match_all
    if len(matchers) == 1:
        return matchers[0]
    if len(matchers) == 2:
        first, second = matchers
        return lambda doc: first(doc) and second(doc)
    frozen = tuple(matchers)
    return lambda doc: all(matcher(doc) for matcher in frozen)


def _any_of(matchers: Sequence[Matcher]) -> Matcher:
    if len(matchers) == 1:
        return matchers[0]
    frozen = tuple(matchers)
    return lambda doc: any(matcher(doc) for matcher in frozen)


# ------------------------------------------------------------------------------------ field level


def _field(path: str, condition: Any) -> _Clause:
    parts = tuple(path.split("."))
    if is_operator_document(condition):
        return _operators(parts, condition)
    if isinstance(condition, (Regex, re.Pattern)):
        return _leaf(parts, _regex_predicate(*_regex_from_value(condition)))
    return _leaf(parts, _equality_predicate(condition))


def _operators(parts: tuple[str, ...], spec: Mapping[str, Any]) -> _Clause:
    """All the operators of one ``{$op: arg, ...}`` document on a path (they must all match)."""
    clauses: list[_Clause] = []
    regex = _regex_clause(parts, spec)
    if regex is not None:
        clauses.append(regex)
    for name, arg in spec.items():
        if name in ("$regex", "$options"):
            continue
        builder = _OPERATORS.get(name)
        if builder is None:
            raise bad_value(f"unknown operator: {name}")
        clauses.append(builder(parts, arg))
    return _conjunction(clauses)


def _conjunction(clauses: Sequence[_Clause]) -> _Clause:
    if len(clauses) == 1:
        return clauses[0]
    on_docs = tuple(clause.on_doc for clause in clauses)
    on_values = tuple(clause.on_value for clause in clauses)
    return _Clause(
        lambda doc: all(matcher(doc) for matcher in on_docs),
        lambda value: all(predicate(value) for predicate in on_values),
    )


def _negation(clause: _Clause) -> _Clause:
    on_doc = clause.on_doc
    on_value = clause.on_value
    return _Clause(lambda doc: not on_doc(doc), lambda value: not on_value(value))


def _leaf(parts: tuple[str, ...], predicate: ValuePredicate, *, traverse: bool = True) -> _Clause:
    """A condition that holds when ``predicate`` holds for any value the path reaches."""
    return _Clause(_path_matcher(parts, predicate, traverse), predicate)


def _path_matcher(parts: tuple[str, ...], predicate: ValuePredicate, traverse: bool) -> Matcher:
    if len(parts) == 1:
        name = parts[0]
        if not traverse:
            return lambda doc: predicate(doc.get(name, MISSING))

        def match_field(doc: Mapping[str, Any]) -> bool:
            value = doc.get(name, MISSING)
            if value.__class__ is list and any(predicate(item) for item in value):
                return True
            return predicate(value)

        return match_field
    indexes = _indexes(parts)

    def match_path(doc: Mapping[str, Any]) -> bool:
        out: list[Any] = []
        _walk(doc, parts, indexes, 0, traverse, out)
        return any(predicate(value) for value in out)

    return match_path


# ------------------------------------------------------------------------------------ path walking


def _indexes(parts: tuple[str, ...]) -> tuple[int, ...]:
    """For each component, the array index it names (-1 when it is not a canonical number)."""
    return tuple(
        int(part) if part.isascii() and part.isdigit() and (part == "0" or part[0] != "0") else -1
        for part in parts
    )


def _walk(
    obj: Mapping[str, Any],
    parts: tuple[str, ...],
    indexes: tuple[int, ...],
    start: int,
    traverse: bool,
    out: list[Any],
) -> None:
    """Collect the values ``parts[start:]`` reaches from ``obj`` (mongod's element iterator)."""
    end = len(parts)
    current: Any = obj
    position = start
    while True:
        value = current.get(parts[position], MISSING)
        position += 1
        if position == end or isinstance(value, list):
            break
        if not isinstance(value, dict):
            out.append(MISSING)  # a scalar, or nothing, where the path goes on
            return
        current = value
    if not isinstance(value, list):
        out.append(value)
    elif position == end:
        if traverse:
            out.extend(value)
        out.append(value)
    else:
        _walk_array(value, parts, indexes, position, traverse, out)


def _walk_array(
    array: list[Any],
    parts: tuple[str, ...],
    indexes: tuple[int, ...],
    position: int,
    traverse: bool,
    out: list[Any],
) -> None:
    """Continue a path through an array: into each document, and at the element it indexes."""
    wanted = indexes[position]
    last = position + 1 == len(parts)
    for offset, element in enumerate(array):
        if isinstance(element, dict):
            _walk(element, parts, indexes, position, traverse, out)
            if offset != wanted:
                continue
            if last:
                out.append(element)
            else:
                _walk(element, parts, indexes, position + 1, traverse, out)
        elif offset == wanted:
            if last:
                out.append(element)
            elif isinstance(element, list):
                _walk_array(element, parts, indexes, position + 1, traverse, out)


# -------------------------------------------------------------------------------------- predicates


def _equality_predicate(target: Any) -> ValuePredicate:
    """Equality as ``$eq`` means it: numbers by value, documents and arrays exactly."""
    if target is None:
        return lambda value: value is None or value is MISSING
    cls = type(target)
    if cls is str or cls is ObjectId:
        return lambda value: value.__class__ is cls and value == target
    key = canonical_key(target)
    if isinstance(target, (Mapping, list)):
        return lambda value: isinstance(value, (dict, list)) and canonical_key(value) == key
    return lambda value: (
        value is not MISSING
        and value.__class__ is not list
        and value.__class__ is not dict
        and canonical_key(value) == key
    )


def _comparison_predicate(operator: str, target: Any) -> ValuePredicate:
    """``$gt``/``$gte``/``$lt``/``$lte``: only values of the target's type bracket can match."""
    if isinstance(target, (Regex, re.Pattern)):
        raise bad_value(f"Can't have RegEx as arg to predicate over field: {operator}")
    inclusive = operator in ("$gte", "$lte")
    kind = bracket(target)
    if target is None:
        return _equality_predicate(None) if inclusive else _never
    if kind in (MINKEY, MAXKEY):
        return _key_bound_predicate(operator, kind)
    if kind == NUMBER and is_nan(as_decimal(target)):
        return (lambda value: _is_nan_value(value)) if inclusive else _never
    accept = _ACCEPT[operator]

    def predicate(value: Any) -> bool:
        if value is MISSING or bracket(value) != kind:
            return False
        if kind == NUMBER and _is_nan_value(value):
            return False
        return accept(compare(value, target))

    return predicate


_ACCEPT: dict[str, Callable[[int], bool]] = {
    "$gt": lambda order: order > 0,
    "$gte": lambda order: order >= 0,
    "$lt": lambda order: order < 0,
    "$lte": lambda order: order <= 0,
}


def _key_bound_predicate(operator: str, kind: int) -> ValuePredicate:
    """Comparisons against MinKey/MaxKey, which bound every other value."""
    bound = MinKey if kind == MINKEY else MaxKey
    inclusive = operator in ("$gte", "$lte")
    towards_everything = operator in ("$gt", "$gte") if kind == MINKEY else operator in ("$lt", "$lte")
    if towards_everything and inclusive:
        return lambda value: value is not MISSING
    if towards_everything:
        return lambda value: value is not MISSING and not isinstance(value, bound)
    if inclusive:
        return lambda value: isinstance(value, bound)
    return _never


def _is_nan_value(value: Any) -> bool:
    return (
        value.__class__ is not bool and isinstance(value, (float, Decimal128)) and is_nan(as_decimal(value))
    )


def _in_predicate(members: Any, operator: str = "$in") -> ValuePredicate:
    """``$in``: equal to a member, or matching a member that is a regular expression."""
    if not isinstance(members, list):
        raise bad_value(f"{operator} needs an array")
    keys: set[Any] = set()
    regexes: list[ValuePredicate] = []
    containers = False
    for member in members:
        if isinstance(member, (Regex, re.Pattern)):
            regexes.append(_regex_predicate(*_regex_from_value(member)))
        elif is_operator_document(member):
            raise bad_value(f"cannot nest $ under {operator}")
        else:
            containers = containers or isinstance(member, (Mapping, list))
            keys.add(canonical_key(member))
    has_null = None in keys

    def predicate(value: Any) -> bool:
        if value is MISSING:
            return has_null
        if containers or not isinstance(value, (dict, list)):
            if canonical_key(value) in keys:
                return True
        return any(regex(value) for regex in regexes)

    return predicate


def _regex_from_value(value: Regex[str] | re.Pattern[str]) -> tuple[str, int]:
    pattern, letters = regex_parts(value)
    return pattern, _flags_from_options(letters)


def _flags_from_options(options: Any) -> int:
    if not isinstance(options, str):
        raise bad_value("$options has to be a string")
    flags = 0
    for letter in options:
        if letter not in _REGEX_OPTION_FLAGS:
            raise bad_value(f"invalid flag in regex options: {letter}")
        flags |= _REGEX_OPTION_FLAGS[letter]
    return flags


def _regex_predicate(pattern: str, flags: int) -> ValuePredicate:
    """Match strings (and an equal stored regex) against a pattern."""
    try:
        compiled = re.compile(pattern, flags & _PYTHON_FLAGS)
    except re.error as exc:
        raise bad_value(f"Regular expression is invalid: {exc}") from exc
    search = compiled.search
    same = (pattern, flags & _PYTHON_FLAGS)

    def predicate(value: Any) -> bool:
        if value.__class__ is str:
            return search(value) is not None
        if isinstance(value, Regex):  # a stored regex matches only the very same regex
            stored_pattern, stored_flags = _regex_from_value(value)
            return (stored_pattern, stored_flags & _PYTHON_FLAGS) == same
        return False

    return predicate


def _regex_clause(parts: tuple[str, ...], spec: Mapping[str, Any]) -> _Clause | None:
    """The ``$regex`` (+ ``$options``) pair of an operator document, if any."""
    if "$regex" not in spec:
        if "$options" in spec:
            raise bad_value("$options needs a $regex")
        return None
    pattern = spec["$regex"]
    options = spec.get("$options")
    if isinstance(pattern, (Regex, re.Pattern)):
        text, flags = _regex_from_value(pattern)
        if options is not None:
            if flags:
                raise bad_value("options set in both $regex and $options")
            flags = _flags_from_options(options)
    elif isinstance(pattern, str):
        text, flags = pattern, _flags_from_options(options if options is not None else "")
    else:
        raise bad_value("$regex has to be a string")
    return _leaf(parts, _regex_predicate(text, flags))


# ------------------------------------------------------------------------------- operator builders


def _op_eq(parts: tuple[str, ...], arg: Any) -> _Clause:
    return _leaf(parts, _equality_predicate(arg))


def _op_ne(parts: tuple[str, ...], arg: Any) -> _Clause:
    if isinstance(arg, (Regex, re.Pattern)):
        raise bad_value("Can't have regex as arg to $ne.")
    return _negation(_op_eq(parts, arg))


def _op_comparison(operator: str) -> Callable[[tuple[str, ...], Any], _Clause]:
    def build(parts: tuple[str, ...], arg: Any) -> _Clause:
        return _leaf(parts, _comparison_predicate(operator, arg))

    return build


def _op_in(parts: tuple[str, ...], arg: Any) -> _Clause:
    return _leaf(parts, _in_predicate(arg))


def _op_nin(parts: tuple[str, ...], arg: Any) -> _Clause:
    return _negation(_leaf(parts, _in_predicate(arg, "$nin")))


def _op_exists(parts: tuple[str, ...], arg: Any) -> _Clause:
    clause = _leaf(parts, lambda value: value is not MISSING)
    return clause if _truthy(arg) else _negation(clause)


def _truthy(value: Any) -> bool:
    """MongoDB's ``trueValue``: false for false, 0, null and missing; true for anything else."""
    if value is None or value is False:
        return False
    if bracket(value) == NUMBER:
        return as_decimal(value) != 0
    return True


def _op_type(parts: tuple[str, ...], arg: Any) -> _Clause:
    entries = arg if isinstance(arg, list) else [arg]
    if not entries:
        raise bad_value("a $type array must contain at least one type")
    codes: set[int] = set()
    for entry in entries:
        codes |= _type_codes(entry)
    frozen = frozenset(codes)
    return _leaf(parts, lambda value: value is not MISSING and bson_type(value) in frozen)


def _type_codes(entry: Any) -> frozenset[int]:
    if isinstance(entry, str):
        if entry == "number":
            return _NUMBER_TYPE_CODES
        if entry not in TYPE_ALIASES:
            raise bad_value(f"Unknown type name alias: {entry}")
        return frozenset({TYPE_ALIASES[entry]})
    if bracket(entry) != NUMBER:
        raise bad_value("type must be represented as a number or a string")
    number = as_decimal(entry)
    if is_nan(number) or number != int(number) or int(number) not in _VALID_TYPE_CODES:
        raise bad_value(f"Invalid numerical type code: {entry}")
    return frozenset({int(number)})


def _op_size(parts: tuple[str, ...], arg: Any) -> _Clause:
    if isinstance(arg, bool) or bracket(arg) != NUMBER:
        raise bad_value("$size needs a number")
    number = as_decimal(arg)
    if is_nan(number) or number != int(number):
        raise bad_value("$size must be a whole number")
    if number < 0:
        raise bad_value("$size may not be negative")
    size = int(number)
    return _leaf(parts, lambda value: value.__class__ is list and len(value) == size, traverse=False)


def _op_elem_match(parts: tuple[str, ...], arg: Any) -> _Clause:
    if not isinstance(arg, Mapping):
        raise bad_value("$elemMatch needs an Object")
    element_matches = _element_matcher(arg)
    return _leaf(
        parts,
        lambda value: value.__class__ is list and any(element_matches(item) for item in value),
        traverse=False,
    )


def _element_matcher(spec: Mapping[str, Any]) -> ValuePredicate:
    """How ``$elemMatch`` (and ``$pull``) tests one array element against ``spec``."""
    first = next(iter(spec), "")
    if first.startswith("$") and first not in _LOGICAL:
        return _operators(("",), spec).on_value
    matcher = compile_filter(spec)

    def element_matches(element: Any) -> bool:
        if isinstance(element, dict):
            return matcher(element)
        if isinstance(element, list):  # an array element is queried as {"0": ..., "1": ...}
            return matcher({str(index): item for index, item in enumerate(element)})
        return False

    return element_matches


def _op_all(parts: tuple[str, ...], arg: Any) -> _Clause:
    if not isinstance(arg, list):
        raise bad_value("$all needs an array")
    if not arg:
        return _Clause(lambda _doc: False, _never)
    elem_matches = [isinstance(item, Mapping) and next(iter(item), "") == "$elemMatch" for item in arg]
    if any(elem_matches) and not all(elem_matches):
        raise bad_value("$all/$elemMatch has to be consistent")
    clauses = [_all_member(parts, item) for item in arg]
    return _conjunction(clauses)


def _all_member(parts: tuple[str, ...], item: Any) -> _Clause:
    if isinstance(item, Mapping) and next(iter(item), "") == "$elemMatch":
        if len(item) != 1:
            raise bad_value("$elemMatch in $all must be the only field of its document")
        return _op_elem_match(parts, item["$elemMatch"])
    if is_operator_document(item):
        raise bad_value("no $ expressions in $all")
    if isinstance(item, (Regex, re.Pattern)):
        return _leaf(parts, _regex_predicate(*_regex_from_value(item)))
    return _leaf(parts, _equality_predicate(item))


def _op_not(parts: tuple[str, ...], arg: Any) -> _Clause:
    if isinstance(arg, (Regex, re.Pattern)):
        return _negation(_leaf(parts, _regex_predicate(*_regex_from_value(arg))))
    if not isinstance(arg, Mapping):
        raise bad_value("$not needs a regex or a document")
    if not arg:
        raise bad_value("$not cannot be empty")
    return _negation(_operators(parts, arg))


def _op_mod(parts: tuple[str, ...], arg: Any) -> _Clause:
    if not isinstance(arg, list):
        raise bad_value("malformed mod, needs to be an array")
    if len(arg) != 2:
        raise bad_value(f"malformed mod, {'not enough' if len(arg) < 2 else 'too many'} elements")
    divisor = _mod_operand(arg[0], "divisor")
    remainder = _mod_operand(arg[1], "remainder")
    if divisor == 0:
        raise bad_value("divisor cannot be 0")

    def predicate(value: Any) -> bool:
        if value is MISSING or value.__class__ is bool or bracket(value) != NUMBER:
            return False
        number = as_decimal(value)
        if is_nan(number) or number in (float("inf"), float("-inf")):
            return False
        return _truncated_remainder(int(number), divisor) == remainder

    return _leaf(parts, predicate)


def _mod_operand(value: Any, role: str) -> int:
    if value.__class__ is bool or bracket(value) != NUMBER:
        raise bad_value(f"malformed mod, {role} not a number")
    number = as_decimal(value)
    if is_nan(number) or number in (float("inf"), float("-inf")):
        raise bad_value(f"malformed mod, {role} value is invalid")
    return int(number)


def _truncated_remainder(dividend: int, divisor: int) -> int:
    """C's ``%``: the remainder takes the sign of the dividend."""
    remainder = abs(dividend) % abs(divisor)
    return -remainder if dividend < 0 else remainder


_OPERATORS: dict[str, Callable[[tuple[str, ...], Any], _Clause]] = {
    "$eq": _op_eq,
    "$ne": _op_ne,
    "$gt": _op_comparison("$gt"),
    "$gte": _op_comparison("$gte"),
    "$lt": _op_comparison("$lt"),
    "$lte": _op_comparison("$lte"),
    "$in": _op_in,
    "$nin": _op_nin,
    "$exists": _op_exists,
    "$type": _op_type,
    "$size": _op_size,
    "$elemMatch": _op_elem_match,
    "$all": _op_all,
    "$not": _op_not,
    "$mod": _op_mod,
}

__all__ = [
    "MISSING",
    "Matcher",
    "ValuePredicate",
    "compile_filter",
    "compile_value_predicate",
    "is_operator_document",
    "path_values",
    "plain_spec",
]
