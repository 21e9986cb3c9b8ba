"""Unique secondary indexes never lose or reject a write because of reordering or compaction."""

from __future__ import annotations

import pytest
from restore_streams import capture, raw_contents

from backover.errors import JobFailed
from backover.restore.displaced import Displaced

COMBINATIONS = [
    pytest.param(workers, window, id=f"workers{workers}-window{window}")
    for workers, window in ((1, 1), (1, 100), (4, 100), (3, 2))
]


def unique_email(sides) -> None:
    for client in (sides.source, sides.target):
        client[sides.db].users.create_index("email", unique=True)


@pytest.mark.parametrize(("workers", "window"), COMBINATIONS)
@pytest.mark.parametrize("lookup", [True, False], ids=["updateLookup", "updateDescription"])
def test_two_users_swapping_emails_replay_exactly(sides, migration, restore, workers, window, lookup) -> None:
    unique_email(sides)
    for client in (sides.source, sides.target):  # both sides start equal, as after the initial load
        client[sides.db].users.insert_many([{"_id": i, "email": f"user{i}@example.org"} for i in range(6)])

    def actions(db) -> None:
        db.users.update_one({"_id": 0}, {"$set": {"email": "tmp@example.org"}})
        db.users.update_one({"_id": 1}, {"$set": {"email": "user0@example.org"}})
        db.users.update_one({"_id": 0}, {"$set": {"email": "user1@example.org"}})
        # a rotation of three, and a key handed from a deleted user to a new one
        db.users.update_one({"_id": 2}, {"$set": {"email": "tmp@example.org"}})
        db.users.update_one({"_id": 4}, {"$set": {"email": "user2@example.org"}})
        db.users.update_one({"_id": 3}, {"$set": {"email": "user4@example.org"}})
        db.users.update_one({"_id": 2}, {"$set": {"email": "user3@example.org"}})
        db.users.delete_one({"_id": 5})
        db.users.insert_one({"_id": 6, "email": "user5@example.org"})

    events = capture(sides.source, sides.db, actions, lookup=lookup)
    migration.write_segments(events, per_segment=3)
    result = restore(workers=workers, window=window)
    assert raw_contents(sides.target, sides.db) == raw_contents(sides.source, sides.db)
    if lookup:  # updateLookup images are final states: they collide with the target's earlier ones
        assert result.conflicts_resolved > 0
    saved = migration.s3.get_bytes(migration.layout.key("restore/displaced.bson"))
    assert saved is None or len(Displaced.from_bytes(saved)) == 0  # nothing left aside

    again = restore(workers=workers, window=window, from_seq=1)  # applying every segment again
    assert again.state == "completed"
    assert raw_contents(sides.target, sides.db) == raw_contents(sides.source, sides.db)


def test_a_unique_index_only_the_target_has_stops_the_restore_naming_the_document(
    sides, migration, restore
) -> None:
    sides.target[sides.db].users.create_index("email", unique=True)

    def actions(db) -> None:
        db.users.insert_many(
            [{"_id": 1, "email": "same@example.org"}, {"_id": 2, "email": "same@example.org"}]
        )

    migration.write_segments(capture(sides.source, sides.db, actions), per_segment=10)
    with pytest.raises(
        JobFailed, match=r"users: _id 1 was moved aside for a unique key and cannot be written back"
    ):
        restore()
    assert migration.restore_checkpoint()["state"] == "failed"
    assert migration.s3.get_bytes(migration.layout.key("restore/displaced.bson"))  # kept, not lost


def test_holders_of_4kb_and_more_are_moved_aside_and_back(sides, migration, restore) -> None:
    """pymongo hands documents of 4 KB and more out of a reply as memoryviews; a large holder of a
    unique key is moved aside and written back like a small one."""
    unique_email(sides)
    padding = "x" * 5000
    for client in (sides.source, sides.target):
        client[sides.db].users.insert_many(
            [{"_id": i, "email": f"user{i}@example.org", "bio": padding} for i in range(2)]
        )

    def actions(db) -> None:
        db.users.update_one({"_id": 0}, {"$set": {"email": "tmp@example.org"}})
        db.users.update_one({"_id": 1}, {"$set": {"email": "user0@example.org"}})
        db.users.update_one({"_id": 0}, {"$set": {"email": "user1@example.org"}})

    migration.write_segments(capture(sides.source, sides.db, actions), per_segment=3)
    result = restore(workers=1, window=100)
    assert result.conflicts_resolved > 0
    assert raw_contents(sides.target, sides.db) == raw_contents(sides.source, sides.db)


def test_a_holder_whose_own_update_was_rejected_in_the_same_round_keeps_that_update(
    sides, migration, restore
) -> None:
    """Without updateLookup: users 3, 4 and 2 are written in one round in that order (their chains
    began in that order), 3 taking b from 4 and 4 taking a from 2 as 2 leaves it; 3 and 4 are
    rejected. 4 is moved aside for 3, so 4's own rejected update goes to its kept copy (on the
    target it would match nothing and be lost)."""
    unique_email(sides)
    for client in (sides.source, sides.target):
        client[sides.db].users.insert_many(
            [{"_id": 2, "email": "a"}, {"_id": 4, "email": "b"}, {"_id": 3, "email": "c"}]
        )

    def actions(db) -> None:
        for _id in (3, 4, 2):
            db.users.update_one({"_id": _id}, {"$set": {"n": 1}})
        db.users.update_one({"_id": 2}, {"$set": {"email": "tmp"}})
        db.users.update_one({"_id": 4}, {"$set": {"email": "a"}})
        db.users.update_one({"_id": 3}, {"$set": {"email": "b"}})

    migration.write_segments(capture(sides.source, sides.db, actions, lookup=False), per_segment=10)
    result = restore(workers=1, window=100)
    assert raw_contents(sides.target, sides.db) == raw_contents(sides.source, sides.db)
    assert result.conflicts_resolved > 0


def test_a_rounds_unique_key_conflicts_cost_one_save_and_one_retry_not_one_each(
    sides, migration, restore
) -> None:
    """Fifty users each take the next one's e-mail (updateLookup images: all fifty collide with the
    target's state in one round). The holders are moved aside together: one save of the kept
    copies to S3 and one retry command, not fifty of each."""
    unique_email(sides)
    users = 50
    for client in (sides.source, sides.target):
        client[sides.db].users.insert_many([{"_id": i, "email": f"a{i}"} for i in range(users)])

    def actions(db) -> None:
        for i in range(users):
            db.users.update_one({"_id": i}, {"$set": {"email": f"b{i}"}})
        for i in range(users):
            db.users.update_one({"_id": i}, {"$set": {"email": f"a{(i + 1) % users}"}})

    migration.write_segments(capture(sides.source, sides.db, actions), per_segment=1000)
    result = restore(workers=1, window=1000)
    assert raw_contents(sides.target, sides.db) == raw_contents(sides.source, sides.db)
    assert result.conflicts_resolved == users
    saved = Displaced.from_bytes(migration.s3.get_bytes(migration.layout.key("restore/displaced.bson")))
    assert len(saved) == 0 and saved.generation <= 3, saved.generation  # S3 saves of the kept copies
    assert result.commands <= 5, result.commands  # the round, a delete of the holders, one retry
