"""The stand-in's update engine (``backover.mongo.update``): what an update does to a document."""

from __future__ import annotations

import copy
import datetime

import pytest
from bson.decimal128 import Decimal128
from bson.int64 import Int64
from bson.objectid import ObjectId
from bson.regex import Regex
from bson.timestamp import Timestamp
from hypothesis import given, settings
from hypothesis import strategies as st

from backover.bsonvalues import encode
from backover.mongo.errors import CommandError
from backover.mongo.update import (
    apply_replacement,
    apply_update,
    is_replacement,
    update_description,
    upsert_seed,
)

NOW = datetime.datetime(2024, 6, 1, 12, 30, 45, 123000)


def assert_same(actual, expected):
    """Equal values, and also the same BSON: field order and exact numeric types."""
    assert actual == expected
    assert encode(actual) == encode(expected), f"{actual!r} != {expected!r} (order or types differ)"


def update(doc, spec, *, inserting=False):
    return apply_update(doc, spec, inserting=inserting, now=NOW)


# ------------------------------------------------------------------------------------- operators

OPERATOR_CASES = [
    # $set
    pytest.param(
        {"_id": 1, "a": 1, "b": 2},
        {"$set": {"a": 5}},
        {"_id": 1, "a": 5, "b": 2},
        id="set-existing-keeps-place",
    ),
    pytest.param({"_id": 1, "b": 2}, {"$set": {"a": 5}}, {"_id": 1, "b": 2, "a": 5}, id="set-new-appended"),
    pytest.param(
        {"_id": 1},
        {"$set": {"z": 1, "b": 2}, "$inc": {"a": 1}},
        {"_id": 1, "a": 1, "b": 2, "z": 1},
        id="set-new-fields-in-path-order-across-operators",
    ),
    pytest.param(
        {"_id": 1}, {"$set": {"a.b.c": 1}}, {"_id": 1, "a": {"b": {"c": 1}}}, id="set-creates-documents"
    ),
    pytest.param(
        {"_id": 1, "a": {"x": 0}}, {"$set": {"a.y": 1}}, {"_id": 1, "a": {"x": 0, "y": 1}}, id="set-nested"
    ),
    pytest.param(
        {"_id": 1, "a": [1, 2]}, {"$set": {"a.1": 9}}, {"_id": 1, "a": [1, 9]}, id="set-array-index"
    ),
    pytest.param(
        {"_id": 1, "a": [1]},
        {"$set": {"a.3": 9}},
        {"_id": 1, "a": [1, None, None, 9]},
        id="set-past-end-pads-null",
    ),
    pytest.param(
        {"_id": 1, "a": [1]},
        {"$set": {"a.10": "x", "a.9": "y"}},
        {"_id": 1, "a": [1] + [None] * 8 + ["y", "x"]},
        id="set-numeric-paths-in-numeric-order",
    ),
    pytest.param(
        {"_id": 1, "a": [{"b": 1}]},
        {"$set": {"a.0.c": 2}},
        {"_id": 1, "a": [{"b": 1, "c": 2}]},
        id="set-inside-array-element",
    ),
    pytest.param(
        {"_id": 1}, {"$set": {"a.0": 1}}, {"_id": 1, "a": {"0": 1}}, id="set-numeric-on-missing-is-field"
    ),
    pytest.param(
        {"_id": 1, "a": None},
        {"$set": {"a": {"b": [1, {"c": 2}]}}},
        {"_id": 1, "a": {"b": [1, {"c": 2}]}},
        id="set-whole-subdocument",
    ),
    pytest.param({"_id": 1}, {"$set": {}}, {"_id": 1}, id="set-empty-is-a-no-op"),
    # $unset
    pytest.param({"_id": 1, "a": 1, "b": 2}, {"$unset": {"a": ""}}, {"_id": 1, "b": 2}, id="unset"),
    pytest.param(
        {"_id": 1, "a": {"b": 1, "c": 2}},
        {"$unset": {"a.b": 1}},
        {"_id": 1, "a": {"c": 2}},
        id="unset-nested",
    ),
    pytest.param(
        {"_id": 1, "a": [1, 2, 3]},
        {"$unset": {"a.1": 1}},
        {"_id": 1, "a": [1, None, 3]},
        id="unset-array-element-leaves-null",
    ),
    pytest.param(
        {"_id": 1, "a": 5},
        {"$unset": {"b": 1, "a.c": 1, "x.y": 1}},
        {"_id": 1, "a": 5},
        id="unset-missing-is-a-no-op",
    ),
    # $inc and numeric types
    pytest.param({"_id": 1, "n": 1}, {"$inc": {"n": 2}}, {"_id": 1, "n": 3}, id="inc-int"),
    pytest.param(
        {"_id": 1, "n": 2**31 - 1},
        {"$inc": {"n": 1}},
        {"_id": 1, "n": Int64(2**31)},
        id="inc-int32-overflow-becomes-long",
    ),
    pytest.param(
        {"_id": 1, "n": 1}, {"$inc": {"n": Int64(1)}}, {"_id": 1, "n": Int64(2)}, id="inc-int-plus-long"
    ),
    pytest.param(
        {"_id": 1, "n": Int64(1)}, {"$inc": {"n": 1}}, {"_id": 1, "n": Int64(2)}, id="inc-long-plus-int"
    ),
    pytest.param({"_id": 1, "n": 1}, {"$inc": {"n": 0.5}}, {"_id": 1, "n": 1.5}, id="inc-int-plus-double"),
    pytest.param(
        {"_id": 1, "n": Int64(2)}, {"$inc": {"n": 1.0}}, {"_id": 1, "n": 3.0}, id="inc-long-plus-double"
    ),
    pytest.param(
        {"_id": 1, "n": Decimal128("1.1")},
        {"$inc": {"n": Decimal128("2.2")}},
        {"_id": 1, "n": Decimal128("3.3")},
        id="inc-decimal",
    ),
    pytest.param(
        {"_id": 1, "n": 1},
        {"$inc": {"n": Decimal128("0.5")}},
        {"_id": 1, "n": Decimal128("1.5")},
        id="inc-int-plus-decimal",
    ),
    pytest.param(
        {"_id": 1, "n": 0.1},
        {"$inc": {"n": Decimal128("0")}},
        {"_id": 1, "n": Decimal128("0.1")},
        id="inc-double-to-decimal-15-digits",
    ),
    pytest.param({"_id": 1}, {"$inc": {"n": Int64(5)}}, {"_id": 1, "n": Int64(5)}, id="inc-missing-sets-arg"),
    pytest.param({"_id": 1, "n": -3}, {"$inc": {"n": -2}}, {"_id": 1, "n": -5}, id="inc-negative"),
    # $mul
    pytest.param({"_id": 1, "n": 3}, {"$mul": {"n": 4}}, {"_id": 1, "n": 12}, id="mul"),
    pytest.param(
        {"_id": 1, "n": 2**20},
        {"$mul": {"n": 2**20}},
        {"_id": 1, "n": Int64(2**40)},
        id="mul-int32-overflow-becomes-long",
    ),
    pytest.param(
        {"_id": 1}, {"$mul": {"n": Int64(3)}}, {"_id": 1, "n": Int64(0)}, id="mul-missing-is-zero-long"
    ),
    pytest.param({"_id": 1}, {"$mul": {"n": 2.5}}, {"_id": 1, "n": 0.0}, id="mul-missing-is-zero-double"),
    pytest.param({"_id": 1, "n": 3}, {"$mul": {"n": 0.5}}, {"_id": 1, "n": 1.5}, id="mul-int-by-double"),
    # $min / $max (BSON order across types)
    pytest.param({"_id": 1, "n": 5}, {"$min": {"n": 3}}, {"_id": 1, "n": 3}, id="min-lower"),
    pytest.param({"_id": 1, "n": 5}, {"$min": {"n": 7}}, {"_id": 1, "n": 5}, id="min-higher-kept"),
    pytest.param({"_id": 1, "n": 5}, {"$min": {"n": 5.0}}, {"_id": 1, "n": 5}, id="min-equal-keeps-type"),
    pytest.param(
        {"_id": 1, "n": 5}, {"$min": {"n": None}}, {"_id": 1, "n": None}, id="min-null-below-numbers"
    ),
    pytest.param(
        {"_id": 1, "n": 5}, {"$max": {"n": "a"}}, {"_id": 1, "n": "a"}, id="max-string-above-numbers"
    ),
    pytest.param({"_id": 1}, {"$max": {"n": 1}}, {"_id": 1, "n": 1}, id="max-missing"),
    pytest.param(
        {"_id": 1, "d": NOW},
        {"$max": {"d": NOW + datetime.timedelta(days=1)}},
        {"_id": 1, "d": NOW + datetime.timedelta(days=1)},
        id="max-date",
    ),
    # $rename
    pytest.param(
        {"_id": 1, "a": 1, "b": 2}, {"$rename": {"a": "c"}}, {"_id": 1, "b": 2, "c": 1}, id="rename-appends"
    ),
    pytest.param(
        {"_id": 1, "a": {"x": 1}, "b": {}},
        {"$rename": {"a.x": "b.y"}},
        {"_id": 1, "a": {}, "b": {"y": 1}},
        id="rename-nested",
    ),
    pytest.param(
        {"_id": 1, "a": 1, "c": 9}, {"$rename": {"a": "c"}}, {"_id": 1, "c": 1}, id="rename-overwrites"
    ),
    pytest.param(
        {"_id": 1, "b": 2}, {"$rename": {"a": "c"}}, {"_id": 1, "b": 2}, id="rename-missing-is-a-no-op"
    ),
    # $currentDate
    pytest.param({"_id": 1}, {"$currentDate": {"d": True}}, {"_id": 1, "d": NOW}, id="current-date"),
    pytest.param(
        {"_id": 1},
        {"$currentDate": {"d": {"$type": "date"}}},
        {"_id": 1, "d": NOW},
        id="current-date-type-date",
    ),
    # $push
    pytest.param({"_id": 1, "a": [1]}, {"$push": {"a": 2}}, {"_id": 1, "a": [1, 2]}, id="push"),
    pytest.param(
        {"_id": 1, "a": [1]}, {"$push": {"a": [2, 3]}}, {"_id": 1, "a": [1, [2, 3]]}, id="push-array-value"
    ),
    pytest.param({"_id": 1}, {"$push": {"a": 1}}, {"_id": 1, "a": [1]}, id="push-missing-creates"),
    pytest.param(
        {"_id": 1, "a": [1]}, {"$push": {"a": {"$each": [2, 3]}}}, {"_id": 1, "a": [1, 2, 3]}, id="push-each"
    ),
    pytest.param(
        {"_id": 1, "a": [1, 2]},
        {"$push": {"a": {"$each": [3, 4], "$slice": 3}}},
        {"_id": 1, "a": [1, 2, 3]},
        id="push-slice-positive",
    ),
    pytest.param(
        {"_id": 1, "a": [1, 2]},
        {"$push": {"a": {"$each": [3, 4], "$slice": -3}}},
        {"_id": 1, "a": [2, 3, 4]},
        id="push-slice-negative",
    ),
    pytest.param(
        {"_id": 1, "a": [1, 2]},
        {"$push": {"a": {"$each": [3], "$slice": 0}}},
        {"_id": 1, "a": []},
        id="push-slice-zero",
    ),
    pytest.param(
        {"_id": 1, "a": [1, 2]},
        {"$push": {"a": {"$each": [0], "$position": 0}}},
        {"_id": 1, "a": [0, 1, 2]},
        id="push-position-front",
    ),
    pytest.param(
        {"_id": 1, "a": [1, 2, 3]},
        {"$push": {"a": {"$each": ["x", "y"], "$position": -1}}},
        {"_id": 1, "a": [1, 2, "x", "y", 3]},
        id="push-position-negative",
    ),
    pytest.param(
        {"_id": 1, "a": [1, 2]},
        {"$push": {"a": {"$each": [9], "$position": 99}}},
        {"_id": 1, "a": [1, 2, 9]},
        id="push-position-past-end",
    ),
    pytest.param(
        {"_id": 1, "a": [3, 1]},
        {"$push": {"a": {"$each": [2], "$sort": -1, "$slice": 2}}},
        {"_id": 1, "a": [3, 2]},
        id="push-sort-then-slice",
    ),
    pytest.param(
        {"_id": 1, "a": [{"s": 2}, {"s": 1}]},
        {"$push": {"a": {"$each": [{"s": 0}], "$sort": {"s": 1}}}},
        {"_id": 1, "a": [{"s": 0}, {"s": 1}, {"s": 2}]},
        id="push-sort-by-field",
    ),
    # $addToSet
    pytest.param(
        {"_id": 1, "a": [1, 2]}, {"$addToSet": {"a": 3}}, {"_id": 1, "a": [1, 2, 3]}, id="add-to-set"
    ),
    pytest.param(
        {"_id": 1, "a": [1, 2]},
        {"$addToSet": {"a": 2.0}},
        {"_id": 1, "a": [1, 2]},
        id="add-to-set-numeric-equality",
    ),
    pytest.param(
        {"_id": 1, "a": [{"x": 1, "y": 2}]},
        {"$addToSet": {"a": {"y": 2, "x": 1}}},
        {"_id": 1, "a": [{"x": 1, "y": 2}, {"y": 2, "x": 1}]},
        id="add-to-set-document-field-order",
    ),
    pytest.param(
        {"_id": 1, "a": [1]},
        {"$addToSet": {"a": {"$each": [2, 1, 2, 3]}}},
        {"_id": 1, "a": [1, 2, 3]},
        id="add-to-set-each",
    ),
    pytest.param(
        {"_id": 1},
        {"$addToSet": {"a": {"$each": [1, 1]}}},
        {"_id": 1, "a": [1]},
        id="add-to-set-missing-creates",
    ),
    # $pull / $pullAll
    pytest.param(
        {"_id": 1, "a": [1, 2, 1, 3]}, {"$pull": {"a": 1}}, {"_id": 1, "a": [2, 3]}, id="pull-value"
    ),
    pytest.param(
        {"_id": 1, "a": [1, 2.0, Int64(2)]},
        {"$pull": {"a": 2}},
        {"_id": 1, "a": [1]},
        id="pull-numeric-equality",
    ),
    pytest.param(
        {"_id": 1, "a": [5, 6, 7, 8, 9]},
        {"$pull": {"a": {"$gte": 6, "$lt": 8}}},
        {"_id": 1, "a": [5, 8, 9]},
        id="pull-condition",
    ),
    pytest.param(
        {"_id": 1, "a": [{"s": 8, "i": "B"}, {"s": 8, "i": "C"}, {"s": 7}]},
        {"$pull": {"a": {"s": 8, "i": "B"}}},
        {"_id": 1, "a": [{"s": 8, "i": "C"}, {"s": 7}]},
        id="pull-document-query",
    ),
    pytest.param(
        {"_id": 1, "a": [{"s": 8, "extra": 1}, 8]},
        {"$pull": {"a": {"s": 8}}},
        {"_id": 1, "a": [8]},
        id="pull-document-query-matches-superset",
    ),
    pytest.param(
        {"_id": 1, "a": [[1, 2], [2, 1]]},
        {"$pull": {"a": [1, 2]}},
        {"_id": 1, "a": [[2, 1]]},
        id="pull-exact-array",
    ),
    pytest.param(
        {"_id": 1, "a": ["apple", "banana"]},
        {"$pull": {"a": Regex("^b")}},
        {"_id": 1, "a": ["apple"]},
        id="pull-regex",
    ),
    pytest.param({"_id": 1}, {"$pull": {"a": 1}}, {"_id": 1}, id="pull-missing-is-a-no-op"),
    pytest.param(
        {"_id": 1, "a": [1, 2, 3, 1]}, {"$pullAll": {"a": [1, 3]}}, {"_id": 1, "a": [2]}, id="pull-all"
    ),
    # $pop
    pytest.param({"_id": 1, "a": [1, 2, 3]}, {"$pop": {"a": 1}}, {"_id": 1, "a": [1, 2]}, id="pop-last"),
    pytest.param({"_id": 1, "a": [1, 2, 3]}, {"$pop": {"a": -1}}, {"_id": 1, "a": [2, 3]}, id="pop-first"),
    pytest.param({"_id": 1, "a": []}, {"$pop": {"a": 1}}, {"_id": 1, "a": []}, id="pop-empty"),
    pytest.param({"_id": 1}, {"$pop": {"a": 1}}, {"_id": 1}, id="pop-missing"),
    # _id may be set to the value it already has
    pytest.param({"_id": 1, "a": 1}, {"$set": {"_id": 1}}, {"_id": 1, "a": 1}, id="set-id-unchanged"),
    pytest.param(
        {"_id": {"x": 1}}, {"$set": {"_id.x": 1}}, {"_id": {"x": 1}}, id="set-id-subfield-unchanged"
    ),
]


