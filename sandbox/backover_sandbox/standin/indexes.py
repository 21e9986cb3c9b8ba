"""Indexes as mongod validates, builds, lists and enforces them.

* Specifications (``createIndexes``): the checks of mongod's ``index_key_validate.cpp`` (field
  names 197, field types 14, key patterns 67, ``_id`` index 197/2), the TTL checks of
  ``validateIndexSpecTTL`` (67), the text and 2dsphere spec fixing of ``fts_spec.cpp`` and
  ``s2_access_method.cpp`` (67), the partial-filter rules of ``index_catalog_impl.cpp`` (67) and its
  conflict rules against existing indexes (86 same name, 85 same key and signature, 67 a second
  text index). What the stand-in does not build (2d, hashed, wildcard, columnstore indexes, index
  collations, ``storageEngine`` ...) is refused: 67 ``Unknown index plugin`` / 197 for options
  on flavour mongodb, DocumentDB's 303 where DocumentDB lacks the feature.
* Listing (``listIndexes``): mongod replies with each spec re-serialised through its
  ``ListIndexesReplyItem`` IDL: fields in that struct's order (v, key, name, background, unique,
  hidden, partialFilterExpression, sparse, expireAfterSeconds, weights, default_language,
  language_override, textIndexVersion, 2dsphereIndexVersion ...), ``safeBool`` fields as booleans,
  ``safeInt`` fields as 32-bit integers, ``unique``/``hidden`` only when true.
* Keys (unique indexes): a port of ``BtreeKeyGenerator`` — an array is indexed element by element
  (an empty one as ``undefined``), paths through arrays of documents look into each element, two
  index fields reaching different arrays fail with 171 ``cannot index parallel arrays``; a sparse
  index skips a document missing every field, a partial index one its filter does not match.
* Documents a 2dsphere index cannot index are refused (16754 not an object, 16755 not a valid
  legacy pair or GeoJSON Point); GeoJSON geometries other than Point are refused as not
  implemented. A text index refuses a document whose language override is not a string (17261)
  or not a language (17262).
"""

from __future__ import annotations

import math
import re
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from bson.decimal128 import Decimal128
from bson.regex import Regex

from backover.bsonvalues import canonical_key, to_plain
from backover.mongo import errors
from backover.mongo.ordering import is_number, type_name
from backover.mongo.query import Matcher, compile_filter, is_operator_document

from .unsupported import NOT_IMPLEMENTED, collation_error, documentdb_not_supported, is_simple_collation

BTREE = "btree"
TEXT = "text"
GEO_2DSPHERE = "2dsphere"
#: The index plugins mongod knows (``IndexNames``); the stand-in builds btree, text and 2dsphere.
KNOWN_PLUGINS = frozenset({"2d", "2dsphere", "text", "hashed", "geoHaystack", "wildcard", "columnstore"})
MAX_INDEXES = 64  # kMaxNumIndexesAllowed
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
#: MongoDB's TTL monitor wakes up every ``ttlMonitorSleepSecs`` (60) seconds.
TTL_MONITOR_SLEEP_SECS = 60

#: The fields mongod accepts in an index specification (``allowedFieldNames``); others are 197.
SPEC_FIELDS = frozenset(
    {
        "key",
        "name",
        "ns",
        "v",
        "background",
        "unique",
        "hidden",
        "partialFilterExpression",
        "sparse",
        "expireAfterSeconds",
        "storageEngine",
        "weights",
        "default_language",
        "language_override",
        "textIndexVersion",
        "2dsphereIndexVersion",
        "bits",
        "min",
        "max",
        "bucketSize",
        "collation",
        "wildcardProjection",
        "coarsestIndexedLevel",
        "finestIndexedLevel",
        "dropDups",
        "originalSpec",
        "clustered",
        "prepareUnique",
        "columnstoreProjection",
        "columnstoreCompressor",
    }
)
_BOOL_FIELDS = ("background", "unique", "sparse", "dropDups", "prepareUnique", "clustered")
_STRING_FIELDS = ("default_language", "language_override")
_NUMBER_FIELDS = (
    "2dsphereIndexVersion",
    "textIndexVersion",
    "bits",
    "min",
    "max",
    "coarsestIndexedLevel",
    "finestIndexedLevel",
)
#: Options mongod has that the stand-in does not implement (refused, never stored and ignored).
_NOT_IMPLEMENTED_OPTIONS = frozenset(
    {
        "storageEngine",
        "bits",
        "min",
        "max",
        "bucketSize",
        "wildcardProjection",
        "coarsestIndexedLevel",
        "finestIndexedLevel",
        "originalSpec",
        "clustered",
        "prepareUnique",
        "columnstoreProjection",
        "columnstoreCompressor",
    }
)
#: Index options Amazon DocumentDB 5.0 has (its "Index properties": name, unique, sparse,
#: partialFilterExpression, expireAfterSeconds; text and 2dsphere options; background builds).
_DOCUMENTDB_OPTIONS = frozenset(
    {
        "key",
        "name",
        "ns",
        "v",
        "background",
        "unique",
        "sparse",
        "partialFilterExpression",
        "expireAfterSeconds",
        "weights",
        "default_language",
        "language_override",
        "textIndexVersion",
        "2dsphereIndexVersion",
        "dropDups",
    }
)
_ID_INDEX_FIELDS = frozenset({"collation", "name", "v", "key", "ns", "_id"})
#: The ``ListIndexesReplyItem`` fields in the IDL's order, and how each is serialised.
_LISTED_ORDER = (
    "v",
    "key",
    "name",
    "background",
    "unique",
    "hidden",
    "partialFilterExpression",
    "sparse",
    "expireAfterSeconds",
    "storageEngine",
    "weights",
    "default_language",
    "language_override",
    "textIndexVersion",
    "2dsphereIndexVersion",
    "bits",
    "min",
    "max",
    "bucketSize",
    "collation",
    "wildcardProjection",
    "columnstoreProjection",
    "coarsestIndexedLevel",
    "finestIndexedLevel",
    "dropDups",
    "originalSpec",
    "clustered",
    "prepareUnique",
)
_SAFE_BOOL = frozenset({"background", "unique", "hidden", "sparse", "dropDups", "clustered", "prepareUnique"})
_SAFE_INT = frozenset(
    {
        "v",
        "expireAfterSeconds",
        "textIndexVersion",
        "2dsphereIndexVersion",
        "bits",
        "coarsestIndexedLevel",
        "finestIndexedLevel",
    }
)
#: Options that do not make two indexes with the same key and signature different
#: (``populateOptionsMapForEqualityCheck``).
_NOT_COMPARED = frozenset(
    {
        "key",
        "ns",
        "name",
        "v",
        "textIndexVersion",
        "2dsphereIndexVersion",
        "background",
        "dropDups",
        "hidden",
        "collation",
        "partialFilterExpression",
        "unique",
        "sparse",
        "wildcardProjection",
    }
)
# Text indexes (fts_spec.cpp, fts_language.cpp).
MAX_WORD_WEIGHT = 100_000
TEXT_LANGUAGES = frozenset(
    {
        "none",
        "danish",
        "dutch",
        "english",
        "finnish",
        "french",
        "german",
        "hungarian",
        "italian",
        "norwegian",
        "portuguese",
        "romanian",
        "russian",
        "spanish",
        "swedish",
        "turkish",
        "da",
        "nl",
        "en",
        "fi",
        "fr",
        "de",
        "hu",
        "it",
        "nb",
        "pt",
        "ro",
        "ru",
        "es",
        "sv",
        "tr",
    }
)
_PARTIAL_FILTER_MAX_DEPTH = 4  # internalPartialFilterExpressionMaxDepth
_SPECIAL_OPERATORS = {
    "$expr": (errors.QUERY_FEATURE_NOT_ALLOWED, "QueryFeatureNotAllowed"),
    "$jsonSchema": (errors.QUERY_FEATURE_NOT_ALLOWED, "QueryFeatureNotAllowed"),
    "$where": (errors.BAD_VALUE, "BadValue"),
    "$text": (errors.BAD_VALUE, "BadValue"),
}

