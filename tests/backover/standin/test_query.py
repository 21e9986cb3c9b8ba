"""The stand-in's query engine (``backover.mongo.query``): which documents a filter matches."""

from __future__ import annotations

import datetime
import timeit

import pytest
from bson.binary import Binary
from bson.code import Code
from bson.decimal128 import Decimal128
from bson.int64 import Int64
from bson.max_key import MaxKey
from bson.min_key import MinKey
from bson.objectid import ObjectId
from bson.raw_bson import RawBSONDocument
from bson.regex import Regex
from bson.timestamp import Timestamp
from hypothesis import given, settings
from hypothesis import strategies as st

from backover.bsonvalues import encode
from backover.mongo.errors import CommandError
from backover.mongo.ordering import bracket, compare
from backover.mongo.query import MISSING, compile_filter, compile_value_predicate, path_values

OID = ObjectId("65a000000000000000000001")
OTHER_OID = ObjectId("65a000000000000000000002")
DAY = datetime.datetime(2024, 5, 1)


def matches(filter_, doc) -> bool:
    return compile_filter(filter_)(doc)


# ----------------------------------------------------------------------------------- equality

CASES = [
    # implicit equality and numbers across types
    pytest.param({"a": 1}, {"a": 1}, True, id="eq-int"),
    pytest.param({"a": 1}, {"a": Int64(1)}, True, id="eq-int-long"),
    pytest.param({"a": 1}, {"a": 1.0}, True, id="eq-int-double"),
    pytest.param({"a": Decimal128("1.00")}, {"a": 1}, True, id="eq-decimal-int"),
    pytest.param({"a": 1}, {"a": True}, False, id="eq-bool-is-not-a-number"),
    pytest.param({"a": 1}, {"a": "1"}, False, id="eq-string-is-not-a-number"),
    pytest.param({"a": float("nan")}, {"a": Decimal128("NaN")}, True, id="eq-nan-equals-nan"),
    pytest.param({"a": "x"}, {"a": Code("x")}, False, id="eq-code-is-not-a-string"),
    pytest.param({"a": OID}, {"a": OID}, True, id="eq-objectid"),
    pytest.param({"a": DAY}, {"a": DAY}, True, id="eq-date"),
    pytest.param({"a": Binary(b"x", 4)}, {"a": Binary(b"x", 0)}, False, id="eq-binary-subtype-matters"),
    # sub-documents: exact, ordered
    pytest.param({"a": {"b": 1, "c": 2}}, {"a": {"b": 1, "c": 2}}, True, id="eq-subdoc"),
    pytest.param({"a": {"b": 1, "c": 2}}, {"a": {"c": 2, "b": 1}}, False, id="eq-subdoc-order-matters"),
    pytest.param({"a": {"b": 1}}, {"a": {"b": 1, "c": 2}}, False, id="eq-subdoc-extra-field"),
    pytest.param({"a": {"b": 1}}, {"a": {"b": 1.0}}, True, id="eq-subdoc-numbers-by-value"),
    # arrays: the whole array or any element
    pytest.param({"a": 2}, {"a": [1, 2, 3]}, True, id="array-any-element"),
    pytest.param({"a": 4}, {"a": [1, 2, 3]}, False, id="array-no-element"),
    pytest.param({"a": [1, 2]}, {"a": [1, 2]}, True, id="array-whole"),
    pytest.param({"a": [2, 1]}, {"a": [1, 2]}, False, id="array-whole-order-matters"),
    pytest.param({"a": [1, 2]}, {"a": [[1, 2], 3]}, True, id="array-element-is-array"),
    pytest.param({"a": 1}, {"a": [[1]]}, False, id="array-nested-not-traversed"),
    pytest.param({"a": {"b": 1}}, {"a": [{"b": 1}, {"b": 2}]}, True, id="array-element-subdoc"),
    pytest.param({"a": []}, {"a": []}, True, id="array-empty-equals-empty"),
    pytest.param({"a": []}, {"a": [[]]}, True, id="array-empty-element"),
    # dotted paths
    pytest.param({"a.b": 1}, {"a": {"b": 1}}, True, id="dotted"),
    pytest.param({"a.b.c": 1}, {"a": {"b": {"c": 1}}}, True, id="dotted-deep"),
    pytest.param({"a.b": 1}, {"a": 5}, False, id="dotted-through-scalar"),
    pytest.param({"a.b": 1}, {"a": [{"b": 2}, {"b": 1}]}, True, id="dotted-through-array"),
    pytest.param({"a.b": 1}, {"a": [{"b": [0, 1]}]}, True, id="dotted-through-array-leaf-array"),
    pytest.param({"a.b.c": 1}, {"a": [{"b": [{"c": 1}]}]}, True, id="dotted-two-arrays"),
    pytest.param({"a.b": 1}, {"a": [[{"b": 1}]]}, False, id="dotted-nested-array-not-traversed"),
    pytest.param({"a.1": 20}, {"a": [10, 20]}, True, id="index"),
    pytest.param({"a.1": 10}, {"a": [10, 20]}, False, id="index-other-element"),
    pytest.param({"a.5": 10}, {"a": [10, 20]}, False, id="index-out-of-range"),
    pytest.param({"a.0.b": 1}, {"a": [{"b": 1}, {"b": 2}]}, True, id="index-then-field"),
    pytest.param({"a.1.b": 1}, {"a": [{"b": 1}, {"b": 2}]}, False, id="index-then-field-other"),
    pytest.param({"a.0": 1}, {"a": {"0": 1}}, True, id="numeric-field-of-subdoc"),
    pytest.param({"a.0": 1}, {"a": [{"0": 1}]}, True, id="numeric-field-in-array-of-docs"),
    pytest.param({"a.01": 1}, {"a": [1]}, False, id="non-canonical-index"),
    pytest.param({"a.0.1": 3}, {"a": [[2, 3]]}, True, id="index-into-nested-array"),
    # null and missing
    pytest.param({"a": None}, {}, True, id="null-matches-missing"),
    pytest.param({"a": None}, {"a": None}, True, id="null-matches-null"),
    pytest.param({"a": None}, {"a": 0}, False, id="null-not-zero"),
    pytest.param({"a": None}, {"a": [1, None]}, True, id="null-array-element"),
    pytest.param({"a": None}, {"a": []}, False, id="null-not-empty-array"),
    pytest.param({"a.b": None}, {"a": 4}, True, id="null-dotted-through-scalar"),
    pytest.param({"a.b": None}, {"a": [{"b": 3}, {}]}, True, id="null-dotted-some-doc-lacks-field"),
    pytest.param({"a.b": None}, {"a": [{"b": 3}, 5]}, False, id="null-dotted-scalars-in-array-do-not-count"),
    pytest.param({"a.b": None}, {"a": []}, False, id="null-dotted-empty-array"),
    pytest.param({"a": {"$eq": None}}, {"b": 1}, True, id="eq-null-missing"),
    # comparisons stay inside a type bracket
    pytest.param({"a": {"$gt": 5}}, {"a": 6}, True, id="gt"),
    pytest.param({"a": {"$gt": 5}}, {"a": 5}, False, id="gt-equal"),
    pytest.param({"a": {"$gte": 5}}, {"a": Int64(5)}, True, id="gte-long"),
    pytest.param({"a": {"$lt": 5}}, {"a": Decimal128("4.9")}, True, id="lt-decimal"),
    pytest.param({"a": {"$lte": 5}}, {"a": 5.0}, True, id="lte-double"),
    pytest.param({"a": {"$gt": 5}}, {"a": "zzz"}, False, id="gt-number-vs-string"),
    pytest.param({"a": {"$lt": 5}}, {"a": None}, False, id="lt-number-vs-null"),
    pytest.param({"a": {"$lt": 5}}, {}, False, id="lt-missing"),
    pytest.param({"a": {"$gt": "a"}}, {"a": "b"}, True, id="gt-string"),
    pytest.param({"a": {"$gt": "a"}}, {"a": "B"}, False, id="gt-string-binary-order"),
    pytest.param({"a": {"$gt": DAY}}, {"a": DAY + datetime.timedelta(milliseconds=1)}, True, id="gt-date"),
    pytest.param({"a": {"$gt": DAY}}, {"a": Timestamp(2**31, 0)}, False, id="gt-date-vs-timestamp"),
    pytest.param({"a": {"$gt": 5}}, {"a": [1, 7]}, True, id="gt-any-element"),
    pytest.param({"a": {"$gt": 5, "$lt": 7}}, {"a": [1, 8]}, True, id="range-split-across-elements"),
    pytest.param({"a": {"$gt": [1]}}, {"a": [2]}, True, id="gt-array-whole"),
    pytest.param({"a": {"$gt": {"x": 1}}}, {"a": {"x": 2}}, True, id="gt-subdoc"),
    pytest.param({"a": {"$gte": None}}, {}, True, id="gte-null-missing"),
    pytest.param({"a": {"$gt": None}}, {"a": None}, False, id="gt-null"),
    pytest.param({"a": {"$gt": float("nan")}}, {"a": 1}, False, id="gt-nan"),
    pytest.param({"a": {"$gte": float("nan")}}, {"a": float("nan")}, True, id="gte-nan-nan"),
    pytest.param({"a": {"$lt": 1}}, {"a": float("nan")}, False, id="lt-value-nan"),
    pytest.param({"a": {"$gt": MinKey()}}, {"a": "anything"}, True, id="gt-minkey"),
    pytest.param({"a": {"$lt": MaxKey()}}, {"a": None}, True, id="lt-maxkey"),
    pytest.param({"a": {"$gt": MaxKey()}}, {"a": 1}, False, id="gt-maxkey"),
    # $ne / $in / $nin
    pytest.param({"a": {"$ne": 1}}, {"a": 2}, True, id="ne"),
    pytest.param({"a": {"$ne": 1}}, {"a": [2, 1]}, False, id="ne-any-element-equal"),
    pytest.param({"a": {"$ne": 1}}, {}, True, id="ne-missing"),
    pytest.param({"a": {"$ne": None}}, {}, False, id="ne-null-missing"),
    pytest.param({"a": {"$in": [1, "x"]}}, {"a": "x"}, True, id="in"),
    pytest.param({"a": {"$in": [1, 2]}}, {"a": [5, 2.0]}, True, id="in-array-element"),
    pytest.param({"a": {"$in": [[1, 2]]}}, {"a": [1, 2]}, True, id="in-whole-array"),
    pytest.param({"a": {"$in": [{"b": 1}]}}, {"a": {"b": 1}}, True, id="in-subdoc"),
    pytest.param({"a": {"$in": [None]}}, {}, True, id="in-null-missing"),
    pytest.param({"a": {"$in": []}}, {"a": 1}, False, id="in-empty"),
    pytest.param({"a": {"$in": [Regex("^ab")]}}, {"a": "abc"}, True, id="in-regex"),
    pytest.param({"a": {"$in": [Regex("^ab")]}}, {"a": "xab"}, False, id="in-regex-no-match"),
    pytest.param({"a": {"$nin": [1, 2]}}, {"a": 3}, True, id="nin"),
    pytest.param({"a": {"$nin": [1, 2]}}, {"a": [3, 2]}, False, id="nin-any-element"),
    pytest.param({"a": {"$nin": [1]}}, {}, True, id="nin-missing"),
    pytest.param({"a": {"$nin": [None]}}, {}, False, id="nin-null-missing"),
    # $exists
    pytest.param({"a": {"$exists": True}}, {"a": None}, True, id="exists-null"),
    pytest.param({"a": {"$exists": True}}, {}, False, id="exists-missing"),
    pytest.param({"a": {"$exists": False}}, {}, True, id="not-exists"),
    pytest.param({"a": {"$exists": 0}}, {"a": 1}, False, id="exists-zero-is-false"),
    pytest.param({"a.b": {"$exists": True}}, {"a": [{"c": 1}, {"b": None}]}, True, id="exists-in-array"),
    pytest.param({"a.b": {"$exists": True}}, {"a": [{"c": 1}]}, False, id="exists-in-array-not"),
    pytest.param({"a": {"$exists": True}}, {"a": []}, True, id="exists-empty-array"),
    # logical
    pytest.param({"$and": [{"a": 1}, {"b": 2}]}, {"a": 1, "b": 2}, True, id="and"),
    pytest.param({"$and": [{"a": 1}, {"b": 2}]}, {"a": 1, "b": 3}, False, id="and-one-fails"),
    pytest.param({"$or": [{"a": 1}, {"b": 2}]}, {"b": 2}, True, id="or"),
    pytest.param({"$or": [{"a": 1}, {"b": 2}]}, {"a": 2}, False, id="or-none"),
    pytest.param({"$nor": [{"a": 1}, {"b": 2}]}, {"a": 2}, True, id="nor"),
    pytest.param({"$nor": [{"a": 1}]}, {"a": [0, 1]}, False, id="nor-array"),
    pytest.param({"a": 1, "$or": [{"b": 1}, {"c": 1}]}, {"a": 1, "c": 1}, True, id="field-and-or"),
    pytest.param({"$comment": "why", "a": 1}, {"a": 1}, True, id="comment-ignored"),
    # $not
    pytest.param({"a": {"$not": {"$gt": 5}}}, {"a": 3}, True, id="not-gt"),
    pytest.param({"a": {"$not": {"$gt": 5}}}, {"a": "x"}, True, id="not-gt-other-type"),
    pytest.param({"a": {"$not": {"$gt": 5}}}, {}, True, id="not-gt-missing"),
    pytest.param({"a": {"$not": {"$gt": 5}}}, {"a": [1, 9]}, False, id="not-gt-array"),
    pytest.param({"a": {"$not": {"$gt": 2, "$lt": 5}}}, {"a": 9}, True, id="not-range"),
    pytest.param({"a": {"$not": Regex("^x")}}, {"a": "xy"}, False, id="not-regex"),
    pytest.param({"a": {"$not": Regex("^x")}}, {"a": "yx"}, True, id="not-regex-no-match"),
    # $type
    pytest.param({"a": {"$type": "string"}}, {"a": "x"}, True, id="type-alias"),
    pytest.param({"a": {"$type": 2}}, {"a": "x"}, True, id="type-number"),
    pytest.param({"a": {"$type": 2.0}}, {"a": "x"}, True, id="type-number-double"),
    pytest.param({"a": {"$type": "int"}}, {"a": Int64(1)}, False, id="type-int-not-long"),
    pytest.param({"a": {"$type": "long"}}, {"a": Int64(1)}, True, id="type-long"),
    pytest.param({"a": {"$type": "number"}}, {"a": Decimal128("1")}, True, id="type-number-alias"),
    pytest.param({"a": {"$type": "number"}}, {"a": True}, False, id="type-bool-not-number"),
    pytest.param({"a": {"$type": "array"}}, {"a": [1]}, True, id="type-array"),
    pytest.param({"a": {"$type": "int"}}, {"a": ["x", 1]}, True, id="type-element"),
    pytest.param({"a": {"$type": ["string", "null"]}}, {"a": None}, True, id="type-list"),
    pytest.param({"a": {"$type": "null"}}, {}, False, id="type-null-not-missing"),
    pytest.param({"a": {"$type": "object"}}, {"a": {}}, True, id="type-object"),
    pytest.param({"a": {"$type": "minKey"}}, {"a": MinKey()}, True, id="type-minkey"),
    # regular expressions
    pytest.param({"a": Regex("^ab")}, {"a": "abc"}, True, id="regex-bare"),
    pytest.param({"a": Regex("^AB", "i")}, {"a": "abc"}, True, id="regex-bare-flags"),
    pytest.param({"a": {"$regex": "^AB", "$options": "i"}}, {"a": "abc"}, True, id="regex-options"),
    pytest.param({"a": {"$regex": "^b", "$options": "m"}}, {"a": "a\nb"}, True, id="regex-multiline"),
    pytest.param({"a": {"$regex": "a.b", "$options": "s"}}, {"a": "a\nb"}, True, id="regex-dotall"),
    pytest.param({"a": {"$regex": "a b", "$options": "x"}}, {"a": "ab"}, True, id="regex-extended"),
    pytest.param({"a": {"$regex": Regex("^x")}}, {"a": "xyz"}, True, id="regex-object-in-operator"),
    pytest.param({"a": {"$regex": "^a"}}, {"a": ["b", "ab"]}, True, id="regex-array-element"),
    pytest.param({"a": {"$regex": "1"}}, {"a": 1}, False, id="regex-not-a-number"),
    pytest.param({"a": Regex("x")}, {"a": Regex("x")}, True, id="regex-equal-stored-regex"),
    pytest.param({"a": {"$eq": Regex("x")}}, {"a": "x"}, False, id="eq-regex-is-literal"),
    pytest.param({"a": {"$eq": Regex("x")}}, {"a": Regex("x")}, True, id="eq-regex-literal-match"),
    # $elemMatch
    pytest.param(
        {"a": {"$elemMatch": {"$gt": 5, "$lt": 7}}}, {"a": [1, 8]}, False, id="elemmatch-one-element"
    ),
    pytest.param({"a": {"$elemMatch": {"$gt": 5, "$lt": 7}}}, {"a": [1, 6]}, True, id="elemmatch-value"),
    pytest.param(
        {"a": {"$elemMatch": {"b": 1, "c": 2}}},
        {"a": [{"b": 1}, {"c": 2}]},
        False,
        id="elemmatch-doc-one-element",
    ),
    pytest.param(
        {"a": {"$elemMatch": {"b": 1, "c": 2}}}, {"a": [{"b": 1, "c": 2}]}, True, id="elemmatch-doc"
    ),
    pytest.param(
        {"a": {"$elemMatch": {"b": {"$gt": 1}}}}, {"a": {"b": 5}}, False, id="elemmatch-needs-array"
    ),
    pytest.param(
        {"a": {"$elemMatch": {"$or": [{"b": 1}, {"c": 1}]}}}, {"a": [{"c": 1}]}, True, id="elemmatch-logical"
    ),
    pytest.param({"a": {"$elemMatch": {"$ne": None}}}, {"a": [None, None]}, False, id="elemmatch-ne-null"),
    pytest.param(
        {"a.b": {"$elemMatch": {"$eq": 3}}},
        {"a": [{"b": [1]}, {"b": [3]}]},
        True,
        id="elemmatch-under-array-path",
    ),
    # $size
    pytest.param({"a": {"$size": 2}}, {"a": [1, [2, 3]]}, True, id="size"),
    pytest.param({"a": {"$size": 2}}, {"a": [[1, 2]]}, False, id="size-not-traversed"),
    pytest.param({"a": {"$size": 0}}, {"a": []}, True, id="size-zero"),
    pytest.param({"a": {"$size": 1}}, {"a": "x"}, False, id="size-not-array"),
    # $all
    pytest.param({"a": {"$all": [1, 2]}}, {"a": [2, 3, 1]}, True, id="all"),
    pytest.param({"a": {"$all": [1, 2]}}, {"a": [1, 3]}, False, id="all-missing-one"),
    pytest.param({"a": {"$all": [1]}}, {"a": 1}, True, id="all-scalar"),
    pytest.param({"a": {"$all": []}}, {"a": []}, False, id="all-empty-matches-nothing"),
    pytest.param({"a": {"$all": [[1, 2]]}}, {"a": [1, 2]}, True, id="all-whole-array"),
    pytest.param({"a": {"$all": [Regex("^x"), "y"]}}, {"a": ["xa", "y"]}, True, id="all-regex"),
    pytest.param(
        {"a": {"$all": [{"$elemMatch": {"b": 1}}, {"$elemMatch": {"c": 1}}]}},
        {"a": [{"b": 1}, {"c": 1}]},
        True,
        id="all-elemmatch",
    ),
    # $mod
    pytest.param({"a": {"$mod": [4, 1]}}, {"a": 9}, True, id="mod"),
    pytest.param({"a": {"$mod": [4, -1]}}, {"a": -9}, True, id="mod-negative-truncates"),
    pytest.param({"a": {"$mod": [4, 1]}}, {"a": 9.7}, True, id="mod-double-truncated"),
    pytest.param({"a": {"$mod": [4, 1]}}, {"a": "9"}, False, id="mod-string"),
]


