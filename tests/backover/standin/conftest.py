"""Conformance targets: both stand-in flavours, and real servers when given.

Every conformance test runs against each target. ``BACKOVER_TEST_MONGODB_URI`` /
``BACKOVER_TEST_DOCUMENTDB_URI`` (a user with ``root``) add a real MongoDB / DocumentDB; without
them those targets are reported as skipped in the summary, never hidden. The stand-ins themselves
come from the suite-wide ``standins`` fixture (tests/conftest.py).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from pymongo import MongoClient


@dataclass
class Target:
    """A server under test and how to reach it."""

    name: str
    flavour: str  # documentdb or mongodb
    uri: str
    standin: Any = None

    def client(self, **kwargs: Any) -> MongoClient:
        options: dict[str, Any] = {"serverSelectionTimeoutMS": 5000}
        if self.flavour == "documentdb":
            options["retryWrites"] = False
        options.update(kwargs)
        return MongoClient(self.uri, **options)


TARGETS = [
    pytest.param("standin-mongodb", id="standin-mongodb"),
    pytest.param("standin-documentdb", id="standin-documentdb"),
    pytest.param("real-mongodb", id="real-mongodb"),
    pytest.param("real-documentdb", id="real-documentdb"),
]


@pytest.fixture(params=TARGETS)
def target(request: pytest.FixtureRequest) -> Target:
    name = request.param
    flavour = name.split("-", 1)[1]
    if name.startswith("standin-"):
        server = request.getfixturevalue("standins")[flavour]
        password = request.getfixturevalue("standin_password")
        return Target(name, flavour, server.uri("root", password), server)
    uri = os.environ.get(f"BACKOVER_TEST_{flavour.upper()}_URI")
    if not uri:
        pytest.skip(f"BACKOVER_TEST_{flavour.upper()}_URI not set: no real {flavour} to run against")
    return Target(name, flavour, uri)


@pytest.fixture
def client(target: Target) -> Iterator[MongoClient]:
    with target.client() as c:
        yield c


@pytest.fixture
def db_name(client: MongoClient) -> Iterator[str]:
    """A fresh database name, dropped after the test."""
    name = f"t_{uuid.uuid4().hex[:10]}"
    yield name
    client.drop_database(name)
