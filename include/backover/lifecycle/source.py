"""The source cluster as the lifecycle steps reach it: master credentials, the app user, cluster time."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from bson.timestamp import Timestamp
from pymongo import MongoClient
from pymongo.errors import OperationFailure, PyMongoError

from ..connections import DatabaseUri, check_connection, read_secret, uri_from_secret
from ..errors import JobFailed, UsageError
from ..namespaces import Namespace
from ..replication.source import missing_namespaces
from .events import LifecycleEvent

log = logging.getLogger(__name__)


def errmsg(error: OperationFailure) -> str:
    """The server's ``errmsg`` for a refused command ('' when the failure carries no reply)."""
    return str((error.details or {}).get("errmsg", ""))


def _with_ca(uri: DatabaseUri, tls_ca_file: str | None) -> DatabaseUri:
    if not tls_ca_file:
        return uri
    return DatabaseUri(uri.value, documentdb=uri.documentdb, tls_ca_file=tls_ca_file)


def master_uri(event: LifecycleEvent) -> DatabaseUri:
    """The master credentials' URI, from the secret ``event.master_secret_id``."""
    return _with_ca(uri_from_secret(read_secret(event.master_secret_id)), event.tls_ca_file)


def app_uri(event: LifecycleEvent) -> DatabaseUri | None:
    """The microservices' user's URI (host from the master secret, login from ``app_secret_id``).

    None when the event names no app secret. The app secret holds ``{username, password}`` and
    may override ``host``/``port``; its user must be ``event.app_user``.
    """
    if not event.app_secret_id:
        return None
    app: dict[str, Any] = read_secret(event.app_secret_id)
    if app.get("username") != event.app_user:
        raise UsageError(f"secret {event.app_secret_id!r} is not the credentials of user {event.app_user!r}")
    if "password" not in app:
        raise UsageError(f"secret {event.app_secret_id!r} lacks 'password'")
    master = read_secret(event.master_secret_id)
    merged = {**{k: v for k, v in master.items() if k != "uri"}, **app}
    return _with_ca(uri_from_secret(merged), event.tls_ca_file)


@contextmanager
def connect(uri: DatabaseUri) -> Iterator[MongoClient]:
    """A checked client (``ping`` + ``hello``); closed on exit. Errors never show the password."""
    client = uri.client()
    try:
        check_connection(uri, client)
        yield client
    finally:
        client.close()


def cluster_time(client: MongoClient) -> Timestamp:
    """The cluster's current time: the ``operationTime`` of a ``ping`` (else its ``$clusterTime``)."""
    try:
        reply = client.admin.command("ping")
    except PyMongoError as e:
        raise JobFailed(f"cannot read the cluster time: {type(e).__name__}: {e}") from None
    value = reply.get("operationTime") or (reply.get("$clusterTime") or {}).get("clusterTime")
    if not isinstance(value, Timestamp):
        raise JobFailed("the source reports no cluster time (operationTime); is it a replica set?")
    return value


#: The switch that lets a start name databases or collections the source does not hold yet: the
#: Lambda event's field and the ``backover_start`` Param have this name.
ALLOW_MISSING = "allow_missing"


def check_namespaces_exist(
    client: MongoClient, namespaces: Iterable[Namespace], allow_missing: bool = False
) -> list[Namespace]:
    """The start's rule for what the source does not hold: a database or collection that does not
    exist is refused (UsageError, one line naming each; a typo would start a migration of nothing)
    unless ``allow_missing`` says it is created later, which only logs it. Returns the missing ones.

    Used by the start Lambda and by Airflow's preflight, before either changes anything."""
    missing = missing_namespaces(client, tuple(sorted(set(namespaces))))
    if not missing:
        return []
    reasons = "; ".join(missing[ns] for ns in sorted(missing))
    if not allow_missing:
        raise UsageError(f"{reasons}; nothing was changed (turn on {ALLOW_MISSING} if it is created later)")
    log.warning("%s; %s is on: it is captured from T0 once it is created", reasons, ALLOW_MISSING)
    return sorted(missing)
