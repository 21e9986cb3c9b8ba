"""What one ``backover restore`` run is asked to do."""

from __future__ import annotations

from dataclasses import dataclass

from ..connections import DatabaseUri
from ..errors import UsageError
from ..layout import MigrationLayout
from ..lease import DEFAULT_RENEW_SECONDS, DEFAULT_TTL_SECONDS, check_timing
from .follow import DEFAULT_HEARTBEAT_SECONDS, DEFAULT_POLL_SECONDS

DEFAULT_WORKERS = 4
DEFAULT_WINDOW = 10_000
MAX_WORKERS = 64


@dataclass(frozen=True)
class RestoreConfig:
    """:param layout: the migration's S3 keys.
    :param target: the MongoDB to write to (None only for a dry run).
    :param workers: parallel lanes.
    :param window: events per window (compaction happens within one).
    :param dry_run: plan and print, write nothing (not even the checkpoint).
    :param from_seq: apply segments again from this one (default: the one after the checkpoint);
        events before the last applied DDL are recognised and skipped, the rest is idempotent.
    :param reset: forget the restore's own state and replay everything, for a target put back
        to its state before the first restore.
    :param progress_seconds: seconds between progress lines.
    :param checkpoint_seconds: at most one checkpoint write per this many seconds (the last
        completed segment is always saved at the end and on failure).
    :param prefetch: segments downloaded ahead.
    :param lease_ttl_seconds: the restore lease lapses when not renewed for this long.
    :param lease_renew_seconds: the running restore renews it this often.
    :param follow: apply segments as they land until the replicator has drained (``--follow``).
    :param poll_seconds: a follow restore looks for new segments this often.
    :param heartbeat_seconds: a follow restore rewrites its checkpoint at least this often.
    :param wait: when another restore holds the lease (a follow restore applying the tail), wait
        for it to end instead of exiting 2, then apply what is left.
    """

    layout: MigrationLayout
    target: DatabaseUri | None = None
    workers: int = DEFAULT_WORKERS
    window: int = DEFAULT_WINDOW
    dry_run: bool = False
    from_seq: int | None = None
    reset: bool = False
    progress_seconds: float = 5.0
    checkpoint_seconds: float = 2.0
    prefetch: int = 2
    lease_ttl_seconds: float = DEFAULT_TTL_SECONDS
    lease_renew_seconds: float = DEFAULT_RENEW_SECONDS
    follow: bool = False
    poll_seconds: float = DEFAULT_POLL_SECONDS
    heartbeat_seconds: float = DEFAULT_HEARTBEAT_SECONDS
    wait: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.workers <= MAX_WORKERS:
            raise UsageError(f"--workers must be between 1 and {MAX_WORKERS}, not {self.workers}")
        if self.window < 1:
            raise UsageError(f"--window must be at least 1 event, not {self.window}")
        if self.progress_seconds <= 0:
            raise UsageError("--progress-seconds must be positive")
        if self.checkpoint_seconds < 0:
            raise UsageError("--checkpoint-seconds must not be negative")
        if self.from_seq is not None and self.from_seq < 1:
            raise UsageError(f"--from-seq must be at least 1, not {self.from_seq}")
        check_timing(self.lease_ttl_seconds, self.lease_renew_seconds)
        for name in ("poll_seconds", "heartbeat_seconds"):
            if getattr(self, name) <= 0:
                raise UsageError(f"--{name.replace('_', '-')} must be positive")
        if self.follow and (self.dry_run or self.from_seq is not None or self.reset):
            raise UsageError("--follow cannot be combined with --dry-run, --from-seq or --reset")
        if self.target is None and not self.dry_run:
            raise UsageError("no target: pass --target-uri or --target-secret-id (or --dry-run)")