_MISSING: Any = object()


class _Undefined:
    """BSON ``undefined``: the index key of an empty array."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "undefined"


UNDEFINED = _Undefined()
_UNDEFINED_KEY = ("undefined",)

# -- the index ---------------------------------------------------------------------------------


@dataclass
class Index:
    """One index: its specification as listIndexes shows it and what enforcing it needs."""

    name: str
    key: list[tuple[str, Any]]  # the key pattern as stored (a text index's is {_fts, _ftsx})
    spec: dict[str, Any]  # as listIndexes shows it
    kind: str = BTREE
    unique: bool = False
    sparse: bool = False
    hidden: bool = False
    partial_filter: dict[str, Any] | None = None
    partial: Matcher | None = None
    expire_after_seconds: int | None = None
    stored: dict[str, Any] = field(default_factory=dict)  # the spec compared for conflicts
    text_paths: tuple[str, ...] = ()  # a text index's weighted fields ("$**": every field)
    language_override: str = "language"
    entries: dict[Any, Any] = field(default_factory=dict)  # unique: index key -> canonical _id

    def __post_init__(self) -> None:
        if not self.stored:
            self.stored = dict(self.spec)

    @property
    def is_id_index(self) -> bool:
        return self.name == "_id_"

    @property
    def is_sparse_or_partial(self) -> bool:
        """True when the index holds only some documents (a hint of it would change results)."""
        return self.sparse or self.partial_filter is not None

    @property
    def checks_writes(self) -> bool:
        """True when a write must decode the document for this index: unique, text and 2dsphere
        indexes, and compound ones (a document with two parallel arrays fails, 171)."""
        return self.unique or self.kind != BTREE or len(self.key) > 1

    @property
    def is_ttl(self) -> bool:
        """A TTL index the monitor runs: a btree index with ``expireAfterSeconds`` (mongod's TTL
        monitor skips special indexes)."""
        return self.expire_after_seconds is not None and self.kind == BTREE

    def covers(self, doc: Mapping[str, Any]) -> bool:
        return self.partial is None or self.partial(doc)

    def holder(self, values: tuple[Any, ...]) -> Any:
        """The canonical ``_id`` of the document holding the key ``values`` in this unique index,
        or None (what mongod's index lookup for an equality on every field of the key finds)."""
        return self.entries.get(_comparable(values))

    def keys_of(self, doc: Mapping[str, Any]) -> list[tuple[Hashable, tuple[Any, ...]]]:
        """``(comparable key, key values)`` of each index key of ``doc`` (none when the index does
        not hold it); 171 for parallel arrays."""
        if not self.covers(doc):
            return []
        if self.is_id_index:
            values: tuple[Any, ...] = (doc.get("_id"),)
            return [(_comparable(values), values)]
        out: dict[Hashable, tuple[Any, ...]] = {}
        for values in btree_keys(doc, [path for path, _ in self.key], self.sparse):
            out.setdefault(_comparable(values), values)
        return list(out.items())

    def check_document(self, doc: Mapping[str, Any]) -> None:
        """Refuse a document this index cannot index, as mongod does (a non-unique index: its keys
        are not kept, only made)."""
        if not self.covers(doc):
            return
        if self.kind == BTREE:
            btree_keys(doc, [path for path, _ in self.key], self.sparse)
        elif self.kind == GEO_2DSPHERE:
            for path, kind in self.key:
                if kind == GEO_2DSPHERE:
                    check_geo_field(doc, path)
        elif self.kind == TEXT:
            check_text_languages(doc, self.text_paths, self.language_override)


def id_index() -> Index:
    spec = {"v": 2, "key": {"_id": 1}, "name": "_id_"}
    return Index("_id_", [("_id", 1)], spec, unique=True)


def _comparable(values: tuple[Any, ...]) -> Hashable:
    return tuple(_UNDEFINED_KEY if v is UNDEFINED else canonical_key(v) for v in values)


# -- index keys (BtreeKeyGenerator) ------------------------------------------------------------


@dataclass
class _Positional:
    """An index field whose next path component is an array position (``a.1.b``)."""

    indexed: Any  # the array element at that position
    array: list[Any]
    remaining: str
    dotted: Any  # the element at the rest of the path from the array
    dotted_name: str


def btree_keys(doc: Mapping[str, Any], paths: list[str], sparse: bool) -> list[tuple[Any, ...]]:
    """The keys of ``doc`` in an ascending/descending index on ``paths``, as mongod makes them."""
    keys: list[tuple[Any, ...]] = []
    n = len(paths)
    _keys_with_array(list(paths), [None] * n, doc, keys, 0, [None] * n, sparse)
    if not keys and not sparse:
        keys.append((None,) * n)
    return keys


def _along(obj: Any, path: str) -> tuple[Any, str, str]:
    """``(element, its field name, rest of the path)``: the element at ``path``, or the first array
    on the way (``rest`` then what follows it), or missing."""
    head, _, rest = path.partition(".")
    sub = _child(obj, head)
    if sub is _MISSING:
        return _MISSING, head, ""
    if isinstance(sub, list) or not rest:
        return sub, head, rest
    if isinstance(sub, Mapping):
        return _along(sub, rest)
    return _MISSING, head, ""


def _child(obj: Any, name: str) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name, _MISSING)
    if isinstance(obj, list) and _is_array_index(name) and int(name) < len(obj):
        return obj[int(name)]
    return _MISSING


