"""Fixtures for the Airflow plugin tests: a migration folder in moto and the environment Variable.

Airflow is imported only inside tests and fixtures that depend on ``airflow_home``.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from migration_states import PREFIX, Migration

from backover.layout import MigrationLayout
from backover.s3objects import S3Objects


@pytest.fixture
def migration(bucket: str) -> Migration:
    """A fresh migration folder in a fresh moto bucket (boto3's default clients go to moto)."""
    layout = MigrationLayout(bucket=bucket, prefix=PREFIX, migration_id=f"mig-{uuid.uuid4().hex[:8]}")
    return Migration(layout=layout, s3=S3Objects(bucket))


@pytest.fixture
def set_environment(monkeypatch: pytest.MonkeyPatch):
    """``set_environment(doc, name="backover")``: define the environment Variable (``AIRFLOW_VAR_*``)."""

    def define(doc: dict[str, Any], name: str = "backover") -> None:
        monkeypatch.setenv(f"AIRFLOW_VAR_{name.upper()}", json.dumps(doc))

    return define
