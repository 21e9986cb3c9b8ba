"""The SSM side of the runner: Run Command over AWS's JSON 1.1 protocol, executed locally.

``POST /`` with ``X-Amz-Target: AmazonSSM.<Operation>`` and a JSON body. Supported operations:
``SendCommand`` (document ``AWS-RunShellScript`` only, parameters ``commands``,
``workingDirectory``, ``executionTimeout``; ``CloudWatchOutputConfig`` sends the output to
CloudWatch Logs while the command runs, see ``cloudwatch.py``), ``GetCommandInvocation``,
``ListCommandInvocations``, ``ListCommands`` and ``CancelCommand``. Anything else answers
``UnknownOperationException``, so a client sees at once what the runner does not do.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .ec2_check import InstanceChecker
from .protocol import AwsError, Request, Response, json_response
from .ssm_commands import Command, CommandStore

log = logging.getLogger(__name__)

TARGET_PREFIX = "AmazonSSM."
DOCUMENT = "AWS-RunShellScript"
_DOCUMENT_ARN = re.compile(r"^arn:aws[\w-]*:ssm:[\w-]*:\d*:document/AWS-RunShellScript$")
_PARAMETERS = {"commands", "workingDirectory", "executionTimeout"}
DEFAULT_EXECUTION_TIMEOUT = 3600
MAX_EXECUTION_TIMEOUT = 172_800
DEFAULT_DELIVERY_TIMEOUT = 3600
_FILTER_KEYS = {"InvokedAfter", "InvokedBefore", "Status", "ExecutionStage", "DocumentName"}
_LOG_GROUP = re.compile(r"^[.\-_/#A-Za-z0-9]{1,512}$")

Operation = Callable[[dict[str, Any], str], dict[str, Any]]


class SsmService:
    """Serves the Run Command operations of SSM."""

    def __init__(self, store: CommandStore, checker: InstanceChecker, default_workdir: Path) -> None:
        self.store = store
        self.checker = checker
        self.default_workdir = default_workdir
        self._operations: dict[str, Operation] = {
            "SendCommand": self.send_command,
            "GetCommandInvocation": self.get_command_invocation,
            "ListCommandInvocations": self.list_command_invocations,
            "ListCommands": self.list_commands,
            "CancelCommand": self.cancel_command,
        }

    @staticmethod
    def handles(request: Request) -> bool:
        """Whether ``request`` is an SSM JSON-protocol call."""
        return request.method == "POST" and request.header("X-Amz-Target").startswith(TARGET_PREFIX)

    @staticmethod
    def operation_name(request: Request) -> str:
        """Return the operation named by the ``X-Amz-Target`` header."""
        return request.header("X-Amz-Target")[len(TARGET_PREFIX) :]

    def handle(self, request: Request, region: str) -> Response:
        """Answer one SSM call.

        :raises AwsError: for an error the server renders in the JSON protocol.
        """
        name = self.operation_name(request)
        operation = self._operations.get(name)
        if operation is None:
            raise AwsError("UnknownOperationException", f"The local runner does not implement SSM {name}")
        try:
            body = json.loads(request.body or b"{}")
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise AwsError("SerializationException", f"request body is not JSON: {exc}") from exc
        if not isinstance(body, dict):
            raise AwsError("SerializationException", "request body must be a JSON object")
        return json_response(operation(body, region))

    # ------------------------------------------------------------ SendCommand

    def send_command(self, body: dict[str, Any], region: str) -> dict[str, Any]:
        """``SendCommand``: validate, check the instances with EC2, start the command."""
        document_name = body.get("DocumentName")
        if not isinstance(document_name, str) or not (
            document_name == DOCUMENT or _DOCUMENT_ARN.match(document_name)
        ):
            raise AwsError("InvalidDocument", f"Document {document_name} does not exist in the local runner")
        version = body.get("DocumentVersion") or "$DEFAULT"
        if version not in {"$DEFAULT", "$LATEST", "1"}:
            raise AwsError("InvalidDocumentVersion", f"Document version {version} does not exist")
        comment = body.get("Comment") or ""
        if len(comment) > 100:
            raise AwsError(
                "ValidationException", "Comment: Member must have length less than or equal to 100"
            )
        instance_ids = _instance_ids(body)
        parameters = _parameters(body.get("Parameters"))
        execution_timeout = _execution_timeout(parameters)
        timeout_seconds = body.get("TimeoutSeconds") or DEFAULT_DELIVERY_TIMEOUT
        if not isinstance(timeout_seconds, int) or not 30 <= timeout_seconds <= 2_592_000:
            raise AwsError("ValidationException", "TimeoutSeconds: Member must be between 30 and 2592000")
        workdir = self.default_workdir
        if parameters.get("workingDirectory") and parameters["workingDirectory"][0].strip():
            workdir = (self.default_workdir / parameters["workingDirectory"][0].strip()).resolve()
        cloudwatch = _cloudwatch_output_config(body.get("CloudWatchOutputConfig"))
        self.checker.check(instance_ids, region)
        echo = {
            key: body[key]
            for key in (
                "OutputS3Region",
                "OutputS3BucketName",
                "OutputS3KeyPrefix",
                "MaxConcurrency",
                "MaxErrors",
                "ServiceRoleArn",
            )
            if isinstance(body.get(key), str)
        }
        command = self.store.submit(
            document_name=document_name,
            document_version=version,
            comment=comment,
            parameters=parameters,
            instance_ids=instance_ids,
            timeout_seconds=timeout_seconds,
            execution_timeout=execution_timeout,
            working_directory=workdir,
            script="\n".join(parameters["commands"]),
            echo=echo,
            cloudwatch=cloudwatch,
            region=region,
        )
        document = self.store.command_document(command)
        self.store.start(command)
        return {"Command": document}

    # ----------------------------------------------------------- the readers

    def _command(self, command_id: Any) -> Command | None:
        if not isinstance(command_id, str) or len(command_id) != 36:
            raise AwsError("InvalidCommandId", "")
        return self.store.get(command_id)

    def get_command_invocation(self, body: dict[str, Any], region: str) -> dict[str, Any]:
        """``GetCommandInvocation``: ``InvocationDoesNotExist`` for an unknown pair, as SSM."""
        command = self._command(body.get("CommandId"))
        instance_id = body.get("InstanceId")
        invocation = (
            command.invocations.get(instance_id) if command and isinstance(instance_id, str) else None
        )
        if command is None or invocation is None:
            raise AwsError("InvocationDoesNotExist", "")
        plugin = body.get("PluginName")
        if plugin and plugin not in {"aws:runShellScript", "runShellScript"}:
            raise AwsError("InvalidPluginName", "")
        return self.store.invocation_document(command, invocation)

    def _filtered(self, body: dict[str, Any]) -> list[Command]:
        commands = self.store.all()
        if body.get("CommandId") is not None:
            command = self._command(body["CommandId"])
            commands = [command] if command else []
        instance_id = body.get("InstanceId")
        if instance_id is not None:
            commands = [c for c in commands if instance_id in c.invocations]
        for flt in body.get("Filters") or []:
            key, value = flt.get("key"), flt.get("value", "")
            if key not in _FILTER_KEYS:
                raise AwsError("InvalidFilterKey", "")
            if key == "DocumentName":
                commands = [c for c in commands if c.document_name == value]
            elif key in {"InvokedAfter", "InvokedBefore"}:
                moment = _parse_date(value)
                commands = [
                    c
                    for c in commands
                    if (c.requested >= moment if key == "InvokedAfter" else c.requested <= moment)
                ]
        return commands

    def list_command_invocations(self, body: dict[str, Any], region: str) -> dict[str, Any]:
        """``ListCommandInvocations`` (``Details`` adds ``CommandPlugins`` with ``Output``)."""
        details = bool(body.get("Details"))
        status_filter = {f.get("value") for f in body.get("Filters") or [] if f.get("key") == "Status"}
        instance_id = body.get("InstanceId")
        entries: list[dict[str, Any]] = []
        for command in self._filtered(body):
            for invocation in list(command.invocations.values()):
                if instance_id is not None and invocation.instance_id != instance_id:
                    continue
                if status_filter and invocation.status not in status_filter:
                    continue
                entries.append(self.store.list_invocation_document(command, invocation, details))
        page, token = _page(entries, body)
        return {"CommandInvocations": page, **({"NextToken": token} if token else {})}

    def list_commands(self, body: dict[str, Any], region: str) -> dict[str, Any]:
        """``ListCommands``."""
        status_filter = {f.get("value") for f in body.get("Filters") or [] if f.get("key") == "Status"}
        documents = [self.store.command_document(command) for command in self._filtered(body)]
        if status_filter:
            documents = [doc for doc in documents if doc["Status"] in status_filter]
        page, token = _page(documents, body)
        return {"Commands": page, **({"NextToken": token} if token else {})}

    def cancel_command(self, body: dict[str, Any], region: str) -> dict[str, Any]:
        """``CancelCommand``: kill the running scripts' process groups."""
        command = self._command(body.get("CommandId"))
        if command is None:
            raise AwsError("InvalidCommandId", "")
        instance_ids = body.get("InstanceIds") or None
        if instance_ids is not None and len(set(instance_ids)) != len(instance_ids):
            raise AwsError("DuplicateInstanceId", "")
        self.store.cancel(command, instance_ids)
        return {}