@pytest.mark.parametrize(("doc", "spec", "expected"), OPERATOR_CASES)
def test_operator_updates_produce_mongodb_documents(doc, spec, expected):
    assert_same(update(doc, spec), expected)


def test_current_date_timestamp():
    result = update({"_id": 1}, {"$currentDate": {"t": {"$type": "timestamp"}}})
    assert isinstance(result["t"], Timestamp)
    assert result["t"].time == int(NOW.replace(tzinfo=datetime.UTC).timestamp())


def test_current_date_defaults_to_now_in_milliseconds():
    before = datetime.datetime.now(datetime.UTC).replace(tzinfo=None) - datetime.timedelta(seconds=1)
    stamped = apply_update({"_id": 1}, {"$currentDate": {"d": True}}, inserting=False)["d"]
    assert before <= stamped <= before + datetime.timedelta(seconds=60)
    assert stamped.microsecond % 1000 == 0


@pytest.mark.parametrize(
    ("inserting", "expected"),
    [
        pytest.param(True, {"_id": 1, "a": 1, "b": 2}, id="inserting"),
        pytest.param(False, {"_id": 1, "a": 1}, id="updating"),
    ],
)
def test_set_on_insert_applies_only_when_inserting(inserting, expected):
    result = update({"_id": 1}, {"$set": {"a": 1}, "$setOnInsert": {"b": 2}}, inserting=inserting)
    assert_same(result, expected)


