"""What one ``backover verify`` run compares."""

from __future__ import annotations

from dataclasses import dataclass

from ..connections import DatabaseUri
from ..errors import UsageError
from ..layout import MigrationLayout
from ..namespaces import Namespace

DEFAULT_BATCH = 1000
DEFAULT_EXAMPLES = 10


@dataclass(frozen=True)
class VerifyConfig:
    """:param namespaces: databases or collections (:func:`backover.namespaces.parse_all`); empty means every non-system collection
        of the source's non-system databases (and the target's collections in those databases).
    :param batch_size: documents per batch read from each side.
    :param examples: differing ``_id``s listed per namespace.
    """

    layout: MigrationLayout
    source: DatabaseUri
    target: DatabaseUri
    namespaces: tuple[Namespace, ...] = ()
    batch_size: int = DEFAULT_BATCH
    examples: int = DEFAULT_EXAMPLES

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise UsageError("--batch-size must be at least 1")
        if self.examples < 0:
            raise UsageError("--examples must not be negative")