@pytest.mark.parametrize(("filter_", "doc", "expected"), CASES)
def test_filter_matches_like_mongodb(filter_, doc, expected):
    assert matches(filter_, doc) is expected


# The documents and expected results of mongod's jstests/core/null_query_semantics.js.
NULL_DOCS = {
    "a_empty_subobject": {"a": {}},
    "a_null": {"a": None},
    "a_number": {"a": 4},
    "a_subobject_b_not_null": {"a": {"b": "hi"}},
    "a_subobject_b_null": {"a": {"b": None}},
    "no_a": {},
    "a_double_array": {"a": [[]]},
    "a_empty_array": {"a": []},
    "a_object_array_all_b_nulls": {"a": [{"b": None}, {"b": None}, {}]},
    "a_object_array_no_b_nulls": {"a": [{"b": 1}, {"b": 3}, {"b": "string"}]},
    "a_object_array_some_b_nulls": {"a": [{"b": None}, {"b": 3}, {"b": None}]},
    "a_object_array_some_b_missing": {"a": [{"b": 3}, {}]},
    "a_value_array_all_nulls": {"a": [None, None]},
    "a_value_array_no_nulls": {"a": [1, "string", 4]},
    "a_value_array_with_null": {"a": [1, "string", None, 4]},
}
B_NULL_OBJECTS = {
    "a_object_array_all_b_nulls",
    "a_object_array_some_b_nulls",
    "a_object_array_some_b_missing",
}
DOTTED_NULL = {"a_empty_subobject", "a_null", "a_number", "a_subobject_b_null", "no_a"} | B_NULL_OBJECTS


