"""Drain: capture everything up to the freeze position F named in ``control/drain.json``, then stop.

The rule (the stream delivers events in cluster-time order):

* an event with ``clusterTime <= F`` is captured;
* the first event with ``clusterTime > F`` ends the capture *before* it (not written; the
  checkpoint's token stays on the event before);
* an empty batch whose stream position is at or past F also ends it: the position is the cluster
  time in the ``postBatchResumeToken`` (a high-water mark: every event up to it was returned), or,
  when the token does not encode a time (DocumentDB's format), the server's ``operationTime``
  reported *before* that getMore was sent;
* when the request is first read, events after F already read but still buffered are left out
  (and the drain ends at once: everything up to F was read). Events after F can only be in a
  segment written *before* the request was read: a change by another writer in the seconds
  between F and the request, and only if a segment rolled meanwhile. The frozen application
  cannot write after F.

Then the last segment is written and the checkpoint says ``drained`` with ``drained_until = F``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import BotoCoreError
from bson.timestamp import Timestamp

from .. import clustertime
from ..errors import BackoverError
from ..layout import MigrationLayout
from ..s3objects import S3Objects

log = logging.getLogger(__name__)


def parse_request(doc: Any) -> Timestamp | None:
    """F from a ``{"until": Timestamp}`` document, None when it is not one."""
    until = doc.get("until") if isinstance(doc, Mapping) else None
    return until if isinstance(until, Timestamp) else None


def past(event_time: Timestamp | int, until: Timestamp | int) -> bool:
    """True for an event that comes after F (it ends the drain and is not captured).

    Cluster times are Timestamps or packed ints (:func:`.events.pack`), both ordered alike."""
    return event_time > until


def reached(position: Timestamp | int | None, until: Timestamp | int) -> bool:
    """True when an empty batch's stream position shows every event up to F was returned."""
    return position is not None and position >= until


class DrainPoller:
    """Reads ``control/drain.json`` (and the abort's ``control/stop.json``) at most every
    ``interval`` seconds."""

    def __init__(self, s3: S3Objects, layout: MigrationLayout, interval: float) -> None:
        self.s3 = s3
        self.key = layout.drain_request
        self.stop_key = layout.stop_request
        self.interval = interval
        self.until: Timestamp | None = None
        self.stop_requested = False
        self._next = 0.0
        self._warned = False

    def poll(self, now: float) -> Timestamp | None:
        """F once requested (cached afterwards); S3 errors are logged and retried at the next poll.

        Also notices an abort's stop request (``stop_requested``): the capture then stops like on
        SIGTERM, keeping every file."""
        if now < self._next or self.stop_requested:
            return self.until
        self._next = now + self.interval
        try:
            if self.s3.head(self.stop_key) is not None:
                log.info("stop requested by an abort (%s): stopping the capture", self.stop_key)
                self.stop_requested = True
                return self.until
            if self.until is not None:
                return self.until
            doc = self.s3.get_json(self.key)
        except (BackoverError, BotoCoreError, ValueError) as e:
            log.warning("cannot read the drain request %s: %s", self.key, e)
            return None
        if doc is None:
            return None
        until = parse_request(doc)
        if until is None:
            if not self._warned:
                log.error('ignoring %s: it must be {"until": <Timestamp>}', self.key)
                self._warned = True
            return None
        self.until = until
        log.info("drain requested: capturing up to cluster time %s, then stopping", clustertime.format(until))
        return until
