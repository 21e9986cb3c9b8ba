"""The base of every migration sensor: one check, run by ``poke`` or by a trigger.

``poke`` returns False while the phase is pending and logs what it waits for and how far it is;
a ``failed`` state fails the task at once with its reason (no retry: retrying cannot fix what the
state object reports). ``deferrable=True`` looks once, then hands the waiting to the trigger.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.providers.amazon.aws.sensors.base_aws import AwsBaseSensor
from airflow.providers.amazon.aws.utils import validate_execute_complete_event
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from airflow.providers.common.compat.sdk import AirflowFailException, conf

from backover.layout import MigrationLayout
from backover_airflow.hooks.migration import MigrationHook
from backover_airflow.progress import SUCCESS, Progress
from backover_airflow.triggers.base import MigrationStateTrigger

if TYPE_CHECKING:
    from airflow.sdk import Context


class MigrationStateSensor(AwsBaseSensor[MigrationHook]):
    """Wait for one phase of a migration, read from its state objects in S3.

    :param bucket: S3 bucket of the migration (templated).
    :param prefix: key prefix in the bucket (templated).
    :param migration_id: the migration (templated).
    :param deferrable: wait in the triggerer instead of a worker slot (default: Airflow's
        ``operators.default_deferrable``, else False).
    :param poke_interval: seconds between two looks (default 60, Airflow's).
    :param poll_interval_seconds: overrides ``poke_interval`` at run time (templated, so the
        environment can say how often to look; default: keep ``poke_interval``).
    :param aws_conn_id: AWS connection for S3 (default ``aws_default``).
    """

    aws_hook_class = MigrationHook
    template_fields: Sequence[str] = aws_template_fields("bucket", "prefix", "migration_id", "poll_interval_seconds")
    #: the trigger that does the same check when deferred (it names the hook's check)
    trigger_class: ClassVar[type[MigrationStateTrigger]] = MigrationStateTrigger

    def __init__(
        self,
        *,
        bucket: str,
        prefix: str,
        migration_id: str,
        poll_interval_seconds: float | str | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.bucket = bucket
        self.prefix = prefix
        self.migration_id = migration_id
        self.poll_interval_seconds = poll_interval_seconds
        self.deferrable = deferrable

    def check_kwargs(self) -> dict[str, Any]:
        """The check's own arguments (the subclasses add theirs)."""
        return {}

    def layout(self) -> MigrationLayout:
        return MigrationLayout(bucket=self.bucket, prefix=self.prefix, migration_id=self.migration_id)

    def look(self) -> Progress:
        """One look at the phase."""
        return getattr(self.hook, self.trigger_class.check_name)(self.layout(), **self.check_kwargs())

    def poke(self, context: Context) -> bool:
        result = self.look()
        self.log.info("%s", result.message)
        if result.failed:
            raise AirflowFailException(result.message)
        return result.done

    def execute(self, context: Context) -> Any:
        if self.poll_interval_seconds not in (None, ""):
            self.poke_interval = float(self.poll_interval_seconds)
        self.log.info("Watching migration %s in s3://%s/%s", self.migration_id, self.bucket, self.layout().root)
        if not self.deferrable:
            return super().execute(context)
        if self.poke(context):
            return None
        self.defer(
            trigger=self.trigger_class(
                bucket=self.bucket,
                prefix=self.prefix,
                migration_id=self.migration_id,
                poke_interval=self.poke_interval,
                aws_conn_id=self.aws_conn_id,
                region_name=self.region_name,
                verify=self.verify,
                botocore_config=self.botocore_config,
                **self.check_kwargs(),
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout),
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> None:
        event = validate_execute_complete_event(event)
        message = str(event.get("message", ""))
        if event.get("status") != SUCCESS:
            raise AirflowFailException(message or f"trigger ended without success: {event}")
        self.log.info("%s", message)
