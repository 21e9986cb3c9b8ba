"""The trigger every migration sensor defers to: look at the state objects until a phase ends.

A subclass names the :class:`~backover_airflow.hooks.migration.MigrationHook` check it runs
(``check_name``); the sensor's ``poke`` runs the same check, so deferring changes where the
waiting happens, never what is waited for.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, ClassVar

from airflow.triggers.base import BaseTrigger, TriggerEvent

from backover.layout import MigrationLayout
from backover_airflow.config import POLL_INTERVAL_SECONDS
from backover_airflow.hooks.migration import MigrationHook


class AwsConnectionTrigger(BaseTrigger):
    """A trigger that reaches AWS with an operator's connection settings, kept and serialized once.

    :param aws_conn_id: AWS connection (default ``aws_default``; None = boto3's own settings).
    :param region_name: AWS region (default: the connection's).
    :param verify: TLS verification (default: boto3's).
    :param botocore_config: botocore client configuration (default: none).
    """

    def __init__(
        self,
        *,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        verify: bool | str | None = None,
        botocore_config: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name
        self.verify = verify
        self.botocore_config = botocore_config

    def own_kwargs(self) -> dict[str, Any]:
        """The subclass's own arguments, as its constructor takes them back."""
        return {}

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                **self.own_kwargs(),
                "aws_conn_id": self.aws_conn_id,
                "region_name": self.region_name,
                "verify": self.verify,
                "botocore_config": self.botocore_config,
            },
        )

    def hook_kwargs(self) -> dict[str, Any]:
        """What the provider's hooks take: ``aws_conn_id``, ``region_name``, ``verify``, ``config``."""
        return {
            "aws_conn_id": self.aws_conn_id,
            "region_name": self.region_name,
            "verify": self.verify,
            "config": self.botocore_config,
        }


class MigrationStateTrigger(AwsConnectionTrigger):
    """Poll one phase of a migration until it succeeds or fails.

    :param bucket: S3 bucket of the migration.
    :param prefix: key prefix in the bucket.
    :param migration_id: the migration.
    :param poke_interval: seconds between two looks (default 30, ``config.POLL_INTERVAL_SECONDS``; a sensor
        passes the environment's).
    :param check_kwargs: the check's own arguments (see the subclasses); the AWS connection's
        settings are :class:`AwsConnectionTrigger`'s.
    """

    #: the :class:`MigrationHook` method that looks at the phase
    check_name: ClassVar[str] = ""

    def __init__(
        self,
        *,
        bucket: str,
        prefix: str,
        migration_id: str,
        poke_interval: float = POLL_INTERVAL_SECONDS,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        verify: bool | str | None = None,
        botocore_config: dict[str, Any] | None = None,
        **check_kwargs: Any,
    ) -> None:
        super().__init__(
            aws_conn_id=aws_conn_id, region_name=region_name, verify=verify, botocore_config=botocore_config
        )
        self.bucket = bucket
        self.prefix = prefix
        self.migration_id = migration_id
        self.poke_interval = poke_interval
        self.check_kwargs = check_kwargs

    def own_kwargs(self) -> dict[str, Any]:
        return {
            "bucket": self.bucket,
            "prefix": self.prefix,
            "migration_id": self.migration_id,
            "poke_interval": self.poke_interval,
            **self.check_kwargs,
        }

    def hook(self) -> MigrationHook:
        return MigrationHook(**self.hook_kwargs())

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = self.hook()
        layout = MigrationLayout(bucket=self.bucket, prefix=self.prefix, migration_id=self.migration_id)
        check = getattr(hook, self.check_name)
        while True:
            # boto3 is synchronous: look in a worker thread so the triggerer's loop stays free.
            result = await asyncio.to_thread(check, layout, **self.check_kwargs)
            self.log.info("%s", result.message)
            if result.done or result.failed:
                yield TriggerEvent(result.to_event())
                return
            await asyncio.sleep(self.poke_interval)
