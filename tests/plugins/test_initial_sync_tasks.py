"""The initial sync in ``backover_start``: its Params, its command lines, the workers and their choice,
and the tasks around the mapped copy, against moto (S3, EC2).

* the Params ``initial_sync``/``drop_target``/``sync_partition_documents`` and the Variable's
  ``worker_tag`` are checked at run time, one line naming the field;
* ``backover sync --plan`` gets the mode's flags, ``--partition`` the partition id, and the worker's
  own parser accepts both;
* the workers are the Variable's ``worker_instance_id`` first, then every live instance with the
  tag (EC2 is not asked without a tag); the partitions go round-robin over them;
* the EC2 tasks start, wait for and stop every worker;
* the partitions task maps over the partitions left (none once complete, none when ``auto`` found
  the data); the completion check writes ``sync/complete.json`` once every partition completed,
  and names the partitions that did not;
* ``never`` skips every sync task.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from bson.timestamp import Timestamp
from migration_states import Migration, environment

from backover import extjson
from backover.state import (
    SyncCollection,
    SyncComplete,
    SyncPartition,
    SyncPartitionCheckpoint,
    SyncPartitionState,
    SyncPlan,
)
from backover_airflow import commands, workers
from backover_airflow.config import BackoverConfig, ConfigError, RunParams


# -- Params and command lines ----------------------------------------------------------------------
def _config(**overrides: Any) -> BackoverConfig:
    return BackoverConfig.from_mapping(environment("bkt", "i-1", **overrides))


@pytest.mark.parametrize(
    ("params", "flags"),
    [
        pytest.param({}, {"if_needed": True, "drop_target": False}, id="auto-by-default"),
        pytest.param({"initial_sync": "always"}, {"if_needed": False, "drop_target": False}, id="always"),
        pytest.param(
            {"initial_sync": "always", "drop_target": True},
            {"if_needed": False, "drop_target": True},
            id="always-drop-target",
        ),
    ],
)
def test_the_plan_gets_the_modes_flags_and_the_worker_accepts_them(
    params: dict[str, Any], flags: dict[str, bool]
) -> None:
    from backover.cli import build_parser

    config = _config()
    run = RunParams.from_params({"migration_id": "m-1", "sync_partition_documents": 5000, **params}, config)
    args = build_parser().parse_args(commands.arguments("sync_plan", config, run))
    assert (args.command, args.plan, args.partition, args.partition_documents) == ("sync", True, None, 5000)
    assert {name: getattr(args, name) for name in flags} == flags
    assert (args.source_secret_id, args.target_secret_id) == ("sb/docdb-master", "sb/mongo-master")
    assert (args.bucket, args.migration_id) == ("bkt", "m-1")
    assert commands.title("sync_plan") == "sync --plan"


def test_a_partition_is_copied_by_its_id() -> None:
    from backover.cli import build_parser

    config = _config()
    run = RunParams.from_params({"migration_id": "m-1"}, config)
    argv = commands.arguments("sync_partition", config, run, partition="shop.orders.0003")
    args = build_parser().parse_args(argv)
    assert (args.command, args.plan, args.partition) == ("sync", False, "shop.orders.0003")
    assert (args.source_secret_id, args.target_secret_id) == ("sb/docdb-master", "sb/mongo-master")
    for bad in ("", "--plan"):
        with pytest.raises(ConfigError, match="a sync partition id from the plan"):
            commands.arguments("sync_partition", config, run, partition=bad)


def test_the_sync_params_default_to_a_copy_only_when_needed() -> None:
    run = RunParams.from_params({"migration_id": "m-1"}, _config())
    assert (run.initial_sync, run.drop_target, run.sync_partition_documents) == ("auto", False, 1_000_000)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        pytest.param(
            {"initial_sync": "sometimes"}, "'initial_sync' must be one of auto, always, never", id="mode"
        ),
        pytest.param(
            {"drop_target": True}, "'drop_target' needs initial_sync 'always', not 'auto'", id="drop-auto"
        ),
        pytest.param(
            {"initial_sync": "never", "drop_target": True}, "needs initial_sync 'always'", id="drop-never"
        ),
        pytest.param(
            {"sync_partition_documents": 0}, "'sync_partition_documents' must be a whole", id="zero"
        ),
        pytest.param({"sync_partition_documents": "many"}, "'sync_partition_documents'", id="not-a-number"),
        pytest.param({"sync_partition_documents": True}, "'sync_partition_documents'", id="bool"),
    ],
)
def test_a_bad_sync_param_is_one_line_naming_it(params: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as refused:
        RunParams.from_params({"migration_id": "m-1", **params}, _config())
    assert "\n" not in str(refused.value)


@pytest.mark.parametrize(
    "tag",
    [
        pytest.param("backover-worker=prod", id="a-string"),
        pytest.param({"Key": "backover-worker"}, id="no-value"),
        pytest.param({"Key": "", "Value": "prod"}, id="empty-key"),
        pytest.param({"key": "backover-worker", "value": "prod"}, id="lower-case"),
    ],
)
def test_a_worker_tag_must_be_an_ec2_tag(tag: Any) -> None:
    with pytest.raises(ConfigError, match="'worker_tag' must be an EC2 tag"):
        _config(worker_tag=tag)


def test_without_a_tag_the_one_worker_is_the_variables_and_ec2_is_not_asked() -> None:
    class NoEc2:
        def __getattr__(self, name: str) -> Any:
            raise AssertionError(f"EC2 asked ({name}) without a worker_tag")

    config = _config(worker_instance_id="i-0abc")
    assert config.worker_tag is None
    assert workers.worker_ids(config, NoEc2()) == ["i-0abc"]


# -- workers in moto ----------------------------------------------------------------------------------
def _instances(ec2: Any, count: int, tags: list[dict[str, str]]) -> list[str]:
    image_id = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    spec = [{"ResourceType": "instance", "Tags": tags}] if tags else []
    made = ec2.run_instances(
        ImageId=image_id, MinCount=count, MaxCount=count, InstanceType="t3.micro", TagSpecifications=spec
    )
    return [i["InstanceId"] for i in made["Instances"]]


@pytest.fixture
def tag(aws_endpoints: str) -> dict[str, str]:
    """A tag no other test's instances carry."""
    return {"Key": "backover-worker", "Value": f"t-{uuid.uuid4().hex[:8]}"}


