"""``backover verify`` against the stand-ins: identical sides pass; one changed byte, a missing and an
extra document, and a differing index are each found, reported in S3 and in the exit status."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from bson import Decimal128, Int64, ObjectId
from bson.raw_bson import RawBSONDocument
from pymongo import MongoClient

from backover.connections import DatabaseUri
from backover.layout import MigrationLayout
from backover.namespaces import Namespace
from backover.s3objects import S3Objects
from backover.verify import VerifyConfig, run_verify
from backover_sandbox.standin.server import ServerConfig, start_in_thread


@dataclass
class Pair:
    source: MongoClient
    target: MongoClient
    source_uri: str
    target_uri: str
    db: str


@pytest.fixture
def pair(standins: dict[str, Any], standin_password: str) -> Iterator[Pair]:
    source_uri = standins["documentdb"].uri("root", standin_password)
    target_uri = standins["mongodb"].uri("root", standin_password)
    db = f"v_{uuid.uuid4().hex[:10]}"
    with MongoClient(source_uri) as source, MongoClient(target_uri) as target:
        yield Pair(source, target, source_uri, target_uri, db)
        source.drop_database(db)
        target.drop_database(db)


def both(pair: Pair, coll: str, docs: list[dict]) -> None:
    for client in (pair.source, pair.target):
        client[pair.db][coll].insert_many([dict(d) for d in docs])


def verify(pair: Pair, bucket: str, **options: Any):
    layout = MigrationLayout(bucket, "backover", "m-verify")
    config = VerifyConfig(
        layout=layout,
        source=DatabaseUri(pair.source_uri, documentdb=True),
        target=DatabaseUri(pair.target_uri),
        namespaces=(Namespace(pair.db),),
        **options,
    )
    report = run_verify(config)
    return report, S3Objects(bucket).get_json(layout.verify_report)


DOCS = [
    {"_id": i, "name": f"user {i}", "n": Int64(i), "price": Decimal128("1.10"), "tags": ["a", i]}
    for i in range(50)
] + [{"_id": ObjectId(), "x": 1}, {"_id": "text-id", "y": None}, {"_id": 2.5, "z": 1}]


def test_identical_sides_are_reported_identical(pair, bucket) -> None:
    both(pair, "users", DOCS)
    both(pair, "empty_on_both", [{"_id": 1}])
    for client in (pair.source, pair.target):
        client[pair.db].users.create_index([("name", 1), ("n", -1)], sparse=True)
        client[pair.db].empty_on_both.delete_many({})
    report, stored = verify(pair, bucket, batch_size=7)
    assert report.identical and stored["identical"] is True
    users = stored["namespaces"][f"{pair.db}.users"]
    assert users["source_count"] == users["target_count"] == len(DOCS)
    assert (users["missing"], users["extra"], users["different"], users["indexes_identical"]) == (
        0,
        0,
        0,
        True,
    )
    assert stored["namespaces"][f"{pair.db}.empty_on_both"]["source_count"] == 0


def test_one_changed_byte_a_missing_and_an_extra_document_and_an_index_are_found(pair, bucket) -> None:
    both(pair, "users", DOCS)
    pair.source[pair.db].users.create_index("name", unique=True, sparse=True)
    pair.target[pair.db].users.create_index("name", sparse=True)  # not unique on the target
    raw = pair.target[pair.db].users.find_one({"_id": 7}, projection=None)
    changed = {**raw, "name": "user 6"}  # was "user 7": one byte
    assert sum(a != b for a, b in zip("user 7", changed["name"], strict=True)) == 1
    pair.target[pair.db].users.replace_one({"_id": 7}, changed)
    pair.target[pair.db].users.update_one({"_id": 9}, {"$set": {"n": 9}})  # Int64 -> Int32: same value
    pair.target[pair.db].users.delete_one({"_id": 3})
    pair.target[pair.db].users.insert_one({"_id": 1000, "extra": True})

    report, stored = verify(pair, bucket, batch_size=5, examples=3)
    assert not report.identical and stored["identical"] is False
    users = stored["namespaces"][f"{pair.db}.users"]
    assert (users["missing"], users["extra"], users["different"]) == (1, 1, 2)
    assert users["first_differences"] == [
        {"_id": 3, "kind": "missing"},
        {"_id": 7, "kind": "different", "field": "name"},
        {"_id": 9, "kind": "different", "field": "n"},
    ]
    assert users["source_count"] == len(DOCS) and users["target_count"] == len(DOCS)
    assert users["indexes_identical"] is False
    (index,) = users["index_differences"]
    assert index["name"] == "name_1" and index["source"]["unique"] is True and "unique" not in index["target"]


def test_a_collection_only_on_one_side_is_all_missing(pair, bucket) -> None:
    pair.source[pair.db].only_source.insert_many([{"_id": i} for i in range(3)])
    pair.target[pair.db].only_target.insert_one({"_id": 1})
    report, stored = verify(pair, bucket)
    assert report.differing == [f"{pair.db}.only_source", f"{pair.db}.only_target"]
    assert stored["namespaces"][f"{pair.db}.only_source"]["missing"] == 3
    assert stored["namespaces"][f"{pair.db}.only_target"]["extra"] == 1


def test_field_order_and_decimal_scale_are_differences(pair, bucket) -> None:
    pair.source[pair.db].c.insert_many([{"_id": 1, "a": 1, "b": 2}, {"_id": 2, "d": Decimal128("1.0")}])
    pair.target[pair.db].c.insert_many([{"_id": 1, "b": 2, "a": 1}, {"_id": 2, "d": Decimal128("1.00")}])
    report, stored = verify(pair, bucket)
    c = stored["namespaces"][f"{pair.db}.c"]
    assert c["different"] == 2
    assert [d["field"] for d in c["first_differences"]] == ["(field order)", "d"]


@pytest.fixture
def private_servers() -> Iterator[tuple[str, str]]:
    """Two stand-ins of its own: the default (every database) must not see other tests' data."""
    servers = [start_in_thread(ServerConfig(flavour=f, auth=False)) for f in ("documentdb", "mongodb")]
    yield tuple(f"mongodb://127.0.0.1:{s.port}/?directConnection=true&retryWrites=false" for s in servers)
    for server in servers:
        server.stop()


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "backover", "verify", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


