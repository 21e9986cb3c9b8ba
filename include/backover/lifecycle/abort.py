"""Abort: give the microservices' user its prior roles back and ask the replicator to stop.

Used by the abort DAG and ``backover abort``. Deletes nothing: segments, checkpoints, backups and
state files stay for inspection. The stop request is ``control/stop.json``,
``{"requested_at": <date>, "reason": "abort"}``; the replicator and a follow restore stop (state
``stopped``) when they see it. A migration with a stop request cannot be started or frozen again
(a new migration id starts afresh). Idempotent: the first ``requested_at`` is kept.

Once the user's roles, read back from the source, are its prior roles again, abort records so in
``state/abort.json`` (:class:`~backover.state.AbortRecord`: the roles and which migrated databases
they let the user write); the stop request alone says only that an abort was asked for (the
Migrations page tells the two apart).

The result says exactly what abort restored and what it left: the user's roles as the source
reports them afterwards and which migrated databases they let it write (prior roles that were
read-only stay read-only: abort gives back what the user had, not write access), the change
streams Back Over enabled (they stay on), the replicator's and the follow restore's state
(:func:`aftermath`, also read by the abort DAG's last task), and the next steps.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from .. import state
from ..connections import DatabaseUri
from ..errors import JobFailed, UsageError
from ..layout import MigrationLayout
from ..namespaces import Namespace
from ..s3objects import S3Objects
from ..state import (
    AbortRecord,
    CleanRecord,
    ReplicatorCheckpoint,
    ReplicatorState,
    RestoreCheckpoint,
    RestoreState,
    StartRecord,
)
from . import users
from .events import LifecycleEvent
from .results import AbortLeft, AbortResult, now_ms
from .source import connect, master_uri

log = logging.getLogger(__name__)


def refuse_if_aborted(s3: S3Objects, layout: MigrationLayout) -> None:
    """UsageError when the migration was aborted (its replicator is stopping or stopped)."""
    key = layout.stop_request
    if s3.head(key) is not None:
        raise UsageError(f"migration {layout.migration_id!r} was aborted ({key}); start a new migration id")


def abort(layout: MigrationLayout, source: DatabaseUri, s3: S3Objects | None = None) -> AbortResult:
    """Ask the replicator to stop, then give the app user the roles ``state/start.json`` saved."""
    s3 = s3 or S3Objects(layout.bucket)
    s3.check_bucket()
    started = state.read(s3, layout.start_state, StartRecord)
    if started is None:
        raise UsageError(f"nothing to abort: migration {layout.migration_id!r} has no {layout.start_state}")
    cleaned = state.read(s3, layout.clean_state, CleanRecord)
    if cleaned is not None and cleaned.cleaned_at is not None:
        raise UsageError(f"migration {layout.migration_id!r} is already cleaned: too late to abort")
    key = layout.stop_request
    existing = s3.get_json(key)
    requested_at = existing["requested_at"] if existing and existing.get("requested_at") else now_ms()
    s3.put_json(key, {"requested_at": requested_at, "reason": "abort"})
    log.info("abort %s: replicator stop requested in s3://%s/%s", layout.migration_id, layout.bucket, key)
    if started.app_user is None:
        raise JobFailed(
            f"s3://{layout.bucket}/{layout.start_state} names no app_user: cannot give its roles back"
        )
    user = started.app_user
    prior = users.normalise(started.prior_roles)
    notes = []
    with connect(source) as client:
        current = users.get_roles(client, user)
        if current != prior:
            users.set_roles(client, user, prior)
        else:
            notes.append("the user already had its prior roles")
        now = users.get_roles(client, user)  # as the source reports them after the change
    if sorted(map(str, now)) != sorted(map(str, prior)):
        raise JobFailed(
            f"{user} holds {users.describe(now)} after the change, not its prior roles {users.describe(prior)}"
        )
    if not started.finished:
        notes.append("the start had not finished")
    can_write, cannot_write = describe_writes(now, migrated_databases(started))
    confirmed = AbortRecord(
        migration_id=layout.migration_id,
        app_user=user,
        roles_now=now,
        can_write=can_write,
        cannot_write=cannot_write,
        confirmed_at=now_ms(),
    )
    state.write(s3, layout.abort_state, confirmed)  # only now: the roles were read back as the prior ones
    if cannot_write:
        notes.append(
            f"its prior roles do not let it write {', '.join(cannot_write)}: it could not before backover_start "
            "either (abort gives back the roles it had, not write access)"
        )
    result = AbortResult(
        migration_id=layout.migration_id,
        app_user=user,
        roles_restored=prior,
        roles_now=now,
        can_write=can_write,
        cannot_write=cannot_write,
        stop_requested_at=requested_at,
        stop_key=key,
        left=aftermath(s3, layout, started),
        notes=notes,
    )
    for line in summary(user, now, migrated_databases(started), result.left):
        log.info("abort %s: %s", layout.migration_id, line)
    return result


def migrated_databases(started: StartRecord) -> list[str]:
    """The databases ``state/start.json`` migrates."""
    return sorted(set(started.databases) or {Namespace.parse(ns).db for ns in started.namespaces})


def _replicator(cp: ReplicatorCheckpoint | None) -> str:
    if cp is None:
        return "the replicator wrote no checkpoint (it never ran): if it starts, control/stop.json stops it"
    if cp.state is ReplicatorState.STOPPED:
        return "the replicator stopped: nothing captures the app's writes any more"
    if cp.state is ReplicatorState.DRAINED:
        return "the replicator had drained at the freeze: nothing captures the app's writes any more"
    if cp.state is ReplicatorState.FAILED:
        return f"the replicator failed ({cp.reason or 'no reason given'}): nothing captures the app's writes"
    return (
        f"the replicator is still {cp.state} (last heartbeat {cp.heartbeat_at.isoformat() if cp.heartbeat_at else '?'}):"
        " asked to stop, it stops when it next reads control/stop.json (seconds)"
    )


def _restore(cp: RestoreCheckpoint | None) -> str:
    if cp is None:
        return "no restore ran: MongoDB holds none of the captured changes"
    kind = "follow restore" if cp.follow else "restore"
    if cp.state is RestoreState.RUNNING:
        return (
            f"the {kind} is still running (segment {cp.last_applied_seq} applied): asked to stop, it stops "
            "when it next reads control/stop.json"
        )
    return (
        f"the {kind} is {cp.state} after segment {cp.last_applied_seq}: MongoDB holds the changes it applied"
    )


def aftermath(s3: S3Objects, layout: MigrationLayout, started: StartRecord) -> AbortLeft:
    """What an abort leaves as it is, read from the migration's records now."""
    replicator = state.read(s3, layout.replicator_checkpoint, ReplicatorCheckpoint)
    restore = state.read(s3, layout.restore_checkpoint, RestoreCheckpoint)
    streams = sorted(Namespace.from_doc(d) for d in started.change_streams_enabled)
    left = [
        _replicator(replicator),
        _restore(restore),
        (
            f"change streams stay on for {', '.join(map(str, streams))} (backover_start enabled them)"
            if streams
            else "no change stream to disable (backover_start enabled none: they were on already, or MongoDB)"
        ),
        f"every file stays in s3://{layout.bucket}/{layout.root} (segments, checkpoints, backups, reports)",
    ]
    steps = []
    wrote = restore is not None or s3.head(layout.sync_plan) is not None
    if wrote:
        rollback = s3.head(layout.backup_manifest("mongodb")) is not None
        steps.append(
            "MongoDB holds what Back Over wrote to it: `backover backup --label mongodb --restore --drop` against "
            "MongoDB puts back the backup taken before Back Over first wrote"
            if rollback
            else "MongoDB holds what Back Over wrote to it, and no rollback backup (backups/mongodb/) was taken"
        )
    if streams:
        steps.append(
            "to turn the change streams off: `backover clean --force --source-secret-id ...` on the worker "
            "(it also deletes the captured segments; backups stay)"
        )
    steps.append("to migrate again, trigger backover_start with a new migration id (this one is aborted)")
    return AbortLeft(
        change_streams_left_on=streams,
        replicator_state=replicator.state if replicator is not None else None,
        restore_state=restore.state if restore is not None else None,
        left=left,
        next_steps=steps,
    )