def test_inserting_puts_a_new_id_first():
    result = update({"a": 1}, {"$set": {"_id": ObjectId("65a000000000000000000001"), "b": 2}}, inserting=True)
    assert list(result) == ["_id", "a", "b"]


def test_apply_update_never_mutates_its_inputs():
    doc = {"_id": 1, "a": {"b": [1, {"c": 2}]}, "arr": [3, 1, 2]}
    spec = {
        "$set": {"a.b.1.c": 9, "new": {"deep": [1]}},
        "$push": {"arr": {"$each": [0], "$sort": 1}},
        "$unset": {"gone": 1},
    }
    doc_before, spec_before = copy.deepcopy(doc), copy.deepcopy(spec)
    result = update(doc, spec)
    result["new"]["deep"].append(2)
    assert_same(doc, doc_before)
    assert_same(spec, spec_before)


# ---------------------------------------------------------------------------------------- errors

ERROR_CASES = [
    pytest.param(
        {"_id": 1, "a": "x"},
        {"$inc": {"a": 1}},
        14,
        "TypeMismatch",
        "Cannot apply $inc to a value of non-numeric type. {_id: 1} has the field 'a' of non-numeric type "
        "string",
        id="inc-non-numeric-field",
    ),
    pytest.param(
        {"_id": 1},
        {"$inc": {"a": "1"}},
        14,
        "TypeMismatch",
        'Cannot increment with non-numeric argument: {a: "1"}',
        id="inc-non-numeric-argument",
    ),
    pytest.param(
        {"_id": 1, "a": True},
        {"$mul": {"a": 2}},
        14,
        "TypeMismatch",
        "Cannot apply $mul to a value of non-numeric type. {_id: 1} has the field 'a' of non-numeric type "
        "bool",
        id="mul-bool",
    ),
    pytest.param(
        {"_id": 1, "n": Int64(2**63 - 1)},
        {"$inc": {"n": 1}},
        2,
        "BadValue",
        "Failed to apply $inc operations to current value ((NumberLong)9223372036854775807) for document "
        "{_id: 1}",
        id="inc-long-overflow",
    ),
    pytest.param(
        {"_id": 1, "a": 1},
        {"$set": {"_id": 2}},
        66,
        "ImmutableField",
        "Performing an update on the path '_id' would modify the immutable field '_id'",
        id="set-id",
    ),
    pytest.param(
        {"_id": 1},
        {"$set": {"_id": 1.0}},
        66,
        "ImmutableField",
        "Performing an update on the path '_id' would modify the immutable field '_id'",
        id="set-id-other-numeric-type",
    ),
    pytest.param(
        {"_id": {"x": 1}},
        {"$set": {"_id.x": 2}},
        66,
        "ImmutableField",
        "Performing an update on the path '_id.x' would modify the immutable field '_id'",
        id="set-id-subfield",
    ),
    pytest.param(
        {"_id": 1},
        {"$unset": {"_id": 1}},
        66,
        "ImmutableField",
        "Performing an update on the path '_id' would modify the immutable field '_id'",
        id="unset-id",
    ),
    pytest.param(
        {"_id": 1, "a": 1},
        {"$rename": {"_id": "b"}},
        66,
        "ImmutableField",
        "Performing an update on the path '_id' would modify the immutable field '_id'",
        id="rename-id",
    ),
    pytest.param(
        {"_id": 1},
        {"$set": {"a": 1}, "$inc": {"a": 1}},
        40,
        "ConflictingUpdateOperators",
        "Updating the path 'a' would create a conflict at 'a'",
        id="conflict-same-path",
    ),
    pytest.param(
        {"_id": 1},
        {"$set": {"a": 1, "a.b": 1}},
        40,
        "ConflictingUpdateOperators",
        "Updating the path 'a.b' would create a conflict at 'a'",
        id="conflict-child-after-parent",
    ),
    pytest.param(
        {"_id": 1},
        {"$set": {"a.b": 1}, "$unset": {"a": 1}},
        40,
        "ConflictingUpdateOperators",
        "Updating the path 'a' would create a conflict at 'a'",
        id="conflict-parent-after-child",
    ),
    pytest.param(
        {"_id": 1},
        {"$set": {"b": 1}, "$rename": {"a": "b"}},
        40,
        "ConflictingUpdateOperators",
        "Updating the path 'b' would create a conflict at 'b'",
        id="conflict-rename-target",
    ),
    pytest.param(
        {"_id": 1},
        {"$set": {"a": 1}, "$setOnInsert": {"a": 2}},
        40,
        "ConflictingUpdateOperators",
        "Updating the path 'a' would create a conflict at 'a'",
        id="conflict-set-on-insert-not-inserting",
    ),
    pytest.param(
        {"_id": 1},
        {"$foo": {"a": 1}},
        9,
        "FailedToParse",
        "Unknown modifier: $foo. Expected a valid update modifier or pipeline-style update specified as an "
        "array",
        id="unknown-modifier",
    ),
    pytest.param(
        {"_id": 1},
        {"$bit": {"a": {"and": 1}}},
        2,
        "BadValue",
        "$bit is not supported by the stand-in",
        id="unsupported-modifier",
    ),
    pytest.param(
        {"_id": 1},
        {"$set": 5},
        9,
        "FailedToParse",
        "Modifiers operate on fields but we found type int instead. For example: {$mod: {<field>: ...}} "
        "not {$set: 5}",
        id="modifier-not-a-document",
    ),
    pytest.param(
        {"_id": 1},
        {"$set": {"a.$": 1}},
        2,
        "BadValue",
        "The positional operator '$' in the update path 'a.$' is not supported",
        id="positional",
    ),
    pytest.param(
        {"_id": 1},
        {"$inc": {"a.$[].b": 1}},
        2,
        "BadValue",
        "The positional operator '$[]' in the update path 'a.$[].b' is not supported",
        id="all-positional",
    ),
    pytest.param(
        {"_id": 1},
        {"$set": {"a.$[x]": 1}},
        2,
        "BadValue",
        "The positional operator '$[x]' in the update path 'a.$[x]' is not supported",
        id="filtered-positional",
    ),
    pytest.param(
        {"_id": 1},
        {"$set": {"a..b": 1}},
        56,
        "EmptyFieldName",
        "The update path 'a..b' contains an empty field name, which is not allowed.",
        id="empty-field-name",
    ),
    pytest.param(
        {"_id": 1, "a": 5},
        {"$set": {"a.b": 1}},
        28,
        "PathNotViable",
        "Cannot create field 'b' in element {a: 5}",
        id="set-through-scalar",
    ),
    pytest.param(
        {"_id": 1, "a": [1]},
        {"$set": {"a.b": 1}},
        28,
        "PathNotViable",
        "Cannot create field 'b' in element {a: [ 1 ]}",
        id="set-field-of-array",
    ),
    pytest.param(
        {"_id": 1, "a": 1},
        {"$push": {"a": 2}},
        2,
        "BadValue",
        "The field 'a' must be an array but is of type int in document {_id: 1}",
        id="push-non-array",
    ),
    pytest.param(
        {"_id": 1},
        {"$push": {"a": {"$each": 1}}},
        2,
        "BadValue",
        "The argument to $each in $push must be an array but it was of type: int",
        id="push-each-scalar",
    ),
    pytest.param(
        {"_id": 1},
        {"$push": {"a": {"$each": [], "$slice": "x"}}},
        2,
        "BadValue",
        "The value for $slice must be an integer value but was given type: string",
        id="push-bad-slice",
    ),
    pytest.param(
        {"_id": 1},
        {"$push": {"a": {"$each": [], "$bogus": 1}}},
        2,
        "BadValue",
        "Unrecognized clause in $push: $bogus",
        id="push-bad-clause",
    ),
    pytest.param(
        {"_id": 1, "a": "s"},
        {"$addToSet": {"a": 1}},
        2,
        "BadValue",
        "Cannot apply $addToSet to non-array field. Field named 'a' has non-array type string",
        id="add-to-set-non-array",
    ),
    pytest.param(
        {"_id": 1, "a": 1},
        {"$pull": {"a": 1}},
        2,
        "BadValue",
        "Cannot apply $pull to a non-array value",
        id="pull-non-array",
    ),
    pytest.param(
        {"_id": 1, "a": 1},
        {"$pop": {"a": 1}},
        14,
        "TypeMismatch",
        "Path 'a' contains an element of non-array type 'int'",
        id="pop-non-array",
    ),
    pytest.param(
        {"_id": 1}, {"$pop": {"a": 2}}, 9, "FailedToParse", "$pop expects 1 or -1, found: 2", id="pop-two"
    ),
    pytest.param(
        {"_id": 1, "a": 1},
        {"$rename": {"a": "a"}},
        2,
        "BadValue",
        'The source and target field for $rename must differ: a: "a"',
        id="rename-same",
    ),
    pytest.param(
        {"_id": 1, "a": 1},
        {"$rename": {"a": "a.b"}},
        2,
        "BadValue",
        'The source and target field for $rename must not be on the same path: a: "a.b"',
        id="rename-into-itself",
    ),
    pytest.param(
        {"_id": 1, "a": 1},
        {"$rename": {"a": 5}},
        2,
        "BadValue",
        "The 'to' field for $rename must be a string: a: 5",
        id="rename-target-not-string",
    ),
    pytest.param(
        {"_id": 1},
        {"$currentDate": {"d": {"$type": "year"}}},
        2,
        "BadValue",
        "The '$type' string field is required to be 'date' or 'timestamp'",
        id="current-date-bad-type",
    ),
]


