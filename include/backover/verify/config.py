"""What one ``backover verify`` run compares, and how."""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pymongo import MongoClient

from ..connections import DatabaseUri, check_connection
from ..errors import UsageError
from ..layout import MigrationLayout
from ..namespaces import Namespace

DEFAULT_BATCH = 1000
DEFAULT_EXAMPLES = 10
#: How long the live pass waits for the documents that differ to settle.
DEFAULT_SETTLE_SECONDS = 300.0
#: How often the live pass reads the restore checkpoint while documents wait for it.
DEFAULT_POLL_SECONDS = 1.0
DEFAULT_PROGRESS_SECONDS = 10.0


class VerifyMode(enum.StrEnum):
    """What a run does (``backover verify`` without ``--live``/``--full`` is AUTO)."""

    AUTO = "auto"  # at the freeze: INCREMENTAL when a live pass record exists, else FULL
    FULL = "full"  # every document of both sides
    LIVE = "live"  # the pre-freeze pass, while both sides move (reports/verify-live.json)
    INCREMENTAL = "incremental"  # at the freeze, after a passed live pass


@dataclass(frozen=True)
class VerifyConfig:
    """:param namespaces: databases or collections (:func:`backover.namespaces.parse_all`); empty means every non-system collection
        of the source's non-system databases (and the target's collections in those databases).
    :param batch_size: documents per batch read from each side.
    :param examples: differing ``_id``s listed per namespace.
    :param mode: :class:`VerifyMode` (default FULL: every document).
    :param settle_seconds: the live pass's limit on waiting for differing documents to settle.
    :param poll_seconds: how often the live pass reads the restore checkpoint while it waits.
    :param progress_seconds: seconds between progress lines.
    """

    layout: MigrationLayout
    source: DatabaseUri
    target: DatabaseUri
    namespaces: tuple[Namespace, ...] = ()
    batch_size: int = DEFAULT_BATCH
    examples: int = DEFAULT_EXAMPLES
    mode: VerifyMode = VerifyMode.FULL
    settle_seconds: float = DEFAULT_SETTLE_SECONDS
    poll_seconds: float = DEFAULT_POLL_SECONDS
    progress_seconds: float = DEFAULT_PROGRESS_SECONDS

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise UsageError("--batch-size must be at least 1")
        if self.examples < 0:
            raise UsageError("--examples must not be negative")
        if not self.settle_seconds >= 0:
            raise UsageError("--settle-seconds must not be negative")
        if not self.poll_seconds > 0:
            raise UsageError("--poll-seconds must be positive")
        if not self.progress_seconds > 0:
            raise UsageError("--progress-seconds must be positive")


@contextlib.contextmanager
def connected(
    config: VerifyConfig,
) -> Iterator[tuple[MongoClient[dict[str, Any]], MongoClient[dict[str, Any]]]]:
    """Clients of both sides, each checked to answer (one line, exit 2, when it does not)."""
    with config.source.client() as source, config.target.client() as target:
        check_connection(config.source, source)
        check_connection(config.target, target)
        yield source, target
