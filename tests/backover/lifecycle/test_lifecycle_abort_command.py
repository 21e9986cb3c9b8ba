"""``backover abort`` after a start and a freeze run in-process: the app user can write again."""

from __future__ import annotations

import json
import secrets
import uuid
from typing import Any

import pytest
from pymongo import MongoClient
from pymongo.errors import OperationFailure

from backover import state
from backover.cli import main
from backover.connections import DatabaseUri
from backover.lifecycle.events import LifecycleEvent
from backover.lifecycle.freeze import freeze
from backover.lifecycle.start import start
from backover.s3objects import S3Objects
from backover.state import AbortRecord


def test_abort_command_gives_the_writes_back_and_deletes_nothing(
    standins: dict[str, Any], standin_password: str, bucket: str, capsys: pytest.CaptureFixture[str]
) -> None:
    server = standins["documentdb"]
    tag = uuid.uuid4().hex[:8]
    db, user, password = f"ab{tag}", f"app_{tag}", secrets.token_urlsafe(12)
    master = server.uri("root", standin_password)
    with MongoClient(master) as root:
        root.admin.command("createUser", user, pwd=password, roles=[{"role": "readWrite", "db": db}])
        root[db].items.insert_one({"_id": 0})  # the source holds the migrated database
    event = LifecycleEvent.from_dict(
        {
            "migration_id": f"ab-{tag}",
            "bucket": bucket,
            "master_secret_id": "unused",
            "app_user": user,
            "databases": [db],
        }
    )
    source = DatabaseUri(master, documentdb=True)
    start(event, source=source)
    freeze(event, source=source, app=DatabaseUri(server.uri(user, password), documentdb=True))
    app = MongoClient(server.uri(user, password), retryWrites=False)
    with pytest.raises(OperationFailure) as refused:
        app[db].items.insert_one({"_id": 1})
    assert refused.value.code == 13
    layout = event.layout()
    keys_before = {layout.start_state, layout.freeze_state, layout.drain_request}

    argv = ["abort", "--bucket", bucket, "--migration-id", event.migration_id, "--source-uri", master]
    assert main(argv) == 0
    output = json.loads(capsys.readouterr().out)
    assert output["roles_restored"] == [{"role": "readWrite", "db": db}]
    assert standin_password not in json.dumps(output)
    app[db].items.insert_one({"_id": 1})
    s3 = S3Objects(bucket)
    assert set(s3.list_keys(layout.root)) == keys_before | {layout.stop_request, layout.abort_state}
    # The record of the roles given back, as read back from the source (the page's "writes back").
    record = state.read(s3, layout.abort_state, AbortRecord)
    assert record is not None and record.confirmed_at is not None
    assert (record.app_user, record.roles_now, record.can_write) == (
        user,
        [{"role": "readWrite", "db": db}],
        [db],
    )
    app.close()


def test_abort_of_an_unknown_migration_is_a_usage_error(
    bucket: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["abort", "--bucket", bucket, "--migration-id", "never-started", "--source-uri", "mongodb://h/"]
    assert main(argv) == 2
    assert "nothing to abort" in capsys.readouterr().err


def test_abort_says_what_it_restored_and_what_it_left(
    standins: dict[str, Any],
    standin_password: str,
    bucket: str,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A user whose prior roles were read-only gets read-only back, and abort says so instead of
    claiming the writes are back; it says the change streams stay on, whether the replicator
    stopped, and what to do next."""
    from backover.state import ReplicatorCheckpoint

    server = standins["documentdb"]
    tag = uuid.uuid4().hex[:8]
    reports, orders, user = f"ab{tag}_reports", f"ab{tag}_orders", f"app_{tag}"
    master = server.uri("root", standin_password)
    with MongoClient(master) as root:
        prior = [{"role": "read", "db": reports}, {"role": "readWrite", "db": orders}]
        root.admin.command("createUser", user, pwd=secrets.token_urlsafe(12), roles=prior)
        for db in (reports, orders):
            root[db].items.insert_one({"_id": 1})
    event = LifecycleEvent.from_dict(
        {
            "migration_id": f"ab-{tag}",
            "bucket": bucket,
            "master_secret_id": "unused",
            "app_user": user,
            "databases": [reports],
        }
    )
    start(event, source=DatabaseUri(master, documentdb=True))
    layout = event.layout()
    s3 = S3Objects(bucket)
    s3.put_json(
        layout.replicator_checkpoint, ReplicatorCheckpoint(event.migration_id, state="running").to_doc()
    )

    argv = ["abort", "--bucket", bucket, "--migration-id", event.migration_id, "--source-uri", master]
    caplog.set_level("INFO", logger="backover")
    assert main(argv) == 0
    output = json.loads(capsys.readouterr().out)
    assert output["roles_now"] == prior  # read back from the source after the change
    assert (output["can_write"], output["cannot_write"]) == ([], [reports])
    assert output["left"]["change_streams_left_on"] == [reports]
    assert output["left"]["replicator_state"] == "running" and output["left"]["restore_state"] is None
    log = caplog.text
    assert f"it can write: none of the migrated databases; it cannot write: {reports}" in log
    assert "the replicator is still running" in log and "asked to stop" in log
    assert f"change streams stay on for {reports}" in log
    assert "backover clean --force" in log and "new migration id" in log