def _is_array_index(name: str) -> bool:
    return name.isdigit() and name.isascii() and (name == "0" or not name.startswith("0"))


def _keys_with_array(
    names: list[str],
    fixed: list[Any],
    obj: Any,
    keys: list[tuple[Any, ...]],
    not_found: int,
    positional: list[_Positional | None],
    sparse: bool,
) -> None:
    array: list[Any] | None = None
    array_name = ""
    array_fields: list[int] = []
    may_expand = True
    for i, name in enumerate(names):
        if not name:
            continue
        element, element_name, rest, nested = _next_element(obj, positional[i], name)
        names[i] = rest
        if element is _MISSING:
            fixed[i] = None
            names[i] = ""
            not_found += 1
        elif isinstance(element, list):
            array_fields.append(i)
            if array is None:
                array, array_name = element, element_name
            elif element is not array:
                raise errors.CommandError(
                    errors.CANNOT_INDEX_PARALLEL_ARRAYS,
                    "CannotIndexParallelArrays",
                    f"cannot index parallel arrays [{element_name}] [{array_name}]",
                )
            if nested:
                may_expand = False
        else:
            fixed[i] = element
    if array is None:
        if sparse and not_found == len(names):
            return
        keys.append(tuple(fixed))
        return
    if not array:
        _array_element(
            names, fixed, UNDEFINED, keys, not_found, array, array_fields, True, [None] * len(names), sparse
        )
        return
    sub_positional: list[_Positional | None] = [None] * len(names)
    for i, name in enumerate(names):
        if not name:
            continue
        part = name.partition(".")[0]
        indexed = _child(array, part)
        if indexed is _MISSING:
            continue
        dotted, dotted_name, remaining = _along(array, name)
        sub_positional[i] = _Positional(indexed, array, remaining, dotted, dotted_name)
    for element in array:
        _array_element(
            names, fixed, element, keys, not_found, array, array_fields, may_expand, sub_positional, sparse
        )


def _next_element(obj: Any, positional: _Positional | None, name: str) -> tuple[Any, str, str, bool]:
    first = name.partition(".")[0]
    have_field = isinstance(obj, Mapping) and first in obj
    if have_field and positional is not None:
        raise errors.location(
            errors.AMBIGUOUS_ARRAY_INDEX_FIELD,
            "Ambiguous field name found in array (do not use numeric field names in embedded "
            f"elements in an array), field: '{first}' for array: {show(positional.array)}",
        )
    if have_field:
        element, element_name, rest = _along(obj, name)
        return element, element_name, rest, False
    if positional is not None:
        return (
            positional.dotted,
            positional.dotted_name,
            positional.remaining,
            isinstance(positional.indexed, list),
        )
    return _MISSING, first, "", False


def _array_element(
    names: list[str],
    fixed: list[Any],
    entry: Any,
    keys: list[tuple[Any, ...]],
    not_found: int,
    array: list[Any],
    array_fields: list[int],
    may_expand: bool,
    positional: list[_Positional | None],
    sparse: bool,
) -> None:
    names_here = list(names)
    fixed_here = list(fixed)
    for i in array_fields:
        if not names_here[i]:
            fixed_here[i] = entry if may_expand else array
    obj = entry if isinstance(entry, Mapping) else {}
    _keys_with_array(names_here, fixed_here, obj, keys, not_found, positional, sparse)


# -- specifications ----------------------------------------------------------------------------


def plugin_name(key: Mapping[str, Any]) -> str:
    """mongod's ``IndexNames::findPluginName``: the first string value, "wildcard" for a ``$**``
    field, "" (btree) otherwise."""
    for name, value in key.items():
        if isinstance(value, str):
            return value
        if name == "$**" or name.endswith(".$**"):
            return "wildcard"
    return ""


def is_id_pattern(key: Mapping[str, Any]) -> bool:
    """mongod's ``isIdIndexPattern``: exactly one field, ``_id``, whose number is 1 or -1."""
    if len(key) != 1 or "_id" not in key:
        return False
    value = key["_id"]
    return is_number(value) and not isinstance(value, bool) and safe_int(value) in (1, -1)


def validate_spec(flavour: str, raw: Any) -> dict[str, Any]:
    """Parse one index specification of ``createIndexes`` as mongod's ``validateIndexSpec`` and
    ``parseAndValidateIndexSpecs`` do; refuse what the stand-in does not build."""
    spec = to_plain(raw)
    if not isinstance(spec, Mapping):
        raise errors.type_mismatch(
            f"BSON field 'createIndexes.indexes' is the wrong type '{type_name(spec)}', expected type 'object'"
        )
    spec = dict(spec)
    for name in spec:
        if name not in SPEC_FIELDS:
            raise _invalid_option(name, spec)
    for name, value in spec.items():
        _check_field(name, value, spec)
    if "key" not in spec:
        raise errors.failed_to_parse("The 'key' field is a required property of an index specification")
    if "name" not in spec:
        raise errors.failed_to_parse("The 'name' field is a required property of an index specification")
    key = spec["key"]
    plugin = plugin_name(key)
    if "weights" in spec and plugin != TEXT:
        raise _cannot_create(
            f"Error in specification {show(spec)} :: caused by :: Invalid index specification "
            f"{show(spec)}; the field 'weights' can only be specified with text indexes"
        )
    if is_id_pattern(key):
        for name in spec:
            if name not in _ID_INDEX_FIELDS:
                raise errors.CommandError(
                    errors.INVALID_INDEX_SPECIFICATION_OPTION,
                    "InvalidIndexSpecificationOption",
                    f"The field '{name}' is not valid for an _id index specification. Specification: {show(spec)}",
                )
        if _comparable(tuple(key.values())) != _comparable((1,)):
            raise errors.bad_value(
                f"The field 'key' for an _id index must be {{_id: 1}}, but got {show(key)}"
            )
    elif spec["name"] == "_id_":
        raise errors.bad_value(
            "The index name '_id_' is reserved for the _id index, which must have key pattern "
            f"{{_id: 1}}, found key: {show(key)}"
        )
    elif spec["name"] == "*":
        raise errors.bad_value("The index name '*' is not valid.")
    _refuse_unbuilt(flavour, spec, plugin)
    if "v" not in spec:
        spec["v"] = 2  # the default index version, added as mongod's validateIndexSpec does
    return spec


