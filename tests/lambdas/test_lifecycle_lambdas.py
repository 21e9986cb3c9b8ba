"""The start, restore and clean Lambdas through the runner's Lambda Invoke API, against the stand-ins.

What a user relies on: start gives the app user write access and turns change streams on; restore
makes the user read-only (its next real write is refused with code 13) and records F and the
drain request; abort gives the writes back; clean disables exactly what start enabled, and only
once the restore is completed and verified. Each Lambda is invoked twice to prove idempotency,
and no response or log line ever holds a password.
"""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from bson.timestamp import Timestamp
from lifecycle_world import Invocation, LambdaWorld, Source, load_event, make_source, s3_json, s3_keys
from pymongo.errors import OperationFailure

from backover.layout import MigrationLayout
from backover.lifecycle.abort import abort
from backover.lifecycle.events import LifecycleEvent
from backover.lifecycle.source import master_uri
from backover.s3objects import S3Objects
from backover.state import ReplicatorCheckpoint, RestoreCheckpoint

pytestmark = pytest.mark.slow  # every invocation starts a Python process (the runner)

PREFIX = "lambda-tests"


def _layout(source: Source) -> MigrationLayout:
    return MigrationLayout(source.bucket, PREFIX, source.migration_id)


def _ok(invocation: Invocation) -> dict[str, Any]:
    assert invocation.function_error is None, invocation.payload
    return invocation.payload


def _write_as_app(source: Source, db: str) -> None:
    with source.app_client() as app:
        app[db].items.update_one({"_id": "seed"}, {"$inc": {"n": 1}})


def _assert_no_secret(source: Source, lambdas: LambdaWorld, *invocations: Invocation) -> None:
    assert lambdas.log_lines, "the runner relayed no log line"
    for secret in source.secrets():
        for invocation in invocations:
            assert secret not in str(invocation.payload)
            assert secret not in invocation.log_tail
        assert not [line for line in lambdas.log_lines if secret in line]


def _finished_restore(
    source: Source, identical: bool = True, state: str = "completed", replicator: str = "drained"
) -> None:
    """The state objects of a frozen migration whose replicator is ``replicator`` and whose restore
    is ``state``, as the restore Lambda, the replicator, restore and verify write them."""
    layout, s3 = _layout(source), S3Objects(source.bucket)
    s3.put_json(layout.freeze_state, {"migration_id": source.migration_id, "f": Timestamp(1, 1)})
    s3.put_json(
        layout.replicator_checkpoint, ReplicatorCheckpoint(source.migration_id, state=replicator).to_doc()
    )
    s3.put_json(layout.restore_checkpoint, RestoreCheckpoint(source.migration_id, state=state).to_doc())
    s3.put_json(layout.verify_report, {"identical": identical, "namespaces": {}})


