"""DocumentDB's ``modifyChangeStreams``: enable or disable change streams on a namespace.

::

    db.adminCommand({modifyChangeStreams: 1, database: "shop", collection: "orders", enable: true})

``collection: ""`` covers every collection of ``database``; ``database: "", collection: ""`` the
whole cluster. Only the ``documentdb`` flavour knows the command (``mongodb`` answers code 59).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from backover.mongo import errors

from .. import changestreams
from ..registry import Action, Context, command

_FIELDS = (("database", str), ("collection", str), ("enable", bool))
_TYPE_NAMES = {str: "string", bool: "bool"}


@command("modifyChangeStreams", action=Action.CLUSTER_ADMIN, flavours=("documentdb",))
def modify_change_streams(ctx: Context, cmd: Mapping[str, Any]) -> dict[str, Any]:
    """Record the namespace in ``server.change_streams_enabled`` (or remove it)."""
    if ctx.db != "admin":
        raise errors.unauthorized("modifyChangeStreams may only be run against the admin database.")
    database, collection, enable = (_field(cmd, name, kind) for name, kind in _FIELDS)
    if not database and collection:
        raise errors.bad_value(
            'modifyChangeStreams: a collection needs a database; use database: "" '
            'and collection: "" for the whole cluster'
        )
    if any(c in database for c in '/\\. "$\x00') or "$" in collection or "\x00" in collection:
        raise errors.invalid_namespace(f"Invalid namespace: '{database}.{collection}'")
    if enable:
        changestreams.enable(ctx.server, database, collection)
    else:
        changestreams.disable(ctx.server, database, collection)
    return {}


def _field(cmd: Mapping[str, Any], name: str, kind: type) -> Any:
    if name not in cmd:
        raise errors.CommandError(
            40414, "Location40414", f"BSON field 'modifyChangeStreams.{name}' is missing but a required field"
        )
    value = cmd[name]
    if not isinstance(value, kind):
        raise errors.type_mismatch(
            f"BSON field 'modifyChangeStreams.{name}' is the wrong type "
            f"'{type(value).__name__}', expected type '{_TYPE_NAMES[kind]}'"
        )
    return value
