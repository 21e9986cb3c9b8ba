"""Call the start, restore or clean Lambda with the run's event.

The provider's :class:`LambdaInvokeFunctionOperator` invokes the function; this subclass picks
the function name from the environment and builds the event (:func:`commands.lambda_payload`:
secret ids only) at run time, asks for the tail of the function's log so the task log shows it,
and returns the function's JSON result (to XCom).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.operators.lambda_function import LambdaInvokeFunctionOperator
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from airflow.providers.common.compat.sdk import AirflowFailException

from backover_airflow import commands, config

if TYPE_CHECKING:
    from airflow.sdk import Context


class MigrationLambdaOperator(LambdaInvokeFunctionOperator):
    """Invoke the environment's ``start``, ``restore`` or ``clean`` Lambda for this run.

    :param lambda_name: which Lambda (a key of the environment's ``lambda_names``).
    :param aws_conn_id: AWS connection for Lambda (default ``aws_default``).
    """

    template_fields: Sequence[str] = aws_template_fields("lambda_name")

    def __init__(self, *, lambda_name: str, **kwargs: Any) -> None:
        kwargs.setdefault("log_type", "Tail")
        kwargs.setdefault("invocation_type", "RequestResponse")
        super().__init__(function_name=lambda_name, **kwargs)
        self.lambda_name = lambda_name

    def execute(self, context: Context) -> Any:
        with config.failing_task():
            env, run = config.load(context["params"])
        if self.lambda_name not in env.lambda_names:
            raise AirflowFailException(f"the environment names no {self.lambda_name!r} Lambda")
        self.function_name = env.lambda_names[self.lambda_name]
        self.payload = json.dumps(commands.lambda_payload(env, run))
        raw = super().execute(context)
        try:
            result = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            return raw
        self.log.info("%s Lambda answered: %s", self.lambda_name, json.dumps(result, sort_keys=True))
        return result
