"""The migration sensors against moto: pending, success and failure read from real S3 state objects.

Each case writes the state objects as the replicator, restore, Lambdas and clean write them, then
pokes the sensor through the provider's S3 hook: pending -> ``poke`` is False and the log says what
it waits for and how far it is; success -> True; a failed state -> the task fails at once (no
retry) with the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from bson.timestamp import Timestamp
from migration_states import F, Migration, environment, now, task_log

Setup = Callable[[Migration], None]

SAME_NS = {
    "source_count": 3,
    "target_count": 3,
    "missing": 0,
    "extra": 0,
    "different": 0,
    "first_differences": [],
    "indexes_identical": True,
}
DIFF_NS = {
    "source_count": 5,
    "target_count": 3,
    "missing": 2,
    "extra": 0,
    "different": 1,
    "first_differences": [],
    "indexes_identical": True,
}


def _drained_before_f(m: Migration) -> None:
    m.freeze()
    m.replicator("drained", last=Timestamp(F.time - 40, 1), drained_until=Timestamp(F.time - 40, 1))


def _completed_then_old_report(m: Migration) -> None:
    m.freeze()
    m.verify(True, checked_at=now() - timedelta(hours=1))
    m.restore("completed", applied=5)


CASES = [
    # -- replicator healthy (start) ---------------------------------------------------------------
    pytest.param(
        "healthy",
        {},
        lambda m: None,
        "pending",
        "waiting for the replicator's first checkpoint",
        id="healthy-no-checkpoint",
    ),
    pytest.param(
        "healthy",
        {},
        lambda m: m.replicator("running", heartbeat_age=900),
        "pending",
        "(older than 300 s); waiting for a fresh heartbeat",
        id="healthy-stale-heartbeat",
    ),
    pytest.param(
        "healthy",
        {},
        lambda m: m.replicator("running", heartbeat_age=2, events=120),
        "success",
        "s ago, 120 events in 4 segments, last event at cluster time",
        id="healthy-running",
    ),
    pytest.param(
        "healthy",
        {},
        lambda m: m.replicator("failed", reason="change stream history lost (286)"),
        "failed",
        "replicator failed: change stream history lost (286)",
        id="healthy-failed",
    ),
    pytest.param(
        "healthy",
        {},
        lambda m: m.replicator("stopped"),
        "failed",
        "replicator is stopped",
        id="healthy-stopped",
    ),
    # -- replication drained past F (restore) ------------------------------------------------------
    pytest.param(
        "drained",
        {},
        lambda m: m.replicator("running"),
        "pending",
        "waiting for the freeze position F",
        id="drained-no-freeze",
    ),
    pytest.param(
        "drained",
        {},
        lambda m: (m.freeze(), m.replicator("draining", last=Timestamp(F.time - 12, 3))),
        "pending",
        f"captured up to {F.time - 12}:3, F = {F.time}:5 (12 s behind)",
        id="drained-behind",
    ),
    pytest.param("drained", {}, _drained_before_f, "pending", "(40 s behind)", id="drained-before-f"),
    pytest.param(
        "drained",
        {},
        lambda m: (m.freeze(), m.replicator("drained", last=Timestamp(F.time - 5, 1), drained_until=F)),
        "success",
        f"replication drained past F = {F.time}:5",
        id="drained-past-f",
    ),
    pytest.param(
        "drained",
        {},
        lambda m: (m.freeze(), m.replicator("draining", heartbeat_age=1000)),
        "pending",
        "the replicator may not be running",
        id="drained-stale-heartbeat",
    ),
    pytest.param(
        "drained",
        {},
        lambda m: (m.freeze(), m.replicator("failed", reason="S3 access denied")),
        "failed",
        "S3 access denied",
        id="drained-failed",
    ),
    # -- restore completed ------------------------------------------------------------------------
    pytest.param(
        "restore", {}, lambda m: None, "pending", "waiting for the restore's checkpoint", id="restore-none"
    ),
    pytest.param(
        "restore",
        {},
        lambda m: (m.replicator("drained", last_seq=5), m.restore("running", applied=3)),
        "pending",
        "applied segment 3 of 5 (2 segment(s), 30 event(s), ",
        id="restore-running",
    ),
    # -- follow restore healthy (start, and before the freeze) ------------------------------------
    pytest.param(
        "follow",
        {},
        lambda m: None,
        "pending",
        "waiting for the follow restore's first checkpoint",
        id="follow-no-checkpoint",
    ),
    pytest.param(
        "follow",
        {},
        lambda m: (m.replicator("running", last_seq=5), m.restore(follow=True), m.restore_lease()),
        "success",
        "segment 3 applied, 90 events; 2 segment(s), 30 event(s)",
        id="follow-healthy",
    ),
    pytest.param(
        "follow",
        {},
        lambda m: (m.restore(follow=True), m.restore_lease(renewed_seconds_ago=45)),
        "failed",
        "the follow restore is not running (its lease expired at",
        id="follow-lease-lapsed",
    ),
    pytest.param(
        "follow",
        {},
        lambda m: m.restore(follow=True),
        "failed",
        "is not running (no restore lease); run backover_start again",
        id="follow-no-lease",
    ),
    pytest.param(
        "follow",
        {},
        lambda m: m.restore("stopped", follow=True, reason="follow restore stopped by a signal"),
        "failed",
        "the follow restore is stopped (follow restore stopped by a signal); run backover_start again",
        id="follow-stopped",
    ),
    pytest.param(
        "follow",
        {},
        lambda m: (m.restore("failed", follow=True, reason="segment 9 is corrupt"), m.restore_lease()),
        "failed",
        "the follow restore failed: segment 9 is corrupt",
        id="follow-failed",
    ),
    pytest.param(
        "follow",
        {},
        lambda m: (m.restore("running"), m.restore_lease()),
        "pending",
        "a one-off restore is running, not a follow restore",
        id="follow-one-off-restore",
    ),
    pytest.param(
        "restore",
        {},
        lambda m: m.restore("completed", applied=5, events=150),
        "success",
        "restore completed: 5 segments, 150 events applied",
        id="restore-completed",
    ),
    pytest.param(
        "restore",
        {},
        lambda m: m.restore("failed", reason="invalidate event in segment 4"),
        "failed",
        "restore failed: invalidate event in segment 4",
        id="restore-failed",
    ),
    pytest.param(
        "restore",
        {"require_identical": True},
        lambda m: (m.freeze(), m.restore("completed")),
        "pending",
        "waiting for the verification report",
        id="verified-no-report",
    ),
    # clean before the restore: nothing it waits for comes by waiting (backover_restore freezes)
    pytest.param(
        "restore",
        {"require_identical": True},
        lambda m: (m.start(), m.replicator("running")),
        "failed",
        "the migration was never frozen (no state/freeze.json): the app still writes and the replicator "
        "still captures; run backover_restore first",
        id="verified-restore-never-ran",
    ),
    pytest.param(
        "restore",
        {"require_identical": True},
        lambda m: (m.start(), m.replicator("running"), m.restore(follow=True), m.restore_lease()),
        "failed",
        "the migration was never frozen",
        id="verified-follow-restore-not-frozen",
    ),
    pytest.param(
        "restore",
        {"require_identical": True},
        lambda m: (m.freeze(), m.replicator("drained"), m.restore("running", applied=3)),
        "pending",
        "restoring: applied segment 3",
        id="verified-frozen-restore-running",
    ),
    pytest.param(
        "restore",
        {"require_identical": True},
        _completed_then_old_report,
        "pending",
        "predates the restore",
        id="verified-stale-report",
    ),
    pytest.param(
        "restore",
        {"require_identical": True},
        lambda m: (
            m.freeze(),
            m.replicator("drained"),
            m.restore("completed"),
            m.verify(True, shop__orders=SAME_NS),
        ),
        "success",
        "verified identical (1 namespaces)",
        id="verified-identical",
    ),
    pytest.param(
        "restore",
        {"require_identical": True},
        lambda m: (m.replicator("running"), m.restore("completed"), m.verify(True)),
        "failed",
        "the migration was never frozen",
        id="verified-not-frozen",
    ),
    pytest.param(
        "restore",
        {"require_identical": True},
        lambda m: (m.freeze(), m.replicator("draining"), m.restore("completed"), m.verify(True)),
        "pending",
        "but the replicator is draining (needs drained or stopped)",
        id="verified-still-capturing",
    ),
    pytest.param(
        "restore",
        {"require_identical": True},
        lambda m: (m.freeze(), m.replicator("stopped"), m.restore("completed"), m.verify(True)),
        "success",
        "verified identical",
        id="verified-stopped-after-freeze",
    ),
    pytest.param(
        "restore",
        {"require_identical": True},
        lambda m: (
            m.freeze(),
            m.restore("completed"),
            m.verify(False, shop__orders=DIFF_NS, shop__items=SAME_NS),
        ),
        "failed",
        "verification found differences: shop.orders: 2 missing, 1 different",
        id="verified-different",
    ),
    pytest.param(
        "restore",
        {"require_identical": True},
        lambda m: (m.verify(True), m.clean()),
        "success",
        "recorded in state/clean.json",
        id="verified-then-cleaned",
    ),
    pytest.param(
        "restore",
        {"require_identical": True},
        lambda m: m.clean(verified=False, forced=True),
        "failed",
        "forced without a verified restore",
        id="cleaned-by-force",
    ),
    # -- clean completed --------------------------------------------------------------------------
    pytest.param(
        "clean",
        {},
        lambda m: m.segments(3),
        "pending",
        "waiting for the clean-up to finish (state/clean.json 'cleaned_at'); 3 change segments left",
        id="clean-not-recorded",
    ),
    pytest.param(
        "clean",
        {},
        lambda m: (m.segments(3), m.clean(finished=False)),
        "pending",
        "3 change segments left",
        id="clean-only-guard-and-lambda",
    ),
    pytest.param(
        "clean",
        {},
        lambda m: (m.segments(1), m.clean()),
        "pending",
        "1 change segments are left",
        id="clean-segments-left",
    ),
    pytest.param(
        "clean",
        {},
        lambda m: (m.replicator("stopped"), m.clean(deleted=4)),
        "success",
        "clean completed: 4 segments deleted, no segments left; change streams disabled: shop",
        id="clean-done",
    ),
]


def _sensor(kind: str, migration: Migration, **kwargs: Any) -> Any:
    from backover_airflow.sensors.clean import CleanCompletedSensor
    from backover_airflow.sensors.replication import ReplicationDrainedSensor, ReplicatorHealthySensor
    from backover_airflow.sensors.restore import FollowRestoreHealthySensor, RestoreCompletedSensor

    cls = {
        "follow": FollowRestoreHealthySensor,
        "healthy": ReplicatorHealthySensor,
        "drained": ReplicationDrainedSensor,
        "restore": RestoreCompletedSensor,
        "clean": CleanCompletedSensor,
    }[kind]
    return cls(task_id=f"watch_{kind}", aws_conn_id=None, poke_interval=1, **kwargs)


@pytest.fixture(autouse=True)
def _airflow(airflow_home: Any) -> None:
    """Airflow is configured before any sensor module is imported."""


@pytest.fixture(autouse=True)
def _environment(migration: Migration, set_environment: Any) -> None:
    """The environment Variable names the migration's bucket and prefix."""
    set_environment(environment(migration.layout.bucket, "i-1", prefix=migration.layout.prefix))


