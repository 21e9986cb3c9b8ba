"""What ``backover replicate`` is asked to do, as a typed, validated record."""

from __future__ import annotations

from dataclasses import dataclass

from bson.timestamp import Timestamp

from ..connections import DatabaseUri
from ..errors import UsageError
from ..layout import MigrationLayout
from ..lease import DEFAULT_RENEW_SECONDS, DEFAULT_TTL_SECONDS, check_timing
from ..segments import COMPRESSIONS

#: Segments roll at whichever comes first. 16 MiB is the largest BSON document, a sensible unit
#: to read back; with a backlog a segment of small events is far past 10,000 events, so a
#: segment and its checkpoint cost well under one PUT per 10,000 events.
DEFAULT_MAX_EVENTS = 100_000
DEFAULT_MAX_BYTES = 16 * 1024 * 1024
DEFAULT_MAX_SECONDS = 10.0
#: The segment age at which a replicator followed by a follow restore rolls (the Airflow start DAG
#: passes it as ``--max-seconds``): the restore trails the capture by about this much plus its
#: poll. Cost: while writes go on, one segment PUT and one checkpoint PUT per second (about
#: 172,800 PUTs a day, under $1 a day at S3 Standard's $0.005 per 1,000 PUTs).
FOLLOW_MAX_SECONDS = 1.0
#: ... and reads ``control/drain.json`` this often (the write freeze waits for the drain to start:
#: one GET a second, 86,400 a day, $0.03).
FOLLOW_DRAIN_POLL_SECONDS = 1.0
DEFAULT_HEARTBEAT_SECONDS = 5.0
DEFAULT_DRAIN_POLL_SECONDS = 3.0
DEFAULT_AWAIT_MS = 1000
#: Once a drain is requested, getMores wait at most this long: the drain ends at the first empty
#: batch whose position is past F, and F is in the past (the writes are frozen), so the await
#: only delays that last batch (a whole ``--await-ms`` at the end of every drain otherwise).
DRAIN_AWAIT_MS = 100
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_GIVE_UP_SECONDS = 600.0
DEFAULT_PROGRESS_SECONDS = 30.0
#: A --start-at this far past the source's current cluster time is still accepted (it only waits).
START_AT_TOLERANCE_SECONDS = 5


@dataclass(frozen=True)
class ReplicateConfig:
    """One replicator run.

    :param layout: the migration's S3 keys.
    :param source: the DocumentDB (or MongoDB) to capture from.
    :param namespaces: ``db`` or ``db.coll`` texts; empty: those of ``state/start.json``.
    :param start_at: start position when there is no checkpoint (default: ``t0`` of start.json).
    :param compression: ``zstd`` (default), ``gzip`` or ``none``.
    :param max_events: roll a segment at this many events.
    :param max_bytes: ... or at this many uncompressed bytes.
    :param max_seconds: ... or when its oldest event has waited this long.
    :param heartbeat_seconds: while idle, re-write the checkpoint at most this often.
    :param drain_poll_seconds: read ``control/drain.json`` this often.
    :param await_ms: how long one getMore waits for events (also bounds the reaction to SIGTERM).
    :param connect_timeout: seconds to find the source server.
    :param give_up_seconds: a transient error (source or S3) retried this long becomes a failure.
    :param progress_seconds: log a progress line this often.
    :param lease_ttl_seconds: the replicator lease lapses when not renewed for this long.
    :param lease_renew_seconds: the holder renews it this often (and before every PUT).
    """

    layout: MigrationLayout
    source: DatabaseUri
    namespaces: tuple[str, ...] = ()
    start_at: Timestamp | None = None
    compression: str = "zstd"
    max_events: int = DEFAULT_MAX_EVENTS
    max_bytes: int = DEFAULT_MAX_BYTES
    max_seconds: float = DEFAULT_MAX_SECONDS
    heartbeat_seconds: float = DEFAULT_HEARTBEAT_SECONDS
    drain_poll_seconds: float = DEFAULT_DRAIN_POLL_SECONDS
    await_ms: int = DEFAULT_AWAIT_MS
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    give_up_seconds: float = DEFAULT_GIVE_UP_SECONDS
    progress_seconds: float = DEFAULT_PROGRESS_SECONDS
    lease_ttl_seconds: float = DEFAULT_TTL_SECONDS
    lease_renew_seconds: float = DEFAULT_RENEW_SECONDS

    def __post_init__(self) -> None:
        if self.compression not in COMPRESSIONS:
            raise UsageError(f"unknown compression {self.compression!r}: use {', '.join(COMPRESSIONS)}")
        for name in ("max_events", "max_bytes", "await_ms"):
            if getattr(self, name) < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be at least 1")
        for name in (
            "max_seconds",
            "heartbeat_seconds",
            "drain_poll_seconds",
            "connect_timeout",
            "give_up_seconds",
            "progress_seconds",
        ):
            if getattr(self, name) <= 0:
                raise UsageError(f"--{name.replace('_', '-')} must be positive")
        check_timing(self.lease_ttl_seconds, self.lease_renew_seconds)
