"""The live pass's comparisons of document scopes, and the second looks at what differed
(docs/architecture.md, "Verify", has the proof).

:class:`Comparison` merges scopes (a whole namespace, a sync-plan partition, a namespace's rest:
:mod:`backover.sync.scopes`) as the full comparison merges namespaces, and keeps each differing
document, stamped with the source's cluster time read after it. :meth:`Comparison.settle` then
compares them again by ``_id`` as the restore passes their stamps: equal, done; still different
and no event after the pass's S0 names it (nor a DDL its namespace), proven different; else it is
stamped again, up to :data:`RECOMPARISONS` times, then left to the freeze-time check. Every step
of the pass (the whole pass, a partition, the finish) uses it, so the rule is written once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bson.timestamp import Timestamp
from pymongo import MongoClient

from .. import clustertime, state
from ..bsonvalues import element_value, raw_collection
from ..errors import JobFailed
from ..layout import MigrationLayout
from ..lifecycle.source import cluster_time
from ..namespaces import Namespace
from ..restore.events import identity_of
from ..s3objects import S3Objects
from ..state import RestoreCheckpoint, RestoreState
from .changes import ChangeKeys
from .compare import compare_documents
from .config import VerifyConfig
from .keys import compare_keys, fetch
from .merge import MergeResult
from .progress import Progress

log = logging.getLogger("backover.verify")

#: A differing document that an event after A0 names is compared again this many times after the
#: restore passed its read time; if it still differs (it keeps changing), the freeze-time check,
#: which compares every such key, decides.
RECOMPARISONS = 5
#: Differing documents stamped with one reading of the source's cluster time, at most.
STAMP_EVERY = 1000
#: More differing documents than this in one step of the pass: not a restore that trails, a target
#: that does not hold the source's data (the precondition); the step stops.
MAX_WAITING = 100_000


@dataclass
class Waiting:
    """A document that differed, waiting for the restore to pass ``read_at``."""

    ns: Namespace
    identity: Hashable
    id_element: bytes
    read_at: Timestamp | None = None  # a source cluster time at or after its last source read
    attempts: int = 0


@dataclass
class Settled:
    """What the second looks found: ``proven`` different, ``unsettled`` at the deadline (empty
    when some are proven), how many ``settled`` (equal) and how many were ``deferred`` to the
    freeze-time check."""

    proven: list[Waiting] = field(default_factory=list)
    unsettled: list[Waiting] = field(default_factory=list)
    settled: int = 0
    deferred: int = 0


def restored_through(
    s3: S3Objects, layout: MigrationLayout
) -> tuple[Timestamp | None, RestoreCheckpoint | None]:
    """The cluster time up to which every captured source change is in the target: the restore
    checkpoint's ``applied_cluster_time``, or, when the restore has applied every segment written,
    the replicator's capture position (an idle source moves it on with no event)."""
    restore = state.read(s3, layout.restore_checkpoint, RestoreCheckpoint)
    if restore is None:
        return None, None
    through = restore.applied_cluster_time
    replicator = state.read(s3, layout.replicator_checkpoint, state.ReplicatorCheckpoint)
    if replicator is not None and restore.last_applied_seq >= replicator.last_seq:
        position = replicator.last_cluster_time
        if position is not None and (through is None or position > through):
            through = position
    return through, restore


class Comparison:
    """The scopes one step of the live pass compares, and the documents that differed in them."""

    def __init__(
        self,
        config: VerifyConfig,
        source: MongoClient[dict[str, Any]],
        target: MongoClient[dict[str, Any]],
        what: str = "verify --live",
    ) -> None:
        self.config = config
        self.source = source
        self.target = target
        self.progress = Progress(what, config.progress_seconds)
        self.waiting: list[Waiting] = []
        self.documents = 0  # source documents compared

    @property
    def differed(self) -> int:
        return len(self.waiting)

    def scope(self, ns: Namespace, id_filter: Mapping[str, Any], label: str) -> MergeResult:
        """Merge the documents of ``ns`` that ``id_filter`` matches on both sides (``{}``: all),
        stamping each that differs."""
        stamps = _Stamps(self.source, ns, self.waiting)
        merged = compare_documents(
            self.source,
            self.target,
            ns.db,
            ns.coll,
            self.config.batch_size,
            0,
            self.progress,
            on_difference=stamps.differed,
            id_filter=id_filter,
            label=label,
        )
        stamps.stamp()
        self.documents += merged.source_count
        return merged

    def settle(self, s3: S3Objects, keys: ChangeKeys) -> Settled:
        """Compare the differing documents again as the restore passes them (up to
        ``settle_seconds``); ``keys`` (K since the pass's S0) is read on as needed."""
        return _settle(self.config, s3, self.source, self.target, keys, list(self.waiting))


