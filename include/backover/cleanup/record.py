"""``state/clean.json``: written in parts by the clean Lambda and by ``backover clean``.

Fields (canonical Extended JSON):

* ``migration_id``;
* ``guard``: ``{restore_state, verified, replicator_state, frozen, forced, checked_at}``, the check
  that allowed clean-up (kept, so a re-run after the checkpoints are gone is still allowed; a
  forced one only allows a forced re-run);
* ``change_streams_disabled`` (list of ``{database, collection}``), ``change_streams_disabled_at``:
  by the clean Lambda, or by ``backover clean`` when given the source;
* ``cleaned_at``, ``segments_deleted``, ``checkpoints_deleted``, ``backups_kept``,
  ``backups_deleted``: by ``backover clean``; ``cleaned_at`` present = the S3 clean-up finished.
  The counts are totals over every run, so a re-run leaves them unchanged; each batch is counted
  just before it is deleted, with its keys in ``deleting`` (empty once the run finished), so a
  killed run's batch is never counted twice.
"""

from __future__ import annotations

from typing import Any

from ..layout import MigrationLayout
from ..s3objects import S3Objects


def read(s3: S3Objects, layout: MigrationLayout) -> dict[str, Any]:
    """The current ``state/clean.json`` (empty when absent)."""
    return s3.get_json(layout.clean_state) or {}


def update(s3: S3Objects, layout: MigrationLayout, **fields: Any) -> dict[str, Any]:
    """Merge ``fields`` into ``state/clean.json`` and write it; returns the new document."""
    doc = {"migration_id": layout.migration_id, **read(s3, layout), **fields}
    s3.put_json(layout.clean_state, doc)
    return doc
