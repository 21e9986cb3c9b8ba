"""The preflight and roles checks through the mongo provider's MongoHook, against the stand-ins.

The connections are ``AIRFLOW_CONN_BACKOVER_*`` exports built as ``backover sandbox env`` builds
them; the stand-ins answer over TCP with SCRAM users and roles, like DocumentDB and MongoDB.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from migration_states import Migration, environment, task_log

from backover_sandbox.environment import mongo_connection


@pytest.fixture(autouse=True)
def _airflow(airflow_home: Any) -> None:
    """Airflow is configured before any plugin module is imported."""


@pytest.fixture
def connections(
    standins: dict[str, Any], standin_password: str, monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    """``backover_documentdb``/``backover_mongodb`` pointing at the stand-ins (root user)."""
    for flavour, server in standins.items():
        host, port = server.address.rsplit(":", 1)
        secret = {
            "engine": "docdb" if flavour == "documentdb" else "mongo",
            "username": "root",
            "password": standin_password,
            "host": host,
            "port": int(port),
        }
        monkeypatch.setenv(f"AIRFLOW_CONN_BACKOVER_{flavour.upper()}", json.dumps(mongo_connection(secret)))
    return standins


@pytest.fixture
def app_user(connections: dict[str, Any], standin_password: str) -> str:
    """A microservices' user on the documentdb stand-in, read-write on its own database (which
    holds a document, so it exists)."""
    from pymongo import MongoClient

    name = f"app_{uuid.uuid4().hex[:6]}"
    uri = connections["documentdb"].uri("root", standin_password)
    with MongoClient(uri, retryWrites=False) as client:
        client.admin.command(
            "createUser", name, pwd="app-pw-123", roles=[{"role": "readWrite", "db": f"{name}_db"}]
        )
        client[f"{name}_db"].orders.insert_one({"_id": 1})
    return name


def _params(migration: Migration, databases: list[str]) -> dict[str, Any]:
    return {"migration_id": migration.layout.migration_id, "databases": databases, "environment": "backover"}


def test_preflight_reports_versions_user_roles_and_change_streams(
    migration: Migration, app_user: str, set_environment: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    from backover_airflow.operators.database import PreflightOperator

    set_environment(environment(migration.layout.bucket, "i-1", app_user=app_user))
    task_log(capfd)
    found = PreflightOperator(task_id="preflight", aws_conn_id=None).execute(
        {"params": _params(migration, [f"{app_user}_db"])}
    )
    assert found["documentdb"]["flavour"] == "documentdb"
    assert found["documentdb"]["replica_set"]
    assert found["documentdb"]["app_user_roles"] == [{"role": "readWrite", "db": f"{app_user}_db"}]
    assert found["documentdb"]["app_user_can_write"] == [f"{app_user}_db"]
    assert found["mongodb"]["version"]
    assert found["migration"] == {"started": False}
    log = task_log(capfd)
    assert f"User {app_user}: roles readWrite@{app_user}_db" in log
    assert "Change streams enabled:" in log
    assert "password" not in json.dumps(found).lower()


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        pytest.param(
            {"app_user": "nobody_here"},
            "the microservices' user 'nobody_here' does not exist",
            id="unknown-user",
        ),
        pytest.param({"require_started": True}, "was not started: no s3://", id="not-started"),
        pytest.param(
            {"bucket": "no-such-bucket-backover"},
            "bucket 'no-such-bucket-backover' does not exist",
            id="no-bucket",
        ),
    ],
)
def test_preflight_stops_the_run_with_the_reason(
    setup: dict[str, Any], message: str, migration: Migration, app_user: str, set_environment: Any
) -> None:
    from airflow.providers.common.compat.sdk import AirflowFailException

    from backover_airflow.operators.database import PreflightOperator

    env = environment(
        setup.get("bucket", migration.layout.bucket), "i-1", app_user=setup.get("app_user", app_user)
    )
    set_environment(env)
    operator = PreflightOperator(
        task_id="preflight", aws_conn_id=None, require_started=setup.get("require_started", False)
    )
    with pytest.raises(AirflowFailException, match=message):
        operator.execute({"params": _params(migration, ["shop"])})


def test_an_unreachable_database_is_named_without_its_password(
    migration: Migration, app_user: str, set_environment: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.providers.common.compat.sdk import AirflowException

    from backover_airflow.operators import database

    secret = {
        "engine": "mongo",
        "username": "root",
        "password": "s3cret-Pa55",
        "host": "127.0.0.1",
        "port": 9,
    }
    monkeypatch.setenv("AIRFLOW_CONN_BACKOVER_MONGODB", json.dumps(mongo_connection(secret)))
    monkeypatch.setattr(database, "SERVER_SELECTION_TIMEOUT_MS", 300)
    set_environment(environment(migration.layout.bucket, "i-1", app_user=app_user))
    with pytest.raises(AirflowException, match="connection 'backover_mongodb'") as failure:
        database.PreflightOperator(task_id="preflight", aws_conn_id=None).execute(
            {"params": _params(migration, [f"{app_user}_db"])}
        )
    assert "s3cret-Pa55" not in str(failure.value)


def test_roles_check_compares_with_the_prior_roles(
    migration: Migration,
    app_user: str,
    set_environment: Any,
    connections: dict[str, Any],
    standin_password: str,
) -> None:
    """After an abort the user must hold exactly its prior roles (``state/start.json``)."""
    from airflow.providers.common.compat.sdk import AirflowException
    from pymongo import MongoClient

    from backover_airflow.operators.database import AppUserRolesOperator

    set_environment(environment(migration.layout.bucket, "i-1", app_user=app_user))
    prior = [{"role": "readWrite", "db": f"{app_user}_db"}]
    migration.s3.put_json(migration.layout.start_state, {"app_user": app_user, "prior_roles": prior})
    check = AppUserRolesOperator(task_id="writes_given_back", aws_conn_id=None)
    params = {"params": _params(migration, ["shop"])}
    assert check.execute(params)["roles"] == prior

    with MongoClient(connections["documentdb"].uri("root", standin_password), retryWrites=False) as client:
        client.admin.command("updateUser", app_user, roles=[{"role": "read", "db": f"{app_user}_db"}])
    with pytest.raises(
        AirflowException, match=f"has roles read@{app_user}_db, not its prior roles readWrite@"
    ):
        check.execute(params)


def test_a_database_the_source_does_not_hold_stops_the_start_in_one_line_naming_it(
    migration: Migration, app_user: str, set_environment: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    """A typo (``nosuchdb``) must not start a migration of nothing; ``allow_missing`` lets a database
    the application creates later through, and a started migration keeps its scope."""
    from airflow.providers.common.compat.sdk import AirflowFailException

    from backover_airflow.operators.database import PreflightOperator

    set_environment(environment(migration.layout.bucket, "i-1", app_user=app_user))
    preflight = PreflightOperator(task_id="preflight", aws_conn_id=None)
    databases = [f"{app_user}_db", "nosuchdb"]
    with pytest.raises(AirflowFailException) as refused:
        preflight.execute({"params": _params(migration, databases)})
    message = str(refused.value)
    assert "there is no database 'nosuchdb'" in message and "allow_missing" in message
    assert "\n" not in message and f"{app_user}_db" not in message

    task_log(capfd)
    found = preflight.execute({"params": {**_params(migration, databases), "allow_missing": True}})
    assert found["documentdb"]["created_later"] == ["nosuchdb"]
    assert "Not on the source yet (allow_missing is on): nosuchdb" in task_log(capfd)

    migration.start()  # a started migration: a database dropped since T0 is in the stream
    assert preflight.execute({"params": _params(migration, databases)})["documentdb"]["created_later"] == []


def test_the_preflight_shows_the_environment_and_refuses_a_bad_migration_id_in_one_line(
    migration: Migration, app_user: str, set_environment: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    from airflow.providers.common.compat.sdk import AirflowFailException

    from backover_airflow.operators.database import PreflightOperator

    set_environment(environment(migration.layout.bucket, "i-1", app_user=app_user))
    preflight = PreflightOperator(task_id="preflight", aws_conn_id=None)
    task_log(capfd)
    found = preflight.execute({"params": _params(migration, [f"{app_user}_db"])})
    log = task_log(capfd)
    assert found["environment"]["bucket"] == migration.layout.bucket
    assert "Environment: Variable 'backover' = {" in log and '"worker_instance_id": "i-1"' in log

    bad = {**_params(migration, [f"{app_user}_db"]), "migration_id": "orders 2026/06"}
    with pytest.raises(AirflowFailException) as refused:
        preflight.execute({"params": bad})
    assert str(refused.value) == (
        "invalid migration id 'orders 2026/06': must be 1 to 128 letters, digits, '.', '_' or '-', "
        "starting with a letter or digit"
    )


def test_roles_given_back_says_what_they_write_and_what_the_abort_left(
    migration: Migration,
    app_user: str,
    set_environment: Any,
    connections: dict[str, Any],
    standin_password: str,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """Prior roles that were read-only come back read-only: the abort DAG's last task says so (it
    used to read as "writes given back"), and says the replicator still stops and the change streams
    stay on."""
    from pymongo import MongoClient

    from backover.state import ReplicatorCheckpoint
    from backover_airflow.operators.database import AppUserRolesOperator

    set_environment(environment(migration.layout.bucket, "i-1", app_user=app_user))
    db = f"{app_user}_db"
    prior = [{"role": "read", "db": db}]
    with MongoClient(connections["documentdb"].uri("root", standin_password), retryWrites=False) as client:
        client.admin.command("updateUser", app_user, roles=prior)
    migration.s3.put_json(
        migration.layout.start_state,
        {
            "app_user": app_user,
            "prior_roles": prior,
            "databases": [db],
            "namespaces": [db],
            "change_streams_enabled": [{"database": db, "collection": ""}],
        },
    )
    migration.s3.put_json(
        migration.layout.replicator_checkpoint,
        ReplicatorCheckpoint(migration.layout.migration_id, state="running").to_doc(),
    )
    task_log(capfd)
    found = AppUserRolesOperator(task_id="roles_given_back", aws_conn_id=None).execute(
        {"params": _params(migration, [db])}
    )
    assert (found["can_write"], found["cannot_write"]) == ([], [db])
    assert found["replicator_state"] == "running" and found["change_streams_left_on"] == [db]
    log = task_log(capfd)
    assert f"It can write: none of the migrated databases; it cannot write: {db}" in log
    assert "Left: the replicator is still running" in log
    assert f"Left: change streams stay on for {db}" in log
    assert "Next: to migrate again, trigger backover_start with a new migration id" in log
