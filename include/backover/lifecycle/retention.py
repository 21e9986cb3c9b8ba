"""Can the source's change-stream retention cover the rehearsal? The start step refuses if not.

What can and cannot be checked:

* DocumentDB keeps change-stream events for ``change_stream_log_retention_duration`` seconds, a
  setting of the cluster parameter group (default 10800 s = 3 h; 1 h to 7 days). No database
  command reports it: only the DocumentDB management API (``DescribeDBClusterParameters``) does,
  which needs the parameter group's name and IAM rights this code does not assume. So the value
  comes from, in order: the event's ``retention_hours``; the environment variable
  ``BACKOVER_CHANGE_STREAM_RETENTION_HOURS`` (set when the Lambda is deployed, from the parameter
  group); a server that answers ``getParameter`` for ``change_stream_log_retention_duration``
  (tried, but no DocumentDB version is known to answer it). When none of them knows, DocumentDB's
  default of 3 hours is assumed, and the result says it was assumed: a longer rehearsal must then
  state its retention explicitly.
* MongoDB keeps change streams as long as the oplog window, which depends on write volume; it is
  not measured here. Unless the event or the environment states a value, the check passes with a
  note saying it was not checked.

The check only runs when the event gives ``required_retention_hours`` (how long the rehearsal, or
the whole migration, needs the changes kept).
"""

from __future__ import annotations

import logging
import math
import os

from pymongo import MongoClient
from pymongo.errors import PyMongoError

from ..errors import JobFailed, UsageError
from .change_streams import DOCUMENTDB
from .results import RetentionCheck

log = logging.getLogger(__name__)

ENV_HOURS = "BACKOVER_CHANGE_STREAM_RETENTION_HOURS"
DOCUMENTDB_PARAMETER = "change_stream_log_retention_duration"
DOCUMENTDB_DEFAULT_HOURS = 3.0


class RetentionTooShort(JobFailed):
    """The change-stream retention cannot cover the rehearsal; nothing was changed."""


def _from_environment() -> float | None:
    raw = os.environ.get(ENV_HOURS)
    if raw is None or not raw.strip():
        return None
    try:
        hours = float(raw)
    except ValueError:
        raise UsageError(f"{ENV_HOURS}={raw!r} is not a number of hours") from None
    if not math.isfinite(hours) or hours <= 0:
        raise UsageError(f"{ENV_HOURS}={raw!r} is not a positive number of hours")
    return hours


def _from_server(client: MongoClient) -> float | None:
    """The parameter in seconds if the server answers ``getParameter`` for it, else None."""
    try:
        reply = client.admin.command({"getParameter": 1, DOCUMENTDB_PARAMETER: 1})
    except PyMongoError:
        return None
    value = reply.get(DOCUMENTDB_PARAMETER)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        return None
    return float(value) / 3600


def read_retention(client: MongoClient, flavour: str, event_hours: float | None) -> tuple[float | None, str]:
    """``(hours, where it came from)``; hours None when nobody knows."""
    if event_hours is not None:
        return event_hours, "event"
    env_hours = _from_environment()
    if env_hours is not None:
        return env_hours, "environment"
    server_hours = _from_server(client)
    if server_hours is not None:
        return server_hours, "server"
    if flavour == DOCUMENTDB:
        return DOCUMENTDB_DEFAULT_HOURS, "documentdb-default"
    return None, "unknown"


def judge(required: float | None, available: float | None, source: str) -> RetentionCheck:
    """The verdict for a required and an available retention (pure)."""
    if required is None:
        return RetentionCheck(None, available, source, True, "no required_retention_hours given: not checked")
    if available is None:
        return RetentionCheck(
            required,
            None,
            source,
            True,
            "the retention is unknown (MongoDB: the oplog window) and was not checked",
        )
    if available < required:
        hint = (
            f"DocumentDB's default ({DOCUMENTDB_DEFAULT_HOURS:g} h) was assumed because nothing reported "
            f"the retention; pass retention_hours or set {ENV_HOURS} from the cluster parameter group's "
            f"{DOCUMENTDB_PARAMETER}"
            if source == "documentdb-default"
            else f"raise the cluster parameter group's {DOCUMENTDB_PARAMETER}"
        )
        return RetentionCheck(
            required,
            available,
            source,
            False,
            f"change-stream retention {available:g} h (from {source}) cannot cover the "
            f"required {required:g} h: {hint}",
        )
    assumed = " (assumed)" if source == "documentdb-default" else ""
    return RetentionCheck(
        required,
        available,
        source,
        True,
        f"retention {available:g} h{assumed} covers the required {required:g} h",
    )


def ensure_retention(
    client: MongoClient, flavour: str, required: float | None, reported: float | None
) -> RetentionCheck:
    """Check the retention; :class:`RetentionTooShort` with the reason when it is too short."""
    available, source = read_retention(client, flavour, reported)
    verdict = judge(required, available, source)
    if not verdict.ok:
        raise RetentionTooShort(verdict.note)
    log.info("change-stream retention: %s", verdict.note)
    return verdict
