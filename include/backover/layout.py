"""Where a migration keeps its files: ``s3://{bucket}/{prefix}/{migration_id}/...``.

One place names every key, so the replicator, the restore, the Lambdas, the sensors and the clean
job cannot disagree (see docs/architecture.md, "State objects"); a test fails when product code
writes a key of a migration's folder anywhere else.
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass

from .errors import UsageError

#: A migration id (also the DAG Param's JSON-schema pattern; match it with ``fullmatch``, as
#: ``check_migration_id`` does, because ``$`` also matches before a trailing newline).
MIGRATION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
MIGRATION_ID_RULE = "1 to 128 letters, digits, '.', '_' or '-', starting with a letter or digit"
#: The longest prefix: with a 128-character migration id, the longest backup key (a 255-byte
#: namespace) is under 700 bytes, which leaves S3's 1,024 room for escaped '/' and '%'.
PREFIX_MAX = 256
_PREFIX_SEGMENT = re.compile(r"[A-Za-z0-9._-]+")
PREFIX_RULE = (
    f"'/'-separated segments of letters, digits, '.', '_' or '-' (no empty, '.' or '..' segment), "
    f"up to {PREFIX_MAX} characters"
)
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_IP_ADDRESS = re.compile(r"\d+\.\d+\.\d+\.\d+")
_BUCKET_RESERVED_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_BUCKET_RESERVED_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")
BUCKET_RULE = (
    "an S3 bucket name: 3 to 63 lower-case letters, digits, '.' or '-', starting and ending with a "
    "letter or digit, no '..', not an IP address, no reserved prefix "
    f"({', '.join(_BUCKET_RESERVED_PREFIXES)}) or suffix ({', '.join(_BUCKET_RESERVED_SUFFIXES)})"
)
COMPRESSION_SUFFIX = {"zstd": ".bson.zst", "gzip": ".bson.gz", "none": ".bson"}
_SEGMENT = re.compile(r"^(\d{12})(\.bson(?:\.zst|\.gz)?)$")


def _escaped(name: str) -> str:
    """``name`` as one key segment: percent-escaped but for letters, digits and ``._-~``."""
    return urllib.parse.quote(name, safe="")


class InvalidName(UsageError):
    """A bucket, prefix or migration id that breaks its rule; ``rule`` says what it must be."""

    def __init__(self, what: str, value: object, rule: str) -> None:
        self.rule = rule
        shown = repr(value)
        if len(shown) > 80:
            shown = f"{shown[:60]}... ({len(value) if isinstance(value, str) else len(shown)} characters)"
        super().__init__(f"invalid {what} {shown}: must be {rule}")


def check_migration_id(value: object) -> str:
    """``value`` when it is a valid migration id (exactly: no trailing newline), else :class:`InvalidName`."""
    if not isinstance(value, str) or not MIGRATION_ID.fullmatch(value):
        raise InvalidName("migration id", value, MIGRATION_ID_RULE)
    return value


def check_prefix(value: object) -> str:
    """The key prefix without its outer '/' (``"a/b/"`` -> ``"a/b"``; ``""`` is the bucket's top),
    else :class:`InvalidName`: no ``..`` can climb out of it and no key gets an empty segment."""
    if not isinstance(value, str) or "//" in value:
        raise InvalidName("prefix", value, PREFIX_RULE)
    prefix = value.removeprefix("/").removesuffix("/")
    segments = prefix.split("/") if prefix else []
    if len(prefix) > PREFIX_MAX or any(
        s in (".", "..") or not _PREFIX_SEGMENT.fullmatch(s) for s in segments
    ):
        raise InvalidName("prefix", value, PREFIX_RULE)
    return prefix


def check_bucket_name(value: object) -> str:
    """``value`` when it follows S3's bucket naming rules, else :class:`InvalidName` (no network call)."""
    if (
        not isinstance(value, str)
        or not _BUCKET.fullmatch(value)
        or ".." in value
        or _IP_ADDRESS.fullmatch(value)
        or value.startswith(_BUCKET_RESERVED_PREFIXES)
        or value.endswith(_BUCKET_RESERVED_SUFFIXES)
    ):
        raise InvalidName("bucket name", value, BUCKET_RULE)
    return value


def migrations_root(prefix: str) -> str:
    """The folder that holds one folder per migration of ``prefix``: ``{prefix}/``, or the bucket's
    top (``""``) for an empty prefix; :class:`InvalidName` for a bad prefix."""
    prefix = check_prefix(prefix)
    return f"{prefix}/" if prefix else ""


@dataclass(frozen=True)
class MigrationLayout:
    """The S3 keys of one migration."""

    bucket: str
    prefix: str
    migration_id: str

    def __post_init__(self) -> None:
        if not self.bucket:
            raise UsageError("no bucket: pass --bucket or set BACKOVER_BUCKET")
        check_bucket_name(self.bucket)
        check_migration_id(self.migration_id)
        object.__setattr__(self, "prefix", check_prefix(self.prefix))

    @property
    def root(self) -> str:
        return f"{self.prefix}/{self.migration_id}/" if self.prefix else f"{self.migration_id}/"

    def key(self, relative: str) -> str:
        return self.root + relative

    @property
    def start_state(self) -> str:
        return self.key("state/start.json")

    @property
    def freeze_state(self) -> str:
        return self.key("state/freeze.json")

    @property
    def clean_state(self) -> str:
        return self.key("state/clean.json")

    @property
    def abort_state(self) -> str:
        return self.key("state/abort.json")

    @property
    def drain_request(self) -> str:
        return self.key("control/drain.json")

    @property
    def stop_request(self) -> str:
        return self.key("control/stop.json")

    @property
    def changes_prefix(self) -> str:
        return self.key("changes/")

    @property
    def replicator_checkpoint(self) -> str:
        return self.key("changes/_checkpoint.json")

    @property
    def replicator_lease(self) -> str:
        """The single-writer lease of the replicator (:mod:`backover.lease`)."""
        return self.key("changes/_lease.json")

    @property
    def restore_checkpoint(self) -> str:
        return self.key("restore/_checkpoint.json")

    @property
    def restore_lease(self) -> str:
        """The single-writer lease of the restore (:mod:`backover.lease`)."""
        return self.key("restore/_lease.json")

    @property
    def restore_ddl(self) -> str:
        """The restore's record of the last DDL event (:class:`backover.state.DdlRecord`)."""
        return self.key("restore/_ddl.json")

    @property
    def restore_displaced(self) -> str:
        """The documents the restore moved aside for unique keys (concatenated BSON)."""
        return self.key("restore/displaced.bson")

    @property
    def verify_report(self) -> str:
        return self.key("reports/verify.json")

    @property
    def verify_live_report(self) -> str:
        """The pre-freeze verification pass's record (:class:`backover.state.VerifyLiveRecord`)."""
        return self.key("reports/verify-live.json")

    def verify_live_partitions_prefix(self, begin_id: str | None = None) -> str:
        """``reports/verify-live/`` (the partition records of every live pass), or
        ``reports/verify-live/{begin_id}/``: those of the pass begun as ``begin_id``."""
        prefix = self.key("reports/verify-live/")
        return prefix if begin_id is None else prefix + f"{_escaped(begin_id)}/"

    def verify_live_partition(self, begin_id: str, partition_id: str) -> str:
        """``reports/verify-live/{begin_id}/{id}.json`` (:class:`backover.state.VerifyLivePartitionRecord`);
        the ids percent-escaped as :meth:`sync_partition` escapes them."""
        return self.verify_live_partitions_prefix(begin_id) + f"{_escaped(partition_id)}.json"

    @property
    def rehearsal_report(self) -> str:
        """The rehearsal DAG's report (figures and phase outcomes)."""
        return self.key("reports/rehearsal.json")

    @property
    def lag_history(self) -> str:
        """Capture and restore lag over time, recorded before clean-up deletes the segments it is
        read from (:class:`backover_airflow.ui.lag_history.LagHistory`)."""
        return self.key("reports/lag.json")

    # -- the initial sync (backover.sync) --------------------------------------------------------
    @property
    def sync_prefix(self) -> str:
        """Every object of the initial sync (plan, checkpoints, leases, completion)."""
        return self.key("sync/")

    @property
    def sync_plan(self) -> str:
        """The initial sync's plan (:class:`backover.state.SyncPlan`): collections and partitions."""
        return self.key("sync/plan.json")

    @property
    def sync_plan_lease(self) -> str:
        """The lease of the one ``backover sync`` that writes the plan (:mod:`backover.lease`)."""
        return self.key("sync/_plan_lease.json")

    @property
    def sync_complete(self) -> str:
        """Written once every partition is copied (:class:`backover.state.SyncComplete`)."""
        return self.key("sync/complete.json")

    @property
    def sync_partitions_prefix(self) -> str:
        return self.key("sync/partitions/")

    def sync_partition(self, partition_id: str) -> str:
        """``sync/partitions/<id>.json``: one partition's checkpoint (:class:`backover.state.SyncPartitionCheckpoint`).
        The id (``shop.orders.0003``) is percent-escaped but for letters, digits and ``._-~``."""
        return self.sync_partitions_prefix + f"{_escaped(partition_id)}.json"

    def sync_partition_lease(self, partition_id: str) -> str:
        """``sync/partitions/<id>.lease.json``: the lease of the one process copying that partition."""
        return self.sync_partitions_prefix + f"{_escaped(partition_id)}.lease.json"

    def segment(self, seq: int, compression: str) -> str:
        """``changes/{seq:012d}.bson.zst`` (``.bson.gz``, ``.bson``)."""
        return self.key(f"changes/{seq:012d}{COMPRESSION_SUFFIX[compression]}")

    def segments_after(self, seq: int) -> str:
        """A key that every segment key of a higher ``seq`` sorts after, and no segment of ``seq``
        or lower (S3 lists in key order: ``/`` sorts after the ``.`` of ``.bson``, and the seq is
        zero-padded): the ``StartAfter`` of a listing of the segments after ``seq``."""
        return self.key(f"changes/{seq:012d}/")

    def parse_segment(self, key: str) -> tuple[int, str] | None:
        """``(seq, compression)`` of a segment key of this migration, else None."""
        if not key.startswith(self.changes_prefix):
            return None
        match = _SEGMENT.match(key[len(self.changes_prefix) :])
        if match is None:
            return None
        suffix = match.group(2)
        compression = next(c for c, s in COMPRESSION_SUFFIX.items() if s == suffix)
        return int(match.group(1)), compression

    @property
    def backups_prefix(self) -> str:
        """Every backup of the migration (all labels)."""
        return self.key("backups/")

    def backup_prefix(self, label: str) -> str:
        return self.backups_prefix + f"{label}/"

    def backup_database_prefix(self, label: str, db: str) -> str:
        return self.backup_prefix(label) + f"{db}/"

    def backup_data(self, label: str, db: str, coll: str) -> str:
        return self.backup_database_prefix(label, db) + f"{coll}.bson.gz"

    def backup_metadata(self, label: str, db: str, coll: str) -> str:
        return self.backup_database_prefix(label, db) + f"{coll}.metadata.json.gz"

    def backup_manifest(self, label: str) -> str:
        """The backup's record (:class:`backover.state.BackupManifest`): B, what it holds, F once sealed."""
        return self.backup_prefix(label) + "_backup.json"

    def backup_segments_prefix(self, label: str) -> str:
        """The sealed copies of the segments covering (B, F]. ``.changes``: a database name cannot
        hold a ``.``, so no database's folder of the dump is ever this one."""
        return self.backup_prefix(label) + ".changes/"

    def backup_segment(self, label: str, seq: int, compression: str) -> str:
        """``backups/{label}/.changes/{seq:012d}.bson.zst``: the sealed copy of segment ``seq``."""
        return self.backup_segments_prefix(label) + f"{seq:012d}{COMPRESSION_SUFFIX[compression]}"

    def parse_backup_segment(self, label: str, key: str) -> tuple[int, str] | None:
        """``(seq, compression)`` of a sealed segment copy of backup ``label``, else None."""
        prefix = self.backup_segments_prefix(label)
        match = _SEGMENT.match(key[len(prefix) :]) if key.startswith(prefix) else None
        if match is None:
            return None
        return int(match.group(1)), next(c for c, s in COMPRESSION_SUFFIX.items() if s == match.group(2))

    # -- partitioned backups (backover.backup.partitioned) ----------------------------------------
    def backup_begun(self, label: str) -> str:
        """The begin record of a partitioned backup (:class:`backover.state.BackupBegun`)."""
        return self.backup_prefix(label) + "_begun.json"

    def backup_parts_prefix(self, label: str, begin_id: str | None = None) -> str:
        """``.parts/`` (every begin's), or ``.parts/{begin_id}/``: the part objects of partitioned
        backups, deleted by ``--finish``. ``.parts``, like ``.changes``, is no database's folder."""
        prefix = self.backup_prefix(label) + ".parts/"
        return prefix if begin_id is None else prefix + f"{_escaped(begin_id)}/"

    def backup_part(self, label: str, begin_id: str, partition_id: str) -> str:
        """``.parts/{begin_id}/{partition}.bson.gz``: one partition's documents (the id escaped as in
        :meth:`sync_partition`)."""
        return self.backup_parts_prefix(label, begin_id) + f"{_escaped(partition_id)}.bson.gz"

    def backup_part_record(self, label: str, begin_id: str, partition_id: str) -> str:
        """``.parts/{begin_id}/{partition}.json``: its record (:class:`backover.state.BackupPart`)."""
        return self.backup_parts_prefix(label, begin_id) + f"{_escaped(partition_id)}.json"

    def backup_rest_part(self, label: str, begin_id: str, db: str, coll: str) -> str:
        """``.parts/{begin_id}/.rest/{db.coll}.bson.gz``: a partitioned collection's documents that no
        partition holds, dumped by ``--finish`` (an escaped partition id holds no ``/``)."""
        return self.backup_parts_prefix(label, begin_id) + f".rest/{_escaped(f'{db}.{coll}')}.bson.gz"
