"""TTL indexes the sync creates are held back on MongoDB until the cutover: MongoDB's TTL monitor
deletes nothing while the replay and verification run, and ``backover sync --release-ttl`` gives
each the source's expiry (then the monitor deletes what has expired, as it would have)."""

from __future__ import annotations

import datetime
import json
import time

import pytest
from pymongo import MongoClient

from backover import cli
from backover.connections import DatabaseUri
from backover.sync import SyncConfig, read_plan, run_sync
from backover.sync.ttl import HELD, comparable, held_indexes, release
from backover_sandbox.standin.clock import ManualClock
from backover_sandbox.standin.server import ServerConfig, start_in_thread

DAY = 86_400


@pytest.fixture
def clocked_target():
    """A MongoDB stand-in whose clock moves only when the test says (its TTL monitor with it)."""
    clock = ManualClock(time.time())
    server = start_in_thread(ServerConfig(flavour="mongodb", auth=False, clock=clock))
    uri = f"mongodb://127.0.0.1:{server.port}/?directConnection=true"
    client = MongoClient(uri)
    try:
        yield clock, uri, client
    finally:
        client.close()
        server.stop()


def _ttl_listed(client, db: str) -> dict:
    return {ix["name"]: ix.get("expireAfterSeconds") for ix in client[db].events.list_indexes()}


def test_ttl_indexes_are_held_until_released_and_then_expire_as_on_the_source(world, clocked_target, capsys):
    clock, uri, target = clocked_target
    hour_ago = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=1)
    events = world.source[world.db].events
    events.create_index("at", name="at_ttl", expireAfterSeconds=DAY)
    events.create_index("kind", name="kind_1")
    events.insert_many([{"_id": i, "at": hour_ago, "kind": i % 2} for i in range(20)])
    world.start()
    config = SyncConfig(
        layout=world.layout,
        source=DatabaseUri(world.source_uri, documentdb=True),
        target=DatabaseUri(uri),
        partition_documents=8,
        progress_seconds=60.0,
    )
    run_sync(config, s3=world.s3)

    assert _ttl_listed(target, world.db) == {"_id_": None, "at_ttl": HELD, "kind_1": None}
    clock.advance(3 * DAY)  # the source would have deleted them by now; the held index deletes nothing
    assert target[world.db].events.count_documents({}) == 20
    plan = read_plan(world.s3, world.layout)
    held = next(ix for ix in target[world.db].events.list_indexes() if ix["name"] == "at_ttl")
    assert comparable(held_indexes(plan), f"{world.db}.events", held)["expireAfterSeconds"] == DAY  # verify's view

    code = cli.main(
        [
            "sync",
            "--release-ttl",
            "--bucket",
            world.layout.bucket,
            "--migration-id",
            world.layout.migration_id,
            "--target-uri",
            uri,
        ]
    )
    assert code == 0
    said = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert said == {"ttl_already_released": [], "ttl_released": [f"{world.db}.events/at_ttl"]}
    assert _ttl_listed(target, world.db)["at_ttl"] == DAY
    clock.advance(60)  # the next monitor pass: expired a day after their date, as on the source
    assert target[world.db].events.count_documents({}) == 0

    again = release(target, plan)  # a rerun changes nothing
    assert again.released == [] and again.already == [f"{world.db}.events/at_ttl"]


def test_release_without_a_plan_holds_nothing_and_refuses_other_sync_flags(world, capsys):
    world.start()
    args = [
        "sync",
        "--release-ttl",
        "--bucket",
        world.layout.bucket,
        "--migration-id",
        world.layout.migration_id,
        "--target-uri",
        world.target_uri,
    ]
    assert cli.main(args) == 0
    assert json.loads(capsys.readouterr().out.strip()) == {"ttl_already_released": [], "ttl_released": []}
    assert cli.main([*args, "--plan"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--release-ttl takes no --plan" in err


def test_verify_compares_a_held_ttl_index_as_the_sources_and_any_other_value_as_a_difference(world) -> None:
    from backover.verify.config import VerifyConfig, VerifyMode
    from backover.verify.job import run_verify
    from backover.verify.live import run_verify_live

    events = world.source[world.db].events
    events.create_index("at", name="at_ttl", expireAfterSeconds=DAY)
    events.insert_many([{"_id": i, "at": datetime.datetime.now(datetime.UTC)} for i in range(10)])
    world.start()
    world.sync(partition_documents=4)
    config = VerifyConfig(
        layout=world.layout,
        source=DatabaseUri(world.source_uri, documentdb=True),
        target=DatabaseUri(world.target_uri),
        namespaces=(),
        progress_seconds=60.0,
    )
    namespace = f"{world.db}.events"

    def report_of(report):
        return next(n for n in report.namespaces if n.ns == namespace)

    full = report_of(run_verify(config, s3=world.s3))
    assert full.identical, full.index_differences
    assert run_verify_live(config, s3=world.s3).state == "passed"  # over the partitions, index held

    world.target[world.db].command(
        {"collMod": "events", "index": {"name": "at_ttl", "expireAfterSeconds": 5}}
    )
    changed = report_of(run_verify(config, s3=world.s3))  # not the held value: a real difference
    assert [d["name"] for d in changed.index_differences] == ["at_ttl"]

    world.target[world.db].command(
        {"collMod": "events", "index": {"name": "at_ttl", "expireAfterSeconds": HELD}}
    )
    release(world.target, read_plan(world.s3, world.layout))
    assert report_of(run_verify(config, s3=world.s3)).identical  # released: the source's value
