"""The clean Lambda: disable the change streams that start enabled, and only those.

Streams that were on before Back Over started (``state/start.json`` does not list them) stay on.
Refused, like ``backover clean`` (the same :func:`backover.cleanup.guard.check`), until the restore
completed, verification found the databases identical and the capture is over (frozen, replicator
drained or stopped), unless the event says ``"force": true``. Writes its part of ``state/clean.json``
(``change_streams_disabled``); idempotent.
"""

from __future__ import annotations

import logging

from .. import state
from ..cleanup import guard, record
from ..connections import DatabaseUri
from ..errors import UsageError
from ..layout import MigrationLayout
from ..namespaces import Namespace
from ..s3objects import S3Objects
from ..state import StartRecord
from . import change_streams
from .events import LifecycleEvent
from .results import CleanResult, now_ms
from .source import connect, master_uri

log = logging.getLogger(__name__)


def read_start(s3: S3Objects, layout: MigrationLayout) -> StartRecord:
    """``state/start.json``; UsageError when the migration was never started."""
    started = state.read(s3, layout.start_state, StartRecord)
    if started is None:
        raise UsageError(
            f"migration {layout.migration_id!r} has no {layout.start_state}: nothing was started"
        )
    return started


def disable_started_streams(layout: MigrationLayout, source: DatabaseUri, s3: S3Objects) -> CleanResult:
    """Disable what ``state/start.json`` says start enabled; record it in ``state/clean.json``."""
    started = read_start(s3, layout)
    targets = sorted({Namespace.from_doc(d) for d in started.change_streams_enabled})
    with connect(source) as client:
        flavour = change_streams.detect_flavour(client)
        disabled_now = change_streams.disable(client, flavour, targets)
    before = {Namespace.from_doc(d) for d in record.read(s3, layout).change_streams_disabled}
    disabled = sorted(before | set(targets))
    record.update(
        s3,
        layout,
        change_streams_disabled=[ns.to_doc() for ns in disabled],
        change_streams_disabled_at=now_ms(),
    )
    log.info(
        "change streams disabled for %s (%d now)",
        ", ".join(map(str, disabled)) or "nothing",
        len(disabled_now),
    )
    return CleanResult(
        migration_id=layout.migration_id,
        source_flavour=flavour,
        change_streams_disabled=disabled,
        disabled_now=disabled_now,
        state_key=layout.clean_state,
    )


def clean(
    event: LifecycleEvent, source: DatabaseUri | None = None, s3: S3Objects | None = None
) -> CleanResult:
    """Run the clean Lambda's step for ``event``."""
    layout = event.layout()
    s3 = s3 or S3Objects(layout.bucket)
    s3.check_bucket()
    read_start(s3, layout)
    guard.check(s3, layout, force=event.force)
    return disable_started_streams(layout, source or master_uri(event), s3)