def summary(user: str, roles: Sequence[users.Role], databases: Sequence[str], left: AbortLeft) -> list[str]:
    """The log lines of an abort (the command's and the abort DAG's last task): the roles the user
    holds now and what they let it write, what abort left, the next steps."""
    can, cannot = describe_writes(roles, databases)
    lines = [
        f"{user} holds its prior roles again: {users.describe(roles)} (read back from the source)",
        f"it can write: {', '.join(can) or 'none of the migrated databases'}"
        + (f"; it cannot write: {', '.join(cannot)} (its prior roles are read-only there)" if cannot else ""),
    ]
    lines += [f"left: {line}" for line in left.left]
    lines += [f"next: {line}" for line in left.next_steps]
    return lines


def describe_writes(roles: Sequence[users.Role], databases: Sequence[str]) -> tuple[list[str], list[str]]:
    """The migrated ``databases`` that ``roles`` let their holder write, and the others."""
    can = [db for db in databases if users.write_roles_on(roles, db)]
    return can, [db for db in databases if db not in can]


def abort_event(event: LifecycleEvent, source: DatabaseUri | None = None) -> AbortResult:
    """Abort with a lifecycle event's bucket, prefix, id and master secret (for the abort DAG)."""
    return abort(event.layout(), source or master_uri(event))
