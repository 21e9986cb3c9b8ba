"""A collection's documents as raw BSON, in ``_id`` order, read ahead on a thread.

``find_raw_batches`` hands over each batch as the server sent it (the merge cuts documents out of
it without decoding). At most ``depth`` batches wait in memory, whatever the collection's size.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from bson.raw_bson import RawBSONDocument
from pymongo.collection import Collection
from pymongo.errors import PyMongoError

from ..errors import JobFailed
from ..readahead import ReadAhead


def raw_batches(
    collection: Collection[RawBSONDocument], batch_size: int, id_filter: Mapping[str, Any] | None = None
) -> Iterator[bytes]:
    """The collection's documents sorted by ``_id``, batch by batch (raw bytes); with ``id_filter``
    (a scope's filter on ``_id``, :mod:`backover.sync.scopes`) only those it matches."""
    yield from collection.find_raw_batches(dict(id_filter or {}), sort=[("_id", 1)], batch_size=batch_size)


def read_ahead(batches: Iterator[bytes], label: str, depth: int = 4) -> ReadAhead:
    """``batches`` of one side (``label``: source or target) read ahead on a thread."""

    def failed(e: PyMongoError) -> JobFailed:
        return JobFailed(f"reading the {label} failed: {type(e).__name__}: {e}")

    return ReadAhead(batches, depth, failed, f"verify-{label}")
