"""Runs ONE Lambda handler in a fresh interpreter, the way the AWS Python runtime would.

The runner starts this file with ``python -c "import runpy; runpy.run_path(...)"`` in the
function's working directory (so, as in Lambda, that directory is on ``sys.path``). It must stay
standalone: it imports nothing from ``backover``, so a handler's own modules cannot clash with it.

Input, all removed from ``os.environ`` before the handler runs:

* ``_BACKOVER_HANDLER``: ``path/file.py:function``, ``package.module:function`` or ``module.function``;
* ``_BACKOVER_RESULT_FILE``: where to write the JSON result;
* ``_BACKOVER_REQUEST_ID``, ``_BACKOVER_DEADLINE_MS`` (epoch milliseconds),
  ``_BACKOVER_CLIENT_CONTEXT`` (base64 JSON, optional);
* the event, as JSON on standard input.

The result file holds ``{"payload": "<json text>"}`` or ``{"error": {errorMessage, errorType,
requestId, stackTrace}}``, plus ``max_rss_mb``. Everything the handler prints (and its logging)
goes to stdout/stderr, which the runner keeps as the function's log.
"""

from __future__ import annotations

import base64
import importlib
import importlib.util
import json
import logging
import os
import resource
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

Handler = Callable[[Any, Any], Any]


class HandlerLoadError(Exception):
    """The handler could not be imported or found; carries Lambda's error type."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type


class LambdaContext:
    """The subset of the AWS Lambda context object handlers use."""

    def __init__(self, request_id: str, deadline_ms: float, client_context: Any) -> None:
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.invoked_function_arn = os.environ.get("_BACKOVER_FUNCTION_ARN", "")
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        self.aws_request_id = request_id
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self.identity = None
        self.client_context = client_context
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the runner kills this invocation."""
        return max(int(self._deadline_ms - time.time() * 1000), 0)


def _load_handler(spec: str, working_dir: Path) -> Handler:
    """Import the handler named by ``spec``.

    :raises HandlerLoadError: with ``Runtime.ImportModuleError`` or ``Runtime.HandlerNotFound``.
    """
    if ":" in spec:
        target, _, attr = spec.rpartition(":")
    else:
        target, _, attr = spec.rpartition(".")
    if not target or not attr:
        raise HandlerLoadError(
            "Runtime.MalformedHandlerName", f"Bad handler '{spec}': not enough values to unpack"
        )
    is_file = target.endswith(".py") or "/" in target
    module_label = Path(target).stem if is_file else target
    try:
        if is_file:
            path = (working_dir / target).resolve()
            if not path.is_file():
                raise ModuleNotFoundError(f"No module named '{module_label}' (no file {path})")
            sys.path.insert(0, str(path.parent))
            module_spec = importlib.util.spec_from_file_location(module_label, path)
            if module_spec is None or module_spec.loader is None:
                raise ModuleNotFoundError(f"No module named '{module_label}'")
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[module_label] = module
            module_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(target)
    except Exception as exc:
        raise HandlerLoadError(
            "Runtime.ImportModuleError", f"Unable to import module '{module_label}': {exc}"
        ) from exc
    handler = getattr(module, attr, None)
    if not callable(handler):
        raise HandlerLoadError(
            "Runtime.HandlerNotFound", f"Handler '{attr}' missing on module '{module_label}'"
        )
    return handler


def _decode_client_context(raw: str) -> Any:
    """Decode the base64 JSON client context into an object with ``client``/``custom``/``env``."""
    if not raw:
        return None
    try:
        data = json.loads(base64.b64decode(raw))
    except (ValueError, TypeError):
        return None
    if not isinstance(data, dict):
        return None
    return SimpleNamespace(client=data.get("client"), custom=data.get("custom"), env=data.get("env"))


def _configure_logging(request_id: str) -> None:
    """Send handler logging to stderr in the Lambda runtime's format."""
    formatter = logging.Formatter(
        f"[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t{request_id}\t%(message)s", "%Y-%m-%dT%H:%M:%S"
    )
    formatter.converter = time.gmtime
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.addHandler(handler)
    level = os.environ.get("AWS_LAMBDA_LOG_LEVEL", "").upper()
    if level in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
        root.setLevel(level)


def _error(exc: BaseException, error_type: str, request_id: str) -> dict[str, Any]:
    """Build Lambda's error document for ``exc`` and print it to the log as the runtime does."""
    frames = [frame for frame in traceback.extract_tb(exc.__traceback__) if frame.filename != __file__]
    stack = traceback.format_list(frames)
    document = {
        "errorMessage": str(exc),
        "errorType": error_type,
        "requestId": request_id,
        "stackTrace": stack,
    }
    print(
        f"[ERROR] {error_type}: {exc}\nTraceback (most recent call last):\n{''.join(stack)}", file=sys.stderr
    )
    return document


def run() -> int:
    """Run the handler once and write the result file; return the process exit code."""
    handler_spec = os.environ.pop("_BACKOVER_HANDLER")
    result_file = Path(os.environ.pop("_BACKOVER_RESULT_FILE"))
    request_id = os.environ.pop("_BACKOVER_REQUEST_ID")
    deadline_ms = float(os.environ.pop("_BACKOVER_DEADLINE_MS"))
    client_context = _decode_client_context(os.environ.pop("_BACKOVER_CLIENT_CONTEXT", ""))
    raw_event = sys.stdin.buffer.read()
    event = json.loads(raw_event) if raw_event.strip() else {}
    _configure_logging(request_id)
    context = LambdaContext(request_id, deadline_ms, client_context)
    os.environ.pop("_BACKOVER_FUNCTION_ARN", None)

    result: dict[str, Any]
    try:
        handler = _load_handler(handler_spec, Path.cwd())
    except HandlerLoadError as exc:
        result = {"error": _error(exc, exc.error_type, request_id)}
    else:
        try:
            value = handler(event, context)
        except Exception as exc:  # noqa: BLE001 - the handler's own error is the function's result
            result = {"error": _error(exc, type(exc).__name__, request_id)}
        else:
            try:
                result = {"payload": json.dumps(value)}
            except (TypeError, ValueError) as exc:
                result = {
                    "error": _error(
                        RuntimeError(f"Unable to marshal response: {exc}"), "Runtime.MarshalError", request_id
                    )
                }
    sys.stdout.flush()
    sys.stderr.flush()
    result["max_rss_mb"] = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024, 1)
    result_file.write_text(json.dumps(result), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(run())
