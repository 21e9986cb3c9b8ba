"""``kill -9`` of a ``backover sync`` process in the middle of a partition, then a rerun: the killed
partition resumes after its checkpoint's last ``_id`` (its lease is taken over at once: same host,
process gone), and the target ends byte-identical to the source."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from restore_streams import raw_contents

from backover.state import SyncPartitionState

DOCUMENTS = 20_000


@pytest.mark.slow
def test_a_sync_killed_mid_partition_resumes_that_partition_on_the_rerun(world, moto_server) -> None:
    world.source[world.db].c.insert_many([{"_id": i, "pad": "x" * 500} for i in range(DOCUMENTS)])
    world.start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT_URL")}
    env.update(
        AWS_ENDPOINT_URL=moto_server,
        BACKOVER_SOURCE_URI=world.source_uri,  # through the environment: no password on a command line
        BACKOVER_TARGET_URI=world.target_uri,
    )
    argv = [
        sys.executable,
        "-m",
        "backover",
        "sync",
        "--bucket",
        world.layout.bucket,
        "--prefix",
        world.layout.prefix,
        "--migration-id",
        world.layout.migration_id,
        "--partition-documents",
        "5000",
        "--batch-size",
        "10",
    ]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        killed = None
        while time.monotonic() < deadline and proc.poll() is None:
            for pid in (f"{world.db}.c.{i:04d}" for i in range(4)):
                cp = world.checkpoint(pid)
                if cp is not None and cp.state is SyncPartitionState.RUNNING and cp.documents >= 500:
                    killed = pid
                    break
            if killed:
                break
            time.sleep(0.02)
        assert killed is not None, "the copy ended before it could be killed mid-partition"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    time.sleep(0.3)  # a checkpoint PUT the process sent just before the kill lands meanwhile
    saved = world.checkpoint(killed)
    assert saved is not None and saved.state is SyncPartitionState.RUNNING and 0 < saved.documents < 5000
    assert world.s3.head(world.layout.sync_partition_lease(killed)) is not None  # left by the kill

    result = world.sync(partition_documents=5000, batch_size=10)
    resumed = next(r for r in result.copied if r.partition == killed)
    assert resumed.resumed and resumed.documents == 5000
    # It read only after its last _id: what it inserted plus what it met already there (written
    # after the last checkpoint that reached S3 before the kill) is the rest of the range.
    assert resumed.copied_now + resumed.already_copied == 5000 - saved.documents
    assert resumed.copied_now > 0
    cp = world.checkpoint(killed)
    assert cp is not None and cp.runs == 2
    assert result.complete is not None and result.complete.documents == DOCUMENTS
    assert raw_contents(world.target, world.db) == raw_contents(world.source, world.db)
