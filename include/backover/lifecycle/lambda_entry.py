"""What every lifecycle Lambda handler does: parse the event, run the step, return a small dict.

Errors are raised, never returned, so the Lambda reports a function error and Airflow's
``LambdaInvokeFunctionOperator`` fails the task: ``InvalidEvent`` (names the field, nothing
changed), ``UsageError``, ``JobFailed``, ``RetentionTooShort``, ``CleanRefused``. A driver error is
re-raised as ``JobFailed`` with its one-line reason, without the chain. Neither a response nor a
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

from ..errors import JobFailed
from .events import LifecycleEvent
from .results import ResultRecord

log = logging.getLogger(__name__)

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
    except PyMongoError as e:
        raise JobFailed(f"{step.__name__} failed on the database: {type(e).__name__}: {e}") from None
    except (BotoCoreError, ClientError) as e:
        raise JobFailed(f"{step.__name__} failed on AWS: {type(e).__name__}: {e}") from None
    return result.to_dict()
