"""The sync plan's partitions as scopes for every whole-database pass (verify, backup): one rule,
here, for which documents each partition holds and which documents no partition holds.

A plan's partitions are disjoint ``_id`` ranges (``backover.sync.ranges``). For a collection whose
``_id``s were of one type bracket when planned (``types`` empty) they also cover every ``_id`` of
any other type: the first range, ``{$not: {$gte: b1}}``, holds them. For a collection of several
brackets every range carries its bracket's ``$type``, so an ``_id`` of a bracket the plan did not
see (inserted after it) is in no partition: the collection's *rest*, ``{_id: {$not: {$type:
[the planned types]}}}``. A collection the plan does not hold (created after it, or only on the
target) and a planned collection without partitions (empty when planned) are wholly rest
(``{}``). So the partitions and the rest together hold every document once: a pass that maps one
task per partition and does the rest in one more task reads every document exactly once.

A pass over the partitions records, at its begin, the partitions it goes over
(:func:`plan_partitions`) and the plan's ``created_at``; each later step reads the plan again and
checks it is still that one (:func:`begun_plan`): a plan made again since has other partitions, so
the steps would not add up to one pass.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..errors import JobFailed
from ..namespaces import Namespace
from ..state import RecordError, SyncCollection, SyncPartition, SyncPlan
from . import ranges


@dataclass(frozen=True)
class Scope:
    """Some documents of one namespace: ``filter`` on ``_id`` (``{}``: all); ``partition``: the
    plan's partition id, None for a rest."""

    ns: Namespace
    filter: dict[str, Any]
    partition: str | None = None

    @property
    def label(self) -> str:
        """For log lines: the partition id, or ``<ns> (rest)`` / ``<ns>`` for a whole collection."""
        if self.partition is not None:
            return self.partition
        return f"{self.ns} (rest)" if self.filter else str(self.ns)


def _raw(bound: Any) -> bytes | None:
    if bound is None or isinstance(bound, bytes):
        return bound
    raise RecordError(f"a sync plan partition bound is not raw BSON: {type(bound).__name__}")


def range_filter(part: SyncPartition, last: bytes | None = None) -> dict[str, Any]:
    """The filter of one planned range (``last``: only after that raw ``{_id}``, for a resumed copy)."""
    return ranges.id_filter(part.types, _raw(part.lower), _raw(part.upper), last)


def partition_scope(plan: SyncPlan, partition_id: str) -> Scope:
    """The scope of one planned partition; KeyError-free: an unknown id is a RecordError naming it."""
    found = plan.find(partition_id)
    if found is None:
        raise RecordError(f"no partition {partition_id!r} in the sync plan of {plan.migration_id}")
    coll, part = found
    return Scope(Namespace(coll.db, coll.coll), range_filter(part), part.id)


def _planned_types(coll: SyncCollection) -> list[str]:
    return sorted({t for p in coll.partitions for t in p.types})


def rest_scopes(plan: SyncPlan | None, namespaces: Iterable[Namespace]) -> list[Scope]:
    """What no partition holds, of the given namespaces (the pass's whole list, in its order):
    a namespace not planned, or planned without partitions, wholly; a planned collection of
    several brackets, its ``_id``s of the brackets the plan did not see; a planned collection of
    one bracket: nothing."""
    planned = {Namespace(c.db, c.coll): c for c in plan.collections} if plan is not None else {}
    scopes = []
    for ns in namespaces:
        coll = planned.get(ns)
        if coll is None or not coll.partitions:
            scopes.append(Scope(ns, {}))
            continue
        types = _planned_types(coll)
        if types:
            scopes.append(Scope(ns, {"_id": {"$not": {"$type": types}}}))
    return scopes


def partitioned(plan: SyncPlan | None, ns: Namespace) -> bool:
    """True when some partition of the plan holds documents of ``ns``."""
    return plan is not None and any(Namespace(c.db, c.coll) == ns and c.partitions for c in plan.collections)


def plan_partitions(plan: SyncPlan | None, within: Iterable[Namespace] | None) -> list[str]:
    """The plan's partition ids, in plan order, of the collections a namespace of ``within``
    contains (a database: each of its collections); ``within`` None: of every planned collection.
    No plan: none."""
    if plan is None:
        return []
    wanted = None if within is None else tuple(within)
    return [
        p.id
        for c in plan.collections
        if wanted is None or any(w.contains(Namespace(c.db, c.coll)) for w in wanted)
        for p in c.partitions
    ]


def begun_plan(
    plan: SyncPlan | None,
    created_at: datetime | None,
    ids: list[str],
    within: Iterable[Namespace] | None,
    *,
    begun: str,
    again: str,
) -> SyncPlan | None:
    """``plan`` (the sync plan as read now) when it is the one a pass's begin read: made at
    ``created_at`` (None: the begin found no plan) and with ``ids`` as its partitions of ``within``
    (:func:`plan_partitions`). Else JobFailed, one line: ``begun`` names the pass (``the backup
    begun as X``), ``again`` the command that begins it again."""
    now = plan.created_at if plan is not None else None
    if now == created_at and plan_partitions(plan, within) == ids:
        return plan
    if now is None:
        why = "it is gone"
    elif created_at is None:
        why = "there was none then"
    elif now != created_at:
        why = "it was made again"
    else:
        why = "its partitions are not the ones recorded then"
    raise JobFailed(f"the sync plan is not the one {begun} read ({why}): run {again} again")