@pytest.mark.parametrize(("doc", "spec", "code", "code_name", "message"), ERROR_CASES)
def test_invalid_updates_fail_like_mongodb(doc, spec, code, code_name, message):
    with pytest.raises(CommandError) as raised:
        update(doc, spec)
    assert (raised.value.code, raised.value.code_name) == (code, code_name)
    assert raised.value.message.startswith(message)


def test_array_filters_are_rejected():
    with pytest.raises(CommandError) as raised:
        apply_update({"_id": 1}, {"$set": {"a": 1}}, inserting=False, array_filters=[{"x": 1}])
    assert raised.value.code == 2


def test_an_id_may_be_set_while_inserting_a_seed_without_one():
    assert update({}, {"$set": {"_id": 7}}, inserting=True) == {"_id": 7}


# ---------------------------------------------------------------------------------- replacement


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        pytest.param({"a": 1}, True, id="replacement"),
        pytest.param({}, True, id="empty-is-replacement"),
        pytest.param({"$set": {"a": 1}, "$inc": {"b": 1}}, False, id="operators"),
    ],
)
def test_is_replacement(spec, expected):
    assert is_replacement(spec) is expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        pytest.param({"$set": {"a": 1}, "b": 1}, "Unknown modifier: b.", id="operator-first"),
        pytest.param(
            {"b": 1, "$set": {"a": 1}}, "The dollar ($) prefixed field '$set' in '$set'", id="field-first"
        ),
    ],
)
def test_mixed_update_documents_fail_to_parse(spec, message):
    with pytest.raises(CommandError) as raised:
        is_replacement(spec)
    assert (raised.value.code, raised.value.code_name) == (9, "FailedToParse")
    assert raised.value.message.startswith(message)


