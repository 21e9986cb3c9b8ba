"""Privileges of the stand-in: built-in roles x actions, user management commands, live role changes.

Unit tests call ``AuthManager.check`` and the command handlers directly; the integration tests at
the end run the same scenarios through real pymongo over TCP against ``backover_sandbox.standin.server``.
"""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any

import bson
import pymongo
import pymongo.errors
import pytest
from bson.raw_bson import RawBSONDocument

from backover.bsonvalues import RAW
from backover.mongo.errors import CommandError
from backover_sandbox.standin.auth import SCRAM_SHA_1, SCRAM_SHA_256, AuthManager
from backover_sandbox.standin.commands import users
from backover_sandbox.standin.registry import Action, Context

FAST = {SCRAM_SHA_1: 4096, SCRAM_SHA_256: 4096}
R, W, DBA, UA, CA = Action.READ, Action.WRITE, Action.DB_ADMIN, Action.USER_ADMIN, Action.CLUSTER_ADMIN
CHECKED = (R, W, DBA, UA, CA)
BI_PASSWORD = "bi-reads-the-shop-catalogue-every-night"

# role -> (db it is granted in, actions it gives on "shop")
ROLE_MATRIX: dict[str, tuple[str, set[Action]]] = {
    "read": ("shop", {R}),
    "readWrite": ("shop", {R, W}),
    "dbAdmin": ("shop", {DBA}),
    "userAdmin": ("shop", {UA}),
    "dbOwner": ("shop", {R, W, DBA, UA}),
    "readAnyDatabase": ("admin", {R}),
    "readWriteAnyDatabase": ("admin", {R, W}),
    "dbAdminAnyDatabase": ("admin", {DBA}),
    "userAdminAnyDatabase": ("admin", {UA}),
    "backup": ("admin", {R}),
    "restore": ("admin", {W}),
    "clusterMonitor": ("admin", {CA}),
    "clusterManager": ("admin", {CA}),
    "clusterAdmin": ("admin", {CA}),
    "root": ("admin", {R, W, DBA, UA, CA}),
}


def _matrix() -> list[Any]:
    return [
        pytest.param(role, role_db, action, action in allowed, id=f"{role}-{action.value}")
        for role, (role_db, allowed) in ROLE_MATRIX.items()
        for action in CHECKED
    ]


def raw(doc: dict[str, Any]) -> RawBSONDocument:
    return RawBSONDocument(bson.encode(doc), codec_options=RAW)


def make_conn(*principals: tuple[str, str]) -> SimpleNamespace:
    return SimpleNamespace(id=1, principals=set(principals), auth_state={})


@pytest.fixture
def manager() -> AuthManager:
    mgr = AuthManager(enabled=True, iterations=FAST)
    mgr.create_user("admin", "root", "pw", [{"role": "root", "db": "admin"}])
    return mgr


@pytest.fixture
def server(manager: AuthManager) -> SimpleNamespace:
    return SimpleNamespace(auth=manager, config=SimpleNamespace(flavour="mongodb", auth=True))


def run(
    server: SimpleNamespace,
    handler: Any,
    db: str,
    cmd: dict[str, Any],
    conn: SimpleNamespace | None = None,
    action: Action | None = None,
) -> dict[str, Any]:
    """Run a handler as the server does: the registered action's check first."""
    conn = conn if conn is not None else make_conn(("root", "admin"))
    if action is not None:
        server.auth.check(conn.principals, action, db)
    return handler(Context(server, conn, db), raw(cmd))  # type: ignore[arg-type]


def code(fn: Any, *args: Any, **kwargs: Any) -> int:
    with pytest.raises(CommandError) as excinfo:
        fn(*args, **kwargs)
    return excinfo.value.code


# --------------------------------------------------------------------------------------------
# privilege matrix
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("role", "role_db", "action", "allowed"), _matrix())
def test_role_action_matrix(
    manager: AuthManager, role: str, role_db: str, action: Action, allowed: bool
) -> None:
    manager.create_user(role_db, "u", "pw", [{"role": role, "db": role_db}])
    assert manager.is_authorized({("u", role_db)}, action, "shop") is allowed


