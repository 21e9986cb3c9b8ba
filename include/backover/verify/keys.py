"""Documents compared by ``_id`` rather than by a scan: the freeze-time check's keys and the live
pass's second looks. Both sides are read as raw BSON (``_id $in`` a batch of keys) and compared
byte for byte, as the merge compares them."""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass

from bson.raw_bson import RawBSONDocument
from pymongo.collection import Collection

from ..bsonvalues import element_value
from ..restore.events import id_element_of, identity_of
from .merge import DIFFERENT, EXTRA, MISSING, MergeResult, documents, first_differing_field


def fetch(
    collection: Collection[RawBSONDocument], id_elements: Iterable[bytes], batch_size: int
) -> dict[Hashable, bytes]:
    """``{identity: raw document}`` of the documents of ``collection`` with these ``_id``s."""
    found: dict[Hashable, bytes] = {}
    for chunk in _chunks(list(id_elements), batch_size):
        query = {"_id": {"$in": [element_value(e) for e in chunk]}}
        batches: Iterable[bytes] = collection.find_raw_batches(query, batch_size=batch_size)  # type: ignore[assignment]
        for raw in documents(batches):
            found[identity_of(id_element_of(raw))] = raw
    return found


@dataclass(frozen=True)
class KeyOutcome:
    """One document compared by key: ``kind`` is None when both sides hold the same bytes."""

    identity: Hashable
    id_element: bytes
    kind: str | None
    field: str | None = None


def compare_keys(
    source: Mapping[Hashable, bytes], target: Mapping[Hashable, bytes], keys: Mapping[Hashable, bytes]
) -> Iterator[KeyOutcome]:
    """Each of ``keys`` (``{identity: raw _id element}``) judged on what both sides returned."""
    for identity, id_element in keys.items():
        s, t = source.get(identity), target.get(identity)
        if s is None and t is None or s == t:
            yield KeyOutcome(identity, id_element, None)
        elif t is None:
            yield KeyOutcome(identity, id_element, MISSING)
        elif s is None:
            yield KeyOutcome(identity, id_element, EXTRA)
        else:
            yield KeyOutcome(identity, id_element, DIFFERENT, first_differing_field(s, t))


def add_outcome(result: MergeResult, outcome: KeyOutcome, examples: int) -> None:
    """Count an outcome of :func:`compare_keys` as the merge counts its differences."""
    if outcome.kind is None:
        return
    setattr(result, outcome.kind, getattr(result, outcome.kind) + 1)
    if len(result.first_differences) < examples:
        detail = {"field": outcome.field} if outcome.field is not None else {}
        result.first_differences.append(
            {"_id": element_value(outcome.id_element), "kind": outcome.kind, **detail}
        )


def _chunks(items: list[bytes], size: int) -> Iterator[list[bytes]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
