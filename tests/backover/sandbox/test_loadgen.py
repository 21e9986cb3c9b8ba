"""The rehearsal's microservice load: real writes as the app user, stopping when made read-only."""

from __future__ import annotations

import time

from pymongo import MongoClient

from backover_sandbox.loadgen import LoadGenerator


def test_load_runs_until_the_user_is_read_only(standins, standin_password):
    server = standins["documentdb"]
    with MongoClient(server.uri("root", standin_password)) as root:
        root.drop_database("shop")
        root.drop_database("inventory")
        root.admin.command(
            "createUser",
            "svc_load",
            pwd="pw-load",
            roles=[{"role": "readWrite", "db": "shop"}, {"role": "readWrite", "db": "inventory"}],
        )
        root.shop.customers.create_index("email", unique=True)
        root.shop.customers.insert_many([{"_id": i, "email": f"c{i}@example.com"} for i in range(1, 21)])
        root.inventory.items.insert_many([{"_id": f"sku-{i:04d}", "stock": 100} for i in range(1, 31)])
        try:
            with MongoClient(server.uri("svc_load", "pw-load")) as app:
                load = LoadGenerator(app, pause_seconds=0).start()
                deadline = time.monotonic() + 30
                while load.report.acknowledged < 300 and time.monotonic() < deadline:
                    time.sleep(0.05)
                root.admin.command(
                    "updateUser",
                    "svc_load",
                    roles=[{"role": "read", "db": "shop"}, {"role": "read", "db": "inventory"}],
                )
                assert load.wait_until_refused(timeout=30)
                report = load.report
            assert report.error is None
            assert report.acknowledged >= 300
            kinds = report.by_kind
            assert {"insert", "update", "replace", "delete"} <= set(kinds)
            assert root.shop.orders.count_documents({}) == kinds["insert"] - kinds["delete"]
            emails = root.shop.customers.distinct("email")
            assert len(emails) == 20  # swaps never lost an address under the unique index
        finally:
            root.admin.command("dropUser", "svc_load")
            root.drop_database("shop")
            root.drop_database("inventory")