@pytest.mark.parametrize("role", ["read", "readWrite", "dbAdmin", "userAdmin", "dbOwner"])
def test_database_roles_stop_at_their_database(manager: AuthManager, role: str) -> None:
    manager.create_user("shop", "u", "pw", [role])
    assert manager.actions_on({("u", "shop")}, "other") == frozenset()
    assert manager.actions_on({("u", "shop")}, "admin") == frozenset()


def test_read_granted_in_admin_is_only_admin(manager: AuthManager) -> None:
    manager.create_user("admin", "u", "pw", ["read"])
    assert manager.actions_on({("u", "admin")}, "admin") == {R}
    assert manager.actions_on({("u", "admin")}, "shop") == frozenset()


@pytest.mark.parametrize(
    ("role", "db", "expected"),
    [
        pytest.param("readWriteAnyDatabase", "local", set(), id="rwAny-local"),
        pytest.param("readAnyDatabase", "config", set(), id="readAny-config"),
        pytest.param("clusterMonitor", "local", {R, CA}, id="clusterMonitor-local"),
        pytest.param("clusterManager", "config", {R, W, CA}, id="clusterManager-config"),
        pytest.param("backup", "local", {R}, id="backup-local"),
        pytest.param("root", "local", {R, W, DBA, UA, CA}, id="root-local"),
    ],
)
def test_internal_databases(manager: AuthManager, role: str, db: str, expected: set[Action]) -> None:
    manager.create_user("admin", "u", "pw", [{"role": role, "db": "admin"}])
    assert manager.actions_on({("u", "admin")}, db) == expected


@pytest.mark.parametrize(
    ("role", "command", "action", "allowed"),
    [
        pytest.param("dbAdmin", "listCollections", R, True, id="dbAdmin-listCollections"),
        pytest.param("dbAdmin", "createIndexes", W, True, id="dbAdmin-createIndexes"),
        pytest.param("dbAdmin", "find", R, False, id="dbAdmin-find"),
        pytest.param("dbAdmin", "insert", W, False, id="dbAdmin-insert"),
        pytest.param("read", "collStats", DBA, True, id="read-collStats"),
        pytest.param("read", "dropDatabase", DBA, False, id="read-dropDatabase"),
        pytest.param("readWrite", "dropDatabase", DBA, False, id="readWrite-dropDatabase"),
    ],
)
def test_command_alternatives(
    manager: AuthManager, role: str, command: str, action: Action, allowed: bool
) -> None:
    manager.create_user("shop", "u", "pw", [role])
    assert manager.is_authorized({("u", "shop")}, action, "shop", command) is allowed


def test_unauthorized_message_and_code(manager: AuthManager) -> None:
    manager.create_user("shop", "u", "pw", ["read"])
    with pytest.raises(CommandError) as excinfo:
        manager.check({("u", "shop")}, W, "shop", "insert")
    assert (excinfo.value.code, excinfo.value.code_name) == (13, "Unauthorized")
    assert excinfo.value.message == "not authorized on shop to execute command { insert: ... }"
    with pytest.raises(CommandError) as bare:
        manager.check({("u", "shop")}, W, "shop")
    assert bare.value.message == "not authorized on shop to execute command"


def test_unauthenticated_needs_authentication(manager: AuthManager) -> None:
    with pytest.raises(CommandError) as excinfo:
        manager.check(set(), R, "shop", "find")
    assert (excinfo.value.code, excinfo.value.message) == (13, "command find requires authentication")
    assert code(manager.check, set(), Action.AUTHENTICATED, "shop") == 13
    manager.check(set(), Action.NONE, "shop")


def test_any_user_is_authenticated_even_without_roles(manager: AuthManager) -> None:
    manager.create_user("shop", "nobody", "pw", [])
    manager.check({("nobody", "shop")}, Action.AUTHENTICATED, "shop")
    assert code(manager.check, {("nobody", "shop")}, R, "shop") == 13


def test_auth_disabled_allows_everything() -> None:
    manager = AuthManager(enabled=False, iterations=FAST)
    for action in (*CHECKED, Action.AUTHENTICATED):
        manager.check(set(), action, "shop")


