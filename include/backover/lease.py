"""Single-writer leases in S3: at most one replicator and one restore write a migration at a time.

A lease is a small JSON object (``changes/_lease.json`` for the replicator, ``restore/_lease.json``
for the restore) changed only by S3 conditional writes, which S3 applies atomically:

* **acquire**: ``PutObject`` with ``If-None-Match: *`` creates it. If it exists and its holder
  renewed it within its ``ttl_seconds`` (and is not provably dead, below), the newcomer refuses
  (:class:`LeaseHeld`, exit 2) and writes nothing. A stale lease is taken over with ``If-Match`` on
  the stale ETag, so of two newcomers exactly one wins.
* **renew**: the holder re-writes it with ``If-Match`` on its own last ETag, every
  ``renew_seconds`` on a background thread and before each write it makes (:meth:`Lease.fence`).
  A refused renewal means another process took the lease over (this one was paused past the TTL,
  or cut off from S3): :class:`LeaseLost` (exit 1), and nothing more is written.
* **release**: ``DeleteObject`` with ``If-Match`` on the holder's ETag, at a clean exit.

Expiry compares the holder's ``renewed_at`` with this machine's clock (hosts keep NTP time; the
TTL, 30 s by default, dwarfs their skew). A holder on the same machine (same host name, boot, pid
namespace) whose process is gone, or is another process now, is dead at once: a restart after a
crash (kill -9, OOM) does not wait for the TTL.

A lease alone cannot stop a process paused between its last check and its next PUT, so the writes
it guards are conditional too (the replicator's segments ``If-None-Match: *``, its checkpoint
``If-Match``): a fenced process's late write fails instead of replacing the new holder's.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError

from . import extjson
from .errors import BackoverError, JobFailed, UsageError
from .s3objects import Conflict, S3Objects
from .state import utc_now

log = logging.getLogger(__name__)

DEFAULT_TTL_SECONDS = 30.0
DEFAULT_RENEW_SECONDS = 5.0
LEASE_VERSION = 1
_ACQUIRE_ATTEMPTS = 5


@dataclass(frozen=True)
class Holder:
    """Who holds a lease: the host, the process, and a random token unique to this acquisition."""

    host: str
    pid: int
    token: str
    boot_id: str | None = None
    pid_namespace: str | None = None
    process_start: int | None = None  # /proc/<pid>/stat start time (clock ticks since boot)

    @classmethod
    def this_process(cls) -> Holder:
        pid = os.getpid()
        return cls(
            socket.gethostname(), pid, secrets.token_hex(8), _boot_id(), _pid_namespace(), _process_start(pid)
        )

    def __str__(self) -> str:
        return f"{self.host} pid {self.pid}"

    def is_gone(self) -> bool:
        """True when the holder ran on this machine, in this pid namespace, and its process has
        ended (or the pid now belongs to another process). False when that cannot be known."""
        if (
            self.host != socket.gethostname()
            or self.boot_id is None
            or self.boot_id != _boot_id()
            or self.pid_namespace is None
            or self.pid_namespace != _pid_namespace()
        ):
            return False
        try:
            os.kill(self.pid, 0)  # existence only: no signal is sent
        except ProcessLookupError:
            return True
        except PermissionError:
            pass  # alive, another user's (its /proc entry may be hidden: hidepid)
        if _is_zombie(self.pid):
            return True  # it has ended; only its parent (or an init that does not reap) keeps the pid
        started = _process_start(self.pid)
        return started is not None and self.process_start is not None and started != self.process_start


@dataclass(frozen=True)
class LeaseRecord:
    """The lease object's content."""

    role: str
    migration_id: str
    holder: Holder
    acquired_at: datetime
    renewed_at: datetime
    ttl_seconds: float
    version: int = LEASE_VERSION

    @property
    def expires_at(self) -> datetime:
        return self.renewed_at + timedelta(seconds=self.ttl_seconds)

    def expired(self, now: datetime) -> bool:
        return now >= self.expires_at

    def to_bytes(self) -> bytes:
        holder = {k: v for k, v in self.holder.__dict__.items() if v is not None}
        return extjson.dumps(
            {
                "version": self.version,
                "role": self.role,
                "migration_id": self.migration_id,
                "holder": holder,
                "acquired_at": self.acquired_at,
                "renewed_at": self.renewed_at,
                "ttl_seconds": self.ttl_seconds,
            }
        ).encode()

    @classmethod
    def parse(cls, data: bytes) -> LeaseRecord | None:
        """The record, or None when ``data`` is not one."""
        try:
            doc = extjson.loads(data)
        except (ValueError, TypeError, UnicodeDecodeError):
            return None
        if not isinstance(doc, dict) or not isinstance(doc.get("holder"), dict):
            return None
        h = doc["holder"]
        try:
            holder = Holder(
                host=h["host"],
                pid=h["pid"],
                token=h["token"],
                boot_id=h.get("boot_id"),
                pid_namespace=h.get("pid_namespace"),
                process_start=h.get("process_start"),
            )
            record = cls(
                role=doc["role"],
                migration_id=doc["migration_id"],
                holder=holder,
                acquired_at=doc["acquired_at"],
                renewed_at=doc["renewed_at"],
                ttl_seconds=float(doc["ttl_seconds"]),
                version=doc.get("version", LEASE_VERSION),
            )
        except (KeyError, TypeError, ValueError):
            return None
        if (
            not isinstance(holder.host, str)
            or not isinstance(holder.token, str)
            or not extjson.is_int(holder.pid)
            or not isinstance(record.acquired_at, datetime)
            or not isinstance(record.renewed_at, datetime)
            or not record.ttl_seconds > 0
        ):
            return None
        return record


