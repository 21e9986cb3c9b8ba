"""Refusing what the stand-in does not implement, the way each real server refuses what it does
not know (see docs/architecture.md, "What the stand-ins do not support").

A stand-in that accepts and ignores a field is a defect; a handler either implements a field
exactly or refuses it with one of these. Every helper takes the flavour from the command context
(``ctx``: a :class:`~backover_sandbox.standin.registry.Context`, or anything with ``.flavour``, or
the flavour name itself) and RETURNS the error, so a handler writes ``raise unknown_field(...)``;
the ``check_*`` / ``refuse_*`` helpers raise.

* mongodb flavour: mongod's answers to what it does not know: an unknown field of a known command
  40415 ``BSON field '<cmd>.<field>' is an unknown field.``; an unknown query operator 2 BadValue
  ``unknown operator: $x``; an unknown pipeline stage 40324; an unknown update modifier 9
  FailedToParse ``Unknown modifier: $x``.
* documentdb flavour: Amazon DocumentDB's 303 ``Feature not supported: <x>`` (collation: 303
  ``option collation is not currently supported``), unless DocumentDB has the feature
  (``documentdb_supports=True``): then the stand-in refuses it the mongodb way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from backover.mongo import errors

#: The suffix that tells a reader the refusal is the stand-in's, not a real server's.
NOT_IMPLEMENTED = " (not implemented by the Back Over stand-in)"

#: Generic command arguments that every command accepts and that have no observable effect on a
#: single-node in-memory stand-in (sessions, cluster time, read preference, API version, comments,
#: time limits that a stand-in's small data never reaches, read/write concerns of one node).
#: Transaction fields are answered by the server's dispatch, so they pass here too.
GENERIC_FIELDS = frozenset(
    {
        "$db",
        "lsid",
        "$clusterTime",
        "$readPreference",
        "$client",
        "$audit",
        "$configServerState",
        "$gleStats",
        "$topologyTime",
        "apiVersion",
        "apiStrict",
        "apiDeprecationErrors",
        "comment",
        "maxTimeMS",
        "readConcern",
        "writeConcern",
        "txnNumber",
        "autocommit",
        "startTransaction",
        "stmtId",
        "mayBypassWriteBlocking",
    }
)


class _HasFlavour(Protocol):
    @property
    def flavour(self) -> str: ...


Where = _HasFlavour | str


def flavour_of(ctx: Where) -> str:
    return ctx if isinstance(ctx, str) else ctx.flavour


def documentdb_not_supported(feature: str) -> errors.CommandError:
    """DocumentDB's 303 ``Feature not supported: <feature>``."""
    return errors.CommandError(
        errors.DOCUMENTDB_FEATURE_NOT_SUPPORTED, "", f"Feature not supported: {feature}"
    )


def unknown_field_error(command: str, field: str, *, detail: str | None = None) -> errors.CommandError:
    """mongod's 40415 for a field its parser does not know (``command`` may be dotted, e.g.
    ``update.updates`` for a field of an update statement); ``detail`` says what of it the
    stand-in does not run (e.g. "dotted path 'a.b'")."""
    suffix = NOT_IMPLEMENTED if detail is None else f"{NOT_IMPLEMENTED[:-1]}: {detail})"
    return errors.CommandError(
        errors.IDL_UNKNOWN_FIELD,
        f"Location{errors.IDL_UNKNOWN_FIELD}",
        f"BSON field '{command}.{field}' is an unknown field.{suffix}",
    )


def unknown_field(
    ctx: Where,
    command: str,
    field: str,
    *,
    feature: str | None = None,
    documentdb_supports: bool = False,
    detail: str | None = None,
) -> errors.CommandError:
    """The refusal of ``command``'s ``field``: 40415 on mongodb; 303 ``Feature not supported:
    <feature or field>`` on documentdb unless DocumentDB has it (then 40415 too)."""
    if flavour_of(ctx) == "documentdb" and not documentdb_supports:
        return documentdb_not_supported(feature or field)
    return unknown_field_error(command, field, detail=detail)


def check_fields(
    ctx: Where,
    doc: Mapping[str, Any],
    command: str,
    accepted: Iterable[str],
    *,
    documentdb_supports: Iterable[str] = (),
    generic: bool = True,
) -> None:
    """Raise :func:`unknown_field` for the first field of ``doc`` that is neither ``command``
    itself, nor in ``accepted``, nor (with ``generic``) a generic argument. For a nested document
    (an update statement) pass ``command="update.updates"`` and ``generic=False``."""
    known = set(accepted)
    supported = set(documentdb_supports)
    for field in doc:
        if field == command or field in known or (generic and field in GENERIC_FIELDS):
            continue
        raise unknown_field(ctx, command, field, documentdb_supports=field in supported)


def collation_error(ctx: Where, command: str) -> errors.CommandError:
    """The refusal of a ``collation`` option: documentdb 303 ``option collation is not currently
    supported``; mongodb 40415 (the stand-in compares binary only)."""
    if flavour_of(ctx) == "documentdb":
        return errors.CommandError(
            errors.DOCUMENTDB_FEATURE_NOT_SUPPORTED,
            "",
            "option collation is not currently supported",
        )
    return unknown_field_error(command, "collation")


def is_simple_collation(value: Any) -> bool:
    """``{locale: "simple"}``: binary comparison, exactly what the stand-in does without one."""
    return isinstance(value, Mapping) and len(value) == 1 and value.get("locale") == "simple"


def refuse_collation(ctx: Where, command: str, doc: Mapping[str, Any]) -> None:
    """Raise :func:`collation_error` when ``doc`` (a command, or a statement of one) has a
    ``collation``. On the mongodb flavour the simple collation ``{locale: "simple"}`` is accepted:
    it is the stand-in's comparison exactly. DocumentDB refuses any collation option."""
    if "collation" not in doc:
        return
    if flavour_of(ctx) == "mongodb" and is_simple_collation(doc["collation"]):
        return
    raise collation_error(ctx, command)


def unknown_operator(ctx: Where, operator: str, *, documentdb_supports: bool = False) -> errors.CommandError:
    """A query operator the stand-in does not run: mongodb 2 ``unknown operator: $x``;
    documentdb 303 unless DocumentDB has it."""
    if flavour_of(ctx) == "documentdb" and not documentdb_supports:
        return documentdb_not_supported(operator)
    return errors.bad_value(f"unknown operator: {operator}")


def unknown_modifier(ctx: Where, modifier: str, *, documentdb_supports: bool = False) -> errors.CommandError:
    """An update modifier the stand-in does not run: mongodb 9 ``Unknown modifier: $x``;
    documentdb 303 unless DocumentDB has it."""
    if flavour_of(ctx) == "documentdb" and not documentdb_supports:
        return documentdb_not_supported(modifier)
    return errors.failed_to_parse(
        f"Unknown modifier: {modifier}. Expected a valid update modifier or pipeline-style update specified as an array"
    )
