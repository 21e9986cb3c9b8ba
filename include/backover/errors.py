"""Errors every ``backover`` job raises; the command line maps them to exit statuses."""

from __future__ import annotations


class BackoverError(Exception):
    """A job could not do what was asked; ``str(e)`` is one line for the user (never a secret)."""

    exit_code = 1


class UsageError(BackoverError):
    """Bad usage or configuration: wrong option, unreachable bucket, bad credentials (exit 2)."""

    exit_code = 2


class Unreachable(UsageError):
    """A database or AWS service could not be reached, or answered with a server-side error
    (a timeout, a failover, throttling, a 5xx): exit 2 on the command line as any connection
    problem, but retried where a retry can help (a Lambda's ``errorType`` is ``JobFailed``, an
    Airflow preflight task is retried)."""


class JobFailed(BackoverError):
    """The job ran and failed, or verification found differences (exit 1)."""

    exit_code = 1


class JobRefused(JobFailed):
    """The job ran and refuses to go on: the migration's records or the source are in a state no
    retry changes (a recorded T0 the change streams no longer reach, say); exit 1. A Lambda error
    of this type is not retried by Airflow."""


#: AWS error codes of a throttled or failing service: a retry can help (anything else is the
#: request's own fault: a missing bucket, a denied action, a bad name).
TRANSIENT_AWS_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "SlowDown",
        "InternalError",
        "InternalFailure",
        "InternalServiceError",
        "InternalServerError",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)


def is_transient(error: Exception) -> bool:
    """True for a botocore ``ClientError`` of a throttled or failing service (its code in
    :data:`TRANSIENT_AWS_CODES`, or an HTTP status of 500 and above)."""
    response = getattr(error, "response", None) or {}
    code = str(response.get("Error", {}).get("Code", ""))
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code in TRANSIENT_AWS_CODES or (isinstance(status, int) and status >= 500) or code[:1] == "5"