def test_replacement_keeps_the_id_first():
    assert_same(apply_replacement(5, {"b": 1, "a": {"c": 2}}), {"_id": 5, "b": 1, "a": {"c": 2}})


def test_replacement_may_repeat_the_same_id_anywhere():
    assert_same(apply_replacement(5, {"b": 1, "_id": 5}), {"_id": 5, "b": 1})


@pytest.mark.parametrize(
    ("new_id", "shown"),
    [
        pytest.param(6, "_id: 6", id="other-value"),
        pytest.param(5.0, "_id: 5.0", id="other-type"),
        pytest.param("x", '_id: "x"', id="string"),
    ],
)
def test_replacement_cannot_change_the_id(new_id, shown):
    with pytest.raises(CommandError) as raised:
        apply_replacement(5, {"_id": new_id, "a": 1})
    assert (raised.value.code, raised.value.code_name) == (66, "ImmutableField")
    assert raised.value.message == (
        f"After applying the update, the (immutable) field '_id' was found to have been altered to {shown}"
    )


def test_replacement_result_shares_nothing_with_its_input():
    replacement = {"a": {"b": [1]}}
    result = apply_replacement(1, replacement)
    result["a"]["b"].append(2)
    assert replacement == {"a": {"b": [1]}}


# ---------------------------------------------------------------------------------- upsert seed


