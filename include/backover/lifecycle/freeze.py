"""The restore Lambda: the microservices' user becomes read-only, F is recorded, the drain asked.

1. The user's write roles on the migrated databases become ``read`` and every role that lets it
   change users or roles is taken away (one ``updateUser``; see :mod:`.users`); a role the freeze
   cannot classify (not built in) or cannot take away (``root``...) is refused before any change.
2. Proof: with ``app_secret_id`` a write as the user must be refused with code 13; without it the
   roles the server reports must hold no write role (the result says which proof was made). In
   both cases the re-read roles must hold no user-admin role; the result and the log name the
   roles kept and the roles removed.
3. F = the cluster time after the proof: every write the user made is at or before F.
4. ``state/freeze.json`` (F, the read-only roles) and ``control/drain.json`` (``{"until": F}``).

Idempotent: once frozen, a second run re-asserts and re-proves read-only but keeps the first F,
so the replicator's drain target never moves.
"""

from __future__ import annotations

import logging

from .. import state
from ..connections import DatabaseUri
from ..errors import UsageError
from ..s3objects import S3Objects
from ..state import FreezeRecord, ReadOnlyProof, StartRecord
from . import users
from .abort import refuse_if_aborted
from .events import LifecycleEvent
from .results import FreezeResult, now_ms
from .source import app_uri, cluster_time, connect, master_uri

log = logging.getLogger(__name__)


def freeze(
    event: LifecycleEvent,
    source: DatabaseUri | None = None,
    app: DatabaseUri | None = None,
    s3: S3Objects | None = None,
) -> FreezeResult:
    """Run the restore Lambda's step; ``source``/``app`` override the URIs from the secrets."""
    layout = event.layout()
    s3 = s3 or S3Objects(layout.bucket)
    s3.check_bucket()
    started = state.read(s3, layout.start_state, StartRecord)
    if started is None or not started.finished:
        raise UsageError(
            f"migration {event.migration_id!r} has not started ({layout.start_state} is "
            "missing or unfinished): run the start Lambda first"
        )
    if started.app_user != event.app_user:
        raise UsageError(
            f"migration {event.migration_id!r} was started for user {started.app_user!r}, "
            f"not {event.app_user!r}"
        )
    if s3.head(layout.clean_state) is not None:
        raise UsageError(f"migration {event.migration_id!r} is already cleaned ({layout.clean_state})")
    refuse_if_aborted(s3, layout)
    previous = state.read(s3, layout.freeze_state, FreezeRecord)
    databases = list(started.databases or event.databases)
    source = source or master_uri(event)
    app = app or app_uri(event)
    with connect(source) as client:
        current = users.get_roles(client, event.app_user)
        read_only = users.read_only_roles(current, databases)
        removed = users.removed_roles(current, read_only)
        if read_only != current:
            users.set_roles(client, event.app_user, read_only)
            log.info(
                "%s is now read-only on %s; removed %s",
                event.app_user,
                ", ".join(databases),
                users.describe(removed),
            )
        else:
            log.info("%s was already read-only on %s", event.app_user, ", ".join(databases))
        if app is not None:
            users.prove_read_only_by_write(app, databases)
            proof, note = (
                ReadOnlyProof.WRITE_REFUSED,
                "a write as the app user was refused with code 13 on every database",
            )
        else:
            users.prove_read_only_by_roles(client, event.app_user, databases)
            proof, note = (
                ReadOnlyProof.ROLES_ONLY,
                (
                    "no app_secret_id: read-only checked from the roles the server "
                    "reports (usersInfo), not proven by a write"
                ),
            )
            log.warning("read-only not proven by a write: %s", note)
        kept = users.prove_no_user_admin(client, event.app_user, databases)
        log.info(
            "%s keeps %s: none of them writes %s or changes users or roles",
            event.app_user,
            users.describe(kept),
            ", ".join(databases),
        )
        f = previous.f if previous and previous.f is not None else cluster_time(client)
    removed_total = users.normalise([*(previous.roles_removed if previous else []), *removed])
    record = FreezeRecord(
        migration_id=event.migration_id,
        f=f,
        app_user=event.app_user,
        read_only_roles=kept,
        roles_removed=removed_total,
        read_only_proof=proof,
        frozen_at=previous.frozen_at if previous and previous.frozen_at else now_ms(),
    )
    state.write(s3, layout.freeze_state, record)
    s3.put_json(layout.drain_request, {"until": f})
    log.info(
        "freeze %s done: F %s:%s; drain requested in s3://%s/%s",
        event.migration_id,
        f.time,
        f.inc,
        layout.bucket,
        layout.drain_request,
    )
    return FreezeResult(
        migration_id=event.migration_id,
        f=f,
        app_user=event.app_user,
        read_only_roles=kept,
        roles_removed=removed_total,
        read_only_proof=proof,
        proof_note=note,
        already_frozen=previous is not None,
        state_key=layout.freeze_state,
        drain_key=layout.drain_request,
    )
