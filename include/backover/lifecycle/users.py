"""The microservices' user: read-write for the migration, read-only at the freeze, prior roles back.

Roles are MongoDB's built-in roles as ``{role, db}`` documents (DocumentDB keeps every user in
``admin``). Which roles can change data in a migrated database:

* on the database itself: ``readWrite``, ``dbOwner``, ``dbAdmin`` (drops collections);
* granted in ``admin`` for every database: ``readWriteAnyDatabase``, ``dbAdminAnyDatabase``,
  ``restore``, ``root``, ``__system``.

The freeze turns the first group into ``read`` and the any-database write roles into
``readAnyDatabase``; a user holding ``root``, ``restore`` or ``__system`` is refused (taking those
away is not Back Over's call). Proof of read-only is a real write as the user that the server
refuses with code 13 (Unauthorized); without the user's password it can only be the roles the
server reports (``usersInfo``), and the result says so.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pymongo import MongoClient
from pymongo.errors import OperationFailure, PyMongoError

from ..connections import DatabaseUri
from ..errors import JobFailed, UsageError
from .source import connect

log = logging.getLogger(__name__)

USER_DB = "admin"
UNAUTHORIZED = 13
DB_WRITE_ROLES = frozenset({"readWrite", "dbOwner", "dbAdmin"})
ANY_DB_READ_ONLY = {"readWriteAnyDatabase": "readAnyDatabase", "dbAdminAnyDatabase": "readAnyDatabase"}
UNFREEZABLE = frozenset({"root", "restore", "__system"})
#: The write that proves read-only: it matches nothing, so it changes nothing even when allowed.
PROBE_COLLECTION = "backover_read_only_probe"
PROBE_FILTER = {"_id": "backover-read-only-probe"}

Role = dict[str, str]


def role(name: str, db: str) -> Role:
    return {"role": name, "db": db}


def normalise(roles: Iterable[Mapping[str, Any]]) -> list[Role]:
    """Plain ``{role, db}`` dicts, duplicates dropped, order kept."""
    out: list[Role] = []
    for r in roles:
        item = role(str(r["role"]), str(r["db"]))
        if item not in out:
            out.append(item)
    return out


def write_roles_on(roles: Sequence[Mapping[str, Any]], database: str) -> list[Role]:
    """The roles in ``roles`` that let their holder change data in ``database``."""
    found = []
    for r in normalise(roles):
        if r["role"] in DB_WRITE_ROLES and r["db"] == database:
            found.append(r)
        elif r["db"] == USER_DB and (r["role"] in ANY_DB_READ_ONLY or r["role"] in UNFREEZABLE):
            found.append(r)
    return found


def read_write_roles(current: Sequence[Mapping[str, Any]], databases: Iterable[str]) -> tuple[list[Role], list[Role]]:
    """``(roles after, roles to grant)``: ``readWrite`` on every database the user cannot write yet."""
    roles = normalise(current)
    grant = [role("readWrite", db) for db in sorted(set(databases)) if not write_roles_on(roles, db)]
    return roles + grant, grant


def read_only_roles(current: Sequence[Mapping[str, Any]], databases: Iterable[str]) -> list[Role]:
    """``current`` with every write role on ``databases`` turned into its read-only counterpart.

    :raises UsageError: the user holds a role that writes everywhere and has no read-only twin.
    """
    wanted = set(databases)
    out: list[Role] = []
    for r in normalise(current):
        if r["db"] == USER_DB and r["role"] in UNFREEZABLE:
            raise UsageError(f"the microservices' user holds {r['role']}@{r['db']}, which writes every "
                             "database: Back Over will not take it away; use a user without it")
        if r["role"] in DB_WRITE_ROLES and r["db"] in wanted:
            r = role("read", r["db"])
        elif r["db"] == USER_DB and r["role"] in ANY_DB_READ_ONLY:
            r = role(ANY_DB_READ_ONLY[r["role"]], USER_DB)
        if r not in out:
            out.append(r)
    return out


def get_roles(client: MongoClient, user: str) -> list[Role]:
    """The user's current roles (``usersInfo``); UsageError when the user does not exist."""
    try:
        users = client.admin.command("usersInfo", {"user": user, "db": USER_DB})["users"]
    except OperationFailure as e:
        raise JobFailed(f"cannot read the roles of user {user!r}: {e.code} {e.details.get('errmsg', '')}") from None
    if not users:
        raise UsageError(f"the microservices' user {user!r} does not exist in {USER_DB!r} on the source")
    return normalise(users[0].get("roles", []))


def set_roles(client: MongoClient, user: str, roles: Sequence[Role]) -> None:
    """Replace the user's roles in one ``updateUser`` (effective on the user's next command)."""
    try:
        client.admin.command("updateUser", user, roles=list(roles))
    except OperationFailure as e:
        raise JobFailed(f"cannot change the roles of user {user!r}: {e.code} {e.details.get('errmsg', '')}") from None


def grant_roles(client: MongoClient, user: str, roles: Sequence[Role]) -> None:
    """Add roles to the user (``grantRolesToUser``)."""
    if not roles:
        return
    try:
        client.admin.command("grantRolesToUser", user, roles=list(roles))
    except OperationFailure as e:
        raise JobFailed(f"cannot grant roles to user {user!r}: {e.code} {e.details.get('errmsg', '')}") from None


def prove_read_only_by_write(app: DatabaseUri, databases: Iterable[str]) -> list[str]:
    """Write to every database as the app user; each write must be refused with code 13.

    The write is an update that matches no document, so it changes nothing even if it were
    allowed. Returns the databases proven; JobFailed when one accepts the write.
    """
    proven = []
    with connect(app) as client:
        for db in sorted(set(databases)):
            try:
                client[db][PROBE_COLLECTION].update_one(PROBE_FILTER, {"$set": {"probe": True}})
            except OperationFailure as e:
                if e.code != UNAUTHORIZED:
                    raise JobFailed(f"the read-only proof on {db!r} failed with code {e.code}, not 13") from None
                proven.append(db)
                log.info("read-only proven on %s: a write as the app user was refused (code 13)", db)
                continue
            except PyMongoError as e:
                raise JobFailed(f"the read-only proof on {db!r} failed: {type(e).__name__}") from None
            raise JobFailed(f"the microservices' user can still write to {db!r}: the read-only switch did not hold")
    return proven


def prove_read_only_by_roles(client: MongoClient, user: str, databases: Iterable[str]) -> None:
    """Re-read the user's roles: none may write any of ``databases`` (JobFailed otherwise)."""
    roles = get_roles(client, user)
    for db in sorted(set(databases)):
        writers = write_roles_on(roles, db)
        if writers:
            raise JobFailed(f"the microservices' user still holds {writers[0]['role']}@{writers[0]['db']}, "
                            f"which writes {db!r}")
