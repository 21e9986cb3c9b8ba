"""Where a migration keeps its files: ``s3://{bucket}/{prefix}/{migration_id}/...``.

One place names every key, so the replicator, the restore, the Lambdas, the sensors and the clean
job cannot disagree (see docs/architecture.md, "S3 layout").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import UsageError

MIGRATION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
COMPRESSION_SUFFIX = {"zstd": ".bson.zst", "gzip": ".bson.gz", "none": ".bson"}
_SEGMENT = re.compile(r"^(\d{12})(\.bson(?:\.zst|\.gz)?)$")


@dataclass(frozen=True)
class MigrationLayout:
    """The S3 keys of one migration."""

    bucket: str
    prefix: str
    migration_id: str

    def __post_init__(self) -> None:
        if not self.bucket:
            raise UsageError("no bucket: pass --bucket or set BACKOVER_BUCKET")
        if not MIGRATION_ID.match(self.migration_id or ""):
            raise UsageError(
                f"invalid migration id {self.migration_id!r}: letters, digits, '.', '_' and '-', up to 128"
            )
        object.__setattr__(self, "prefix", self.prefix.strip("/"))

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
    def verify_report(self) -> str:
        return self.key("reports/verify.json")

    def segment(self, seq: int, compression: str) -> str:
        """``changes/{seq:012d}.bson.zst`` (``.bson.gz``, ``.bson``)."""
        return self.key(f"changes/{seq:012d}{COMPRESSION_SUFFIX[compression]}")

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

    def backup_prefix(self, label: str) -> str:
        return self.key(f"backups/{label}/")

    def backup_data(self, label: str, db: str, coll: str) -> str:
        return self.key(f"backups/{label}/{db}/{coll}.bson.gz")

    def backup_metadata(self, label: str, db: str, coll: str) -> str:
        return self.key(f"backups/{label}/{db}/{coll}.metadata.json.gz")
