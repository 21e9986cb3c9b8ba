"""Sensor on clean-up: ``state/clean.json`` written and no change segment left."""

from __future__ import annotations

from backover_airflow.sensors.base import MigrationStateSensor
from backover_airflow.triggers.clean import CleanCompletedTrigger


class CleanCompletedSensor(MigrationStateSensor):
    """Wait until clean-up is recorded and ``changes/`` holds no segment; the log counts those left."""

    trigger_class = CleanCompletedTrigger