def test_the_workers_are_the_first_one_then_every_live_instance_with_the_tag(tag: dict[str, str]) -> None:
    ec2 = boto3.client("ec2")
    first = _instances(ec2, 1, [])[0]  # the Variable's worker need not carry the tag
    tagged = _instances(ec2, 3, [tag])
    ec2.stop_instances(InstanceIds=[tagged[0]])  # stopped: still a worker (the worker group starts it)
    ec2.terminate_instances(InstanceIds=[tagged[1]])  # terminated: gone
    _instances(ec2, 1, [{"Key": tag["Key"], "Value": "another-environment"}])
    config = _config(worker_instance_id=first, worker_tag=tag)
    assert workers.worker_ids(config, ec2) == [first, *sorted([tagged[0], tagged[2]])]
    # the first worker carrying the tag too is listed once, first
    config = _config(worker_instance_id=tagged[2], worker_tag=tag)
    assert workers.worker_ids(config, ec2) == [tagged[2], tagged[0]]


def test_partitions_go_round_robin_over_the_workers() -> None:
    spread = workers.spread(["a.0", "a.1", "b.0", "b.1", "b.2"], ["i-1", "i-2"])
    assert [(s["options"]["partition"], s["worker"]) for s in spread] == [
        ("a.0", "i-1"),
        ("a.1", "i-2"),
        ("b.0", "i-1"),
        ("b.1", "i-2"),
        ("b.2", "i-1"),
    ]
    assert workers.spread([], ["i-1"]) == []


@pytest.fixture
def _airflow(airflow_home: Any) -> None:
    """Airflow is configured before any plugin module is imported."""


def _states(ec2: Any, ids: list[str]) -> dict[str, str]:
    found = ec2.describe_instances(InstanceIds=ids)["Reservations"]
    return {i["InstanceId"]: i["State"]["Name"] for r in found for i in r["Instances"]}


