"""Where the replay writes: MongoDB through pymongo, or a null target that only encodes.

:class:`MongoTarget` sends each bulk command with ``Database.command`` and returns the statements
MongoDB rejected; :class:`NullTarget` encodes the same commands to BSON and drops them (the
planning and encoding benchmark). Both count the commands they were given.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol, TypeVar, runtime_checkable

import bson
from bson.raw_bson import RawBSONDocument
from pymongo import MongoClient
from pymongo.collection import Collection
from pymongo.errors import ConnectionFailure, OperationFailure, PyMongoError

from ..bsonvalues import raw_collection
from ..errors import JobFailed
from ..mongo import errors as codes
from ..namespaces import Namespace
from .events import ChangeEvent, describe_id
from .planner import Write
from .statements import Command, commands

log = logging.getLogger(__name__)

DUPLICATE_KEY = codes.DUPLICATE_KEY
NETWORK_RETRIES = 3
#: Unique keys looked up in one query.
MAX_LOOKUPS = 1000
T = TypeVar("T")


@dataclass(frozen=True)
class WriteFailure:
    """A statement the server rejected."""

    write: Write
    code: int
    message: str
    key_value: dict[str, Any] | None = None


class Target(Protocol):
    """What the applier needs from the database it writes to."""

    def write(self, ns: Namespace, writes: list[Write]) -> list[WriteFailure]: ...

    def apply_ddl(self, event: ChangeEvent) -> None: ...

    def find_holder(self, ns: Namespace, key_value: dict[str, Any], document_key: bytes) -> bytes | None: ...

    @property
    def commands(self) -> int: ...


@runtime_checkable
class BatchLookups(Protocol):
    """A target that finds the holders of many unique keys with one query (the applier looks them
    up one by one on a target without it)."""

    def find_holders(self, ns: Namespace, wanted: list[tuple[dict[str, Any], bytes]]) -> list[bytes]:
        """The documents holding any of the ``(key value, document key)`` pairs' key values,
        other than that document itself."""
        ...


class _CommandCounter:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sent = 0

    def _sent_one(self) -> None:
        with self._lock:
            self._sent += 1

    @property
    def commands(self) -> int:
        return self._sent


class NullTarget(_CommandCounter):
    """Encodes every command as the driver would and drops it; DDL and lookups do nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.bytes_encoded = 0

    def write(self, ns: Namespace, writes: list[Write]) -> list[WriteFailure]:
        for command in commands(ns.coll, writes):
            self.bytes_encoded += len(bson.encode(command.body))
            self._sent_one()
        return []

    def apply_ddl(self, event: ChangeEvent) -> None:
        return None

    def find_holder(self, ns: Namespace, key_value: dict[str, Any], document_key: bytes) -> bytes | None:
        return None

    def find_holders(self, ns: Namespace, wanted: list[tuple[dict[str, Any], bytes]]) -> list[bytes]:
        return []


def _raw_found(coll: Collection[RawBSONDocument], query: dict[str, Any]) -> list[bytes]:
    """The bytes of every document ``query`` finds (pymongo hands 4 KB and more as memoryviews)."""
    return [bytes(doc.raw) for doc in coll.find(query)]


