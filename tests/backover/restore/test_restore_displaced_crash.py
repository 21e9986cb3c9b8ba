"""Documents moved aside for a unique key survive a crash at any point, and a restart never writes
back a copy that a later event had replaced (issue 10, finding 1).

The crash is injected at the exact S3 write where a kill hurts most (a ``BaseException`` raised by
the S3 client's PUT, which the restore cannot catch, like SIGKILL): the soak benchmark
(``benchmarks/bench_kill9_soak.py``) covers random kills of the real process.
"""

from __future__ import annotations

import time

import bson
import pytest
from bson.timestamp import Timestamp
from pymongo import MongoClient
from restore_streams import built_event, raw_contents

from backover.errors import JobFailed
from backover.restore import RestoreConfig, run_restore
from backover.restore.displaced import Displaced
from backover.s3objects import S3Objects


class Killed(BaseException):
    """The process died here (not an Exception: nothing in the restore handles it)."""


class CrashingS3(S3Objects):
    """moto's S3, dying at the first (conditional) PUT for which ``crash_at(key, s3)`` says so."""

    def __init__(self, bucket: str, crash_at) -> None:
        super().__init__(bucket)
        self.crash_at = crash_at
        self.armed = True

    def put_if(self, key, data, **options) -> str:
        if self.armed and self.crash_at(key, self):
            self.armed = False
            raise Killed(key)
        return super().put_if(key, data, **options)


def users_with_unique_email(sides) -> None:
    for client in (sides.source, sides.target):
        client[sides.db].users.create_index("email", unique=True)
    sides.target[sides.db].users.insert_one({"_id": 1, "email": "k", "v": "y"})  # the state at T0


def stream(db: str) -> list[list[bytes]]:
    """Segments of a history with updateLookup images read late (as DocumentDB's are):

    t1: user 2 renamed (its image, read after t3, already holds "k", which user 1 still holds
    on the target) -> user 1 is moved aside; DDL; t2: user 1 leaves "k" (brings it back);
    t3: user 2 takes "k"; t4: user 2 leaves it; t5: user 1 changes v; DDL in the same segment
    (so no checkpoint comes between the bring-back and the DDL record).
    """

    def update(_id, full):
        return built_event("update", "users", _id, db=db, full=full)

    return [
        [
            built_event("insert", "users", 2, db=db, full={"_id": 2, "email": "j"}),
            update(2, {"_id": 2, "email": "k", "name": "z"}),
        ],
        [built_event("drop", "other1", db=db)],
        [
            update(1, {"_id": 1, "email": "free", "v": "y"}),
            update(2, {"_id": 2, "email": "k", "name": "z"}),
            update(2, {"_id": 2, "email": "other", "name": "z"}),
            update(1, {"_id": 1, "email": "free", "v": "x"}),
            built_event("drop", "other2", db=db),
        ],
    ]


FINAL = {1: {"_id": 1, "email": "free", "v": "x"}, 2: {"_id": 2, "email": "other", "name": "z"}}


def write(migration, segments: list[list[bytes]]) -> None:
    for seq, events in enumerate(segments, start=1):
        migration.put_segment(seq, events)
    migration.put_checkpoint(len(segments), sum(map(len, segments)), "drained")


def restore(migration, sides, s3: S3Objects | None = None):
    config = RestoreConfig(
        layout=migration.layout,
        target=sides.target_uri,
        workers=1,
        window=1,
        checkpoint_seconds=0.0,
        progress_seconds=60.0,
    )
    return run_restore(config, s3=s3 or migration.s3)


def users(sides) -> dict[int, dict]:
    return {doc["_id"]: doc for doc in sides.target[sides.db].users.find()}


