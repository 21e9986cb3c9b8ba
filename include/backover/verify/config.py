"""What one ``backover verify`` run compares."""

from __future__ import annotations

from dataclasses import dataclass

from ..connections import DatabaseUri
from ..errors import UsageError
from ..layout import MigrationLayout

DEFAULT_BATCH = 1000
DEFAULT_EXAMPLES = 10


@dataclass(frozen=True)
class VerifyConfig:
    """:param namespaces: ``db`` or ``db.coll`` entries; empty means every non-system collection
        of the source's non-system databases (and the target's collections in those databases).
    :param batch_size: documents per batch read from each side.
    :param examples: differing ``_id``s listed per namespace.
    """

    layout: MigrationLayout
    source: DatabaseUri
    target: DatabaseUri
    namespaces: tuple[str, ...] = ()
    batch_size: int = DEFAULT_BATCH
    examples: int = DEFAULT_EXAMPLES

    def __post_init__(self) -> None:
        for ns in self.namespaces:
            db = ns.split(".", 1)[0]
            if not db or ns.endswith(".") or any(c in db for c in '/\\ "$'):
                raise UsageError(f"invalid namespace {ns!r}: write db or db.collection")
        if self.batch_size < 1:
            raise UsageError("--batch-size must be at least 1")
        if self.examples < 0:
            raise UsageError("--examples must not be negative")
