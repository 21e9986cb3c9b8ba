"""The DAGs' rules around the partitioned passes, against moto (S3, EC2):

* the MongoDB backup is taken once, before Back Over writes anything to MongoDB (one rule for both
  DAGs): skipped once the restore or the sync has written (a warning when no backup exists), or
  when a backup was taken before this run; not skipped when the deferred backup of this very run
  resumes; ``backover_start`` leaves it to the freeze with follow off and initial_sync never;
* a pass's partitions task maps over what its begin recorded, spread over the workers;
* the rehearsal's start phase gets the initial sync's Params, checked.
"""

from __future__ import annotations

import logging
import types
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from bson.timestamp import Timestamp
from migration_states import Migration, environment
from test_initial_sync_tasks import _instances, _plan

from backover import extjson
from backover.state import BackupBegun, VerifyLiveRecord


@pytest.fixture
def _airflow(airflow_home: Any) -> None:
    """Airflow is configured before any plugin module is imported."""


@pytest.fixture
def env(_airflow: None, migration: Migration, set_environment: Any) -> Migration:
    set_environment(environment(migration.layout.bucket, "i-1"))
    return migration


def _context(migration: Migration, started: datetime | None = None, **params: Any) -> dict[str, Any]:
    run = types.SimpleNamespace(start_date=started or datetime.now(UTC) - timedelta(minutes=5))
    return {"params": {**migration.context["params"], **params}, "dag_run": run}


def _manifest(migration: Migration) -> None:
    migration.s3.put_json(migration.layout.backup_manifest("mongodb"), {"label": "mongodb"})


def _skipped(check: Any, context: dict[str, Any]) -> str | None:
    from airflow.providers.common.compat.sdk import AirflowSkipException

    try:
        check(context)
    except AirflowSkipException as e:
        return str(e)
    return None


def test_mongodb_is_backed_up_once_before_anything_writes_to_it(env: Migration) -> None:
    from backover_airflow.follow import backup_before_first_write

    assert _skipped(backup_before_first_write, _context(env)) is None  # nothing written, no backup yet
    _manifest(env)
    # the deferred backup of this run (begun 5 minutes ago) resumes: pre_execute runs again and
    # must not skip the backup it has just written
    assert _skipped(backup_before_first_write, _context(env)) is None
    # a later run (a re-run of backover_start, the restore DAG): the backup predates it
    later = _context(env, started=datetime.now(UTC) + timedelta(minutes=1))
    assert "backed up before this run" in (_skipped(backup_before_first_write, later) or "")


@pytest.mark.parametrize("written", ["sync", "restore"])
def test_once_something_wrote_the_backup_is_skipped_and_a_missing_one_is_said(
    env: Migration, written: str, caplog
) -> None:
    from backover_airflow.follow import backup_before_first_write

    if written == "sync":
        _plan(env)
    else:
        env.restore()
    with caplog.at_level(logging.WARNING):
        reason = _skipped(backup_before_first_write, _context(env))
    assert reason is not None and "stays the rollback point" in reason
    assert "there is no rollback point" in caplog.text, "no backup exists: the log must say so"
    caplog.clear()
    _manifest(env)
    with caplog.at_level(logging.WARNING):
        assert _skipped(backup_before_first_write, _context(env)) is not None
    assert "no rollback point" not in caplog.text


def test_start_leaves_the_backup_to_the_freeze_only_with_follow_off_and_no_sync(env: Migration) -> None:
    from backover_airflow.follow import backup_at_the_freeze, backup_before_anything_writes

    off_never = _context(env, follow=False, initial_sync="never")
    assert "backs MongoDB up at the freeze" in (_skipped(backup_before_anything_writes, off_never) or "")
    assert _skipped(backup_at_the_freeze, off_never) is None  # the restore DAG takes it then
    for params in ({"follow": True}, {"follow": False, "initial_sync": "auto"}):
        assert _skipped(backup_before_anything_writes, _context(env, **params)) is None, params
    assert "follow mode is on" in (_skipped(backup_at_the_freeze, _context(env, follow=True)) or "")
    _manifest(env)  # backover_start took it: the freeze does not take it again
    later = _context(env, started=datetime.now(UTC) + timedelta(minutes=1), follow=False)
    assert _skipped(backup_at_the_freeze, later) is not None


