"""The restore applies only this migration's own segments, in their own places: a segment copied
from another migration, or moved to another sequence number, passes its SHA-256 but is refused;
so are segments out of cluster-time order, segments without identity metadata, a replicator
checkpoint ahead of its segments or of another migration, and a second restore while one runs."""

from __future__ import annotations

import time

import bson
import pytest
from bson.raw_bson import RawBSONDocument
from bson.timestamp import Timestamp
from restore_streams import built_event, new_migration, raw_contents

from backover import segments
from backover.errors import JobFailed, UsageError
from backover.lease import Lease, LeaseHeld, LeaseRecord
from backover.restore import RestoreConfig, run_restore
from backover.state import ReplicatorCheckpoint


def inserts(db: str, ids: range, seconds: int) -> list[bytes]:
    """Insert events at cluster times ``seconds:1``, ``seconds:2`` ..."""
    events = []
    for n, i in enumerate(ids):
        raw = RawBSONDocument(built_event("insert", "c", i, db=db, full={"_id": i}))
        events.append(bson.encode({**{k: raw[k] for k in raw}, "clusterTime": Timestamp(seconds, n + 1)}))
    return events


def ids_on_target(sides) -> set[int]:
    return {doc["_id"] for doc in sides.target[sides.db].c.find({}, {"_id": 1})}


def three_segments(migration, db: str) -> None:
    for seq in (1, 2, 3):
        migration.put_segment(seq, inserts(db, range(seq * 10, seq * 10 + 3), 1_700_000_000 + seq))
    migration.put_checkpoint(3, 9)


def test_a_segment_copied_from_another_migration_is_refused(sides, migration, restore, bucket) -> None:
    three_segments(migration, sides.db)
    other = new_migration(bucket)
    other.put_segment(2, inserts(sides.db, range(500, 503), 1_700_000_002))
    key = migration.layout.segment(2, "zstd")
    body, meta = other.s3.get_object(other.layout.segment(2, "zstd"))
    migration.s3.put_bytes(key, body, meta)  # passes its own SHA-256

    with pytest.raises(JobFailed, match=f"segment {key} belongs to migration '{other.layout.migration_id}'"):
        restore(window=100)
    assert ids_on_target(sides) == set(range(10, 13))  # segment 1 only; nothing of the copy
    assert migration.restore_checkpoint()["last_applied_seq"] == 1


def test_segments_swapped_between_sequence_numbers_are_refused(sides, migration, restore) -> None:
    three_segments(migration, sides.db)
    s3, layout = migration.s3, migration.layout
    one, two, three = (s3.get_object(layout.segment(seq, "zstd")) for seq in (1, 2, 3))
    s3.put_bytes(layout.segment(1, "zstd"), *two)
    s3.put_bytes(layout.segment(2, "zstd"), *one)
    with pytest.raises(JobFailed, match=r"000000000001\.bson\.zst is segment 2, not 1"):
        restore(window=100)
    assert raw_contents(sides.target, sides.db) == {}
    s3.put_bytes(layout.segment(1, "zstd"), *one)
    s3.put_bytes(layout.segment(2, "zstd"), *three)  # the last one copied one place down
    with pytest.raises(JobFailed, match=r"000000000002\.bson\.zst is segment 3, not 2"):
        restore(window=100)
    assert ids_on_target(sides) == set(range(10, 13))


def test_segments_out_of_cluster_time_order_are_refused(sides, migration, restore) -> None:
    migration.put_segment(1, inserts(sides.db, range(3), 1_700_000_005))
    migration.put_segment(2, inserts(sides.db, range(3, 6), 1_700_000_001))  # starts before 1 ended
    migration.put_checkpoint(2, 6)
    with pytest.raises(
        JobFailed, match=r"000000000002\.bson\.zst starts at 1700000001:1, before segment 1 ended"
    ):
        restore(window=100)
    assert ids_on_target(sides) == set(range(3))


