"""``deferrable=True``: the sensors hand their waiting to triggers that read the same state objects.

Against moto: a trigger keeps looking while the phase is pending and fires ``success`` once the
state object says so, or ``failed`` with the reason; a deferrable sensor defers only while pending
and turns the trigger's event into the task's outcome.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from bson.timestamp import Timestamp
from migration_states import F, Migration, environment, task_log

#: kind -> (sensor class path, extra kwargs, pending setup, success setup, failed setup, failure reason)
PAIRS: dict[
    str,
    tuple[
        str,
        dict[str, Any],
        Callable[[Migration], Any],
        Callable[[Migration], Any],
        Callable[[Migration], Any],
        str,
    ],
] = {
    "healthy": (
        "backover_airflow.sensors.replication.ReplicatorHealthySensor",
        {"max_heartbeat_age_seconds": 60},
        lambda m: m.replicator("running", heartbeat_age=3600),
        lambda m: m.replicator("running", heartbeat_age=1),
        lambda m: m.replicator("failed", reason="resume token no longer in the oplog"),
        "resume token no longer in the oplog",
    ),
    "drained": (
        "backover_airflow.sensors.replication.ReplicationDrainedSensor",
        {},
        lambda m: (m.freeze(), m.replicator("draining", last=Timestamp(F.time - 3, 1))),
        lambda m: m.replicator("drained", last=F, drained_until=F),
        lambda m: (m.freeze(), m.replicator("failed", reason="segment upload refused")),
        "segment upload refused",
    ),
    "verified": (
        "backover_airflow.sensors.restore.RestoreCompletedSensor",
        {"require_identical": True},
        lambda m: (m.freeze(), m.restore("running")),
        lambda m: (m.freeze(), m.replicator("drained"), m.restore("completed"), m.verify(True)),
        lambda m: (m.freeze(), m.restore("failed", reason="unique index violation on shop.users")),
        "unique index violation on shop.users",
    ),
    "clean": (
        "backover_airflow.sensors.clean.CleanCompletedSensor",
        {},
        lambda m: m.segments(2),
        lambda m: (m.s3.delete_keys([m.layout.segment(s, "zstd") for s in (1, 2)]), m.clean(2)),
        lambda m: None,  # clean has no failed state
        "",
    ),
}
KINDS = [pytest.param(kind, id=kind) for kind in PAIRS]


@pytest.fixture(autouse=True)
def _airflow(airflow_home: Any) -> None:
    """Airflow is configured before any plugin module is imported."""


@pytest.fixture(autouse=True)
def _environment(migration: Migration, set_environment: Any) -> None:
    """The environment Variable names the migration's bucket and prefix."""
    set_environment(environment(migration.layout.bucket, "i-1", prefix=migration.layout.prefix))


def _sensor(kind: str, migration: Migration, **kwargs: Any) -> Any:
    from airflow.sdk._shared.module_loading import import_string

    path, extra, *_ = PAIRS[kind]
    return import_string(path)(
        task_id=f"watch_{kind}",
        aws_conn_id=None,
        poke_interval=0.05,
        deferrable=True,
        timeout=600,
        **extra,
        **kwargs,
    )


def _deferred_trigger(sensor: Any, migration: Migration) -> Any:
    from airflow.providers.common.compat.sdk import TaskDeferred

    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute(migration.context)
    assert deferred.value.method_name == "execute_complete"
    return deferred.value.trigger


@pytest.mark.parametrize("kind", KINDS)
def test_trigger_serializes_to_what_rebuilds_it(kind: str, migration: Migration) -> None:
    """The triggerer rebuilds a trigger from ``serialize()``; the check's own arguments survive."""
    from airflow.sdk._shared.module_loading import import_string

    PAIRS[kind][2](migration)
    trigger = _deferred_trigger(_sensor(kind, migration), migration)
    path, kwargs = trigger.serialize()
    rebuilt = import_string(path)(**kwargs)
    assert rebuilt.serialize() == (path, kwargs)
    assert kwargs["migration_id"] == migration.layout.migration_id
    assert set(PAIRS[kind][1]) <= set(kwargs)


@pytest.mark.parametrize("kind", KINDS)
def test_trigger_waits_while_pending_then_fires_success(
    kind: str, migration: Migration, capfd: pytest.CaptureFixture[str]
) -> None:
    _, _, pending, success, _, _ = PAIRS[kind]
    pending(migration)
    sensor = _sensor(kind, migration)
    pending_line = sensor.look(migration.context).message[:30]
    trigger = _deferred_trigger(sensor, migration)
    task_log(capfd)

    async def scenario() -> dict[str, Any]:
        waiting = asyncio.ensure_future(anext(trigger.run()))
        seen = ""
        for _ in range(600):  # until the trigger has logged that it looked and is still waiting
            await asyncio.sleep(0.05)
            seen += task_log(capfd)
            if seen.count(pending_line) >= 2:
                break
        assert seen.count(pending_line) >= 2, seen
        assert not waiting.done(), "a pending phase fires no event"
        await asyncio.to_thread(success, migration)
        return (await asyncio.wait_for(waiting, 60)).payload

    event = asyncio.run(scenario())
    assert event["status"] == "success", event


@pytest.mark.parametrize("kind", [k for k in KINDS if PAIRS[k.values[0]][5]])
def test_trigger_fires_failed_with_the_reason(kind: str, migration: Migration) -> None:
    _, _, pending, _, failed, reason = PAIRS[kind]
    pending(migration)
    trigger = _deferred_trigger(_sensor(kind, migration), migration)
    failed(migration)

    event = asyncio.run(asyncio.wait_for(anext(trigger.run()), 60)).payload
    assert event["status"] == "failed"
    assert reason in event["message"]


@pytest.mark.parametrize("kind", KINDS)
def test_deferrable_sensor_does_not_defer_when_already_done(kind: str, migration: Migration) -> None:
    PAIRS[kind][3](migration) if kind != "drained" else (migration.freeze(), PAIRS[kind][3](migration))
    assert _sensor(kind, migration).execute(migration.context) is None


@pytest.mark.parametrize(
    ("event", "fails"),
    [
        pytest.param({"status": "success", "message": "restore completed"}, False, id="success"),
        pytest.param({"status": "failed", "message": "restore failed: disk full"}, True, id="failed"),
        pytest.param(None, True, id="no-event"),
    ],
)
def test_execute_complete_turns_the_event_into_the_outcome(
    event: dict[str, Any] | None, fails: bool, migration: Migration
) -> None:
    from airflow.providers.common.compat.sdk import AirflowException

    sensor = _sensor("verified", migration)
    if fails:
        with pytest.raises(AirflowException, match="disk full|event is None"):
            sensor.execute_complete({}, event)
    else:
        assert sensor.execute_complete({}, event) is None


def test_trigger_fires_failed_when_a_state_file_is_damaged_meanwhile(migration: Migration) -> None:
    """The deferred wait ends at once, naming the file, instead of the trigger crashing on it."""
    migration.replicator("running", heartbeat_age=900)  # pending: the heartbeat is stale
    trigger = _deferred_trigger(_sensor("healthy", migration), migration)
    migration.s3.put_bytes(migration.layout.replicator_checkpoint, b"\x00 not json")

    event = asyncio.run(asyncio.wait_for(anext(trigger.run()), 60)).payload
    assert event["status"] == "failed"
    assert migration.layout.replicator_checkpoint in event["message"]
