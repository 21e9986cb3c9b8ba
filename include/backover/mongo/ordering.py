"""MongoDB's BSON comparison order, and the BSON type of a decoded value.

Values of different BSON types compare by *type bracket*, in this order::

    MinKey < null < numbers < string/symbol < object < array < BinData < ObjectId < bool
           < Date < Timestamp < Regex < Code < CodeWScope < MaxKey

Inside a bracket: numbers (``int``, ``Int64``, ``float``, ``Decimal128``) by value, NaN below every
other number and equal to itself; strings by UTF-8 bytes (the same as code-point order); objects
element by element (the type bracket of the values, then the field name, then the value; the
shorter object first when one is a prefix of the other); arrays element by element; BinData by
length, then subtype, then bytes; dates by milliseconds since the epoch; regexes by pattern, then
flags. Collations are not supported: strings always compare binary.
"""

from __future__ import annotations

import calendar
import datetime
import decimal
import functools
import re
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from bson.binary import Binary
from bson.code import Code
from bson.datetime_ms import DatetimeMS
from bson.dbref import DBRef
from bson.decimal128 import Decimal128
from bson.int64 import Int64
from bson.max_key import MaxKey
from bson.min_key import MinKey
from bson.objectid import ObjectId
from bson.raw_bson import RawBSONDocument
from bson.regex import Regex
from bson.timestamp import Timestamp

from ..bsonvalues import decode
from .errors import bad_value

# Canonical type brackets (the numbers mongod uses in ``canonicalizeBSONType``).
MINKEY = -1
NULL = 5
NUMBER = 10
STRING = 15
OBJECT = 20
ARRAY = 25
BINDATA = 30
OBJECTID = 35
BOOL = 40
DATE = 45
TIMESTAMP = 47
REGEX = 50
CODE = 60
CODE_W_SCOPE = 65
MAXKEY = 100

_BRACKET_OF_TYPE: dict[type, int] = {
    type(None): NULL,
    bool: BOOL,
    int: NUMBER,
    Int64: NUMBER,
    float: NUMBER,
    Decimal128: NUMBER,
    str: STRING,
    dict: OBJECT,
    list: ARRAY,
    bytes: BINDATA,
    Binary: BINDATA,
    ObjectId: OBJECTID,
    datetime.datetime: DATE,
    DatetimeMS: DATE,
    Timestamp: TIMESTAMP,
    Regex: REGEX,
    MinKey: MINKEY,
    MaxKey: MAXKEY,
}

_INT32_MIN = -(2**31)
_INT32_MAX = 2**31 - 1

#: BSON type numbers and the aliases ``$type`` accepts for them.
TYPE_ALIASES: dict[str, int] = {
    "double": 1,
    "string": 2,
    "object": 3,
    "array": 4,
    "binData": 5,
    "undefined": 6,
    "objectId": 7,
    "bool": 8,
    "date": 9,
    "null": 10,
    "regex": 11,
    "dbPointer": 12,
    "javascript": 13,
    "symbol": 14,
    "javascriptWithScope": 15,
    "int": 16,
    "timestamp": 17,
    "long": 18,
    "decimal": 19,
    "minKey": -1,
    "maxKey": 127,
}
_TYPE_NAMES: dict[int, str] = {number: name for name, number in TYPE_ALIASES.items()}


def bracket(value: Any) -> int:
    """The canonical type bracket of ``value`` (values in different brackets never compare equal)."""
    found = _BRACKET_OF_TYPE.get(type(value))
    if found is not None:
        return found
    return _bracket_slow(value)


def _bracket_slow(value: Any) -> int:
    """``bracket`` for subclasses and the rarer types (checked in an order that respects subclassing)."""
    if isinstance(value, Code):  # a str subclass: test before str
        return CODE if value.scope is None else CODE_W_SCOPE
    if isinstance(value, bool):
        return BOOL
    if isinstance(value, (int, float, Decimal128)):
        return NUMBER
    if isinstance(value, str):
        return STRING
    if isinstance(value, (Mapping, DBRef)):
        return OBJECT
    if isinstance(value, (list, tuple)):
        return ARRAY
    if isinstance(value, (bytes, uuid.UUID)):
        return BINDATA
    if isinstance(value, datetime.datetime):
        return DATE
    if isinstance(value, re.Pattern):
        return REGEX
    raise TypeError(f"not a BSON value: {type(value).__name__}")


