"""Which roles the microservices' user ends up with at start and at the freeze (pure rules)."""

from __future__ import annotations

import pytest
from pymongo.errors import OperationFailure

from backover.errors import UsageError
from backover.lifecycle.source import errmsg
from backover.lifecycle.users import (
    check_freezable,
    read_only_roles,
    read_write_roles,
    role,
    user_admin_roles,
    write_roles_on,
)


def test_start_grants_read_write_only_where_the_user_cannot_write() -> None:
    current = [role("readWrite", "shop"), role("read", "reports")]
    after, granted = read_write_roles(current, ["shop", "inventory"])
    assert granted == [role("readWrite", "inventory")]
    assert after == current + granted


def test_start_grants_nothing_to_a_user_writing_every_database() -> None:
    assert read_write_roles([role("readWriteAnyDatabase", "admin")], ["shop"])[1] == []


@pytest.mark.parametrize(
    ("before", "after"),
    [
        pytest.param([role("readWrite", "shop")], [role("read", "shop")], id="readWrite"),
        pytest.param(
            [role("dbOwner", "shop"), role("read", "shop")], [role("read", "shop")], id="dbOwner-deduped"
        ),
        pytest.param([role("dbAdmin", "shop")], [role("read", "shop")], id="dbAdmin-drops-collections"),
        pytest.param(
            [role("readWrite", "other")], [role("readWrite", "other")], id="other-database-untouched"
        ),
        pytest.param(
            [role("readWriteAnyDatabase", "admin")], [role("readAnyDatabase", "admin")], id="any-database"
        ),
    ],
)
def test_freeze_turns_write_roles_on_migrated_databases_into_read(before: list, after: list) -> None:
    frozen = read_only_roles(before, ["shop"])
    assert frozen == after
    assert write_roles_on(frozen, "shop") == []


@pytest.mark.parametrize("name", ["root", "restore", "__system"])
def test_freeze_refuses_a_user_that_writes_everything(name: str) -> None:
    with pytest.raises(UsageError, match=f"holds {name}@admin"):
        read_only_roles([role(name, "admin")], ["shop"])


@pytest.mark.parametrize(
    ("before", "after"),
    [
        pytest.param([role("userAdminAnyDatabase", "admin")], [], id="userAdminAnyDatabase"),
        pytest.param([role("userAdmin", "shop")], [], id="userAdmin-migrated"),
        pytest.param([role("userAdmin", "admin")], [], id="userAdmin-admin"),
        pytest.param(
            [role("dbOwner", "admin")],
            [role("readWrite", "admin"), role("dbAdmin", "admin")],
            id="dbOwner-admin-keeps-its-other-parts",
        ),
        pytest.param(
            [role("userAdmin", "other"), role("dbOwner", "other")],
            [role("userAdmin", "other"), role("dbOwner", "other")],
            id="other-database-untouched",
        ),
    ],
)
def test_freeze_takes_away_every_role_that_can_change_users_or_roles(before: list, after: list) -> None:
    frozen = read_only_roles([role("readWrite", "shop"), *before], ["shop"])
    assert frozen == [role("read", "shop"), *after]
    assert user_admin_roles(frozen, ["shop"]) == []


@pytest.mark.parametrize(
    "roles",
    [
        pytest.param([role("appWriter", "admin")], id="user-defined-in-admin"),
        pytest.param([role("read", "shop"), role("ordersEditor", "shop")], id="user-defined-in-a-database"),
    ],
)
def test_a_role_that_is_not_built_in_is_refused(roles: list) -> None:
    with pytest.raises(
        UsageError, match=f"holds {roles[-1]['role']}@{roles[-1]['db']}, which is not a built-in role"
    ):
        check_freezable(roles)
    with pytest.raises(UsageError, match="not a built-in role"):
        read_only_roles(roles, ["shop"])


@pytest.mark.parametrize(
    ("error", "message"),
    [
        pytest.param(
            OperationFailure("not authorized", 13, {"ok": 0, "errmsg": "not authorized", "code": 13}),
            "not authorized",
            id="server-reply",
        ),
        pytest.param(OperationFailure("refused", 13), "", id="no-reply"),
    ],
)
def test_a_refused_role_command_fails_in_one_line(error: OperationFailure, message: str) -> None:
    """The reason of a refused user command is the server's errmsg; a failure that carries no
    reply (pymongo raises some without one) still gives the one-line reason, not a traceback."""
    assert errmsg(error) == message
