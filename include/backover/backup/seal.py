"""``backover backup --label documentdb --seal``: keep the segments a DocumentDB backup needs.

``backover clean`` deletes ``changes/`` once the migration is verified; a backup made consistent at F
by the segments covering (B, F] would then be a dump of no particular moment. Sealing copies those
segments (``capture_seq + 1`` .. the replicator's ``last_seq``), server-side (S3 CopyObject, the
metadata kept: ``--restore`` checks their identity and SHA-256 as the restore does), to
``backups/{label}/.changes/``, which clean keeps, and records F (``state/freeze.json``) and the
copies in the backup's manifest.

* Run after the drain: the capture must have reached F (UsageError otherwise, nothing written).
  It reads nothing from a database and may run outside the write freeze, any time before clean.
* Before the freeze it copies what is captured so far and records no F, so a later run, after the
  drain, copies only the tail; copies already there are skipped (a segment never changes), so a
  re-run copies nothing and changes nothing.
* Every segment must be there (UsageError, nothing written, when clean or anyone deleted one).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial

from botocore.exceptions import BotoCoreError, ClientError
from bson.timestamp import Timestamp

from .. import state
from ..clustertime import format as format_time
from ..errors import JobFailed, UsageError
from ..layout import MigrationLayout
from ..lifecycle.results import ResultRecord, now_ms
from ..replication import checkpoint as replication_checkpoint
from ..restore.reader import SegmentRef, list_segments
from ..s3objects import S3Objects
from ..state import BackupManifest, FreezeRecord
from .metadata import one_line
from .parallel import run_parallel
from .replay import REPLAYED_LABEL

log = logging.getLogger(__name__)


@dataclass
class SealResult(ResultRecord):
    """What ``--seal`` did."""

    label: str
    manifest: str
    b: Timestamp
    f: Timestamp | None  # None: the migration is not frozen yet; run --seal again after the drain
    first_seq: int
    last_seq: int  # the copies are first_seq..last_seq (none when last_seq < first_seq)
    copied: int = 0
    already_there: int = 0
    sealed: bool = False  # F recorded: --restore reads the copies, whatever clean deletes


def seal(layout: MigrationLayout, label: str, s3: S3Objects | None = None, parallel: int = 4) -> SealResult:
    """Copy the segments after B of backup ``label`` under the backup and record F once known."""
    if label != REPLAYED_LABEL:
        raise UsageError(f"--seal keeps DocumentDB's captured changes: only for --label {REPLAYED_LABEL}")
    if parallel < 1:
        raise UsageError("--parallel must be at least 1")
    s3 = s3 or S3Objects(layout.bucket)
    s3.check_bucket()
    key = layout.backup_manifest(label)
    manifest = state.read(s3, key, BackupManifest)
    if manifest is None:
        raise UsageError(f"no backup to seal: {key} is missing (take the backup first)")
    if manifest.migration_id != layout.migration_id:
        raise UsageError(f"{key} belongs to migration {manifest.migration_id!r}, not {layout.migration_id!r}")
    if manifest.capture_seq is None:
        raise UsageError(
            f"the {label} backup (B = {format_time(manifest.b)}) is not covered by this migration's capture "
            "(no T0 at or before B): no segments can make it consistent"
        )
    freeze = state.read(s3, layout.freeze_state, FreezeRecord)
    f = freeze.f if freeze is not None else None
    captured = replication_checkpoint.load(s3, layout)
    if captured is None:
        raise UsageError(
            f"no replicator checkpoint ({layout.replicator_checkpoint}): the segments are gone (cleaned?) "
            "or were never written; too late to seal"
        )
    if f is not None and (captured.last_cluster_time is None or captured.last_cluster_time < f):
        reached = format_time(captured.last_cluster_time) if captured.last_cluster_time else "nothing"
        raise UsageError(
            f"the capture has reached only {reached}, not F = {format_time(f)}: seal after the drain "
            "(nothing written)"
        )
    first, last = manifest.capture_seq + 1, captured.last_seq
    try:
        refs = list_segments(s3, layout, first, last)
    except JobFailed as e:
        raise UsageError(f"cannot seal the {label} backup: {e} (nothing written)") from None
    result = SealResult(label, key, manifest.b, f, first, last)
    present = set(s3.list_keys(layout.backup_segments_prefix(label)))
    missing = [r for r in refs if layout.backup_segment(label, r.seq, r.compression) not in present]
    result.already_there = len(refs) - len(missing)
    run_parallel([partial(_copy, s3, layout, label, r) for r in missing], parallel)
    result.copied = len(missing)
    result.sealed = f is not None
    if (manifest.f, manifest.sealed_through_seq) != (f, last) or result.copied:
        manifest.f, manifest.sealed_through_seq, manifest.sealed_at = f, last, now_ms()
        state.write(s3, key, manifest)
    log.info(
        "seal %s: segments %d..%d under s3://%s/%s (%d copied now, %d there already); %s",
        label,
        first,
        last,
        s3.bucket,
        layout.backup_segments_prefix(label),
        result.copied,
        result.already_there,
        f"F = {format_time(f)} recorded: the backup restores consistent at F without changes/"
        if f is not None
        else "the migration is not frozen yet: run --seal again after the drain",
    )
    return result


def _copy(s3: S3Objects, layout: MigrationLayout, label: str, ref: SegmentRef) -> None:
    """One server-side copy, metadata included (the identity and SHA-256 the restore checks)."""
    destination = layout.backup_segment(label, ref.seq, ref.compression)
    try:
        s3.client.copy_object(
            Bucket=s3.bucket,
            Key=destination,
            CopySource={"Bucket": s3.bucket, "Key": ref.key},
            MetadataDirective="COPY",
        )
    except (ClientError, BotoCoreError) as e:
        raise JobFailed(f"cannot copy s3://{s3.bucket}/{ref.key} to {destination}: {one_line(e)}") from None
