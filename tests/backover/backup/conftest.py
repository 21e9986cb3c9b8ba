"""Fixtures for the backup tests (helpers in ``backup_world``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from backup_world import World, make_world


@pytest.fixture
def world(standins: dict[str, Any], standin_password: str, bucket: str) -> Iterator[World]:
    made = make_world(standins, standin_password, bucket)
    yield made
    made.source.drop_database(made.db)
    made.target.drop_database(made.db)
    made.source.close()
    made.target.close()
