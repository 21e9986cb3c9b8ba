"""Sensor on the environment's EC2 workers (the provider's ``EC2InstanceStateSensor``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.sensors.ec2 import EC2InstanceStateSensor

from backover_airflow.operators.ec2 import OnTheWorker

if TYPE_CHECKING:
    from airflow.sdk import Context


class WorkerStateSensor(OnTheWorker, EC2InstanceStateSensor):
    """Wait until every one of the environment's EC2 workers is in ``target_state``.

    With more than one worker it pokes here (the provider's deferred trigger watches one instance).

    :param target_state: ``running``, ``stopped`` or ``terminated``.
    :param aws_conn_id: AWS connection for EC2 (default ``aws_default``).
    """

    def execute(self, context: Context) -> Any:
        if len(self.resolve_workers(context)) > 1:
            self.deferrable = False
        return super(OnTheWorker, self).execute(context)

    def poke(self, context: Context) -> bool:
        states = {i: self.hook.get_instance_state(instance_id=i) for i in self.instance_ids}
        self.log.info("instance state: %s", ", ".join(f"{i} {s}" for i, s in states.items()))
        return all(state == self.target_state for state in states.values())
