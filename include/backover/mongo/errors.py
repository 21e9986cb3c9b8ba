"""Command errors answered the way mongod answers them (``ok: 0``, ``code``, ``codeName``)."""

from __future__ import annotations

from typing import Any


class CommandError(Exception):
    """A command failed; the server answers ``{ok: 0, errmsg, code, codeName}`` plus ``extra``."""

    def __init__(self, code: int, code_name: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.code = code
        self.code_name = code_name
        self.message = message
        self.extra = extra

    def to_reply(self) -> dict[str, Any]:
        reply: dict[str, Any] = {
            "ok": 0.0,
            "errmsg": self.message,
            "code": self.code,
        }
        if self.code_name:  # DocumentDB's 303 carries no codeName
            reply["codeName"] = self.code_name
        reply.update(self.extra)
        return reply


def bad_value(message: str) -> CommandError:
    return CommandError(BAD_VALUE, "BadValue", message)


def failed_to_parse(message: str) -> CommandError:
    return CommandError(FAILED_TO_PARSE, "FailedToParse", message)


def type_mismatch(message: str) -> CommandError:
    return CommandError(TYPE_MISMATCH, "TypeMismatch", message)


def unauthorized(message: str) -> CommandError:
    return CommandError(UNAUTHORIZED, "Unauthorized", message)


def namespace_not_found(message: str) -> CommandError:
    return CommandError(NAMESPACE_NOT_FOUND, "NamespaceNotFound", message)


def namespace_exists(message: str) -> CommandError:
    return CommandError(NAMESPACE_EXISTS, "NamespaceExists", message)


def immutable_field(message: str) -> CommandError:
    return CommandError(IMMUTABLE_FIELD, "ImmutableField", message)


def illegal_operation(message: str) -> CommandError:
    return CommandError(ILLEGAL_OPERATION, "IllegalOperation", message)


def invalid_namespace(message: str) -> CommandError:
    return CommandError(INVALID_NAMESPACE, "InvalidNamespace", message)


def location(code: int, message: str) -> CommandError:
    """An error with one of mongod's numbered assertion codes (codeName ``Location<code>``)."""
    return CommandError(code, f"Location{code}", message)


def missing_field(command: str, field: str) -> CommandError:
    """mongod's IDL answer (40414) to a command without one of its required fields."""
    return location(IDL_MISSING_FIELD, f"BSON field '{command}.{field}' is missing but a required field")


def command_not_found(name: str) -> CommandError:
    return CommandError(COMMAND_NOT_FOUND, "CommandNotFound", f"no such command: '{name}'")


# Server error codes, named once (the names of MongoDB's error_codes.yml), for the product and the
# stand-ins alike.
BAD_VALUE = 2
FAILED_TO_PARSE = 9
USER_NOT_FOUND = 11
UNAUTHORIZED = 13
TYPE_MISMATCH = 14
AUTHENTICATION_FAILED = 18
ILLEGAL_OPERATION = 20
NAMESPACE_NOT_FOUND = 26
PATH_NOT_VIABLE = 28
CURSOR_NOT_FOUND = 43
NAMESPACE_EXISTS = 48
COMMAND_NOT_FOUND = 59
IMMUTABLE_FIELD = 66
INVALID_NAMESPACE = 73
#: DocumentDB's answer to a change stream on a namespace whose change streams are not enabled, or
#: that starts before they were (MongoDB uses 136 for CappedPositionLost).
DOCUMENTDB_CHANGE_STREAMS_NOT_ENABLED = 136
INVALID_RESUME_TOKEN = 260
CHANGE_STREAM_FATAL_ERROR = 280
CHANGE_STREAM_HISTORY_LOST = 286
DUPLICATE_KEY = 11000
# Writes: documents, write concern, sessions (mongod's ops/insert.cpp, storage_validation.cpp,
# update_stage.cpp, upsert_stage.cpp, write_concern_options.cpp, transaction_validation.cpp).
DOLLAR_PREFIXED_FIELD_NAME = 52  # "_id fields may not contain '$'-prefixed fields: $a is not valid ..."
UNKNOWN_REPL_WRITE_CONCERN = 79  # "No write concern mode named 'x' found in replica set configuration"
UNSATISFIABLE_WRITE_CONCERN = 100  # "Not enough data-bearing nodes"
INVALID_ID_FIELD = 103  # "The '_id' value cannot be of type array"
TRANSACTION_TOO_OLD = 225  # "Retryable write with txnNumber 1 is prohibited on session ..."
UPDATE_RESULT_TOO_LARGE = 17419  # "Resulting document after update is larger than 16777216"
UPSERT_RESULT_TOO_LARGE = 17420  # "Document to upsert is larger than 16777216"
TXN_NUMBER_NOT_ALLOWED = 50768  # "txnNumber may only be provided for ... retryable write commands"
#: DocumentDB's answer to a command with ``txnNumber`` outside a transaction ("Retryable writes are
#: not supported", codeName OperationFailed).
DOCUMENTDB_RETRYABLE_WRITES_NOT_SUPPORTED = 301
# Collections and indexes (mongod's index_key_validate.cpp, index_catalog_impl.cpp,
# btree_key_generator.cpp, the 2dsphere and text access methods).
INDEX_NOT_FOUND = 27
CANNOT_CREATE_INDEX = 67
INVALID_OPTIONS = 72
INDEX_OPTIONS_CONFLICT = 85
INDEX_KEY_SPECS_CONFLICT = 86
CANNOT_INDEX_PARALLEL_ARRAYS = 171
INVALID_INDEX_SPECIFICATION_OPTION = 197
QUERY_FEATURE_NOT_ALLOWED = 224
IDL_MISSING_FIELD = 40414  # "BSON field '<cmd>.<field>' is missing but a required field"
AMBIGUOUS_ARRAY_INDEX_FIELD = 16746  # "Ambiguous field name found in array ..."
GEO_CANNOT_PARSE_GEOMETRY = 16754  # "Can't parse geometry from element: ..."
GEO_CANNOT_EXTRACT_KEYS = 16755  # "Can't extract geo keys: ..."
TEXT_LANGUAGE_OVERRIDE_NOT_STRING = 17261  # "found language override field in document with non-string type"
TEXT_LANGUAGE_OVERRIDE_UNSUPPORTED = 17262  # "language override unsupported: ..."
#: DocumentDB's answer to a feature it does not support ("Feature not supported: <x>", "option
#: collation is not currently supported").
DOCUMENTDB_FEATURE_NOT_SUPPORTED = 303
#: mongod's answer to a field its command parser (IDL) does not know: "BSON field '<cmd>.<field>'
#: is an unknown field." (codeName Location40415).
IDL_UNKNOWN_FIELD = 40415
#: mongod's answer to an IDL field outside its validator's range: "BSON field 'batchSize' value
#: must be >= 0, actual value '-1'" (skip, limit, batchSize of find, aggregate, getMore).
IDL_VALUE_OUT_OF_RANGE = 51024
# Sort patterns (mongod's sort_pattern.cpp).
SORT_KEY_NOT_A_NUMBER = 15974  # "Illegal key in $sort specification: a: \"x\""
SORT_DIRECTION_INVALID = 15975  # "$sort key ordering must be 1 (for ascending) or -1 (for descending)"
SORT_STAGE_WITHOUT_KEY = 15976  # "$sort stage must have at least one sort key"
SORT_EXPRESSION_NOT_META = 17312  # "$meta is the only expression supported by $sort right now"
# Projections (mongod's projection_parser.cpp).
PROJECTION_INCLUSION_IN_EXCLUSION = 31253  # "Cannot do inclusion on field b in exclusion projection"
PROJECTION_EXCLUSION_IN_INCLUSION = 31254  # "Cannot do exclusion on field b in inclusion projection"
# Aggregation stages (mongod's document_source_*.cpp).
#: "A pipeline stage specification object must contain exactly one field."
PIPELINE_STAGE_NOT_ONE_FIELD = 40323
GROUP_WITHOUT_ID = 15955  # "a group specification must include an _id"
GROUP_FIELD_NOT_ACCUMULATOR = 40234  # "The field 's' must be an accumulator object"
GROUP_FIELD_DOTTED = 40235  # "The field name 'a.b' cannot contain '.'"
GROUP_FIELD_OPERATOR_NAME = 40236  # "The field name '$s' cannot be an operator name"
GROUP_ACCUMULATOR_UNARY = 40237  # "The $sum accumulator is a unary operator"
GROUP_FIELD_ONE_ACCUMULATOR = 40238  # "The field 's' must specify one accumulator"
LIMIT_NOT_POSITIVE = 15958  # "the limit must be positive"
COUNT_FIELD_INVALID = 40156  # "the count field must be a non-empty string"
PROJECT_WITHOUT_FIELDS = 51272  # "$project requires at least one output field"
STAGE_ONLY_FIRST = 40602  # "$changeStream is only valid as the first stage in a pipeline"
UNRECOGNIZED_PIPELINE_STAGE = 40324
#: The error label mongod attaches to change-stream errors a driver must not resume after (the
#: ``NonResumableChangeStreamError`` category of its error codes: 280 and 286).
NON_RESUMABLE_CHANGE_STREAM_ERROR = "NonResumableChangeStreamError"
#: Errors after which a change stream is re-opened from its last token (network, elections,
#: shutdowns, a reaped cursor), as the drivers' change-stream resume rules list them.
RESUMABLE_CHANGE_STREAM_CODES = frozenset(
    {6, 7, 43, 63, 89, 91, 133, 150, 189, 234, 262, 9001, 10107, 11600, 11602, 13388, 13435, 13436}
)
