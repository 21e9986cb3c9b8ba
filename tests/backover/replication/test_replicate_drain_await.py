"""A drain does not wait a whole ``--await-ms`` for its last, empty batch (issue 16): once the
drain is requested, getMores wait ``DRAIN_AWAIT_MS`` at most, and every event up to F is still
captured exactly once."""

from __future__ import annotations

import time
import uuid

from pymongo import MongoClient
from replicate_testkit import (
    config_for,
    enable_change_streams,
    new_layout,
    operation_time,
    raw_target,
    read_events,
    reference_events,
    request_drain,
    start_thread,
    start_time,
    tokens_of,
    write_start,
)

from backover.s3objects import S3Objects

AWAIT_MS = 4000  # far above what the drain's end may take


def test_a_drained_backlog_ends_without_waiting_out_the_await(
    standins: dict, standin_password: str, bucket: str
) -> None:
    uri = standins["documentdb"].uri("root", standin_password)
    db = f"drain_{uuid.uuid4().hex[:8]}"
    s3 = S3Objects(bucket)
    layout = new_layout(bucket)
    with MongoClient(uri) as client:
        enable_change_streams(client, db)
        t0 = start_time(client)
        write_start(s3, layout, t0, [db])
        client[db].items.insert_many([{"_id": i} for i in range(500)])
        until = operation_time(client)
        request_drain(s3, layout, until)  # the backlog is there and F is past, as after a freeze
        began = time.monotonic()
        result = start_thread(config_for(layout, uri, await_ms=AWAIT_MS)).wait(60)
        seconds = time.monotonic() - began
        expected = reference_events(raw_target(client, db), t0, until)
    assert result.state == "drained" and result.drained_until == until
    assert tokens_of(read_events(s3, layout)) == tokens_of(expected) and len(expected) == 500
    # Before: the last getMore waited the whole await (4 s) for an event that never came.
    assert seconds < AWAIT_MS / 1000 - 1, f"the drain took {seconds:.2f}s (await {AWAIT_MS} ms)"