def bson_type(value: Any) -> int:
    """The BSON type number of a decoded value (what ``$type`` tests): 16 for int32, 18 for int64..."""
    kind = bracket(value)
    if kind == NUMBER:
        return _number_type(value)
    return _TYPE_OF_BRACKET[kind]


def _number_type(value: Any) -> int:
    if isinstance(value, float):
        return 1
    if isinstance(value, Decimal128):
        return 19
    if isinstance(value, Int64) or not _INT32_MIN <= value <= _INT32_MAX:
        return 18
    return 16


_TYPE_OF_BRACKET: dict[int, int] = {
    MINKEY: -1,
    NULL: 10,
    STRING: 2,
    OBJECT: 3,
    ARRAY: 4,
    BINDATA: 5,
    OBJECTID: 7,
    BOOL: 8,
    DATE: 9,
    TIMESTAMP: 17,
    REGEX: 11,
    CODE: 13,
    CODE_W_SCOPE: 15,
    MAXKEY: 127,
}


def type_name(value: Any) -> str:
    """MongoDB's name for the BSON type of ``value`` ("string", "int", "long", "object", ...)."""
    return _TYPE_NAMES[bson_type(value)]


def is_number(value: Any) -> bool:
    """True for int, Int64, float and Decimal128 (booleans are not numbers)."""
    return bracket(value) == NUMBER


def compare(a: Any, b: Any) -> int:
    """Compare two BSON values the way MongoDB sorts them: negative, zero or positive."""
    bracket_a = bracket(a)
    bracket_b = bracket(b)
    if bracket_a != bracket_b:
        return -1 if bracket_a < bracket_b else 1
    return _COMPARE_IN_BRACKET[bracket_a](a, b)


def sort_key(value: Any) -> Any:
    """A key for ``sorted`` / ``list.sort`` that orders values as :func:`compare` does."""
    return _SortKey(value)


_SortKey = functools.cmp_to_key(compare)


def _sign(x: Any, y: Any) -> int:
    return int(x > y) - int(x < y)


def _equal(_a: Any, _b: Any) -> int:
    return 0


def as_decimal(value: Any) -> int | float | decimal.Decimal:
    """A number as a Python number that compares exactly with the others (Decimal128 -> Decimal)."""
    if isinstance(value, Decimal128):
        return value.to_decimal()
    number: int | float | decimal.Decimal = value
    return number


def is_nan(number: int | float | decimal.Decimal) -> bool:
    """NaN test for int, float and Decimal alike."""
    if isinstance(number, decimal.Decimal):
        return number.is_nan()
    return number != number


def _compare_numbers(a: Any, b: Any) -> int:
    x = as_decimal(a)
    y = as_decimal(b)
    x_nan = is_nan(x)
    y_nan = is_nan(y)
    if x_nan or y_nan:  # NaN sorts below every number and equals itself
        return int(y_nan) - int(x_nan)
    return _sign(x, y)


def _compare_strings(a: str, b: str) -> int:
    # Code-point order is UTF-8 byte order for every encodable string.
    return _sign(a, b)


def _items(value: Any) -> list[tuple[str, Any]]:
    if isinstance(value, RawBSONDocument):
        return list(decode(value.raw).items())
    if isinstance(value, DBRef):
        return list(value.as_doc().items())
    return list(value.items())


def _compare_objects(a: Any, b: Any) -> int:
    left = _items(a)
    right = _items(b)
    for (key_a, value_a), (key_b, value_b) in zip(left, right, strict=False):
        bracket_a = bracket(value_a)
        bracket_b = bracket(value_b)
        if bracket_a != bracket_b:
            return -1 if bracket_a < bracket_b else 1
        found = _sign(key_a, key_b) or _COMPARE_IN_BRACKET[bracket_a](value_a, value_b)
        if found:
            return found
    return _sign(len(left), len(right))


def _compare_arrays(a: Any, b: Any) -> int:
    for value_a, value_b in zip(a, b, strict=False):
        found = compare(value_a, value_b)
        if found:
            return found
    return _sign(len(a), len(b))


def _binary_parts(value: Any) -> tuple[int, int, bytes]:
    if isinstance(value, uuid.UUID):
        value = Binary(value.bytes, 4)
    subtype = value.subtype if isinstance(value, Binary) else 0
    data = bytes(value)
    return len(data), subtype, data


