"""The source database: connecting, checking the namespaces, opening the change stream, and
telling a transient error (retry from the last token) from a broken capture.

The client decodes nothing: its document class is :class:`~.events.RawEvent`, so each event's
bytes are the BSON the server sent, and only the few fields the replicator reads (``_id``,
``clusterTime``, ``operationType``) are read, straight from the bytes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bson.timestamp import Timestamp
from pymongo import MongoClient
from pymongo.change_stream import ChangeStream
from pymongo.client_session import ClientSession
from pymongo.errors import ConnectionFailure, CursorNotFound, OperationFailure, PyMongoError

from .. import clustertime
from ..connections import DatabaseUri, check_connection
from ..errors import UsageError
from ..mongo import errors as codes
from ..namespaces import Namespace
from .events import RawEvent
from .namespaces import WatchScope

log = logging.getLogger(__name__)

#: Server errors after which the stream is re-opened from its last token (network, elections,
#: shutdowns, a reaped cursor), as the drivers' change-stream resume rules say.
#: Events per getMore: small replies keep the client's memory low (a full 16 MB batch is held
#: twice while pymongo decodes it) at no cost in throughput.
BATCH_SIZE = 2000
TRANSIENT_CODES = codes.RESUMABLE_CHANGE_STREAM_CODES
HISTORY_LOST = codes.CHANGE_STREAM_HISTORY_LOST
UNAUTHORIZED = codes.UNAUTHORIZED
DOCUMENTDB_NOT_ENABLED = codes.DOCUMENTDB_CHANGE_STREAMS_NOT_ENABLED


@dataclass(frozen=True)
class StreamStart:
    """Where a stream opens: after ``token`` if there is one, else at cluster time ``start_at``."""

    token: Mapping[str, Any] | None = None
    start_at: Timestamp | None = None

    def __str__(self) -> str:
        if self.token is not None:
            return f"after resume token {self.token.get('_data', self.token)}"
        return f"at cluster time {clustertime.format(self.start_at)}" if self.start_at else "nowhere"


class HistoryLost(Exception):
    """The resume point is older than the source's change-stream history (code 286)."""


def connect(uri: DatabaseUri, connect_timeout: float) -> MongoClient[RawEvent]:
    """A raw-BSON client whose ``hello`` and authentication were checked (UsageError if not)."""
    client = uri.client(document_class=RawEvent, serverSelectionTimeoutMS=int(connect_timeout * 1000))
    try:
        check_connection(uri, client)
    except UsageError:
        client.close()
        raise
    return client


def missing_namespaces(client: MongoClient[Any], namespaces: tuple[Namespace, ...]) -> dict[Namespace, str]:
    """The namespaces that do not exist on the source, each with the reason (UsageError when the
    source's namespaces cannot be listed; none when the user may not list them)."""
    missing: dict[Namespace, str] = {}
    try:
        databases = set(client.list_database_names())
        for ns in namespaces:
            if ns.db not in databases:
                missing[ns] = f"namespace {ns} does not exist on the source: there is no database {ns.db!r}"
            elif ns.coll and ns.coll not in client[ns.db].list_collection_names():
                missing[ns] = (
                    f"namespace {ns} does not exist on the source: database {ns.db!r} "
                    f"has no collection {ns.coll!r}"
                )
    except OperationFailure as e:
        if e.code == UNAUTHORIZED:
            log.warning("cannot list the source's namespaces to check them (not authorized); going on")
            return {}
        raise UsageError(f"cannot list the source's namespaces: {_message(e)}") from None
    return missing


def open_stream(
    client: MongoClient[RawEvent], scope: WatchScope, start: StreamStart, await_ms: int
) -> tuple[ChangeStream[RawEvent], ClientSession]:
    """A ``fullDocument: updateLookup`` change stream on ``scope`` and its session.

    Raises :class:`HistoryLost` for code 286, else the driver's error (see :func:`classify`).
    """
    if scope.level == "cluster":
        target: Any = client
    elif scope.level == "database":
        target = client[scope.db]
    else:
        target = client[scope.db][scope.coll]
    session = client.start_session(causal_consistency=False)
    kwargs: dict[str, Any] = {
        "full_document": "updateLookup",
        "max_await_time_ms": await_ms,
        "session": session,
        "batch_size": BATCH_SIZE,
    }
    if start.token is not None:
        kwargs["resume_after"] = start.token
    else:
        kwargs["start_at_operation_time"] = start.start_at
    try:
        return target.watch(**kwargs), session
    except PyMongoError as e:
        session.end_session()
        if isinstance(e, OperationFailure) and e.code == HISTORY_LOST:
            raise HistoryLost(history_lost_reason(e)) from e
        raise


def classify(error: PyMongoError) -> str:
    """``transient`` (re-open from the last token), ``history_lost`` or ``fatal``."""
    if isinstance(error, (ConnectionFailure, CursorNotFound)):
        return "transient"
    if isinstance(error, OperationFailure):
        if error.code == HISTORY_LOST:
            return "history_lost"
        if error.has_error_label("ResumableChangeStreamError") or error.code in TRANSIENT_CODES:
            return "transient"
    return "fatal"


def history_lost_reason(error: PyMongoError) -> str:
    return (
        "change stream history lost (ChangeStreamHistoryLost, code 286): the resume point is older than "
        f"the source keeps change streams; capture is broken ({_message(error)})"
    )


def failure_reason(error: PyMongoError, scope: WatchScope) -> str:
    """One line for a fatal stream error (mid-run: the checkpoint's ``reason``)."""
    if isinstance(error, OperationFailure) and error.code == DOCUMENTDB_NOT_ENABLED:
        return not_enabled_reason(scope)
    return f"change stream on {scope} failed: {_message(error)}"


def open_refused(error: PyMongoError, scope: WatchScope, uri: DatabaseUri) -> UsageError:
    """The one-line reason when the first stream cannot be opened (bad configuration, exit 2)."""
    if isinstance(error, OperationFailure):
        if error.code == DOCUMENTDB_NOT_ENABLED:
            return UsageError(not_enabled_reason(scope))
        if error.code == UNAUTHORIZED:
            return UsageError(f"the source user may not watch {scope}: {_message(error)}")
        return UsageError(f"the source refused a change stream on {scope}: {_message(error)}")
    return UsageError(f"cannot open a change stream on {uri}: {short(error)}")


def not_enabled_reason(scope: WatchScope) -> str:
    return (
        f"change streams are not enabled on {scope} (DocumentDB): enable them with {scope.enable_command()}"
    )


def _message(error: PyMongoError) -> str:
    if isinstance(error, OperationFailure):
        details = error.details or {}
        return f"{details.get('errmsg', error)} (code {error.code})"
    return short(error)


def short(error: BaseException, limit: int = 200) -> str:
    """``Type: message`` on one line, without the driver's topology description."""
    text = str(error).splitlines()[0] if str(error) else ""
    for cut in (" (configured timeouts", ", Timeout:"):
        text = text.split(cut, 1)[0]
    text = f"{type(error).__name__}: {text}"
    return text if len(text) <= limit else text[: limit - 3] + "..."