def _check_field(name: str, value: Any, spec: Mapping[str, Any]) -> None:
    if name == "key":
        if not isinstance(value, Mapping):
            raise errors.type_mismatch(f"The field 'key' must be an object, but got {type_name(value)}")
        validate_key_pattern(value)
    elif name == "name":
        if not isinstance(value, str):
            raise errors.type_mismatch(f"The field 'name' must be a string, but got {type_name(value)}")
    elif name == "hidden":
        if not isinstance(value, bool):  # mongod's message names 'name' here
            raise errors.type_mismatch(f"The field 'name' must be a bool, but got {type_name(value)}")
    elif name == "v":
        if isinstance(value, bool) or not is_number(value):
            raise errors.type_mismatch(f"The field 'v' must be a number, but got {type_name(value)}")
        number = _as_decimal(value)
        if number.is_nan() or number != number.to_integral_value() or not INT32_MIN <= number <= INT32_MAX:
            raise errors.bad_value(
                f"Index version must be representable as a 32-bit integer, but got {show(value)}"
            )
        if int(number) not in (1, 2):
            raise _cannot_create(
                f"Invalid index specification {show(spec)}; cannot create an index with v={int(number)}"
            )
    elif name in ("collation", "partialFilterExpression", "originalSpec"):
        if not isinstance(value, Mapping):
            raise errors.type_mismatch(f"The field '{name}' must be an object, but got {type_name(value)}")
        if name != "partialFilterExpression" and not value:
            raise errors.bad_value(f"The field '{name}' cannot be an empty object.")
        if name == "partialFilterExpression":
            parse_partial_filter(value)
    elif name == "weights":
        if not isinstance(value, (Mapping, str)):
            raise errors.type_mismatch(f"The field 'weights' must be an object, but got {type_name(value)}")
    elif name in _BOOL_FIELDS:
        if not isinstance(value, bool) and not is_number(value):
            raise errors.type_mismatch(
                f"The field '{name} has value {name}: {show(value)}, which is not convertible to bool"
            )
    elif name in _STRING_FIELDS:
        if not isinstance(value, str):
            raise errors.type_mismatch(f"The field '{name}' must be a string, but got {type_name(value)}")
    elif name in _NUMBER_FIELDS:
        if isinstance(value, bool) or not is_number(value):
            raise errors.type_mismatch(f"The field '{name}' must be a number, but got {type_name(value)}")


def validate_key_pattern(key: Mapping[str, Any]) -> None:
    """mongod's ``validateKeyPattern`` (v2 rules, which every new index gets): 67."""
    if not key:
        raise _cannot_create("Index keys cannot be empty.")
    plugin = plugin_name(key)
    if plugin == "geoHaystack":
        raise _cannot_create("GeoHaystack indexes cannot be created in version 5.0 and above")
    if plugin and plugin not in KNOWN_PLUGINS:
        raise _cannot_create(f"Unknown index plugin '{plugin}'")
    for name, value in key.items():
        if is_number(value) and not isinstance(value, bool):
            number = _as_decimal(value)
            if number.is_nan():
                raise _cannot_create("Values in the index key pattern cannot be NaN.")
            if number == 0:
                raise _cannot_create("Values in the index key pattern cannot be 0.")
            if number < 0 and plugin == "wildcard":
                raise _cannot_create("A numeric value in a $** index key pattern must be positive.")
        elif not isinstance(value, str):
            raise _cannot_create(
                f"Values in v:2 index key pattern cannot be of type {type_name(value)}. Only numbers > 0, "
                "numbers < 0, and strings are allowed."
            )
        if isinstance(value, str) and value != plugin:
            raise _cannot_create("Can't use more than one index plugin for a single index.")
        if isinstance(value, str) and value == "wildcard":
            raise _cannot_create(
                "The key pattern value for an 'wildcard' index must be a non-zero number, not a string."
            )
        if name == "":
            raise _cannot_create("Index keys cannot be an empty field.")
        if name == "$**" and (is_number(value) or value == TEXT):
            continue
        if name == "_fts" and value != TEXT:
            raise _cannot_create("Index key contains an illegal field name: '_fts'")
        parts = name.split(".")
        for i, part in enumerate(parts):
            if not part:
                raise _cannot_create("Index keys cannot contain an empty field.")
            if not part.startswith("$"):
                continue
            db_ref = i != 0 and part in ("$db", "$id", "$ref")
            wildcard = i == len(parts) - 1 and part == "$**" and plugin == "wildcard"
            if not db_ref and not wildcard:
                raise _cannot_create("Index key contains an illegal field name: field name starts with '$'.")
    for value in key.values():
        if value == "":
            raise _cannot_create("Values in the index key pattern cannot be empty strings")


def _refuse_unbuilt(flavour: str, spec: Mapping[str, Any], plugin: str) -> None:
    """Refuse the index types and options the stand-in does not build."""
    if plugin in ("2d", "hashed", "wildcard", "columnstore"):
        if flavour == "documentdb" and plugin != "hashed":
            raise documentdb_not_supported(f"{plugin} index")
        raise _cannot_create(
            f"bad index key pattern {show(spec['key'])}: Unknown index plugin '{plugin}'{NOT_IMPLEMENTED}"
        )
    for name, value in spec.items():
        if name == "collation":
            if flavour == "mongodb" and is_simple_collation(value):
                continue  # the simple collation is the stand-in's comparison; mongod omits it
            if flavour == "documentdb":
                raise collation_error(flavour, "createIndexes")
            raise _invalid_option(name, spec, NOT_IMPLEMENTED)
        if flavour == "documentdb" and name not in _DOCUMENTDB_OPTIONS:
            raise documentdb_not_supported(name)
        if name in _NOT_IMPLEMENTED_OPTIONS:
            raise _invalid_option(name, spec, NOT_IMPLEMENTED)
    if plugin in (TEXT, GEO_2DSPHERE) and _true(spec.get("unique")):
        raise _invalid_option("unique", spec, f" (unique on a {plugin} index){NOT_IMPLEMENTED}")
    if plugin == TEXT and "textIndexVersion" in spec and safe_int(spec["textIndexVersion"]) == 1:
        raise _invalid_option("textIndexVersion", spec, f" (version 1){NOT_IMPLEMENTED}")
    if (
        plugin == GEO_2DSPHERE
        and "2dsphereIndexVersion" in spec
        and safe_long(spec["2dsphereIndexVersion"]) == 1
    ):
        raise _invalid_option("2dsphereIndexVersion", spec, f" (version 1){NOT_IMPLEMENTED}")


