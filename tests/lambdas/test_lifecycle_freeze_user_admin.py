"""The freeze against an app user that can change users or roles (documentdb stand-in, moto).

Such a user could grant itself ``readWrite`` again after the freeze, or create a user that has it,
and write behind the freeze where nothing captures it. The freeze takes those roles away (abort
gives them back); the steps run in-process here with the Lambdas' event and secrets.
"""

from __future__ import annotations

from typing import Any

import pytest
from lifecycle_world import Source
from pymongo.errors import OperationFailure

from backover.errors import UsageError
from backover.layout import MigrationLayout
from backover.lifecycle.abort import abort
from backover.lifecycle.events import LifecycleEvent
from backover.lifecycle.freeze import freeze
from backover.lifecycle.source import master_uri
from backover.lifecycle.start import start
from backover.s3objects import S3Objects

PREFIX = "lambda-tests"


def _refused(call: Any, *args: Any, **kwargs: Any) -> int:
    with pytest.raises(OperationFailure) as refused:
        call(*args, **kwargs)
    return refused.value.code


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param(lambda s: {"role": "userAdminAnyDatabase", "db": "admin"}, id="userAdminAnyDatabase"),
        pytest.param(lambda s: {"role": "userAdmin", "db": s.databases[1]}, id="userAdmin-on-a-migrated-db"),
        pytest.param(lambda s: {"role": "userAdmin", "db": "admin"}, id="userAdmin-on-admin"),
        pytest.param(lambda s: {"role": "dbOwner", "db": s.databases[1]}, id="dbOwner-on-a-migrated-db"),
        pytest.param(lambda s: {"role": "dbOwner", "db": "admin"}, id="dbOwner-on-admin"),
    ],
)
def test_a_frozen_user_cannot_give_itself_write_access_again(
    source: Source, aws_endpoints: str, extra: Any
) -> None:
    orders, stock = source.databases
    granted = extra(source)
    source.root.admin.command("grantRolesToUser", source.app_user, roles=[granted])
    prior = source.user_roles()
    start(LifecycleEvent.from_dict(source.event("start")))

    result = freeze(LifecycleEvent.from_dict(source.event("restore")))
    assert granted in result.roles_removed
    assert result.read_only_roles == source.user_roles()
    assert granted not in result.read_only_roles
    layout = MigrationLayout(source.bucket, PREFIX, source.migration_id)
    assert granted in S3Objects(source.bucket).get_json(layout.freeze_state)["roles_removed"]

    with source.app_client() as app:
        for role_db in (orders, stock, "admin"):
            assert (
                _refused(
                    app.admin.command,
                    "grantRolesToUser",
                    source.app_user,
                    roles=[{"role": "readWrite", "db": role_db}],
                )
                == 13
            )
        assert _refused(app[stock].command, "createUser", "sneaky", pwd="pw", roles=["readWrite"]) == 13
        assert (
            _refused(
                app.admin.command,
                "createUser",
                "sneaky",
                pwd="pw",
                roles=[{"role": "readWrite", "db": stock}],
            )
            == 13
        )
        for db in source.databases:
            assert _refused(app[db].items.insert_one, {"_id": "behind-the-freeze"}) == 13
        assert app[stock].items.find_one({"_id": "seed"}) is not None  # reads still work

    abort(layout, master_uri(LifecycleEvent.from_dict(source.event("start"))))
    assert source.user_roles() == prior  # the user-admin role is back


def test_a_user_admin_of_a_database_can_grant_itself_write_there(source: Source, aws_endpoints: str) -> None:
    """The threat, as MongoDB and DocumentDB allow it: a userAdmin of a database re-grants itself readWrite."""
    stock = source.databases[1]
    source.root.admin.command("grantRolesToUser", source.app_user, roles=[{"role": "userAdmin", "db": stock}])
    source.root.admin.command(
        "revokeRolesFromUser", source.app_user, roles=[{"role": "readWrite", "db": source.databases[0]}]
    )
    with source.app_client() as app:
        assert _refused(app[stock].items.insert_one, {"_id": "before"}) == 13
        app.admin.command("grantRolesToUser", source.app_user, roles=[{"role": "readWrite", "db": stock}])
        app[stock].items.insert_one({"_id": "after-self-grant"})


@pytest.mark.parametrize("name", ["root", "restore"])
def test_start_refuses_a_user_the_freeze_could_not_make_read_only(
    source: Source, aws_endpoints: str, name: str
) -> None:
    source.root.admin.command("grantRolesToUser", source.app_user, roles=[{"role": name, "db": "admin"}])
    before = source.user_roles()
    with pytest.raises(UsageError, match=f"holds {name}@admin"):
        start(LifecycleEvent.from_dict(source.event("start")))
    assert source.user_roles() == before
    assert (
        S3Objects(source.bucket).get_json(
            MigrationLayout(source.bucket, PREFIX, source.migration_id).start_state
        )
        is None
    )
    assert not [ns for ns in source.enabled_streams() if ns["database"] == ""]
