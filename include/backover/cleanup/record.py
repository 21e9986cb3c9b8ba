"""``state/clean.json`` (:class:`backover.state.CleanRecord`): written in parts by the clean Lambda
and by ``backover clean``.

* ``guard``: the check that allowed clean-up (kept, so a re-run after the checkpoints are gone is
  still allowed; a forced one only allows a forced re-run);
* ``change_streams_disabled``, ``change_streams_disabled_at``: by the clean Lambda, or by
  ``backover clean`` when given the source;
* ``cleaned_at``, the totals and ``deleting``: by ``backover clean``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from .. import state
from ..layout import MigrationLayout
from ..s3objects import S3Objects
from ..state import CleanRecord


def read(s3: S3Objects, layout: MigrationLayout) -> CleanRecord:
    """The current ``state/clean.json`` (an empty record when absent); RecordError when malformed."""
    return state.read(s3, layout.clean_state, CleanRecord) or CleanRecord(migration_id=layout.migration_id)


def update(s3: S3Objects, layout: MigrationLayout, **changes: Any) -> CleanRecord:
    """``state/clean.json`` with ``changes`` (fields of :class:`CleanRecord`) written; returns it."""
    current = read(s3, layout)
    updated = dataclasses.replace(
        current, migration_id=current.migration_id or layout.migration_id, **changes
    )
    state.write(s3, layout.clean_state, updated)
    return updated
