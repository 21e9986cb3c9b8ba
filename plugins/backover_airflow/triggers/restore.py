"""Trigger for the restore: completed (and, with ``require_identical``, verified identical)."""

from __future__ import annotations

from backover_airflow.triggers.base import MigrationStateTrigger


class RestoreCompletedTrigger(MigrationStateTrigger):
    """Fires when the restore checkpoint says completed (and the verify report identical), or failed."""

    check_name = "restore_completed"


class FollowRestoreHealthyTrigger(MigrationStateTrigger):
    """Fires when the follow restore runs (its lease renewed), or failed, stopped or lapsed."""

    check_name = "follow_restore_health"