class LeaseHeld(UsageError):
    """Another live process holds the lease (exit 2; nothing was written)."""


class LeaseLost(JobFailed):
    """This process no longer holds its lease: another one took it over (exit 1)."""


class Lease:
    """One process's hold on a lease key.

    :param s3: the bucket.
    :param key: the lease object's key (``MigrationLayout.replicator_lease`` / ``restore_lease``).
    :param role: ``replicator`` or ``restore`` (in messages and in the record).
    :param migration_id: the migration (in the record).
    :param ttl_seconds: a holder that has not renewed for this long may be replaced.
    :param renew_seconds: how often the background thread renews it (well under the TTL).
    """

    def __init__(
        self,
        s3: S3Objects,
        key: str,
        *,
        role: str,
        migration_id: str,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        renew_seconds: float = DEFAULT_RENEW_SECONDS,
    ) -> None:
        check_timing(ttl_seconds, renew_seconds)
        self.s3 = s3
        self.key = key
        self.role = role
        self.migration_id = migration_id
        self.ttl_seconds = ttl_seconds
        self.renew_seconds = renew_seconds
        self.holder = Holder.this_process()
        self.record: LeaseRecord | None = None
        self.etag: str | None = None
        self.lost: LeaseLost | None = None
        self._renewed_monotonic = 0.0
        #: Bodies sent since the last confirmed write: a renewal that failed in transit may have
        #: landed, and a later renewal must then recognise it as this holder's (not a takeover).
        self._unconfirmed: list[bytes] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def where(self) -> str:
        return f"s3://{self.s3.bucket}/{self.key}"

    # -- acquire ------------------------------------------------------------------------------
    def acquire(self) -> Lease:
        """Take the lease, or :class:`LeaseHeld` naming the live holder and when it expires."""
        for _ in range(_ACQUIRE_ATTEMPTS):
            now = utc_now()
            mine = LeaseRecord(self.role, self.migration_id, self.holder, now, now, self.ttl_seconds)
            try:
                self._written(
                    mine,
                    time.monotonic(),
                    self.s3.put_if(self.key, mine.to_bytes(), etag=None, content_type="application/json"),
                )
                log.info(
                    "%s lease acquired: %s (%s, ttl %gs)",
                    self.role,
                    self.where,
                    self.holder,
                    self.ttl_seconds,
                )
                return self
            except Conflict:
                pass
            got = self.s3.get_versioned(self.key)
            if got is None:
                continue  # released meanwhile: create it again
            body, _, etag = got
            current = LeaseRecord.parse(body)
            if current is None:
                raise UsageError(
                    f"{self.where} is not a lease record; if no {self.role} runs for this migration, "
                    "delete it and start again"
                )
            now = utc_now()
            gone = current.holder.is_gone()
            if not gone and not current.expired(now):
                raise LeaseHeld(held_reason(current, self.where, now))
            started = time.monotonic()
            mine = LeaseRecord(self.role, self.migration_id, self.holder, now, now, self.ttl_seconds)
            try:
                new_etag = self.s3.put_if(
                    self.key, mine.to_bytes(), etag=etag, content_type="application/json"
                )
            except Conflict:
                continue  # renewed, released or taken by another newcomer: look again
            self._written(mine, started, new_etag)
            why = "its process is gone" if gone else f"not renewed since {current.renewed_at.isoformat()}"
            log.warning("%s lease taken over from %s (%s): %s", self.role, current.holder, why, self.where)
            return self
        raise JobFailed(
            f"cannot acquire {self.where}: it changed {_ACQUIRE_ATTEMPTS} times while trying "
            f"(another {self.role} is starting)"
        )

    # -- renew --------------------------------------------------------------------------------
    def fence(self) -> None:
        """Renew now (``If-Match`` on this holder's ETag): the check before a guarded write.

        :class:`LeaseLost` when another process holds the lease; S3 errors are raised as they are
        (the caller retries; nothing is written while the lease is not renewed)."""
        with self._lock:
            if self.lost is not None:
                raise self.lost
            if self.record is None or self.etag is None:
                raise LeaseLost(f"the {self.role} lease {self.where} is not held by this process")
            started = time.monotonic()
            renewed = LeaseRecord(
                self.role,
                self.migration_id,
                self.holder,
                self.record.acquired_at,
                utc_now(),
                self.ttl_seconds,
            )
            body = renewed.to_bytes()
            self._unconfirmed.append(body)
            try:
                etag = self.s3.put_if(
                    self.key,
                    body,
                    etag=self.etag,
                    content_type="application/json",
                    attempted=self._unconfirmed,
                )
            except Conflict:
                self.lost = self._lost_reason()
                raise self.lost from None
            self._written(renewed, started, etag)

    def raise_if_lost(self) -> None:
        if self.lost is not None:
            raise self.lost

    def check(self) -> None:
        """The cheap check before writes that cannot be conditional (the restore's writes to
        MongoDB): :class:`LeaseLost` if it is lost; renewed now (:meth:`fence`) when less than half
        of the TTL is surely left, so no round of writes starts on a lease that may have lapsed."""
        self.raise_if_lost()
        if self.valid_for() < self.ttl_seconds / 2:
            self.fence()

    def start_renewing(self) -> None:
        """Renew every ``renew_seconds`` on a daemon thread until :meth:`release`."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._renew_loop, name=f"{self.role}-lease", daemon=True)
            self._thread.start()

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.renew_seconds):
            if time.monotonic() - self._renewed_monotonic < self.renew_seconds / 2:
                continue  # a guarded write renewed it just now
            try:
                self.fence()
            except LeaseLost as e:
                log.error("%s", e)
                return
            except (BackoverError, BotoCoreError) as e:
                log.warning(
                    "renewing %s failed (%s); %.0fs of the lease left", self.where, e, self.valid_for()
                )

    def valid_for(self) -> float:
        """Seconds this holder's lease surely lasts (from before its last successful renewal)."""
        return self.ttl_seconds - (time.monotonic() - self._renewed_monotonic)

    # -- release ------------------------------------------------------------------------------
    def release(self) -> None:
        """Stop renewing and delete the lease if this process still holds it (never raises)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)
        with self._lock:
            if self.etag is None or self.lost is not None:
                return
            try:
                self.s3.delete_if(self.key, self.etag)
                log.info("%s lease released: %s", self.role, self.where)
            except Conflict:
                log.warning("%s lease %s is no longer this process's: left as it is", self.role, self.where)
            except (BackoverError, BotoCoreError) as e:
                log.warning("cannot release %s (%s): it expires in %gs", self.where, e, self.ttl_seconds)
            self.etag = None

    # -- helpers ------------------------------------------------------------------------------
    def _written(self, record: LeaseRecord, started: float, etag: str) -> None:
        self.record, self.etag, self._renewed_monotonic = record, etag, started
        self._unconfirmed.clear()

    def _lost_reason(self) -> LeaseLost:
        got = self.s3.get_versioned(self.key)
        current = LeaseRecord.parse(got[0]) if got is not None else None
        by = f"taken over by {current.holder} at {current.acquired_at.isoformat()}" if current else "gone"
        return LeaseLost(
            f"lost the {self.role} lease {self.where} ({by}): this process was paused or cut off "
            f"longer than its {self.ttl_seconds:g}s TTL; stopping without writing anything more"
        )


@contextlib.contextmanager
def holding(lease: Lease, wait: Callable[[LeaseHeld], bool] | None = None) -> Iterator[Lease]:
    """Acquire ``lease``, renew it in the background while the block runs, release it after.

    ``wait``: while another live process holds the lease, called with the refusal; it waits (and
    returns True to try again) or returns False to give up (the refusal is raised). A lease lost
    meanwhile fails the block at its end (:class:`LeaseLost`) if nothing else did."""
    while True:
        try:
            lease.acquire()
            break
        except LeaseHeld as held:
            if wait is None or not wait(held):
                raise
    lease.start_renewing()
    try:
        yield lease
        lease.raise_if_lost()
    finally:
        lease.release()


def check_timing(ttl_seconds: float, renew_seconds: float) -> None:
    """UsageError unless ``0 < renew_seconds`` and ``2 * renew_seconds <= ttl_seconds``."""
    if not renew_seconds > 0 or not ttl_seconds > 0:
        raise UsageError("--lease-ttl-seconds and --lease-renew-seconds must be positive")
    if 2 * renew_seconds > ttl_seconds:
        raise UsageError(
            f"--lease-renew-seconds {renew_seconds:g} must be at most half of --lease-ttl-seconds "
            f"{ttl_seconds:g} (a lease must survive a missed renewal)"
        )


def held_reason(record: LeaseRecord, where: str, now: datetime) -> str:
    """One line: who holds the lease and when it expires unless renewed."""
    left = (record.expires_at - now).total_seconds()
    return (
        f"another {record.role} holds {where}: {record.holder}, since {record.acquired_at.isoformat()}, "
        f"renewed {(now - record.renewed_at).total_seconds():.1f}s ago, expires in {left:.1f}s unless renewed "
        f"({record.expires_at.isoformat()}); nothing was written"
    )


def describe(s3: S3Objects, key: str, now: datetime | None = None) -> dict[str, Any] | None:
    """The lease for ``backover status``: holder, age, expiry; None when there is none."""
    got = s3.get_versioned(key)
    if got is None:
        return None
    record = LeaseRecord.parse(got[0])
    if record is None:
        return {"valid": False}
    now = now or utc_now()
    return {
        "holder": str(record.holder),
        "acquired_at": record.acquired_at.isoformat(),
        "renewed_at": record.renewed_at.isoformat(),
        "age_seconds": round((now - record.acquired_at).total_seconds(), 3),
        "renewed_seconds_ago": round((now - record.renewed_at).total_seconds(), 3),
        "ttl_seconds": record.ttl_seconds,
        "expires_in_seconds": round((record.expires_at - now).total_seconds(), 3),
        "expired": record.expired(now),
    }


def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip() or None
    except OSError:
        return None


def _pid_namespace() -> str | None:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


def _is_zombie(pid: int) -> bool:
    """True when ``pid`` has exited and waits to be reaped (state ``Z`` in /proc)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def _process_start(pid: int) -> int | None:
    """The process's start time in clock ticks since boot, None when there is no such process."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    try:
        return None if fields[0] == "Z" else int(fields[19])
    except (IndexError, ValueError):
        return None
