"""Wire helpers shared by the runner's APIs: responses, AWS errors and timestamps.

Two AWS protocols are spoken here, and botocore reads their errors differently:

* ``rest-json`` (Lambda): the error code comes from the ``x-amzn-ErrorType`` header (anything
  after a ``:`` is ignored), the message from the body's ``message``/``Message``.
* ``json`` (SSM, ``application/x-amz-json-1.1``): the error code comes from the body's
  ``__type`` (anything before a ``#`` is ignored), the message from ``message``/``Message``.

Handlers raise :class:`AwsError`; the server turns it into the right shape for the API.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

JSON_11 = "application/x-amz-json-1.1"
REST_JSON = "application/json"


@dataclass
class Response:
    """An HTTP response to send: status, extra headers and body bytes."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = REST_JSON


class AwsError(Exception):
    """An error to return to the client the way the AWS service would.

    :param code: the AWS error code botocore puts in ``Error.Code`` (e.g. ``InvalidInstanceId``).
    :param message: the human-readable message (``Error.Message``).
    :param status: the HTTP status code.
    :param error_type: Lambda's ``Type`` body field (``User`` or ``Service``).
    """

    def __init__(self, code: str, message: str = "", status: int = 400, *, error_type: str = "User") -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.message = message
        self.status = status
        self.error_type = error_type


def new_request_id() -> str:
    """Return a fresh request id in AWS's UUID form."""
    return str(uuid.uuid4())


def json_response(document: dict[str, Any], status: int = 200, *, content_type: str = JSON_11) -> Response:
    """Return ``document`` as a JSON response."""
    return Response(status=status, body=json.dumps(document).encode(), content_type=content_type)


def rest_json_error(error: AwsError) -> Response:
    """Render ``error`` for a rest-json service (Lambda)."""
    body = {"Type": error.error_type, "message": error.message}
    return Response(
        status=error.status,
        body=json.dumps(body).encode(),
        headers={"x-amzn-ErrorType": f"{error.code}:"},
        content_type=REST_JSON,
    )


def json_error(error: AwsError) -> Response:
    """Render ``error`` for a json-protocol service (SSM)."""
    body: dict[str, Any] = {"__type": error.code}
    if error.message:
        body["Message"] = error.message
    return Response(status=error.status, body=json.dumps(body).encode(), content_type=JSON_11)


def utc_now() -> datetime:
    """Return the current time, timezone-aware in UTC."""
    return datetime.now(UTC)


def iso_millis(moment: datetime | None) -> str:
    """Format ``moment`` like SSM's string timestamps (``2023-05-07T22:13:33.797Z``); ``""`` for None."""
    if moment is None:
        return ""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def iso_duration(seconds: float) -> str:
    """Format an elapsed time as an ISO 8601 duration the way SSM does (``PT1H0.271S``, ``PT0.05S``)."""
    seconds = max(seconds, 0.0)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = "PT"
    if hours >= 1:
        text += f"{int(hours)}H"
    if minutes >= 1:
        text += f"{int(minutes)}M"
    secs_text = f"{secs:.3f}".rstrip("0").rstrip(".")
    return f"{text}{secs_text or '0'}S"


def region_from_authorization(header: str | None, default: str) -> str:
    """Return the region of a SigV4 ``Authorization`` header's credential scope, else ``default``.

    ``AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/ssm/aws4_request, ...`` gives ``us-east-1``.
    """
    if not header or "Credential=" not in header:
        return default
    scope = header.split("Credential=", 1)[1].split(",", 1)[0].strip()
    parts = scope.split("/")
    return parts[2] if len(parts) >= 5 and parts[2] else default


@dataclass
class Request:
    """An HTTP request as the runner's APIs see it (header names lower-cased)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def header(self, name: str, default: str = "") -> str:
        """Return header ``name`` (any case), or ``default``."""
        return self.headers.get(name.lower(), default)
