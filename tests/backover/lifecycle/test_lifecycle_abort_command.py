"""``backover abort`` after a start and a freeze run in-process: the app user can write again."""

from __future__ import annotations

import json
import secrets
import uuid
from typing import Any

import pytest
from pymongo import MongoClient
from pymongo.errors import OperationFailure

from backover.cli import main
from backover.connections import DatabaseUri
from backover.lifecycle.events import LifecycleEvent
from backover.lifecycle.freeze import freeze
from backover.lifecycle.start import start
from backover.s3objects import S3Objects


def test_abort_command_gives_the_writes_back_and_deletes_nothing(
    standins: dict[str, Any], standin_password: str, bucket: str, capsys: pytest.CaptureFixture[str]
) -> None:
    server = standins["documentdb"]
    tag = uuid.uuid4().hex[:8]
    db, user, password = f"ab{tag}", f"app_{tag}", secrets.token_urlsafe(12)
    master = server.uri("root", standin_password)
    with MongoClient(master) as root:
        root.admin.command("createUser", user, pwd=password, roles=[{"role": "readWrite", "db": db}])
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
    assert set(S3Objects(bucket).list_keys(layout.root)) == keys_before | {f"{layout.root}control/stop.json"}
    app.close()


def test_abort_of_an_unknown_migration_is_a_usage_error(
    bucket: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["abort", "--bucket", bucket, "--migration-id", "never-started", "--source-uri", "mongodb://h/"]
    assert main(argv) == 2
    assert "nothing to abort" in capsys.readouterr().err
