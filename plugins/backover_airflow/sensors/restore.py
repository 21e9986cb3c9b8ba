"""Sensors on the restore: the follow restore healthy; completed, and with ``require_identical``
verified identical."""

from __future__ import annotations

from typing import Any

from backover_airflow.config import BackoverConfig
from backover_airflow.sensors.base import MigrationStateSensor
from backover_airflow.triggers.restore import FollowRestoreHealthyTrigger, RestoreCompletedTrigger


class RestoreCompletedSensor(MigrationStateSensor):
    """Wait until ``restore/_checkpoint.json`` says ``completed``.

    While waiting the log says which segment was applied last and how many are left; fails at
    once when the restore failed. With ``require_identical`` (clean's rule,
    :func:`backover.cleanup.guard.decide`) it also needs ``reports/verify.json`` to be newer than
    the restore and to say ``identical``, and fails at once when waiting cannot help: the
    migration was never frozen (``backover_restore`` has not run), the restore failed,
    verification found differences.

    :param require_identical: also require a verification that found no difference (default
        False).
    """

    trigger_class = RestoreCompletedTrigger

    def __init__(self, *, require_identical: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.require_identical = require_identical

    def check_kwargs(self, env: BackoverConfig) -> dict[str, Any]:
        return {"require_identical": bool(self.require_identical)}


class FollowRestoreHealthySensor(MigrationStateSensor):
    """Done when ``restore/_checkpoint.json`` says ``running`` in follow mode and the restore lease
    is renewed (or the restore completed); the log says how far it trails the capture.

    Fails at once when the follow restore failed, stopped, or its lease lapsed (the process is
    gone): ``backover_start`` starts it again. Before the freeze, this is what keeps a migration
    from freezing the writes while nothing applies the changes.
    """

    trigger_class = FollowRestoreHealthyTrigger
