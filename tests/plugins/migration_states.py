"""A migration's S3 folder in moto, written the way the replicator, the restore, the Lambdas and
clean write it (``backover.state`` records through ``backover.s3objects``); shared by the plugin tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bson.timestamp import Timestamp

from backover.layout import MigrationLayout
from backover.lease import Holder, LeaseRecord
from backover.s3objects import S3Objects
from backover.state import ReplicatorCheckpoint, RestoreCheckpoint

PREFIX = "migrations"
F = Timestamp(1_764_270_000, 5)
T0 = Timestamp(1_764_260_000, 1)


def now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Migration:
    """One migration's folder in a moto bucket, and helpers to write its state objects."""

    layout: MigrationLayout
    s3: S3Objects

    @property
    def context(self) -> dict[str, Any]:
        """A task context of a run on this migration (its Params; the environment Variable is
        ``backover``, see :func:`environment`)."""
        return {"params": {"migration_id": self.layout.migration_id, "environment": "backover"}}

    def start(self, t0: Timestamp = T0, started_at: datetime | None = None) -> None:
        self.s3.put_json(
            self.layout.start_state,
            {
                "migration_id": self.layout.migration_id,
                "t0": t0,
                "databases": ["shop"],
                "namespaces": ["shop"],
                "app_user": "orders_app",
                "prior_roles": [{"role": "read", "db": "shop"}],
                "change_streams_enabled": [{"database": "shop", "collection": ""}],
                "source_flavour": "documentdb",
                "started_at": started_at or now(),
            },
        )

    def freeze(self, f: Timestamp = F, frozen_at: datetime | None = None) -> None:
        self.s3.put_json(
            self.layout.freeze_state,
            {
                "migration_id": self.layout.migration_id,
                "f": f,
                "app_user": "orders_app",
                "read_only_roles": [{"role": "read", "db": "shop"}],
                "frozen_at": frozen_at or now(),
            },
        )

    def replicator(
        self,
        state: str = "running",
        *,
        heartbeat_age: float = 0,
        last: Timestamp | None = None,
        drained_until: Timestamp | None = None,
        last_seq: int = 4,
        events: int = 120,
        reason: str | None = None,
    ) -> None:
        cp = ReplicatorCheckpoint(
            migration_id=self.layout.migration_id,
            last_seq=last_seq,
            resume_token={"_data": "8263"},
            last_cluster_time=last,
            events_total=events,
            bytes_total=events * 100,
            state=state,
            heartbeat_at=now() - timedelta(seconds=heartbeat_age),
            reason=reason,
            drained_until=drained_until,
        )
        self.s3.put_json(self.layout.replicator_checkpoint, cp.to_doc())

    def restore(
        self,
        state: str = "running",
        *,
        applied: int = 3,
        events: int = 90,
        reason: str | None = None,
        updated_at: datetime | None = None,
        follow: bool = False,
    ) -> None:
        cp = RestoreCheckpoint(
            migration_id=self.layout.migration_id,
            last_applied_seq=applied,
            events_applied=events,
            state=state,
            updated_at=updated_at or now(),
            reason=reason,
            follow=follow,
        )
        self.s3.put_json(self.layout.restore_checkpoint, cp.to_doc())

    def restore_lease(self, renewed_seconds_ago: float = 0, ttl_seconds: float = 30) -> None:
        """``restore/_lease.json`` as a restore holding it last renewed it."""
        renewed = now() - timedelta(seconds=renewed_seconds_ago)
        record = LeaseRecord(
            "restore", self.layout.migration_id, Holder.this_process(), renewed, renewed, ttl_seconds
        )
        self.s3.put_bytes(self.layout.restore_lease, record.to_bytes())

    def verify(
        self, identical: bool, checked_at: datetime | None = None, **namespaces: dict[str, Any]
    ) -> None:
        self.s3.put_json(
            self.layout.verify_report,
            {
                "identical": identical,
                "checked_at": checked_at or now(),
                "namespaces": {ns.replace("__", "."): result for ns, result in namespaces.items()}
                or {
                    "shop.orders": {
                        "source_count": 3,
                        "target_count": 3,
                        "missing": 0,
                        "extra": 0,
                        "different": 0,
                        "first_differences": [],
                        "indexes_identical": True,
                    }
                },
            },
        )

    def segments(self, count: int) -> None:
        for seq in range(1, count + 1):
            self.s3.put_bytes(self.layout.segment(seq, "zstd"), b"segment")

    def clean(
        self, deleted: int = 4, *, finished: bool = True, verified: bool = True, forced: bool = False
    ) -> None:
        """``state/clean.json`` as the clean Lambda and ``backover clean`` write it (``cleaned_at`` once the
        S3 clean-up finished; ``guard`` = the check that allowed it)."""
        doc: dict[str, Any] = {
            "migration_id": self.layout.migration_id,
            "guard": {
                "restore_state": "completed" if verified else "running",
                "verified": verified,
                "replicator_state": "drained",
                "frozen": True,
                "forced": forced,
                "checked_at": now(),
            },
            "change_streams_disabled": [{"database": "shop", "collection": ""}],
        }
        if finished:
            doc.update(cleaned_at=now(), segments_deleted=deleted, checkpoints_deleted=2, backups_kept=True)
        self.s3.put_json(self.layout.clean_state, doc)


def environment(bucket: str, worker: str, **overrides: Any) -> dict[str, Any]:
    """An environment Variable's JSON, shaped like ``backover sandbox env``'s."""
    env: dict[str, Any] = {
        "bucket": bucket,
        "prefix": PREFIX,
        "worker_instance_id": worker,
        "lambda_names": {"start": "backover-start", "restore": "backover-restore", "clean": "backover-clean"},
        "secret_ids": {"documentdb": "sb/docdb-master", "mongodb": "sb/mongo-master", "app_user": "sb/app"},
        "app_user": "orders_app",
        "databases": ["shop", "inventory"],
        "poll_interval_seconds": 1,
        "backover_command": "backover",
    }
    env.update(overrides)
    return env


def task_log(capfd: Any) -> str:
    """What the operators logged since the last call (Airflow's task logger writes to the process's
    standard output outside a task runner, so the file-descriptor capture sees it)."""
    out, err = capfd.readouterr()
    return out + err
