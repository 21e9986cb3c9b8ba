"""Conditional writes (leases, checkpoints, segments, the restore's state) against moto's S3: a
retried request whose first attempt landed is recognised as the caller's own, a concurrent
request's 409 is retried, and a write by anyone else is a Conflict."""

from __future__ import annotations

import uuid

import pytest
from botocore.exceptions import ClientError

from backover.errors import JobFailed
from backover.layout import MigrationLayout
from backover.lease import Lease
from backover.restore.checkpoint import CheckpointStore
from backover.s3objects import Conflict, S3Objects
from backover.state import RestoreCheckpoint


class RetriedAfterLanding:
    """The S3 client as botocore behaves when a PUT's answer is lost (a read timeout): the first
    attempt lands, botocore sends it again, and the caller sees the second attempt's answer."""

    def __init__(self, client) -> None:
        self._client = client
        self.armed = True

    def put_object(self, **kwargs):
        if self.armed:
            self.armed = False
            self._client.put_object(**kwargs)  # lands; its answer is "lost"
        return self._client.put_object(**kwargs)

    def __getattr__(self, name):
        return getattr(self._client, name)


class ConcurrentOnce:
    """Answers the first PUT with S3's 409 ConditionalRequestConflict, which moto never sends (it
    has no concurrent conditional requests): the one response injected here; moto does the rest."""

    def __init__(self, client) -> None:
        self._client = client
        self.conflicts = 1

    def put_object(self, **kwargs):
        if self.conflicts:
            self.conflicts -= 1
            raise ClientError(
                {"Error": {"Code": "ConditionalRequestConflict", "Message": "retry"}}, "PutObject"
            )
        return self._client.put_object(**kwargs)

    def __getattr__(self, name):
        return getattr(self._client, name)


def key() -> str:
    return f"t/{uuid.uuid4().hex}"


def test_a_create_whose_answer_was_lost_is_the_callers_own(bucket) -> None:
    s3 = S3Objects(bucket)
    s3.client = RetriedAfterLanding(s3.client)
    k = key()
    etag = s3.put_if(k, b"mine", etag=None, metadata={"writer": "me"})
    assert s3.get_versioned(k)[2] == etag and s3.get_bytes(k) == b"mine"
    with pytest.raises(Conflict):  # anyone else's create is still refused
        S3Objects(bucket).put_if(k, b"theirs", etag=None, metadata={"writer": "me"})


def test_an_earlier_attempt_that_landed_is_written_over_and_a_stranger_is_refused(bucket) -> None:
    s3 = S3Objects(bucket)
    k = key()
    first = s3.put_if(k, b"v1", etag=None)
    s3.put_if(k, b"v2-attempt-1", etag=first)  # landed, but the caller never saw its ETag
    etag = s3.put_if(k, b"v2-attempt-2", etag=first, attempted=[b"v2-attempt-1", b"v2-attempt-2"])
    assert s3.get_versioned(k)[:1] == (b"v2-attempt-2",) and s3.get_versioned(k)[2] == etag
    s3.put_bytes(k, b"a stranger")
    with pytest.raises(Conflict):
        s3.put_if(k, b"v3", etag=etag, attempted=[b"v3"])
    assert s3.get_bytes(k) == b"a stranger"


def test_a_409_is_retried(bucket) -> None:
    s3 = S3Objects(bucket)
    s3.client = ConcurrentOnce(s3.client)
    k = key()
    s3.put_if(k, b"x", etag=None)
    assert s3.get_bytes(k) == b"x" and s3.client.conflicts == 0


def test_a_lease_whose_first_put_landed_unseen_is_acquired_not_refused(bucket) -> None:
    s3 = S3Objects(bucket)
    s3.client = RetriedAfterLanding(s3.client)
    layout = MigrationLayout(bucket, "t", f"m-{uuid.uuid4().hex[:8]}")
    lease = Lease(s3, layout.replicator_lease, role="replicator", migration_id=layout.migration_id)
    lease.acquire()  # before: "another replicator holds ...: <this very process>", exit 2
    try:
        lease.fence()
    finally:
        lease.release()
    assert s3.get_bytes(layout.replicator_lease) is None


def test_a_restore_cannot_replace_state_another_restore_wrote_after_it_read(bucket) -> None:
    s3 = S3Objects(bucket)
    layout = MigrationLayout(bucket, "t", f"m-{uuid.uuid4().hex[:8]}")
    late, current = CheckpointStore(s3, layout), CheckpointStore(s3, layout)
    assert late.load() is None and current.load() is None
    current.save(RestoreCheckpoint(layout.migration_id, last_applied_seq=7))
    with pytest.raises(
        JobFailed, match=r"restore/_checkpoint.json was changed by another restore since this one read it"
    ):
        late.save(RestoreCheckpoint(layout.migration_id, last_applied_seq=3))
    assert s3.get_json(layout.restore_checkpoint)["last_applied_seq"] == 7
    current.save(RestoreCheckpoint(layout.migration_id, last_applied_seq=8))  # its own writes go on
    assert s3.get_json(layout.restore_checkpoint)["last_applied_seq"] == 8
