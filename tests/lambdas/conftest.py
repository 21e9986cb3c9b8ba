"""Fixtures for the lifecycle Lambdas: handlers registered in the local runner, a source to act on.

Helpers and records live in ``lifecycle_world.py`` (a distinctive name, importable from the tests).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from lifecycle_world import FUNCTION_LOGGER, LAMBDAS, ROOT, LambdaWorld, Source, make_source, register


@pytest.fixture(scope="session")
def lambda_functions(runner: Any, moto_server: str) -> dict[str, str]:
    """Register the three handlers (test names, so the suite's other registrations are untouched).

    ``AWS_LAMBDA_LOG_LEVEL=DEBUG`` makes the secret checks strict: even at DEBUG no log line may
    hold a password.
    """
    names = {}
    for short in LAMBDAS:
        name = f"test-lifecycle-{short}"
        register(
            runner.url,
            name,
            {
                "handler": f"{ROOT / 'lambdas' / short / 'handler.py'}:handler",
                "timeout": 60,
                "environment": {
                    "AWS_ENDPOINT_URL": moto_server,
                    "AWS_ACCESS_KEY_ID": "testing",
                    "AWS_SECRET_ACCESS_KEY": "testing",
                    "AWS_DEFAULT_REGION": "us-east-1",
                    "AWS_LAMBDA_LOG_LEVEL": "DEBUG",
                },
            },
        )
        names[short] = name
    return names


class _Lines(logging.Handler):
    """Keeps every line the runner relays from a function's log."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__(logging.DEBUG)
        self.lines = lines

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def lambdas(runner: Any, lambda_functions: dict[str, str]) -> Iterator[LambdaWorld]:
    """Call the Lambdas; ``log_lines`` collects every line each invocation logged (not only the Tail)."""
    world = LambdaWorld(runner.url, lambda_functions)
    logger = logging.getLogger(FUNCTION_LOGGER)
    handler, level = _Lines(world.log_lines), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield world
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


@pytest.fixture
def source(
    standins: dict[str, Any], standin_password: str, bucket: str, moto_server: str
) -> Iterator[Source]:
    """The documentdb stand-in prepared for one test."""
    made = make_source("documentdb", standins, standin_password, bucket, moto_server)
    yield made
    # The stand-in is shared by the session: leave no cluster-wide change streams behind.
    made.root.admin.command("modifyChangeStreams", 1, database="", collection="", enable=False)
    made.root.close()