def test_start_restore_abort_give_writes_then_freeze_then_give_them_back(
    lambdas: LambdaWorld, source: Source, aws_endpoints: str
) -> None:
    layout = _layout(source)
    orders, stock = source.databases

    first = lambdas.invoke("start", source.event("start"))
    started = _ok(first)
    assert started["source_flavour"] == "documentdb"
    assert started["roles_granted"] == [{"role": "readWrite", "db": stock}]
    # Two databases: the replicator watches the cluster, so the cluster's change streams are enabled.
    assert started["change_streams_enabled"] == ["*"]
    assert source.enabled_streams() == [{"database": "", "collection": ""}]
    _write_as_app(source, stock)  # the granted role works
    state = s3_json(source.bucket, layout.start_state)
    assert state["prior_roles"] == source.prior_roles
    assert state["change_streams_enabled"] == [{"database": "", "collection": ""}]
    assert f"{state['t0'].time}:{state['t0'].inc}" == started["t0"]
    start_bytes = boto3.client("s3").get_object(Bucket=source.bucket, Key=layout.start_state)["Body"].read()

    again = _ok(lambdas.invoke("start", source.event("start")))
    assert again["already_started"] is True and again["t0"] == started["t0"]
    assert again["roles_granted"] == []
    assert (
        boto3.client("s3").get_object(Bucket=source.bucket, Key=layout.start_state)["Body"].read()
        == start_bytes
    )

    restore = lambdas.invoke("restore", source.event("restore"))
    frozen = _ok(restore)
    assert frozen["read_only_proof"] == "write-refused"
    for db in source.databases:
        with pytest.raises(OperationFailure) as refused:
            _write_as_app(source, db)
        assert refused.value.code == 13
    assert {"role": "read", "db": source.other_db} in source.user_roles()
    freeze_state = s3_json(source.bucket, layout.freeze_state)
    assert freeze_state["f"] >= state["t0"]
    assert s3_json(source.bucket, layout.drain_request) == {"until": freeze_state["f"]}
    assert isinstance(freeze_state["f"], Timestamp)

    restore_again = lambdas.invoke("restore", source.event("restore"))
    assert _ok(restore_again)["f"] == frozen["f"] and restore_again.payload["already_frozen"] is True
    assert s3_json(source.bucket, layout.freeze_state)["f"] == freeze_state["f"]

    keys_before = set(s3_keys(source.bucket))
    event = LifecycleEvent.from_dict(source.event("start"))
    result = abort(layout, master_uri(event))
    assert result.roles_restored == source.prior_roles
    assert source.user_roles() == source.prior_roles
    _write_as_app(source, orders)  # writes are back
    assert set(s3_keys(source.bucket)) == keys_before | {
        layout.stop_request,
        layout.abort_state,
    }  # nothing deleted
    assert "requested_at" in s3_json(source.bucket, layout.stop_request)
    again_abort = abort(layout, master_uri(event))
    assert again_abort.stop_requested_at == result.stop_requested_at

    refused_start = lambdas.invoke("start", source.event("start"))
    assert refused_start.function_error == "Unhandled"
    assert "start a new migration id" in refused_start.payload["errorMessage"]
    _assert_no_secret(source, lambdas, first, restore, restore_again, refused_start)


def test_clean_disables_only_the_change_streams_start_enabled(
    lambdas: LambdaWorld, source: Source, aws_endpoints: str
) -> None:
    orders, stock = source.databases
    source.root.admin.command("modifyChangeStreams", 1, database=orders, collection="", enable=True)
    started = _ok(lambdas.invoke("start", source.event("start")))
    assert started["change_streams_enabled"] == ["*"]  # two databases: the cluster is watched
    _finished_restore(source)

    first = lambdas.invoke("clean", source.event("clean"))
    cleaned = _ok(first)
    assert cleaned["disabled_now"] == ["*"] and cleaned["change_streams_disabled"] == ["*"]
    assert source.enabled_streams() == [{"database": orders, "collection": ""}]
    clean_state = s3_json(source.bucket, _layout(source).clean_state)
    assert clean_state["change_streams_disabled"] == [{"database": "", "collection": ""}]

    second = _ok(lambdas.invoke("clean", source.event("clean")))
    assert second["disabled_now"] == [] and second["change_streams_disabled"] == ["*"]
    assert source.enabled_streams() == [{"database": orders, "collection": ""}]
    _assert_no_secret(source, lambdas, first)


@pytest.mark.parametrize(
    ("identical", "state", "replicator", "reason"),
    [
        pytest.param(True, "running", "drained", "the restore is running", id="restore-running"),
        pytest.param(False, "completed", "drained", "verification found differences", id="not-identical"),
        pytest.param(
            True,
            "completed",
            "running",
            "the replicator is running (needs drained or stopped)",
            id="replicator-still-capturing",
        ),
    ],
)
def test_clean_refuses_an_unfinished_migration_unless_forced(
    lambdas: LambdaWorld,
    source: Source,
    aws_endpoints: str,
    identical: bool,
    state: str,
    replicator: str,
    reason: str,
) -> None:
    _ok(lambdas.invoke("start", source.event("start")))
    _finished_restore(source, identical=identical, state=state, replicator=replicator)
    refused = lambdas.invoke("clean", source.event("clean"))
    assert refused.function_error == "Unhandled"
    assert refused.payload["errorType"] == "CleanRefused"
    assert reason in refused.payload["errorMessage"]
    assert source.enabled_streams() == [{"database": "", "collection": ""}]  # nothing disabled

    forced = _ok(lambdas.invoke("clean", source.event("clean", force=True)))
    assert forced["disabled_now"] == ["*"]
    assert source.enabled_streams() == []


