"""Which roles the microservices' user ends up with at start and at the freeze (pure rules)."""

from __future__ import annotations

import pytest

from backover.errors import UsageError
from backover.lifecycle.users import read_only_roles, read_write_roles, role, write_roles_on


def test_start_grants_read_write_only_where_the_user_cannot_write() -> None:
    current = [role("readWrite", "shop"), role("read", "reports")]
    after, granted = read_write_roles(current, ["shop", "inventory"])
    assert granted == [role("readWrite", "inventory")]
    assert after == current + granted


def test_start_grants_nothing_to_a_user_writing_every_database() -> None:
    assert read_write_roles([role("readWriteAnyDatabase", "admin")], ["shop"])[1] == []


@pytest.mark.parametrize(("before", "after"), [
    pytest.param([role("readWrite", "shop")], [role("read", "shop")], id="readWrite"),
    pytest.param([role("dbOwner", "shop"), role("read", "shop")], [role("read", "shop")], id="dbOwner-deduped"),
    pytest.param([role("dbAdmin", "shop")], [role("read", "shop")], id="dbAdmin-drops-collections"),
    pytest.param([role("readWrite", "other")], [role("readWrite", "other")], id="other-database-untouched"),
    pytest.param([role("readWriteAnyDatabase", "admin")], [role("readAnyDatabase", "admin")], id="any-database"),
])
def test_freeze_turns_write_roles_on_migrated_databases_into_read(before: list, after: list) -> None:
    frozen = read_only_roles(before, ["shop"])
    assert frozen == after
    assert write_roles_on(frozen, "shop") == []


@pytest.mark.parametrize("name", ["root", "restore", "__system"])
def test_freeze_refuses_a_user_that_writes_everything(name: str) -> None:
    with pytest.raises(UsageError, match=f"holds {name}@admin"):
        read_only_roles([role(name, "admin")], ["shop"])
