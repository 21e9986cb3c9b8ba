"""The streaming merge of two ``_id``-ordered streams of raw documents. Pure: no I/O.

Equal ``_id`` bytes (the usual case) are matched without decoding anything; only when the ``_id``
elements differ are the two ``_id`` values decoded and ordered as MongoDB sorts them. Documents
are equal only when their bytes are: an Int32 that became an Int64, a moved field or a
Decimal128 with another scale is a difference.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

from ..bsonvalues import element_value, elements, first_element
from ..mongo.ordering import compare
from ..segments import iter_raw_events

MISSING, EXTRA, DIFFERENT = "missing", "extra", "different"

#: Told of every difference the merge finds: its kind and the raw ``_id`` element.
OnDifference = Callable[[str, bytes], None]


@dataclass
class MergeResult:
    """Counts and the first differences of one namespace."""

    source_count: int = 0
    target_count: int = 0
    missing: int = 0  # in the source, not in the target
    extra: int = 0  # in the target, not in the source
    different: int = 0  # same _id, other bytes
    first_differences: list[dict[str, Any]] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return not (self.missing or self.extra or self.different)


def _id_element(raw: bytes) -> bytes:
    first = first_element(raw)
    if first is None or first[0] != "_id":
        raise ValueError("a document without a leading _id")
    return first[1]


def _order(a: bytes, b: bytes) -> int:
    return 0 if a == b else compare(element_value(a), element_value(b))


FIELD_ORDER = "(field order)"


def first_differing_field(source: bytes, target: bytes) -> str:
    """The first top-level field (in the source's order) whose bytes differ, or
    ``(field order)`` when the fields are the same but in another order."""
    left, right = elements(source), elements(target)
    for name, element in left.items():
        if right.get(name) != element:
            return name
    extra = [name for name in right if name not in left]
    return extra[0] if extra else FIELD_ORDER


def count_documents(batch: bytes) -> int:
    """How many BSON documents a raw batch holds (their sizes only are read)."""
    count, pos, end = 0, 0, len(batch)
    while pos < end:
        pos += int.from_bytes(batch[pos : pos + 4], "little")
        count += 1
    if pos != end:
        raise ValueError("a raw batch ends inside a document")
    return count


def merge_batches(
    source: Iterable[bytes],
    target: Iterable[bytes],
    examples: int = 10,
    on_difference: OnDifference | None = None,
) -> MergeResult:
    """:func:`merge` over raw batches (as ``find_raw_batches`` returns them). Both sides are read
    with the same query and batch size, so while they are identical their batches are identical
    bytes: those are only counted. From the first batch that differs on, document by document."""
    result = MergeResult()
    src, tgt = iter(source), iter(target)
    while True:
        a, b = next(src, None), next(tgt, None)
        if a is None or b is None or a != b:
            break
        result.source_count += (n := count_documents(a))
        result.target_count += n
    rest_source = chain([a] if a is not None else [], src)
    rest_target = chain([b] if b is not None else [], tgt)
    return merge(documents(rest_source), documents(rest_target), examples, result, on_difference)


def documents(batches: Iterable[bytes]) -> Iterator[bytes]:
    for batch in batches:
        yield from iter_raw_events(batch)


def merge(
    source: Iterable[bytes],
    target: Iterable[bytes],
    examples: int = 10,
    result: MergeResult | None = None,
    on_difference: OnDifference | None = None,
) -> MergeResult:
    """Compare two streams of raw documents, each sorted by ``_id`` in MongoDB's order;
    ``on_difference`` (when given) is told of every difference, not only the first ``examples``."""
    result = result or MergeResult()

    def note(kind: str, id_element: bytes, detail: dict[str, Any] | None = None) -> None:
        if on_difference is not None:
            on_difference(kind, id_element)
        if len(result.first_differences) < examples:
            result.first_differences.append(
                {"_id": element_value(id_element), "kind": kind, **(detail or {})}
            )

    src, tgt = iter(source), iter(target)
    s, t = next(src, None), next(tgt, None)
    s_id = _id_element(s) if s is not None else b""
    t_id = _id_element(t) if t is not None else b""
    while s is not None or t is not None:
        order = 1 if s is None else -1 if t is None else _order(s_id, t_id)
        if order < 0:
            result.missing += 1
            note(MISSING, s_id)
            step_source, step_target = True, False
        elif order > 0:
            result.extra += 1
            note(EXTRA, t_id)
            step_source, step_target = False, True
        else:
            if s != t:
                result.different += 1
                wanted = len(result.first_differences) < examples
                detail = {"field": first_differing_field(s, t)} if wanted else None  # type: ignore[arg-type]
                note(DIFFERENT, s_id, detail)
            step_source = step_target = True
        if step_source:
            result.source_count += 1
            s = next(src, None)
            s_id = _id_element(s) if s is not None else b""
        if step_target:
            result.target_count += 1
            t = next(tgt, None)
            t_id = _id_element(t) if t is not None else b""
    return result
