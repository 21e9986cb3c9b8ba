"""The state objects as typed, versioned records, through moto's S3.

What a user relies on: every record reads back as written (with ``format_version``); the files
written before the version existed still read; a file of a newer version, or a damaged one, stops
a command with exit 1 and one line naming the key (no traceback, nothing written); the product
builds no key of a migration's folder outside ``MigrationLayout``.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from bson.timestamp import Timestamp

from backover import state
from backover.cli import main
from backover.layout import MigrationLayout
from backover.s3objects import S3Objects
from backover.state import (
    FORMAT_VERSION,
    CleanGuard,
    CleanRecord,
    DdlRecord,
    FreezeRecord,
    ReadOnlyProof,
    RecordError,
    ReplicatorCheckpoint,
    ReplicatorState,
    RestoreCheckpoint,
    RestoreState,
    StartRecord,
)
from backover.verify.merge import MergeResult
from backover.verify.report import NamespaceReport, VerifyReport

ROOT = Path(__file__).resolve().parents[2]
AT = datetime(2026, 11, 30, 12, 0, 0, 123000, tzinfo=UTC)
T0, F = Timestamp(1_764_260_000, 1), Timestamp(1_764_270_000, 5)


def _layout(bucket: str) -> MigrationLayout:
    return MigrationLayout(bucket, "records", f"r-{uuid.uuid4().hex[:8]}")


RECORDS = [
    pytest.param(
        lambda m: StartRecord(
            migration_id=m,
            t0=T0,
            databases=["shop"],
            namespaces=["shop", "crm.users"],
            app_user="orders_app",
            prior_roles=[{"role": "readWrite", "db": "shop"}],
            change_streams_enabled=[{"database": "shop", "collection": ""}],
            source_flavour="documentdb",
            started_at=AT,
        ),
        id="start",
    ),
    pytest.param(
        lambda m: FreezeRecord(
            migration_id=m,
            f=F,
            app_user="orders_app",
            read_only_roles=[{"role": "read", "db": "shop"}],
            roles_removed=[{"role": "readWrite", "db": "shop"}],
            read_only_proof=ReadOnlyProof.WRITE_REFUSED,
            frozen_at=AT,
        ),
        id="freeze",
    ),
    pytest.param(
        lambda m: CleanRecord(
            migration_id=m,
            guard=CleanGuard(RestoreState.COMPLETED, True, ReplicatorState.DRAINED, True, False, AT),
            change_streams_disabled=[{"database": "shop", "collection": ""}],
            change_streams_disabled_at=AT,
            cleaned_at=AT,
            segments_deleted=4,
            checkpoints_deleted=2,
            backups_kept=True,
            deleting=[],
        ),
        id="clean",
    ),
    pytest.param(
        lambda m: ReplicatorCheckpoint(
            m,
            last_seq=4,
            resume_token={"_data": "8263"},
            last_cluster_time=F,
            events_total=120,
            bytes_total=12_000,
            state=ReplicatorState.DRAINED,
            heartbeat_at=AT,
            drained_until=F,
        ),
        id="replicator-checkpoint",
    ),
    pytest.param(
        lambda m: RestoreCheckpoint(
            m,
            last_applied_seq=4,
            events_applied=120,
            state=RestoreState.COMPLETED,
            per_namespace={"shop.orders": {"insert": 100, "update": 20}},
            updated_at=AT,
            displaced_generation=2,
        ),
        id="restore-checkpoint",
    ),
    pytest.param(
        lambda m: DdlRecord(
            seq=3, index=7, state="applied", op="rename", ns="shop.orders", at=AT, displaced_generation=1
        ),
        id="ddl-record",
    ),
]


@pytest.mark.parametrize("make", RECORDS)
def test_each_record_reads_back_as_written_with_its_format_version(bucket: str, make: Any) -> None:
    layout, s3 = _layout(bucket), S3Objects(bucket)
    record = make(layout.migration_id)
    key = layout.key("records/one.json")
    state.write(s3, key, record)
    assert s3.get_json(key)["format_version"] == FORMAT_VERSION == 1
    assert state.read(s3, key, type(record)) == record


def test_the_verification_report_reads_back_as_written(bucket: str) -> None:
    layout, s3 = _layout(bucket), S3Objects(bucket)
    report = VerifyReport(
        [
            NamespaceReport(
                "shop.orders",
                MergeResult(
                    5, 4, missing=1, first_differences=[{"_id": 7, "kind": "missing", "field": None}]
                ),
            ),
            NamespaceReport("shop.items", MergeResult(3, 3)),
        ],
        checked_at=AT,
    )
    s3.put_json(layout.verify_report, report.to_json())
    again = state.read(s3, layout.verify_report, VerifyReport)
    assert again is not None and again.to_json() == report.to_json()
    assert (again.identical, again.differing, again.checked_at) == (False, ["shop.orders"], AT)
    assert again.differences() == "shop.orders: 1 missing"


TODAYS_FILES = [
    pytest.param(
        StartRecord,
        {
            "migration_id": "m",
            "t0": None,
            "databases": ["shop"],
            "namespaces": ["shop"],
            "app_user": "app",
            "prior_roles": [],
            "change_streams_enabled": [],
            "source_flavour": "documentdb",
            "started_at": AT,
        },
        id="start-unfinished",
    ),
    pytest.param(
        FreezeRecord,
        {"migration_id": "m", "f": F, "app_user": "app", "read_only_roles": [], "frozen_at": AT},
        id="freeze-before-roles-removed",
    ),
    pytest.param(
        CleanRecord,
        {
            "migration_id": "m",
            "guard": {
                "restore_state": "completed",
                "verified": True,
                "replicator_state": "stopped",
                "frozen": True,
                "forced": False,
                "checked_at": AT,
            },
            "change_streams_disabled": [],
        },
        id="clean-guard-only",
    ),
    pytest.param(
        VerifyReport,
        {
            "identical": True,
            "checked_at": AT,
            "namespaces": {
                "shop.orders": {
                    "source_count": 3,
                    "target_count": 3,
                    "missing": 0,
                    "extra": 0,
                    "different": 0,
                    "first_differences": [],
                    "indexes_identical": True,
                    "index_differences": [],
                    "identical": True,
                }
            },
        },
        id="verify-report",
    ),
    pytest.param(
        RestoreCheckpoint,
        {
            "migration_id": "m",
            "last_applied_seq": 2,
            "events_applied": 9,
            "state": "running",
            "per_namespace": {},
            "updated_at": AT,
            "reason": None,
            "displaced_generation": 0,
        },
        id="restore-checkpoint",
    ),
]


@pytest.mark.parametrize(("cls", "doc"), TODAYS_FILES)
def test_a_file_without_a_format_version_reads_as_version_1(
    bucket: str, cls: Any, doc: dict[str, Any]
) -> None:
    layout, s3 = _layout(bucket), S3Objects(bucket)
    key = layout.key("records/old.json")
    s3.put_json(key, doc)
    record = state.read(s3, key, cls)
    assert record is not None
    written = record.to_json()
    assert written.pop("format_version") == 1
    assert {name: written[name] for name in doc} == doc


def test_status_refuses_a_newer_format_version_in_one_line(
    bucket: str, capsys: pytest.CaptureFixture[str]
) -> None:
    layout, s3 = _layout(bucket), S3Objects(bucket)
    s3.put_json(
        layout.start_state,
        {**StartRecord(migration_id=layout.migration_id, t0=T0).to_json(), "format_version": 2},
    )
    code = main(
        ["status", "--bucket", bucket, "--prefix", layout.prefix, "--migration-id", layout.migration_id]
    )
    out, err = capsys.readouterr()
    assert code == 1 and not out
    assert err.strip() == (
        f"backover status: s3://{bucket}/{layout.start_state} is a start record (state/start.json) "
        "of format version 2; this Back Over reads format versions up to 1: upgrade Back Over "
        "to read it"
    )


MALFORMED = [
    pytest.param(
        "start_state", [1, 2], "is not a start record (state/start.json) (not a JSON object)", id="start-list"
    ),
    pytest.param(
        "start_state",
        {"migration_id": "m", "t0": "yesterday"},
        "has an invalid t0 'yesterday'",
        id="start-t0-text",
    ),
    pytest.param("freeze_state", {"f": 12}, "has an invalid f 12", id="freeze-f-number"),
    pytest.param(
        "clean_state",
        {"guard": {"verified": "yes"}},
        "has an invalid guard.verified 'yes'",
        id="clean-guard-verified-text",
    ),
    pytest.param(
        "clean_state", {"segments_deleted": -3}, "has an invalid segments_deleted -3", id="clean-negative"
    ),
    pytest.param(
        "restore_checkpoint",
        {"migration_id": "m", "state": "done"},
        "has an unknown state 'done'",
        id="restore-state",
    ),
    pytest.param(
        "clean_state", {"format_version": "1"}, "has an invalid format_version '1'", id="version-text"
    ),
]


@pytest.mark.parametrize(("which", "doc", "reason"), MALFORMED)
def test_status_names_a_malformed_record_in_one_line(
    bucket: str, capsys: pytest.CaptureFixture[str], which: str, doc: Any, reason: str
) -> None:
    layout, s3 = _layout(bucket), S3Objects(bucket)
    if isinstance(doc, dict) and "migration_id" in doc:
        doc = {**doc, "migration_id": layout.migration_id}
    key = getattr(layout, which)
    s3.put_json(key, doc)
    code = main(
        ["status", "--bucket", bucket, "--prefix", layout.prefix, "--migration-id", layout.migration_id]
    )
    out, err = capsys.readouterr()
    assert code == 1 and not out
    assert err.strip() == f"backover status: s3://{bucket}/{key} {reason}"


@pytest.mark.parametrize(
    ("doc", "reason"),
    [
        pytest.param(
            {"identical": "yes", "namespaces": {}}, "has an invalid identical 'yes'", id="identical-text"
        ),
        pytest.param(
            {"identical": True, "namespaces": {"shop.orders": {"missing": "2"}}},
            "has an invalid namespaces.shop.orders.missing '2'",
            id="count-text",
        ),
        pytest.param(
            {"namespaces": {}},
            "is not a verification report (reports/verify.json) (no identical)",
            id="no-verdict",
        ),
    ],
)
def test_clean_names_a_malformed_verification_report_and_deletes_nothing(
    bucket: str, capsys: pytest.CaptureFixture[str], doc: dict[str, Any], reason: str
) -> None:
    layout, s3 = _layout(bucket), S3Objects(bucket)
    s3.put_json(
        layout.restore_checkpoint, RestoreCheckpoint(layout.migration_id, state="completed").to_json()
    )
    s3.put_json(layout.verify_report, doc)
    s3.put_bytes(layout.segment(1, "zstd"), b"segment")
    before = set(s3.list_keys(layout.root))
    code = main(
        ["clean", "--bucket", bucket, "--prefix", layout.prefix, "--migration-id", layout.migration_id]
    )
    assert code == 1
    assert capsys.readouterr().err.strip() == f"backover clean: s3://{bucket}/{layout.verify_report} {reason}"
    assert set(s3.list_keys(layout.root)) == before


def test_a_record_error_is_a_job_failure() -> None:
    with pytest.raises(RecordError) as e:
        StartRecord.from_json({"t0": "x"}, "s3://b/k")
    assert e.value.exit_code == 1 and str(e.value) == "s3://b/k has an invalid t0 'x'"


# -- every key of a migration's folder comes from MigrationLayout ---------------------------------------------
SHIPPED = ("include/backover", "lambdas", "plugins", "dags")
#: A literal naming a folder of a migration (``"state/..."``, ``f"changes/{seq}"``...), or an f-string that
#: adds folders after a prefix or the root (``f"{prefix}{db}/"``, ``f"{layout.root}x/"``).
LITERAL_KEY = re.compile(r"""[frb]*["'](?:state|control|changes|restore|reports|backups)/""")
JOINED_KEY = re.compile(r"""f["']\{[^}]*(?:prefix|root)\b[^}]*\}(?:\{[^}]*\}|[^"'{ ])*/""")