@pytest.mark.parametrize(
    ("filter_", "expected"),
    [
        pytest.param({"_id": 5, "a.b": 1, "c": {"$gt": 3}}, {"_id": 5, "a": {"b": 1}}, id="brief-example"),
        pytest.param({"b": 1, "_id": 2, "a": 1}, {"_id": 2, "a": 1, "b": 1}, id="id-first-then-path-order"),
        pytest.param({"a": {"$eq": 3}, "b": {"$in": [1, 2]}}, {"a": 3}, id="eq-operator"),
        pytest.param({"$and": [{"a": 1}, {"b.c": 2}], "d": Regex("x")}, {"a": 1, "b": {"c": 2}}, id="and"),
        pytest.param({"$or": [{"a": 1}]}, {"a": 1}, id="single-or"),
        pytest.param({"$or": [{"a": 1}, {"b": 1}]}, {}, id="multi-or-ignored"),
        pytest.param({"a": {"x": 1, "y": [1]}}, {"a": {"x": 1, "y": [1]}}, id="document-value"),
        pytest.param({"a": None}, {"a": None}, id="null"),
        pytest.param({"a.0": 1}, {"a": {"0": 1}}, id="numeric-component"),
        pytest.param({}, {}, id="empty"),
    ],
)
def test_upsert_seed_takes_the_equalities_of_the_filter(filter_, expected):
    assert_same(upsert_seed(filter_), expected)