def test_custom_is_not_a_privilege(manager: AuthManager) -> None:
    with pytest.raises(ValueError):
        manager.check({("root", "admin")}, Action.CUSTOM, "shop")


# --------------------------------------------------------------------------------------------
# role changes take effect on the next check
# --------------------------------------------------------------------------------------------
def test_role_change_takes_effect_immediately(manager: AuthManager) -> None:
    manager.create_user("shop", "app", "pw", ["readWrite"])
    principals = {("app", "shop")}
    manager.check(principals, W, "shop")
    manager.update_user("shop", "app", roles=["read"])
    assert code(manager.check, principals, W, "shop") == 13
    manager.check(principals, R, "shop")
    manager.grant_roles("shop", "app", [{"role": "readWrite", "db": "shop"}])
    manager.check(principals, W, "shop")
    manager.revoke_roles("shop", "app", ["readWrite", "read"])
    assert code(manager.check, principals, R, "shop") == 13


def test_dropped_user_loses_everything(manager: AuthManager) -> None:
    manager.create_user("shop", "app", "pw", ["dbOwner"])
    principals = {("app", "shop")}
    manager.drop_user("shop", "app")
    with pytest.raises(CommandError) as excinfo:
        manager.check(principals, R, "shop", "find")
    assert excinfo.value.message == "command find requires authentication"
    assert code(manager.check, principals, Action.AUTHENTICATED, "shop") == 13
    manager.create_user("shop", "app", "pw", ["read"])  # a new user of the same name
    manager.check(principals, R, "shop")


def test_concurrent_user_changes_are_consistent(manager: AuthManager) -> None:
    def work(i: int) -> None:
        manager.create_user("shop", f"u{i}", "pw", ["read"])
        manager.grant_roles("shop", f"u{i}", ["readWrite"])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    listed = manager.list_users("shop")
    assert [u.name for u in listed] == sorted(f"u{i}" for i in range(16))
    assert all(u.roles == (("read", "shop"), ("readWrite", "shop")) for u in listed)


# --------------------------------------------------------------------------------------------
# user management commands
# --------------------------------------------------------------------------------------------
def test_create_user_and_duplicate(server: SimpleNamespace) -> None:
    run(
        server,
        users.create_user,
        "shop",
        {"createUser": "app", "pwd": "pw", "roles": ["readWrite"], "customData": {"team": "web"}},
    )
    user = server.auth.get_user("shop", "app")
    assert user.roles == (("readWrite", "shop"),) and user.custom_data == {"team": "web"}
    with pytest.raises(CommandError) as excinfo:
        run(server, users.create_user, "shop", {"createUser": "app", "pwd": "pw", "roles": []})
    assert (excinfo.value.code, excinfo.value.message) == (51003, 'User "app@shop" already exists')


@pytest.mark.parametrize(
    ("cmd", "expected"),
    [
        pytest.param({"createUser": "x", "pwd": "pw", "roles": ["nope"]}, 31, id="unknown-role"),
        pytest.param(
            {"createUser": "x", "pwd": "pw", "roles": ["readAnyDatabase"]}, 31, id="anydb-role-outside-admin"
        ),
        pytest.param({"createUser": "x", "pwd": "pw"}, 40414, id="no-roles"),
        pytest.param({"createUser": "x", "roles": []}, 2, id="no-pwd"),
        pytest.param({"createUser": "x", "pwd": "", "roles": []}, 2, id="empty-pwd"),
        pytest.param(
            {"createUser": "x", "pwd": "pw", "roles": [], "mechanisms": ["MONGODB-CR"]},
            2,
            id="unknown-mechanism",
        ),
        pytest.param({"createUser": "x", "pwd": "pw", "roles": [], "mechanisms": []}, 2, id="no-mechanism"),
        pytest.param({"createUser": "x", "pwd": "pw", "roles": [{"role": "read"}]}, 2, id="role-without-db"),
        pytest.param({"createUser": 5, "pwd": "pw", "roles": []}, 14, id="name-not-string"),
    ],
)
def test_create_user_errors(server: SimpleNamespace, cmd: dict[str, Any], expected: int) -> None:
    assert code(run, server, users.create_user, "shop", cmd) == expected
    assert server.auth.get_user("shop", "x") is None


