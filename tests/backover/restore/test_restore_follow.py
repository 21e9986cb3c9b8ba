"""``backover restore --follow``: segments applied as they land, a heartbeat while it waits, the
lag behind the capture, completion after the drain, stop on a signal or an abort, and a restore
that waits for the follower instead of refusing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import bson
import pytest
from bson.timestamp import Timestamp
from restore_streams import built_event, raw_contents

from backover.lease import LeaseHeld
from backover.replication.status import status
from backover.restore import RestoreConfig, RestoreResult, run_restore
from backover.state import RestoreState

PER_SEGMENT, KEYS = 40, 60


def events_from(db: str, start: int, count: int, final: dict[int, bytes]) -> list[bytes]:
    """``count`` events from number ``start`` on (inserts, updates of hot keys, deletes), each with
    its own cluster time one second apart; ``final`` follows the expected end state."""
    out = []
    for n in range(start, start + count):
        key = (n * 7) % KEYS
        if n % 11 == 10 and key in final:
            raw = built_event("delete", "c", key, db=db)
            del final[key]
        else:
            doc = {"_id": key, "n": n}
            raw = built_event("insert" if key not in final else "update", "c", key, db=db, full=doc)
            final[key] = bson.encode(doc)
        event = bson.decode(raw)
        event["clusterTime"] = Timestamp(1_764_270_000 + n, 1)
        out.append(bson.encode(event))
    return out


def expected(final: dict[int, bytes]) -> dict[str, dict[bytes, bytes]]:
    return {"c": {bson.encode({"_id": k})[4:-1]: v for k, v in final.items()}} if final else {}


def wait_for(check: Callable[[], Any], what: str, seconds: float = 60.0) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


class Follower:
    """A follow restore on a thread, as ``backover restore --follow`` runs it."""

    def __init__(self, migration, sides, **options: Any) -> None:
        options = {
            "progress_seconds": 60.0,
            "checkpoint_seconds": 0.0,
            "poll_seconds": 0.02,
            "heartbeat_seconds": 0.2,
            "follow": True,
            **options,
        }
        self.config = RestoreConfig(layout=migration.layout, target=sides.target_uri, **options)
        self.migration = migration
        self.stop = threading.Event()
        self.ready = threading.Event()
        self.result: RestoreResult | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            result = run_restore(self.config, s3=self.migration.s3, stop=self.stop, on_ready=self.ready.set)
            assert isinstance(result, RestoreResult)
            self.result = result
        except BaseException as e:  # noqa: BLE001 - raised again in the test thread by join()
            self.error = e

    def join(self) -> RestoreResult:
        self.thread.join(timeout=120)
        assert not self.thread.is_alive(), "the follow restore did not end"
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


def applied(migration, seq: int) -> Callable[[], bool]:
    def check() -> bool:
        checkpoint = migration.restore_checkpoint()
        return bool(checkpoint and checkpoint["last_applied_seq"] >= seq)

    return check


def test_follows_the_capture_shows_its_lag_and_completes_after_the_drain(sides, migration) -> None:
    final: dict[int, bytes] = {}
    first = events_from(sides.db, 0, 3 * PER_SEGMENT, final)
    migration.write_segments(first, PER_SEGMENT, state="running")
    follower = Follower(migration, sides)
    assert follower.ready.wait(60), "the follow restore never wrote its first checkpoint"
    wait_for(applied(migration, 3), "segments 1..3")
    assert raw_contents(sides.target, sides.db) == expected(final)  # applied while the capture runs
    shown = status(migration.layout, migration.s3)["restore"]
    assert shown["state"] == "running" and shown["follow"] is True
    assert shown["lag"] == {"segments": 0, "events": 0, "seconds": 0.0}
    assert shown["applied_cluster_time"] == f"{1_764_270_000 + 3 * PER_SEGMENT - 1}:1"

    # the heartbeat: the checkpoint is rewritten while the follower waits for segments
    before = migration.restore_checkpoint()["updated_at"]
    wait_for(lambda: migration.restore_checkpoint()["updated_at"] > before, "a heartbeat", 10)

    # behind the capture: segments captured but not applied yet are its lag
    follower.stop.set()  # (pause it: stop, then show the lag of the segments that land meanwhile)
    assert follower.join().state is RestoreState.STOPPED
    more = events_from(sides.db, 3 * PER_SEGMENT, 2 * PER_SEGMENT, final)
    for i, seq in enumerate((4, 5)):
        migration.put_segment(seq, more[i * PER_SEGMENT : (i + 1) * PER_SEGMENT])
    migration.put_checkpoint(5, 5 * PER_SEGMENT, "running")
    lagging = status(migration.layout, migration.s3)["restore"]
    assert lagging["state"] == "stopped" and "signal" in lagging["reason"]
    assert lagging["lag"] == {"segments": 2, "events": 2 * PER_SEGMENT, "seconds": float(2 * PER_SEGMENT)}

    follower = Follower(migration, sides)  # a restart continues from the checkpoint
    wait_for(applied(migration, 5), "segments 4..5")
    tail = events_from(sides.db, 5 * PER_SEGMENT, PER_SEGMENT // 2, final)
    migration.put_segment(6, tail)
    migration.put_checkpoint(6, 5 * PER_SEGMENT + len(tail), "drained")
    result = follower.join()
    assert result.state is RestoreState.COMPLETED and result.first_seq == 4 and result.last_seq == 6
    assert raw_contents(sides.target, sides.db) == expected(final)
    done = migration.restore_checkpoint()
    assert done["state"] == "completed" and done["last_applied_seq"] == 6
    assert done["events_applied"] == 5 * PER_SEGMENT + len(tail)  # every segment counted once


def test_under_a_steady_capture_the_checkpoint_moves_on_every_few_seconds(sides, migration) -> None:
    """Segments landing faster than ``--checkpoint-seconds``: each round applies a few, and the
    checkpoint (what a restart and the sensors rely on) still follows at that pace, not only at
    the end."""
    final: dict[int, bytes] = {}
    events = events_from(sides.db, 0, 16 * 10, final)
    migration.write_segments(events[:10], 10, state="running")
    follower = Follower(migration, sides, checkpoint_seconds=0.5, heartbeat_seconds=30.0)
    seen = []
    for seq in range(2, 17):
        migration.put_segment(seq, events[(seq - 1) * 10 : seq * 10])
        migration.put_checkpoint(seq, seq * 10, "running")
        time.sleep(0.15)
        checkpoint = migration.restore_checkpoint()  # None until the follower's first save
        seen.append(0 if checkpoint is None else checkpoint["last_applied_seq"])
    wait_for(applied(migration, 16), "every segment in the checkpoint before the drain")
    migration.put_checkpoint(16, 160, "drained")
    assert follower.join().state is RestoreState.COMPLETED
    assert max(seen) >= 4, f"the checkpoint stood still while segments were applied: {seen}"
    assert raw_contents(sides.target, sides.db) == expected(final)


def test_an_abort_stops_the_follow_restore_and_nothing_completes(sides, migration) -> None:
    final: dict[int, bytes] = {}
    migration.write_segments(events_from(sides.db, 0, PER_SEGMENT, final), PER_SEGMENT, state="running")
    follower = Follower(migration, sides)
    wait_for(applied(migration, 1), "segment 1")
    migration.s3.put_json(migration.layout.stop_request, {"reason": "abort"})
    migration.put_checkpoint(1, PER_SEGMENT, "stopped")  # the replicator stops on the abort too
    result = follower.join()
    assert result.state is RestoreState.STOPPED
    checkpoint = migration.restore_checkpoint()
    assert checkpoint["state"] == "stopped" and "abort" in checkpoint["reason"]


def test_a_restore_with_wait_waits_for_the_follower_then_finds_nothing_left(sides, migration) -> None:
    final: dict[int, bytes] = {}
    migration.write_segments(events_from(sides.db, 0, 2 * PER_SEGMENT, final), PER_SEGMENT, state="running")
    follower = Follower(migration, sides)
    wait_for(applied(migration, 2), "segments 1..2")
    # without --wait a second restore is refused while the follower holds the lease
    with pytest.raises(LeaseHeld, match="another restore holds"):
        run_restore(RestoreConfig(layout=migration.layout, target=sides.target_uri), s3=migration.s3)
    waiter = Follower(migration, sides, follow=False, wait=True)
    time.sleep(0.3)
    assert waiter.thread.is_alive(), "the waiting restore did not wait"
    migration.put_checkpoint(2, 2 * PER_SEGMENT, "drained")
    assert follower.join().state is RestoreState.COMPLETED
    completed = migration.s3.get_object(migration.layout.restore_checkpoint)
    late = waiter.join()
    assert late.state is RestoreState.COMPLETED and late.segments_applied == 0
    # the follower's completed checkpoint is left exactly as it wrote it (never "running" again)
    assert migration.s3.get_object(migration.layout.restore_checkpoint) == completed
    assert migration.restore_checkpoint()["follow"] is True  # a rewrite by the waiter would say False
    assert raw_contents(sides.target, sides.db) == expected(final)


def test_a_replicator_that_failed_is_waited_for_not_taken_for_the_end(sides, migration) -> None:
    final: dict[int, bytes] = {}
    migration.write_segments(events_from(sides.db, 0, PER_SEGMENT, final), PER_SEGMENT, state="failed")
    follower = Follower(migration, sides)
    wait_for(applied(migration, 1), "segment 1")
    time.sleep(0.3)
    assert follower.thread.is_alive() and migration.restore_checkpoint()["state"] == "running"
    more = events_from(sides.db, PER_SEGMENT, PER_SEGMENT, final)  # the replicator run again
    migration.put_segment(2, more)
    migration.put_checkpoint(2, 2 * PER_SEGMENT, "drained")
    assert follower.join().state is RestoreState.COMPLETED
    assert raw_contents(sides.target, sides.db) == expected(final)


def test_follow_refuses_options_that_make_no_sense_with_it(migration, sides) -> None:
    from backover.errors import UsageError

    for options in ({"dry_run": True}, {"from_seq": 2}, {"reset": True}):
        with pytest.raises(UsageError, match="--follow cannot be combined"):
            RestoreConfig(layout=migration.layout, target=sides.target_uri, follow=True, **options)
    with pytest.raises(UsageError, match="--poll-seconds must be positive"):
        RestoreConfig(layout=migration.layout, target=sides.target_uri, follow=True, poll_seconds=0)


@pytest.mark.slow  # starts `backover restore --follow --detach` processes and kills one with SIGKILL
def test_detached_follow_restore_survives_kill_9_and_a_restart_continues(sides, migration, tmp_path) -> None:
    env = {**os.environ, "BACKOVER_TARGET_URI": sides.target_uri_text, "BACKOVER_RUN_DIR": str(tmp_path)}
    argv = [
        sys.executable,
        "-m",
        "backover",
        "restore",
        "--follow",
        "--detach",
        *("--bucket", migration.layout.bucket, "--prefix", migration.layout.prefix),
        *("--migration-id", migration.layout.migration_id),
        *("--poll-seconds", "0.05", "--heartbeat-seconds", "0.5", "--checkpoint-seconds", "0"),
    ]

    def detach() -> str:
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout.strip()

    final: dict[int, bytes] = {}
    migration.write_segments(events_from(sides.db, 0, 3 * PER_SEGMENT, final), PER_SEGMENT, state="running")
    line = detach()
    assert line.startswith("follow restore following the capture in the background: pid ")
    pid = int(line.split("pid ")[1].split(",")[0])
    wait_for(applied(migration, 3), "segments 1..3")
    assert detach().startswith(f"follow restore already running: pid {pid},")

    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not os.path.exists(f"/proc/{pid}") or _zombie(pid), "the killed restore to go")
    assert migration.restore_checkpoint()["state"] == "running"  # it had no chance to say otherwise
    more = events_from(sides.db, 3 * PER_SEGMENT, 2 * PER_SEGMENT, final)
    migration.put_segment(4, more[:PER_SEGMENT])
    migration.put_segment(5, more[PER_SEGMENT:])
    migration.put_checkpoint(5, 5 * PER_SEGMENT, "running")
    line = detach()  # its lease is stale at once: same host, process gone
    restarted = int(line.split("pid ")[1].split(",")[0])
    assert restarted != pid
    wait_for(applied(migration, 5), "segments 4..5")
    migration.put_checkpoint(5, 5 * PER_SEGMENT, "drained")
    wait_for(lambda: not os.path.exists(f"/proc/{restarted}") or _zombie(restarted), "the follower to end")
    done = migration.restore_checkpoint()
    assert done["state"] == "completed" and done["events_applied"] == 5 * PER_SEGMENT
    assert raw_contents(sides.target, sides.db) == expected(final)
    log = (tmp_path / f"restore-{migration.layout.migration_id}.log").read_text()
    assert "restore completed: segments up to 5 applied" in log
    assert "lease taken over" in log and sides.target_uri_text not in log


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[-1].split()[0] == "Z"
    except OSError:
        return True