def _compare_binaries(a: Any, b: Any) -> int:
    return _sign(_binary_parts(a), _binary_parts(b))


def _compare_object_ids(a: ObjectId, b: ObjectId) -> int:
    return _sign(a.binary, b.binary)


def _compare_bools(a: bool, b: bool) -> int:
    return _sign(int(a), int(b))


def date_millis(value: datetime.datetime | DatetimeMS) -> int:
    """Milliseconds since the Unix epoch of a BSON date (naive datetimes are UTC)."""
    if isinstance(value, DatetimeMS):
        return int(value)
    seconds = calendar.timegm(value.utctimetuple())
    return seconds * 1000 + value.microsecond // 1000


def _compare_dates(a: Any, b: Any) -> int:
    return _sign(date_millis(a), date_millis(b))


def _compare_timestamps(a: Timestamp, b: Timestamp) -> int:
    return _sign((a.time, a.inc), (b.time, b.inc))


_REGEX_FLAG_LETTERS = (
    (re.IGNORECASE, "i"),
    (re.LOCALE, "l"),
    (re.MULTILINE, "m"),
    (re.DOTALL, "s"),
    (re.UNICODE, "u"),
    (re.VERBOSE, "x"),
)


def regex_parts(value: Regex[str] | re.Pattern[str]) -> tuple[str, str]:
    """The pattern and the BSON option letters (alphabetical, as stored) of a regex."""
    implicit = 0
    if isinstance(value, re.Pattern):
        implicit = re.UNICODE  # Python adds it to every str pattern; BSON regexes carry it only if asked
        value = Regex.from_native(value)
    flags = (value.flags if isinstance(value.flags, int) else 0) & ~implicit
    letters = "".join(letter for flag, letter in _REGEX_FLAG_LETTERS if flags & flag)
    return str(value.pattern), letters


def _compare_regexes(a: Any, b: Any) -> int:
    return _sign(regex_parts(a), regex_parts(b))


def _compare_code_with_scope(a: Code, b: Code) -> int:
    return _sign(str(a), str(b)) or _compare_objects(a.scope, b.scope)


_COMPARE_IN_BRACKET: dict[int, Callable[[Any, Any], int]] = {
    MINKEY: _equal,
    NULL: _equal,
    NUMBER: _compare_numbers,
    STRING: _compare_strings,
    OBJECT: _compare_objects,
    ARRAY: _compare_arrays,
    BINDATA: _compare_binaries,
    OBJECTID: _compare_object_ids,
    BOOL: _compare_bools,
    DATE: _compare_dates,
    TIMESTAMP: _compare_timestamps,
    REGEX: _compare_regexes,
    CODE: _compare_strings,
    CODE_W_SCOPE: _compare_code_with_scope,
    MAXKEY: _equal,
}


# -- sort keys of find / aggregate ``$sort`` ------------------------------------------------------
# A sort does not compare whole field values: like mongod (its SortKeyGenerator uses the index key
# generator), it takes every key a document would have in an index on the sort pattern (one per
# element of the array a path goes through; an empty array gives ``undefined``, which sorts after
# MinKey and before null; a missing path gives null) and sorts the document by its smallest key
# under the pattern's directions: an ascending sort on an array uses its smallest element, a
# descending one its largest. The comparison of whole values above is unchanged.


class _Undefined:
    """The key of an empty array (BSON undefined): after MinKey, before null."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "undefined"


EMPTY_ARRAY_KEY = _Undefined()


class PositionalSortPath(ValueError):
    """A sort path with a numeric component applied to an array (``a.0`` on ``a: [...]``): mongod
    reads it positionally; the stand-ins do not implement that and refuse it."""


def compare_key_part(a: Any, b: Any) -> int:
    """:func:`compare` extended with :data:`EMPTY_ARRAY_KEY`."""
    a_undefined = a is EMPTY_ARRAY_KEY
    b_undefined = b is EMPTY_ARRAY_KEY
    if a_undefined or b_undefined:
        if a_undefined and b_undefined:
            return 0
        if a_undefined:
            return 1 if bracket(b) == MINKEY else -1
        return -1 if bracket(a) == MINKEY else 1
    return compare(a, b)


_KeyPart = functools.cmp_to_key(compare_key_part)


def compare_sort_keys(a: tuple[Any, ...], b: tuple[Any, ...], ascending: tuple[bool, ...]) -> int:
    """Compare two key tuples under a pattern's directions."""
    for x, y, up in zip(a, b, ascending, strict=True):
        found = compare_key_part(x, y)
        if found:
            return found if up else -found
    return 0


