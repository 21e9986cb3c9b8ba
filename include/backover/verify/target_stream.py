"""The MongoDB target's own change stream: who wrote to the target after the live pass began.

Nobody but the restore may write to the target, and every write the restore makes after the live
pass began comes from an event after A0 (a key of :class:`~backover.verify.changes.ChangeKeys`).
The live pass notes where the target's cluster-wide change stream stands when it begins
(:func:`position`); the checks read it from there up to the present (:func:`changes_since`), and a
change on a key, or a DDL on a namespace, that no such event accounts for is a write by someone
else (:func:`foreign`).

The stream is opened on the whole cluster (a database or collection stream is invalidated by the
drop the restore may replay) and filtered to the compared databases; the target user needs
``changeStream`` and ``find`` on every database (``readAnyDatabase``, as ``root`` has), and the
target's oplog must still hold the pass's start when the freeze-time check reads it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bson.raw_bson import RawBSONDocument
from bson.timestamp import Timestamp
from pymongo import MongoClient
from pymongo.errors import OperationFailure, PyMongoError

from .. import clustertime
from ..bsonvalues import element_value
from ..connections import DatabaseUri
from ..errors import JobFailed
from ..mongo import errors as codes
from ..namespaces import Namespace
from ..replication import tokens
from ..restore.events import CRUD_OPS, id_element_of, identity_of
from .changes import ChangeKeys

log = logging.getLogger(__name__)

#: getMore's wait for new events while the stream is read up to the present.
AWAIT_MS = 200
#: Only what the check reads of each event.
PROJECTION = [{"$project": {"operationType": 1, "ns": 1, "documentKey": 1, "clusterTime": 1, "to": 1}}]
#: The stream cannot resume from the pass's token (the target's oplog no longer holds it).
_LOST = frozenset(
    {codes.CHANGE_STREAM_HISTORY_LOST, codes.CHANGE_STREAM_FATAL_ERROR, codes.INVALID_RESUME_TOKEN}
)


@dataclass(frozen=True)
class TargetChange:
    """One change the target's stream reports: ``id_element`` is None for a DDL event."""

    op: str
    ns: Namespace
    id_element: bytes | None
    cluster_time: Timestamp | None
    to: Namespace | None = None

    def describe(self) -> dict[str, Any]:
        """``{ns, op, _id, cluster_time}`` for the report and the message."""
        doc: dict[str, Any] = {"ns": str(self.ns), "op": self.op}
        if self.id_element is not None:
            doc["_id"] = element_value(self.id_element)
        if self.to is not None:
            doc["to"] = str(self.to)
        if self.cluster_time is not None:
            doc["cluster_time"] = clustertime.format(self.cluster_time)
        return doc


def raw_client(uri: DatabaseUri) -> MongoClient[RawBSONDocument]:
    """A client whose change events come as raw BSON (every type of an ``_id`` kept)."""
    client: MongoClient[RawBSONDocument] = uri.client(document_class=RawBSONDocument)
    return client


def position(client: MongoClient[RawBSONDocument]) -> tuple[dict[str, Any], Timestamp | None]:
    """Where the target's change stream stands now: its resume token and the cluster time in it."""
    try:
        with client.watch(PROJECTION, max_await_time_ms=0) as stream:
            token = tokens.as_document(stream.resume_token)
    except PyMongoError as e:
        raise JobFailed(
            f"cannot open the target's change stream (the live pass needs it to see writes by "
            f"anyone else): {type(e).__name__}: {e}"
        ) from None
    if token is None:
        raise JobFailed("the target's change stream gave no resume token")
    return token, tokens.cluster_time(token)


def changes_since(
    client: MongoClient[RawBSONDocument], token: Mapping[str, Any], wanted: Callable[[Namespace], bool]
) -> tuple[list[TargetChange], dict[str, Any]]:
    """The target's changes after ``token`` up to the present, in the namespaces ``wanted`` keeps,
    and the token the stream reached (a later check resumes from it)."""
    reached_token: dict[str, Any] | None = None
    try:
        now = client.admin.command("ping").get("operationTime")
        found: list[TargetChange] = []
        with client.watch(PROJECTION, resume_after=dict(token), max_await_time_ms=AWAIT_MS) as stream:
            while True:
                event = stream.try_next()
                if event is None:
                    reached = tokens.cluster_time(stream.resume_token)
                    if reached is None or not isinstance(now, Timestamp) or reached >= now:
                        break
                    continue
                change = _change(event)
                if change is not None and wanted(change.ns):
                    found.append(change)
            reached_token = tokens.as_document(stream.resume_token)
    except OperationFailure as e:
        if e.code in _LOST:
            raise JobFailed(
                "the target's change stream no longer reaches back to the live pass's start "
                f"({e.code}: {e.details.get('errmsg') if e.details else e}): writes by anyone else "
                "cannot be ruled out; run `backover verify --live` again, or `backover verify --full`"
            ) from None
        raise JobFailed(f"cannot read the target's change stream: {type(e).__name__}: {e}") from None
    except PyMongoError as e:
        raise JobFailed(f"cannot read the target's change stream: {type(e).__name__}: {e}") from None
    return found, reached_token or dict(token)


def _change(event: RawBSONDocument) -> TargetChange | None:
    op = event.get("operationType")
    ns = event.get("ns")
    if not isinstance(op, str) or not isinstance(ns, Mapping) or not isinstance(ns.get("db"), str):
        return None
    coll = ns.get("coll")
    namespace = Namespace(ns["db"], coll if isinstance(coll, str) else "")
    time = event.get("clusterTime")
    time = time if isinstance(time, Timestamp) else None
    key = event.get("documentKey")
    id_element = (
        id_element_of(bytes(key.raw)) if isinstance(key, RawBSONDocument) and op in CRUD_OPS else None
    )
    to = event.get("to")
    to_ns = Namespace(to["db"], to["coll"]) if isinstance(to, Mapping) and "coll" in to else None
    return TargetChange(op, namespace, id_element, time, to_ns)


def foreign(changes: list[TargetChange], keys: ChangeKeys) -> list[TargetChange]:
    """The changes no event after A0 accounts for: a document no such event names, or a DDL on a
    namespace no such DDL touched."""
    out = []
    for change in changes:
        if change.id_element is not None and change.ns.coll:
            if not keys.covers(change.ns, identity_of(change.id_element)):
                out.append(change)
        elif change.ns.coll:
            touched = [change.ns] + ([change.to] if change.to is not None else [])
            if not all(keys.changed_wholly(ns) for ns in touched):
                out.append(change)
        elif change.ns.db not in keys.databases:
            out.append(change)
    return out