def test_every_worker_is_started_waited_for_and_stopped(
    _airflow: None, tag: dict[str, str], set_environment: Any
) -> None:
    from backover_airflow.operators.ec2 import WorkerStartOperator, WorkerStopOperator
    from backover_airflow.sensors.ec2 import WorkerStateSensor

    ec2 = boto3.client("ec2")
    ids = _instances(ec2, 2, [tag])
    ec2.stop_instances(InstanceIds=ids)
    set_environment(environment("bkt", ids[1], worker_tag=tag))
    context = {"params": {"migration_id": "m-1", "environment": "backover"}}

    WorkerStartOperator(task_id="start", aws_conn_id=None, check_interval=0.2).execute(context)
    assert set(_states(ec2, ids).values()) == {"running"}
    sensor = WorkerStateSensor(task_id="running", aws_conn_id=None, target_state="running", timeout=30)
    sensor.execute(context)
    assert sensor.instance_ids == [ids[1], ids[0]], "the Variable's worker first"
    assert sensor.poke(context) is True
    ec2.stop_instances(InstanceIds=[ids[0]])
    assert sensor.poke(context) is False, "every worker must run, not only the first"

    WorkerStopOperator(task_id="stop", aws_conn_id=None, check_interval=0.2).execute(context)
    assert set(_states(ec2, ids).values()) == {"stopped"}


# -- the partitions and the completion check ---------------------------------------------------------
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _plan(migration: Migration) -> SyncPlan:
    """A plan of 3 partitions in 2 collections, written where ``backover sync --plan`` writes it."""
    plan = SyncPlan(
        migration_id=migration.layout.migration_id,
        t0=Timestamp(1_764_260_000, 1),
        partition_documents=10,
        created_at=NOW,
        collections=[
            SyncCollection(
                "shop",
                "orders",
                documents=15,
                partitions=[
                    SyncPartition("shop.orders.0000", "number", estimated_documents=10),
                    SyncPartition("shop.orders.0001", "number", estimated_documents=5),
                ],
            ),
            SyncCollection(
                "shop",
                "customers",
                documents=4,
                partitions=[SyncPartition("shop.customers.0000", "number", [], None, None, 4)],
            ),
        ],
        documents=19,
    )
    migration.s3.put_bytes(migration.layout.sync_plan, extjson.dumps(plan.to_json()).encode())
    return plan


def _completed(migration: Migration, partition: str, documents: int) -> None:
    checkpoint = SyncPartitionCheckpoint(
        migration_id=migration.layout.migration_id,
        partition=partition,
        state=SyncPartitionState.COMPLETED,
        documents=documents,
        bytes_copied=documents * 100,
        started_at=NOW,
        updated_at=NOW + timedelta(seconds=2),
        completed_at=NOW + timedelta(seconds=2),
    )
    migration.s3.put_bytes(
        migration.layout.sync_partition(partition), extjson.dumps(checkpoint.to_json()).encode()
    )


@pytest.fixture
def sync_env(_airflow: None, migration: Migration, tag: dict[str, str], set_environment: Any) -> list[str]:
    """Two tagged workers (the first the Variable's); returns their ids, the first first."""
    ids = sorted(_instances(boto3.client("ec2"), 2, [tag]))
    set_environment(environment(migration.layout.bucket, ids[0], worker_tag=tag))
    return ids


def _context(migration: Migration, **params: Any) -> dict[str, Any]:
    return {"params": {**migration.context["params"], "databases": ["shop"], **params}}


def test_the_copy_maps_over_the_partitions_left_spread_over_the_workers(
    sync_env: list[str], migration: Migration
) -> None:
    from backover_airflow.operators.sync import SyncPartitionsOperator

    _plan(migration)
    task = SyncPartitionsOperator(task_id="partitions", aws_conn_id=None)
    assert task.execute(_context(migration)) == [
        {"options": {"partition": "shop.orders.0000"}, "worker": sync_env[0]},
        {"options": {"partition": "shop.orders.0001"}, "worker": sync_env[1]},
        {"options": {"partition": "shop.customers.0000"}, "worker": sync_env[0]},
    ]
    _completed(migration, "shop.orders.0000", 10)  # a re-run: a completed partition is not copied again
    assert [a["options"]["partition"] for a in task.execute(_context(migration))] == [
        "shop.orders.0001",
        "shop.customers.0000",
    ]


