"""The single-writer lease (``backover.lease``) against moto's S3 conditional writes: one holder at
a time, a stale lease taken over by exactly one newcomer, a replaced holder fenced, and the
replicator's segment and checkpoint PUTs refusing a fenced writer."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from bson.timestamp import Timestamp
from replicate_testkit import fake_event, new_layout

from backover import segments
from backover.lease import Holder, Lease, LeaseHeld, LeaseLost, LeaseRecord
from backover.replication.checkpoint import CheckpointChanged, CheckpointStore
from backover.replication.retry import Backoff
from backover.replication.segment_writer import Batch, SegmentWriter
from backover.s3objects import S3Objects
from backover.state import ReplicatorCheckpoint, utc_now

TTL = 1.0
RENEW = 0.2


def lease_for(s3: S3Objects, key: str, ttl: float = TTL) -> Lease:
    return Lease(s3, key, role="replicator", migration_id="m", ttl_seconds=ttl, renew_seconds=RENEW)


def test_a_second_holder_is_refused_with_the_holder_and_its_expiry(bucket: str) -> None:
    s3 = S3Objects(bucket)
    key = f"m-{uuid.uuid4().hex[:6]}/changes/_lease.json"
    first = lease_for(s3, key, ttl=30).acquire()
    before = s3.get_versioned(key)
    with pytest.raises(LeaseHeld) as refused:
        lease_for(s3, key, ttl=30).acquire()
    reason = str(refused.value)
    assert f"pid {first.holder.pid}" in reason and "expires in" in reason and "\n" not in reason
    assert s3.get_versioned(key) == before  # the refused newcomer wrote nothing
    first.release()
    assert s3.get_versioned(key) is None
    lease_for(s3, key).acquire()  # free again


def test_a_stale_lease_is_taken_over_and_the_old_holder_is_fenced(bucket: str) -> None:
    s3 = S3Objects(bucket)
    key = f"m-{uuid.uuid4().hex[:6]}/changes/_lease.json"
    old = lease_for(s3, key).acquire()  # never renewed: as if paused (SIGSTOP)
    time.sleep(TTL + 0.1)
    new = lease_for(s3, key).acquire()
    with pytest.raises(LeaseLost, match=f"taken over by .* pid {new.holder.pid}"):
        old.fence()
    old.release()  # must not delete the new holder's lease
    record = LeaseRecord.parse(s3.get_versioned(key)[0])
    assert record is not None and record.holder.token == new.holder.token
    new.fence()  # the new holder renews as usual


def test_of_two_newcomers_racing_for_a_stale_lease_exactly_one_wins(bucket: str) -> None:
    s3 = S3Objects(bucket)
    key = f"m-{uuid.uuid4().hex[:6]}/changes/_lease.json"
    lease_for(s3, key).acquire()
    time.sleep(TTL + 0.1)
    outcomes: list[str] = []
    barrier = threading.Barrier(4)

    def contend() -> None:
        contender = lease_for(s3, key)
        barrier.wait()
        try:
            contender.acquire()
            outcomes.append("won")
        except LeaseHeld:
            outcomes.append("refused")

    threads = [threading.Thread(target=contend) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["refused", "refused", "refused", "won"]


@pytest.mark.slow  # its holder is a Python process that exits
def test_a_holder_whose_process_is_gone_is_replaced_at_once(bucket: str) -> None:
    """A restart on the same machine after a crash (kill -9) does not wait for the TTL."""
    s3 = S3Objects(bucket)
    key = f"m-{uuid.uuid4().hex[:6]}/changes/_lease.json"
    code = (
        "import sys; from backover.lease import Lease; from backover.s3objects import S3Objects; "
        f"Lease(S3Objects({bucket!r}), {key!r}, role='replicator', migration_id='m', ttl_seconds=600, "
        "renew_seconds=5).acquire()"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    record = LeaseRecord.parse(s3.get_versioned(key)[0])
    assert record is not None and not record.expired(utc_now())
    started = time.monotonic()
    lease_for(s3, key).acquire()
    assert time.monotonic() - started < 5


@pytest.mark.slow  # its holder is a child process left unreaped
def test_a_holder_that_exited_but_is_not_reaped_yet_is_gone() -> None:
    """A killed holder whose parent has not reaped it (a zombie: a detached job whose init does not
    reap) holds nothing: a restart must not wait for the TTL."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        stat = Path(f"/proc/{child.pid}/stat")
        deadline = time.monotonic() + 30
        while stat.read_text().rsplit(")", 1)[1].split()[0] != "Z":
            assert time.monotonic() < deadline, "the child never exited"
            time.sleep(0.02)
        me = Holder.this_process()
        zombie = Holder(me.host, child.pid, "t", me.boot_id, me.pid_namespace, process_start=1)
        assert zombie.is_gone()
    finally:
        child.wait()