class _Stamps:
    """Collects the differing documents of one scope's merge and stamps them with the source's
    cluster time read after them (every :data:`STAMP_EVERY`, and at the end of the merge)."""

    def __init__(self, source: MongoClient[dict[str, Any]], ns: Namespace, waiting: list[Waiting]) -> None:
        self.source = source
        self.ns = ns
        self.waiting = waiting
        self.unstamped: list[Waiting] = []

    def differed(self, kind: str, id_element: bytes) -> None:
        item = Waiting(self.ns, identity_of(id_element), id_element)
        self.waiting.append(item)
        self.unstamped.append(item)
        if len(self.unstamped) >= STAMP_EVERY:
            self.stamp()
        if len(self.waiting) > MAX_WAITING:
            first = self.waiting[0]
            raise JobFailed(
                f"more than {MAX_WAITING:,} documents differ (first in {first.ns}: _id "
                f"{element_value(first.id_element)!r}): the target does not hold the source's data"
            )

    def stamp(self) -> None:
        if not self.unstamped:
            return
        moment = cluster_time(self.source)
        for item in self.unstamped:
            item.read_at = moment
        self.unstamped.clear()


def _settle(
    config: VerifyConfig,
    s3: S3Objects,
    source: MongoClient[dict[str, Any]],
    target: MongoClient[dict[str, Any]],
    keys: ChangeKeys,
    waiting: list[Waiting],
) -> Settled:
    proven: list[Waiting] = []
    settled = deferred = 0
    deadline = time.monotonic() + config.settle_seconds
    last_line = time.monotonic()
    while waiting:
        through, restore = restored_through(s3, config.layout)
        if restore is not None and restore.state is RestoreState.FAILED:
            raise JobFailed(
                f"the restore failed ({restore.reason}) while {len(waiting):,} differing document(s) "
                "waited for it"
            )
        ready = [w for w in waiting if through is not None and w.read_at is not None and w.read_at <= through]
        if ready:
            keys.refresh(s3, config.layout)  # after every read of the comparisons that differed
            again: list[Waiting] = []
            for ns in sorted({w.ns for w in ready}):
                group = {w.identity: w for w in ready if w.ns == ns}
                elements = {identity: w.id_element for identity, w in group.items()}
                src = fetch(raw_collection(source, ns.db, ns.coll), elements.values(), config.batch_size)
                moment = cluster_time(source)
                tgt = fetch(raw_collection(target, ns.db, ns.coll), elements.values(), config.batch_size)
                for outcome in compare_keys(src, tgt, elements):
                    item = group[outcome.identity]
                    if outcome.kind is None:
                        settled += 1
                    elif not keys.covers(ns, item.identity):
                        proven.append(item)
                    elif item.attempts + 1 >= RECOMPARISONS:
                        deferred += 1
                    else:
                        item.attempts += 1
                        item.read_at = moment
                        again.append(item)
            ready_ids = {id(w) for w in ready}
            waiting = [w for w in waiting if id(w) not in ready_ids] + again
        if proven or not waiting or time.monotonic() >= deadline:
            break
        if time.monotonic() - last_line >= config.progress_seconds:
            last_line = time.monotonic()
            log.info(
                "verify --live: %s differing document(s) wait for the restore to pass %s (it is at %s)",
                f"{len(waiting):,}",
                clustertime.format(max(w.read_at for w in waiting if w.read_at is not None)),
                clustertime.format(through) if through is not None else "nothing",
            )
        time.sleep(config.poll_seconds)
    return Settled(proven, waiting if not proven else [], settled, deferred)


def named(items: list[Waiting], limit: int) -> dict[str, list[Any]]:
    """The first ``limit`` ``_id``s of ``items`` per namespace (a record's ``differences``)."""
    out: dict[str, list[Any]] = {}
    for item in items:
        ids = out.setdefault(str(item.ns), [])
        if len(ids) < limit:
            ids.append(element_value(item.id_element))
    return out
