"""The live pass over the sync plan's partitions (issue 14, item 4), against the stand-ins and moto.

``backover verify --live --begin`` records S0/A0, the target's change stream and the partitions;
``--partition ID`` compares one partition (what one mapped Airflow task runs, on any worker);
``--finish`` compares what no partition holds, the indexes and the target's change stream, then
judges the whole pass. Plain ``--live`` runs the three in one process. A partition's record is its
begin's (a slow one of an earlier begin replaces nothing), and the partition and the finish need
the sync plan the begin read.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta
from typing import Any

import pytest
from bson import Int64, ObjectId

from backover import state
from backover.cli import main
from backover.connections import DatabaseUri
from backover.errors import JobFailed, UsageError
from backover.lifecycle.source import cluster_time
from backover.namespaces import Namespace
from backover.state import (
    StartRecord,
    SyncPlan,
    VerifyLivePartitionRecord,
    VerifyLiveRecord,
    VerifyLiveState,
)
from backover.sync import SyncConfig, read_plan, run_sync
from backover.sync.scopes import partition_scope
from backover.verify import live, run_verify, settle
from backover.verify.config import VerifyMode
from backover.verify.report import ProofMode

USERS = [{"_id": i, "name": f"user {i}", "n": Int64(i)} for i in range(40)]
#: Two type brackets: the plan cuts a partition per bracket, each with its $type.
MIXED = [{"_id": i} for i in range(6)] + [{"_id": f"s{i}"} for i in range(6)]


def synced(world) -> SyncPlan:
    """DocumentDB seeded, the migration started, the initial sync copied it to an empty MongoDB in
    partitions of 10 documents, then changes captured and restored: the follow restore runs."""
    world.source[world.db].users.insert_many([dict(d) for d in USERS])
    world.source[world.db].mixed.insert_many([dict(d) for d in MIXED])
    start = StartRecord(
        migration_id=world.layout.migration_id,
        t0=cluster_time(world.source),
        databases=[world.db],
        namespaces=[world.db],
        source_flavour="documentdb",
    )
    state.write(world.migration.s3, world.layout.start_state, start)
    run_sync(
        SyncConfig(
            layout=world.layout,
            source=DatabaseUri(world.source_uri, documentdb=True),
            target=DatabaseUri(world.target_uri),
            partition_documents=10,
            progress_seconds=60.0,
        ),
        s3=world.migration.s3,
    )
    world.land(
        world.capture(
            lambda db: (
                db.users.update_one({"_id": 1}, {"$set": {"name": "renamed"}}),
                db.users.insert_one({"_id": 100, "new": True}),
                db.users.delete_one({"_id": 2}),
            )
        )
    )
    world.restore()
    plan = read_plan(world.migration.s3, world.layout)
    assert plan is not None and len(plan.partition_ids()) == 6  # users: 4; mixed: numbers, strings
    return plan


def begun(world, **options: Any) -> VerifyLiveRecord:
    return live.begin(world.config(**options), s3=world.migration.s3)


def partition(world, pid: str, **options: Any) -> VerifyLivePartitionRecord:
    return live.verify_partition(world.config(**options), pid, s3=world.migration.s3)


def finished(world, **options: Any) -> VerifyLiveRecord:
    return live.finish(world.config(**options), s3=world.migration.s3)


def stored(world) -> VerifyLiveRecord:
    record = state.read(world.migration.s3, world.layout.verify_live_report, VerifyLiveRecord)
    assert record is not None
    return record


def stored_partition(world, pid: str, begin_id: str | None = None) -> VerifyLivePartitionRecord:
    """The record of partition ``pid`` of the pass begun as ``begin_id`` (default: the stored pass's)."""
    begin_id = begin_id or stored(world).begin_id
    assert begin_id is not None
    record = state.read(
        world.migration.s3, world.layout.verify_live_partition(begin_id, pid), VerifyLivePartitionRecord
    )
    assert record is not None
    return record


def holding(world, plan: SyncPlan, coll: str, _id: Any) -> str:
    """The partition whose range holds ``_id`` of ``coll``."""
    for pid in plan.partition_ids():
        scope = partition_scope(plan, pid)
        if scope.ns.coll == coll and world.source[world.db][coll].find_one(
            {"$and": [scope.filter, {"_id": _id}]}
        ):
            return pid
    raise AssertionError(f"no partition holds {coll} _id {_id!r}")


def test_begin_each_partition_and_finish_pass_on_identical_sides_and_the_freeze_time_check_builds_on_it(
    world,
) -> None:
    plan = synced(world)
    record = begun(world)
    assert record.state is VerifyLiveState.RUNNING and record.begin_id
    assert record.partitions == plan.partition_ids() == live.partition_ids(world.migration.s3, world.layout)
    assert record.applied_seq == 1  # S0: the segment applied when the pass began
    parts = [partition(world, pid) for pid in record.partitions]
    assert all(p.state is VerifyLiveState.PASSED and p.begin_id == record.begin_id for p in parts)
    assert sum(p.documents for p in parts) == len(USERS) + len(MIXED)  # one deleted, one inserted
    assert stored(world).state is VerifyLiveState.RUNNING  # until the finish
    done = finished(world)
    assert done.state is VerifyLiveState.PASSED and stored(world).state is VerifyLiveState.PASSED
    # Every document in some partition: the finish compared none again.
    assert done.documents == sum(p.documents for p in parts)
    assert done.compared == [f"{world.db}.mixed", f"{world.db}.users"]
    assert done.target_checked_token is not None
    # At the freeze: only what changed since S0 is compared.
    world.land(
        world.capture(
            lambda db: (
                db.users.update_one({"_id": 10}, {"$set": {"name": "after the pass"}}),
                db.mixed.insert_one({"_id": "s9"}),
            )
        )
    )
    world.restore()
    report = run_verify(world.config(mode=VerifyMode.AUTO), s3=world.migration.s3)
    assert report.identical and report.mode is ProofMode.INCREMENTAL
    assert report.documents_at_freeze == 2


def test_a_document_changed_on_the_target_alone_fails_its_partition_and_the_finish(world) -> None:
    plan = synced(world)
    world.target[world.db].users.update_one({"_id": 15}, {"$set": {"name": "not the source's"}})
    record = begun(world)
    guilty = holding(world, plan, "users", 15)
    others = [partition(world, pid) for pid in record.partitions if pid != guilty]
    assert all(p.state is VerifyLiveState.PASSED for p in others)
    failed = world.when_waiting(lambda: partition(world, guilty, settle_seconds=120), world.heartbeat)
    assert isinstance(failed, JobFailed)
    assert str(failed) == (
        f"partition {guilty}: 1 document(s) differ and no captured event since A0 can change them: "
        f"{world.db}.users: _id 15"
    )
    part = stored_partition(world, guilty)
    assert part.state is VerifyLiveState.FAILED and part.proven == 1
    assert part.differences == {f"{world.db}.users": [15]}
    with pytest.raises(JobFailed) as finish_failed:
        finished(world)
    assert str(finish_failed.value) == (
        f"1 document(s) differ and no captured event since A0 can change them: {world.db}.users: "
        f"_id 15 (failed partition(s): {guilty})"
    )
    assert stored(world).state is VerifyLiveState.FAILED
    assert stored(world).differences == {f"{world.db}.users": [15]}
    with pytest.raises(JobFailed, match="the live pass .* is failed: 1 document"):
        run_verify(world.config(mode=VerifyMode.AUTO), s3=world.migration.s3)


def test_differences_no_partition_holds_are_caught_by_the_finish(world) -> None:
    synced(world)
    # After the plan: a collection it never saw (both sides, not alike), and an _id of a type
    # bracket the plan did not see (source only; no captured event names either).
    world.source[world.db].late.insert_one({"_id": 1, "v": 1})
    world.target[world.db].late.insert_one({"_id": 1, "v": 2})
    unseen = ObjectId()
    world.source[world.db].mixed.insert_one({"_id": unseen})
    record = begun(world)
    assert all(partition(world, pid).state is VerifyLiveState.PASSED for pid in record.partitions)
    failed = world.when_waiting(lambda: finished(world, settle_seconds=120), world.heartbeat)
    assert isinstance(failed, JobFailed)
    assert str(failed) == (
        "2 document(s) differ and no captured event since A0 can change them: "
        f"{world.db}.late: _id 1; {world.db}.mixed: _id {unseen!r}"
    )
    assert stored(world).state is VerifyLiveState.FAILED
    assert stored(world).differences == {f"{world.db}.late": [1], f"{world.db}.mixed": [unseen]}


def test_the_finish_before_every_partition_ran_names_the_missing_and_the_pass_stays_running(world) -> None:
    synced(world)
    record = begun(world)
    *first, last = record.partitions
    for pid in first:
        partition(world, pid)
    with pytest.raises(JobFailed) as missing:
        finished(world)
    assert str(missing.value) == (
        f"1 partition(s) of the live pass {record.begin_id} have no result yet: {last}; run "
        "`backover verify --live --partition ID` for each, then --finish again"
    )
    assert stored(world).state is VerifyLiveState.RUNNING
    partition(world, last)
    assert finished(world).state is VerifyLiveState.PASSED


def test_partitions_of_a_stale_begin_do_not_count(world) -> None:
    synced(world)
    first = begun(world)
    for pid in first.partitions:
        partition(world, pid)
    second = begun(world)  # the pass begun again: a new S0 and target position
    assert second.begin_id != first.begin_id
    with pytest.raises(
        JobFailed, match=rf"6 partition\(s\) of the live pass {second.begin_id} have no result yet"
    ):
        finished(world)
    for pid in second.partitions:
        assert partition(world, pid).begin_id == second.begin_id  # a re-run replaces the record
    assert finished(world).state is VerifyLiveState.PASSED


def test_a_slow_partition_of_an_earlier_begin_neither_replaces_nor_blocks_the_pass_begun_after_it(
    world, monkeypatch
) -> None:
    synced(world)
    first = begun(world)
    slow, *others = first.partitions
    for pid in others:
        partition(world, pid)
    real, again = settle.Comparison.scope, []

    def begun_again_meanwhile(self, *args: Any, **kwargs: Any) -> Any:
        """While the first pass's slow partition reads: the pass begun again, its partition run."""
        if not again:
            again.append(begun(world))
            partition(world, slow)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(settle.Comparison, "scope", begun_again_meanwhile)
    assert partition(world, slow).begin_id == first.begin_id  # it read the first pass's record
    monkeypatch.setattr(settle.Comparison, "scope", real)
    (second,) = again
    assert stored_partition(world, slow, second.begin_id).begin_id == second.begin_id  # not replaced
    for pid in others:
        partition(world, pid)
    assert finished(world).state is VerifyLiveState.PASSED  # no partition "without a result"
    assert stored(world).begin_id == second.begin_id
    # The next begin deletes the records of every earlier pass (the slow one's included).
    begun(world)
    assert not list(world.migration.s3.list_keys(world.layout.verify_live_partitions_prefix()))


def test_a_sync_plan_made_again_since_the_begin_fails_the_partition_and_the_finish(world) -> None:
    plan = synced(world)
    record = begun(world)
    assert record.plan_created_at == plan.created_at
    remade = dataclasses.replace(plan, created_at=plan.created_at + timedelta(seconds=1))
    state.write(world.migration.s3, world.layout.sync_plan, remade)  # backover sync --plan again
    says = (
        f"the sync plan is not the one the live pass {record.begin_id} read (it was made again): "
        "run `backover verify --live --begin` again"
    )
    with pytest.raises(JobFailed) as in_partition:
        partition(world, record.partitions[0])
    assert str(in_partition.value) == says
    assert not list(world.migration.s3.list_keys(world.layout.verify_live_partitions_prefix()))
    with pytest.raises(JobFailed) as in_finish:
        finished(world)
    assert str(in_finish.value) == says
    assert stored(world).state is VerifyLiveState.RUNNING  # begin again, then it can pass
    again = begun(world)
    for pid in again.partitions:
        partition(world, pid)
    assert finished(world).state is VerifyLiveState.PASSED


def test_the_whole_pass_in_one_process_runs_every_partition_and_fails_at_a_failed_one(world) -> None:
    plan = synced(world)
    record = live.run_verify_live(world.config(), s3=world.migration.s3)
    assert record.state is VerifyLiveState.PASSED and record.partitions == plan.partition_ids()
    assert record.documents == len(USERS) + len(MIXED)
    assert all(
        stored_partition(world, pid, record.begin_id).state is VerifyLiveState.PASSED
        for pid in record.partitions
    )
    world.target[world.db].mixed.delete_one({"_id": "s3"})
    guilty = holding(world, plan, "mixed", "s3")
    failed = world.live_pass_then(world.heartbeat, settle_seconds=120)
    assert isinstance(failed, JobFailed)
    assert str(failed) == (
        f"partition {guilty}: 1 document(s) differ and no captured event since A0 can change them: "
        f"{world.db}.mixed: _id 's3'"
    )
    assert stored(world).state is VerifyLiveState.FAILED
    assert stored(world).differences == {f"{world.db}.mixed": ["s3"]}


def test_a_namespace_filter_maps_only_its_partitions(world) -> None:
    plan = synced(world)
    users = (Namespace(world.db, "users"),)
    expected = [pid for pid in plan.partition_ids() if partition_scope(plan, pid).ns.coll == "users"]
    assert live.partition_ids(world.migration.s3, world.layout, users) == expected  # from the plan
    record = begun(world, namespaces=users)
    assert record.partitions == expected == live.partition_ids(world.migration.s3, world.layout)
    for pid in record.partitions:
        partition(world, pid, namespaces=users)
    with pytest.raises(UsageError, match="--namespace differs from the live pass's"):
        finished(world, namespaces=(Namespace(world.db),))
    assert finished(world, namespaces=users).compared == [f"{world.db}.users"]


# -- the command line ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param(["--partition", "x"], "--partition needs --live", id="partition-without-live"),
        pytest.param(["--begin"], "--begin needs --live", id="begin-without-live"),
        pytest.param(
            ["--live", "--begin", "--finish"], "--begin and --finish exclude each other", id="begin-finish"
        ),
        pytest.param(
            ["--live", "--partition", "x", "--finish"],
            "--partition and --finish exclude each other",
            id="partition-finish",
        ),
        pytest.param(
            ["--live", "--partition", " "],
            "--partition needs a partition id of the sync plan (--begin prints them)",
            id="blank-partition",
        ),
    ],
)
def test_bad_step_flags_are_one_line_and_exit_2(argv, message, capsys, monkeypatch) -> None:
    for name, value in (
        ("BACKOVER_BUCKET", "bkt"),
        ("BACKOVER_MIGRATION_ID", "m-1"),
        ("BACKOVER_SOURCE_URI", "mongodb://source"),
        ("BACKOVER_TARGET_URI", "mongodb://target"),
    ):
        monkeypatch.setenv(name, value)
    assert main(["verify", *argv]) == 2
    assert capsys.readouterr().err.strip() == f"backover verify: {message}"


