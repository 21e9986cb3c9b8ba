"""Which change stream covers the namespaces a migration moves, and which of its events to keep.

A namespace (:class:`backover.namespaces.Namespace`) is a database (``shop``) or a collection
(``shop.orders``). The replicator watches at
the narrowest level that covers them all: one collection, one database, or the whole cluster. When
that level also sees namespaces nobody asked for (two collections of a database watched at the
database level), :class:`NamespaceFilter` drops their events.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import UsageError
from ..namespaces import Namespace


@dataclass(frozen=True)
class WatchScope:
    """Where the change stream is opened: ``level`` is ``collection``, ``database`` or ``cluster``."""

    level: str
    db: str = ""
    coll: str = ""

    def __str__(self) -> str:
        if self.level == "collection":
            return f"collection {self.db}.{self.coll}"
        if self.level == "database":
            return f"database {self.db}"
        return "the cluster"

    def enable_command(self) -> str:
        """The DocumentDB command that enables change streams for this scope."""
        db = self.db if self.level != "cluster" else ""
        coll = self.coll if self.level == "collection" else ""
        return (
            f'db.adminCommand({{modifyChangeStreams: 1, database: "{db}", collection: "{coll}", '
            f"enable: true}})"
        )


def narrowest_scope(namespaces: tuple[Namespace, ...]) -> WatchScope:
    """One collection -> collection level; one database -> database level; else the cluster."""
    if not namespaces:
        raise UsageError("no namespaces to watch: pass --namespace or record them in state/start.json")
    databases = {ns.db for ns in namespaces}
    if len(databases) > 1:
        return WatchScope("cluster")
    (db,) = databases
    if len(namespaces) == 1 and namespaces[0].coll:
        return WatchScope("collection", db, namespaces[0].coll)
    return WatchScope("database", db)


class NamespaceFilter:
    """Keeps the events that concern the wanted namespaces (reads ``ns``/``to`` of a raw event)."""

    def __init__(self, namespaces: tuple[Namespace, ...]) -> None:
        self.namespaces = namespaces

    @staticmethod
    def needed(namespaces: tuple[Namespace, ...], scope: WatchScope) -> bool:
        """False when the scope sees exactly the namespaces (nothing to filter)."""
        if scope.level == "collection":
            return False
        return not (scope.level == "database" and namespaces == (Namespace(scope.db),))

    def keep(self, event: Mapping[str, Any]) -> bool:
        """True for events of a wanted namespace; events without a namespace (invalidate), or whose
        namespace names no database, are kept (the restore judges them; the capture never drops
        what it cannot place)."""
        ns = event.get("ns")
        if ns is None:
            return True
        if self._wanted(ns):
            return True
        to = event.get("to")
        return to is not None and self._wanted(to)

    def _wanted(self, ns: Mapping[str, Any]) -> bool:
        db = ns.get("db")
        if not isinstance(db, str):
            return True
        coll = ns.get("coll")
        return any(n.covers(db, coll) for n in self.namespaces)
