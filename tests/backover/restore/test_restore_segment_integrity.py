"""Segments are proven whole before anything from them is applied; only 1..last_seq are read."""

from __future__ import annotations

import pytest
from restore_streams import built_event, raw_contents

from backover.errors import JobFailed


def inserts(db: str, ids: range) -> list[bytes]:
    return [built_event("insert", "c", i, db=db, full={"_id": i, "v": "x" * 20}) for i in ids]


def ids_on_target(sides) -> set[int]:
    return {doc["_id"] for doc in sides.target[sides.db].c.find({}, {"_id": 1})}


@pytest.mark.parametrize(
    ("compression", "damage", "reason"),
    [
        pytest.param(
            "none",
            lambda body: body[:40] + bytes([body[40] ^ 0x01]) + body[41:],
            "is corrupt: SHA-256",
            id="changed-byte",
        ),
        pytest.param("none", lambda body: body[:-7], "is truncated", id="truncated"),
        pytest.param(
            "zstd", lambda body: body[: len(body) // 2], "is corrupt: cannot decompress", id="zstd-cut"
        ),
        pytest.param("gzip", lambda body: body[:20] + b"\xff" * 8 + body[28:], "corrupt", id="gzip-garbled"),
    ],
)
def test_a_damaged_segment_stops_the_restore_and_nothing_from_it_is_applied(
    sides, migration, restore, compression, damage, reason
) -> None:
    for seq, ids in ((1, range(0, 5)), (2, range(5, 10)), (3, range(10, 15))):
        migration.put_segment(seq, inserts(sides.db, ids), compression)
    migration.put_checkpoint(3, 15)
    key = migration.layout.segment(2, compression)
    body, metadata = migration.s3.get_object(key)
    migration.s3.put_bytes(key, damage(body), metadata)

    with pytest.raises(JobFailed) as failure:
        restore(window=100)  # one window would span the segments: segment 1 is applied first
    assert key in str(failure.value) and reason in str(failure.value)
    assert ids_on_target(sides) == set(range(0, 5))
    checkpoint = migration.restore_checkpoint()
    assert (
        checkpoint["state"] == "failed"
        and checkpoint["last_applied_seq"] == 1
        and key in checkpoint["reason"]
    )

    migration.put_segment(2, inserts(sides.db, range(5, 10)), compression)  # the replicator's good copy
    restore(window=100)
    assert ids_on_target(sides) == set(range(15))
    assert migration.restore_checkpoint()["state"] == "completed"


def test_segments_above_last_seq_are_orphans_and_never_read(sides, migration, restore) -> None:
    migration.put_segment(1, inserts(sides.db, range(3)))
    migration.put_segment(2, inserts(sides.db, range(3, 6)), "gzip")
    migration.put_segment(3, inserts(sides.db, range(100, 103)))  # a crashed replicator's orphan
    migration.put_checkpoint(2, 6, state="running")
    result = restore()
    assert ids_on_target(sides) == set(range(6))
    assert result.last_seq == 2 and migration.restore_checkpoint()["last_applied_seq"] == 2


def test_a_missing_segment_is_an_error_naming_it(sides, migration, restore) -> None:
    migration.put_segment(1, inserts(sides.db, range(3)))
    migration.put_segment(3, inserts(sides.db, range(3, 6)))
    migration.put_checkpoint(3, 6)
    with pytest.raises(JobFailed, match=r"000000000002\.bson\.zst \(or \.gz/\.bson\) is missing"):
        restore()
    assert raw_contents(sides.target, sides.db) == {}


def test_a_segment_without_metadata_is_refused(sides, migration, restore) -> None:
    key = migration.put_segment(1, inserts(sides.db, range(3)))
    body, _ = migration.s3.get_object(key)
    migration.s3.put_bytes(key, body, {})
    migration.put_checkpoint(1, 3)
    with pytest.raises(JobFailed, match="incomplete metadata"):
        restore()
    assert raw_contents(sides.target, sides.db) == {}


def test_every_compression_restores(sides, migration, restore) -> None:
    for seq, compression in enumerate(("zstd", "gzip", "none"), start=1):
        migration.put_segment(seq, inserts(sides.db, range(seq * 10, seq * 10 + 3)), compression)
    migration.put_checkpoint(3, 9)
    restore()
    assert ids_on_target(sides) == {10, 11, 12, 20, 21, 22, 30, 31, 32}
