"""Verification outside the write freeze (issue 12, item 3), against the stand-ins and moto.

The live pass (``backover verify --live``) compares every document while the source moves and the
restore trails; at the freeze, ``backover verify`` compares only the documents keyed in the
segments since the pass began, the counts and the index specifications, and fails on a write to the
target that no source event accounts for. ``--full`` still compares everything.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from bson import Int64

from backover import state
from backover.errors import JobFailed
from backover.state import VerifyLiveRecord, VerifyLiveState
from backover.verify import run_verify
from backover.verify.config import VerifyMode
from backover.verify.live import run_verify_live
from backover.verify.report import ProofMode

DOCS = [{"_id": i, "name": f"user {i}", "n": Int64(i), "tags": ["a", i]} for i in range(40)]


def stored_record(world) -> VerifyLiveRecord:
    record = state.read(world.migration.s3, world.layout.verify_live_report, VerifyLiveRecord)
    assert record is not None
    return record


def restored_start(world) -> None:
    """Both sides seeded alike, some changes captured and restored: the restore follows."""
    world.seed("users", DOCS)
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


def test_a_document_that_differs_only_because_the_restore_trails_settles_once_it_caught_up(world) -> None:
    restored_start(world)
    # Changes the restore has not applied yet: the target trails on documents 3, 4, 101 and 5.
    trailing = world.capture(
        lambda db: (
            db.users.update_one({"_id": 3}, {"$set": {"name": "moved on"}}),
            db.users.update_one({"_id": 4}, {"$inc": {"n": 1}}),
            db.users.insert_one({"_id": 101}),
            db.users.delete_one({"_id": 5}),
        )
    )

    def catch_up() -> None:  # while the pass waits: the source moves on, the restore follows
        later = world.capture(lambda db: db.users.update_one({"_id": 30}, {"$set": {"late": 1}}))
        world.land(trailing + later)
        world.restore()

    record = world.live_pass_then(catch_up, settle_seconds=120)
    assert isinstance(record, VerifyLiveRecord), record
    assert record.state is VerifyLiveState.PASSED
    assert (record.differed, record.settled, record.deferred) == (4, 4, 0)
    assert record.documents == len(DOCS)  # 40 seeded, one deleted, one inserted
    assert stored_record(world).state is VerifyLiveState.PASSED
    assert stored_record(world).applied_seq == 1  # A0: the segment applied when the pass began


def test_a_live_pass_while_both_sides_move_ends_with_a_record_and_no_failure(world) -> None:
    """The application writes and the restore applies during the scan and the settling."""
    import threading

    restored_start(world)
    stop = threading.Event()
    rounds: list[int] = []

    def keep_moving() -> None:
        i = 0
        while not stop.is_set() and i < 200:
            i += 1
            world.land(
                world.capture(
                    lambda db, i=i: (
                        db.users.update_one({"_id": i % 40}, {"$set": {"round": i}}),
                        db.users.insert_one({"_id": 1000 + i}),
                    )
                )
            )
            world.restore()
            rounds.append(i)

    mover = threading.Thread(target=keep_moving, daemon=True)
    mover.start()
    try:
        record = run_verify_live(world.config(settle_seconds=120), s3=world.migration.s3)
    finally:
        stop.set()
        mover.join(60)
    assert record.state is VerifyLiveState.PASSED
    assert rounds, "nothing moved during the pass"
    assert record.differed == record.settled + record.deferred
    assert stored_record(world).state is VerifyLiveState.PASSED


def test_a_real_difference_on_a_key_no_event_names_fails_the_pass_naming_it(world) -> None:
    restored_start(world)
    world.target[world.db].users.update_one({"_id": 7}, {"$set": {"name": "user 6"}})  # not the restore
    world.target[world.db].users.delete_one({"_id": 9})
    record = world.live_pass_then(world.heartbeat, settle_seconds=120)
    assert isinstance(record, JobFailed)
    assert str(record).startswith("2 document(s) differ and no captured event since A0 can change them: ")
    assert f"{world.db}.users: _id 7, 9" in str(record)
    stored = stored_record(world)
    assert stored.state is VerifyLiveState.FAILED
    assert stored.differences == {f"{world.db}.users": [7, 9]}
    # The freeze-time check refuses to build on a failed pass.
    with pytest.raises(JobFailed, match=r"the live pass .* is failed: 2 document\(s\) differ"):
        run_verify(world.config(mode=VerifyMode.AUTO), s3=world.migration.s3)


def test_documents_that_never_settle_fail_the_pass_after_the_settle_time(world) -> None:
    restored_start(world)
    world.capture(lambda db: db.users.update_one({"_id": 12}, {"$set": {"never": "restored"}}))
    # Captured but never landed nor restored: the restore stays before the document's read time.
    with pytest.raises(JobFailed, match=r"1 differing document\(s\) did not settle: .*users: _id 12"):
        run_verify_live(world.config(settle_seconds=0), s3=world.migration.s3)
    assert stored_record(world).differences == {f"{world.db}.users": [12]}


def test_a_write_on_the_target_by_someone_else_during_the_pass_fails_it(world) -> None:
    restored_start(world)
    trailing = world.capture(lambda db: db.users.update_one({"_id": 3}, {"$set": {"x": 1}}))

    def meanwhile() -> None:  # document 25 was compared equal already; then someone else writes it
        world.target[world.db].users.update_one({"_id": 25}, {"$set": {"name": "someone else"}})
        world.land(trailing + world.capture(lambda db: db.users.insert_one({"_id": 400})))
        world.restore()

    failed = world.live_pass_then(meanwhile, settle_seconds=120)
    assert isinstance(failed, JobFailed)
    assert str(failed) == (
        f"1 write(s) on the target that no source event accounts for: update of {world.db}.users "
        "_id 25; nobody but the restore may write to the target"
    )
    stored = stored_record(world)
    assert stored.state is VerifyLiveState.FAILED and stored.settled == 1
    assert [(w["op"], w["_id"]) for w in stored.foreign_writes] == [("update", 25)]


# -- at the freeze ------------------------------------------------------------------------------------
def passed_then_moved(world) -> None:
    """A passed live pass, then changes to documents 10, 11 and 200 captured and restored (K)."""
    restored_start(world)
    record = run_verify_live(world.config(), s3=world.migration.s3)
    assert record.state is VerifyLiveState.PASSED and record.differed == 0
    world.land(
        world.capture(
            lambda db: (
                db.users.update_one({"_id": 10}, {"$set": {"name": "after the pass"}}),
                db.users.replace_one({"_id": 11}, {"replaced": True}),
                db.users.insert_one({"_id": 200, "x": 1}),
            )
        )
    )
    world.restore()


def freeze_check(world, **options):
    options.setdefault("mode", VerifyMode.AUTO)
    report = run_verify(world.config(**options), s3=world.migration.s3)
    stored = world.migration.s3.get_json(world.layout.verify_report)
    return report, stored


def test_at_the_freeze_the_incremental_check_passes_when_identical(world) -> None:
    passed_then_moved(world)
    report, stored = freeze_check(world)
    assert report.identical and stored["identical"] is True
    assert stored["mode"] == "incremental" and report.mode is ProofMode.INCREMENTAL
    assert stored["documents_at_freeze"] == 3  # documents 10, 11 and 200: what changed since A0
    users = stored["namespaces"][f"{world.db}.users"]
    assert users["source_count"] == users["target_count"] == len(DOCS) + 1  # 2 deleted, 100 and 200 added
    assert stored["foreign_writes"] == []


def test_at_the_freeze_a_difference_in_a_key_of_k_fails(world) -> None:
    passed_then_moved(world)
    # A source write the capture missed, on a document changed since A0: only K can show it.
    world.source[world.db].users.update_one({"_id": 10}, {"$set": {"name": "missed"}})
    report, stored = freeze_check(world)
    assert not report.identical and stored["identical"] is False
    users = stored["namespaces"][f"{world.db}.users"]
    assert (users["missing"], users["extra"], users["different"]) == (0, 0, 1)
    assert users["first_differences"] == [{"_id": 10, "kind": "different", "field": "name"}]


def test_at_the_freeze_a_count_difference_fails(world) -> None:
    passed_then_moved(world)
    world.source[world.db].users.insert_one({"_id": 500})  # not captured: in no key of K
    report, stored = freeze_check(world)
    assert not report.identical
    users = stored["namespaces"][f"{world.db}.users"]
    assert (users["source_count"], users["target_count"]) == (len(DOCS) + 2, len(DOCS) + 1)
    assert "counts differ (42 source, 41 target)" in report.differences()
    # --full still compares every document: it finds the very document.
    full, stored_full = freeze_check(world, mode=VerifyMode.FULL)
    assert full.mode is ProofMode.FULL and stored_full["mode"] == "full"
    assert stored_full["documents_at_freeze"] is None
    entry = stored_full["namespaces"][f"{world.db}.users"]
    assert entry["missing"] == 1 and entry["first_differences"] == [{"_id": 500, "kind": "missing"}]


def test_at_the_freeze_an_index_difference_fails(world) -> None:
    passed_then_moved(world)
    world.source[world.db].users.create_index([("n", -1)], sparse=True)
    report, stored = freeze_check(world)
    assert not report.identical
    users = stored["namespaces"][f"{world.db}.users"]
    assert users["indexes_identical"] is False
    assert [d["name"] for d in users["index_differences"]] == ["n_-1"]


def test_at_the_freeze_a_write_on_the_target_by_someone_else_fails(world) -> None:
    passed_then_moved(world)
    # Someone else writes to the target after the pass began; the document ends as it was.
    users = world.target[world.db].users
    users.update_one({"_id": 20}, {"$set": {"name": "tampered"}})
    users.update_one({"_id": 20}, {"$set": {"name": "user 20"}})
    report, stored = freeze_check(world)
    assert not report.identical and stored["identical"] is False
    assert [(w["ns"], w["op"], w["_id"]) for w in stored["foreign_writes"]] == [
        (f"{world.db}.users", "update", 20),
        (f"{world.db}.users", "update", 20),
    ]
    assert report.summary() == (
        "verify: 2 write(s) on the target that no source event accounts for: update of "
        f"{world.db}.users _id 20, update of {world.db}.users _id 20; nobody but the restore may "
        "write to the target"
    )
    # The keys the target's stream named are compared too: this one is equal again.
    assert stored["namespaces"][f"{world.db}.users"]["different"] == 0


def test_the_freeze_time_check_runs_only_after_the_restore_completed(world) -> None:
    passed_then_moved(world)
    world.land(world.capture(lambda db: db.users.insert_one({"_id": 300})))  # not restored yet
    with pytest.raises(JobFailed, match="the restore applied segments up to 2, the replicator wrote 3"):
        freeze_check(world)


def test_another_namespace_filter_than_the_live_pass_is_bad_usage(world) -> None:
    from backover.errors import UsageError
    from backover.namespaces import Namespace

    passed_then_moved(world)
    with pytest.raises(UsageError, match="--namespace differs from the live pass's"):
        freeze_check(world, namespaces=(Namespace(world.db, "users"),))


# -- the command line ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param(["--live", "--full"], "--live and --full exclude each other", id="live-full"),
        pytest.param(["--settle-seconds", "-1"], "--settle-seconds must not be negative", id="settle"),
        pytest.param(["--poll-seconds", "0"], "--poll-seconds must be positive", id="poll"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv, message, capsys, monkeypatch) -> None:
    from backover.cli import main

    for name, value in (
        ("BACKOVER_BUCKET", "bkt"),
        ("BACKOVER_MIGRATION_ID", "m-1"),
        ("BACKOVER_SOURCE_URI", "mongodb://source"),
        ("BACKOVER_TARGET_URI", "mongodb://target"),
    ):
        monkeypatch.setenv(name, value)
    assert main(["verify", *argv]) == 2
    assert capsys.readouterr().err.strip() == f"backover verify: {message}"


@pytest.mark.slow  # runs the backover command line
def test_cli_live_pass_then_the_freeze_time_check(world, aws_endpoints) -> None:
    restored_start(world)
    env = {
        **os.environ,
        "BACKOVER_SOURCE_URI": world.source_uri,
        "BACKOVER_TARGET_URI": world.target_uri,
        "BACKOVER_BUCKET": world.layout.bucket,
        "BACKOVER_PREFIX": world.layout.prefix,
        "BACKOVER_MIGRATION_ID": world.layout.migration_id,
    }

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "backover", "verify", "--namespace", world.db, *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )

    live = cli("--live")
    assert live.returncode == 0, live.stderr
    assert json.loads(live.stdout)["passed"] is True
    world.land(world.capture(lambda db: db.users.update_one({"_id": 3}, {"$set": {"x": 1}})))
    world.restore()
    frozen = cli()
    assert frozen.returncode == 0, frozen.stderr
    summary = json.loads(frozen.stdout)
    assert (summary["identical"], summary["mode"], summary["documents_at_freeze"]) == (True, "incremental", 1)
    world.target[world.db].users.delete_one({"_id": 33})  # someone else
    refused = cli()
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines()[-1] == (
        f"backover verify: 1 write(s) on the target that no source event accounts for: delete of "
        f"{world.db}.users _id 33; nobody but the restore may write to the target"
    )