def test_a_crash_after_a_ddl_record_never_writes_back_a_replaced_copy(sides, migration) -> None:
    users_with_unique_email(sides)
    write(migration, stream(sides.db))
    ddl_key = migration.layout.key("restore/_ddl.json")

    def after_second_ddl(key, s3) -> bool:  # the first write after the second DDL is recorded applied
        record = s3.get_json(ddl_key)
        return key != ddl_key and bool(record) and record["seq"] == 3 and record["state"] == "applied"

    with pytest.raises(Killed):
        restore(migration, sides, CrashingS3(migration.layout.bucket, after_second_ddl))
    assert migration.restore_checkpoint()["last_applied_seq"] == 2  # the first DDL's checkpoint
    assert migration.s3.get_json(ddl_key)["state"] == "applied"  # a restart skips all of segment 3

    result = restore(migration, sides)
    assert result.state == "completed"
    assert users(sides) == FINAL  # user 1 is {free, x}: not the copy moved aside at t1 ({k, y})
    saved = Displaced.from_bytes(migration.s3.get_bytes(migration.layout.key("restore/displaced.bson")))
    assert len(saved) == 0


def test_a_crash_right_after_a_holder_left_the_target_loses_nothing(sides, migration) -> None:
    users_with_unique_email(sides)
    write(migration, stream(sides.db))

    def first_write_after_removal(key, s3) -> bool:  # the holder has just left the target
        return sides.target[sides.db].users.find_one({"_id": 1}) is None

    # the kept copy is written before the holder is removed, so whatever dies next, it is in S3
    with pytest.raises(Killed):
        restore(migration, sides, CrashingS3(migration.layout.bucket, first_write_after_removal))
    kept = Displaced.from_bytes(migration.s3.get_bytes(migration.layout.key("restore/displaced.bson")))
    assert len(kept) == 1 and next(kept.items())[2] == bson.encode({"_id": 1, "email": "k", "v": "y"})

    assert restore(migration, sides).state == "completed"
    assert users(sides) == FINAL


def test_a_saved_set_older_than_the_records_is_refused_not_used(sides, migration) -> None:
    users_with_unique_email(sides)
    write(migration, stream(sides.db))
    key = migration.layout.key("restore/displaced.bson")
    saved = {}

    class Recording(S3Objects):
        def put_if(self, k, data, **options) -> str:
            if k == key and "old" not in saved and len(Displaced.from_bytes(data)) == 1:
                saved["old"] = data  # the first saved state: user 1 moved aside
            return super().put_if(k, data, **options)

    restore(migration, sides, Recording(migration.layout.bucket))
    assert "old" in saved
    migration.s3.put_bytes(key, saved["old"])  # an old copy put back (by hand, or a second process)
    checkpoint = migration.restore_checkpoint()
    checkpoint["state"] = "running"
    migration.s3.put_json(migration.layout.restore_checkpoint, checkpoint)
    with pytest.raises(
        JobFailed,
        match=r"restore/displaced.bson is generation 1 but the restore's records rely "
        r"on generation \d+: the restore state is inconsistent",
    ):
        restore(migration, sides)
    assert users(sides) == FINAL  # nothing written back


@pytest.mark.parametrize(
    ("key", "body", "message"),
    [
        pytest.param(
            "restore/_checkpoint.json",
            b"{not json",
            r"restore/_checkpoint.json is not a valid JSON state file",
            id="checkpoint-not-json",
        ),
        pytest.param(
            "restore/_checkpoint.json",
            b'{"migration_id": "MIG", "last_applied_seq": "3"}',
            r"restore/_checkpoint.json has an invalid last_applied_seq '3'",
            id="checkpoint-wrong-type",
        ),
        pytest.param(
            "restore/_checkpoint.json",
            b"[1, 2]",
            r"restore/_checkpoint.json is not a restore checkpoint",
            id="checkpoint-not-an-object",
        ),
        pytest.param(
            "restore/_checkpoint.json",
            b'{"migration_id": "MIG", "state": "done"}',
            r"has an unknown state 'done'",
            id="checkpoint-state",
        ),
        pytest.param(
            "restore/_ddl.json", b'{"seq": 2}', r"restore/_ddl.json is not a DDL record", id="ddl-record"
        ),
        pytest.param(
            "restore/displaced.bson",
            b"\x05\x00\x00\x00garbage",
            r"restore/displaced.bson is not a saved set of displaced documents",
            id="displaced-garbage",
        ),
        pytest.param(
            "restore/displaced.bson",
            bson.encode({"db": "d", "coll": "c", "doc": {"_id": 1}}),
            r"restore/displaced.bson is not a saved set of displaced documents \(no backover-displaced header",
            id="displaced-no-header",
        ),
    ],
)
def test_damaged_restore_state_is_one_line_and_nothing_is_written(
    sides, migration, key, body, message
) -> None:
    users_with_unique_email(sides)
    write(migration, stream(sides.db))
    migration.s3.put_bytes(
        migration.layout.key(key), body.replace(b"MIG", migration.layout.migration_id.encode())
    )
    before = raw_contents(sides.target, sides.db)
    with pytest.raises(JobFailed, match=message) as raised:
        restore(migration, sides)
    assert "\n" not in str(raised.value)
    assert raw_contents(sides.target, sides.db) == before