def _instance_ids(body: dict[str, Any]) -> list[str]:
    """Return the target instances from ``InstanceIds`` or an ``InstanceIds`` target."""
    instance_ids = body.get("InstanceIds") or []
    for target in body.get("Targets") or []:
        if target.get("Key") != "InstanceIds":
            raise AwsError(
                "InvalidParameters",
                f"the local runner only supports Targets with Key InstanceIds, not {target.get('Key')}",
            )
        instance_ids = [*instance_ids, *target.get("Values", [])]
    if not instance_ids:
        raise AwsError("InvalidParameters", "Either InstanceIds or Targets must be specified")
    if not all(isinstance(i, str) for i in instance_ids):
        raise AwsError("InvalidInstanceId", "")
    if len(instance_ids) > 50:
        raise AwsError("ValidationException", "InstanceIds: Member must have length less than or equal to 50")
    if len(set(instance_ids)) != len(instance_ids):
        raise AwsError("DuplicateInstanceId", "")
    return list(instance_ids)


def _cloudwatch_output_config(raw: Any) -> dict[str, Any]:
    """Validate ``CloudWatchOutputConfig``; its echo (``CloudWatchOutputEnabled`` False when absent)."""
    if raw is None:
        return {"CloudWatchLogGroupName": "", "CloudWatchOutputEnabled": False}
    if not isinstance(raw, dict) or set(raw) - {"CloudWatchLogGroupName", "CloudWatchOutputEnabled"}:
        raise AwsError("ValidationException", "CloudWatchOutputConfig: unknown member")
    enabled = raw.get("CloudWatchOutputEnabled", False)
    group = raw.get("CloudWatchLogGroupName", "")
    if not isinstance(enabled, bool):
        raise AwsError(
            "ValidationException", "CloudWatchOutputConfig.CloudWatchOutputEnabled must be a boolean"
        )
    if not isinstance(group, str) or (group and not _LOG_GROUP.match(group)):
        raise AwsError(
            "ValidationException",
            "CloudWatchOutputConfig.CloudWatchLogGroupName: Member must satisfy regular expression "
            "pattern: [\\.\\-_/#A-Za-z0-9]+ and have length less than or equal to 512",
        )
    return {"CloudWatchLogGroupName": group, "CloudWatchOutputEnabled": enabled}