def test_create_user_with_mechanisms(server: SimpleNamespace) -> None:
    run(
        server,
        users.create_user,
        "shop",
        {"createUser": "old", "pwd": "pw", "roles": [], "mechanisms": ["SCRAM-SHA-1"]},
    )
    assert server.auth.get_user("shop", "old").mechanisms == ["SCRAM-SHA-1"]


def test_update_user(server: SimpleNamespace) -> None:
    run(server, users.create_user, "shop", {"createUser": "app", "pwd": "pw", "roles": ["readWrite"]})
    before = server.auth.get_user("shop", "app")
    run(server, users.update_user, "shop", {"updateUser": "app", "roles": ["read"], "customData": {"v": 2}})
    after = server.auth.get_user("shop", "app")
    assert after.roles == (("read", "shop"),) and after.custom_data == {"v": 2}
    assert after.credentials == before.credentials and after.user_id == before.user_id
    run(server, users.update_user, "shop", {"updateUser": "app", "pwd": "new"})
    assert server.auth.get_user("shop", "app").credentials != before.credentials
    run(server, users.update_user, "shop", {"updateUser": "app", "mechanisms": ["SCRAM-SHA-256"]})
    assert server.auth.get_user("shop", "app").mechanisms == ["SCRAM-SHA-256"]
    assert (
        code(run, server, users.update_user, "shop", {"updateUser": "app", "mechanisms": ["SCRAM-SHA-1"]})
        == 2
    )
    assert code(run, server, users.update_user, "shop", {"updateUser": "app"}) == 2
    assert code(run, server, users.update_user, "shop", {"updateUser": "ghost", "roles": []}) == 11


def test_drop_user(server: SimpleNamespace) -> None:
    run(server, users.create_user, "shop", {"createUser": "app", "pwd": "pw", "roles": []})
    run(server, users.drop_user, "shop", {"dropUser": "app"})
    assert server.auth.get_user("shop", "app") is None
    with pytest.raises(CommandError) as excinfo:
        run(server, users.drop_user, "shop", {"dropUser": "app"})
    assert (excinfo.value.code, excinfo.value.code_name) == (11, "UserNotFound")


def test_drop_all_users_from_database(server: SimpleNamespace) -> None:
    for name in ("a", "b"):
        server.auth.create_user("shop", name, "pw", [])
    assert run(server, users.drop_all_users, "shop", {"dropAllUsersFromDatabase": 1}) == {"n": 2}
    assert server.auth.get_user("admin", "root") is not None


def test_grant_and_revoke(server: SimpleNamespace) -> None:
    server.auth.create_user("shop", "app", "pw", ["read"])
    run(
        server,
        users.grant_roles,
        "shop",
        {"grantRolesToUser": "app", "roles": ["readWrite", {"role": "read", "db": "other"}, "read"]},
    )
    assert server.auth.get_user("shop", "app").roles == (
        ("read", "shop"),
        ("readWrite", "shop"),
        ("read", "other"),
    )
    run(server, users.revoke_roles, "shop", {"revokeRolesFromUser": "app", "roles": ["read", "dbAdmin"]})
    assert server.auth.get_user("shop", "app").roles == (("readWrite", "shop"), ("read", "other"))
    assert (
        code(run, server, users.grant_roles, "shop", {"grantRolesToUser": "ghost", "roles": ["read"]}) == 11
    )
    assert code(run, server, users.grant_roles, "shop", {"grantRolesToUser": "app", "roles": ["nope"]}) == 31
    assert code(run, server, users.grant_roles, "shop", {"grantRolesToUser": "app"}) == 40414