def test_the_background_renewal_keeps_a_live_holder(bucket: str) -> None:
    s3 = S3Objects(bucket)
    key = f"m-{uuid.uuid4().hex[:6]}/changes/_lease.json"
    holder = lease_for(s3, key).acquire()
    holder.start_renewing()
    try:
        time.sleep(3 * TTL)
        with pytest.raises(LeaseHeld):
            lease_for(s3, key).acquire()
        holder.raise_if_lost()
    finally:
        holder.release()


def _writer(s3: S3Objects, layout, lease: Lease) -> tuple[CheckpointStore, SegmentWriter]:
    store = CheckpointStore(s3, layout)
    checkpoint = store.load() or ReplicatorCheckpoint(migration_id=layout.migration_id)
    return store, SegmentWriter(store, checkpoint, "zstd", lambda: Backoff(give_up_after=5), lease)


def _batch(seconds: int, n: int = 3) -> Batch:
    events = [fake_event(Timestamp(seconds, i + 1), i) for i in range(n)]
    return Batch(events, Timestamp(seconds, 1), Timestamp(seconds, n), sum(map(len, events)))


def test_a_fenced_writer_can_neither_checkpoint_nor_take_the_new_holders_segment(bucket: str) -> None:
    """A writer paused between its lease check and its PUTs, while another took over: its late
    PUTs fail instead of replacing the new holder's checkpoint or segment."""
    s3 = S3Objects(bucket)
    layout = new_layout(bucket)
    old_lease = lease_for(s3, layout.replicator_lease).acquire()
    old_store, old = _writer(s3, layout, old_lease)
    old.start()
    old.segment(_batch(100), {"_data": "01"}, Timestamp(100, 3), "running")
    old.close()
    assert old_store.load().last_seq == 1

    time.sleep(TTL + 0.1)
    new_lease = lease_for(s3, layout.replicator_lease).acquire()
    new_store, new = _writer(s3, layout, new_lease)
    new_store.save(new.checkpoint)
    new.start()
    new.segment(_batch(200), {"_data": "02"}, Timestamp(200, 3), "running")
    new.close()
    mine = s3.head(layout.segment(2, "zstd"))

    with pytest.raises(CheckpointChanged):  # the paused writer's checkpoint PUT, past its fence
        old_store.save(old.checkpoint)
    with pytest.raises(LeaseLost):  # its next segment is fenced before the PUT
        old._put_segment(
            layout.segment(2, "zstd"),
            *segments.build(
                _batch(150).events,
                Timestamp(150, 1),
                Timestamp(150, 3),
                "zstd",
                migration_id=layout.migration_id,
                seq=2,
                writer=old_lease.holder.token,
            ),
        )
    assert s3.head(layout.segment(2, "zstd"))["ETag"] == mine["ETag"]
    assert new_store.load().last_seq == 2


def test_a_fenced_writers_uncheckpointed_segment_is_replaced_by_the_holder(bucket: str) -> None:
    """The key of the next segment holds a fenced writer's late PUT: the holder deletes it (under
    the lease) and writes its own."""
    s3 = S3Objects(bucket)
    layout = new_layout(bucket)
    lease = lease_for(s3, layout.replicator_lease).acquire()
    store, writer = _writer(s3, layout, lease)
    body, info = segments.build(
        _batch(150).events,
        Timestamp(150, 1),
        Timestamp(150, 3),
        "zstd",
        migration_id=layout.migration_id,
        seq=1,
        writer="a-fenced-writer",
    )
    s3.put_bytes(layout.segment(1, "zstd"), body, info.metadata())
    writer.start()
    writer.segment(_batch(200), {"_data": "02"}, Timestamp(200, 3), "running")
    writer.close()
    meta = s3.head(layout.segment(1, "zstd"))["Metadata"]
    assert meta[segments.META_WRITER] == lease.holder.token and meta[segments.META_FIRST] == "200:1"
    assert store.load().last_seq == 1
