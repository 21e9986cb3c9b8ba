"""``backover rehearsal --documents N --writes-per-second R --minutes M``: a rehearsal at the user's scale."""

from __future__ import annotations

import time
from pathlib import Path

import bson
import pytest
from pymongo import MongoClient

from backover import cli
from backover_sandbox import seed
from backover_sandbox.loadgen import LoadGenerator


@pytest.mark.parametrize(
    ("argv", "reason"),
    [
        pytest.param(["--documents", "0"], "--documents must be at least 1, not 0", id="no-documents"),
        pytest.param(["--writes-per-second", "0"], "--writes-per-second must be above 0", id="no-load"),
        pytest.param(["--writes-per-second", "1e9"], "at most 10000", id="load-too-high"),
        pytest.param(["--minutes", "-1"], "--minutes must be above 0", id="negative-minutes"),
        pytest.param(
            ["--report", "/no/such/folder/r.json"], "the folder /no/such/folder does not exist", id="report"
        ),
        pytest.param(
            ["--empty-target", "--workers", "0"], "--workers must be between 1 and 8, not 0", id="no-workers"
        ),
        pytest.param(
            ["--empty-target", "--workers", "9"], "--workers must be between 1 and 8, not 9", id="workers"
        ),
        pytest.param(["--workers", "2"], "--workers needs --empty-target", id="workers-without-a-copy"),
        pytest.param(
            ["--empty-target", "--partition-documents", "0"],
            "--partition-documents must be at least 1, not 0",
            id="no-partition",
        ),
        pytest.param(
            ["--partition-documents", "10"], "--partition-documents needs --empty-target", id="no-copy"
        ),
    ],
)
def test_a_bad_scale_is_one_line_and_starts_nothing(
    argv: list[str], reason: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = tmp_path / "rehearsal"
    assert cli.main(["rehearsal", "--dir", str(directory), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert reason in err and "\n" not in err, err
    assert not directory.exists(), "the sandbox was started for a bad scale"


def test_several_workers_get_a_partition_of_the_orders_each() -> None:
    from backover_sandbox.rehearsal.report import RehearsalScale

    assert RehearsalScale().sync_partition_documents is None, "the default run passes no sync Param"
    assert RehearsalScale(empty_target=True).sync_partition_documents is None
    assert RehearsalScale(empty_target=True, workers=2).sync_partition_documents == 25
    assert RehearsalScale(documents=1001, empty_target=True, workers=2).sync_partition_documents == 501
    assert RehearsalScale(empty_target=True, workers=2, partition_documents=7).sync_partition_documents == 7


def _secret(server, password: str) -> dict:
    return seed.master_secret(server.config.flavour, "127.0.0.1", server.port, password)


def test_more_documents_are_seeded_identically_on_both_sides(standins, standin_password) -> None:
    master = {label: _secret(standins[label], standin_password) for label in ("documentdb", "mongodb")}
    sides = {label: MongoClient(standins[label].uri("root", standin_password)) for label in master}
    try:
        for client in sides.values():
            client.shop.orders.delete_many({})
            client.shop.orders.insert_many([seed.demo_document(i) for i in range(1, seed.DEMO_ORDERS + 1)])
        assert seed.add_demo_orders(master, 2_345, batch=500) == 2_345 - seed.DEMO_ORDERS
        raw = {
            label: [bson.encode(d) for d in c.shop.orders.find({}, sort=[("_id", 1)])]
            for label, c in sides.items()
        }
        assert len(raw["documentdb"]) == 2_345
        assert raw["documentdb"] == raw["mongodb"], "MongoDB must hold DocumentDB's data as of T0"
    finally:
        for client in sides.values():
            client.shop.orders.delete_many({})
            client.close()


def test_an_empty_target_gets_no_orders(standins, standin_password) -> None:
    """``--empty-target``: the orders go to DocumentDB only; the initial sync copies them."""
    master = {label: _secret(standins[label], standin_password) for label in ("documentdb", "mongodb")}
    sides = {label: MongoClient(standins[label].uri("root", standin_password)) for label in master}
    try:
        for client in sides.values():
            client.shop.orders.delete_many({})
        assert seed.add_demo_orders(master, 120, batch=50, empty_target=True) == 120 - seed.DEMO_ORDERS
        assert sides["documentdb"].shop.orders.count_documents({}) == 120 - seed.DEMO_ORDERS
        assert sides["mongodb"].shop.orders.count_documents({}) == 0
    finally:
        for client in sides.values():
            client.shop.orders.delete_many({})
            client.close()


def test_the_load_keeps_to_its_rate(standins, standin_password) -> None:
    """A schedule, not a pause: never more than ``rate x elapsed`` writes (+3: one step, an e-mail swap
    is three), and it does write."""
    with MongoClient(standins["mongodb"].uri("root", standin_password)) as client:
        client.shop.customers.create_index("email", unique=True)
        client.shop.customers.insert_many([{"_id": i, "email": f"r{i}@example.com"} for i in range(1, 21)])
        client.inventory.items.insert_many([{"_id": f"sku-{i:04d}", "stock": 100} for i in range(1, 31)])
        try:
            load = LoadGenerator(client, writes_per_second=50).start()
            started = time.monotonic()
            time.sleep(1.5)
            report = load.stop()
            elapsed = time.monotonic() - started
            assert report.error is None
            assert 10 <= report.acknowledged <= 50 * elapsed + 3, (report.acknowledged, elapsed)
        finally:
            client.drop_database("shop")
            client.drop_database("inventory")
