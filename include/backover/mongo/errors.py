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
        reply: dict[str, Any] = {"ok": 0.0, "errmsg": self.message, "code": self.code, "codeName": self.code_name}
        reply.update(self.extra)
        return reply


def bad_value(message: str) -> CommandError:
    return CommandError(2, "BadValue", message)


def failed_to_parse(message: str) -> CommandError:
    return CommandError(9, "FailedToParse", message)


def type_mismatch(message: str) -> CommandError:
    return CommandError(14, "TypeMismatch", message)


def unauthorized(message: str) -> CommandError:
    return CommandError(13, "Unauthorized", message)


def namespace_not_found(message: str) -> CommandError:
    return CommandError(26, "NamespaceNotFound", message)


def namespace_exists(message: str) -> CommandError:
    return CommandError(48, "NamespaceExists", message)


def immutable_field(message: str) -> CommandError:
    return CommandError(66, "ImmutableField", message)


def illegal_operation(message: str) -> CommandError:
    return CommandError(20, "IllegalOperation", message)


def invalid_namespace(message: str) -> CommandError:
    return CommandError(73, "InvalidNamespace", message)


def command_not_found(name: str) -> CommandError:
    return CommandError(59, "CommandNotFound", f"no such command: '{name}'")


# Codes used by several modules, named once.
DUPLICATE_KEY = 11000
CURSOR_NOT_FOUND = 43
AUTHENTICATION_FAILED = 18
USER_NOT_FOUND = 11
CHANGE_STREAM_HISTORY_LOST = 286
