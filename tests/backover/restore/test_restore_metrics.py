"""``backover restore --follow --metrics``: the follow restore publishes how far MongoDB trails the
capture (``RestoreLagSeconds``) and the age of the oldest change not yet applied to CloudWatch (moto)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import bson
import pytest
from bson.timestamp import Timestamp
from restore_streams import built_event

from backover import cli, metrics

PER_SEGMENT = 5


def aged(db: str, first: int, ages: range) -> list[bytes]:
    """Inserts of ``_id`` ``first``.. whose cluster times are ``ages`` seconds ago."""
    now = int(time.time())
    out = []
    for i, age in enumerate(ages):
        event = bson.decode(built_event("insert", "c", first + i, db=db, full={"_id": first + i}))
        event["clusterTime"] = Timestamp(now - age, 1)
        out.append(bson.encode(event))
    return out


def values(layout: Any, name: str, stat: str) -> float:
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    reply = boto3.client("cloudwatch").get_metric_data(
        MetricDataQueries=[
            {
                "Id": "m",
                "MetricStat": {
                    "Metric": {
                        "Namespace": metrics.NAMESPACE,
                        "MetricName": name,
                        "Dimensions": [
                            {"Name": "Prefix", "Value": layout.prefix},
                            {"Name": "MigrationId", "Value": layout.migration_id},
                        ],
                    },
                    "Period": 3 * 3600,  # one period holds the whole test
                    "Stat": stat,
                },
            }
        ],
        StartTime=now - timedelta(hours=1),
        EndTime=now + timedelta(hours=2),
    )
    (value,) = reply["MetricDataResults"][0]["Values"]
    return float(value)


@pytest.mark.slow  # a restore through the command line, in-process
def test_a_follow_restore_publishes_its_lag_and_the_oldest_unapplied_change(
    sides, migration, restore
) -> None:
    # segment 1 (300..296 s ago) applied by an earlier restore; then segments 2 (200.. s ago) and 3
    # (100.. s ago) land and the replicator drains
    migration.write_segments(aged(sides.db, 0, range(300, 295, -1)), PER_SEGMENT, state="running")
    restore()
    migration.put_segment(2, aged(sides.db, 10, range(200, 195, -1)))
    migration.put_segment(3, aged(sides.db, 20, range(100, 95, -1)))
    migration.put_checkpoint(3, 3 * PER_SEGMENT, "drained")
    layout = migration.layout
    argv = [
        "restore",
        "--follow",
        "--bucket",
        layout.bucket,
        "--prefix",
        layout.prefix,
        "--migration-id",
        layout.migration_id,
        "--target-uri",
        sides.target_uri_text,
        "--poll-seconds",
        "0.05",
        "--metrics",
        "--metrics-seconds",
        "3600",
    ]
    assert cli.main(argv) == 0
    assert migration.restore_checkpoint()["state"] == "completed"
    # published twice: at its first checkpoint save (segments 2 and 3 left) and at the end (none)
    assert values(layout, metrics.RESTORE_LAG, "SampleCount") == 2.0
    # MongoDB was as of segment 1's last change, 296 s before the first save
    assert 296.0 <= values(layout, metrics.RESTORE_LAG, "Maximum") <= 296.0 + 30
    # the oldest change not yet applied was segment 2's first, 200 s old
    assert 200.0 <= values(layout, metrics.OLDEST_UNREPLAYED, "Maximum") <= 200.0 + 30
    # completed: nothing left, both 0
    assert values(layout, metrics.RESTORE_LAG, "Minimum") == 0.0
    assert values(layout, metrics.OLDEST_UNREPLAYED, "Minimum") == 0.0