def test_the_command_line_steps_and_an_unknown_partition(world, capsys, monkeypatch) -> None:
    synced(world)
    for name, value in (
        ("BACKOVER_SOURCE_URI", world.source_uri),
        ("BACKOVER_TARGET_URI", world.target_uri),
        ("BACKOVER_BUCKET", world.layout.bucket),
        ("BACKOVER_PREFIX", world.layout.prefix),
        ("BACKOVER_MIGRATION_ID", world.layout.migration_id),
    ):
        monkeypatch.setenv(name, value)
    verify = ["verify", "--namespace", world.db, "--live", "--poll-seconds", "0.02"]
    s3, root = world.migration.s3, world.layout.root

    assert main([*verify, "--partition", f"{world.db}.users.0000"]) == 2  # no pass begun
    assert (
        capsys.readouterr()
        .err.strip()
        .startswith(f"backover verify: no running live verification of migration {world.layout.migration_id}")
    )
    assert main([*verify, "--begin"]) == 0
    begin = json.loads(capsys.readouterr().out)
    assert (begin["state"], len(begin["partitions"]), begin["namespaces"]) == ("running", 6, [world.db])
    before = set(s3.list_keys(root))
    assert main([*verify, "--partition", "nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"backover verify: no partition 'nope' in the live pass {begin['begin_id']}")
    assert len(err.splitlines()) == 1 and set(s3.list_keys(root)) == before  # nothing written
    for pid in begin["partitions"]:
        assert main([*verify, "--partition", pid]) == 0
        assert json.loads(capsys.readouterr().out)["passed"] is True
    assert main([*verify, "--finish"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["passed"], summary["partitions"], summary["documents"]) == (
        True,
        6,
        len(USERS) + len(MIXED),
    )
    finished_keys = {k: s3.get_bytes(k) for k in s3.list_keys(root)}
    assert main([*verify, "--partition", begin["partitions"][0]]) == 2  # the pass is over
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no running live verification" in err and "passed" in err, err
    assert {k: s3.get_bytes(k) for k in s3.list_keys(root)} == finished_keys  # nothing written
