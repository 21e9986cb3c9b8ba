"""The TTL monitor: documents of TTL indexes expire as on mongod, on the server's clock.

mongod's ``TTLMonitor`` wakes up every ``ttlMonitorSleepSecs`` (60 s) and, for each TTL index (a
single-field ascending/descending index with ``expireAfterSeconds``; special indexes are skipped),
deletes the documents whose indexed field holds a date (in an array: any date, so the earliest
decides) at or before ``now - expireAfterSeconds``: an index scan from the dawn of time to that
date, both bounds included, oldest first. A partial TTL index only sees the documents its filter
matches. Each deletion is an ordinary delete: it replicates as one and change streams show it as a
``delete`` event (on DocumentDB too, whose TTL deletes are change-stream deletes as well).

The stand-in runs the monitor lazily and deterministically: before each command,
:meth:`TTLMonitor.run_due` checks the server's clock and, when one or more 60-second passes have
come due since the last one, runs one pass as of the latest of them. Between two commands nothing
can change the data, so one pass as of the latest boundary deletes exactly what the passes a
background thread would have run deletes. Tests drive it with ``ManualClock.advance``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bson.datetime_ms import DatetimeMS

from backover.bsonvalues import decode
from backover.mongo.ordering import compare
from backover.mongo.query import compile_filter, path_values

from .indexes import INT64_MAX, INT64_MIN, TTL_MONITOR_SLEEP_SECS, Index

if TYPE_CHECKING:  # pragma: no cover
    from .store import Collection, Store

#: mongod's ``kDawnOfTime``: the smallest date.
DAWN_OF_TIME = DatetimeMS(INT64_MIN)


class TTLMonitor:
    """Runs TTL passes for one store, every ``sleep_seconds`` of its wall clock since it started."""

    def __init__(self, store: Store, sleep_seconds: float = TTL_MONITOR_SLEEP_SECS) -> None:
        self.store = store
        self.sleep_seconds = sleep_seconds
        self.started = store.wall.time()
        self.passes = 0  # the passes run (or come due with nothing to expire) so far

    def run_due(self) -> int:
        """Run the pass that is due, if any; returns the number of documents it deleted."""
        due = int((self.store.wall.time() - self.started) // self.sleep_seconds)
        if due <= self.passes:
            return 0
        with self.store.lock:
            if due <= self.passes:
                return 0
            self.passes = due
            return self.run_pass(self.started + due * self.sleep_seconds)

    def run_pass(self, at: float) -> int:
        """Delete what has expired as of ``at`` (seconds since the epoch) in every TTL index."""
        deleted = 0
        with self.store.lock:
            for db in sorted(self.store.databases):
                for name in sorted(self.store.databases.get(db, {})):
                    coll = self.store.get(db, name)
                    if coll is None:
                        continue
                    for index in [ix for ix in coll.indexes.values() if ix.is_ttl]:
                        deleted += self._expire(coll, index, at)
        return deleted

    def _expire(self, coll: Collection, index: Index, at: float) -> int:
        expire_after = index.expire_after_seconds or 0
        millis = int(at * 1000) - expire_after * 1000
        expiration = DatetimeMS(max(INT64_MIN, min(INT64_MAX, millis)))
        path = index.key[0][0]
        bound = compile_filter({path: {"$gte": DAWN_OF_TIME, "$lte": expiration}})
        expired: list[tuple[Any, int, Any]] = []
        for position, (key, raw) in enumerate(coll.docs.items()):
            doc = decode(raw)
            if index.covers(doc) and bound(doc):
                expired.append((_earliest_date(doc, path, expiration), position, key))
        ordered = sorted(expired, key=lambda item: item[1])
        ordered.sort(key=_DateOrder)  # oldest first, then insertion order (the index scan's order)
        for _, _, key in ordered:
            if key in coll.docs:
                self.store.delete(coll, key)
        return len(ordered)


class _DateOrder:
    """Sort key comparing BSON dates with MongoDB's order."""

    __slots__ = ("value",)

    def __init__(self, item: tuple[Any, int, Any]) -> None:
        self.value = item[0]

    def __lt__(self, other: _DateOrder) -> bool:
        return compare(self.value, other.value) < 0


def _earliest_date(doc: Any, path: str, bound: DatetimeMS) -> Any:
    """The smallest date at ``path`` no later than ``bound`` (the index key the scan meets first)."""
    dates = [
        value
        for value in path_values(doc, path)
        if type(value).__name__ in ("datetime", "DatetimeMS") and compare(value, bound) <= 0
    ]
    earliest = dates[0]
    for value in dates[1:]:
        if compare(value, earliest) < 0:
            earliest = value
    return earliest