@pytest.mark.parametrize(
    ("filter_", "expected"),
    [
        pytest.param(
            {"a": {"$eq": None}},
            {"a_null", "no_a", "a_value_array_all_nulls", "a_value_array_with_null"},
            id="eq-null",
        ),
        pytest.param(
            {"a": {"$in": [None, 75]}},
            {"a_null", "no_a", "a_value_array_all_nulls", "a_value_array_with_null"},
            id="in-null",
        ),
        pytest.param({"a.b": {"$eq": None}}, DOTTED_NULL, id="dotted-eq-null"),
        pytest.param({"a.b": {"$ne": None}}, set(NULL_DOCS) - DOTTED_NULL, id="dotted-ne-null"),
        pytest.param({"a.b": {"$nin": [None, 75]}}, set(NULL_DOCS) - DOTTED_NULL, id="dotted-nin-null"),
        pytest.param(
            {"a": {"$elemMatch": {"$eq": None}}},
            {"a_value_array_all_nulls", "a_value_array_with_null"},
            id="elemmatch-eq-null",
        ),
        pytest.param(
            {"a": {"$elemMatch": {"b": {"$eq": None}}}},
            {"a_double_array"} | B_NULL_OBJECTS,
            id="elemmatch-object-b-null",
        ),
        pytest.param(
            {"a": {"$elemMatch": {"b": {"$ne": None}}}},
            {"a_object_array_no_b_nulls", "a_object_array_some_b_nulls", "a_object_array_some_b_missing"},
            id="elemmatch-object-b-not-null",
        ),
        pytest.param(
            {"a.b": {"$exists": False}},
            {
                "no_a",
                "a_empty_subobject",
                "a_null",
                "a_number",
                "a_double_array",
                "a_empty_array",
                "a_value_array_all_nulls",
                "a_value_array_no_nulls",
                "a_value_array_with_null",
            },
            id="dotted-exists-false",
        ),
    ],
)
def test_null_semantics_match_mongod_jstests(filter_, expected):
    match = compile_filter(filter_)
    assert {name for name, doc in NULL_DOCS.items() if match(doc)} == expected


