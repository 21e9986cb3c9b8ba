"""Record a migration's lag history before clean-up deletes the segments it is read from.

``backover_clean``'s ``clean.record_lag`` task (every migration's clean-up, the rehearsal's too:
its clean phase is ``backover_clean``) writes ``reports/lag.json``
(:func:`backover_airflow.ui.lag_history.record`), the Migrations page's chart once the segments are
gone. Best-effort: the chart must never hold up the clean-up, so a damaged record or S3 that
cannot be read or written is a WARNING and the task succeeds (the page then charts what the
folder still shows).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperator
from botocore.exceptions import BotoCoreError, ClientError

from backover.errors import BackoverError
from backover_airflow import config
from backover_airflow.hooks.migration import MigrationHook
from backover_airflow.ui import lag_history

if TYPE_CHECKING:
    from airflow.sdk import Context


class LagHistoryOperator(BaseOperator):
    """Write ``reports/lag.json``: the capture's and the restore's lag over time, read from the
    segments and checkpoints while they exist; returns the number of points (XCom), or None when
    it could not record (logged as a WARNING; the task succeeds).

    :param migration_id: the migration (templated).
    :param aws_conn_id: AWS connection for S3 (default ``aws_default``).
    """

    template_fields: Sequence[str] = ("migration_id",)
    ui_color = "#fff3c4"

    def __init__(self, *, migration_id: str, aws_conn_id: str | None = "aws_default", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.migration_id = migration_id
        self.aws_conn_id = aws_conn_id

    def execute(self, context: Context) -> dict[str, int] | None:
        with config.failing_task():
            layout = config.migration(context["params"], self.migration_id)[1]
        hook = MigrationHook(aws_conn_id=self.aws_conn_id)
        try:
            snap = hook.snapshot(layout)
            lags = lag_history.record(hook.objects(layout), layout, snap.replicator, snap.restore)
        except (BackoverError, BotoCoreError, ClientError) as e:  # RecordError is a BackoverError
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            self.log.warning(
                "Lag history not recorded in s3://%s/%s (the clean-up goes on; after it the Migrations "
                "page charts only what was recorded before): %s",
                layout.bucket,
                layout.lag_history,
                reason,
            )
            return None
        self.log.info(
            "Lag history: %d capture and %d restore points in s3://%s/%s",
            len(lags.capture),
            len(lags.restore),
            layout.bucket,
            layout.lag_history,
        )
        return {"capture_points": len(lags.capture), "restore_points": len(lags.restore)}