def test_user_admin_of_one_db_cannot_grant_roles_elsewhere(server: SimpleNamespace) -> None:
    server.auth.create_user("shop", "ua", "pw", ["userAdmin"])
    server.auth.create_user("shop", "app", "pw", [])
    conn = make_conn(("ua", "shop"))
    run(server, users.grant_roles, "shop", {"grantRolesToUser": "app", "roles": ["readWrite"]}, conn, UA)
    with pytest.raises(CommandError) as excinfo:
        run(
            server,
            users.grant_roles,
            "shop",
            {"grantRolesToUser": "app", "roles": [{"role": "root", "db": "admin"}]},
            conn,
            UA,
        )
    assert excinfo.value.code == 13
    assert (
        code(
            run,
            server,
            users.create_user,
            "shop",
            {"createUser": "x", "pwd": "pw", "roles": [{"role": "read", "db": "other"}]},
            conn,
            UA,
        )
        == 13
    )
    assert (
        code(run, server, users.create_user, "other", {"createUser": "x", "pwd": "pw", "roles": []}, conn, UA)
        == 13
    )


def test_grant_and_revoke_need_user_admin_on_the_roles_database_only(server: SimpleNamespace) -> None:
    """mongod checks grantRole/revokeRole on each role's database, not on the user's: a user of
    ``admin`` holding ``userAdmin@shop`` gives itself ``readWrite@shop`` (and nothing elsewhere)."""
    server.auth.create_user("admin", "app", "pw", [{"role": "userAdmin", "db": "shop"}])
    conn = make_conn(("app", "admin"))
    run(
        server,
        users.grant_roles,
        "admin",
        {"grantRolesToUser": "app", "roles": [{"role": "readWrite", "db": "shop"}]},
        conn,
    )
    assert ("readWrite", "shop") in server.auth.get_user("admin", "app").roles
    assert server.auth.is_authorized(conn.principals, W, "shop")
    assert (
        code(
            run,
            server,
            users.grant_roles,
            "admin",
            {"grantRolesToUser": "app", "roles": [{"role": "readWrite", "db": "other"}]},
            conn,
        )
        == 13
    )
    run(
        server,
        users.revoke_roles,
        "admin",
        {"revokeRolesFromUser": "app", "roles": [{"role": "readWrite", "db": "shop"}]},
        conn,
    )
    assert server.auth.get_user("admin", "app").roles == (("userAdmin", "shop"),)
    assert (
        code(
            run,
            server,
            users.revoke_roles,
            "admin",
            {"revokeRolesFromUser": "app", "roles": [{"role": "read", "db": "other"}]},
            conn,
        )
        == 13
    )
    assert (
        code(
            run,
            server,
            users.grant_roles,
            "admin",
            {"grantRolesToUser": "app", "roles": ["read"]},
            make_conn(),
        )
        == 13
    )  # not authenticated


@pytest.mark.parametrize(
    ("role", "allowed"),
    [
        pytest.param({"role": "userAdmin", "db": "admin"}, False, id="userAdmin-admin"),
        pytest.param({"role": "userAdmin", "db": "shop"}, False, id="userAdmin-shop"),
        pytest.param({"role": "userAdminAnyDatabase", "db": "admin"}, True, id="userAdminAnyDatabase"),
    ],
)
def test_update_user_roles_needs_user_admin_on_every_database(
    server: SimpleNamespace, role: dict[str, str], allowed: bool
) -> None:
    server.auth.create_user("admin", "ua", "pw", [role])
    server.auth.create_user("admin", "app", "pw", [])
    conn = make_conn(("ua", "admin"))
    cmd = {"updateUser": "app", "roles": [{"role": "read", "db": role["db"]}]}
    if allowed:
        run(server, users.update_user, "admin", cmd, conn, UA)
        assert server.auth.get_user("admin", "app").roles == (("read", role["db"]),)
    else:
        with pytest.raises(CommandError) as refused:
            run(server, users.update_user, "admin", cmd, conn, UA)
        assert refused.value.code == 13
        assert server.auth.get_user("admin", "app").roles == ()


# --------------------------------------------------------------------------------------------
# usersInfo and connectionStatus
# --------------------------------------------------------------------------------------------
@pytest.fixture
def populated(server: SimpleNamespace) -> SimpleNamespace:
    server.auth.create_user("shop", "app", "pw", ["readWrite"], custom_data={"team": "web"})
    server.auth.create_user("shop", "bi", BI_PASSWORD, ["read"], mechanisms=["SCRAM-SHA-256"])
    server.auth.create_user("other", "app", "pw", ["read"])
    return server


