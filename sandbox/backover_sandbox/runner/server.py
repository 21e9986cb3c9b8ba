"""The local AWS runner's HTTP server: Lambda ``Invoke`` and SSM Run Command on one loopback port.

Point boto3 at it with ``AWS_ENDPOINT_URL_LAMBDA`` / ``AWS_ENDPOINT_URL_SSM`` (or an Airflow AWS
connection's ``extra.service_config``). Routes:

* ``/2015-03-31/functions/...``: Lambda (see ``lambda_api.py``), errors in rest-json;
* ``POST /`` with ``X-Amz-Target: AmazonSSM.*``: SSM (see ``ssm_api.py``), errors in JSON 1.1;
* ``GET /_runner/health``: 200 ``{"status": "ok"}``;
* ``/_runner/functions[/{name}]``: the function registry's admin endpoints.

Run it with ``python -m backover_sandbox.runner --port 4599 --registry lambdas.json
--ec2-endpoint http://127.0.0.1:5000 --workdir .``. One log line per request, never a body. A
command sent with ``CloudWatchOutputConfig`` writes its output to CloudWatch Logs at
``--logs-endpoint`` (default ``$AWS_ENDPOINT_URL_LOGS``, ``$AWS_ENDPOINT_URL``, else the EC2
endpoint: moto serves both in the sandbox).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from urllib.parse import parse_qsl, urlsplit

from .cloudwatch import CloudWatchLogs
from .ec2_check import InstanceChecker
from .lambda_api import LambdaService
from .procs import ProcessTracker
from .protocol import (
    AwsError,
    Request,
    Response,
    json_error,
    json_response,
    region_from_authorization,
    rest_json_error,
)
from .registry import FunctionRegistry, RegistryError
from .ssm_api import SsmService
from .ssm_commands import CommandStore

log = logging.getLogger(__name__)

DEFAULT_ACCOUNT_ID = "123456789012"  # moto's default account
MAX_BODY = 7 * 1024 * 1024


@dataclass
class RunnerConfig:
    """Settings of one runner."""

    host: str = "127.0.0.1"
    port: int = 0
    registry: Path | None = None
    ec2_endpoint: str | None = None
    workdir: Path = field(default_factory=Path.cwd)
    account_id: str = DEFAULT_ACCOUNT_ID
    region: str = "us-east-1"
    #: CloudWatch Logs for commands' output (:func:`resolve_logs_endpoint`); None: the EC2 endpoint's.
    logs_endpoint: str | None = None


def resolve_logs_endpoint(explicit: str | None, ec2_endpoint: str | None) -> str | None:
    """Where commands' output goes: ``explicit``, else boto3's own ``AWS_ENDPOINT_URL_LOGS`` /
    ``AWS_ENDPOINT_URL``, else the EC2 endpoint (moto's server serves CloudWatch Logs too)."""
    return (
        explicit
        or os.environ.get("AWS_ENDPOINT_URL_LOGS")
        or os.environ.get("AWS_ENDPOINT_URL")
        or ec2_endpoint
    )


class RunnerServer(ThreadingHTTPServer):
    """A threading HTTP server that owns the Lambda and SSM services."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, config: RunnerConfig) -> None:
        self.config = config
        self.tracker = ProcessTracker()
        workdir = config.workdir.resolve()
        self.registry = FunctionRegistry(base_dir=workdir)
        if config.registry is not None:
            count = self.registry.load_file(config.registry)
            log.info("loaded %d function(s) from %s", count, config.registry)
        self.lambda_service = LambdaService(
            self.registry, self.tracker, account_id=config.account_id, default_region=config.region
        )
        self.ssm_service = SsmService(
            CommandStore(
                self.tracker, CloudWatchLogs(resolve_logs_endpoint(config.logs_endpoint, config.ec2_endpoint))
            ),
            InstanceChecker(config.ec2_endpoint, config.account_id),
            workdir,
        )
        if config.ec2_endpoint is None:
            log.warning("no EC2 endpoint: SendCommand checks instance id format only")
        self._serving = threading.Event()
        self._stopped = False
        super().__init__((config.host, config.port), RunnerRequestHandler)

    @property
    def port(self) -> int:
        """The TCP port the server listens on."""
        return int(self.server_address[1])

    @property
    def url(self) -> str:
        """The base URL to use as a boto3 ``endpoint_url``."""
        return f"http://{self.config.host}:{self.port}"

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        """Serve until :meth:`shutdown` (see :class:`socketserver.BaseServer`)."""
        self._serving.set()
        try:
            super().serve_forever(poll_interval)
        finally:
            self._serving.clear()

    def wait_serving(self, timeout: float) -> bool:
        """Wait until :meth:`serve_forever` runs; return whether it does."""
        return self._serving.wait(timeout)

    def stop(self) -> None:
        """Stop serving, close the socket and kill every child process group (idempotent)."""
        if self._stopped:
            return
        self._stopped = True
        if self._serving.is_set():
            self.shutdown()
        self.server_close()
        self.tracker.kill_all()
        log.info("runner stopped")

    def route(self, request: Request) -> tuple[Response, str]:
        """Answer ``request``; return the response and a label for the log line."""
        region = region_from_authorization(request.header("Authorization"), self.config.region)
        if request.path == "/_runner/health":
            return json_response({"status": "ok"}, content_type="application/json"), "health"
        if self.lambda_service.handles(request.path):
            label = "admin" if request.path.startswith("/_runner/") else "Lambda"
            try:
                return self.lambda_service.handle(request, region), label
            except AwsError as exc:
                return rest_json_error(exc), f"{label} {exc.code}"
        if SsmService.handles(request):
            label = SsmService.operation_name(request)
            try:
                return self.ssm_service.handle(request, region), f"SSM {label}"
            except AwsError as exc:
                return json_error(exc), f"SSM {label} {exc.code}"
        if request.header("X-Amz-Target"):
            error = AwsError(
                "UnknownOperationException", f"{request.header('X-Amz-Target')} is not served here"
            )
            return json_error(error), "unknown"
        error = AwsError(
            "UnknownOperationException", f"{request.method} {request.path} is not served here", 404
        )
        return rest_json_error(error), "unknown"


class RunnerRequestHandler(BaseHTTPRequestHandler):
    """Reads one request, hands it to :meth:`RunnerServer.route`, writes the response."""

    protocol_version = "HTTP/1.1"
    server: RunnerServer
    server_version = "BackOverRunner/1.0"

    def do_GET(self) -> None:
        """Handle GET."""
        self._dispatch()

    def do_POST(self) -> None:
        """Handle POST."""
        self._dispatch()

    def do_PUT(self) -> None:
        """Handle PUT."""
        self._dispatch()

    def do_DELETE(self) -> None:
        """Handle DELETE."""
        self._dispatch()

    def _read_body(self) -> bytes | None:
        """Read the request body (Content-Length or chunked); None if it is too large."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            total = 0
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                total += size
                if total > MAX_BODY:
                    return None
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            return None
        return self.rfile.read(length) if length else b""

    def _dispatch(self) -> None:
        started = time.monotonic()
        parts = urlsplit(self.path)
        body = self._read_body()
        if body is None:
            error = AwsError("RequestTooLargeException", "Request must be smaller than 6291456 bytes", 413)
            response, label = rest_json_error(error), "too large"
            self.close_connection = True
        else:
            request = Request(
                method=self.command,
                path=parts.path,
                query=dict(parse_qsl(parts.query)),
                headers={key.lower(): value for key, value in self.headers.items()},
                body=body,
            )
            try:
                response, label = self.server.route(request)
            except Exception:
                log.exception("error while handling %s %s", self.command, parts.path)
                error = AwsError(
                    "InternalServerError", "internal error in the local runner", 500, error_type="Service"
                )
                response = json_error(error) if self.headers.get("X-Amz-Target") else rest_json_error(error)
                label = "error"
        self._send(response)
        log.info(
            "%s %s %s -> %d (%.1f ms)",
            self.command,
            parts.path,
            label,
            response.status,
            (time.monotonic() - started) * 1000,
        )

    def _send(self, response: Response) -> None:
        self.send_response(response.status)
        if response.body or response.status not in (204, 304):
            self.send_header("Content-Type", response.content_type)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if response.body:
            self.wfile.write(response.body)

    def log_message(self, format: str, *args: object) -> None:
        """Route http.server's own messages (errors only; requests are logged by ``_dispatch``)."""
        log.debug(format, *args)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Silence http.server's per-request line: ``_dispatch`` logs its own."""


def start_in_thread(
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    registry: Path | None = None,
    ec2_endpoint: str | None = None,
    workdir: Path | None = None,
    account_id: str = DEFAULT_ACCOUNT_ID,
    region: str = "us-east-1",
    logs_endpoint: str | None = None,
) -> tuple[RunnerServer, int]:
    """Start a runner serving in a daemon thread; return it and its port (``port=0`` picks one).

    Stop it with ``server.stop()``.
    """
    config = RunnerConfig(
        host=host,
        port=port,
        registry=registry,
        ec2_endpoint=ec2_endpoint,
        workdir=workdir or Path.cwd(),
        account_id=account_id,
        region=region,
        logs_endpoint=logs_endpoint,
    )
    server = RunnerServer(config)
    thread = threading.Thread(target=server.serve_forever, name="backover-runner", daemon=True)
    thread.start()
    server.wait_serving(5)
    return server, server.port


def build_parser() -> argparse.ArgumentParser:
    """Return the command-line parser of ``python -m backover_sandbox.runner``."""
    parser = argparse.ArgumentParser(
        prog="python -m backover_sandbox.runner",
        description="Local AWS runner: Lambda Invoke and SSM Run Command on loopback.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (default 0: pick a free one)")
    parser.add_argument("--registry", type=Path, help="JSON function registry file")
    parser.add_argument(
        "--ec2-endpoint",
        default=os.environ.get("AWS_ENDPOINT_URL_EC2") or os.environ.get("AWS_ENDPOINT_URL"),
        help="EC2 endpoint (moto) used to check SSM instance ids (default $AWS_ENDPOINT_URL_EC2)",
    )
    parser.add_argument(
        "--logs-endpoint",
        help="CloudWatch Logs endpoint for commands' output (default $AWS_ENDPOINT_URL_LOGS, "
        "$AWS_ENDPOINT_URL, else the EC2 endpoint)",
    )
    parser.add_argument("--workdir", type=Path, default=Path.cwd(), help="default SSM working directory")
    parser.add_argument("--account-id", default=DEFAULT_ACCOUNT_ID, help="account id used in ARNs")
    parser.add_argument(
        "--region",
        default=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
        help="region when a request does not name one",
    )
    parser.add_argument("--port-file", type=Path, help="write the chosen port to this file once listening")
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the runner until SIGTERM or SIGINT; return the exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    config = RunnerConfig(
        host=args.host,
        port=args.port,
        registry=args.registry,
        ec2_endpoint=args.ec2_endpoint,
        workdir=args.workdir,
        account_id=args.account_id,
        region=args.region,
        logs_endpoint=args.logs_endpoint,
    )
    try:
        server = RunnerServer(config)
    except (RegistryError, OSError) as exc:
        log.error("cannot start the runner: %s", exc)
        return 2

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("received %s, stopping", signal.Signals(signum).name)
        threading.Thread(target=server.shutdown, name="runner-shutdown", daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if args.port_file is not None:
        args.port_file.write_text(f"{server.port}\n", encoding="utf-8")
    log.info("runner listening on %s", server.url)
    try:
        server.serve_forever()
    finally:
        server.stop()
    return 0
