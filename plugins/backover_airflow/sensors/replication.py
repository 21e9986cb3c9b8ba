"""Sensors on the replicator: healthy after start, drained past the freeze position F at restore."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from backover_airflow.config import BackoverConfig
from backover_airflow.sensors.base import MigrationStateSensor
from backover_airflow.triggers.replication import (
    CaptureWindowTrigger,
    ReplicationDrainedTrigger,
    ReplicatorHealthyTrigger,
)


class _ReplicatorSensor(MigrationStateSensor):
    """A sensor on the replicator's checkpoint, which judges its heartbeat.

    :param max_heartbeat_age_seconds: a heartbeat older than this is not fresh (default: the
        environment's ``heartbeat_max_age_seconds``).
    """

    def __init__(self, *, max_heartbeat_age_seconds: float | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_heartbeat_age_seconds = max_heartbeat_age_seconds

    def check_kwargs(self, env: BackoverConfig) -> dict[str, Any]:
        given = self.max_heartbeat_age_seconds
        return {"max_heartbeat_age_seconds": float(env.heartbeat_max_age_seconds if given is None else given)}


class ReplicatorHealthySensor(_ReplicatorSensor):
    """Wait until the replicator's checkpoint says ``running`` with a fresh heartbeat.

    Fails at once when the checkpoint says ``failed`` (with its reason) or ``stopped``.
    """

    trigger_class = ReplicatorHealthyTrigger


class ReplicationDrainedSensor(_ReplicatorSensor):
    """Wait until the checkpoint says ``drained`` at or past F (``state/freeze.json``).

    While waiting, the log says how far behind F the capture is and warns when the heartbeat is
    older than ``max_heartbeat_age_seconds``; fails at once on ``failed`` or ``stopped``.
    """

    trigger_class = ReplicationDrainedTrigger


class CaptureWindowSensor(MigrationStateSensor):
    """Wait until the capture has run for ``min_seconds`` since T0, logging what it captured so far.

    A rehearsal uses it to let the application (or a load generator) write for a while before the
    freeze; fails at once when the replicator fails or stops.

    :param min_seconds: how long the capture must have run (templated).
    """

    trigger_class = CaptureWindowTrigger
    template_fields: Sequence[str] = (*MigrationStateSensor.template_fields, "min_seconds")

    def __init__(self, *, min_seconds: float | str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.min_seconds = min_seconds

    def check_kwargs(self, env: BackoverConfig) -> dict[str, Any]:
        return {"min_seconds": float(self.min_seconds)}
