"""Resume tokens as the replicator keeps them, and the cluster time a token stands for.

MongoDB's tokens (and the stand-ins') are ``{"_data": "82" + KeyString}``: after the ``82`` type
byte come the seconds and the increment of the cluster time, 8 hex digits each. A high-water-mark
token (``postBatchResumeToken`` of an empty batch) so tells how far the stream has read even when
no event came. Tokens in another format (DocumentDB's) give None, and callers fall back to the
server's ``operationTime``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import bson
from bson.raw_bson import RawBSONDocument
from bson.timestamp import Timestamp

_TIMESTAMP_TYPE = "82"
_TIME_DIGITS = 16  # seconds and increment, 8 hex digits each


def as_document(token: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A plain dict for the checkpoint (a RawBSONDocument decoded once, off the hot path)."""
    if token is None:
        return None
    if isinstance(token, RawBSONDocument):
        return bson.decode(token.raw)
    return dict(token)


def cluster_time(token: Mapping[str, Any] | None) -> Timestamp | None:
    """The cluster time encoded in a KeyString resume token, or None if it is not one."""
    if token is None:
        return None
    data = token.get("_data")
    if not isinstance(data, str) or len(data) < 2 + _TIME_DIGITS or not data.startswith(_TIMESTAMP_TYPE):
        return None
    try:
        seconds = int(data[2:10], 16)
        increment = int(data[10:18], 16)
    except ValueError:
        return None
    return Timestamp(seconds, increment)
