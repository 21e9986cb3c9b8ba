"""BSON comparison order of the stand-in (``backover.mongo.ordering``)."""

from __future__ import annotations

import datetime
import decimal
import re

import pytest
from bson.binary import Binary
from bson.code import Code
from bson.datetime_ms import DatetimeMS
from bson.decimal128 import Decimal128
from bson.int64 import Int64
from bson.max_key import MaxKey
from bson.min_key import MinKey
from bson.objectid import ObjectId
from bson.regex import Regex
from bson.timestamp import Timestamp
from hypothesis import given, settings
from hypothesis import strategies as st

from backover.bsonvalues import canonical_key
from backover.mongo.ordering import bson_type, compare, sort_key, type_name

DAY = datetime.datetime(2024, 5, 1, 12, 0, 0)
OID_LOW = ObjectId("000000000000000000000001")
OID_HIGH = ObjectId("ffffffffffffffffffffffff")

# (smaller, larger): compare must say smaller < larger, and the reverse.
ORDERED_PAIRS = [
    pytest.param(MinKey(), None, id="minkey<null"),
    pytest.param(None, -(10**9), id="null<number"),
    pytest.param(float("inf"), "", id="number<string"),
    pytest.param("zzz", {}, id="string<object"),
    pytest.param({"z": "z"}, [], id="object<array"),
    pytest.param([MaxKey()], Binary(b""), id="array<bindata"),
    pytest.param(Binary(b"\xff" * 20), OID_LOW, id="bindata<objectid"),
    pytest.param(OID_HIGH, False, id="objectid<bool"),
    pytest.param(True, datetime.datetime(1900, 1, 1), id="bool<date"),
    pytest.param(DAY, Timestamp(0, 0), id="date<timestamp"),
    pytest.param(Timestamp(2**31, 5), Regex(""), id="timestamp<regex"),
    pytest.param(Regex("zzz", "imx"), MaxKey(), id="regex<maxkey"),
    pytest.param(Regex("zzz"), Code("a"), id="regex<code"),
    pytest.param(Code("z"), Code("a", {}), id="code<code_with_scope"),
    # numbers compare by value whatever their type
    pytest.param(1, Int64(2), id="int<long"),
    pytest.param(Int64(2), 2.5, id="long<double"),
    pytest.param(2.5, Decimal128("2.6"), id="double<decimal"),
    pytest.param(Decimal128("-1E+400"), -(2**63), id="huge-negative-decimal<long"),
    pytest.param(float("nan"), float("-inf"), id="nan<-inf"),
    pytest.param(Decimal128("NaN"), -(10**30), id="decimal-nan<number"),
    pytest.param(0.1, Decimal128("0.1000000000000000055511151231257828"), id="double-0.1<decimal-just-above"),
    pytest.param(Decimal128("0.1"), 0.1, id="decimal-0.1<double-0.1"),  # 0.1 as a double is slightly above
    pytest.param(2**53, float(2**53 + 2), id="exact-int-vs-double"),
    # strings are binary (UTF-8) ordered: upper case first, code point order beyond the BMP
    pytest.param("B", "a", id="string-binary-case"),
    pytest.param("a", "ab", id="string-prefix"),
    pytest.param("\uffff", "\U0001f600", id="string-utf8-not-utf16"),
    # objects: value type bracket, then field name, then value; the shorter one first
    pytest.param({"a": 1}, {"a": 2}, id="object-by-value"),
    pytest.param({"a": 9}, {"b": 0}, id="object-by-name"),
    pytest.param({"b": 1}, {"a": "x"}, id="object-type-before-name"),
    pytest.param({"a": 1}, {"a": 1, "b": 0}, id="object-prefix"),
    pytest.param({"a": {"x": 1}}, {"a": {"x": 1, "y": None}}, id="object-nested"),
    # arrays element by element, the shorter one first
    pytest.param([1, 2], [1, 3], id="array-by-element"),
    pytest.param([1], [1, MinKey()], id="array-prefix"),
    pytest.param([1, 9, "x"], [2], id="array-first-difference-wins"),
    pytest.param([None], [0], id="array-element-brackets"),
    # BinData: length, then subtype, then bytes
    pytest.param(Binary(b"\xff"), Binary(b"\x00\x00"), id="bindata-length-first"),
    pytest.param(Binary(b"a", 0), Binary(b"a", 4), id="bindata-subtype"),
    pytest.param(b"a", b"b", id="bindata-bytes"),
    pytest.param(ObjectId("5f0000000000000000000000"), ObjectId("600000000000000000000000"), id="objectid"),
    pytest.param(False, True, id="bool"),
    pytest.param(datetime.datetime(1969, 12, 31), datetime.datetime(1970, 1, 1), id="date-before-epoch"),
    pytest.param(DatetimeMS(-(2**62)), datetime.datetime(1, 1, 1), id="date-out-of-range"),
    pytest.param(Timestamp(1, 99), Timestamp(2, 0), id="timestamp-time-first"),
    pytest.param(Timestamp(1, 1), Timestamp(1, 2), id="timestamp-increment"),
    pytest.param(Regex("a", "i"), Regex("b"), id="regex-pattern-first"),
    pytest.param(Regex("a"), Regex("a", "i"), id="regex-flags"),
]


