"""``replicate(config)``: check everything, take the lease, then capture (see :mod:`.capture`).

Bad input is found before anything is written to S3: the bucket, the source's address and
credentials, the checkpoint's migration, the start position (not after the source's current
cluster time), the namespaces, whether a change stream can be opened there (DocumentDB: enabled
with ``modifyChangeStreams``) and whether the checkpoint's last segment exists. Then the
replicator lease is taken (:mod:`backover.lease`: a second replicator refuses here, exit 2, having
written nothing) and only then are orphans removed and the first checkpoint written.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any, NoReturn

from bson.timestamp import Timestamp
from pymongo import MongoClient
from pymongo.errors import PyMongoError

from .. import clustertime, state
from ..errors import JobFailed, UsageError
from ..lease import Lease, holding
from ..lifecycle.source import cluster_time
from ..namespaces import Namespace, parse_all
from ..s3objects import S3Objects
from ..signals import stop_on_signals
from ..state import ReplicatorCheckpoint, ReplicatorState, StartRecord
from . import source
from .capture import Capture, ReplicateResult
from .checkpoint import CheckpointStore, check_last_segment
from .config import START_AT_TOLERANCE_SECONDS, ReplicateConfig
from .drain import DrainPoller
from .events import RawEvent
from .namespaces import NamespaceFilter, WatchScope, narrowest_scope
from .retry import Backoff
from .segment_writer import SegmentWriter, remove_orphans
from .source import HistoryLost, StreamStart

log = logging.getLogger(__name__)


def replicate(
    config: ReplicateConfig, stop: threading.Event | None = None, on_ready: Callable[[], None] | None = None
) -> ReplicateResult:
    """Capture the source's changes into segments until drained, stopped (``stop`` or SIGTERM) or
    broken. ``on_ready()`` is called once the first checkpoint is written (``--detach`` waits for it).

    UsageError (exit 2) for bad input, or another live replicator holding the lease, with nothing
    written; JobFailed (exit 1) when the capture breaks, after the checkpoint says ``failed``, or
    when this process loses the lease (then it writes nothing more).
    """
    stop = stop or threading.Event()
    layout = config.layout
    s3 = S3Objects(layout.bucket)
    s3.check_bucket()
    store = CheckpointStore(s3, layout)
    checkpoint = store.load()
    if checkpoint is not None and checkpoint.state is ReplicatorState.DRAINED:
        return _already_drained(s3, store, checkpoint)
    start_doc = _start_state(s3, layout.start_state, layout.migration_id)
    namespaces = _namespaces(config, start_doc)
    scope = narrowest_scope(namespaces)
    client = source.connect(config.source, config.connect_timeout)
    try:
        if checkpoint is None or checkpoint.resume_token is None:
            _check_namespaces(client, namespaces, start_doc)

        def opener(at: StreamStart, await_ms: int | None = None) -> Any:
            return source.open_stream(client, scope, at, await_ms or config.await_ms)

        seen = store.etag
        start, opened, history_lost = _open(config, client, scope, opener, s3, store, checkpoint, start_doc)
        # Everything checked: from here on S3 is written, by the lease holder only.
        lease = Lease(
            s3,
            layout.replicator_lease,
            role="replicator",
            migration_id=layout.migration_id,
            ttl_seconds=config.lease_ttl_seconds,
            renew_seconds=config.lease_renew_seconds,
        )
        with holding(lease):
            fresh = store.load()
            if store.etag != seen:  # another replicator wrote it between our look and the lease
                log.info("the checkpoint changed before the lease was taken: starting again from it")
                _close(opened)
                if fresh is not None and fresh.state is ReplicatorState.DRAINED:
                    return _already_drained(s3, store, fresh)
                checkpoint = fresh
                start, opened, history_lost = _open(
                    config, client, scope, opener, s3, store, checkpoint, start_doc
                )
            first = checkpoint or ReplicatorCheckpoint(migration_id=layout.migration_id)
            writer = SegmentWriter(
                store, first, config.compression, lambda: Backoff(give_up_after=config.give_up_seconds), lease
            )
            if history_lost is not None:
                _fail_at_start(writer, history_lost)
            assert opened is not None
            first.state, first.reason = ReplicatorState.RUNNING, None
            lease.fence()
            store.save(first)  # first: a fenced predecessor's late checkpoint PUT now fails
            remove_orphans(s3, layout, first.last_seq)
            log.info(
                "replicating %s (%s) into s3://%s/%s, segments from %d, %s compression",
                ", ".join(map(str, namespaces)),
                scope,
                layout.bucket,
                layout.changes_prefix,
                first.last_seq + 1,
                config.compression,
            )
            if on_ready is not None:
                on_ready()
            namespace_filter = (
                NamespaceFilter(namespaces) if NamespaceFilter.needed(namespaces, scope) else None
            )
            capture = Capture(
                config,
                scope,
                namespace_filter,
                opener,
                opened,
                start,
                writer,
                DrainPoller(s3, layout, config.drain_poll_seconds),
                stop,
            )
            writer.start()
            with stop_on_signals(stop, "flushing, checkpointing and stopping"):
                return capture.run()
    finally:
        client.close()


def _already_drained(
    s3: S3Objects, store: CheckpointStore, checkpoint: ReplicatorCheckpoint
) -> ReplicateResult:
    check_last_segment(s3, store.layout, checkpoint)
    log.info(
        "the checkpoint says drained (until %s): nothing to do",
        clustertime.format(checkpoint.drained_until) if checkpoint.drained_until else "?",
    )
    return ReplicateResult(
        ReplicatorState.DRAINED,
        events_total=checkpoint.events_total,
        last_seq=checkpoint.last_seq,
        drained_until=checkpoint.drained_until,
    )


def _open(
    config: ReplicateConfig,
    client: MongoClient[RawEvent],
    scope: WatchScope,
    opener: Callable[[StreamStart], Any],
    s3: S3Objects,
    store: CheckpointStore,
    checkpoint: ReplicatorCheckpoint | None,
    start_doc: StartRecord | None,
) -> tuple[StreamStart, Any, str | None]:
    """Check the checkpoint's last segment and the start position, then open the stream:
    ``(start, opened stream or None, the history-lost reason or None)``."""
    if checkpoint is not None:
        check_last_segment(s3, store.layout, checkpoint)
    start = _start_position(config, checkpoint, start_doc)
    if start.start_at is not None:
        _check_not_in_future(client, start.start_at)
    try:
        return start, opener(start), None
    except HistoryLost as e:
        return start, None, str(e)
    except PyMongoError as e:
        raise source.open_refused(e, scope, config.source) from None


def _close(opened: Any) -> None:
    if opened is None:
        return
    stream, session = opened
    with contextlib.suppress(PyMongoError):
        stream.close()
    with contextlib.suppress(PyMongoError):
        session.end_session()


def _check_not_in_future(client: MongoClient[RawEvent], start_at: Timestamp) -> None:
    """UsageError for a start position later than the source's current cluster time (plus
    :data:`START_AT_TOLERANCE_SECONDS`): the changes until then would be lost."""
    now = cluster_time(client)
    if start_at.time > now.time + START_AT_TOLERANCE_SECONDS:
        raise UsageError(
            f"start position {clustertime.format(start_at)} is {start_at.time - now.time}s after the "
            f"source's current cluster time {clustertime.format(now)}: the changes until then would "
            "not be captured (check --start-at)"
        )


def _check_namespaces(
    client: MongoClient[RawEvent], namespaces: tuple[Namespace, ...], start_doc: StartRecord | None
) -> None:
    """Starting from a cluster time: a namespace that does not exist now is refused, unless the
    migration's ``state/start.json`` names it (it was migrated from T0 on and dropped since: its
    events, the drop included, are in the stream since T0), which only logs a warning."""
    recorded = set(parse_all(start_doc.namespaces)) if start_doc is not None else set()
    for ns, reason in source.missing_namespaces(client, namespaces).items():
        if ns not in recorded:
            raise UsageError(reason)
        log.warning(
            "%s; state/start.json names it, so it existed when the migration started and its changes "
            "since T0 (its drop included) are in the stream: going on",
            reason,
        )


def _fail_at_start(writer: SegmentWriter, reason: str) -> NoReturn:
    log.error("%s", reason)
    writer.start()
    writer.checkpoint_only(ReplicatorState.FAILED, reason=reason)
    writer.close()
    raise JobFailed(reason)


def _start_state(s3: S3Objects, key: str, migration_id: str) -> StartRecord | None:
    """``state/start.json``; UsageError when it is another migration's, RecordError when malformed."""
    start = state.read(s3, key, StartRecord)
    if start is not None and start.migration_id is not None and start.migration_id != migration_id:
        raise UsageError(f"{key} belongs to migration {start.migration_id!r}, not {migration_id!r}")
    return start


