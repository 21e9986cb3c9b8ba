"""The microservices' user: read-write for the migration, read-only at the freeze, prior roles back.

Roles are MongoDB's built-in roles as ``{role, db}`` documents (DocumentDB keeps every user in
``admin``). Which roles can change data in a migrated database:

* on the database itself: ``readWrite``, ``dbOwner``, ``dbAdmin`` (drops collections);
* granted in ``admin`` for every database: ``readWriteAnyDatabase``, ``dbAdminAnyDatabase``,
  ``restore``, ``root``, ``__system``.

Which roles let the user change users or roles, and so give itself (or a new user) write access
again after the freeze: ``userAdmin`` and ``dbOwner`` on ``admin`` or on a migrated database
(``grantRolesToUser`` needs only grantRole on the *role's* database), ``userAdminAnyDatabase``,
and ``restore``/``root``/``__system``. ``userAdmin``/``dbOwner`` on another database stay: a role
there can only grant privileges on that database.

The freeze turns the first group into ``read`` and the any-database write roles into
``readAnyDatabase``, and *removes* the user-admin roles (``dbOwner@admin`` keeps its
``readWrite``/``dbAdmin`` part): the app needs none of them to read, and abort gives every prior
role back from ``state/start.json``. A user holding ``root``, ``restore`` or ``__system`` is refused
(no read-only twin; taking those away is not Back Over's call), and so is a role that is not
built in (a user-defined role's privileges are unknown): start refuses both before changing
anything, so a migration never reaches a freeze that cannot be made. Proof of read-only is a
real write as the user that the server refuses with code 13 (Unauthorized); without the user's
password it can only be the roles the server reports (``usersInfo``), and the result says so.
Either way the roles are re-read afterwards and none may still change users or roles.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pymongo import MongoClient
from pymongo.errors import OperationFailure, PyMongoError

from ..connections import DatabaseUri
from ..errors import JobFailed, UsageError
from ..mongo import errors as codes
from .source import connect, errmsg

log = logging.getLogger(__name__)

USER_DB = "admin"
UNAUTHORIZED = codes.UNAUTHORIZED
DB_WRITE_ROLES = frozenset({"readWrite", "dbOwner", "dbAdmin"})
ANY_DB_READ_ONLY = {"readWriteAnyDatabase": "readAnyDatabase", "dbAdminAnyDatabase": "readAnyDatabase"}
UNFREEZABLE = frozenset({"root", "restore", "__system"})
#: Roles granting grantRole/createUser/... on their database (changeOwnPassword-only roles are not).
DB_USER_ADMIN_ROLES = frozenset({"userAdmin", "dbOwner"})
#: ``dbOwner`` without its ``userAdmin`` part, for a database that is not migrated (``admin``).
DB_OWNER_WITHOUT_USER_ADMIN = ("readWrite", "dbAdmin")
ANY_DB_USER_ADMIN = frozenset({"userAdminAnyDatabase"})
#: MongoDB's (and DocumentDB's) built-in roles; any other role is user-defined and cannot be classified.
BUILTIN_ROLES = frozenset(
    {
        "read",
        "readWrite",
        "dbAdmin",
        "dbOwner",
        "userAdmin",
        "readAnyDatabase",
        "readWriteAnyDatabase",
        "dbAdminAnyDatabase",
        "userAdminAnyDatabase",
        "clusterAdmin",
        "clusterManager",
        "clusterMonitor",
        "hostManager",
        "backup",
        "restore",
        "root",
        "__system",
        "enableSharding",
        "__queryableBackup",
        "directShardOperations",
        "searchCoordinator",
    }
)
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


def user_admin_roles(roles: Sequence[Mapping[str, Any]], databases: Iterable[str]) -> list[Role]:
    """The roles in ``roles`` that let their holder change users or roles in a way that reaches
    ``databases`` (a role on another database than ``admin`` grants privileges only there)."""
    reach = {USER_DB, *databases}
    return [
        r
        for r in normalise(roles)
        if (r["role"] in DB_USER_ADMIN_ROLES and r["db"] in reach)
        or (r["db"] == USER_DB and (r["role"] in ANY_DB_USER_ADMIN or r["role"] in UNFREEZABLE))
    ]


def check_freezable(roles: Sequence[Mapping[str, Any]]) -> None:
    """UsageError naming the first role the freeze could not make read-only.

    A role that is not built in (user-defined: its privileges are unknown here), or ``root``,
    ``restore``, ``__system`` (write every database, no read-only twin).
    """
    for r in normalise(roles):
        if r["role"] not in BUILTIN_ROLES:
            raise UsageError(
                f"the microservices' user holds {r['role']}@{r['db']}, which is not a built-in role: "
                "Back Over cannot tell what it allows, so it cannot make the user read-only; "
                "use a user with built-in roles only"
            )
        if r["db"] == USER_DB and r["role"] in UNFREEZABLE:
            raise UsageError(
                f"the microservices' user holds {r['role']}@{r['db']}, which writes every "
                "database: Back Over will not take it away; use a user without it"
            )


def read_write_roles(
    current: Sequence[Mapping[str, Any]], databases: Iterable[str]
) -> tuple[list[Role], list[Role]]:
    """``(roles after, roles to grant)``: ``readWrite`` on every database the user cannot write yet."""
    roles = normalise(current)
    grant = [role("readWrite", db) for db in sorted(set(databases)) if not write_roles_on(roles, db)]
    return roles + grant, grant


def read_only_roles(current: Sequence[Mapping[str, Any]], databases: Iterable[str]) -> list[Role]:
    """``current`` with every write role on ``databases`` turned into its read-only counterpart and
    every role that can change users or roles (:func:`user_admin_roles`) taken away.

    :raises UsageError: a role :func:`check_freezable` refuses.
    """
    check_freezable(current)
    wanted = set(databases)
    out: list[Role] = []
    for r in normalise(current):
        if r["role"] in DB_WRITE_ROLES and r["db"] in wanted:
            replaced = [role("read", r["db"])]
        elif r["db"] == USER_DB and r["role"] in ANY_DB_READ_ONLY:
            replaced = [role(ANY_DB_READ_ONLY[r["role"]], USER_DB)]
        elif r["role"] == "dbOwner" and r["db"] == USER_DB:
            replaced = [role(name, USER_DB) for name in DB_OWNER_WITHOUT_USER_ADMIN]
        elif user_admin_roles([r], wanted):
            replaced = []
        else:
            replaced = [r]
        out.extend(x for x in replaced if x not in out)
    return out


def removed_roles(before: Sequence[Mapping[str, Any]], after: Sequence[Mapping[str, Any]]) -> list[Role]:
    """The roles of ``before`` that ``after`` no longer holds (taken away or replaced)."""
    kept = normalise(after)
    return [r for r in normalise(before) if r not in kept]


def describe(roles: Sequence[Mapping[str, Any]]) -> str:
    """``role@db, ...`` (or ``none``) for log lines and messages."""
    return ", ".join(f"{r['role']}@{r['db']}" for r in normalise(roles)) or "none"


def get_roles(client: MongoClient, user: str) -> list[Role]:
    """The user's current roles (``usersInfo``); UsageError when the user does not exist."""
    try:
        users = client.admin.command("usersInfo", {"user": user, "db": USER_DB})["users"]
    except OperationFailure as e:
        raise JobFailed(f"cannot read the roles of user {user!r}: {e.code} {errmsg(e)}") from None
    if not users:
        raise UsageError(f"the microservices' user {user!r} does not exist in {USER_DB!r} on the source")
    return normalise(users[0].get("roles", []))


