"""TTL indexes the sync creates are held back on MongoDB until the cutover: MongoDB's TTL monitor
deletes nothing while the replay and verification run, verify compares a held index as the
source's, and ``backover sync --release-ttl`` gives every held index of the migrated databases the
source's expiry (then the monitor deletes what has expired, as it would have); it goes by the
target's own value, so a renamed collection is released and a value someone set is never touched."""

from __future__ import annotations

import datetime
import json
import time

import pytest
from pymongo import MongoClient

from backover import cli
from backover.connections import DatabaseUri
from backover.namespaces import Namespace, parse_all
from backover.sync import SyncConfig, run_sync
from backover.sync.ttl import HELD, comparable, release
from backover.verify.config import VerifyConfig
from backover.verify.job import run_verify
from backover.verify.live import run_verify_live
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


def _expiry(client, db: str, coll: str = "events") -> dict:
    return {ix["name"]: ix.get("expireAfterSeconds") for ix in client[db][coll].list_indexes()}


def _release_cli(world, target_uri: str, *extra: str) -> int:
    return cli.main(
        [
            "sync",
            "--release-ttl",
            "--bucket",
            world.layout.bucket,
            "--migration-id",
            world.layout.migration_id,
            "--source-uri",
            world.source_uri,
            "--target-uri",
            target_uri,
            *extra,
        ]
    )


def _seed_events(world, at: datetime.datetime, n: int = 20) -> None:
    events = world.source[world.db].events
    events.create_index("at", name="at_ttl", expireAfterSeconds=DAY)
    events.create_index("kind", name="kind_1")
    events.insert_many([{"_id": i, "at": at, "kind": i % 2} for i in range(n)])


def test_ttl_indexes_are_held_until_released_and_then_expire_as_on_the_source(world, clocked_target, capsys):
    clock, uri, target = clocked_target
    _seed_events(world, datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=1))
    world.start()
    config = SyncConfig(
        layout=world.layout,
        source=DatabaseUri(world.source_uri, documentdb=True),
        target=DatabaseUri(uri),
        partition_documents=8,
        progress_seconds=60.0,
    )
    run_sync(config, s3=world.s3)

    assert _expiry(target, world.db) == {"_id_": None, "at_ttl": HELD, "kind_1": None}
    clock.advance(3 * DAY)  # the source would have deleted them by now; the held index deletes nothing
    assert target[world.db].events.count_documents({}) == 20
    source_spec = next(ix for ix in world.source[world.db].events.list_indexes() if ix["name"] == "at_ttl")
    held = next(ix for ix in target[world.db].events.list_indexes() if ix["name"] == "at_ttl")
    assert comparable(source_spec, held)["expireAfterSeconds"] == DAY  # how verify sees it

    assert _release_cli(world, uri) == 0
    said = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert said == {"ttl_left_held": [], "ttl_released": [f"{world.db}.events/at_ttl"]}
    assert _expiry(target, world.db)["at_ttl"] == DAY
    clock.advance(60)  # the next monitor pass: expired a day after their date, as on the source
    assert target[world.db].events.count_documents({}) == 0

    assert _release_cli(world, uri) == 0  # a rerun: nothing is held any more
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == {
        "ttl_left_held": [],
        "ttl_released": [],
    }


def test_release_goes_by_the_targets_value_a_renamed_collection_too_and_never_touches_another(world) -> None:
    _seed_events(world, datetime.datetime.now(datetime.UTC))
    world.source[world.db].logs.create_index("t", name="t_ttl", expireAfterSeconds=60)
    world.source[world.db].logs.insert_one({"_id": 1, "t": datetime.datetime.now(datetime.UTC)})
    world.start()
    world.sync(partition_documents=8)
    # the source renames a collection after the plan; the replay renames it on the target the same way
    world.source.admin.command("renameCollection", f"{world.db}.events", to=f"{world.db}.sessions")
    world.target.admin.command("renameCollection", f"{world.db}.events", to=f"{world.db}.sessions")
    # someone sets logs' expiry on the target by hand: not a held value, never changed by the release
    world.target[world.db].command({"collMod": "logs", "index": {"name": "t_ttl", "expireAfterSeconds": 7}})

    done = release(world.source, world.target, [Namespace(world.db, "")])
    assert done.released == [f"{world.db}.sessions/at_ttl"] and done.left_held == []
    assert _expiry(world.target, world.db, "sessions")["at_ttl"] == DAY
    assert _expiry(world.target, world.db, "logs")["t_ttl"] == 7


def test_a_held_index_the_source_no_longer_has_is_left_held_and_named(world) -> None:
    _seed_events(world, datetime.datetime.now(datetime.UTC))
    world.start()
    world.sync(partition_documents=8)
    world.source[world.db].events.drop_index("at_ttl")  # DocumentDB's streams carry no index change
    done = release(world.source, world.target, [Namespace(world.db, "")])
    assert done.released == [] and done.left_held == [f"{world.db}.events/at_ttl"]
    assert _expiry(world.target, world.db)["at_ttl"] == HELD


def test_an_empty_target_collection_that_has_the_ttl_index_already_is_held_not_refused(world) -> None:
    _seed_events(world, datetime.datetime.now(datetime.UTC), n=5)
    world.target[world.db].events.create_index(
        "at", name="at_ttl", expireAfterSeconds=DAY
    )  # empty, as the source
    world.start()
    world.sync(partition_documents=8)
    assert _expiry(world.target, world.db)["at_ttl"] == HELD
    assert world.target[world.db].events.count_documents({}) == 5


def test_release_refuses_other_sync_flags_in_one_line(world, capsys) -> None:
    world.start()
    assert _release_cli(world, world.target_uri, "--plan") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--release-ttl takes no --plan" in err


def test_verify_compares_a_held_ttl_index_as_the_sources_and_any_other_value_as_a_difference(world) -> None:
    _seed_events(world, datetime.datetime.now(datetime.UTC), n=10)
    world.start()
    world.sync(partition_documents=4)
    config = VerifyConfig(
        layout=world.layout,
        source=DatabaseUri(world.source_uri, documentdb=True),
        target=DatabaseUri(world.target_uri),
        namespaces=parse_all([world.db]),  # the stand-ins are shared: other tests' databases are there too
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
    release(world.source, world.target, [Namespace(world.db, "")])
    assert report_of(run_verify(config, s3=world.s3)).identical  # released: the source's value
