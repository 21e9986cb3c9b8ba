"""Start and stop the environment's EC2 workers with the Amazon provider's operators.

The workers are the validated environment's (``backover_airflow.config``): ``worker_instance_id``,
and with ``worker_tag`` every instance carrying that tag (:mod:`backover_airflow.workers`),
resolved when the task runs, like every other task's configuration: a Variable the other tasks
refuse fails these at once with the same one-line reason.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from airflow.providers.amazon.aws.operators.ec2 import EC2StartInstanceOperator, EC2StopInstanceOperator
from airflow.providers.common.compat.sdk import BaseOperator

from backover_airflow import config, workers

if TYPE_CHECKING:
    from airflow.sdk import Context


class OnTheWorker(BaseOperator):
    """For an EC2 task of the provider: its instances are the environment's workers, read from the
    Variable named by the run's ``environment`` Param when the task runs (``instance_ids``, the
    first worker first; ``instance_id`` is the one the provider's code is working on).

    A ``BaseOperator`` so that Airflow wraps its ``__init__`` and ``execute`` like any operator's;
    put it first among the bases (``class X(OnTheWorker, EC2StartInstanceOperator)``). The class
    using it has an ``EC2Hook`` (``self.hook``).
    """

    instance_id: str
    instance_ids: list[str]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(instance_id="", **kwargs)  # the real ids are known only at run time
        self.instance_ids = []

    def resolve_workers(self, context: Context) -> list[str]:
        """The environment's workers (EC2 is asked only when the Variable has a ``worker_tag``)."""
        with config.failing_task():
            env = config.environment(context["params"])
        ec2 = cast(Any, self).hook.conn  # the EC2Hook of the provider's operator this is mixed into
        client = ec2 if hasattr(ec2, "describe_instances") else ec2.meta.client  # resource or client hook
        self.instance_ids = workers.worker_ids(env, client)
        self.instance_id = self.instance_ids[0]
        if len(self.instance_ids) > 1:
            self.log.info("Workers (tag %s): %s", env.worker_tag, ", ".join(self.instance_ids))
        return self.instance_ids

    def execute(self, context: Context) -> Any:
        self.resolve_workers(context)
        return super().execute(context)


class _EachWorker(OnTheWorker):
    """Asks EC2 to change every worker at once (``request``), then runs the provider's operator on
    each in turn, which asks again (EC2 takes a repeated start or stop as a no-op) and waits."""

    def request(self, instance: Any) -> None:
        raise NotImplementedError

    def execute(self, context: Context) -> Any:
        ids = self.resolve_workers(context)
        for instance_id in ids[1:]:  # the provider's operator asks for the first one itself
            self.request(cast(Any, self).hook.get_instance(instance_id=instance_id))
        for instance_id in ids:
            self.instance_id = instance_id
            super(OnTheWorker, self).execute(context)


class WorkerStartOperator(_EachWorker, EC2StartInstanceOperator):
    """Start the environment's EC2 workers (a running one stays as it is) and wait until each runs.

    :param check_interval: seconds between two looks at the instance state (default 15).
    :param aws_conn_id: AWS connection for EC2 (default ``aws_default``).
    """

    def request(self, instance: Any) -> None:
        self.log.info("Starting EC2 instance %s", instance.id)
        instance.start()


class WorkerStopOperator(_EachWorker, EC2StopInstanceOperator):
    """Stop the environment's EC2 workers and wait until each is stopped.

    :param check_interval: seconds between two looks at the instance state (default 15).
    :param aws_conn_id: AWS connection for EC2 (default ``aws_default``).
    """

    def request(self, instance: Any) -> None:
        self.log.info("Stopping EC2 instance %s", instance.id)
        instance.stop()
