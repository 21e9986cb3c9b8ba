"""What a migration moves: databases and collections, named one way everywhere.

A namespace is a database (``shop``: every collection of it) or one collection (``shop.orders``);
``Namespace("", "")`` (:data:`CLUSTER`) is the whole cluster, as DocumentDB's
``modifyChangeStreams`` writes it with both names empty. The replicator, the lifecycle Lambdas, the
restore, verify and backup all use this type and this one rule for what a valid, migratable name is.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from .errors import UsageError

#: Databases a migration never touches (MongoDB's and DocumentDB's own).
INTERNAL_DATABASES = frozenset({"admin", "config", "local"})
#: Characters MongoDB refuses in a database name (``.`` separates the collection).
_BAD_DB_CHARS = frozenset('/\\. "$\x00')
#: DocumentDB's limit on a database name (MongoDB allows 64 bytes): both sides must take it.
MAX_DB_NAME = 63


class InvalidNamespace(UsageError):
    """A database or collection name that is malformed or not migrated (exit 2, one line)."""


class Namespace(NamedTuple):
    """``db`` with ``coll == ""`` (every collection of it), or ``db.coll``.

    A tuple, so the restore's hot path keys dicts by it as cheaply as by ``(db, coll)``.
    """

    db: str
    coll: str = ""

    @classmethod
    def parse(cls, text: str) -> Namespace:
        """``"shop"`` or ``"shop.orders"``; :class:`InvalidNamespace` naming the rule otherwise."""
        db, sep, coll = text.strip().partition(".")
        if not db or _BAD_DB_CHARS & set(db) or (sep and not coll) or "\x00" in coll or "$" in coll:
            raise InvalidNamespace(
                f"not a namespace {text!r}: write a database 'shop' or a collection 'shop.orders'"
            )
        if len(db) > MAX_DB_NAME:
            raise InvalidNamespace(
                f"not a namespace {text!r}: a database name has at most {MAX_DB_NAME} characters"
            )
        if db in INTERNAL_DATABASES:
            raise InvalidNamespace(
                f"namespace {text!r} is in the internal {db} database, which is not migrated"
            )
        if coll.startswith("system."):
            raise InvalidNamespace(f"namespace {text!r} is a system collection, which is not migrated")
        return cls(db, coll)

    def __str__(self) -> str:
        if not self.db:
            return "*"  # the whole cluster
        return f"{self.db}.{self.coll}" if self.coll else self.db

    def covers(self, db: str, coll: str | None) -> bool:
        """True if a change to ``db.coll`` (``coll`` None: the database itself) belongs here."""
        if self.db and db != self.db:
            return False
        return not self.coll or coll is None or coll == self.coll

    def contains(self, other: Namespace) -> bool:
        """Whether ``other`` is inside this namespace (the cluster holds all, a database its collections)."""
        return self.db in ("", other.db) and self.coll in ("", other.coll)

    def to_doc(self) -> dict[str, str]:
        """``{database, collection}`` as ``modifyChangeStreams`` and ``$listChangeStreams`` write it."""
        return {"database": self.db, "collection": self.coll}

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> Namespace:
        return cls(str(doc.get("database", "")), str(doc.get("collection", "")))


#: The whole cluster (DocumentDB's ``modifyChangeStreams`` with both names empty).
CLUSTER = Namespace("", "")


def parse_all(texts: Iterable[str]) -> tuple[Namespace, ...]:
    """Parsed, de-duplicated, sorted; a collection inside a listed database is dropped as redundant."""
    parsed = {Namespace.parse(t) for t in texts}
    databases = {ns.db for ns in parsed if not ns.coll}
    return tuple(sorted(ns for ns in parsed if not ns.coll or ns.db not in databases))


def is_internal(db: str) -> bool:
    """True for the databases a migration never moves (admin, config, local)."""
    return db in INTERNAL_DATABASES