def _product_lines() -> list[tuple[str, int, str]]:
    lines = []
    for top in SHIPPED:
        for path in sorted((ROOT / top).rglob("*.py")):
            relative = str(path.relative_to(ROOT))
            if relative == "include/backover/layout.py" or "/standin/" in relative or "/sandbox/" in relative:
                continue
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                code = line.split("#", 1)[0]
                if LITERAL_KEY.search(code) or JOINED_KEY.search(code):
                    lines.append((relative, number, line.strip()))
    return lines


#: Lines that name a key in a message (not to build one), each checked to still be there.
MESSAGES = {
    (
        "include/backover/replication/service.py",
        'raise UsageError("state/start.json has no list of namespaces',
    ),
    ("include/backover/replication/service.py", 'raise UsageError("state/start.json has no t0 timestamp'),
    (
        "include/backover/restore/displaced.py",
        'def from_bytes(cls, data: bytes, key: str = "restore/displaced.bson")',
    ),
    ("dags/backover_rehearsal.py", 'with TaskGroup("report", tooltip="reports/rehearsal.json and the log")'),
}


def test_no_product_code_builds_a_migration_key_outside_the_layout() -> None:
    found = _product_lines()
    unexpected = [
        f"{path}:{number}: {line}"
        for path, number, line in found
        if not any(path == p and line.startswith(start) for p, start in MESSAGES)
    ]
    assert not unexpected, "keys built outside MigrationLayout:\n" + "\n".join(unexpected)


