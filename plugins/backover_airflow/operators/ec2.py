"""Start and stop the environment's EC2 worker with the Amazon provider's operators.

The worker is the validated environment's ``worker_instance_id`` (``backover_airflow.config``),
resolved when the task runs, like every other task's configuration: a Variable the other tasks
refuse fails these at once with the same one-line reason.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.operators.ec2 import EC2StartInstanceOperator, EC2StopInstanceOperator
from airflow.providers.common.compat.sdk import BaseOperator

from backover_airflow import config

if TYPE_CHECKING:
    from airflow.sdk import Context


class OnTheWorker(BaseOperator):
    """For an EC2 task of the provider: its ``instance_id`` is the environment's worker, read from the
    Variable named by the run's ``environment`` Param when the task runs.

    A ``BaseOperator`` so that Airflow wraps its ``__init__`` and ``execute`` like any operator's;
    put it first among the bases (``class X(OnTheWorker, EC2StartInstanceOperator)``).
    """

    instance_id: str

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(instance_id="", **kwargs)  # the real id is known only at run time

    def execute(self, context: Context) -> Any:
        with config.failing_task():
            self.instance_id = config.environment(context["params"]).worker_instance_id
        return super().execute(context)


class WorkerStartOperator(OnTheWorker, EC2StartInstanceOperator):
    """Start the environment's EC2 worker (a running one stays as it is) and wait until it runs.

    :param check_interval: seconds between two looks at the instance state (default 15).
    :param aws_conn_id: AWS connection for EC2 (default ``aws_default``).
    """


class WorkerStopOperator(OnTheWorker, EC2StopInstanceOperator):
    """Stop the environment's EC2 worker and wait until it is stopped.

    :param check_interval: seconds between two looks at the instance state (default 15).
    :param aws_conn_id: AWS connection for EC2 (default ``aws_default``).
    """
