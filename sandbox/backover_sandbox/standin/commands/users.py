"""Authentication and user-management commands (saslStart, createUser, usersInfo, ...).

The SCRAM conversation, the user store and the privilege model live in
:mod:`backover_sandbox.standin.auth`; these handlers parse commands the way mongod 6.0 does and answer
with its replies and error codes.

Privileges of the user-management commands are mongod's: ``createUser`` needs userAdmin on the
user's database and on each granted role's database; ``grantRolesToUser``/``revokeRolesFromUser``
only on each role's database (so a ``userAdmin@shop`` in ``admin`` may give itself
``readWrite@shop``); ``updateUser`` with ``roles`` needs userAdmin on every database.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from typing import Any

from bson.binary import Binary

from backover.bsonvalues import to_plain
from backover.mongo import errors
from backover.mongo.errors import CommandError, bad_value, type_mismatch, unauthorized

from ..auth import MECHANISMS, Principal, User, parse_role
from ..registry import Action, Context, command

AUTH_FAILED = 18


def _string_arg(cmd: Mapping[str, Any], command_name: str) -> str:
    value = cmd.get(command_name)
    if not isinstance(value, str):
        raise type_mismatch(
            f"BSON field '{command_name}' is the wrong type '{_type_name(value)}', expected type 'string'"
        )
    return value


def _type_name(value: Any) -> str:
    return {bool: "bool", int: "int", float: "double", dict: "object", list: "array"}.get(
        type(value), "other"
    )


def _role_list(cmd: Mapping[str, Any], command_name: str, required: bool = True) -> list[Any] | None:
    """The ``roles`` array (plain values), or None when absent and optional."""
    value = cmd.get("roles")
    if value is None:
        if required:
            raise errors.missing_field(command_name, "roles")
        return None
    plain = to_plain(value)
    if not isinstance(plain, list):
        raise type_mismatch(
            f"BSON field '{command_name}.roles' is the wrong type '{_type_name(plain)}', "
            "expected type 'array'"
        )
    return plain


def _authorize_role_dbs(ctx: Context, roles: Iterable[Any], *, own_db_checked: bool = True) -> None:
    """Granting (revoking) a role needs ``grantRole`` (``revokeRole``) on the role's database.

    That is mongod's whole check for ``grantRolesToUser``/``revokeRolesFromUser``: the user's own
    database does not matter, so a ``userAdmin`` of ``shop`` may give any user (itself included)
    ``readWrite@shop``. ``own_db_checked``: the registered action already covered ``ctx.db``.
    """
    role_dbs = {parse_role(r, ctx.db)[1] for r in roles}
    for role_db in sorted(role_dbs - {ctx.db} if own_db_checked else role_dbs):
        ctx.authorize(Action.USER_ADMIN, role_db)


def _authorize_role_replacement(ctx: Context, command_name: str) -> None:
    """mongod: replacing a user's roles may revoke any role, so it needs ``revokeRole`` on every
    database (``userAdminAnyDatabase``, ``root``), whatever the user's database."""
    # "" is no database's name: only privileges granted on every database apply to it.
    if not ctx.server.auth.is_authorized(ctx.conn.principals, Action.USER_ADMIN, ""):
        raise unauthorized(
            f"In order to use {command_name} to set roles array, must be authorized to revoke "
            "any role in the system"
        )


def _optional_doc(cmd: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    value = cmd.get(name)
    if value is None:
        return None
    plain = to_plain(value)
    if not isinstance(plain, dict):
        raise bad_value(f'"{name}" must be an object')
    return plain


def _mechanisms(cmd: Mapping[str, Any]) -> list[str] | None:
    value = cmd.get("mechanisms")
    if value is None:
        return None
    plain = to_plain(value)
    if not isinstance(plain, list) or not all(isinstance(m, str) for m in plain):
        raise bad_value("mechanisms field must be an array of strings")
    return plain


# --------------------------------------------------------------------------------------------
# SASL
# --------------------------------------------------------------------------------------------
def _payload_in(cmd: Mapping[str, Any], command_name: str) -> tuple[bytes, bool]:
    """The SASL payload bytes and whether the client sent it base64-encoded in a string."""
    value = cmd.get("payload")
    if value is None:
        raise errors.missing_field(command_name, "payload")
    if isinstance(value, bytes):
        return bytes(value), False
    if isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True), True
        except (binascii.Error, ValueError):
            raise bad_value("Invalid base64 in SASL payload") from None
    raise type_mismatch(f"BSON field '{command_name}.payload' must be a string or binary data")


def _payload_out(reply: dict[str, Any], as_base64: bool) -> dict[str, Any]:
    """Answer the payload the way the client sent it (mongod's ``serializeAsBase64``)."""
    data: bytes = reply["payload"]
    reply["payload"] = base64.b64encode(data).decode() if as_base64 else Binary(data, 0)
    return reply