def set_roles(client: MongoClient, user: str, roles: Sequence[Role]) -> None:
    """Replace the user's roles in one ``updateUser`` (effective on the user's next command)."""
    try:
        client.admin.command("updateUser", user, roles=list(roles))
    except OperationFailure as e:
        raise JobFailed(f"cannot change the roles of user {user!r}: {e.code} {errmsg(e)}") from None


def grant_roles(client: MongoClient, user: str, roles: Sequence[Role]) -> None:
    """Add roles to the user (``grantRolesToUser``)."""
    if not roles:
        return
    try:
        client.admin.command("grantRolesToUser", user, roles=list(roles))
    except OperationFailure as e:
        raise JobFailed(f"cannot grant roles to user {user!r}: {e.code} {errmsg(e)}") from None


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
                    raise JobFailed(
                        f"the read-only proof on {db!r} failed with code {e.code}, not 13"
                    ) from None
                proven.append(db)
                log.info("read-only proven on %s: a write as the app user was refused (code 13)", db)
                continue
            except PyMongoError as e:
                raise JobFailed(f"the read-only proof on {db!r} failed: {type(e).__name__}") from None
            raise JobFailed(
                f"the microservices' user can still write to {db!r}: the read-only switch did not hold"
            )
    return proven


def prove_read_only_by_roles(client: MongoClient, user: str, databases: Iterable[str]) -> None:
    """Re-read the user's roles: none may write any of ``databases`` (JobFailed otherwise)."""
    roles = get_roles(client, user)
    for db in sorted(set(databases)):
        writers = write_roles_on(roles, db)
        if writers:
            raise JobFailed(
                f"the microservices' user still holds {writers[0]['role']}@{writers[0]['db']}, "
                f"which writes {db!r}"
            )


def prove_no_user_admin(client: MongoClient, user: str, databases: Iterable[str]) -> list[Role]:
    """Re-read the user's roles: none may change users or roles (JobFailed otherwise); returns them.

    A write proof cannot show this (the probe would have to grant a role), so it is always made
    from the roles the server reports, which :func:`check_freezable` made sure are all built in.
    """
    roles = get_roles(client, user)
    check_freezable(roles)
    admins = user_admin_roles(roles, databases)
    if admins:
        raise JobFailed(
            f"the microservices' user still holds {describe(admins[:1])}, which can give it write "
            "access again: the read-only switch did not hold"
        )
    return roles
