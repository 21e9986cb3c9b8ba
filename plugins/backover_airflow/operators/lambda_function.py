"""Call the start, restore or clean Lambda with the run's event.

The provider's :class:`LambdaInvokeFunctionOperator` holds the function's arguments and its hook
invokes it; this subclass picks the function name from the environment and builds the event
(:func:`commands.lambda_payload`: secret ids only) at run time, asks for the tail of the
function's log, and returns the function's JSON result (to XCom).

The task log shows the function's answer (or its one-line reason), then its log tail decoded,
once: the provider's ``execute`` logs the response metadata twice, whose HTTP headers carry the
tail again in base64, and puts a failure's reason inside a ``ValueError`` with that metadata. A
function error whose ``errorType`` no retry changes
(:data:`backover.lifecycle.lambda_entry.FINAL_ERROR_TYPES`: a bad event, a migration id that was
aborted, frozen or cleaned, a retention too short) fails the task at once
(``AirflowFailException``); any other error is retried.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.operators.lambda_function import LambdaInvokeFunctionOperator
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException

from backover.lifecycle.lambda_entry import FINAL_ERROR_TYPES
from backover_airflow import commands, config

if TYPE_CHECKING:
    from airflow.sdk import Context

SUCCESS_STATUS_CODES = (200, 202, 204)


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
        self.log.info("Invoking the %s Lambda %s with %s", self.lambda_name, self.function_name, self.payload)
        response = self.hook.invoke_lambda(
            function_name=self.function_name,
            invocation_type=self.invocation_type,
            log_type=self.log_type,
            client_context=self.client_context,
            payload=self.payload,
            qualifier=self.qualifier,
        )
        status = response.get("StatusCode")
        request_id = (response.get("ResponseMetadata") or {}).get("RequestId", "?")
        raw = response["Payload"].read().decode() if response.get("Payload") is not None else ""
        if status not in SUCCESS_STATUS_CODES:
            self._log_tail(response)
            raise AirflowException(
                f"{self.lambda_name} Lambda did not run: status {status} (request {request_id})"
            )
        if "FunctionError" in response:
            failure = self._failure(raw)
            self.log.error("%s", failure)  # the reason first, then the log tail
            self._log_tail(response)
            raise failure
        try:
            result = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            result = raw
        self.log.info("%s Lambda answered: %s", self.lambda_name, json.dumps(result, sort_keys=True))
        self._log_tail(response)
        return result

    def _failure(self, raw: str) -> AirflowException:
        """The task's failure for a function error: its one-line reason; not retried when its
        ``errorType`` is final."""
        try:
            error = json.loads(raw)
        except json.JSONDecodeError:
            error = None
        if not isinstance(error, dict):
            return AirflowException(
                f"{self.lambda_name} Lambda failed: {raw.strip()[:500] or 'no error payload'}"
            )
        kind = str(error.get("errorType") or "error")
        message = str(error.get("errorMessage") or "no message").strip().splitlines()
        reason = message[0] if message else "no message"
        if kind in FINAL_ERROR_TYPES:
            return AirflowFailException(f"{self.lambda_name} Lambda refused ({kind}, not retried): {reason}")
        return AirflowException(f"{self.lambda_name} Lambda failed ({kind}): {reason}")

    def _log_tail(self, response: dict[str, Any]) -> None:
        """The function's log tail (the last 4 KB Lambda returns), decoded, once."""
        tail = response.get("LogResult")
        lines = (
            self.hook.encode_log_result(tail, keep_empty_lines=self.keep_empty_log_lines) if tail else None
        )
        if not lines:
            return
        self.log.info("The end of the %s Lambda's log (last 4 KB):", self.lambda_name)
        for line in lines:
            self.log.info("%s", line)