@pytest.mark.parametrize(("smaller", "larger"), ORDERED_PAIRS)
def test_compare_orders_values_like_mongodb(smaller, larger):
    assert compare(smaller, larger) < 0
    assert compare(larger, smaller) > 0


EQUAL_PAIRS = [
    pytest.param(1, Int64(1), id="int=long"),
    pytest.param(1, 1.0, id="int=double"),
    pytest.param(1.0, Decimal128("1.000"), id="double=decimal"),
    pytest.param(-0.0, 0, id="negative-zero"),
    pytest.param(float("nan"), Decimal128("NaN"), id="nan=nan"),
    pytest.param(b"abc", Binary(b"abc", 0), id="bytes=binary-subtype-0"),
    pytest.param(MinKey(), MinKey(), id="minkey"),
    pytest.param(None, None, id="null"),
    pytest.param({"a": [1, {"b": 2}]}, {"a": [1.0, {"b": Int64(2)}]}, id="nested-numbers"),
    pytest.param(datetime.datetime(2020, 1, 1), DatetimeMS(1577836800000), id="datetime=datetime_ms"),
    pytest.param(Regex("^a", "im"), re.compile("^a", re.I | re.M), id="regex=python-pattern"),
]


@pytest.mark.parametrize(("left", "right"), EQUAL_PAIRS)
def test_compare_treats_mongodb_equal_values_as_equal(left, right):
    assert compare(left, right) == 0
    assert compare(right, left) == 0


def test_sort_key_sorts_a_mixed_list_into_bracket_order():
    values = [
        MaxKey(),
        "b",
        True,
        2.5,
        [1],
        None,
        {"a": 1},
        OID_LOW,
        DAY,
        1,
        MinKey(),
        Binary(b"x"),
        Regex("r"),
        Timestamp(1, 1),
        "B",
        Decimal128("-3"),
    ]
    expected = [
        MinKey(),
        None,
        Decimal128("-3"),
        1,
        2.5,
        "B",
        "b",
        {"a": 1},
        [1],
        Binary(b"x"),
        OID_LOW,
        True,
        DAY,
        Timestamp(1, 1),
        Regex("r"),
        MaxKey(),
    ]
    assert sorted(values, key=sort_key) == expected


def test_sort_key_descending_and_stable():
    rows = [("x", 2), ("y", 1.0), ("z", 2.0), ("w", Int64(1))]
    assert [name for name, _ in sorted(rows, key=lambda row: sort_key(row[1]))] == ["y", "w", "x", "z"]


