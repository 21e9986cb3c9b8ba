"""CloudWatch metrics (``backover.metrics``) on moto: the replicator's figures from its checkpoint
saves, at most one publish per interval, and a publish that fails is one warning, not a failure."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from bson.timestamp import Timestamp

from backover import metrics
from backover.layout import MigrationLayout
from backover.state import ReplicatorCheckpoint


def published(layout: MigrationLayout, name: str, stat: str) -> list[float]:
    """The values of ``name`` for ``layout``'s migration in one period that holds the whole test."""
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
                    "Period": 3 * 3600,
                    "Stat": stat,
                },
            }
        ],
        StartTime=now - timedelta(hours=1),
        EndTime=now + timedelta(hours=2),
    )
    return [float(v) for v in reply["MetricDataResults"][0]["Values"]]


def saved(events_total: int, lag: float) -> ReplicatorCheckpoint:
    """A replicator checkpoint as just saved: ``lag`` seconds between its heartbeat and position."""
    beat = datetime.now(UTC).replace(microsecond=0)
    position = Timestamp(int(beat.timestamp() - lag), 1)
    return ReplicatorCheckpoint("m", events_total=events_total, last_cluster_time=position, heartbeat_at=beat)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_replicator_figures_are_published_once_per_interval_with_their_values(aws_endpoints: str) -> None:
    layout = MigrationLayout("backover-metrics", "backover", f"m-{uuid.uuid4().hex[:8]}")
    clock = Clock()
    with metrics.installed(metrics.Publisher(layout, 60.0, clock=clock)):
        metrics.replicator_saved(saved(0, 2))  # the first save publishes at once: the heartbeat starts
        clock.now += 30
        metrics.replicator_saved(saved(300, 4))  # not due: kept for the next publish
        clock.now += 30
        metrics.replicator_saved(saved(1200, 1))  # due: 1,200 events in 60 s
    assert published(layout, metrics.HEARTBEAT, "Sum") == [2.0]  # two publishes, nothing left at the end
    assert published(layout, metrics.EVENTS_PER_SECOND, "Maximum") == [20.0]
    assert published(layout, metrics.EVENTS_PER_SECOND, "SampleCount") == [1.0]  # none at the first
    assert published(layout, metrics.CAPTURE_LAG, "Maximum") == [4.0]
    assert published(layout, metrics.CAPTURE_LAG, "Minimum") == [1.0]
    assert published(layout, metrics.CAPTURE_LAG, "SampleCount") == [3.0]  # every save counts


def test_what_is_left_at_the_end_is_published_when_the_command_ends(aws_endpoints: str) -> None:
    layout = MigrationLayout("backover-metrics", "backover", f"m-{uuid.uuid4().hex[:8]}")
    clock = Clock()
    with metrics.installed(metrics.Publisher(layout, 60.0, clock=clock)):
        metrics.replicator_saved(saved(10, 0))
        clock.now += 5
        metrics.replicator_saved(saved(60, 3))
    assert published(layout, metrics.HEARTBEAT, "Sum") == [2.0]
    assert published(layout, metrics.EVENTS_PER_SECOND, "Maximum") == [10.0]  # 50 events in 5 s
    assert published(layout, metrics.CAPTURE_LAG, "Maximum") == [3.0]


@pytest.mark.parametrize(
    ("options", "env", "message"),
    [
        pytest.param(
            ["--metrics-seconds", "0"], {}, "--metrics-seconds must be a positive number", id="zero"
        ),
        pytest.param(
            [], {"BACKOVER_METRICS": "maybe"}, "BACKOVER_METRICS='maybe' is not on or off", id="env"
        ),
        pytest.param(
            [],
            {"BACKOVER_METRICS_SECONDS": "soon"},
            "BACKOVER_METRICS_SECONDS='soon' is not a number",
            id="secs",
        ),
    ],
)
def test_a_bad_metrics_setting_is_refused_in_one_line_before_anything_starts(
    bucket: str, options: list[str], env: dict[str, str], message: str, monkeypatch: Any, capsys: Any
) -> None:
    from backover import cli

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    argv = [
        "replicate",
        "--bucket",
        bucket,
        "--migration-id",
        "m1",
        "--source-uri",
        "mongodb://h:1/",
        *options,
    ]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert "Contents" not in boto3.client("s3").list_objects_v2(Bucket=bucket)  # nothing written
