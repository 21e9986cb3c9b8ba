"""A copy taken while the application writes, then the replay from T0: identical to the source.

The writes land between two partitions' reads (the ``on_batch`` hook runs after each batch), so
what each partition reads is deterministic: inserts, updates and deletes on both sides of the
copy's position, and a unique-key swap between a document already copied and one not copied yet
(the copy then skips the second: ``skipped_duplicates``)."""

from __future__ import annotations

import pytest
from restore_streams import capturing, raw_contents

from backover.bsonvalues import raw_collection
from backover.connections import DatabaseUri
from backover.errors import UsageError
from backover.restore import RestoreConfig, RestoreResult, run_restore
from backover.verify.indexes import index_specs


class Crash(BaseException):
    pass


def _restore(world) -> RestoreResult:
    config = RestoreConfig(
        layout=world.layout,
        target=DatabaseUri(world.target_uri),
        progress_seconds=60.0,
        checkpoint_seconds=0.0,
    )
    result = run_restore(config, s3=world.s3)
    assert isinstance(result, RestoreResult)
    return result


def test_writes_during_the_copy_end_identical_after_the_replay_from_t0(world) -> None:
    src = world.source[world.db]
    src.users.create_index("email", unique=True)
    src.users.insert_many([{"_id": i, "email": f"u{i}@example.org", "v": 0} for i in range(10)])
    src.orders.insert_many([{"_id": i, "total": i} for i in range(12)])
    users_first = f"{world.db}.users.0000"
    wrote: list[str] = []

    def application_writes(cp) -> None:
        if cp.partition != users_first or wrote:
            return
        wrote.append(cp.partition)  # users 0..4 are on the target; 5..9 not read yet
        src.users.update_one({"_id": 1}, {"$set": {"email": "tmp@example.org"}})  # a swap of e-mails
        src.users.update_one({"_id": 7}, {"$set": {"email": "u1@example.org"}})  # between a copied user
        src.users.update_one({"_id": 1}, {"$set": {"email": "u7@example.org"}})  # and one not copied yet
        src.users.delete_many({"_id": {"$in": [2, 8]}})  # one copied, one not
        src.users.update_many({"_id": {"$in": [3, 9]}}, {"$inc": {"v": 1}})
        src.users.insert_many(
            [{"_id": -1, "email": "new@example.org"}, {"_id": 10, "email": "ten@example.org"}]
        )
        src.orders.delete_one({"_id": 0})  # a collection copied in full already
        src.orders.insert_one({"_id": 99, "total": 99})

    with capturing(world.source, world.db) as events:
        world.start()
        result = world.sync(application_writes, partition_documents=5, batch_size=5)
    assert wrote == [users_first]
    assert result.complete is not None and result.complete.skipped_duplicates == 1  # user 7 (holds u1)
    target_users = {d["_id"] for d in world.target[world.db].users.find({}, {"_id": 1})}
    assert target_users == {0, 1, 2, 3, 4, 5, 6, 9, 10}  # 7 skipped, 8 deleted before its read, -1 after
    assert raw_contents(world.target, world.db) != raw_contents(world.source, world.db)

    world.migration.write_segments(events, per_segment=4)
    restored = _restore(world)
    assert restored.state == "completed"
    assert raw_contents(world.target, world.db) == raw_contents(world.source, world.db)
    for coll in ("users", "orders"):
        assert index_specs(raw_collection(world.target, world.db, coll)) == index_specs(
            raw_collection(world.source, world.db, coll)
        )


def test_the_restore_refuses_to_start_while_the_sync_is_not_complete(world) -> None:
    world.source[world.db].c.insert_many([{"_id": i} for i in range(20)])
    with capturing(world.source, world.db) as events:
        world.start()
        world.source[world.db].c.delete_one({"_id": 3})

    def crash(cp) -> None:
        raise Crash

    with pytest.raises(Crash):
        world.sync(crash, batch_size=5)
    world.migration.write_segments(events, per_segment=10)
    with pytest.raises(
        UsageError, match=r"the initial sync of migration .* is not complete .*run `backover sync`"
    ) as e:
        _restore(world)
    assert e.value.exit_code == 2 and "\n" not in str(e.value)
    assert world.s3.head(world.layout.restore_checkpoint) is None  # nothing written by the restore
    assert world.s3.head(world.layout.restore_lease) is None

    world.sync(batch_size=5)
    assert _restore(world).state == "completed"
    assert raw_contents(world.target, world.db) == raw_contents(world.source, world.db)