@pytest.mark.parametrize(
    ("filter_", "message"),
    [
        pytest.param(
            {"a": 1, "$and": [{"a": 2}]},
            "cannot infer query fields to set, path 'a' is matched twice",
            id="twice",
        ),
        pytest.param(
            {"a": {"b": 1}, "a.b": 1},
            "cannot infer query fields to set, both paths 'a' and 'a.b' are matched",
            id="prefix",
        ),
    ],
)
def test_upsert_seed_rejects_ambiguous_filters(filter_, message):
    with pytest.raises(CommandError) as raised:
        upsert_seed(filter_)
    assert (raised.value.code, raised.value.message) == (54, message)


def test_upsert_flow_seed_then_update():
    seed = upsert_seed({"_id": 3, "kind": "x"})
    result = update(seed, {"$inc": {"n": 1}, "$setOnInsert": {"created": NOW}}, inserting=True)
    assert_same(result, {"_id": 3, "kind": "x", "created": NOW, "n": 1})


# --------------------------------------------------------------------------- update descriptions


@pytest.mark.parametrize(
    ("before", "spec", "expected"),
    [
        pytest.param(
            {"_id": 1, "a": 1},
            {"$set": {"a": 2}},
            {"updatedFields": {"a": 2}, "removedFields": [], "truncatedArrays": []},
            id="set",
        ),
        pytest.param(
            {"_id": 1, "a": {"b": 1, "c": 1}},
            {"$set": {"a.b": 2}},
            {"updatedFields": {"a.b": 2}, "removedFields": [], "truncatedArrays": []},
            id="nested-dotted",
        ),
        pytest.param(
            {"_id": 1, "a": 1, "b": 1},
            {"$unset": {"a": 1}, "$set": {"c": 1}},
            {"updatedFields": {"c": 1}, "removedFields": ["a"], "truncatedArrays": []},
            id="unset-and-add",
        ),
        pytest.param(
            {"_id": 1, "a": [1, 2, 3]},
            {"$push": {"a": 4}},
            {"updatedFields": {"a.3": 4}, "removedFields": [], "truncatedArrays": []},
            id="push-appends",
        ),
        pytest.param(
            {"_id": 1, "a": [1, 2, 3]},
            {"$pull": {"a": 2}},
            {
                "updatedFields": {"a.1": 3},
                "removedFields": [],
                "truncatedArrays": [{"field": "a", "newSize": 2}],
            },
            id="pull-shrinks",
        ),
        pytest.param(
            {"_id": 1, "a": [1, 2, 3]},
            {"$pop": {"a": 1}},
            {"updatedFields": {}, "removedFields": [], "truncatedArrays": [{"field": "a", "newSize": 2}]},
            id="pop-truncates",
        ),
        pytest.param(
            {"_id": 1, "a": [{"x": 1}]},
            {"$set": {"a.0.x": 2}},
            {"updatedFields": {"a.0.x": 2}, "removedFields": [], "truncatedArrays": []},
            id="array-element-field",
        ),
        pytest.param(
            {"_id": 1, "a": {"b": 1}},
            {"$set": {"a": [1]}},
            {"updatedFields": {"a": [1]}, "removedFields": [], "truncatedArrays": []},
            id="type-change",
        ),
        pytest.param(
            {"_id": 1, "n": 1},
            {"$inc": {"n": Int64(0)}},
            {"updatedFields": {"n": Int64(1)}, "removedFields": [], "truncatedArrays": []},
            id="numeric-type-change",
        ),
        pytest.param(
            {"_id": 1, "a": 1, "b": 2},
            {"$rename": {"a": "z"}},
            {"updatedFields": {"z": 1}, "removedFields": ["a"], "truncatedArrays": []},
            id="rename",
        ),
        pytest.param(
            {"_id": 1, "a": 1},
            {"$set": {"a": 1}},
            {"updatedFields": {}, "removedFields": [], "truncatedArrays": []},
            id="no-change",
        ),
    ],
)
def test_update_description_reports_changes_like_change_streams(before, spec, expected):
    after = update(before, spec)
    assert update_description(before, after) == expected


