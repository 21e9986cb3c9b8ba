"""The Lambda side of the runner: ``Invoke`` (and ``GetFunction``) over rest-json, run locally.

Each invocation runs the registered handler in a fresh interpreter (see ``bootstrap.py``) in the
function's working directory, with the runner's environment plus Lambda's own variables
(``AWS_LAMBDA_FUNCTION_NAME`` ...) plus the function's ``environment``. Behaviour follows AWS:

* ``RequestResponse`` -> 200 with the handler's JSON result; ``Event`` -> 202 at once, the handler
  runs in the background; ``DryRun`` -> 204.
* A handler exception (or import error, timeout, crash) -> 200 with ``X-Amz-Function-Error:
  Unhandled`` and ``{"errorMessage", "errorType", "stackTrace"}`` as the payload.
* ``X-Amz-Log-Type: Tail`` -> ``X-Amz-Log-Result`` holds the base64 of the last 4 KB of the log
  (``START``/``END``/``REPORT`` lines around everything the handler wrote to stdout/stderr).
* Unknown function -> 404 ``ResourceNotFoundException``.

The runner never logs payloads; each function log line goes to the ``backover_sandbox.runner.function``
logger at DEBUG only (like CloudWatch, it holds whatever the handler printed).

Admin endpoints (not AWS): ``GET /_runner/functions``, ``PUT /_runner/functions/{name}`` with a
JSON definition as in a registry file (see ``registry.py``), ``DELETE /_runner/functions/{name}``.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from .procs import ProcessTracker, kill_group
from .protocol import AwsError, Request, Response, iso_millis, json_response, new_request_id, utc_now
from .registry import FunctionRegistry, FunctionSpec, RegistryError

log = logging.getLogger(__name__)
function_log = logging.getLogger("backover_sandbox.runner.function")

API_PREFIX = "/2015-03-31/functions/"
ADMIN_PREFIX = "/_runner/functions"
BOOTSTRAP = Path(__file__).with_name("bootstrap.py")
MAX_SYNC_PAYLOAD = 6 * 1024 * 1024
MAX_ASYNC_PAYLOAD = 1024 * 1024
MAX_RESPONSE = 6 * 1024 * 1024
TAIL_BYTES = 4096
_ARN = re.compile(
    r"^(?:arn:aws[\w-]*:lambda:[\w-]+:)?(?:\d{12}:)?(?:function:)?([A-Za-z0-9_-]+)(?::([\w$-]+))?$"
)
_BOOT_CODE = f"import runpy; runpy.run_path({str(BOOTSTRAP)!r}, run_name='__main__')"


@dataclass
class InvocationResult:
    """What one run of a handler produced."""

    payload: bytes
    function_error: str | None
    log: bytes


def split_function_name(raw: str) -> tuple[str, str | None]:
    """Split a function name, partial ARN or ARN into ``(name, qualifier)``.

    :raises AwsError: ``InvalidParameterValueException`` for an unusable name.
    """
    match = _ARN.match(raw)
    if not match:
        raise AwsError(
            "InvalidParameterValueException", f"1 validation error detected: Value '{raw}' at 'functionName'"
        )
    return match.group(1), match.group(2)


class LambdaService:
    """Serves Lambda ``Invoke``/``GetFunction`` and the function admin endpoints."""

    def __init__(
        self,
        registry: FunctionRegistry,
        tracker: ProcessTracker,
        *,
        account_id: str,
        default_region: str,
    ) -> None:
        self.registry = registry
        self.tracker = tracker
        self.account_id = account_id
        self.default_region = default_region

    # ----------------------------------------------------------------- routing

    def handles(self, path: str) -> bool:
        """Whether ``path`` belongs to this service (AWS API or admin)."""
        return path.startswith(API_PREFIX) or path == ADMIN_PREFIX or path.startswith(ADMIN_PREFIX + "/")

    def handle(self, request: Request, region: str) -> Response:
        """Answer one request.

        :raises AwsError: for an AWS error the server renders as rest-json.
        """
        if request.path.startswith("/_runner/"):
            return self._admin(request)
        rest = request.path[len(API_PREFIX) :]
        name_part, _, action = rest.partition("/")
        name, arn_qualifier = split_function_name(unquote(name_part))
        qualifier = request.query.get("Qualifier") or arn_qualifier
        if request.method == "POST" and action == "invocations":
            return self.invoke(request, name, qualifier, region)
        if request.method == "GET" and action == "":
            return self.get_function(name, qualifier, region)
        raise AwsError("UnknownOperationException", f"{request.method} {request.path} is not supported", 404)

    # ----------------------------------------------------------------- AWS API

    def function_arn(self, name: str, region: str, qualifier: str | None = None) -> str:
        """Return the function's ARN in ``region``."""
        arn = f"arn:aws:lambda:{region}:{self.account_id}:function:{name}"
        return f"{arn}:{qualifier}" if qualifier else arn

    def _spec(self, name: str, qualifier: str | None, region: str) -> FunctionSpec:
        spec = self.registry.get(name)
        if spec is None:
            raise AwsError(
                "ResourceNotFoundException",
                f"Function not found: {self.function_arn(name, region, qualifier)}",
                404,
            )
        return spec

    def get_function(self, name: str, qualifier: str | None, region: str) -> Response:
        """Answer ``GetFunction`` with the function's configuration (state always ``Active``)."""
        spec = self._spec(name, qualifier, region)
        configuration = {
            "FunctionName": spec.name,
            "FunctionArn": self.function_arn(spec.name, region),
            "Runtime": f"python{sys.version_info.major}.{sys.version_info.minor}",
            "Handler": spec.handler,
            "Timeout": spec.timeout,
            "MemorySize": spec.memory_size,
            "Version": "$LATEST",
            "Environment": {"Variables": dict(spec.environment)},
            "State": "Active",
            "LastUpdateStatus": "Successful",
            "PackageType": "Zip",
        }
        return json_response({"Configuration": configuration, "Code": {}}, content_type="application/json")

    def invoke(self, request: Request, name: str, qualifier: str | None, region: str) -> Response:
        """Answer ``Invoke``."""
        spec = self._spec(name, qualifier, region)
        invocation_type = request.header("X-Amz-Invocation-Type", "RequestResponse") or "RequestResponse"
        if invocation_type not in {"RequestResponse", "Event", "DryRun"}:
            raise AwsError(
                "InvalidParameterValueException",
                f"1 validation error detected: Value '{invocation_type}' at 'invocationType' failed to satisfy "
                "constraint: Member must satisfy enum value set: [Event, RequestResponse, DryRun]",
            )
        limit = MAX_ASYNC_PAYLOAD if invocation_type == "Event" else MAX_SYNC_PAYLOAD
        if len(request.body) > limit:
            raise AwsError(
                "RequestTooLargeException",
                f"Request must be smaller than {limit} bytes for the InvokeFunction operation",
                413,
            )
        if request.body.strip():
            try:
                json.loads(request.body)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise AwsError(
                    "InvalidRequestContentException",
                    f"Could not parse request body into json: Could not parse payload into json: {exc}",
                ) from exc
        request_id = new_request_id()
        headers = {"x-amzn-RequestId": request_id}
        if invocation_type == "DryRun":
            return Response(status=204, headers=headers)
        version = qualifier if qualifier and qualifier.isdigit() else "$LATEST"
        client_context = request.header("X-Amz-Client-Context")
        if invocation_type == "Event":
            self._start_background(spec, request.body, request_id, client_context, region, version)
            return Response(status=202, headers=headers)
        result = self.execute(spec, request.body, request_id, client_context, region, version)
        headers["X-Amz-Executed-Version"] = version
        if result.function_error:
            headers["X-Amz-Function-Error"] = result.function_error
        if request.header("X-Amz-Log-Type") == "Tail":
            headers["X-Amz-Log-Result"] = base64.b64encode(result.log[-TAIL_BYTES:]).decode("ascii")
        return Response(status=200, body=result.payload, headers=headers, content_type="application/json")

    # --------------------------------------------------------------- execution

    def _start_background(
        self,
        spec: FunctionSpec,
        payload: bytes,
        request_id: str,
        client_context: str,
        region: str,
        version: str,
    ) -> None:
        """Run an ``Event`` invocation in a daemon thread (Lambda does not retry it here)."""

        def work() -> None:
            result = self.execute(spec, payload, request_id, client_context, region, version)
            if result.function_error:
                log.warning("async invocation %s of %s ended in a function error", request_id, spec.name)

        threading.Thread(target=work, name=f"lambda-event-{spec.name}", daemon=True).start()

    def _environment(self, spec: FunctionSpec, request_id: str, region: str, version: str) -> dict[str, str]:
        stream_day = datetime.now(UTC).strftime("%Y/%m/%d")
        lambda_vars = {
            "AWS_LAMBDA_FUNCTION_NAME": spec.name,
            "AWS_LAMBDA_FUNCTION_VERSION": version,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_size),
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": f"{stream_day}/[{version}]{request_id.replace('-', '')}",
            "AWS_REGION": region,
            "AWS_DEFAULT_REGION": region,
            "LAMBDA_TASK_ROOT": str(spec.working_dir),
            "_HANDLER": spec.handler,
        }
        private = {
            "_BACKOVER_HANDLER": spec.handler,
            "_BACKOVER_REQUEST_ID": request_id,
            "_BACKOVER_DEADLINE_MS": str(time.time() * 1000 + spec.timeout * 1000),
            "_BACKOVER_FUNCTION_ARN": self.function_arn(spec.name, region),
        }
        return {**os.environ, **lambda_vars, **spec.environment, **private}

    def execute(
        self,
        spec: FunctionSpec,
        payload: bytes,
        request_id: str,
        client_context: str = "",
        region: str | None = None,
        version: str = "$LATEST",
    ) -> InvocationResult:
        """Run ``spec``'s handler once on ``payload`` and return its result and log."""
        region = region or self.default_region
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="backover-lambda-") as tmp:
            result_file = Path(tmp) / "result.json"
            env = self._environment(spec, request_id, region, version)
            env["_BACKOVER_RESULT_FILE"] = str(result_file)
            if client_context:
                env["_BACKOVER_CLIENT_CONTEXT"] = client_context
            output, timed_out, exit_status, start_error = self._run(spec, env, payload)
            elapsed = time.monotonic() - started
            outcome = _read_result(result_file)
        error: dict[str, Any] | None = None
        max_memory = 0
        if start_error is not None:
            error = {
                "errorType": "Runtime.InvalidEntrypoint",
                "errorMessage": f"RequestId: {request_id} Error: {start_error}",
            }
        elif timed_out:
            error = {
                "errorType": "Sandbox.Timedout",
                "errorMessage": f"RequestId: {request_id} Error: Task timed out after {spec.timeout:.2f} seconds",
            }
            output += f"{iso_millis(utc_now())} {request_id} Task timed out after {spec.timeout:.2f} seconds\n".encode()
        elif outcome is None:
            error = {
                "errorType": "Runtime.ExitError",
                "errorMessage": f"RequestId: {request_id} Error: Runtime exited with error: {exit_status}",
            }
        else:
            max_memory = int(outcome.get("max_rss_mb", 0))
            error = outcome.get("error")
        body = b"null"
        if error is None and outcome is not None:
            body = str(outcome.get("payload", "null")).encode()
            if len(body) > MAX_RESPONSE:
                error = {
                    "errorType": "Function.ResponseSizeTooLarge",
                    "errorMessage": f"Response payload size ({len(body)} bytes) exceeded maximum allowed "
                    f"payload size ({MAX_RESPONSE} bytes).",
                }
        log_bytes = _lambda_log(spec, request_id, version, output, elapsed, max_memory, timed_out)
        for line in log_bytes.decode("utf-8", "replace").splitlines():
            function_log.debug("%s: %s", spec.name, line)
        if error is not None:
            return InvocationResult(json.dumps(error).encode(), "Unhandled", log_bytes)
        return InvocationResult(body, None, log_bytes)

    def _run(
        self, spec: FunctionSpec, env: dict[str, str], payload: bytes
    ) -> tuple[bytes, bool, str, str | None]:
        """Run the bootstrap; return ``(log output, timed out, exit status text, start error)``."""
        try:
            proc = self.tracker.spawn(
                [sys.executable, "-c", _BOOT_CODE],
                cwd=spec.working_dir,
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
        except (OSError, RuntimeError) as exc:
            return b"", False, "", str(exc)
        timed_out = False
        try:
            try:
                output, _ = proc.communicate(input=payload, timeout=spec.timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
                kill_group(proc)
                try:
                    output, _ = proc.communicate(timeout=5)
                except subprocess.TimeoutExpired:
                    output = b""
                    if proc.stdout is not None:
                        proc.stdout.close()
                    proc.wait()
        finally:
            self.tracker.release(proc)
        code = proc.returncode
        status = f"signal: {-code}" if code is not None and code < 0 else f"exit status {code}"
        return output or b"", timed_out, status, None

    # ------------------------------------------------------------------ admin

    def _admin(self, request: Request) -> Response:
        name = request.path[len(ADMIN_PREFIX) :].strip("/")
        if not name:
            if request.method != "GET":
                return _admin_error(405, "use GET on /_runner/functions")
            return _admin_json(200, {"functions": [spec.describe() for spec in self.registry.all()]})
        if request.method == "PUT":
            try:
                definition = json.loads(request.body or b"{}")
                spec = self.registry.put(name, definition)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                return _admin_error(400, f"body is not JSON: {exc}")
            except RegistryError as exc:
                return _admin_error(400, str(exc))
            log.info("registered function %s (handler %s)", spec.name, spec.handler)
            return _admin_json(200, {"function": spec.describe()})
        if request.method == "GET":
            found = self.registry.get(name)
            if found is None:
                return _admin_error(404, f"no function {name!r}")
            return _admin_json(200, {"function": found.describe()})
        if request.method == "DELETE":
            if not self.registry.delete(name):
                return _admin_error(404, f"no function {name!r}")
            log.info("removed function %s", name)
            return Response(status=204)
        return _admin_error(405, f"{request.method} is not supported on {request.path}")


def _admin_json(status: int, document: dict[str, Any]) -> Response:
    return json_response(document, status, content_type="application/json")


def _admin_error(status: int, message: str) -> Response:
    return _admin_json(status, {"error": message})


def _read_result(path: Path) -> dict[str, Any] | None:
    """Read the bootstrap's result file; None if it never wrote one (crash, kill, exit)."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return document if isinstance(document, dict) else None


def _lambda_log(
    spec: FunctionSpec,
    request_id: str,
    version: str,
    output: bytes,
    elapsed: float,
    max_memory: int,
    timed_out: bool,
) -> bytes:
    """Wrap the handler's output in Lambda's START/END/REPORT lines."""
    if output and not output.endswith(b"\n"):
        output += b"\n"
    duration_ms = elapsed * 1000
    report = (
        f"REPORT RequestId: {request_id}\tDuration: {duration_ms:.2f} ms\t"
        f"Billed Duration: {max(math.ceil(duration_ms), 1)} ms\tMemory Size: {spec.memory_size} MB\t"
        f"Max Memory Used: {max_memory} MB\t"
    )
    if timed_out:
        report += "Status: timeout"
    return (
        f"START RequestId: {request_id} Version: {version}\n".encode()
        + output
        + f"END RequestId: {request_id}\n{report}\n".encode()
    )
