"""The Lambda event model: a good event parses into typed fields, a bad one names its field."""

from __future__ import annotations

from typing import Any

import pytest

from backover.errors import UsageError
from backover.lifecycle.events import InvalidEvent, LifecycleEvent
from backover.namespaces import Namespace

GOOD: dict[str, Any] = {
    "migration_id": "orders-2026",
    "bucket": "backover-prod",
    "master_secret_id": "docdb/master",
    "app_user": "orders_app",
    "databases": ["shop", "inventory"],
}


def test_a_good_event_parses_with_defaults() -> None:
    event = LifecycleEvent.from_dict(GOOD)
    assert event.databases == ("inventory", "shop")
    assert event.namespaces == (Namespace("inventory"), Namespace("shop"))
    assert event.prefix == "backover" and event.force is False and event.app_secret_id is None
    assert event.layout().start_state == "backover/orders-2026/state/start.json"


def test_namespaces_keep_collections_and_drop_those_a_whole_database_covers() -> None:
    event = LifecycleEvent.from_dict(
        {
            **{k: v for k, v in GOOD.items() if k != "databases"},
            "namespaces": ["shop.orders", "inventory", "inventory.items"],
            "required_retention_hours": 24,
            "retention_hours": 72.5,
            "prefix": "",
        }
    )
    assert [str(ns) for ns in event.namespaces] == ["inventory", "shop.orders"]
    assert event.databases == ("inventory", "shop")
    assert (event.required_retention_hours, event.retention_hours) == (24.0, 72.5)
    assert event.layout().root == "orders-2026/"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        pytest.param({"migration_id": None}, "migration_id", id="missing-id"),
        pytest.param({"migration_id": "bad id!"}, "migration_id", id="bad-id"),
        pytest.param({"bucket": "Not_A_Bucket"}, "bucket", id="bad-bucket"),
        pytest.param({"master_secret_id": ""}, "master_secret_id", id="empty-secret"),
        pytest.param({"app_user": 7}, "app_user", id="user-not-string"),
        pytest.param({"databases": None}, "databases", id="no-databases"),
        pytest.param({"databases": []}, "databases", id="empty-databases"),
        pytest.param({"databases": ["shop.orders"]}, "databases", id="collection-in-databases"),
        pytest.param({"databases": ["local"]}, "databases", id="internal-database"),
        pytest.param({"databases": ["a/b"]}, "databases", id="bad-database-name"),
        pytest.param({"namespaces": ["shop"]}, "namespaces", id="both-lists"),
        pytest.param({"prefix": 3}, "prefix", id="prefix-not-string"),
        pytest.param({"required_retention_hours": -1}, "required_retention_hours", id="negative-hours"),
        pytest.param({"retention_hours": True}, "retention_hours", id="bool-hours"),
        pytest.param({"force": "yes"}, "force", id="force-not-bool"),
        pytest.param({"dataabses": ["x"]}, "dataabses", id="misspelt"),
    ],
)
def test_a_bad_event_names_its_field(change: dict[str, Any], field: str) -> None:
    raw = {**GOOD, **change}
    raw = {k: v for k, v in raw.items() if v is not None}
    with pytest.raises(InvalidEvent) as caught:
        LifecycleEvent.from_dict(raw)
    assert caught.value.field == field
    assert f"field '{field}'" in str(caught.value)
    assert isinstance(caught.value, UsageError)  # exit 2 on the command line


def test_an_event_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(InvalidEvent, match="must be a JSON object"):
        LifecycleEvent.from_dict(["shop"])


def test_namespace_coverage() -> None:
    shop, orders = Namespace("shop"), Namespace("shop", "orders")
    assert shop.contains(orders) and not orders.contains(shop)
    assert Namespace("", "").contains(orders)  # the whole cluster
    assert not Namespace("inventory").contains(orders)
    assert Namespace.from_doc(orders.to_doc()) == orders