# ----------------------------------------------------------------------------------- fast paths


def test_empty_filter_matches_every_document():
    match = compile_filter({})
    assert all(match(doc) for doc in ({}, {"_id": 1}, {"a": [None]}))


@pytest.mark.parametrize(
    ("wanted", "doc", "expected"),
    [
        pytest.param(OID, {"_id": OID, "a": 1}, True, id="objectid"),
        pytest.param(OID, {"_id": OTHER_OID}, False, id="other-objectid"),
        pytest.param(OID, {"_id": str(OID)}, False, id="objectid-vs-its-hex-string"),
        pytest.param("k", {"_id": "k"}, True, id="string"),
        pytest.param("k", {"_id": Code("k")}, False, id="string-vs-code"),
        pytest.param(1, {"_id": 1.0}, True, id="int-vs-double"),
        pytest.param(Int64(7), {"_id": Decimal128("7")}, True, id="long-vs-decimal"),
        pytest.param(1, {"_id": True}, False, id="int-vs-bool"),
        pytest.param(1, {}, False, id="no-id"),
        pytest.param(None, {}, True, id="null-id-matches-missing"),
        pytest.param({"x": 1}, {"_id": {"x": 1}}, True, id="document-id"),
        pytest.param({"$in": [1, 2]}, {"_id": 2}, True, id="operator-not-mistaken-for-id"),
    ],
)
def test_id_filter(wanted, doc, expected):
    assert matches({"_id": wanted}, doc) is expected


