"""Verify's progress lines say how far the comparison is: documents compared of the source's
estimate, percent, documents/s and ETA (the restore's and the copy's lines have the same shape)."""

from __future__ import annotations

import logging
import re
import uuid
from typing import Any

import pytest
from pymongo import MongoClient

from backover.connections import DatabaseUri
from backover.layout import MigrationLayout
from backover.namespaces import Namespace
from backover.verify import VerifyConfig, run_verify


def test_a_full_verify_says_how_much_of_the_source_is_compared_and_how_long_is_left(
    standins: dict[str, Any], standin_password: str, bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    source_uri = standins["documentdb"].uri("root", standin_password)
    target_uri = standins["mongodb"].uri("root", standin_password)
    db = f"vp_{uuid.uuid4().hex[:10]}"
    with MongoClient(source_uri) as source, MongoClient(target_uri) as target:
        try:
            for client in (source, target):
                client[db].orders.insert_many([{"_id": i, "n": i} for i in range(60)])
                client[db].users.insert_many([{"_id": i} for i in range(40)])
            config = VerifyConfig(
                layout=MigrationLayout(bucket, "backover", "m-verify-progress"),
                source=DatabaseUri(source_uri, documentdb=True),
                target=DatabaseUri(target_uri),
                namespaces=(Namespace(db),),
                batch_size=10,
                progress_seconds=1e-9,
            )
            with caplog.at_level(logging.INFO, logger="backover.verify"):
                assert run_verify(config).identical
        finally:
            source.drop_database(db)
            target.drop_database(db)
    lines = [m for m in caplog.messages if m.startswith("verify: compared ")]
    assert lines, caplog.messages
    shape = re.compile(
        r"verify: compared ([\d,]+)/100 documents \((\d+\.\d)%\), [\d,]+ documents/s, ETA \S+; now "
        + re.escape(db)
        + r"\.(orders|users)"
    )
    assert all(shape.fullmatch(line) for line in lines), lines
    done = [int(shape.fullmatch(line).group(1).replace(",", "")) for line in lines]  # type: ignore[union-attr]
    assert done == sorted(done) and done[-1] == 100, done
    assert lines[-1].startswith("verify: compared 100/100 documents (100.0%)") and "ETA 0s" in lines[-1]
