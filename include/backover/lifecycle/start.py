"""The start Lambda: read-write user, change streams on, T0 recorded in ``state/start.json``.

Order matters: a database or collection the source does not hold is refused (unless the event's
``allow_missing`` says it is created later) and the retention is checked before anything changes;
T0 is read *after* the change streams are enabled and recorded only once a change stream on the
replicator's scope opened at it (``startAtOperationTime: T0``), so the replicator never asks
DocumentDB for a moment before the enablement (code 136), and every write from T0 on is captured. A T0 refused that way (a write in
the same second just before the enablement) is replaced by a later one.

Idempotent: a second start of the same migration keeps the first T0 and the first prior roles
(so abort still gives back the roles the user had before Back Over), re-asserts the roles and the
change streams, proves the recorded T0 still opens the stream (it fails when the streams were off
meanwhile: changes were lost, a new migration id is needed), and rewrites the same
``state/start.json``. A start that died before recording T0 takes a new one. A migration already frozen or
cleaned or aborted is refused, since starting it again would hand writes back behind the freeze
or restart a stopped capture with a gap.
"""

from __future__ import annotations

import logging

from pymongo import MongoClient

from .. import state
from ..connections import DatabaseUri
from ..errors import UsageError
from ..namespaces import Namespace
from ..s3objects import S3Objects
from ..state import StartRecord
from . import change_streams, users
from .abort import refuse_if_aborted
from .events import LifecycleEvent
from .results import StartResult, now_ms
from .retention import ensure_retention
from .source import check_namespaces_exist, connect, master_uri

log = logging.getLogger(__name__)


def _check_previous(event: LifecycleEvent, previous: StartRecord | None) -> None:
    if previous is None:
        return
    same_scope = sorted(previous.namespaces) == sorted(map(str, event.namespaces))
    if not same_scope or previous.app_user != event.app_user:
        raise UsageError(
            f"migration {event.migration_id!r} was started for user {previous.app_user!r} "
            f"on {', '.join(previous.namespaces)}; a different scope needs a new "
            "migration id"
        )


def _state(
    event: LifecycleEvent, previous: StartRecord | None, current: list[users.Role], flavour: str
) -> StartRecord:
    """The ``state/start.json`` record, keeping an earlier one's T0, prior roles and streams."""
    return StartRecord(
        migration_id=event.migration_id,
        t0=previous.t0 if previous else None,  # None until the start has finished
        databases=list(event.databases),
        namespaces=[str(ns) for ns in event.namespaces],
        app_user=event.app_user,
        prior_roles=users.normalise(previous.prior_roles) if previous else current,
        change_streams_enabled=list(previous.change_streams_enabled) if previous else [],
        source_flavour=flavour,
        started_at=previous.started_at if previous and previous.started_at else now_ms(),
    )


def _not_enabled(client: MongoClient, flavour: str, namespaces: tuple[Namespace, ...]) -> set[Namespace]:
    """The namespaces whose change streams are off (always none on MongoDB)."""
    if flavour != change_streams.DOCUMENTDB:
        return set()
    enabled = change_streams.list_enabled(client)
    return {ns for ns in namespaces if not change_streams.is_covered(ns, enabled)}


def start(
    event: LifecycleEvent, source: DatabaseUri | None = None, s3: S3Objects | None = None
) -> StartResult:
    """Run the start step for ``event``; ``source`` overrides the master secret's URI."""
    layout = event.layout()
    s3 = s3 or S3Objects(layout.bucket)
    s3.check_bucket()
    for key, what in ((layout.freeze_state, "frozen"), (layout.clean_state, "cleaned")):
        if s3.head(key) is not None:
            raise UsageError(
                f"migration {event.migration_id!r} is already {what} ({key}); start a new migration id"
            )
    refuse_if_aborted(s3, layout)
    previous = state.read(s3, layout.start_state, StartRecord)
    _check_previous(event, previous)
    source = source or master_uri(event)
    log.info(
        "start %s: source %s, user %s, %s",
        event.migration_id,
        source,
        event.app_user,
        ", ".join(map(str, event.namespaces)),
    )
    with connect(source) as client:
        if previous is None:
            # A re-run keeps the recorded scope: a database dropped since T0 is in the stream.
            check_namespaces_exist(client, event.namespaces, event.allow_missing)
        flavour = change_streams.detect_flavour(client)
        retention = ensure_retention(client, flavour, event.required_retention_hours, event.retention_hours)
        current = users.get_roles(client, event.app_user)
        users.check_freezable(current)  # refused now rather than at the freeze, after hours of capture
        record = _state(event, previous, current, flavour)
        # The prior roles are saved before any role changes, so abort can always give them back.
        state.write(s3, layout.start_state, record)
        _, grant = users.read_write_roles(current, event.databases)
        users.grant_roles(client, event.app_user, grant)
        for granted in grant:
            log.info("granted %s@%s to %s", granted["role"], granted["db"], event.app_user)
        recorded = {Namespace.from_doc(d) for d in record.change_streams_enabled}
        streamed = change_streams.stream_namespaces(event.namespaces)
        missing = _not_enabled(client, flavour, streamed)
        if missing - recorded:
            # Recorded before enabling: clean disables only what start enabled, even after a crash here.
            record.change_streams_enabled = [ns.to_doc() for ns in sorted(recorded | missing)]
            state.write(s3, layout.start_state, record)
        change_streams.enable(client, flavour, streamed)
        already_started = record.t0 is not None
        if record.t0 is not None:
            change_streams.prove_t0(client, event.namespaces, record.t0)
        else:
            record.t0 = change_streams.streamable_t0(client, event.namespaces)
    t0 = record.t0
    state.write(s3, layout.start_state, record)
    log.info(
        "start %s done: T0 %s:%s recorded in s3://%s/%s",
        event.migration_id,
        t0.time,
        t0.inc,
        layout.bucket,
        layout.start_state,
    )
    return StartResult(
        migration_id=event.migration_id,
        source_flavour=flavour,
        t0=t0,
        app_user=event.app_user,
        databases=list(event.databases),
        namespaces=list(event.namespaces),
        roles_granted=grant,
        change_streams_enabled=[Namespace.from_doc(d) for d in record.change_streams_enabled],
        retention=retention,
        already_started=already_started,
        state_key=layout.start_state,
    )
