"""Change streams on the source: which flavour it is, what is enabled, enable and disable.

DocumentDB streams a namespace only after ``modifyChangeStreams`` enabled it (a database with
``collection: ""``, the cluster with both empty) and lists the enabled ones with
``aggregate [{$listChangeStreams: {}}]`` on ``admin``. MongoDB has neither: its change streams are
always on, so enabling and disabling are skipped there with a log line.

The flavour: the Back Over stand-ins say it in ``buildInfo.backoverStandin.flavour``; a real
server is DocumentDB when it answers ``$listChangeStreams``, MongoDB when it answers "unrecognized
stage" (40324) or "no such command" (59).

T0: DocumentDB refuses a stream that starts before the namespace's enablement (code 136), and the
cluster time read right after enabling can still be that of a write made just before it (same
second). So start proves its T0 by opening the replicator's own stream there
(:func:`streamable_t0`, through :func:`backover.replication.source.open_stream`) and takes a later
one when refused; a re-run proves the recorded T0 again (:func:`prove_t0`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping

from bson.timestamp import Timestamp
from pymongo import MongoClient
from pymongo.errors import OperationFailure

from .. import clustertime
from ..errors import JobFailed, JobRefused
from ..mongo import errors as codes
from ..namespaces import CLUSTER, Namespace
from ..replication import source as replication_source
from ..replication.namespaces import WatchScope, narrowest_scope
from .source import cluster_time, errmsg

log = logging.getLogger(__name__)

DOCUMENTDB = "documentdb"
MONGODB = "mongodb"
FLAVOURS = (DOCUMENTDB, MONGODB)
COMMAND_NOT_FOUND = codes.COMMAND_NOT_FOUND
_NOT_DOCUMENTDB = (codes.COMMAND_NOT_FOUND, codes.UNRECOGNIZED_PIPELINE_STAGE)
NOT_ENABLED = codes.DOCUMENTDB_CHANGE_STREAMS_NOT_ENABLED
HISTORY_LOST = codes.CHANGE_STREAM_HISTORY_LOST
#: T0 candidates start tries, and the wait before the next one: the cluster time moves on with the
#: wall clock (a replica set's idle no-op writes), so a later T0 comes within about a second.
T0_ATTEMPTS = 5
T0_RETRY_SECONDS = 0.5


def detect_flavour(client: MongoClient) -> str:
    """``documentdb`` or ``mongodb``."""
    info = client.admin.command("buildInfo")
    standin = info.get("backoverStandin")
    if isinstance(standin, Mapping) and standin.get("flavour") in FLAVOURS:
        return str(standin["flavour"])
    try:
        list_enabled(client)
    except OperationFailure as e:
        if e.code in _NOT_DOCUMENTDB:
            return MONGODB
        raise JobFailed(
            f"cannot tell DocumentDB from MongoDB: $listChangeStreams answered {e.code}"
        ) from None
    return DOCUMENTDB


def list_enabled(client: MongoClient) -> set[Namespace]:
    """The namespaces with change streams enabled (DocumentDB's ``$listChangeStreams``)."""
    return {Namespace.from_doc(doc) for doc in client.admin.aggregate([{"$listChangeStreams": {}}])}


def is_covered(namespace: Namespace, enabled: Iterable[Namespace]) -> bool:
    """Whether an enabled entry (the namespace, its database or the cluster) covers ``namespace``."""
    return any(entry.contains(namespace) for entry in enabled)


def watch_scope(namespaces: Iterable[Namespace]) -> WatchScope:
    """The scope the replicator watches for ``namespaces``
    (:func:`backover.replication.namespaces.narrowest_scope`)."""
    wanted = tuple(sorted(set(namespaces)))
    return narrowest_scope(wanted)


def stream_namespaces(namespaces: Iterable[Namespace]) -> tuple[Namespace, ...]:
    """What must be enabled so the replicator's watch works: exactly the scope it watches.

    Across several databases that is the whole cluster, which DocumentDB streams only when change
    streams are enabled for the cluster (``database: "", collection: ""``); several collections of
    one database are watched at the database level, so the database is enabled. The replicator
    filters out the other namespaces.
    """
    scope = watch_scope(namespaces)
    if scope.level == "cluster":
        return (CLUSTER,)
    return (Namespace(scope.db, scope.coll if scope.level == "collection" else ""),)


def open_refusal(client: MongoClient, scope: WatchScope, t0: Timestamp) -> OperationFailure | None:
    """Open the replicator's change stream on ``scope`` at ``t0`` and close it again.

    None when it opens; else the server's refusal (136: before the enablement, 286: older than
    the history). Connection errors propagate.
    """
    start = replication_source.StreamStart(start_at=t0)
    try:
        stream, session = replication_source.open_stream(client, scope, start, await_ms=1)
    except replication_source.HistoryLost as e:
        cause = e.__cause__
        return cause if isinstance(cause, OperationFailure) else OperationFailure(str(e), HISTORY_LOST)
    except OperationFailure as e:
        return e
    stream.close()
    session.end_session()
    return None


def _refused(scope: WatchScope, t0: Timestamp, error: OperationFailure) -> str:
    return (
        f"the change stream on {scope} refused to start at T0 {clustertime.format(t0)}: {error.code} "
        f"{errmsg(error)}"
    ).rstrip()


def streamable_t0(client: MongoClient, namespaces: Iterable[Namespace]) -> Timestamp:
    """A T0 the replicator's stream opens at: the cluster time, proven by opening the stream there.

    Refused with 136 (the time is still before the enablement), a later cluster time is taken,
    up to :data:`T0_ATTEMPTS` times; JobFailed after that or on any other refusal.
    """
    scope = watch_scope(namespaces)
    refused: Timestamp | None = None
    for attempt in range(1, T0_ATTEMPTS + 1):
        t0 = cluster_time(client)
        if refused is not None and t0 <= refused:
            log.info("the cluster time is still %s; waiting for a later T0", clustertime.format(t0))
            time.sleep(T0_RETRY_SECONDS)
            continue
        error = open_refusal(client, scope, t0)
        if error is None:
            log.info(
                "T0 %s proven: the replicator's change stream on %s opens there",
                clustertime.format(t0),
                scope,
            )
            return t0
        if error.code != NOT_ENABLED:
            raise JobFailed(_refused(scope, t0, error))
        log.info(
            "the change stream on %s refused T0 %s (code 136: before the enablement); taking a later T0 "
            "(attempt %d of %d)",
            scope,
            clustertime.format(t0),
            attempt,
            T0_ATTEMPTS,
        )
        refused = t0
        time.sleep(T0_RETRY_SECONDS)
    raise JobFailed(
        f"no T0 the change stream on {scope} accepts after {T0_ATTEMPTS} attempts (code 136: "
        "before the enablement); are its change streams still enabled?"
    )


def prove_t0(client: MongoClient, namespaces: Iterable[Namespace], t0: Timestamp) -> None:
    """A re-run of start: the recorded T0 must still open the replicator's stream.

    136 means the change streams were enabled again after T0 (they were off meanwhile), so changes
    were not captured: JobRefused (no retry helps), a new migration id is needed. 286 (T0 older
    than the history) is only logged: a replicator that has run resumes from its checkpoint, not
    from T0.
    """
    scope = watch_scope(namespaces)
    error = open_refusal(client, scope, t0)
    if error is None:
        log.info("recorded T0 %s still opens the change stream on %s", clustertime.format(t0), scope)
        return
    if error.code == HISTORY_LOST:
        log.warning(
            "recorded T0 %s is older than the change-stream history of %s: a replicator that has not "
            "written a checkpoint yet cannot start",
            clustertime.format(t0),
            scope,
        )
        return
    if error.code == NOT_ENABLED:
        raise JobRefused(
            f"the change streams on {scope} were enabled again after T0 {clustertime.format(t0)} "
            "(code 136): changes made while they were off were not captured; start a new migration id"
        )
    raise JobFailed(_refused(scope, t0, error))


def _modify(client: MongoClient, namespace: Namespace, enable: bool) -> bool:
    """Run ``modifyChangeStreams``; False when the server does not know it (MongoDB)."""
    try:
        client.admin.command(
            "modifyChangeStreams", 1, database=namespace.db, collection=namespace.coll, enable=enable
        )
    except OperationFailure as e:
        if e.code == COMMAND_NOT_FOUND:
            return False
        verb = "enable" if enable else "disable"
        raise JobFailed(f"cannot {verb} change streams on {namespace}: {e.code} {errmsg(e)}") from None
    return True


def enable(client: MongoClient, flavour: str, namespaces: Iterable[Namespace]) -> list[Namespace]:
    """Enable change streams on every namespace not yet covered; returns the ones enabled now."""
    wanted = sorted(set(namespaces))
    if flavour != DOCUMENTDB:
        log.info(
            "MongoDB: change streams are always on; skipping modifyChangeStreams for %s",
            ", ".join(map(str, wanted)),
        )
        return []
    enabled = list_enabled(client)
    done: list[Namespace] = []
    for namespace in wanted:
        if is_covered(namespace, enabled):
            log.info("change streams already enabled for %s", namespace)
            continue
        if not _modify(client, namespace, True):
            log.info(
                "the source does not know modifyChangeStreams (MongoDB: change streams are always "
                "on); skipping"
            )
            return done
        log.info("enabled change streams for %s", namespace)
        done.append(namespace)
    return done


def disable(client: MongoClient, flavour: str, namespaces: Iterable[Namespace]) -> list[Namespace]:
    """Disable exactly the given entries where still enabled; returns the ones disabled now."""
    targets = sorted(set(namespaces))
    if flavour != DOCUMENTDB:
        if targets:
            log.info("MongoDB: change streams are always on; nothing to disable")
        return []
    enabled = list_enabled(client)
    done: list[Namespace] = []
    for namespace in targets:
        if namespace not in enabled:
            log.info("change streams for %s are already disabled", namespace)
            continue
        if not _modify(client, namespace, False):
            log.info("the source does not know modifyChangeStreams (MongoDB); nothing to disable")
            return done
        log.info("disabled change streams for %s", namespace)
        done.append(namespace)
    return done