def test_update_description_values_are_independent_copies():
    before = {"_id": 1}
    after = {"_id": 1, "a": {"b": [1]}}
    description = update_description(before, after)
    description["updatedFields"]["a"]["b"].append(2)
    assert after == {"_id": 1, "a": {"b": [1]}}


# ------------------------------------------------------------------------------------ properties

_names = st.sampled_from(["a", "b", "c", "0", "1"])
_leaves = st.one_of(st.none(), st.integers(-2, 2), st.sampled_from([1.5, -0.0, Int64(2), "s", True]))
_docs_values = st.recursive(
    _leaves,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(_names, inner, max_size=3)),
    max_leaves=8,
)
_documents = st.builds(
    lambda array, fields: {"_id": 1, "a": array, **fields},  # "a" is always an array: pops and pulls bite
    st.lists(_docs_values, max_size=4),
    st.dictionaries(st.sampled_from(["b", "c", "0", "1"]), _docs_values, max_size=3),
)
_paths = st.lists(_names, min_size=1, max_size=3).map(".".join)
_short_paths = st.lists(_names, min_size=1, max_size=2).map(".".join)
_operations = st.one_of(
    st.tuples(st.just("$set"), _paths, _docs_values),
    st.tuples(st.just("$unset"), _paths, st.just("")),
    st.tuples(st.just("$inc"), _paths, st.sampled_from([1, -1, 0.5, Int64(2)])),
    st.tuples(st.just("$push"), _paths, _leaves),
    st.tuples(st.just("$pull"), _short_paths, _leaves),
    st.tuples(st.just("$pull"), _short_paths, st.just({"$gte": 0})),
    st.tuples(st.just("$pop"), _short_paths, st.sampled_from([1, -1])),
    st.tuples(st.just("$addToSet"), _paths, _leaves),
    st.tuples(st.just("$rename"), _paths, _paths),
    st.tuples(st.just("$min"), _paths, _leaves),
)


def _build_update(operations):
    spec: dict = {}
    for modifier, path, arg in operations:
        spec.setdefault(modifier, {})[path] = arg
    return spec


def _attempt(doc, spec):
    try:
        return update(doc, spec)
    except CommandError:
        return None  # invalid combinations (conflicts, non-viable paths) are rejected, that's fine


@settings(max_examples=300, deadline=None)
@given(_documents, st.lists(_operations, min_size=1, max_size=3))
def test_apply_update_never_mutates_the_document_or_the_update(doc, operations):
    spec = _build_update(operations)
    doc_bytes, spec_snapshot = encode(doc), copy.deepcopy(spec)
    _attempt(doc, spec)
    assert encode(doc) == doc_bytes
    assert spec == spec_snapshot


def _replay(before, description):
    """Apply an updateDescription to ``before`` with $push-$slice (truncations), $unset and $set."""
    doc = before
    for entry in description["truncatedArrays"]:  # one at a time: nested arrays may both shrink
        doc = update(doc, {"$push": {entry["field"]: {"$each": [], "$slice": entry["newSize"]}}})
    spec: dict = {}
    if description["removedFields"]:
        spec["$unset"] = dict.fromkeys(description["removedFields"], "")
    if description["updatedFields"]:
        spec["$set"] = description["updatedFields"]
    return update(doc, spec) if spec else doc


@settings(max_examples=300, deadline=None)
@given(_documents, st.lists(_operations, min_size=1, max_size=3))
def test_update_description_replayed_on_before_reproduces_after(doc, operations):
    after = _attempt(doc, _build_update(operations))
    if after is None:
        return
    description = update_description(doc, after)
    assert_same(_replay(doc, description), after)


def _sorted_fields(value):
    """``value`` with every document's fields sorted (to compare regardless of field order)."""
    if isinstance(value, dict):
        return {key: _sorted_fields(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [_sorted_fields(item) for item in value]
    return value


@settings(max_examples=300, deadline=None)
@given(_documents, _documents)
def test_update_description_of_any_two_documents_replays_to_the_second(before, after):
    replayed = _replay(before, update_description(before, after))
    assert encode(_sorted_fields(replayed)) == encode(_sorted_fields(after))