def _names(reply: dict[str, Any]) -> list[str]:
    return [u["_id"] for u in reply["users"]]


@pytest.mark.parametrize(
    ("arg", "expected"),
    [
        pytest.param(1, ["shop.app", "shop.bi"], id="all-of-db"),
        pytest.param("bi", ["shop.bi"], id="name"),
        pytest.param({"user": "app", "db": "other"}, ["other.app"], id="user-db-doc"),
        pytest.param(["bi", {"user": "app", "db": "other"}, "ghost"], ["shop.bi", "other.app"], id="list"),
        pytest.param({"forAllDBs": True}, ["admin.root", "other.app", "shop.app", "shop.bi"], id="forAllDBs"),
        pytest.param("ghost", [], id="unknown"),
    ],
)
def test_users_info_forms(populated: SimpleNamespace, arg: Any, expected: list[str]) -> None:
    assert _names(run(populated, users.users_info, "shop", {"usersInfo": arg})) == expected


def test_users_info_document(populated: SimpleNamespace) -> None:
    (doc,) = run(populated, users.users_info, "shop", {"usersInfo": "app"})["users"]
    assert list(doc) == ["_id", "userId", "user", "db", "customData", "roles", "mechanisms"]
    assert doc["userId"].subtype == 4
    assert doc["roles"] == [{"role": "readWrite", "db": "shop"}]
    assert doc["mechanisms"] == ["SCRAM-SHA-1", "SCRAM-SHA-256"]
    assert doc["customData"] == {"team": "web"}


def test_users_info_show_credentials_are_mongods_fields_only(populated: SimpleNamespace) -> None:
    (doc,) = run(populated, users.users_info, "shop", {"usersInfo": "bi", "showCredentials": True})["users"]
    assert list(doc["credentials"]) == ["SCRAM-SHA-256"]
    assert set(doc["credentials"]["SCRAM-SHA-256"]) == {"iterationCount", "salt", "storedKey", "serverKey"}
    # A long password: the random salt and keys cannot hold it by chance (a 2-letter one could).
    assert BI_PASSWORD not in repr(doc["credentials"])


def test_users_info_own_user_without_user_admin(populated: SimpleNamespace) -> None:
    conn = make_conn(("bi", "shop"))
    assert _names(run(populated, users.users_info, "shop", {"usersInfo": "bi"}, conn)) == ["shop.bi"]
    for arg in ("app", 1, {"forAllDBs": True}, ["bi", "app"]):
        assert code(run, populated, users.users_info, "shop", {"usersInfo": arg}, conn) == 13


def test_users_info_bad_argument(populated: SimpleNamespace) -> None:
    assert code(run, populated, users.users_info, "shop", {"usersInfo": [5]}) == 2


def test_connection_status(populated: SimpleNamespace) -> None:
    conn = make_conn(("app", "shop"))
    status = run(populated, users.connection_status, "admin", {"connectionStatus": 1}, conn)
    assert status == {
        "authInfo": {
            "authenticatedUsers": [{"user": "app", "db": "shop"}],
            "authenticatedUserRoles": [{"role": "readWrite", "db": "shop"}],
        }
    }
    populated.auth.update_user("shop", "app", roles=["read"])
    status = run(populated, users.connection_status, "admin", {"connectionStatus": 1}, conn)
    assert status["authInfo"]["authenticatedUserRoles"] == [{"role": "read", "db": "shop"}]
    empty = run(populated, users.connection_status, "admin", {"connectionStatus": 1}, make_conn())
    assert empty == {"authInfo": {"authenticatedUsers": [], "authenticatedUserRoles": []}}


# --------------------------------------------------------------------------------------------
# INTEGRATION: real pymongo over TCP against backover_sandbox.standin.server
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def live_server():
    """A stand-in with auth on and root/pw (needs ``backover_sandbox.standin.server``)."""
    from backover_sandbox.standin.server import ServerConfig, start_in_thread

    srv = start_in_thread(
        ServerConfig(flavour="mongodb", port=0, auth=True, root_user="root", root_password="pw")
    )
    yield srv
    srv.stop()


