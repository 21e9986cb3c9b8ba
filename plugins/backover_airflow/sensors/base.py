"""The base of every migration sensor: one check, run by ``poke`` or by a trigger.

Where to look is resolved at run time from the validated environment (``backover_airflow.config``),
exactly as the operators resolve it: bucket, prefix (with its default), the migration id (the
run's Param), how often to look and, for the replicator, how old a heartbeat may be. A Variable
the operators refuse fails the sensor at once with the same one-line reason.

``poke`` returns False while the phase is pending and logs what it waits for and how far it is;
a ``failed`` state fails the task at once with its reason (no retry: retrying cannot fix what the
state object reports). ``deferrable=True`` looks once, then hands the waiting to the trigger, with
the resolved location and interval.
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
from backover_airflow import config
from backover_airflow.hooks.migration import MigrationHook
from backover_airflow.progress import SUCCESS, Progress
from backover_airflow.triggers.base import MigrationStateTrigger

if TYPE_CHECKING:
    from airflow.sdk import Context


class MigrationStateSensor(AwsBaseSensor[MigrationHook]):
    """Wait for one phase of a migration, read from its state objects in S3.

    The bucket and prefix are the environment's: the Variable named by the run's ``environment``
    Param, validated at run time (:func:`backover_airflow.config.migration`).

    :param migration_id: the migration (templated; default: the run's Param ``migration_id``).
    :param deferrable: wait in the triggerer instead of a worker slot (default: Airflow's
        ``operators.default_deferrable``, else False).
    :param poke_interval: seconds between two looks (default: the environment's
        ``poll_interval_seconds``).
    :param aws_conn_id: AWS connection for S3 (default ``aws_default``).
    """

    aws_hook_class = MigrationHook
    template_fields: Sequence[str] = aws_template_fields("migration_id")
    #: the trigger that does the same check when deferred (it names the hook's check)
    trigger_class: ClassVar[type[MigrationStateTrigger]] = MigrationStateTrigger

    def __init__(
        self,
        *,
        migration_id: str | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        given = "poke_interval" in kwargs  # a poke_interval given to the sensor wins over the environment's
        super().__init__(**kwargs)
        self._poke_interval_given = given
        self.migration_id = migration_id
        self.deferrable = deferrable
        self._watched: tuple[config.BackoverConfig, MigrationLayout] | None = None

    def watched(self, context: Context) -> tuple[config.BackoverConfig, MigrationLayout]:
        """The environment and the migration's layout, validated once per run of the task;
        a bad Variable or migration id fails the task at once (no retries)."""
        if self._watched is None:
            with config.failing_task():
                env, layout = config.migration(context["params"], self.migration_id)
            if not self._poke_interval_given:
                self.poke_interval = float(env.poll_interval_seconds)
            self._watched = env, layout
        return self._watched

    def check_kwargs(self, env: config.BackoverConfig) -> dict[str, Any]:
        """The check's own arguments in this environment (the subclasses add theirs)."""
        return {}

    def look(self, context: Context) -> Progress:
        """One look at the phase."""
        env, layout = self.watched(context)
        return getattr(self.hook, self.trigger_class.check_name)(layout, **self.check_kwargs(env))

    def poke(self, context: Context) -> bool:
        result = self.look(context)
        self.log.info("%s", result.message)
        if result.failed:
            raise AirflowFailException(result.message)
        return result.done

    def execute(self, context: Context) -> Any:
        self._watched = None  # each run of the task reads the Variable again
        env, layout = self.watched(context)
        self.log.info(
            "Watching migration %s in s3://%s/%s (looking every %s s)",
            layout.migration_id,
            layout.bucket,
            layout.root,
            self.poke_interval,
        )
        if not self.deferrable:
            return super().execute(context)
        if self.poke(context):
            return None
        self.defer(
            trigger=self.trigger_class(
                bucket=layout.bucket,
                prefix=layout.prefix,
                migration_id=layout.migration_id,
                poke_interval=self.poke_interval,
                aws_conn_id=self.aws_conn_id,
                region_name=self.region_name,
                verify=self.verify,
                botocore_config=self.botocore_config,
                **self.check_kwargs(env),
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