@command("saslStart", action=Action.NONE)
def sasl_start(ctx: Context, cmd: Mapping[str, Any]) -> dict[str, Any]:
    """First SCRAM step: answers the server-first message."""
    mechanism = cmd.get("mechanism")
    if mechanism is None:
        raise errors.missing_field("saslStart", "mechanism")
    if not isinstance(mechanism, str):
        raise type_mismatch("BSON field 'saslStart.mechanism' is the wrong type, expected type 'string'")
    payload, as_base64 = _payload_in(cmd, "saslStart")
    options = _optional_doc(cmd, "options") or {}
    reply = ctx.server.auth.sasl_start(ctx.conn, ctx.db, mechanism, payload, options)
    return _payload_out(reply, as_base64)


@command("saslContinue", action=Action.NONE)
def sasl_continue(ctx: Context, cmd: Mapping[str, Any]) -> dict[str, Any]:
    """Next SCRAM step: checks the proof, answers the server signature, authenticates."""
    conversation_id = cmd.get("conversationId")
    if conversation_id is None:
        raise errors.missing_field("saslContinue", "conversationId")
    payload, as_base64 = _payload_in(cmd, "saslContinue")
    reply = ctx.server.auth.sasl_continue(ctx.conn, ctx.db, conversation_id, payload)
    return _payload_out(reply, as_base64)


@command("logout", action=Action.NONE)
def logout(ctx: Context, cmd: Mapping[str, Any]) -> dict[str, Any]:
    """Forget the connection's users authenticated on this database (deprecated in mongod)."""
    ctx.server.auth.logout(ctx.conn, ctx.db)
    return {}


@command("authenticate", action=Action.NONE)
def authenticate(ctx: Context, cmd: Mapping[str, Any]) -> dict[str, Any]:
    """mongod 6.0 only supports MONGODB-X509 here (needs TLS, which the stand-in lacks)."""
    mechanism = cmd.get("mechanism")
    if not isinstance(mechanism, str) or not mechanism:
        raise bad_value("Auth mechanism not specified")
    if mechanism == "MONGODB-X509":
        raise CommandError(AUTH_FAILED, "AuthenticationFailed", "auth failed")
    raise bad_value(f"Unsupported mechanism: {mechanism}")


# --------------------------------------------------------------------------------------------
# User management
# --------------------------------------------------------------------------------------------
@command("createUser", action=Action.USER_ADMIN)
def create_user(ctx: Context, cmd: Mapping[str, Any]) -> dict[str, Any]:
    """``{createUser, pwd, roles, customData?, mechanisms?, digestPassword?}``."""
    name = _string_arg(cmd, "createUser")
    roles = _role_list(cmd, "createUser")
    assert roles is not None
    password = cmd.get("pwd")
    if password is None:
        raise bad_value(
            "Must provide a 'pwd' field for all user documents, except those with "
            "'$external' as the user's source db"
        )
    _authorize_role_dbs(ctx, roles)
    ctx.server.auth.create_user(
        ctx.db,
        name,
        password,
        roles,
        _mechanisms(cmd),
        custom_data=_optional_doc(cmd, "customData"),
        digest_password=bool(cmd.get("digestPassword", True)),
    )
    return {}


@command("updateUser", action=Action.USER_ADMIN)
def update_user(ctx: Context, cmd: Mapping[str, Any]) -> dict[str, Any]:
    """``{updateUser, pwd?, roles? (replaced), customData?, mechanisms?}``."""
    name = _string_arg(cmd, "updateUser")
    if not any(k in cmd for k in ("pwd", "roles", "customData", "mechanisms")):
        raise bad_value("Must specify at least one field to update in updateUser")
    roles = _role_list(cmd, "updateUser", required=False)
    if roles is not None:
        _authorize_role_replacement(ctx, "updateUser")
        _authorize_role_dbs(ctx, roles)
    ctx.server.auth.update_user(
        ctx.db,
        name,
        password=cmd.get("pwd"),
        roles=roles,
        mechanisms=_mechanisms(cmd),
        custom_data=_optional_doc(cmd, "customData"),
        digest_password=bool(cmd.get("digestPassword", True)),
    )
    return {}


@command("dropUser", action=Action.USER_ADMIN)
def drop_user(ctx: Context, cmd: Mapping[str, Any]) -> dict[str, Any]:
    """Remove a user (code 11 UserNotFound when absent)."""
    ctx.server.auth.drop_user(ctx.db, _string_arg(cmd, "dropUser"))
    return {}