def validate_ttl(spec: Mapping[str, Any]) -> None:
    """mongod's ``validateIndexSpecTTL`` for an index with ``expireAfterSeconds``: 67."""
    if "expireAfterSeconds" not in spec:
        return
    value = spec["expireAfterSeconds"]
    reason = None
    if isinstance(value, bool) or not is_number(value):
        reason = (
            "TTL index 'expireAfterSeconds' option must be numeric, but received a type of "
            f"'{type_name(value)}'"
        )
    elif _as_decimal(value).is_nan():
        reason = "TTL index 'expireAfterSeconds' option must not be NaN"
    elif safe_int(value) != safe_long(value):
        reason = "TTL index 'expireAfterSeconds' must be within the range of a 32-bit integer"
    elif safe_long(value) < 0:
        reason = "TTL index 'expireAfterSeconds' option cannot be less than 0"
    if reason is not None:
        raise _cannot_create(f". Index spec: {show(spec)} :: caused by :: {reason}")
    if len(spec["key"]) != 1:
        raise _cannot_create(
            "TTL indexes are single-field indexes, compound indexes do not support TTL. Index spec: "
            f"{show(spec)}"
        )


def prepare_index(flavour: str, spec: Mapping[str, Any]) -> Index:
    """The index a validated spec creates (mongod's ``_fixIndexSpec`` and ``_isSpecOk``)."""
    stored = {
        k: v
        for k, v in spec.items()
        if k not in ("ns", "dropDups", "_id") and not (k == "collation" and is_simple_collation(v))
    }
    plugin = plugin_name(stored["key"])
    if plugin == TEXT:
        stored = _fix_text_spec(stored)
    elif plugin == GEO_2DSPHERE:
        stored = _fix_2dsphere_spec(stored)
    key = dict(stored["key"])
    if is_id_pattern(key):
        stored["key"] = {"_id": 1}
        stored["name"] = "_id_"
    name = stored["name"]
    if "\x00" in name:
        raise _cannot_create("index name cannot contain NUL bytes")
    if not name:
        raise _cannot_create("index name cannot be empty")
    partial_filter = stored.get("partialFilterExpression")
    partial = None
    if partial_filter is not None:
        if _true(stored.get("sparse")):
            raise _cannot_create('cannot mix "partialFilterExpression" and "sparse" options')
        partial, tree = parse_partial_filter(partial_filter)
        _check_partial_tree(tree, or_and_in=flavour == "mongodb")
    kind = {TEXT: TEXT, GEO_2DSPHERE: GEO_2DSPHERE}.get(plugin, BTREE)
    text_paths: tuple[str, ...] = ()
    if kind == TEXT:
        text_paths = tuple(stored["weights"])
    index = Index(
        name=stored["name"],
        key=list(stored["key"].items()),
        spec=listed_spec(stored),
        kind=kind,
        unique=_true(stored.get("unique")) or stored["name"] == "_id_",
        sparse=_true(stored.get("sparse")),
        hidden=_true(stored.get("hidden")),
        partial_filter=partial_filter,
        partial=partial,
        expire_after_seconds=safe_long(stored["expireAfterSeconds"])
        if "expireAfterSeconds" in stored
        else None,
        stored=stored,
        text_paths=text_paths,
        language_override=stored.get("language_override", "language"),
    )
    return index


def listed_spec(stored: Mapping[str, Any]) -> dict[str, Any]:
    """The spec as mongod's listIndexes returns it (its ``ListIndexesReplyItem`` IDL)."""
    out: dict[str, Any] = {}
    for name in _LISTED_ORDER:
        if name not in stored:
            continue
        value = stored[name]
        if name in ("unique", "hidden", "prepareUnique") and not _true(value):
            continue  # _fixIndexSpec keeps these only when true
        if name in _SAFE_BOOL:
            value = _true(value)
        elif name in _SAFE_INT:
            value = safe_int(value)
        out[name] = value
    return out


# -- conflicts with existing indexes (IndexCatalogImpl::_doesSpecConflictWithExisting) ----------

DIFFERENT, EQUIVALENT, IDENTICAL = "different", "equivalent", "identical"


def compare_indexes(candidate: Index, existing: Index) -> str:
    """mongod's ``compareIndexOptions``: key pattern and signature (unique, sparse, partial filter,
    collation) decide different; the other options identical or only equivalent."""
    if _key_of(candidate) != _key_of(existing):
        return DIFFERENT
    if candidate.unique != existing.unique or candidate.sparse != existing.sparse:
        return DIFFERENT
    if (candidate.partial_filter is None) != (existing.partial_filter is None):
        return DIFFERENT
    if candidate.partial_filter is not None and existing.partial_filter is not None:
        if _normalized(_filter_tree(candidate.partial_filter)) != _normalized(
            _filter_tree(existing.partial_filter)
        ):
            return DIFFERENT
    if _options_of(candidate) == _options_of(existing):
        return IDENTICAL
    return EQUIVALENT


def _key_of(index: Index) -> Hashable:
    return tuple((path, canonical_key(value)) for path, value in index.key)


def _options_of(index: Index) -> Hashable:
    return tuple(sorted((k, canonical_key(v)) for k, v in index.stored.items() if k not in _NOT_COMPARED))


