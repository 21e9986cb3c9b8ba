"""Fixtures for the backup tests (helpers in ``backup_world``).

The consistent-backup tests capture with the real replicator and compare databases with the
helpers of the replication and restore tests (``replicate_testkit``, ``restore_streams``): their
folders are put on ``sys.path`` here so those helpers are reused, not copied.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from backup_world import World, make_world

for _folder in ("replication", "restore"):
    _path = str(Path(__file__).resolve().parent.parent / _folder)
    if _path not in sys.path:
        sys.path.append(_path)


@pytest.fixture
def world(standins: dict[str, Any], standin_password: str, bucket: str) -> Iterator[World]:
    made = make_world(standins, standin_password, bucket)
    yield made
    made.source.drop_database(made.db)
    made.target.drop_database(made.db)
    made.source.close()
    made.target.close()