def test_metadata_cluster_times_must_match_the_events(sides, migration, restore) -> None:
    events = inserts(sides.db, range(3), 1_700_000_001)
    body, info = segments.build(
        events,
        Timestamp(1_700_000_000, 1),
        Timestamp(1_700_000_001, 3),
        "zstd",
        migration_id=migration.layout.migration_id,
        seq=1,
    )
    migration.s3.put_bytes(migration.layout.segment(1, "zstd"), body, info.metadata())
    migration.last_times[1] = Timestamp(1_700_000_001, 3)
    migration.put_checkpoint(1, 3)
    with pytest.raises(JobFailed, match="its metadata says 1700000000:1 to 1700000001:3"):
        restore()
    assert raw_contents(sides.target, sides.db) == {}


def test_a_segment_without_identity_metadata_is_refused(sides, migration, restore) -> None:
    key = migration.put_segment(1, inserts(sides.db, range(3), 1_700_000_001))
    body, meta = migration.s3.get_object(key)
    old = {k: v for k, v in meta.items() if k not in (segments.META_MIGRATION, segments.META_SEQ)}
    migration.s3.put_bytes(key, body, old)
    migration.put_checkpoint(1, 3)
    with pytest.raises(JobFailed, match="has no migration-id or seq metadata"):
        restore()
    assert raw_contents(sides.target, sides.db) == {}


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        pytest.param(
            lambda cp: setattr(cp, "last_seq", 4),
            "is ahead of the segments: it counts segments up to 4",
            id="ahead-of-segments",
        ),
        pytest.param(
            lambda cp: setattr(cp, "last_cluster_time", Timestamp(1_700_000_002, 1)),
            "after the checkpoint's last_cluster_time 1700000002:1",
            id="behind-its-last-segment",
        ),
        pytest.param(lambda cp: setattr(cp, "last_seq", "3"), "has an invalid last_seq '3'", id="wrong-type"),
    ],
)
def test_an_inconsistent_replicator_checkpoint_is_refused(sides, migration, restore, change, reason) -> None:
    three_segments(migration, sides.db)
    doc = migration.s3.get_json(migration.layout.replicator_checkpoint)
    cp = ReplicatorCheckpoint.from_doc(doc)
    change(cp)
    migration.s3.put_json(migration.layout.replicator_checkpoint, cp.to_doc())
    with pytest.raises(JobFailed) as refused:
        restore()
    assert reason in str(refused.value) and "\n" not in str(refused.value)
    assert raw_contents(sides.target, sides.db) == {} and migration.restore_checkpoint() is None


def test_another_migrations_replicator_checkpoint_is_refused(sides, migration, restore) -> None:
    three_segments(migration, sides.db)
    doc = migration.s3.get_json(migration.layout.replicator_checkpoint)
    migration.s3.put_json(migration.layout.replicator_checkpoint, {**doc, "migration_id": "someone-else"})
    with pytest.raises(UsageError, match="belongs to migration 'someone-else'"):
        restore()
    with pytest.raises(UsageError, match="belongs to migration 'someone-else'"):
        run_restore(RestoreConfig(layout=migration.layout, dry_run=True), s3=migration.s3)
    assert raw_contents(sides.target, sides.db) == {}


def test_a_second_restore_is_refused_while_one_holds_the_lease(sides, migration, restore) -> None:
    three_segments(migration, sides.db)
    live = Lease(
        migration.s3,
        migration.layout.restore_lease,
        role="restore",
        migration_id=migration.layout.migration_id,
    ).acquire()
    with pytest.raises(LeaseHeld, match=f"another restore holds .*pid {live.holder.pid}"):
        restore()
    assert raw_contents(sides.target, sides.db) == {} and migration.restore_checkpoint() is None
    live.release()
    result = restore()
    assert result.state == "completed" and ids_on_target(sides) == {10, 11, 12, 20, 21, 22, 30, 31, 32}
    assert migration.s3.head(migration.layout.restore_lease) is None  # released at the end


def test_a_stale_restore_lease_is_taken_over(sides, migration, restore) -> None:
    three_segments(migration, sides.db)
    Lease(
        migration.s3,
        migration.layout.restore_lease,
        role="restore",
        migration_id=migration.layout.migration_id,
        ttl_seconds=0.4,
        renew_seconds=0.1,
    ).acquire()  # its holder stopped renewing
    time.sleep(0.5)
    assert restore().state == "completed"
    got = migration.s3.get_versioned(migration.layout.restore_lease)
    assert got is None or LeaseRecord.parse(got[0]) is None