def test_another_migrations_restore_checkpoint_is_refused(sides, migration) -> None:
    from backover.errors import UsageError

    write(migration, stream(sides.db))
    migration.s3.put_json(
        migration.layout.restore_checkpoint,
        {"migration_id": "someone-else", "last_applied_seq": 0, "updated_at": Timestamp(1, 1)},
    )
    with pytest.raises(UsageError, match=r"belongs to migration 'someone-else'"):
        restore(migration, sides)


def test_a_restore_whose_lease_was_taken_over_stops_writing(sides, migration) -> None:
    """Cut off longer than its lease's TTL and replaced by another restore, the first restore stops
    before its next round of writes and never replaces the new holder's records."""
    from backover.lease import Holder, LeaseLost, LeaseRecord
    from backover.restore.target import MongoTarget
    from backover.state import utc_now

    events = [built_event("insert", "items", i, db=sides.db, full={"_id": i, "n": i}) for i in range(40)]
    for seq in range(1, 5):
        migration.put_segment(seq, events[(seq - 1) * 10 : seq * 10])
    migration.put_checkpoint(4, 40, "drained")
    lease_key = migration.layout.restore_lease
    takeover: dict = {}

    class TakenOverMidway(MongoTarget):
        def write(self, ns, writes):
            if "at" in takeover:
                takeover["writes_after"] = takeover.get("writes_after", 0) + len(writes)
            elif sides.target[sides.db].items.count_documents({}) >= 10:
                now = utc_now()
                other = LeaseRecord(
                    "restore",
                    migration.layout.migration_id,
                    Holder("another-host", 4242, "f" * 16),
                    now,
                    now,
                    30.0,
                )
                migration.s3.put_bytes(lease_key, other.to_bytes())
                takeover["at"] = migration.s3.get_bytes(migration.layout.restore_checkpoint)
                time.sleep(1.2)  # cut off: the renewals now find another holder
            return super().write(ns, writes)

    config = RestoreConfig(
        layout=migration.layout,
        target=sides.target_uri,
        workers=1,
        window=5,
        checkpoint_seconds=0.0,
        progress_seconds=60.0,
        lease_ttl_seconds=1.0,
        lease_renew_seconds=0.5,
    )
    with MongoClient(sides.target_uri_text) as client:
        with pytest.raises(
            LeaseLost, match=r"lost the restore lease .* \(taken over by another-host pid 4242 at "
        ):
            run_restore(config, s3=migration.s3, target=TakenOverMidway(client))
    assert takeover.get("writes_after", 0) <= 5  # at most the one round already under way
    assert migration.s3.get_bytes(migration.layout.restore_checkpoint) == takeover["at"]  # not replaced
    assert b"another-host" in migration.s3.get_bytes(lease_key)  # and the new holder's lease is left alone


def test_a_saved_document_of_4kb_and_more_reads_back() -> None:
    """pymongo decodes sub-documents of 4 KB and more as memoryviews; a resumed restore reads the
    saved large copies back like small ones."""
    from backover.namespaces import Namespace

    saved = Displaced(generation=3)
    large = bson.encode({"_id": 7, "email": "k", "bio": "x" * 5000})
    small = bson.encode({"_id": "a", "email": "m"})
    saved.put(Namespace("shop", "users"), large)
    saved.put(Namespace("shop", "users"), small)
    back = Displaced.from_bytes(saved.to_bytes())
    assert back.generation == 3
    assert sorted(raw for _ns, _key, raw in back.items()) == sorted([large, small])
