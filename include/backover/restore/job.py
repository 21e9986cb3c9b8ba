"""``backover restore``: replay the captured segments into MongoDB, in order, and checkpoint.

Planning and applying overlap: while the applier writes window ``n`` (on its own thread, lanes
in a pool), the main thread downloads, verifies and plans window ``n + 1``. A segment is
recorded in the checkpoint once every step holding its events has been applied.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from pymongo import MongoClient

from ..connections import check_connection
from ..errors import BackoverError, UsageError
from ..lease import Lease, LeaseHeld, holding
from ..s3objects import S3Objects
from ..state import DdlState, ReplicatorCheckpoint, ReplicatorState, RestoreCheckpoint, RestoreState
from ..sync.job import check_restore_may_start
from .applier import Applier, ApplyStats
from .checkpoint import CheckpointStore, commit
from .config import RestoreConfig
from .displaced import Displaced
from .follow import CapturePoller, lag
from .planner import Barrier, Step, plan
from .progress import Progress
from .reader import SegmentReader, list_segments
from .target import MongoTarget, Target

log = logging.getLogger("backover.restore")


@dataclass
class RestoreResult:
    """The outcome of one run (``state`` is the checkpoint's)."""

    state: RestoreState
    first_seq: int
    last_seq: int
    segments_applied: int = 0
    events_applied: int = 0  # this run
    writes: int = 0
    commands: int = 0
    conflicts_resolved: int = 0
    holder_lookups: int = 0
    already_reflected: int = 0
    seconds: float = 0.0
    per_namespace: dict[str, dict[str, int]] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {**self.__dict__, "seconds": round(self.seconds, 3)}


@dataclass
class PlanSummary:
    """What ``--dry-run`` prints: the plan, nothing written."""

    first_seq: int
    last_seq: int
    segments: int = 0
    events: int = 0
    windows: int = 0
    writes: int = 0
    rounds: int = 0
    per_namespace: dict[str, dict[str, int]] = field(default_factory=dict)
    ddl: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {"dry_run": True, **self.__dict__}


def run_restore(
    config: RestoreConfig,
    *,
    s3: S3Objects | None = None,
    target: Target | None = None,
    stop: threading.Event | None = None,
    on_ready: Callable[[], None] | None = None,
) -> RestoreResult | PlanSummary:
    """Apply (or with ``dry_run`` only plan) the segments after the restore checkpoint; with
    ``follow``, go on applying segments as they land until the replicator has drained.

    Only the holder of the restore lease writes (a second restore is refused, exit 2, before
    writing anything, or with ``wait`` waits for the holder to end); a dry run writes nothing and
    takes no lease. ``stop`` (set by SIGTERM in the command) ends a follow restore after its
    current step (state ``stopped``); ``on_ready`` is called once the restore has written its
    first checkpoint (``--detach`` returns then)."""
    s3 = s3 or S3Objects(config.layout.bucket)
    s3.check_bucket()
    if config.dry_run:
        return _run_restore(config, s3, target)
    stop = stop or threading.Event()
    lease = Lease(
        s3,
        config.layout.restore_lease,
        role="restore",
        migration_id=config.layout.migration_id,
        ttl_seconds=config.lease_ttl_seconds,
        renew_seconds=config.lease_renew_seconds,
    )
    with holding(lease, wait=_waiting(s3, config, stop) if config.wait else None):
        check_restore_may_start(s3, config.layout)  # under the lease: a sync planning now sees it
        return _run_restore(config, s3, target, lease, stop, on_ready)


def _waiting(s3: S3Objects, config: RestoreConfig, stop: threading.Event) -> Callable[[LeaseHeld], bool]:
    """``--wait``: while another restore holds the lease, log what it is doing every so often."""
    last_line = 0.0

    def wait(held: LeaseHeld) -> bool:
        nonlocal last_line
        if time.monotonic() - last_line >= config.progress_seconds:
            last_line = time.monotonic()
            cp = CheckpointStore(s3, config.layout).load()
            doing = (
                f"{'following, ' if cp.follow else ''}{cp.state}, segment {cp.last_applied_seq} applied"
                if cp is not None
                else "no checkpoint yet"
            )
            log.info("waiting for the restore that holds the lease to end (%s): %s", doing, held)
        return not stop.wait(min(config.poll_seconds * 4, 2.0))

    return wait


def _run_restore(
    config: RestoreConfig,
    s3: S3Objects,
    target: Target | None,
    lease: Lease | None = None,
    stop: threading.Event | None = None,
    on_ready: Callable[[], None] | None = None,
) -> RestoreResult | PlanSummary:
    store = CheckpointStore(s3, config.layout, fence=lease.fence if lease is not None else None)
    replicator = store.replicator()
    if config.reset and not config.dry_run:
        log.warning("--reset: forgetting this restore's checkpoint, DDL record and documents moved aside")
        store.reset()
    previous = None if config.reset else store.load()
    done_before = previous.last_applied_seq if previous else 0
    first = config.from_seq or done_before + 1
    if first > done_before + 1:
        raise UsageError(
            f"--from-seq {first} would skip segments {done_before + 1}..{first - 1}, which were never applied"
        )
    if done_before > replicator.last_seq:
        raise UsageError(
            f"the restore checkpoint says segment {done_before} was applied, but the replicator "
            f"checkpoint has only {replicator.last_seq}: wrong migration id or bucket?"
        )
    if not replicator.state.capture_over() and not config.follow:
        log.warning(
            "the replicator is %s: restoring the %d segment(s) captured so far; run restore again "
            "after the drain for the rest",
            replicator.state,
            replicator.last_seq,
        )
    if (
        previous is not None
        and previous.state is RestoreState.COMPLETED
        and replicator.state.capture_over()
        and first > replicator.last_seq
        and not config.dry_run
    ):
        # A restore --wait after the follow restore completed the tail: nothing is left, and the
        # completed checkpoint stays exactly as its writer left it (never "running" again).
        log.info(
            "the restore of %s already completed: segments up to %d applied, %d events; nothing left",
            config.layout.migration_id,
            previous.last_applied_seq,
            previous.events_applied,
        )
        if on_ready is not None:
            on_ready()
        return RestoreResult(
            state=RestoreState.COMPLETED,
            first_seq=first,
            last_seq=replicator.last_seq,
            per_namespace=previous.per_namespace,
        )
    if config.dry_run:
        refs = list_segments(s3, config.layout, first, replicator.last_seq)
        return _dry_run(
            plan(SegmentReader(s3, refs, config.prefetch), config.window), first, replicator.last_seq
        )

    client: MongoClient[dict[str, Any]] | None = None
    if target is None:
        assert config.target is not None
        client = config.target.client(maxPoolSize=config.workers + 4)
        check_connection(config.target, client)
        target = MongoTarget(client)
    checkpoint = previous or RestoreCheckpoint(config.layout.migration_id)
    checkpoint.state, checkpoint.reason = RestoreState.RUNNING, None
    checkpoint.follow = config.follow
    checkpoint.heartbeat_seconds = config.heartbeat_seconds if config.follow else None
    applied_through = None if config.reset else store.applied_through()
    displaced = Displaced() if config.reset else store.load_displaced(previous)
    store.save(checkpoint, displaced)
    if on_ready is not None:
        on_ready()
    applier = Applier(
        target,
        workers=config.workers,
        displaced=displaced,
        before_ddl=lambda b: store.record_ddl(b, DdlState.STARTED, displaced),
        after_ddl=lambda b: store.record_ddl(b, DdlState.APPLIED, displaced),
        before_remove=lambda: _kept_before_removal(store, displaced, lease),
        before_writes=lease.check if lease is not None else None,
    )
    progress = Progress(
        first_seq=first,
        total_segments=replicator.last_seq,
        total_events=replicator.events_total,
        events_before=checkpoint.events_applied,
        interval=config.progress_seconds,
        follow=config.follow,
    )
    result = RestoreResult(state=RestoreState.RUNNING, first_seq=first, last_seq=replicator.last_seq)
    log.info(
        "restore of %s: %s %d..%d into %s, %d worker(s), windows of %d events%s",
        config.layout.migration_id,
        "following the capture from segment" if config.follow else "segments",
        first,
        replicator.last_seq,
        config.target or "the given target",
        config.workers,
        config.window,
        f"; events up to segment {applied_through[0]} event {applied_through[1]} are applied already"
        if applied_through and applied_through[0] >= first
        else "",
    )
    started = time.monotonic()
    stop = stop or threading.Event()
    try:
        replicator = _apply_segments(
            config, s3, store, replicator, first, applied_through, applier, checkpoint, progress, result, stop
        )
        result.last_seq = replicator.last_seq
        if replicator.state.capture_over() and displaced and checkpoint.state is RestoreState.RUNNING:
            log.info(
                "writing back %d document(s) moved aside for unique keys", applier.write_back_displaced()
            )
        if checkpoint.state is RestoreState.RUNNING:
            checkpoint.state = RestoreState.COMPLETED
        store.save(checkpoint, displaced)
    except BackoverError as e:
        checkpoint.state, checkpoint.reason = RestoreState.FAILED, str(e)
        store.save(checkpoint, displaced)
        raise
    finally:
        applier.close()
        if client is not None:
            client.close()
        _fill(result, applier.stats, target, checkpoint, time.monotonic() - started)
    progress.log_line()
    log.info(
        "restore %s: segments up to %d applied, %d events this run, %d writes in %d commands, "
        "%d unique-key conflict(s) resolved, %.1f s%s",
        checkpoint.state,
        checkpoint.last_applied_seq,
        result.events_applied,
        result.writes,
        result.commands,
        result.conflicts_resolved,
        result.seconds,
        f" ({checkpoint.reason})" if checkpoint.reason else "",
    )
    return result


def _apply_segments(
    config: RestoreConfig,
    s3: S3Objects,
    store: CheckpointStore,
    replicator: ReplicatorCheckpoint,
    first: int,
    applied_through: tuple[int, int] | None,
    applier: Applier,
    checkpoint: RestoreCheckpoint,
    progress: Progress,
    result: RestoreResult,
    stop: threading.Event,
) -> ReplicatorCheckpoint:
    """Apply the segments from ``first`` to the replicator's ``last_seq``; in follow mode, again
    and again as segments land, until the drain (or a stop). Returns the replicator checkpoint
    last read. A stop leaves ``checkpoint.state`` ``stopped`` with the reason."""
    poller = CapturePoller(s3, config.layout, config.heartbeat_seconds) if config.follow else None
    next_seq = first
    while True:
        refs = list_segments(s3, config.layout, next_seq, replicator.last_seq)
        if refs:
            _apply_all(
                plan(SegmentReader(s3, refs, config.prefetch), config.window, applied_through),
                applier,
                store,
                checkpoint,
                progress,
                result,
                config.checkpoint_seconds,
                stop,
            )
            next_seq = checkpoint.last_applied_seq + 1
        if poller is None:
            return replicator
        caught_up = next_seq > replicator.last_seq
        if caught_up and replicator.state is ReplicatorState.DRAINED:
            return replicator
        why = (
            "a signal"
            if stop.is_set()
            else "an abort (control/stop.json)"
            if poller.abort_requested()
            else None
        )
        if why is not None:
            checkpoint.state, checkpoint.reason = RestoreState.STOPPED, f"follow restore stopped by {why}"
            return replicator
        age = time.monotonic() - store.saved_at
        unsaved = checkpoint.last_applied_seq > store.saved_seq
        if (unsaved and age >= config.checkpoint_seconds) or age >= config.heartbeat_seconds:
            store.save(checkpoint, applier.displaced)  # what was applied since, or the heartbeat
        if caught_up:
            progress.idle(lag(checkpoint, replicator))
            stop.wait(config.poll_seconds)
        replicator = poller.replicator(replicator)
        progress.extend(replicator.last_seq, replicator.events_total)


def _kept_before_removal(store: CheckpointStore, displaced: Displaced, lease: Lease | None) -> None:
    """Before a holder leaves the target: its kept copy is in S3, and the lease is still this
    restore's (the save may have stalled past the TTL: then another restore owns the target)."""
    store.save_displaced(displaced)
    if lease is not None:
        lease.check()


def _apply_all(
    steps: Any,
    applier: Applier,
    store: CheckpointStore,
    checkpoint: RestoreCheckpoint,
    progress: Progress,
    result: RestoreResult,
    checkpoint_seconds: float,
    stop: threading.Event | None = None,
) -> None:
    """Apply ``steps`` one at a time on a coordinator thread while the next one is planned here;
    a ``stop`` ends it after the step in flight. The checkpoint is saved when a step completes a
    segment and the last save (``store.saved_at``, across calls) is ``checkpoint_seconds`` old."""

    def finished(step: Step, future: Future[None]) -> None:
        future.result()
        result.events_applied += step.events
        for done in step.done:
            commit(checkpoint, done)
            result.segments_applied += 1
        progress.advance(step.events, checkpoint.last_applied_seq)
        due = time.monotonic() - store.saved_at >= checkpoint_seconds
        if step.done and (due or isinstance(step, Barrier)):
            store.save(checkpoint, applier.displaced)

    with ThreadPoolExecutor(1, thread_name_prefix="restore-apply") as coordinator:
        pending: tuple[Step, Future[None]] | None = None
        try:
            for step in steps:  # plans the next step while the pending one is applied
                if pending is not None:
                    current, pending = pending, None
                    finished(*current)
                pending = (step, coordinator.submit(applier.apply, step))
                if stop is not None and stop.is_set():
                    break
        finally:
            if pending is not None:  # a step in flight completes (or fails) before anything else
                finished(*pending)


def _fill(
    result: RestoreResult, stats: ApplyStats, target: Target, checkpoint: RestoreCheckpoint, seconds: float
) -> None:
    result.state = checkpoint.state
    result.writes = stats.writes
    result.commands = target.commands
    result.conflicts_resolved = stats.conflicts_resolved
    result.holder_lookups = stats.holder_lookups
    result.already_reflected = stats.already_reflected
    result.seconds = seconds
    result.per_namespace = checkpoint.per_namespace


def _dry_run(steps: Any, first: int, last: int) -> PlanSummary:
    summary = PlanSummary(first_seq=first, last_seq=last)
    per_ns: dict[str, Counter[str]] = {}
    for step in steps:
        summary.events += step.events
        for done in step.done:
            summary.segments += 1
            for ns, counts in done.counts.items():
                per_ns.setdefault(ns, Counter()).update(counts)
        if isinstance(step, Barrier):
            event = step.event
            summary.ddl.append(
                {
                    "segment": step.seq,
                    "op": event.op,
                    "ns": event.ns,
                    **({"to": str(event.to)} if event.to else {}),
                }
            )
        elif step.events:
            summary.windows += 1
            summary.writes += step.writes
            summary.rounds += len(step.rounds())
    summary.per_namespace = {ns: dict(counts) for ns, counts in sorted(per_ns.items())}
    for line in describe_plan(summary):
        log.info("%s", line)
    return summary


def describe_plan(summary: PlanSummary) -> list[str]:
    """Human lines for the log."""
    lines = [
        f"dry run: segments {summary.first_seq}..{summary.last_seq} ({summary.segments}), "
        f"{summary.events:,} events -> {summary.writes:,} writes in {summary.windows} window(s), "
        f"{len(summary.ddl)} DDL barrier(s); nothing written"
    ]
    for ns, counts in summary.per_namespace.items():
        lines.append(f"  {ns}: " + ", ".join(f"{op} {n:,}" for op, n in sorted(counts.items())))
    for ddl in summary.ddl:
        lines.append(
            f"  DDL segment {ddl['segment']}: {ddl['op']} {ddl['ns']}"
            + (f" -> {ddl['to']}" if "to" in ddl else "")
        )
    return lines