@pytest.mark.parametrize(
    ("fixture", "field"),
    [
        pytest.param("invalid_missing_bucket", "bucket", id="missing-bucket"),
        pytest.param("invalid_databases_not_a_list", "databases", id="databases-not-a-list"),
        pytest.param("invalid_misspelt_field", "required_retention_hour", id="misspelt-field"),
        pytest.param("invalid_internal_database", "namespaces", id="internal-database"),
    ],
)
def test_a_malformed_event_names_the_field_and_changes_nothing(
    lambdas: LambdaWorld, source: Source, aws_endpoints: str, fixture: str, field: str
) -> None:
    reply = lambdas.invoke("start", load_event(fixture, source.values()))
    assert reply.function_error == "Unhandled"
    assert reply.payload["errorType"] == "InvalidEvent"
    assert f"field '{field}'" in reply.payload["errorMessage"]
    assert s3_keys(source.bucket) == []
    assert source.user_roles() == source.prior_roles
    assert source.enabled_streams() == []


def test_start_refuses_when_retention_cannot_cover_the_rehearsal(
    lambdas: LambdaWorld, source: Source, aws_endpoints: str
) -> None:
    reply = lambdas.invoke("start", source.event("start", required_retention_hours=48))
    assert reply.function_error == "Unhandled"
    assert reply.payload["errorType"] == "RetentionTooShort"
    assert "cannot cover the required 48 h" in reply.payload["errorMessage"]
    assert "assumed" in reply.payload["errorMessage"]
    assert s3_keys(source.bucket) == []
    assert source.user_roles() == source.prior_roles
    assert source.enabled_streams() == []

    covered = _ok(
        lambdas.invoke("start", source.event("start", required_retention_hours=48, retention_hours=72))
    )
    assert covered["retention"]["ok"] is True and covered["retention"]["source"] == "event"


def test_restore_without_app_secret_checks_roles_and_says_so(
    lambdas: LambdaWorld, source: Source, aws_endpoints: str
) -> None:
    _ok(lambdas.invoke("start", source.event("start")))
    frozen = _ok(lambdas.invoke("restore", source.event("restore", app_secret_id=None)))
    assert frozen["read_only_proof"] == "roles-only"
    assert "not proven by a write" in frozen["proof_note"]
    with pytest.raises(OperationFailure) as refused:
        _write_as_app(source, source.databases[1])
    assert refused.value.code == 13


def test_restore_before_start_is_refused(lambdas: LambdaWorld, source: Source, aws_endpoints: str) -> None:
    reply = lambdas.invoke("restore", source.event("restore"))
    assert (
        reply.function_error == "Unhandled" and "run the start Lambda first" in reply.payload["errorMessage"]
    )
    _write_as_app(source, source.databases[0])  # still writable


def test_start_on_mongodb_skips_change_streams(
    lambdas: LambdaWorld,
    standins: dict[str, Any],
    standin_password: str,
    bucket: str,
    moto_server: str,
    aws_endpoints: str,
) -> None:

    mongo = make_source("mongodb", standins, standin_password, bucket, moto_server)
    reply = lambdas.invoke("start", mongo.event("start"))
    started = _ok(reply)
    assert started["source_flavour"] == "mongodb"
    assert started["change_streams_enabled"] == []
    assert "MongoDB: change streams are always on" in reply.log_tail
    with mongo.app_client() as app:
        app[mongo.databases[1]].items.insert_one({"_id": "written"})