def check_conflicts(candidate: Index, existing: list[Index], ns: str) -> bool:
    """Raise mongod's error when ``candidate`` conflicts with an existing index; False when an
    identical index exists (nothing to build), True when it may be built."""
    for index in existing:
        if index.name != candidate.name:
            continue
        comparison = compare_indexes(candidate, index)
        if comparison == DIFFERENT:
            raise errors.CommandError(
                errors.INDEX_KEY_SPECS_CONFLICT,
                "IndexKeySpecsConflict",
                "An existing index has the same name as the requested index. When index names are not "
                "specified, they are auto generated and can cause conflicts. Please refer to our "
                f"documentation. Requested index: {show(candidate.stored)}, existing index: {show(index.stored)}",
            )
        if comparison == EQUIVALENT:
            raise errors.CommandError(
                errors.INDEX_OPTIONS_CONFLICT,
                "IndexOptionsConflict",
                "An equivalent index already exists with the same name but different options. Requested "
                f"index: {show(candidate.stored)}, existing index: {show(index.stored)}",
            )
        return False
    for index in existing:
        comparison = compare_indexes(candidate, index)
        if comparison == EQUIVALENT:
            raise errors.CommandError(
                errors.INDEX_OPTIONS_CONFLICT,
                "IndexOptionsConflict",
                "An equivalent index already exists with a different name and options. Requested index: "
                f"{show(candidate.stored)}, existing index: {show(index.stored)}",
            )
        if comparison == IDENTICAL:
            raise errors.CommandError(
                errors.INDEX_OPTIONS_CONFLICT,
                "IndexOptionsConflict",
                f"Index already exists with a different name: {index.name}",
            )
    if len(existing) >= MAX_INDEXES:
        raise _cannot_create(
            f"add index fails, too many indexes for {ns} key:{show(candidate.stored['key'])}"
        )
    if candidate.kind == TEXT:
        for index in existing:
            if index.kind == TEXT:
                raise _cannot_create(
                    f'only one text index per collection allowed, found existing text index "{index.name}"'
                )
    return True


# -- partial filters ---------------------------------------------------------------------------


def parse_partial_filter(spec: Mapping[str, Any]) -> tuple[Matcher, tuple[Any, ...]]:
    """Parse a ``partialFilterExpression`` as mongod does (special features banned, then the
    query parser's checks): its matcher and its expression tree."""
    _ban_special(spec)
    matcher = compile_filter(spec)
    return matcher, _filter_tree(spec)


def _ban_special(spec: Any) -> None:
    if not isinstance(spec, Mapping):
        return
    for name, value in spec.items():
        if name in _SPECIAL_OPERATORS:
            code, code_name = _SPECIAL_OPERATORS[name]
            raise errors.CommandError(code, code_name, f"{name} is not allowed in this context")
        if name in ("$and", "$or", "$nor") and isinstance(value, list):
            for item in value:
                _ban_special(item)


def _filter_tree(spec: Mapping[str, Any]) -> tuple[Any, ...]:
    """The match-expression tree mongod's parser builds: a document is an AND of its entries
    (a single entry is that entry itself), operators of a field join the enclosing AND."""
    nodes = _document_nodes(spec)
    return nodes[0] if len(nodes) == 1 else ("AND", tuple(nodes))


def _document_nodes(spec: Mapping[str, Any]) -> list[tuple[Any, ...]]:
    nodes: list[tuple[Any, ...]] = []
    for name, value in spec.items():
        if name in ("$and", "$or", "$nor"):
            nodes.append((name[1:].upper(), tuple(_filter_tree(item) for item in value)))
        elif name == "$comment":
            continue
        else:
            nodes.extend(_field_nodes(name, value))
    return nodes


def _field_nodes(path: str, value: Any) -> list[tuple[Any, ...]]:
    if isinstance(value, (Regex, re.Pattern)):
        return [("REGEX", path, canonical_key(str(value)))]
    if not is_operator_document(value):
        return [("EQ", path, canonical_key(value))]
    nodes: list[tuple[Any, ...]] = []
    for op, arg in value.items():
        if op == "$eq":
            nodes.append(("EQ", path, canonical_key(arg)))
        elif op in ("$gt", "$gte", "$lt", "$lte"):
            nodes.append((op[1:].upper(), path, canonical_key(arg)))
        elif op == "$in":
            nodes.append(("IN", path, tuple(sorted({repr(canonical_key(item)) for item in arg}))))
        elif op == "$type":
            nodes.append(("TYPE", path, canonical_key(arg)))
        elif op == "$exists":
            nodes.append(("EXISTS", path) if _true(arg) else ("NOT", ("EXISTS", path)))
        elif op in ("$ne", "$nin", "$not"):
            nodes.append(("NOT", (op, path, canonical_key(arg))))
        elif op == "$options":
            continue
        elif op == "$all":
            conjuncts = tuple(
                ("ELEMMATCH", path, canonical_key(item))
                if is_operator_document(item)
                else _field_nodes(path, item)[0]
                for item in arg
            )
            nodes.append(("AND", conjuncts) if conjuncts else ("ALWAYS_FALSE",))
        else:
            nodes.append((op[1:].upper(), path, canonical_key(arg)))
    return nodes


_ALLOWED_LEAVES = frozenset({"EQ", "GT", "GTE", "LT", "LTE", "EXISTS", "TYPE"})


def _check_partial_tree(node: tuple[Any, ...], *, or_and_in: bool, level: int = 0) -> None:
    """mongod's ``_checkValidFilterExpressions``. MongoDB 6.0 (the ``timeseriesMetricIndexes``
    rules, ``or_and_in``) also takes ``$or``, ``$in`` and nested ``$and`` to depth 4; without them
    (DocumentDB 5.0, MongoDB 5.0) ``$and`` only at the top level."""
    if or_and_in and level + 1 > _PARTIAL_FILTER_MAX_DEPTH:
        raise _cannot_create(f"partialFilterExpression depth may not exceed {_PARTIAL_FILTER_MAX_DEPTH}")
    kind = node[0]
    if kind == "AND":
        if not or_and_in and level > 0:
            raise _cannot_create("$and only supported in partialFilterExpression at top level")
        for child in node[1]:
            _check_partial_tree(child, or_and_in=or_and_in, level=level + 1)
        return
    if kind == "OR" and or_and_in:
        for child in node[1]:
            _check_partial_tree(child, or_and_in=or_and_in, level=level + 1)
        return
    if kind in _ALLOWED_LEAVES or (kind == "IN" and or_and_in):
        return
    raise _cannot_create(f"Expression not supported in partial index: ${kind.lower()}")


