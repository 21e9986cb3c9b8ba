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
            "codeName": self.code_name,
        }
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
UNRECOGNIZED_PIPELINE_STAGE = 40324
#: The error label mongod attaches to change-stream errors a driver must not resume after (the
#: ``NonResumableChangeStreamError`` category of its error codes: 280 and 286).
NON_RESUMABLE_CHANGE_STREAM_ERROR = "NonResumableChangeStreamError"
#: Errors after which a change stream is re-opened from its last token (network, elections,
#: shutdowns, a reaped cursor), as the drivers' change-stream resume rules list them.
RESUMABLE_CHANGE_STREAM_CODES = frozenset(
    {6, 7, 43, 63, 89, 91, 133, 150, 189, 234, 262, 9001, 10107, 11600, 11602, 13388, 13435, 13436}
)