def _client(srv: Any, user: str, password: str, source: str = "admin", **kw: Any) -> pymongo.MongoClient:
    uri = f"mongodb://{user}:{password}@127.0.0.1:{srv.port}/?directConnection=true&authSource={source}"
    return pymongo.MongoClient(uri, serverSelectionTimeoutMS=5000, **kw)


def _op_code(fn: Any, *args: Any, **kwargs: Any) -> int:
    with pytest.raises(pymongo.errors.OperationFailure) as excinfo:
        fn(*args, **kwargs)
    return excinfo.value.code


def test_pymongo_user_management(live_server: Any) -> None:
    with _client(live_server, "root", "pw") as root:
        shop = root["it_shop"]
        shop.command("createUser", "clerk", pwd="pw", roles=["read"], customData={"desk": 3})
        assert _op_code(shop.command, "createUser", "clerk", pwd="pw", roles=[]) == 51003
        shop.command("grantRolesToUser", "clerk", roles=["readWrite"])
        info = shop.command("usersInfo", "clerk")["users"][0]
        assert info["roles"] == [{"role": "read", "db": "it_shop"}, {"role": "readWrite", "db": "it_shop"}]
        assert info["customData"] == {"desk": 3}
        shop.command("revokeRolesFromUser", "clerk", roles=["read"])
        assert shop.command("usersInfo", 1)["users"][0]["roles"] == [{"role": "readWrite", "db": "it_shop"}]
        shop.command("dropUser", "clerk")
        assert shop.command("usersInfo", "clerk")["users"] == []
        assert _op_code(shop.command, "dropUser", "clerk") == 11


def test_pymongo_role_switch_applies_to_the_next_insert(live_server: Any) -> None:
    with _client(live_server, "root", "pw") as root:
        root["it_store"].command("createUser", "writer", pwd="pw", roles=["readWrite"])
        with _client(live_server, "writer", "pw", source="it_store") as writer:
            coll = writer["it_store"]["items"]
            coll.insert_one({"n": 1})
            root["it_store"].command("updateUser", "writer", roles=["read"])
            assert _op_code(coll.insert_one, {"n": 2}) == 13
            assert coll.count_documents({}) == 1
            root["it_store"].command("dropUser", "writer")
            assert _op_code(coll.find_one) == 13


def test_pymongo_user_sees_own_info_only(live_server: Any) -> None:
    with _client(live_server, "root", "pw") as root:
        root["it_view"].command("createUser", "viewer", pwd="pw", roles=["read"])
        root["it_view"].command("createUser", "other", pwd="pw", roles=["read"])
        with _client(live_server, "viewer", "pw", source="it_view") as viewer:
            assert [u["user"] for u in viewer["it_view"].command("usersInfo", "viewer")["users"]] == [
                "viewer"
            ]
            assert _op_code(viewer["it_view"].command, "usersInfo", "other") == 13
            assert _op_code(viewer["it_view"].command, "createUser", "x", pwd="pw", roles=[]) == 13


def test_pymongo_user_admin_of_a_database_grants_itself_write_there(live_server: Any) -> None:
    with _client(live_server, "root", "pw") as root:
        root.admin.command(
            "createUser", "it_self_granter", pwd="pw", roles=[{"role": "userAdmin", "db": "it_grant"}]
        )
        with _client(live_server, "it_self_granter", "pw") as app:
            assert _op_code(app["it_grant"].items.insert_one, {"n": 1}) == 13
            app.admin.command(
                "grantRolesToUser", "it_self_granter", roles=[{"role": "readWrite", "db": "it_grant"}]
            )
            app["it_grant"].items.insert_one({"n": 2})
            assert (
                _op_code(
                    app.admin.command,
                    "grantRolesToUser",
                    "it_self_granter",
                    roles=[{"role": "readWrite", "db": "it_other"}],
                )
                == 13
            )
        root.admin.command("dropUser", "it_self_granter")
