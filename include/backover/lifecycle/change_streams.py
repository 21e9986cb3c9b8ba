"""Change streams on the source: which flavour it is, what is enabled, enable and disable.

DocumentDB streams a namespace only after ``modifyChangeStreams`` enabled it (a database with
``collection: ""``, the cluster with both empty) and lists the enabled ones with
``aggregate [{$listChangeStreams: {}}]`` on ``admin``. MongoDB has neither: its change streams are
always on, so enabling and disabling are skipped there with a log line.

The flavour: the Back Over stand-ins say it in ``buildInfo.backoverStandin.flavour``; a real
server is DocumentDB when it answers ``$listChangeStreams``, MongoDB when it answers "unrecognized
stage" (40324) or "no such command" (59).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

from pymongo import MongoClient
from pymongo.errors import OperationFailure

from ..errors import JobFailed
from ..replication.namespaces import Namespace as WatchedNamespace
from ..replication.namespaces import narrowest_scope
from .events import Namespace

log = logging.getLogger(__name__)

DOCUMENTDB = "documentdb"
MONGODB = "mongodb"
FLAVOURS = (DOCUMENTDB, MONGODB)
COMMAND_NOT_FOUND = 59
UNRECOGNIZED_STAGE = 40324
_NOT_DOCUMENTDB = (COMMAND_NOT_FOUND, UNRECOGNIZED_STAGE)


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
        raise JobFailed(f"cannot tell DocumentDB from MongoDB: $listChangeStreams answered {e.code}") from None
    return DOCUMENTDB


def list_enabled(client: MongoClient) -> set[Namespace]:
    """The namespaces with change streams enabled (DocumentDB's ``$listChangeStreams``)."""
    return {Namespace.from_doc(doc) for doc in client.admin.aggregate([{"$listChangeStreams": {}}])}


def is_covered(namespace: Namespace, enabled: Iterable[Namespace]) -> bool:
    """Whether an enabled entry (the namespace, its database or the cluster) covers ``namespace``."""
    return any(entry.covers(namespace) for entry in enabled)


def stream_namespaces(namespaces: Iterable[Namespace]) -> tuple[Namespace, ...]:
    """What must be enabled so the replicator's watch works.

    The replicator watches the narrowest scope that covers the namespaces
    (:func:`backover.replication.namespaces.narrowest_scope`); across several databases that is the
    whole cluster, which DocumentDB streams only when change streams are enabled for the cluster
    (``database: "", collection: ""``). The replicator filters out the other namespaces.
    """
    wanted = tuple(sorted(set(namespaces)))
    scope = narrowest_scope(tuple(WatchedNamespace(ns.database, ns.collection) for ns in wanted))
    return (Namespace("", ""),) if scope.level == "cluster" else wanted


def _modify(client: MongoClient, namespace: Namespace, enable: bool) -> bool:
    """Run ``modifyChangeStreams``; False when the server does not know it (MongoDB)."""
    try:
        client.admin.command("modifyChangeStreams", 1, database=namespace.database,
                             collection=namespace.collection, enable=enable)
    except OperationFailure as e:
        if e.code == COMMAND_NOT_FOUND:
            return False
        verb = "enable" if enable else "disable"
        raise JobFailed(f"cannot {verb} change streams on {namespace}: {e.code} "
                        f"{e.details.get('errmsg', '') if e.details else ''}") from None
    return True


def enable(client: MongoClient, flavour: str, namespaces: Iterable[Namespace]) -> list[Namespace]:
    """Enable change streams on every namespace not yet covered; returns the ones enabled now."""
    wanted = sorted(set(namespaces))
    if flavour != DOCUMENTDB:
        log.info("MongoDB: change streams are always on; skipping modifyChangeStreams for %s",
                 ", ".join(map(str, wanted)))
        return []
    enabled = list_enabled(client)
    done = []
    for namespace in wanted:
        if is_covered(namespace, enabled):
            log.info("change streams already enabled for %s", namespace)
            continue
        if not _modify(client, namespace, True):
            log.info("the source does not know modifyChangeStreams (MongoDB: change streams are always "
                     "on); skipping")
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
    done = []
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
