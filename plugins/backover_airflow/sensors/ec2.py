"""Sensor on the environment's EC2 worker (the provider's ``EC2InstanceStateSensor``)."""

from __future__ import annotations

from airflow.providers.amazon.aws.sensors.ec2 import EC2InstanceStateSensor

from backover_airflow.operators.ec2 import OnTheWorker


class WorkerStateSensor(OnTheWorker, EC2InstanceStateSensor):
    """Wait until the environment's EC2 worker is in ``target_state``.

    :param target_state: ``running``, ``stopped`` or ``terminated``.
    :param aws_conn_id: AWS connection for EC2 (default ``aws_default``).
    """