def _namespaces(config: ReplicateConfig, start_doc: StartRecord | None) -> tuple[Namespace, ...]:
    texts = config.namespaces
    if not texts and start_doc is not None:
        if not start_doc.namespaces:
            raise UsageError("state/start.json has no list of namespaces: pass --namespace")
        texts = tuple(start_doc.namespaces)
    if not texts:
        raise UsageError(
            "no namespaces to watch: pass --namespace, or let the start Lambda write state/start.json"
        )
    return parse_all(texts)


def _start_position(
    config: ReplicateConfig, checkpoint: ReplicatorCheckpoint | None, start_doc: StartRecord | None
) -> StreamStart:
    """After the checkpoint's token; else --start-at; else T0 of start.json; never "now"."""
    if checkpoint is not None and checkpoint.resume_token is not None:
        if config.start_at is not None:
            log.warning(
                "--start-at %s ignored: resuming after the checkpoint (segment %d)",
                clustertime.format(config.start_at),
                checkpoint.last_seq,
            )
        return StreamStart(token=checkpoint.resume_token)
    if config.start_at is not None:
        return StreamStart(start_at=config.start_at)
    if start_doc is not None and start_doc.t0 is not None:
        return StreamStart(start_at=start_doc.t0)
    if start_doc is not None:
        raise UsageError("state/start.json has no t0 timestamp: pass --start-at <seconds>:<increment>")
    raise UsageError(
        "no start position: no checkpoint to resume from, no state/start.json and no --start-at "
        "(the replicator never starts from 'now')"
    )
