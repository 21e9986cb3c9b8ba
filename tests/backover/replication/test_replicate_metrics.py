"""``backover replicate --metrics``: a capture publishes its lag, events/s and heartbeat to
CloudWatch (moto), and a CloudWatch that cannot be reached neither stops nor floods it."""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from pymongo import MongoClient
from replicate_testkit import (
    checkpoint,
    enable_change_streams,
    new_layout,
    operation_time,
    replicate_argv,
    request_drain,
    start_time,
    write_start,
)

from backover import cli, metrics
from backover.layout import MigrationLayout
from backover.s3objects import S3Objects

DOCUMENTS = 300


argv = replicate_argv


@pytest.fixture
def captured(standins: dict, standin_password: str, bucket: str) -> tuple[MigrationLayout, str, str]:
    """A migration whose source took ``DOCUMENTS`` inserts after T0 and then a drain request."""
    uri = standins["documentdb"].uri("root", standin_password)
    db = f"met_{uuid.uuid4().hex[:8]}"
    layout = new_layout(bucket)
    s3 = S3Objects(bucket)
    with MongoClient(uri) as client:
        enable_change_streams(client, db)
        write_start(s3, layout, start_time(client), [db])
        client[db].items.insert_many([{"_id": i} for i in range(DOCUMENTS)])
        request_drain(s3, layout, operation_time(client))
    yield layout, uri, db
    with MongoClient(uri) as client:
        client.drop_database(db)


def figures(layout: MigrationLayout, name: str) -> dict[str, float]:
    """The last hour of ``name`` for the migration, as CloudWatch aggregates it (the query's period
    boundaries may split the run in two periods: their values are combined)."""
    now = datetime.now(UTC)
    metric = {
        "Namespace": metrics.NAMESPACE,
        "MetricName": name,
        "Dimensions": [
            {"Name": "Prefix", "Value": layout.prefix},
            {"Name": "MigrationId", "Value": layout.migration_id},
        ],
    }
    reply = boto3.client("cloudwatch").get_metric_data(
        MetricDataQueries=[
            {"Id": stat.lower(), "MetricStat": {"Metric": metric, "Period": 3600, "Stat": stat}}
            for stat in ("Sum", "Maximum", "Minimum", "SampleCount")
        ],
        StartTime=now - timedelta(hours=1),
        EndTime=now + timedelta(minutes=5),
    )
    combine = {"sum": sum, "maximum": max, "minimum": min, "samplecount": sum}  # the periods' values
    return {r["Id"]: float(combine[r["Id"]](r["Values"])) for r in reply["MetricDataResults"] if r["Values"]}


@pytest.mark.slow  # a capture through the command line, in-process
def test_a_capture_publishes_its_lag_events_per_second_and_heartbeat(captured: Any) -> None:
    layout, uri, db = captured
    began = time.monotonic()
    assert cli.main(argv(layout, uri, db, "--metrics", "--metrics-seconds", "3600")) == 0
    took = time.monotonic() - began
    assert checkpoint(S3Objects(layout.bucket), layout).state == "drained"

    names = {
        m["MetricName"]: {d["Name"]: d["Value"] for d in m["Dimensions"]}
        for m in boto3.client("cloudwatch").list_metrics(
            Namespace=metrics.NAMESPACE,
            Dimensions=[{"Name": "MigrationId", "Value": layout.migration_id}],
        )["Metrics"]
    }
    mine = {"Prefix": layout.prefix, "MigrationId": layout.migration_id}
    assert names == {metrics.CAPTURE_LAG: mine, metrics.EVENTS_PER_SECOND: mine, metrics.HEARTBEAT: mine}
    # one publish at the first checkpoint save, one more when the command ended (interval 1 h)
    assert figures(layout, metrics.HEARTBEAT)["sum"] == 2.0
    rate = figures(layout, metrics.EVENTS_PER_SECOND)
    assert rate["samplecount"] == 1.0  # none at the first publish: no interval yet
    assert DOCUMENTS / took <= rate["maximum"]  # every event over less time than the run took
    lag = figures(layout, metrics.CAPTURE_LAG)
    assert lag["samplecount"] >= 2  # every checkpoint save is a sample
    # caught up: the position trails the heartbeat by less than the run took (plus a second's rounding)
    assert 0.0 <= lag["minimum"] <= lag["maximum"] <= took + 1.0


@pytest.mark.slow  # a capture through the command line, in-process
def test_a_cloudwatch_that_cannot_be_reached_is_one_warning_and_the_capture_goes_on(
    captured: Any, monkeypatch: Any, caplog: Any, standin_password: str
) -> None:
    layout, uri, db = captured
    monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDWATCH", "http://127.0.0.1:9")  # nothing listens there
    with caplog.at_level(logging.WARNING, logger="backover.metrics"):
        assert cli.main(argv(layout, uri, db, "--metrics", "--metrics-seconds", "0.05")) == 0
    assert checkpoint(S3Objects(layout.bucket), layout).state == "drained"
    warnings = [r.getMessage() for r in caplog.records if r.name == "backover.metrics"]
    assert len(warnings) == 1, warnings  # several publishes failed: one line
    assert warnings[0].startswith("could not publish CloudWatch metrics (EndpointConnectionError")
    assert "the job goes on" in warnings[0] and standin_password not in warnings[0]
