"""Triggers for the replicator: healthy (start) and drained past F (restore)."""

from __future__ import annotations

from backover_airflow.triggers.base import MigrationStateTrigger


class ReplicatorHealthyTrigger(MigrationStateTrigger):
    """Fires when the replicator runs with a fresh heartbeat (``max_heartbeat_age_seconds``), or failed."""

    check_name = "replicator_health"


class ReplicationDrainedTrigger(MigrationStateTrigger):
    """Fires when the checkpoint says drained past the freeze position F, or the replicator failed."""

    check_name = "replication_drained"


class CaptureWindowTrigger(MigrationStateTrigger):
    """Fires when the capture has run ``min_seconds`` since T0, or the replicator failed."""

    check_name = "capture_window"
