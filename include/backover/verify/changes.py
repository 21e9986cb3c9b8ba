"""K: the documents the captured events after a point touch, read from the segments.

The live pass records where the restore stood when it began (segment ``applied_seq``, cluster time
A0). Every write the target receives after that comes from an event of a later segment, and every
source write after it is such an event too, so a document no later event names is the same on both
sides from then on (docs/architecture.md, "Verify"). :class:`ChangeKeys` collects those names:
``(namespace, _id)`` of every CRUD event after ``applied_seq``, and the collections and databases a
DDL event (drop, rename, dropDatabase) touched, whose documents may all have changed.

Segments are read with the restore's own reader (listed up to the replicator checkpoint's
``last_seq``, each proven whole, in order); only keys are kept (an ``_id`` element per document).
"""

from __future__ import annotations

import logging
from collections.abc import Hashable
from dataclasses import dataclass, field

from bson.timestamp import Timestamp

from .. import state
from ..errors import JobFailed
from ..layout import MigrationLayout
from ..namespaces import Namespace
from ..restore.events import CRUD_OPS, id_element_of, parse_event
from ..restore.reader import SegmentReader, list_segments
from ..s3objects import S3Objects

log = logging.getLogger(__name__)


@dataclass
class ChangeKeys:
    """The keys of every event in the segments after ``after_seq``, read up to ``through_seq``.

    ``keys``: per collection, ``{identity: raw _id element}`` (:func:`identity_of`: ``1`` and
    ``Int64(1)`` are one document, as in MongoDB); ``collections``/``databases``: what a DDL event
    touched (all its documents count as changed)."""

    after_seq: int
    through_seq: int = -1
    through_time: Timestamp | None = None
    events: int = 0
    keys: dict[Namespace, dict[Hashable, bytes]] = field(default_factory=dict)
    collections: set[Namespace] = field(default_factory=set)
    databases: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        if self.through_seq < self.after_seq:
            self.through_seq = self.after_seq

    def refresh(self, s3: S3Objects, layout: MigrationLayout) -> int:
        """Read the segments written since the last refresh (up to the replicator checkpoint's
        ``last_seq``); returns how many were read."""
        checkpoint = state.read(s3, layout.replicator_checkpoint, state.ReplicatorCheckpoint)
        if checkpoint is None or checkpoint.last_seq <= self.through_seq:
            return 0
        refs = list_segments(s3, layout, self.through_seq + 1, checkpoint.last_seq)
        for segment in SegmentReader(s3, refs):
            for raw in segment.events:
                self._add(raw, segment.key)
            self.through_seq = segment.seq
            if segment.last_cluster_time is not None:
                self.through_time = segment.last_cluster_time
        log.debug("change keys: segments %d..%d read, %d events", refs[0].seq, self.through_seq, self.events)
        return len(refs)

    def _add(self, raw: bytes, key: str) -> None:
        event = parse_event(raw)
        self.events += 1
        if event.op in CRUD_OPS:
            assert event.coll is not None and event.document_key is not None
            ns = Namespace(event.db, event.coll)
            self.keys.setdefault(ns, {})[event.identity] = id_element_of(event.document_key)
        elif event.op == "dropDatabase" or (event.coll is None and event.db):
            self.databases.add(event.db)
        elif event.coll is not None:
            self.collections.add(Namespace(event.db, event.coll))
            if event.to is not None:
                self.collections.add(event.to)
        else:
            raise JobFailed(f"{key} holds a {event.op} event without a namespace: nothing can be proven")

    def changed_wholly(self, ns: Namespace) -> bool:
        """A DDL event after ``after_seq`` touched ``ns``: any of its documents may have changed."""
        return ns.db in self.databases or ns in self.collections

    def covers(self, ns: Namespace, identity: Hashable) -> bool:
        """An event after ``after_seq`` may have changed document ``identity`` of ``ns``."""
        return self.changed_wholly(ns) or identity in self.keys.get(ns, {})

    def of(self, ns: Namespace) -> dict[Hashable, bytes]:
        """The keys of ``ns`` (``{identity: raw _id element}``)."""
        return self.keys.get(ns, {})

    @property
    def documents(self) -> int:
        return sum(len(k) for k in self.keys.values())
