"""The write freeze, phase by phase, in the restore DAG's log (``backover.lifecycle.window``)."""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperator, Context

from backover.lifecycle.window import freeze_window
from backover_airflow import config
from backover_airflow.hooks.migration import MigrationHook


class FreezeWindowOperator(BaseOperator):
    """Log how long the microservices could not write and where the time went (drain, restore,
    verify), from the migration's state objects; return it (XCom) as JSON.

    :param aws_conn_id: AWS connection for S3 (default ``aws_default``).
    """

    ui_color = "#fff3c4"

    def __init__(self, *, aws_conn_id: str | None = "aws_default", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.aws_conn_id = aws_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        with config.failing_task():
            layout = config.migration(context["params"])[1]
        snap = MigrationHook(aws_conn_id=self.aws_conn_id).snapshot(layout)
        window = freeze_window(
            snap.freeze, snap.replicator, snap.restore, snap.verify.checked_at if snap.verify else None
        )
        self.log.info("%s", window.line())
        return window.to_json()