def test_the_key_check_finds_a_bypass() -> None:
    """The patterns catch the bypasses this test was written against."""
    for line in (
        'return self.layout.key("restore/displaced.bson")',
        'layout.key("backups/")',
        'REPORT_KEY = "reports/rehearsal.json"',
        'stale += s3.list_keys(f"{config.layout.backup_prefix(config.label)}{db}/")',
        'data_key = f"{prefix}{db}/{name}{DATA_SUFFIX}"',
    ):
        assert LITERAL_KEY.search(line) or JOINED_KEY.search(line), line


# -- statuses are enum members, never string literals ---------------------------------------------------------
STATUS_LITERAL = re.compile(r"""\bstate\b["'\])]*\s*(?:==|!=|\bnot in\b|\bin\b)\s*\(?\s*["']""")
#: Comparisons of states that are not Back Over's (an Airflow task's, a /proc process's).
NOT_OURS = {
    ("plugins/backover_airflow/report.py", 'return self.state == "success"'),
    ("include/backover/detach.py", 'if state == "Z" or'),
}


def test_no_product_code_compares_a_status_with_a_string() -> None:
    found = []
    for top in SHIPPED:
        for path in sorted((ROOT / top).rglob("*.py")):
            relative = str(path.relative_to(ROOT))
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                text = line.strip()
                if STATUS_LITERAL.search(line.split("#", 1)[0]) and not any(
                    relative == p and text.startswith(start) for p, start in NOT_OURS
                ):
                    found.append(f"{relative}:{number}: {text}")
    assert not found, (
        "statuses compared with string literals (use the enums of backover.state):\n" + "\n".join(found)
    )
    for line in (
        'if doc.get("state") == "applied":',
        'if cp.state in ("failed", "stopped"):',
        'replicator.state not in ("drained", "stopped")',
        'doc["state"] != "completed"',
    ):
        assert STATUS_LITERAL.search(line), line
