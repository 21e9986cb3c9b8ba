"""Servers for the conformance tests: both stand-in flavours, and real servers when given.

Every conformance test runs against each target. ``BACKOVER_TEST_MONGODB_URI`` /
``BACKOVER_TEST_DOCUMENTDB_URI`` (a user with ``root``) add a real MongoDB / DocumentDB; without
them those targets are reported as skipped in the summary, never hidden.
"""

from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from pymongo import MongoClient

from backover.standin.server import ServerConfig, StandinServer, start_in_thread

ROOT_USER = "root"


@dataclass
class Target:
    """A server under test and how to reach it."""

    name: str
    flavour: str  # documentdb or mongodb
    uri: str
    standin: StandinServer | None = None

    def client(self, **kwargs) -> MongoClient:
        options = {"serverSelectionTimeoutMS": 5000}
        if self.flavour == "documentdb":
            options["retryWrites"] = False
        options.update(kwargs)
        return MongoClient(self.uri, **options)


def standin_uri(server: StandinServer, password: str) -> str:
    return f"mongodb://{ROOT_USER}:{password}@127.0.0.1:{server.port}/?authSource=admin&directConnection=true"


@pytest.fixture(scope="session")
def standin_password() -> str:
    return secrets.token_urlsafe(12)


@pytest.fixture(scope="session")
def standins(standin_password: str) -> Iterator[dict[str, StandinServer]]:
    servers = {
        flavour: start_in_thread(ServerConfig(flavour=flavour, root_user=ROOT_USER, root_password=standin_password))
        for flavour in ("mongodb", "documentdb")
    }
    yield servers
    for server in servers.values():
        server.stop()


TARGETS = [
    pytest.param("standin-mongodb", id="standin-mongodb"),
    pytest.param("standin-documentdb", id="standin-documentdb"),
    pytest.param("real-mongodb", id="real-mongodb"),
    pytest.param("real-documentdb", id="real-documentdb"),
]


@pytest.fixture(params=TARGETS)
def target(request: pytest.FixtureRequest) -> Target:
    name = request.param
    if name.startswith("standin-"):
        flavour = name.removeprefix("standin-")
        servers = request.getfixturevalue("standins")
        password = request.getfixturevalue("standin_password")
        return Target(name, flavour, standin_uri(servers[flavour], password), servers[flavour])
    flavour = name.removeprefix("real-")
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
