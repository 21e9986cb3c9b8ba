"""The replicator trusts its checkpoint only when its segments agree: a checkpoint ahead of its
segments (or whose last segment is not its own) is refused with one line (exit 1) and nothing
written, drained or not; a malformed checkpoint is one line naming it, never a traceback. A
namespace dropped after T0 does not stop the first start when the migration names it."""

from __future__ import annotations

import uuid

import boto3
import pytest
from bson.raw_bson import RawBSONDocument
from pymongo import MongoClient
from replicate_testkit import (
    checkpoint,
    enable_change_streams,
    new_layout,
    operation_time,
    put_captured,
    put_segment,
    read_events,
    replicate_argv,
    request_drain,
    start_time,
    write_start,
)

from backover import cli, segments
from backover.layout import MigrationLayout
from backover.s3objects import S3Objects


def _contents(bucket: str) -> dict[str, str]:
    return {
        o["Key"]: o["ETag"] for o in boto3.client("s3").list_objects_v2(Bucket=bucket).get("Contents", [])
    }


_argv = replicate_argv


@pytest.fixture
def source(standins: dict, standin_password: str) -> tuple[str, str]:
    uri = standins["documentdb"].uri("root", standin_password)
    db = f"cpc_{uuid.uuid4().hex[:8]}"
    with MongoClient(uri) as client:
        enable_change_streams(client, db)
        client[db].items.insert_one({"_id": 1})
    return uri, db


def _remove_segment(s3: S3Objects, layout: MigrationLayout, seq: int) -> None:
    s3.delete_keys([layout.segment(seq, "zstd")])


def _foreign_last_segment(s3: S3Objects, layout: MigrationLayout, seq: int) -> None:
    """Segment ``seq`` replaced by the same events as another migration's segment."""
    key = layout.segment(seq, "zstd")
    body, meta = s3.get_object(key)
    raw = segments.verified_events(body, segments.SegmentInfo.from_metadata(meta, key), "zstd", key)
    put_segment(s3, layout, seq, list(segments.iter_raw_events(raw)), migration_id="someone-else")


@pytest.mark.parametrize("state", ["running", "drained"])
@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        pytest.param(
            _remove_segment, "is ahead of the segments: it counts segments up to 3", id="last-segment-missing"
        ),
        pytest.param(_foreign_last_segment, "belongs to migration 'someone-else'", id="last-segment-foreign"),
    ],
)
def test_a_checkpoint_its_segments_do_not_back_is_refused(
    source, bucket: str, capsys, state: str, damage, reason: str
) -> None:
    uri, db = source
    s3 = S3Objects(bucket)
    layout = new_layout(bucket)
    put_captured(s3, layout, 3, state=state)
    damage(s3, layout, 3)
    before = _contents(bucket)
    assert cli.main(_argv(layout, uri, db)) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("backover replicate: ") and "\n" not in err and reason in err, err
    assert _contents(bucket) == before


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        pytest.param(b"{not json", "is not a valid JSON state file", id="not-json"),
        pytest.param(
            b'{"migration_id": "M", "last_seq": "7"}', "has an invalid last_seq '7'", id="last-seq-a-string"
        ),
        pytest.param(
            b'{"migration_id": "M", "events_total": [1]}',
            "has an invalid events_total [1]",
            id="events-a-list",
        ),
        pytest.param(b'{"migration_id": "M", "state": 3}', "has an unknown state 3", id="state-a-number"),
        pytest.param(
            b'{"migration_id": "M", "heartbeat_at": "yesterday"}',
            "has an invalid heartbeat_at",
            id="heartbeat-a-string",
        ),
        pytest.param(b'{"migration_id": "M", "last_seq": 2}', "has no last_cluster_time", id="no-position"),
    ],
)
def test_a_malformed_checkpoint_is_one_line_naming_it(
    source, bucket: str, capsys, body: bytes, reason: str
) -> None:
    uri, db = source
    s3 = S3Objects(bucket)
    layout = new_layout(bucket)
    s3.put_bytes(layout.replicator_checkpoint, body.replace(b'"M"', f'"{layout.migration_id}"'.encode()))
    before = _contents(bucket)
    assert cli.main(_argv(layout, uri, db, "--start-at", "1:1")) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("backover replicate: ") and "\n" not in err, err
    assert layout.replicator_checkpoint in err and reason in err, err
    assert _contents(bucket) == before
    assert (
        cli.main(
            ["status", "--bucket", bucket, "--prefix", layout.prefix, "--migration-id", layout.migration_id]
        )
        == 1
    )
    assert "Traceback" not in capsys.readouterr().err


def test_a_namespace_dropped_after_t0_does_not_stop_the_first_start(
    standins: dict, standin_password: str, bucket: str
) -> None:
    """One of the migration's databases, dropped after T0 and before the replicator's first start:
    the start goes on (a warning), and its changes since T0, the drop included, are captured.
    (Two databases: the cluster is watched; on the MongoDB flavour, so that no test enables the
    shared DocumentDB stand-in's cluster-wide change streams.)"""
    uri = standins["mongodb"].uri("root", standin_password)
    db = f"cpc_{uuid.uuid4().hex[:8]}"
    dropped = f"{db}_gone"
    s3 = S3Objects(bucket)
    layout = new_layout(bucket)
    with MongoClient(uri) as client:
        client[db].items.insert_one({"_id": 1})
        client[dropped].items.insert_one({"_id": 1})
        t0 = start_time(client)
        write_start(s3, layout, t0, [db, dropped])
        client[dropped].items.insert_one({"_id": 2})
        client.drop_database(dropped)
        client[db].items.insert_one({"_id": 3})
        request_drain(s3, layout, operation_time(client))
        client.drop_database(db)
    argv = _argv(layout, uri, db)
    argv = argv[: argv.index("--namespace")] + argv[argv.index("--namespace") + 2 :]
    assert cli.main(argv) == 0
    assert checkpoint(s3, layout).state == "drained"
    seen = [
        (RawBSONDocument(e)["operationType"], RawBSONDocument(e)["ns"]["db"]) for e in read_events(s3, layout)
    ]
    assert ("insert", dropped) in seen and ("dropDatabase", dropped) in seen and seen[-1] == ("insert", db)


def test_a_missing_namespace_the_migration_does_not_name_is_still_refused(
    source, bucket: str, capsys
) -> None:
    uri, db = source
    s3 = S3Objects(bucket)
    layout = new_layout(bucket)
    with MongoClient(uri) as client:
        write_start(s3, layout, start_time(client), [db])
    before = _contents(bucket)
    assert cli.main(_argv(layout, uri, f"{db}_typo")) == 2
    assert f"there is no database '{db}_typo'" in capsys.readouterr().err
    assert _contents(bucket) == before