def test_id_filter_costs_about_a_dict_lookup():
    match = compile_filter({"_id": OID})
    doc = {"_id": OID, "payload": list(range(50))}

    def baseline(d):
        return d.get("_id") == OID

    matcher_time = min(timeit.repeat(lambda: match(doc), number=20_000, repeat=5))
    baseline_time = min(timeit.repeat(lambda: baseline(doc), number=20_000, repeat=5))
    assert matcher_time < baseline_time * 4


def test_filter_accepts_raw_bson_documents():
    raw = RawBSONDocument(encode({"a": {"$in": [{"b": 1}]}}))
    assert compile_filter(raw)({"a": {"b": 1}})


# ------------------------------------------------------------------------------------- errors

ERRORS = [
    pytest.param({"a": {"$foo": 1}}, "unknown operator: $foo", id="unknown-operator"),
    pytest.param({"a": {"$gt": 1, "b": 1}}, "unknown operator: b", id="field-among-operators"),
    pytest.param({"$foo": [{}]}, "unknown top level operator: $foo", id="unknown-top-level"),
    pytest.param({"$where": "true"}, "unknown top level operator: $where", id="where-unsupported"),
    pytest.param({"a": {"$near": [0, 0]}}, "unknown operator: $near", id="geo-unsupported"),
    pytest.param({"$and": []}, "$and argument must be a non-empty array", id="and-empty"),
    pytest.param({"$or": [1]}, "$or argument's entries must be objects", id="or-entries"),
    pytest.param({"a": {"$in": 1}}, "$in needs an array", id="in-not-array"),
    pytest.param({"a": {"$nin": {"b": 1}}}, "$nin needs an array", id="nin-not-array"),
    pytest.param({"a": {"$in": [{"$gt": 1}]}}, "cannot nest $ under $in", id="in-nested-operator"),
    pytest.param({"a": {"$size": "2"}}, "$size needs a number", id="size-string"),
    pytest.param({"a": {"$size": -1}}, "$size may not be negative", id="size-negative"),
    pytest.param({"a": {"$size": 1.5}}, "$size must be a whole number", id="size-fraction"),
    pytest.param({"a": {"$type": "nope"}}, "Unknown type name alias: nope", id="type-alias"),
    pytest.param({"a": {"$type": 99}}, "Invalid numerical type code: 99", id="type-code"),
    pytest.param({"a": {"$not": {}}}, "$not cannot be empty", id="not-empty"),
    pytest.param({"a": {"$not": 5}}, "$not needs a regex or a document", id="not-scalar"),
    pytest.param({"a": {"$options": "i"}}, "$options needs a $regex", id="options-alone"),
    pytest.param(
        {"a": {"$regex": Regex("x", "i"), "$options": "m"}},
        "options set in both $regex and $options",
        id="options-twice",
    ),
    pytest.param({"a": {"$regex": "("}}, "Regular expression is invalid", id="bad-regex"),
    pytest.param({"a": {"$regex": "x", "$options": "q"}}, "invalid flag in regex options: q", id="bad-flag"),
    pytest.param({"a": {"$elemMatch": 1}}, "$elemMatch needs an Object", id="elemmatch-scalar"),
    pytest.param({"a": {"$all": 1}}, "$all needs an array", id="all-scalar"),
    pytest.param(
        {"a": {"$all": [{"$elemMatch": {}}, 1]}}, "$all/$elemMatch has to be consistent", id="all-mixed"
    ),
    pytest.param({"a": {"$mod": [0, 1]}}, "divisor cannot be 0", id="mod-zero"),
    pytest.param({"a": {"$mod": [1]}}, "malformed mod, not enough elements", id="mod-short"),
    pytest.param({"a": {"$ne": Regex("x")}}, "Can't have regex as arg to $ne.", id="ne-regex"),
    pytest.param({"a": {"$elemMatch": {"$foo": 1}}}, "unknown operator: $foo", id="nested-unknown"),
]


