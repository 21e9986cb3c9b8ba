"""Helpers for the restore tests: capture real change events from the DocumentDB stand-in, write
them as segments the way the replicator does, and compare databases byte for byte.

The replicator is being built elsewhere; these helpers produce exactly its contract (segments
``changes/{seq:012d}.bson.zst`` + metadata via ``backover.segments.build`` and a
``ReplicatorCheckpoint`` with ``last_seq``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import bson
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument
from bson.timestamp import Timestamp
from pymongo import MongoClient
from pymongo.database import Database

from backover import segments
from backover.layout import MigrationLayout
from backover.s3objects import S3Objects
from backover.state import ReplicatorCheckpoint

RAW = CodecOptions(document_class=RawBSONDocument)


def new_db_name(prefix: str = "r") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def enable_streams(client: MongoClient, db: str) -> None:
    """DocumentDB needs change streams enabled before ``watch``."""
    client.admin.command("modifyChangeStreams", database=db, collection="", enable=True)


@contextmanager
def capturing(client: MongoClient, db: str, *, lookup: bool = True) -> Iterator[list[bytes]]:
    """Collect the raw change events of database ``db`` caused inside the ``with`` block.

    The stream is opened first; on exit every event already in the change log is read (an empty
    ``getMore`` means the stand-in has nothing more), raw bytes as the server sent them.
    """
    database = client.get_database(db, codec_options=RAW)
    options: dict[str, Any] = {"max_await_time_ms": 20}
    if lookup:
        options["full_document"] = "updateLookup"
    events: list[bytes] = []
    with database.watch(**options) as stream:
        yield events
        while True:
            event = stream.try_next()
            if event is None:
                break
            events.append(event.raw)
            if RawBSONDocument(event.raw)["operationType"] == "invalidate":
                break


def capture(
    client: MongoClient, db: str, actions: Callable[[Database], None], *, lookup: bool = True
) -> list[bytes]:
    with capturing(client, db, lookup=lookup) as events:
        actions(client[db])
    return events


@dataclass
class Migration:
    """A migration's S3 side for one test."""

    s3: S3Objects
    layout: MigrationLayout
    last_times: dict[int, Timestamp] = field(default_factory=dict)  # last cluster time of each segment put

    def write_segments(
        self,
        events: list[bytes],
        per_segment: int,
        compression: str = "zstd",
        first_seq: int = 1,
        state: str = "drained",
    ) -> int:
        """Write ``events`` as segments of ``per_segment`` events and the replicator checkpoint;
        returns the last sequence number."""
        seq = first_seq - 1
        for start in range(0, len(events), per_segment):
            seq += 1
            self.put_segment(seq, events[start : start + per_segment], compression)
        self.put_checkpoint(seq, len(events), state)
        return seq

    def put_segment(self, seq: int, events: list[bytes], compression: str = "zstd") -> str:
        """Segment ``seq`` with the replicator's metadata (identity, the events' cluster times)."""
        times = [RawBSONDocument(e)["clusterTime"] for e in events]
        body, info = segments.build(
            events,
            times[0],
            times[-1],
            compression,
            migration_id=self.layout.migration_id,
            seq=seq,
            writer="restore-tests",
        )
        key = self.layout.segment(seq, compression)
        self.s3.put_bytes(key, body, info.metadata())
        self.last_times[seq] = times[-1]
        return key

    def put_checkpoint(self, last_seq: int, events_total: int, state: str = "drained") -> None:
        """The replicator checkpoint; its position is the end of the last segment written."""
        last_time = self.last_times.get(last_seq) or max(self.last_times.values(), default=None)
        checkpoint = ReplicatorCheckpoint(
            self.layout.migration_id,
            last_seq=last_seq,
            events_total=events_total,
            state=state,
            last_cluster_time=last_time or Timestamp(1, 1),
        )
        self.s3.put_json(self.layout.replicator_checkpoint, checkpoint.to_doc())

    def restore_checkpoint(self) -> dict[str, Any] | None:
        return self.s3.get_json(self.layout.restore_checkpoint)


def new_migration(bucket: str) -> Migration:
    return Migration(S3Objects(bucket), MigrationLayout(bucket, "backover", f"m-{uuid.uuid4().hex[:8]}"))


def raw_contents(client: MongoClient, db: str) -> dict[str, dict[bytes, bytes]]:
    """Every non-empty collection of ``db``: ``{collection: {raw _id element: raw document}}``."""
    from backover.restore.events import id_element_of

    out: dict[str, dict[bytes, bytes]] = {}
    database = client.get_database(db, codec_options=RAW)
    for name in sorted(database.list_collection_names()):
        docs = {id_element_of(raw): raw for raw in (bytes(d.raw) for d in database[name].find())}
        if docs:
            out[name] = docs
    return out


# -- events built by hand (the planner's pure tests and the model-based property test) --------------
MISSING = object()


def built_event(
    op: str,
    coll: str | None = "c",
    _id: Any = 1,
    *,
    db: str = "d",
    full: Any = MISSING,
    description: dict[str, Any] | None = None,
    to: tuple[str, str] | None = None,
) -> bytes:
    """A change event as DocumentDB sends it (fields in MongoDB's order)."""
    doc: dict[str, Any] = {
        "_id": {"_data": uuid.uuid4().hex},
        "operationType": op,
        "clusterTime": Timestamp(1_764_270_000, 1),
    }
    if op in ("insert", "update", "replace", "delete"):
        if full is not MISSING:
            doc["fullDocument"] = full
        doc["ns"] = {"db": db, "coll": coll}
        doc["documentKey"] = {"_id": _id}
        if description is not None:
            doc["updateDescription"] = {
                "updatedFields": {},
                "removedFields": [],
                "truncatedArrays": [],
                **description,
            }
    elif op == "dropDatabase":
        doc["ns"] = {"db": db}
    elif op != "invalidate":
        doc["ns"] = {"db": db, "coll": coll}
        if to is not None:
            doc["to"] = {"db": to[0], "coll": to[1]}
    return bson.encode(doc)