def sort_keys(doc: Mapping[str, Any], paths: tuple[tuple[str, ...], ...]) -> list[tuple[Any, ...]]:
    """Every key of ``doc`` for the dotted ``paths`` (split), as mongod's index key generator makes
    them: the paths may go through one array only (else code 2 "cannot sort with keys that are
    parallel arrays"); a key is made for each of its elements."""
    keys: list[tuple[Any, ...]] = []
    _expand_keys(doc, list(paths), [None] * len(paths), keys)
    return keys


def _along(obj: Any, parts: tuple[str, ...]) -> tuple[Any, tuple[str, ...]]:
    """The value at ``parts`` through sub-documents, or the first array on the way with the rest
    of the path; ``(_MISSING_KEY, ())`` when the path ends (or meets a scalar) before."""
    for i, part in enumerate(parts):
        if not isinstance(obj, Mapping) or part not in obj:
            return _MISSING_KEY, ()
        obj = obj[part]
        if isinstance(obj, list):
            return obj, parts[i + 1 :]
    return obj, ()


_MISSING_KEY = object()


def _expand_keys(
    obj: Any,
    remaining: list[tuple[str, ...] | None],
    fixed: list[Any],
    out: list[tuple[Any, ...]],
) -> None:
    array: list[Any] | None = None
    through: list[int] = []
    remaining = list(remaining)
    fixed = list(fixed)
    for i, parts in enumerate(remaining):
        if parts is None:
            continue
        value, rest = _along(obj, parts)
        if value is _MISSING_KEY:
            fixed[i], remaining[i] = None, None
        elif isinstance(value, list):
            if rest and rest[0].isascii() and rest[0].isdigit():
                raise PositionalSortPath(".".join(parts))
            if array is None:
                array = value
            elif value is not array:
                raise bad_value("cannot sort with keys that are parallel arrays")
            through.append(i)
            remaining[i] = rest
        else:
            fixed[i], remaining[i] = value, None
    if array is None:
        out.append(tuple(fixed))
        return
    for element in array if array else [EMPTY_ARRAY_KEY]:
        sub_fixed = list(fixed)
        sub_remaining = list(remaining)
        for i in through:
            if not sub_remaining[i]:  # the path ends at the array: the element is the key
                sub_fixed[i], sub_remaining[i] = element, None
        _expand_keys(element if isinstance(element, Mapping) else {}, sub_remaining, sub_fixed, out)


def document_sort_key(
    doc: Mapping[str, Any], paths: tuple[tuple[str, ...], ...], ascending: tuple[bool, ...]
) -> tuple[Any, ...]:
    """The key ``doc`` sorts by: the smallest of :func:`sort_keys` under the directions."""
    keys = sort_keys(doc, paths)
    if len(keys) == 1:
        return keys[0]

    def cmp(a: tuple[Any, ...], b: tuple[Any, ...]) -> int:
        return compare_sort_keys(a, b, ascending)

    return min(keys, key=functools.cmp_to_key(cmp))


def sort_documents(
    items: list[Any],
    pattern: list[tuple[str, bool]],
    document: Callable[[Any], Mapping[str, Any]],
) -> list[Any]:
    """``items`` sorted (stably) by ``pattern`` (dotted path, ascending) over ``document(item)``,
    with MongoDB's sort semantics."""
    paths = tuple(tuple(path.split(".")) for path, _ in pattern)
    ascending = tuple(up for _, up in pattern)
    if len(paths) == 1:  # one key: plain values, list.sort's own reverse (stable too)
        single = [(document_sort_key(document(item), paths, ascending)[0], item) for item in items]
        single.sort(key=lambda pair: _KeyPart(pair[0]), reverse=not ascending[0])
        return [item for _, item in single]
    decorated: list[tuple[tuple[Any, ...], Any]] = [
        (document_sort_key(document(item), paths, ascending), item) for item in items
    ]

    def cmp(a: tuple[tuple[Any, ...], Any], b: tuple[tuple[Any, ...], Any]) -> int:
        return compare_sort_keys(a[0], b[0], ascending)

    decorated.sort(key=functools.cmp_to_key(cmp))  # list.sort is stable: ties keep their order
    return [item for _, item in decorated]