@pytest.mark.parametrize(("filter_", "message"), ERRORS)
def test_invalid_filters_are_rejected_with_bad_value(filter_, message):
    with pytest.raises(CommandError) as raised:
        compile_filter(filter_)
    assert (raised.value.code, raised.value.code_name) == (2, "BadValue")
    assert raised.value.message.startswith(message)


# ----------------------------------------------------------------------------- helper functions


def test_value_predicate_applies_operators_to_the_value_itself():
    predicate = compile_value_predicate({"$gte": 6, "$lt": 9})
    assert [value for value in (5, 6, 8.5, 9, [7], "7") if predicate(value)] == [6, 8.5]


def test_path_values_lists_what_a_path_reaches():
    doc = {"a": [{"b": 1}, {"c": 2}, {"b": [3, 4]}]}
    assert path_values(doc, "a.b") == [1, MISSING, 3, 4, [3, 4]]


# ------------------------------------------------------------------------------------ properties

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=False),
    st.text(max_size=3),
    st.integers(-(2**40), 2**40).map(Int64),
    st.sampled_from([OID, OTHER_OID, DAY, MinKey(), MaxKey()]),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.sampled_from("xyz"), inner, max_size=2)
    ),
    max_leaves=6,
)


@settings(max_examples=200, deadline=None)
@given(_values)
def test_a_value_matches_itself_in_every_equality_form(value):
    doc = {"a": value}
    assert matches({"a": value}, doc)
    assert matches({"a": {"$eq": value}}, doc)
    assert matches({"a": {"$in": [value]}}, doc)
    assert matches({"a": {"$all": [value]}}, doc)
    assert not matches({"a": {"$ne": value}}, doc)
    assert not matches({"a": {"$nin": [value]}}, doc)


