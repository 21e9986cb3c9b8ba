"""Trigger for clean-up: ``state/clean.json`` written and no change segment left."""

from __future__ import annotations

from backover_airflow.triggers.base import MigrationStateTrigger


class CleanCompletedTrigger(MigrationStateTrigger):
    """Fires when clean-up is recorded and no change segment is left."""

    check_name = "clean_completed"