@pytest.mark.parametrize(
    ("value", "number", "name"),
    [
        pytest.param(1.5, 1, "double", id="double"),
        pytest.param("s", 2, "string", id="string"),
        pytest.param({}, 3, "object", id="object"),
        pytest.param([], 4, "array", id="array"),
        pytest.param(b"", 5, "binData", id="bytes"),
        pytest.param(Binary(b"", 4), 5, "binData", id="binary-uuid"),
        pytest.param(OID_LOW, 7, "objectId", id="objectid"),
        pytest.param(False, 8, "bool", id="bool-is-not-int"),
        pytest.param(DAY, 9, "date", id="date"),
        pytest.param(None, 10, "null", id="null"),
        pytest.param(Regex("a"), 11, "regex", id="regex"),
        pytest.param(Code("f()"), 13, "javascript", id="code"),
        pytest.param(Code("f()", {"x": 1}), 15, "javascriptWithScope", id="code-with-scope"),
        pytest.param(2**31 - 1, 16, "int", id="int32-max"),
        pytest.param(2**31, 18, "long", id="python-int-beyond-int32"),
        pytest.param(Int64(1), 18, "long", id="int64"),
        pytest.param(Timestamp(1, 1), 17, "timestamp", id="timestamp"),
        pytest.param(Decimal128("1"), 19, "decimal", id="decimal"),
        pytest.param(MinKey(), -1, "minKey", id="minkey"),
        pytest.param(MaxKey(), 127, "maxKey", id="maxkey"),
    ],
)
def test_bson_type_and_name(value, number, name):
    assert bson_type(value) == number
    assert type_name(value) == name


def test_compare_rejects_non_bson_values():
    with pytest.raises(TypeError):
        compare(object(), 1)


# ------------------------------------------------------------------------------------ properties

_keys = st.text(alphabet="abcxyz_$.0", max_size=3)
_millis = st.integers(min_value=-(2**40), max_value=2**40)
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**31), max_value=2**31 - 1),
    st.integers(min_value=-(2**63), max_value=2**63 - 1).map(Int64),
    st.floats(allow_nan=True, allow_infinity=True),
    st.decimals(min_value=-(10**25), max_value=10**25, places=3).map(lambda d: Decimal128(str(d))),
    st.sampled_from([Decimal128("Infinity"), Decimal128("-Infinity"), Decimal128("1E+6000")]),
    st.sampled_from([Decimal128("NaN"), Decimal128("-0"), Decimal128("1.0"), Decimal128("0.5")]),
    st.text(max_size=4),
    st.binary(max_size=3),
    st.builds(Binary, st.binary(max_size=3), st.sampled_from([0, 4, 5, 128])),
    st.builds(ObjectId, st.binary(min_size=12, max_size=12)),
    _millis.map(lambda ms: datetime.datetime(1970, 1, 1) + datetime.timedelta(milliseconds=ms)),
    st.builds(Timestamp, st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)),
    st.builds(Regex, st.sampled_from(["a", "b", "^x"]), st.sampled_from(["", "i", "ms"])),
    st.sampled_from([MinKey(), MaxKey()]),
)
bson_values = st.recursive(
    _scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(_keys, children, max_size=3),
    ),
    max_leaves=8,
)


def _sign(number: int) -> int:
    return (number > 0) - (number < 0)


@settings(max_examples=300, deadline=None)
@given(bson_values, bson_values)
def test_compare_is_antisymmetric(left, right):
    assert _sign(compare(left, right)) == -_sign(compare(right, left))


@settings(max_examples=300, deadline=None)
@given(bson_values, bson_values)
def test_compare_equality_agrees_with_canonical_key(left, right):
    assert (compare(left, right) == 0) == (canonical_key(left) == canonical_key(right))


@settings(max_examples=200, deadline=None)
@given(st.lists(bson_values, min_size=2, max_size=6))
def test_sorting_yields_a_consistent_total_order(values):
    ordered = sorted(values, key=sort_key)
    for i, earlier in enumerate(ordered):
        for later in ordered[i + 1 :]:
            assert compare(earlier, later) <= 0


@settings(max_examples=200, deadline=None)
@given(st.decimals(min_value=-(10**20), max_value=10**20, places=6), st.floats(allow_nan=False))
def test_decimal_and_double_compare_exactly(dec, number):
    expected = _sign((dec > decimal.Decimal(number)) - (dec < decimal.Decimal(number)))
    assert _sign(compare(Decimal128(str(dec)), number)) == expected
