"""One clean guard: the clean Lambda, ``backover clean`` and the Airflow "restore verified" check
give the same answer on the same state objects (moto, the documentdb stand-in for the Lambda).

Each case writes a migration's records as the replicator, restore, verify, the Lambdas and clean
write them, then asks one entry point: allowed (the Lambda returns, the command exits 0, the
sensor check succeeds) or refused with the guard's reason (``CleanRefused``, exit 1, a sensor
check that is not done and names it).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from bson.timestamp import Timestamp

from backover import state
from backover.cli import main
from backover.layout import MigrationLayout
from backover.s3objects import S3Objects
from backover.state import (
    CleanGuard,
    CleanRecord,
    FreezeRecord,
    ReplicatorCheckpoint,
    RestoreCheckpoint,
    StartRecord,
    utc_now,
)
from backover.verify.merge import MergeResult
from backover.verify.report import NamespaceReport, VerifyReport

PREFIX = "lambda-tests"  # the clean event's prefix (events/clean.json)


@dataclass
class Records:
    layout: MigrationLayout
    s3: S3Objects

    def put(self, key: str, record: Any) -> None:
        self.s3.put_json(key, record.to_json())

    def start(self) -> None:
        self.put(
            self.layout.start_state,
            StartRecord(migration_id=self.layout.migration_id, t0=Timestamp(1, 1), started_at=utc_now()),
        )

    def freeze(self) -> None:
        self.put(
            self.layout.freeze_state,
            FreezeRecord(migration_id=self.layout.migration_id, f=Timestamp(2, 1), frozen_at=utc_now()),
        )

    def replicator(self, state_: str) -> None:
        self.put(
            self.layout.replicator_checkpoint,
            ReplicatorCheckpoint(self.layout.migration_id, last_seq=0, state=state_),
        )

    def restore(self, state_: str) -> None:
        self.put(self.layout.restore_checkpoint, RestoreCheckpoint(self.layout.migration_id, state=state_))

    def verify(self, identical: bool = True, age: timedelta = timedelta(0)) -> None:
        merge = MergeResult(3, 3) if identical else MergeResult(3, 2, missing=1)
        self.put(
            self.layout.verify_report,
            VerifyReport(
                [NamespaceReport("shop.orders", merge)], checked_at=utc_now() + timedelta(seconds=1) - age
            ),
        )

    def cleaned(self, *, forced: bool) -> None:
        guard = CleanGuard(
            restore_state="running" if forced else "completed",
            verified=not forced,
            replicator_state="drained",
            frozen=True,
            forced=forced,
            checked_at=utc_now(),
        )
        self.put(
            self.layout.clean_state,
            CleanRecord(migration_id=self.layout.migration_id, guard=guard, cleaned_at=utc_now()),
        )


def _finished(r: Records) -> None:
    r.freeze()
    r.replicator("drained")
    r.restore("completed")
    r.verify()


CASES: list[Any] = [
    pytest.param(_finished, None, None, id="verified"),
    pytest.param(
        lambda r: (r.freeze(), r.replicator("stopped"), r.restore("completed"), r.verify()),
        None,
        None,
        id="stopped-after-freeze",
    ),
    pytest.param(
        lambda r: (r.freeze(), r.replicator("drained"), r.restore("running"), r.verify()),
        "the restore is running (needs completed)",
        "restoring: applied segment",
        id="restore-running",
    ),
    pytest.param(
        lambda r: (
            r.freeze(),
            r.replicator("drained"),
            r.verify(age=timedelta(hours=1)),
            r.restore("completed"),
        ),
        "predates the restore",
        "predates the restore",
        id="report-predates-restore",
    ),
    pytest.param(
        lambda r: (r.freeze(), r.replicator("drained"), r.restore("completed"), r.verify(identical=False)),
        "verification found differences: shop.orders: 1 missing",
        "verification found differences",
        id="differences",
    ),
    pytest.param(
        lambda r: (r.replicator("stopped"), r.restore("completed"), r.verify()),
        "the migration was never frozen",
        "never frozen",
        id="never-frozen",
    ),
    pytest.param(
        lambda r: (r.freeze(), r.replicator("draining"), r.restore("completed"), r.verify()),
        "the replicator is draining (needs drained or stopped)",
        "the replicator is draining",
        id="still-draining",
    ),
    pytest.param(lambda r: (r.verify(), r.cleaned(forced=False)), None, None, id="cleaned-after-a-pass"),
    pytest.param(
        lambda r: r.cleaned(forced=True),
        "forced without a verified restore",
        "forced without a verified restore",
        id="cleaned-by-force",
    ),
]


def _by_lambda(request: pytest.FixtureRequest, records: Records) -> tuple[bool, str]:
    lambdas, source = request.getfixturevalue("lambdas"), request.getfixturevalue("source")
    answer = lambdas.invoke("clean", source.event("clean"))
    if answer.function_error is None:
        return True, ""
    assert answer.payload["errorType"] == "CleanRefused", answer.payload
    return False, answer.payload["errorMessage"]


def _by_command(request: pytest.FixtureRequest, records: Records) -> tuple[bool, str]:
    capsys = request.getfixturevalue("capsys")
    layout = records.layout
    code = main(
        ["clean", "--bucket", layout.bucket, "--prefix", layout.prefix, "--migration-id", layout.migration_id]
    )
    err = capsys.readouterr().err
    assert code in (0, 1), err
    return code == 0, err


def _by_sensor_check(request: pytest.FixtureRequest, records: Records) -> tuple[bool, str]:
    request.getfixturevalue("airflow_home")
    from backover_airflow.hooks.migration import MigrationHook

    look = MigrationHook(aws_conn_id=None).restore_completed(records.layout, require_identical=True)
    return look.done, look.message


ENTRY_POINTS: dict[str, Callable[[pytest.FixtureRequest, Records], tuple[bool, str]]] = {
    "lambda": _by_lambda,
    "command": _by_command,
    "sensor": _by_sensor_check,
}


#: A Lambda invocation starts a Python process (the runner): that entry point is in the slow tier.
ENTRIES = [pytest.param(name, marks=pytest.mark.slow) if name == "lambda" else name for name in ENTRY_POINTS]


@pytest.mark.parametrize("entry", ENTRIES)
@pytest.mark.parametrize(("setup", "reason", "sensor_says"), CASES)
def test_every_entry_point_applies_the_same_clean_guard(
    request: pytest.FixtureRequest,
    bucket: str,
    entry: str,
    setup: Callable[[Records], Any],
    reason: str | None,
    sensor_says: str | None,
) -> None:
    migration_id = (
        request.getfixturevalue("source").migration_id if entry == "lambda" else f"g-{uuid.uuid4().hex[:8]}"
    )
    records = Records(MigrationLayout(bucket, PREFIX, migration_id), S3Objects(bucket))
    records.start()
    setup(records)
    allowed, said = ENTRY_POINTS[entry](request, records)
    assert allowed is (reason is None), said
    if reason is not None:
        assert (sensor_says if entry == "sensor" else reason) in said
        assert "\n" not in said.strip()
    if entry != "sensor":
        clean = state.read(records.s3, records.layout.clean_state, CleanRecord)
        if allowed:  # the check that let it through is recorded
            assert clean is not None and clean.guard is not None and clean.guard.passed
        else:
            assert clean is None or clean.guard is None or clean.guard.forced