def _normalized(node: tuple[Any, ...]) -> Any:
    """A form under which filters mongod finds equivalent are equal (nested ANDs and ORs
    flattened, their children sorted)."""
    kind = node[0]
    if kind in ("AND", "OR"):
        children: list[Any] = []
        for child in node[1]:
            normal = _normalized(child)
            if isinstance(normal, tuple) and normal and normal[0] == kind:
                children.extend(normal[1])
            else:
                children.append(normal)
        if len(children) == 1:
            return children[0]
        return (kind, tuple(sorted(children, key=repr)))
    return node


# -- text indexes (FTSSpec::fixSpec) -------------------------------------------------------------


def _fix_text_spec(spec: dict[str, Any]) -> dict[str, Any]:
    weights: dict[str, int] = {}
    pattern: list[tuple[str, Any]] = []
    added = False
    key = spec["key"]
    for name, value in key.items():
        if name == "_fts":
            if value != TEXT:
                raise _cannot_create('expecting _fts:"text"')
            added = True
            pattern.append((name, value))
        elif name == "_ftsx":
            if safe_int(value) != 1:
                raise _cannot_create("expecting _ftsx:1")
            pattern.append((name, value))
        elif value == TEXT:
            if not added:
                pattern += [("_fts", TEXT), ("_ftsx", 1)]
                added = True
            weights[name] = 1
        else:
            if safe_int(value) not in (1, -1):
                raise _cannot_create("expected value 1 or -1 for non-text key in compound index")
            pattern.append((name, value))
    _check_text_key_layout(list(key.items()))
    given = spec.get("weights")
    if isinstance(given, Mapping):
        for name, value in given.items():
            if isinstance(value, bool) or not is_number(value):
                raise _cannot_create("weight for text index needs numeric type")
            weights[name] = safe_int(value)
    elif given == "$**":
        weights["$**"] = 1
    elif "weights" in spec:
        raise _cannot_create("text index option 'weights' must be an object")
    if not weights:
        raise _cannot_create("text index option 'weights' must specify fields or the wildcard")
    fixed_weights: dict[str, int] = {}
    for name in sorted(weights):
        value = weights[name]
        if value <= 0 or value >= MAX_WORD_WEIGHT:
            raise _cannot_create(
                f"text index weight must be in the exclusive interval (0,{MAX_WORD_WEIGHT}) but found: {value}"
            )
        if name != "$**":
            if not name:
                raise _cannot_create("weight cannot be on an empty field")
            for part in name.split("."):
                if not part:
                    raise _cannot_create("weight cannot have empty path component")
                if part.startswith("$"):
                    raise _cannot_create("weight cannot have path component with $ prefix")
        fixed_weights[name] = value
    language = spec.get("default_language", "english")
    if not isinstance(language, str) or language.lower() not in TEXT_LANGUAGES:
        raise _cannot_create("default_language is not valid")
    override = spec.get("language_override", "language")
    if not isinstance(override, str) or not override or override.startswith("$") or "." in override:
        raise _cannot_create("language_override is not valid")
    version = 3
    if "textIndexVersion" in spec:
        version = safe_int(spec["textIndexVersion"])
        if version not in (2, 3):
            raise _cannot_create(f"bad textIndexVersion: {version}")
    fixed = dict(spec)
    fixed["key"] = dict(pattern)
    fixed["weights"] = fixed_weights
    fixed["default_language"] = language
    fixed["language_override"] = override
    fixed["textIndexVersion"] = version
    return fixed


def _check_text_key_layout(items: list[tuple[str, Any]]) -> None:
    """Extra fields before, the text fields together, extra fields after (fts_spec.cpp)."""

    def not_reserved(name: str) -> None:
        if name in ("_fts", "_ftsx"):
            raise _cannot_create("text index with reserved fields _fts/_ftsx not allowed")

    i = 0
    while not isinstance(items[i][1], str):
        not_reserved(items[i][0])
        i += 1
        if i == len(items):
            raise _cannot_create("expected additional fields in text index key pattern")
    if items[i][0] == "_fts":
        if i + 1 >= len(items) or items[i + 1][0] != "_ftsx":
            raise _cannot_create("expected _ftsx after _fts")
        i += 2
    else:
        while i < len(items) and isinstance(items[i][1], str):
            not_reserved(items[i][0])
            i += 1
    while i < len(items):
        if isinstance(items[i][1], str):
            raise _cannot_create("'text' fields in index must all be adjacent")
        not_reserved(items[i][0])
        i += 1


def check_text_languages(doc: Mapping[str, Any], paths: tuple[str, ...], override: str) -> None:
    """A text index reads the language override of the document and of each embedded document it
    indexes (``FTSElementIterator``): 17261 when it is not a string, 17262 when not a language."""
    _check_language(doc, override)
    _walk_text(doc, "", paths, override)


def _walk_text(obj: Mapping[str, Any], prefix: str, paths: tuple[str, ...], override: str) -> None:
    wildcard = "$**" in paths
    for name, value in obj.items():
        path = f"{prefix}{name}"
        if not isinstance(value, (Mapping, list)):
            continue
        if not wildcard and not any(p == path or p.startswith(path + ".") for p in paths):
            continue
        _walk_text_value(value, path, paths, override)


def _walk_text_value(value: Any, path: str, paths: tuple[str, ...], override: str) -> None:
    if isinstance(value, Mapping):
        _check_language(value, override)
        _walk_text(value, path + ".", paths, override)
    elif isinstance(value, list):
        for item in value:
            _walk_text_value(item, path, paths, override)


def _check_language(doc: Mapping[str, Any], override: str) -> None:
    if override not in doc:
        return
    value = doc[override]
    if not isinstance(value, str):
        raise errors.location(
            errors.TEXT_LANGUAGE_OVERRIDE_NOT_STRING,
            "found language override field in document with non-string type",
        )
    if value.lower() not in TEXT_LANGUAGES:
        raise errors.location(
            errors.TEXT_LANGUAGE_OVERRIDE_UNSUPPORTED,
            f"language override unsupported: {value}",
        )


# -- 2dsphere indexes ------------------------------------------------------------------------------