@settings(max_examples=200, deadline=None)
@given(_values, _values)
def test_an_array_matches_equality_to_any_of_its_elements(element, other):
    assert matches({"a": element}, {"a": [other, element]})


@settings(max_examples=300, deadline=None)
@given(_scalars, _scalars, st.sampled_from(["$gt", "$gte", "$lt", "$lte"]))
def test_comparisons_agree_with_bson_order_within_a_bracket(value, bound, operator):
    result = matches({"a": {operator: bound}}, {"a": value})
    if value is None or bound is None or isinstance(bound, (MinKey, MaxKey)):
        return  # null and MinKey/MaxKey bounds have their own rules, tested above
    if bracket(value) != bracket(bound):
        assert result is False
        return
    order = compare(value, bound)
    expected = {"$gt": order > 0, "$gte": order >= 0, "$lt": order < 0, "$lte": order <= 0}[operator]
    assert result is expected


_filters = st.sampled_from(
    [
        {"a": 1},
        {"a": {"$gt": 0}},
        {"a.x": None},
        {"a": {"$exists": False}},
        {"a": {"$type": "array"}},
        {"a": {"$elemMatch": {"$lt": 5}}},
        {"a": {"$size": 1}},
        {"a": {"$in": [None, "x"]}},
    ]
)


@settings(max_examples=200, deadline=None)
@given(_filters, _values)
def test_nor_and_not_are_exact_complements(filter_, value):
    doc = {"a": value}
    positive = matches(filter_, doc)
    assert matches({"$nor": [filter_]}, doc) is not positive
    field_condition = filter_.get("a")
    if isinstance(field_condition, dict) and next(iter(field_condition)).startswith("$"):
        assert matches({"a": {"$not": field_condition}}, doc) is not positive