def _parameters(raw: Any) -> dict[str, list[str]]:
    """Validate ``AWS-RunShellScript`` parameters (each a list of strings)."""
    if not isinstance(raw, dict) or not all(
        isinstance(v, list) and all(isinstance(item, str) for item in v) for v in raw.values()
    ):
        raise AwsError("InvalidParameters", "Parameters must map names to lists of strings")
    unknown = set(raw) - _PARAMETERS
    if unknown:
        raise AwsError(
            "InvalidParameters", f"document {DOCUMENT} does not support parameters {sorted(unknown)}"
        )
    if not raw.get("commands"):
        raise AwsError("InvalidParameters", "Parameter commands is required")
    return {key: list(value) for key, value in raw.items()}


def _execution_timeout(parameters: dict[str, list[str]]) -> int:
    """Return ``executionTimeout`` in seconds (default 3600, 1..172800 as the document allows)."""
    values = parameters.get("executionTimeout") or [str(DEFAULT_EXECUTION_TIMEOUT)]
    text = values[0].strip()
    if not text.isdigit() or not 1 <= int(text) <= MAX_EXECUTION_TIMEOUT:
        raise AwsError(
            "InvalidParameters",
            f"Parameter executionTimeout value {text} does not match the allowed pattern (1 to {MAX_EXECUTION_TIMEOUT})",
        )
    return int(text)


def _parse_date(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise AwsError("InvalidFilterValue", f"not an ISO 8601 date: {value}") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment


def _page(entries: list[dict[str, Any]], body: dict[str, Any]) -> tuple[list[dict[str, Any]], str | None]:
    """Cut one page out of ``entries`` with ``MaxResults``/``NextToken``."""
    size = body.get("MaxResults") or 50
    token = body.get("NextToken")
    start = 0
    if token:
        if not str(token).isdigit():
            raise AwsError("InvalidNextToken", "")
        start = int(token)
    end = start + int(size)
    return entries[start:end], (str(end) if end < len(entries) else None)