def _fix_2dsphere_spec(spec: dict[str, Any]) -> dict[str, Any]:
    fixed = dict(spec)
    if "2dsphereIndexVersion" not in fixed:
        fixed["2dsphereIndexVersion"] = 3
        return fixed
    value = fixed["2dsphereIndexVersion"]
    shown = f"{{ 2dsphereIndexVersion: {show(value)} }}"
    if isinstance(value, float) and (
        not math.isfinite(value) or value == 0 or abs(value) < 2.2250738585072014e-308
    ):
        raise _cannot_create(
            f"Invalid value for geo index version {shown}, only versions: [1,2,3] are supported"
        )
    if safe_long(value) not in (1, 2, 3):
        raise _cannot_create(f"unsupported geo index version {shown}, only support versions: [1,2,3]")
    return fixed


def check_geo_field(doc: Mapping[str, Any], path: str) -> None:
    """The geometries a 2dsphere index (version 2 or 3) reads at ``path`` must be valid."""
    found: dict[Hashable, Any] = {}
    _all_along(doc, path, found)
    values = list(found.values())
    if len(values) == 1:
        only = values[0]
        if only is None or (isinstance(only, (Mapping, list)) and not only):
            return  # null, [] and {} are like no geo field
    for value in values:
        _check_geometry(doc, path, value)


def _all_along(obj: Any, path: str, out: dict[Hashable, Any]) -> None:
    """mongod's ``extractAllElementsAlongPath`` without expanding a trailing array."""
    whole = _child(obj, path)
    if whole is not _MISSING:
        out.setdefault(canonical_key(whole), whole)
        return
    if "." not in path:
        return
    left, _, rest = path.partition(".")
    sub = _child(obj, left)
    if isinstance(sub, Mapping):
        _all_along(sub, rest, out)
    elif isinstance(sub, list):
        head = rest.partition(".")[0]
        if head.isdigit() and head.isascii():
            _all_along(sub, rest, out)
        else:
            for item in sub:
                if isinstance(item, (Mapping, list)):
                    _all_along(item, rest, out)


def _check_geometry(doc: Mapping[str, Any], path: str, value: Any) -> None:
    if not isinstance(value, (Mapping, list)):
        raise errors.location(
            errors.GEO_CANNOT_PARSE_GEOMETRY,
            f"Can't parse geometry from element: {path.rpartition('.')[2]}: {show(value)}",
        )
    members = list(value.values()) if isinstance(value, Mapping) else list(value)
    if isinstance(value, list) or (members and _plain_number(members[0])):
        reason = _legacy_point_problem(members, allow_more=True)
    else:
        reason = _geojson_problem(value)
    if reason is not None:
        raise errors.location(
            errors.GEO_CANNOT_EXTRACT_KEYS,
            f"Can't extract geo keys: {show(doc)}  {reason}",
        )


def _plain_number(value: Any) -> bool:
    return is_number(value) and not isinstance(value, bool)


def _legacy_point_problem(members: list[Any], *, allow_more: bool) -> str | None:
    if len(members) < 2 or not _plain_number(members[0]) or not _plain_number(members[1]):
        return "Point must only contain numeric elements"
    if not allow_more and len(members) > 2:
        return "Point must only contain two numeric elements"
    x, y = float(_as_decimal(members[0])), float(_as_decimal(members[1]))
    if not (math.isfinite(x) and math.isfinite(y)):
        return "Point coordinates must be finite numbers"
    if not (-180 <= x <= 180 and -90 <= y <= 90):
        return f"longitude/latitude is out of bounds, lng: {show(members[0])} lat: {show(members[1])}"
    return None


def _geojson_problem(value: Mapping[str, Any]) -> str | None:
    kind = value.get("type")
    known = (
        "Point",
        "LineString",
        "Polygon",
        "MultiPoint",
        "MultiLineString",
        "MultiPolygon",
        "GeometryCollection",
    )
    if not isinstance(kind, str) or kind not in known:
        return f"unknown GeoJSON type: {show(value)}"
    if kind != "Point" or "crs" in value:
        what = f"GeoJSON {kind}" if kind != "Point" else "a GeoJSON Point with a crs"
        raise errors.bad_value(f"2dsphere keys of {what}{NOT_IMPLEMENTED}")
    coordinates = value.get("coordinates", _MISSING)
    if not isinstance(coordinates, (Mapping, list)):
        shown = "missing" if coordinates is _MISSING else type_name(coordinates)
        return f"Point must be an array or object, instead got type {shown}"
    members = list(coordinates.values()) if isinstance(coordinates, Mapping) else list(coordinates)
    return _legacy_point_problem(members, allow_more=False)


# -- numbers and messages ----------------------------------------------------------------------


def _as_decimal(value: Any) -> Decimal:
    if isinstance(value, Decimal128):
        return value.to_decimal()
    return Decimal(value)


def safe_long(value: Any) -> int:
    """BSONElement::safeNumberLong: truncated towards zero, clamped, NaN 0; non-numbers 0."""
    if isinstance(value, bool) or not is_number(value):
        return 0
    number = _as_decimal(value)
    if number.is_nan():
        return 0
    if number.is_infinite():
        return INT64_MAX if number > 0 else INT64_MIN
    return max(INT64_MIN, min(INT64_MAX, int(number)))


def safe_int(value: Any) -> int:
    """BSONElement::safeNumberInt: like :func:`safe_long`, clamped to 32 bits."""
    return max(INT32_MIN, min(INT32_MAX, safe_long(value)))


def _true(value: Any) -> bool:
    """BSON ``trueValue``: false for missing, false, 0 and null."""
    if value is None or value is _MISSING:
        return False
    if isinstance(value, bool):
        return value
    if is_number(value):
        number = _as_decimal(value)
        return number.is_nan() or number != 0
    return True


def _cannot_create(message: str) -> errors.CommandError:
    return errors.CommandError(errors.CANNOT_CREATE_INDEX, "CannotCreateIndex", message)


def _invalid_option(name: str, spec: Mapping[str, Any], suffix: str = "") -> errors.CommandError:
    return errors.CommandError(
        errors.INVALID_INDEX_SPECIFICATION_OPTION,
        "InvalidIndexSpecificationOption",
        f"The field '{name}' is not valid for an index specification. Specification: {show(spec)}{suffix}",
    )


def show(value: Any) -> str:
    """A value the way mongod's messages print BSON (``{ a: 1, b: "x" }``)."""
    if isinstance(value, Mapping):
        if not value:
            return "{}"
        return "{ " + ", ".join(f"{k}: {show(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[ " + ", ".join(show(v) for v in value) + " ]" if value else "[]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, str):
        return '"' + value.replace('"', '\\"') + '"'
    return str(value)