@pytest.mark.slow  # runs the backover command line
def test_cli_exit_status_follows_the_verdict_and_the_default_covers_every_database(
    private_servers, bucket, aws_endpoints
) -> None:
    import os

    source_uri, target_uri = private_servers
    with MongoClient(source_uri) as source, MongoClient(target_uri) as target:
        for client in (source, target):
            client.app.users.insert_many([{"_id": i} for i in range(10)])
            client.billing.invoices.insert_one({"_id": 1, "total": Decimal128("9.99")})
        env = {
            **os.environ,
            "BACKOVER_SOURCE_URI": source_uri,
            "BACKOVER_TARGET_URI": target_uri,
            "BACKOVER_BUCKET": bucket,
            "BACKOVER_MIGRATION_ID": "m-cli",
        }
        ok = run_cli(env=env)
        assert ok.returncode == 0, ok.stderr
        assert json.loads(ok.stdout) == {
            "differing": [],
            "documents_at_freeze": None,
            "identical": True,
            "mode": "full",
            "namespaces": 2,
        }
        assert "verify: identical: 2 namespace(s), 11 source documents" in ok.stderr

        target.billing.invoices.update_one({"_id": 1}, {"$set": {"total": Decimal128("9.990")}})
        bad = run_cli(env=env)
        assert bad.returncode == 1
        assert (
            bad.stderr.strip().splitlines()[-1]
            == "backover verify: DIFFERENCES in 1 of 2 namespace(s): billing.invoices"
        )
        report = S3Objects(bucket).get_json(MigrationLayout(bucket, "backover", "m-cli").verify_report)
        assert report["namespaces"]["billing.invoices"]["different"] == 1


def test_raw_documents_are_never_decoded_for_equal_ids() -> None:
    """The merge compares bytes: identical streams are matched without decoding a document."""
    import bson

    from backover.verify.merge import merge

    docs = [bson.encode({"_id": i, "v": RawBSONDocument(bson.encode({"deep": i}))}) for i in range(1000)]
    result = merge(iter(docs), iter(list(docs)))
    assert result.identical and result.source_count == result.target_count == 1000


def test_memory_stays_flat_whatever_the_collection_size() -> None:
    """The merge holds one document per side: 5,000 or 25,000 documents peak alike."""
    import tracemalloc

    import bson

    from backover.verify.merge import merge

    def side(n: int, skip: int):
        return (bson.encode({"_id": i, "pad": "x" * 200}) for i in range(n) if i != skip)

    peaks = []
    for n in (5_000, 25_000):
        tracemalloc.start()
        result = merge(side(n, skip=-1), side(n, skip=n // 2))
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert (result.missing, result.extra, result.source_count) == (1, 0, n)
    assert peaks[1] < 2 * peaks[0] and peaks[1] < 1_000_000


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param(
            ["--namespace", "bad$db"],
            "not a namespace 'bad$db': write a database 'shop' or a collection 'shop.orders'",
            id="namespace",
        ),
        pytest.param(["--batch-size", "0"], "--batch-size must be at least 1", id="batch"),
        pytest.param(
            ["--source-uri", ""], "no source: pass --source-uri or --source-secret-id", id="no-source"
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv, message, capsys, monkeypatch) -> None:
    from backover.cli import main

    for name, value in (
        ("BACKOVER_BUCKET", "bkt"),
        ("BACKOVER_MIGRATION_ID", "m-1"),
        ("BACKOVER_SOURCE_URI", "mongodb://source"),
        ("BACKOVER_TARGET_URI", "mongodb://target"),
    ):
        monkeypatch.setenv(name, value)
    assert main(["verify", *argv]) == 2
    assert capsys.readouterr().err.strip() == f"backover verify: {message}"
