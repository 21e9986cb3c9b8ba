"""Change streams and retention as the start step sees them, on both stand-in flavours."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from bson.timestamp import Timestamp
from pymongo import MongoClient

from backover.lifecycle import change_streams
from backover.lifecycle.results import RetentionCheck, StartResult
from backover.lifecycle.retention import ENV_HOURS, RetentionTooShort, ensure_retention, judge, read_retention
from backover.namespaces import Namespace


@pytest.fixture(params=["documentdb", "mongodb"])
def root(
    request: pytest.FixtureRequest, standins: dict[str, Any], standin_password: str
) -> Iterator[MongoClient]:
    server = standins[request.param]
    client = MongoClient(server.uri("root", standin_password), serverSelectionTimeoutMS=5000)
    client.flavour = request.param  # type: ignore[attr-defined]
    yield client
    client.close()


@pytest.fixture
def documentdb(standins: dict[str, Any], standin_password: str) -> Iterator[MongoClient]:
    client = MongoClient(standins["documentdb"].uri("root", standin_password), serverSelectionTimeoutMS=5000)
    yield client
    client.close()


def test_the_flavour_is_detected(root: MongoClient) -> None:
    assert change_streams.detect_flavour(root) == root.flavour  # type: ignore[attr-defined]


def test_mongodb_needs_no_enabling(standins: dict[str, Any], standin_password: str) -> None:
    with MongoClient(standins["mongodb"].uri("root", standin_password)) as client:
        assert change_streams.enable(client, "mongodb", [Namespace("shop")]) == []
        assert change_streams.disable(client, "mongodb", [Namespace("shop")]) == []


def test_enable_skips_what_is_covered_and_disable_touches_only_what_it_is_given(
    documentdb: MongoClient,
) -> None:
    tag = uuid.uuid4().hex[:8]
    whole, other = Namespace(f"cs{tag}_a"), Namespace(f"cs{tag}_b")
    inside = Namespace(whole.db, "orders")

    def mine() -> set[Namespace]:
        return {ns for ns in change_streams.list_enabled(documentdb) if ns.db.startswith(f"cs{tag}")}

    assert change_streams.enable(documentdb, "documentdb", [whole, other]) == [whole, other]
    assert change_streams.enable(documentdb, "documentdb", [inside, whole]) == []  # covered already
    assert mine() == {whole, other}
    assert change_streams.disable(documentdb, "documentdb", [other]) == [other]
    assert change_streams.disable(documentdb, "documentdb", [other]) == []  # idempotent
    assert mine() == {whole}
    change_streams.disable(documentdb, "documentdb", [whole])


@pytest.mark.parametrize(
    ("required", "available", "source", "ok", "says"),
    [
        pytest.param(None, 3.0, "documentdb-default", True, "not checked", id="not-asked"),
        pytest.param(24, 48, "event", True, "covers", id="covered"),
        pytest.param(24, 3.0, "documentdb-default", False, "was assumed", id="default-too-short"),
        pytest.param(24, 12, "environment", False, "raise the cluster parameter group", id="too-short"),
        pytest.param(24, None, "unknown", True, "not checked", id="mongodb-unknown"),
    ],
)
def test_retention_verdicts(
    required: float | None, available: float | None, source: str, ok: bool, says: str
) -> None:
    verdict = judge(required, available, source)
    assert verdict.ok is ok and says in verdict.note


def test_retention_reading_order(root: MongoClient, monkeypatch: pytest.MonkeyPatch) -> None:
    flavour = root.flavour  # type: ignore[attr-defined]
    monkeypatch.delenv(ENV_HOURS, raising=False)
    assert read_retention(root, flavour, 10) == (10, "event")
    expected = (3.0, "documentdb-default") if flavour == "documentdb" else (None, "unknown")
    assert read_retention(root, flavour, None) == expected  # the stand-ins answer no getParameter
    monkeypatch.setenv(ENV_HOURS, "168")
    assert read_retention(root, flavour, None) == (168.0, "environment")


def test_start_refuses_a_too_short_retention(
    documentdb: MongoClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ENV_HOURS, raising=False)
    with pytest.raises(RetentionTooShort, match="cannot cover the required 4 h"):
        ensure_retention(documentdb, "documentdb", 4, None)
    assert ensure_retention(documentdb, "documentdb", 2, None).ok


def test_results_are_plain_json() -> None:
    result = StartResult(
        "m",
        "documentdb",
        Timestamp(1764270000, 3),
        "app",
        ["shop"],
        [Namespace("shop", "o")],
        [],
        [Namespace("shop")],
        RetentionCheck(None, None, "unknown", True, "n"),
        False,
        "k",
    )
    doc = json.loads(json.dumps(result.to_dict()))
    assert doc["t0"] == "1764270000:3" and doc["namespaces"] == ["shop.o"] and doc["retention"]["ok"] is True