@command("dropAllUsersFromDatabase", action=Action.USER_ADMIN)
def drop_all_users(ctx: Context, cmd: Mapping[str, Any]) -> dict[str, Any]:
    """Remove every user of the database: ``{n}``."""
    return {"n": ctx.server.auth.drop_all_users(ctx.db)}


@command("grantRolesToUser", action=Action.CUSTOM)
def grant_roles(ctx: Context, cmd: Mapping[str, Any]) -> dict[str, Any]:
    """Add roles to a user; effective on its next command. Needs grantRole on each role's database."""
    ctx.authorize(Action.AUTHENTICATED)
    name = _string_arg(cmd, "grantRolesToUser")
    roles = _role_list(cmd, "grantRolesToUser")
    assert roles is not None
    _authorize_role_dbs(ctx, roles, own_db_checked=False)
    ctx.server.auth.grant_roles(ctx.db, name, roles)
    return {}


@command("revokeRolesFromUser", action=Action.CUSTOM)
def revoke_roles(ctx: Context, cmd: Mapping[str, Any]) -> dict[str, Any]:
    """Remove roles from a user; effective on its next command. Needs revokeRole on each role's database."""
    ctx.authorize(Action.AUTHENTICATED)
    name = _string_arg(cmd, "revokeRolesFromUser")
    roles = _role_list(cmd, "revokeRolesFromUser")
    assert roles is not None
    _authorize_role_dbs(ctx, roles, own_db_checked=False)
    ctx.server.auth.revoke_roles(ctx.db, name, roles)
    return {}


# --------------------------------------------------------------------------------------------
# usersInfo / connectionStatus
# --------------------------------------------------------------------------------------------
def _requested_names(value: Any, db: str) -> list[Principal]:
    """``usersInfo``'s argument as (user, db) pairs: a name, a ``{user, db}`` doc or a list."""
    items = value if isinstance(value, list) else [value]
    names: list[Principal] = []
    for item in items:
        if isinstance(item, str):
            names.append((item, db))
        elif (
            isinstance(item, Mapping)
            and isinstance(item.get("user"), str)
            and isinstance(item.get("db"), str)
        ):
            names.append((item["user"], item["db"]))
        else:
            raise bad_value("User and role names must be either strings or objects")
    return names


def _user_doc(user: User, show_credentials: bool) -> dict[str, Any]:
    """A user as mongod's ``usersInfo`` shows it (credentials only on request, never secrets)."""
    doc: dict[str, Any] = {
        "_id": f"{user.db}.{user.name}",
        "userId": Binary.from_uuid(user.user_id),
        "user": user.name,
        "db": user.db,
    }
    if show_credentials:
        doc["credentials"] = {m: user.credentials[m].to_doc() for m in MECHANISMS if m in user.credentials}
    if user.custom_data is not None:
        doc["customData"] = dict(user.custom_data)
    doc["roles"] = user.role_docs()
    doc["mechanisms"] = user.mechanisms
    return doc


def _users_for(ctx: Context, arg: Any) -> list[User]:
    """The users ``usersInfo`` asks for, after checking the caller may see them."""
    auth = ctx.server.auth
    if isinstance(arg, Mapping) and "forAllDBs" in arg:
        users = auth.list_users()
        for db in sorted({u.db for u in users} or {"admin"}):
            ctx.authorize(Action.USER_ADMIN, db)
        return users
    if isinstance(arg, (int, float)) and not isinstance(arg, bool):
        ctx.authorize(Action.USER_ADMIN)
        return auth.list_users(ctx.db)
    own = set(ctx.conn.principals)
    users = []
    for name, db in _requested_names(arg, ctx.db):
        if (name, db) not in own:
            ctx.authorize(Action.USER_ADMIN, db)
        user = auth.get_user(db, name)
        if user is not None:
            users.append(user)
    return users


@command("usersInfo", action=Action.CUSTOM)
def users_info(ctx: Context, cmd: Mapping[str, Any]) -> dict[str, Any]:
    """``{usersInfo: 1 | name | {user, db} | [...] | {forAllDBs: true}, showCredentials?}``."""
    arg = to_plain(cmd.get("usersInfo"))
    users = _users_for(ctx, arg)
    show = bool(cmd.get("showCredentials", False))
    return {"users": [_user_doc(u, show) for u in users]}


@command("connectionStatus", action=Action.NONE)
def connection_status(ctx: Context, cmd: Mapping[str, Any]) -> dict[str, Any]:
    """Who is authenticated on this connection and with which (current) roles."""
    auth = ctx.server.auth
    users = auth.live_users(sorted(ctx.conn.principals))
    roles = auth.roles_of(sorted(ctx.conn.principals))
    return {
        "authInfo": {
            "authenticatedUsers": [{"user": u.name, "db": u.db} for u in users],
            "authenticatedUserRoles": [{"role": r, "db": d} for r, d in roles],
        }
    }
