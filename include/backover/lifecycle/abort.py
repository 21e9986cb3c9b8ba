"""Abort: give the microservices' user its prior roles back and ask the replicator to stop.

Used by the abort DAG and ``backover abort``. Deletes nothing: segments, checkpoints, backups and
state files stay for inspection. The stop request is ``control/stop.json``,
``{"requested_at": <date>, "reason": "abort"}``; the replicator stops (state ``stopped``) when it
sees it. A migration with a stop request cannot be started or frozen again (a new migration id
starts afresh). Idempotent: the first ``requested_at`` is kept.
"""

from __future__ import annotations

import logging

from .. import state
from ..connections import DatabaseUri
from ..errors import JobFailed, UsageError
from ..layout import MigrationLayout
from ..s3objects import S3Objects
from ..state import CleanRecord, StartRecord
from . import users
from .events import LifecycleEvent
from .results import AbortResult, now_ms
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
            log.info(
                "abort %s: %s has its prior roles back: %s",
                layout.migration_id,
                user,
                ", ".join(f"{r['role']}@{r['db']}" for r in prior) or "none",
            )
        else:
            notes.append("the user already had its prior roles")
            log.info("abort %s: %s already had its prior roles", layout.migration_id, user)
    if not started.finished:
        notes.append("the start had not finished")
    return AbortResult(
        migration_id=layout.migration_id,
        app_user=user,
        roles_restored=prior,
        stop_requested_at=requested_at,
        stop_key=key,
        notes=notes,
    )


def abort_event(event: LifecycleEvent, source: DatabaseUri | None = None) -> AbortResult:
    """Abort with a lifecycle event's bucket, prefix, id and master secret (for the abort DAG)."""
    return abort(event.layout(), source or master_uri(event))