def test_nothing_is_mapped_when_auto_found_the_data_or_the_copy_completed(
    sync_env: list[str], migration: Migration
) -> None:
    from airflow.providers.common.compat.sdk import AirflowFailException

    from backover_airflow.operators.sync import SyncCompletedOperator, SyncPartitionsOperator

    partitions = SyncPartitionsOperator(task_id="partitions", aws_conn_id=None)
    complete = SyncCompletedOperator(task_id="complete", aws_conn_id=None)
    # no plan: the plan task found MongoDB holding the data (auto)
    assert partitions.execute(_context(migration)) == []
    assert complete.execute(_context(migration)) == {"copied": False}
    # with always, the plan task must have written one
    with pytest.raises(AirflowFailException, match="no sync plan"):
        partitions.execute(_context(migration, initial_sync="always"))
    with pytest.raises(AirflowFailException, match="no sync plan"):
        complete.execute(_context(migration, initial_sync="always"))
    plan = _plan(migration)
    done = SyncComplete(migration.layout.migration_id, completed_at=NOW, planned_at=plan.created_at)
    migration.s3.put_bytes(migration.layout.sync_complete, extjson.dumps(done.to_json()).encode())
    assert partitions.execute(_context(migration)) == [], "a completed copy is not run again"


def test_the_completion_check_names_what_is_missing_then_completes(
    sync_env: list[str], migration: Migration
) -> None:
    from airflow.providers.common.compat.sdk import AirflowFailException

    from backover_airflow.operators.sync import SyncCompletedOperator

    _plan(migration)
    _completed(migration, "shop.orders.0000", 10)
    _completed(migration, "shop.customers.0000", 4)
    complete = SyncCompletedOperator(task_id="complete", aws_conn_id=None)
    with pytest.raises(AirflowFailException, match=r"1 of 3 partition\(s\) not copied \(shop.orders.0001\)"):
        complete.execute(_context(migration))
    assert migration.s3.get_json(migration.layout.sync_complete) is None
    _completed(migration, "shop.orders.0001", 5)
    # every partition completed: the completion record is written (its last copy may have lost a race)
    figures = complete.execute(_context(migration))
    assert figures["copied"] is True
    assert (figures["documents"], figures["partitions"], figures["collections"]) == (19, 3, 2)
    written = migration.s3.get_json(migration.layout.sync_complete)
    assert written["documents"] == 19 and written["partitions"] == 3


def test_a_damaged_sync_object_fails_at_once_with_its_reason(
    sync_env: list[str], migration: Migration
) -> None:
    from airflow.providers.common.compat.sdk import AirflowFailException

    from backover_airflow.operators.sync import SyncCompletedOperator, SyncPartitionsOperator

    _plan(migration)
    migration.s3.put_bytes(migration.layout.sync_partition("shop.orders.0001"), b"{not json")
    for task in (
        SyncPartitionsOperator(task_id="partitions", aws_conn_id=None),
        SyncCompletedOperator(task_id="complete", aws_conn_id=None),
    ):
        with pytest.raises(AirflowFailException, match="shop.orders.0001") as failure:
            task.execute(_context(migration))
        assert "\n" not in str(failure.value)


def test_never_skips_every_sync_task(_airflow: None) -> None:
    from airflow.providers.common.compat.sdk import AirflowSkipException

    from backover_airflow.operators.sync import run_if_initial_sync

    with pytest.raises(AirflowSkipException, match="initial_sync is never"):
        run_if_initial_sync({"params": {"initial_sync": "never"}})
    for mode in ("auto", "always"):
        run_if_initial_sync({"params": {"initial_sync": mode}})
    run_if_initial_sync({"params": {}})  # a run triggered before the Param existed: auto
