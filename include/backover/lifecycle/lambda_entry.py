"""What every lifecycle Lambda handler does: parse the event, run the step, return a small dict.

Errors are raised, never returned, so the Lambda reports a function error and Airflow's
``LambdaInvokeFunctionOperator`` fails the task. The ``errorType`` is one of :data:`ERROR_TYPES`
(a more specific Back Over error is raised again as the one of them it is): ``InvalidEvent``
(names the field, nothing changed), ``UsageError``, ``JobRefused``, ``RetentionTooShort`` (the
:data:`FINAL_ERROR_TYPES`: no retry changes them, so Airflow fails the task at once), ``JobFailed``
and ``CleanRefused`` (retried). A driver or AWS error is re-raised as ``JobFailed`` with its
one-line reason, without the chain. Neither a response nor a
log line ever holds a credential: URIs travel as :class:`~backover.connections.DatabaseUri`, and
the libraries that could log a secret at DEBUG (botocore logs response bodies, which include
``GetSecretValue``'s) are kept at WARNING whatever ``AWS_LAMBDA_LOG_LEVEL`` says.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from pymongo.errors import PyMongoError

from ..cleanup.guard import CleanRefused
from ..errors import BackoverError, JobFailed, JobRefused, Unreachable, UsageError
from ..state import RecordError
from .events import InvalidEvent, LifecycleEvent
from .results import ResultRecord
from .retention import RetentionTooShort

log = logging.getLogger(__name__)

#: A Lambda error's ``errorType``, most specific first: each Back Over error is raised as the first
#: of these it is an instance of (a malformed state record is a ``JobRefused``).
ERROR_TYPES: tuple[type[BackoverError], ...] = (
    InvalidEvent,
    RetentionTooShort,
    CleanRefused,
    UsageError,
    JobRefused,
    JobFailed,
)
#: The ``errorType`` s a retry cannot change (the event, the configuration, the migration's records):
#: Airflow fails the task at once. ``JobFailed`` (a database or AWS error, say) and ``CleanRefused``
#: (the restore may still be completing) are retried.
FINAL_ERROR_TYPES = ("InvalidEvent", "UsageError", "JobRefused", "RetentionTooShort")

#: Libraries whose DEBUG output may hold a secret or a whole response body.
QUIET_LOGGERS = ("botocore", "boto3", "urllib3", "s3transfer", "pymongo")


def configure_logging() -> None:
    """Back Over's progress lines at INFO; the chatty libraries at WARNING."""
    logging.getLogger("backover").setLevel(logging.INFO)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def invoke(step: Callable[[LifecycleEvent], ResultRecord], raw_event: Any) -> dict[str, Any]:
    """Parse ``raw_event``, run ``step`` on it and return its result as plain JSON values."""
    configure_logging()
    event = LifecycleEvent.from_dict(raw_event)
    log.info("%s: migration %s", step.__name__, event.migration_id)
    try:
        result = step(event)
    except BackoverError as e:
        raise documented(e) from None
    except PyMongoError as e:
        raise JobFailed(f"{step.__name__} failed on the database: {type(e).__name__}: {e}") from None
    except (BotoCoreError, ClientError) as e:
        raise JobFailed(f"{step.__name__} failed on AWS: {type(e).__name__}: {e}") from None
    return result.to_dict()


def documented(error: BackoverError) -> BackoverError:
    """``error`` as the first of :data:`ERROR_TYPES` it is (itself when it is one of them), with the
    same one-line message."""
    if isinstance(error, RecordError):
        return JobRefused(str(error))
    if isinstance(error, Unreachable):  # a timeout, a failover, throttling: a retry can help
        return JobFailed(str(error))
    for kind in ERROR_TYPES:
        if isinstance(error, kind):
            return error if type(error) is kind else kind(str(error))
    return JobFailed(str(error))