class MongoTarget(_CommandCounter):
    """A MongoDB server (thread-safe: lanes share one client and its connection pool)."""

    def __init__(self, client: MongoClient[dict[str, Any]]) -> None:
        super().__init__()
        self.client = client

    # -- documents ---------------------------------------------------------------------------
    def write(self, ns: Namespace, writes: list[Write]) -> list[WriteFailure]:
        failures: list[WriteFailure] = []
        for command in commands(ns.coll, writes):
            reply = self._send(ns, command)
            for error in reply.get("writeErrors", []):
                failures.append(
                    WriteFailure(
                        command.writes[error["index"]],
                        int(error.get("code", 0)),
                        str(error.get("errmsg", "")),
                        error.get("keyValue"),
                    )
                )
            if reply.get("writeConcernError"):
                raise JobFailed(f"{ns}: write concern error: {reply['writeConcernError'].get('errmsg')}")
        return failures

    def _send(self, ns: Namespace, command: Command) -> dict[str, Any]:
        self._sent_one()
        return self._retrying(f"{command.name} on {ns}", lambda: self.client[ns.db].command(command.body))

    def find_holder(self, ns: Namespace, key_value: dict[str, Any], document_key: bytes) -> bytes | None:
        query = {**key_value, "_id": {"$ne": describe_id(document_key)}}
        coll = raw_collection(self.client, ns.db, ns.coll)
        found = self._retrying(f"lookup in {ns}", lambda: coll.find_one(query))
        return None if found is None else bytes(found.raw)  # a memoryview for 4 KB and more

    def find_holders(self, ns: Namespace, wanted: list[tuple[dict[str, Any], bytes]]) -> list[bytes]:
        """One ``find`` with an ``$or`` of the keys (each an index lookup on MongoDB), in chunks of
        :data:`MAX_LOOKUPS` keys."""
        coll = raw_collection(self.client, ns.db, ns.coll)
        found: list[bytes] = []
        for first in range(0, len(wanted), MAX_LOOKUPS):
            clauses = [
                {**key_value, "_id": {"$ne": describe_id(document_key)}}
                for key_value, document_key in wanted[first : first + MAX_LOOKUPS]
            ]
            query = clauses[0] if len(clauses) == 1 else {"$or": clauses}
            found += self._retrying(f"lookup in {ns}", partial(_raw_found, coll, query))
        return found

    def remove(self, ns: Namespace, document_key: bytes) -> None:
        """Delete one document (the applier moves holders aside with :meth:`write`; the backup's
        staging target still calls this)."""
        body = {"delete": ns.coll, "deletes": [{"q": RawBSONDocument(document_key), "limit": 1}]}
        self._retrying(f"delete in {ns}", lambda: self.client[ns.db].command(body))

    # -- DDL ------------------------------------------------------------------------------------
    def apply_ddl(self, event: ChangeEvent) -> None:
        """Apply a DDL event (the restore applies each once; a crash between applying it and
        recording that leaves only an idempotent repeat: drops, or a rename finding nothing)."""
        what = f"{event.op} of {event.ns}"
        if event.op == "drop":
            self._retrying(what, lambda: self.client[event.db].drop_collection(event.coll))  # type: ignore[arg-type]
        elif event.op == "dropDatabase":
            self._retrying(what, lambda: self.client.drop_database(event.db))
        elif event.op == "rename":
            self._retrying(what, lambda: self._rename(event))
        else:  # pragma: no cover - the planner only makes barriers of DDL_OPS
            raise JobFailed(f"not a DDL event: {event.op}")

    def _rename(self, event: ChangeEvent) -> None:
        """``renameCollection`` with ``dropTarget`` (the source's rename succeeded, so whatever the
        target still holds under the new name is gone there). A source collection missing on the
        target had nothing written since the capture started (or, after a crash, this rename was
        applied already): nothing is moved then, and nothing is dropped."""
        assert event.coll is not None and event.to is not None
        to_db, to_coll = event.to
        if not self.client[event.db].list_collection_names(filter={"name": event.coll}):
            log.info(
                "rename %s -> %s.%s: %s is not on the target, nothing to move",
                event.ns,
                to_db,
                to_coll,
                event.ns,
            )
            return
        self.client.admin.command("renameCollection", event.ns, to=f"{to_db}.{to_coll}", dropTarget=True)

    # -- retries ----------------------------------------------------------------------------------
    @staticmethod
    def _retrying(what: str, call: Callable[[], T]) -> T:
        """``call()``, again after a lost connection (every write of the replay is idempotent)."""
        for attempt in range(NETWORK_RETRIES + 1):
            try:
                return call()
            except ConnectionFailure as e:
                if attempt == NETWORK_RETRIES:
                    raise JobFailed(
                        f"{what}: the target cannot be reached ({type(e).__name__}: {e})"
                    ) from None
                log.warning("%s: %s, retrying", what, type(e).__name__)
                time.sleep(0.5 * 2**attempt)
            except OperationFailure as e:
                raise JobFailed(
                    f"{what} failed: {e.details.get('errmsg') if e.details else e} (code {e.code})"
                ) from None
            except PyMongoError as e:
                raise JobFailed(f"{what} failed: {type(e).__name__}: {e}") from None
        raise AssertionError("unreachable")
