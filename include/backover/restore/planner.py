"""The replay plan: change events in, ordered steps of writes out. Pure: no I/O.

* A **window** holds up to ``window_events`` consecutive events. Inside it only the last state of
  each document is written (hot-key compaction): an insert, a replace, an update with
  ``fullDocument`` or a delete *resets* the document's chain of writes to one write; an update
  without ``fullDocument`` *appends* its ``updateDescription`` to the chain. An update whose
  ``fullDocument`` is null (updateLookup found nothing) appends its ``updateDescription`` too, as
  a *best-effort* write: the design card skips it because "the delete follows", but a rename of
  the collection also makes the lookup come back null while the document lives on under the new
  name, and skipping would lose the update. When the document is really gone the write is
  harmless; a best-effort write the target refuses because the document already holds a later
  state (a path that is no longer a document or array) is already reflected there.
* A chain's writes go out in **rounds**: round ``r`` holds the ``r``-th write of every chain, so a
  document appears at most once per round and the writes of one round may run in any order, in
  parallel lanes, in unordered bulk commands. Almost every chain has one write: one round.
* DDL (drop, rename, dropDatabase) is a **barrier**: the window before it is closed, the DDL is a
  step of its own, nothing is compacted across it.
* invalidate or an unknown event type stops the plan with an :class:`EventError`.
* Events before the last DDL barrier already applied are skipped when segments are applied
  again: document writes are idempotent, DDL is not (a rename re-applied after later writes
  would move documents of the collection's next life).

Every step says which segments it completes (their last event is in it), so the restore can
checkpoint a segment only once everything from it is applied. Unique secondary indexes cannot be
planned for without the target's contents; the applier resolves duplicate-key rejections (see
``applier.py``).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from bson.raw_bson import RawBSONDocument
from bson.timestamp import Timestamp

from ..bsonvalues import RAW
from ..errors import JobFailed
from ..namespaces import Namespace
from .events import CRUD_OPS, DDL_OPS, ChangeEvent, EventError, FullDocument, parse_event

UPSERT, UPDATE, DELETE = "upsert", "update", "delete"
LOOKUP_NULL = "lookup_null"  # counts key: updates whose fullDocument was null


@dataclass(frozen=True, slots=True)
class Write:
    """One write statement for one document.

    :param kind: ``upsert`` (replace-with-upsert of ``document``), ``update`` (operators in
        ``update``, never an upsert) or ``delete``.
    :param document_key: raw ``{_id: ...}``, the statement's filter.
    """

    kind: str
    document_key: bytes
    identity: Hashable
    document: bytes | None = None
    update: dict[str, Any] | None = None
    best_effort: bool = False  # from an update whose fullDocument was null

    @property
    def size(self) -> int:
        """Bytes this statement adds to a command (near enough to split commands by size)."""
        body = len(self.document) if self.document is not None else 0
        if self.update is not None:
            body += 64 + sum(len(getattr(v, "raw", b"")) + 32 * len(v) for v in self.update.values())
        return len(self.document_key) + body + 32


@dataclass(frozen=True, slots=True)
class SegmentDone:
    """A segment whose every event is in the steps planned so far."""

    seq: int
    key: str
    events: int
    counts: dict[str, dict[str, int]]  # ns -> operation type (or ``lookup_null``) -> events
    last_cluster_time: Timestamp | None = None  # of its last event (None: no events)


@dataclass
class Window:
    """Compacted writes of consecutive events, no DDL among them."""

    chains: dict[Namespace, dict[Hashable, list[Write]]] = field(default_factory=dict)
    events: int = 0
    done: list[SegmentDone] = field(default_factory=list)

    def rounds(self) -> list[dict[Namespace, list[Write]]]:
        """Round ``r``: the ``r``-th write of every chain, per namespace, the chains in the order of
        the events that last reset them: of two documents whose last events hand a unique key from
        one to the other, the one that gave it up is written first (a command applies its
        statements in order), so the two do not collide."""
        out: list[dict[Namespace, list[Write]]] = []
        for ns, chains in self.chains.items():
            for chain in chains.values():
                for r, write in enumerate(chain):
                    if r == len(out):
                        out.append({})
                    out[r].setdefault(ns, []).append(write)
        return out

    @property
    def writes(self) -> int:
        return sum(len(chain) for chains in self.chains.values() for chain in chains.values())


@dataclass
class Barrier:
    """A DDL event, applied alone, after everything before it and before everything after it."""

    event: ChangeEvent
    seq: int
    index: int  # position of the event in its segment
    events: int = 1
    done: list[SegmentDone] = field(default_factory=list)


Step = Window | Barrier


@dataclass(frozen=True)
class SegmentEvents:
    """A verified segment's raw events, in stream order, and its last event's cluster time."""

    seq: int
    key: str
    events: list[bytes]
    last_cluster_time: Timestamp | None = None


def delta_writes(event: ChangeEvent, best_effort: bool = False) -> list[Write]:
    """The writes that apply an ``updateDescription``: ``$set`` of ``updatedFields`` (raw, never
    re-encoded), ``$unset`` of ``removedFields`` and, for ``truncatedArrays``, ``$push`` with an
    empty ``$each`` and ``$slice: newSize``. A truncation on a path the ``$set``/``$unset`` also
    touch goes first, as a write of its own (MongoDB refuses conflicting paths in one update)."""
    assert event.update_description is not None and event.document_key is not None
    document_key = event.document_key
    description = RawBSONDocument(event.update_description, RAW)
    updated = description.get("updatedFields")
    removed = [str(path) for path in description.get("removedFields") or []]
    truncated = {
        str(t["field"]): {"$each": [], "$slice": int(t["newSize"])}
        for t in description.get("truncatedArrays") or []
    }
    main: dict[str, Any] = {}
    paths = list(removed)
    if updated is not None and len(updated):
        main["$set"] = updated
        paths += updated.keys()
    if removed:
        main["$unset"] = dict.fromkeys(removed, "")

    def write(update: dict[str, Any]) -> Write:
        return Write(UPDATE, document_key, event.identity, update=update, best_effort=best_effort)

    if truncated and any(_overlap(a, b) for a in truncated for b in paths):
        return [write({"$push": truncated}), *([write(main)] if main else [])]
    if truncated:
        main["$push"] = truncated
    return [write(main)] if main else []


def _overlap(a: str, b: str) -> bool:
    return a == b or b.startswith(a + ".") or a.startswith(b + ".")


class _WindowBuilder:
    def __init__(self) -> None:
        self.window = Window()

    def add(self, event: ChangeEvent) -> None:
        chains = self.window.chains.setdefault(event.namespace, {})
        self.window.events += 1
        key, identity = event.document_key, event.identity
        assert key is not None
        if event.op == "delete":
            chains.pop(identity, None)  # a reset chain moves to the end: see Window.rounds
            chains[identity] = [Write(DELETE, key, identity)]
        elif event.full is FullDocument.PRESENT:
            chains.pop(identity, None)
            chains[identity] = [Write(UPSERT, key, identity, document=event.full_document)]
        elif event.update_description is not None:
            best_effort = event.full is FullDocument.NULL
            chains.setdefault(identity, []).extend(delta_writes(event, best_effort))

    def take(self) -> Window:
        window, self.window = self.window, Window()
        return window


def _count(counts: dict[str, dict[str, int]], event: ChangeEvent) -> None:
    per_ns = counts.setdefault(event.ns, {})
    per_ns[event.op] = per_ns.get(event.op, 0) + 1
    if event.op == "update" and event.full is FullDocument.NULL:
        per_ns[LOOKUP_NULL] = per_ns.get(LOOKUP_NULL, 0) + 1


def plan(
    segments: Iterable[SegmentEvents], window_events: int, applied_through: tuple[int, int] | None = None
) -> Iterator[Step]:
    """The steps that replay ``segments`` (in order), windows of at most ``window_events`` events.

    Events at positions ``(seq, index) <= applied_through`` are known to be applied (everything
    before an applied DDL barrier is): they are counted, not planned.
    """
    if window_events < 1:
        raise ValueError("window_events must be at least 1")
    builder = _WindowBuilder()
    upcoming = iter(segments)
    while True:
        try:
            segment = next(upcoming)
        except StopIteration:
            break
        except JobFailed:  # unreadable (corrupt, missing): what is pending is all from whole segments
            if builder.window.events or builder.window.done:
                yield builder.take()
            raise
        counts: dict[str, dict[str, int]] = {}
        for index, raw in enumerate(segment.events):
            try:
                event = parse_event(raw)
            except EventError as e:
                raise EventError(f"{segment.key} event {index}: {e}; restore stopped") from None
            _count(counts, event)
            if event.op == "invalidate":
                raise EventError(
                    f"{segment.key} event {index}: invalidate on {event.ns or 'the stream'} - the capture "
                    "stream was closed there, so the changes after it were not captured; restore stopped"
                )
            if event.op not in CRUD_OPS and event.op not in DDL_OPS:
                raise EventError(
                    f"{segment.key} event {index}: unknown event type {event.op!r} on "
                    f"{event.ns or '?'}; restore stopped rather than skip it"
                )
            if applied_through is not None and (segment.seq, index) <= applied_through:
                continue
            if event.op in CRUD_OPS:
                builder.add(event)
                if builder.window.events >= window_events:
                    yield builder.take()
            else:
                if builder.window.events:
                    yield builder.take()
                yield Barrier(event, segment.seq, index)
        builder.window.done.append(
            SegmentDone(segment.seq, segment.key, len(segment.events), counts, segment.last_cluster_time)
        )
        if not builder.window.events:
            yield builder.take()  # nothing pending: the segment is complete now
    if builder.window.events or builder.window.done:
        yield builder.take()