def test_a_pass_maps_over_what_its_begin_recorded_spread_over_the_workers(
    _airflow: None, migration: Migration, set_environment: Any
) -> None:
    from backover_airflow.operators.sync import PlanPartitionsOperator

    tag = {"Key": "backover-worker", "Value": f"t-{uuid.uuid4().hex[:8]}"}
    ids = sorted(_instances(boto3.client("ec2"), 2, [tag]))
    set_environment(environment(migration.layout.bucket, ids[0], worker_tag=tag))
    context = {"params": {**migration.context["params"], "databases": ["shop"]}}
    verify = PlanPartitionsOperator(
        task_id="partitions", pass_name="verify_live", options={"step": "partition"}, aws_conn_id=None
    )
    backup = PlanPartitionsOperator(
        task_id="partitions",
        pass_name="backup",
        options={"label": "documentdb", "step": "partition"},
        aws_conn_id=None,
    )
    assert verify.execute(context) == []  # no plan: the finish reads every collection whole
    plan = _plan(migration)
    begun = VerifyLiveRecord(
        migration.layout.migration_id, begin_id="b-1", partitions=plan.partition_ids()[:2]
    )
    migration.s3.put_bytes(migration.layout.verify_live_report, extjson.dumps(begun.to_json()).encode())
    assert verify.execute(context) == [
        {"options": {"step": "partition", "partition": "shop.orders.0000"}, "worker": ids[0]},
        {"options": {"step": "partition", "partition": "shop.orders.0001"}, "worker": ids[1]},
    ]
    record = BackupBegun(
        migration.layout.migration_id,
        "documentdb",
        "b-2",
        b=Timestamp(1, 1),
        started_at=datetime.now(UTC),
        databases=["shop"],
        partitions=plan.partition_ids(),
    )
    migration.s3.put_bytes(
        migration.layout.backup_begun("documentdb"), extjson.dumps(record.to_json()).encode()
    )
    mapped = backup.execute(context)
    assert [m["options"] for m in mapped] == [
        {"label": "documentdb", "step": "partition", "partition": pid} for pid in plan.partition_ids()
    ]
    assert [m["worker"] for m in mapped] == [ids[0], ids[1], ids[0]]


def test_the_rehearsals_start_phase_gets_the_sync_params_checked(env: Migration) -> None:
    from airflow.providers.common.compat.sdk import AirflowFailException

    from backover_airflow.operators.rehearsal import start_conf

    conf = {"migration_id": "rehearsal-1", "databases": ["shop"], "environment": "backover", "follow": True}
    params = {"initial_sync": "always", "drop_target": True, "sync_partition_documents": 500}
    assert start_conf(params, conf) == {**conf, **params}
    assert start_conf({}, conf)["initial_sync"] == "auto"
    with pytest.raises(AirflowFailException, match="initial_sync"):
        start_conf({"initial_sync": "sometimes"}, conf)


@pytest.mark.parametrize(
    ("purpose", "refused"),
    [
        pytest.param("production", "is marked production", id="production"),
        pytest.param(None, "not marked as a rehearsal environment", id="unmarked"),
    ],
)
def test_a_rehearsal_refuses_an_environment_that_is_not_a_rehearsal_one(
    _airflow: None, migration: Migration, set_environment: Any, purpose: str | None, refused: str
) -> None:
    from airflow.providers.common.compat.sdk import AirflowFailException

    from backover_airflow.operators.rehearsal import rehearsal_conf

    doc = environment(migration.layout.bucket, "i-1")
    set_environment({**doc, **({"purpose": purpose} if purpose else {})}, name="backover_rehearsal")
    with pytest.raises(AirflowFailException, match=refused) as failure:
        rehearsal_conf({}, "20261202T000000")
    assert "\n" not in str(failure.value)
    set_environment({**doc, "purpose": "rehearsal"}, name="backover_rehearsal")
    conf = rehearsal_conf({}, "20261202T000000")
    assert conf["environment"] == "backover_rehearsal" and conf["migration_id"] == "rehearsal-20261202t000000"


def test_a_purpose_outside_rehearsal_and_production_is_one_line(_airflow: None) -> None:
    from backover_airflow.config import BackoverConfig, ConfigError

    with pytest.raises(ConfigError, match="'purpose' must be one of rehearsal, production"):
        BackoverConfig.from_mapping({**environment("bkt", "i-1"), "purpose": "staging"})