@pytest.mark.parametrize(("kind", "kwargs", "setup", "expected", "message"), CASES)
def test_sensor_poke(
    kind: str,
    kwargs: dict[str, Any],
    setup: Setup,
    expected: str,
    message: str,
    migration: Migration,
    capfd: pytest.CaptureFixture[str],
) -> None:
    from airflow.providers.common.compat.sdk import AirflowFailException

    setup(migration)
    sensor = _sensor(kind, migration, **kwargs)
    capfd.readouterr()
    if expected == "failed":
        with pytest.raises(AirflowFailException) as failure:
            sensor.poke(migration.context)
        assert message in str(failure.value)
    else:
        assert sensor.poke(migration.context) is (expected == "success")
    assert message in task_log(capfd), "the task log explains what the sensor waits for and how far it is"


DAMAGED = [
    pytest.param(
        "healthy",
        lambda m: m.s3.put_bytes(m.layout.replicator_checkpoint, b"{not json"),
        "replicator_checkpoint",
        id="healthy-checkpoint-not-json",
    ),
    pytest.param(
        "drained",
        lambda m: (m.replicator("draining"), m.s3.put_json(m.layout.freeze_state, {"f": 5})),
        "freeze_state",
        id="drained-freeze-malformed",
    ),
    pytest.param(
        "restore",
        lambda m: m.s3.put_json(
            m.layout.restore_checkpoint, {"state": "running", "last_applied_seq": "three"}
        ),
        "restore_checkpoint",
        id="restore-checkpoint-malformed",
    ),
    pytest.param(
        "clean",
        lambda m: m.s3.put_json(m.layout.clean_state, {"format_version": 99}),
        "clean_state",
        id="clean-from-a-newer-version",
    ),
]


@pytest.mark.parametrize(("kind", "damage", "key"), DAMAGED)
def test_a_damaged_state_file_fails_the_sensor_at_once_naming_it(
    kind: str, damage: Setup, key: str, migration: Migration
) -> None:
    """Not retried as an ordinary error: no retry repairs the file; the reason names its key."""
    from airflow.providers.common.compat.sdk import AirflowFailException

    damage(migration)
    with pytest.raises(AirflowFailException) as failure:
        _sensor(kind, migration).poke(migration.context)
    message = str(failure.value)
    assert getattr(migration.layout, key) in message and "\n" not in message, message
