"""Bucket names, key prefixes and migration ids: one rule each (``backover.layout``), applied the
same way by every command, the Lambdas' event and the Airflow configuration.

Bad input gets one line naming the rule and exit 2, before any network call and with nothing
written: the commands run with S3 and the database pointed at closed ports, so any call would
answer with a connection error instead of the rule.
"""

from __future__ import annotations

import socket
import uuid

import boto3
import pytest

from backover import cli
from backover.errors import UsageError
from backover.layout import (
    BUCKET_RULE,
    MIGRATION_ID_RULE,
    PREFIX_MAX,
    PREFIX_RULE,
    MigrationLayout,
    check_prefix,
)
from backover.lifecycle.events import InvalidEvent, LifecycleEvent
from backover.s3objects import S3Objects


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


DB_URI = f"mongodb://127.0.0.1:{_closed_port()}/?directConnection=true&serverSelectionTimeoutMS=500"


def _argv(command: str, bucket: str, prefix: str, migration_id: str) -> list[str]:
    common = [f"--bucket={bucket}", f"--prefix={prefix}", f"--migration-id={migration_id}"]
    return {
        "status": ["status", *common],
        "replicate": [
            "replicate",
            *common,
            "--source-uri",
            DB_URI,
            "--namespace",
            "shop",
            "--start-at",
            "1:1",
        ],
        "restore": ["restore", *common, "--target-uri", DB_URI],
        "verify": ["verify", *common, "--source-uri", DB_URI, "--target-uri", DB_URI],
        "backup": ["backup", *common, "--label", "documentdb", "--uri", DB_URI],
        "backup-restore": ["backup", *common, "--label", "mongodb", "--uri", DB_URI, "--restore"],
        "clean": ["clean", *common, "--source-uri", DB_URI],
        "abort": ["abort", *common, "--source-uri", DB_URI],
    }[command]


COMMANDS = ["status", "replicate", "restore", "verify", "backup", "backup-restore", "clean", "abort"]
BAD_BUCKETS = [
    pytest.param("Not_A_Bucket", id="upper-and-underscore"),
    pytest.param("ab", id="too-short"),
    pytest.param("a" * 64, id="too-long"),
    pytest.param("-backover", id="starts-with-dash"),
    pytest.param("backover.", id="ends-with-dot"),
    pytest.param("back..over", id="two-dots"),
    pytest.param("192.168.10.1", id="ip-address"),
    pytest.param("xn--backover", id="reserved-prefix"),
    pytest.param("backover-s3alias", id="reserved-suffix"),
    pytest.param("back over", id="space"),
]
BAD_PREFIXES = [
    pytest.param("../../etc", id="climbs-out"),
    pytest.param("a/./b", id="dot-segment"),
    pytest.param("//a//b//", id="empty-segments"),
    pytest.param("x" * 1100, id="1100-characters"),
    pytest.param("x" * (PREFIX_MAX + 1), id="one-too-long"),
    pytest.param("team a", id="space"),
    pytest.param("a\\b", id="backslash"),
    pytest.param("migrations\n", id="trailing-newline"),
]
BAD_IDS = [
    pytest.param("m-1\n", id="trailing-newline"),
    pytest.param(" m-1", id="leading-space"),
    pytest.param("no/slash", id="slash"),
    pytest.param("-m-1", id="starts-with-dash"),
    pytest.param("m" * 129, id="too-long"),
]


@pytest.fixture
def nowhere(monkeypatch: pytest.MonkeyPatch) -> None:
    """S3 and Secrets Manager on a closed port: a network call fails with a connection error."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{_closed_port()}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")


def _refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert cli.main(argv) == 2
    out = capsys.readouterr()
    lines = out.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"backover {argv[0]}: "), out.err
    assert out.out == ""
    return lines[0]


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("name", BAD_BUCKETS)
def test_a_bad_bucket_name_is_one_line_before_any_call(
    nowhere: None, command: str, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    line = _refused(_argv(command, name, "backover", "m-1"), capsys)
    assert f"invalid bucket name {name!r}" in line and BUCKET_RULE in line


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("prefix", BAD_PREFIXES)
def test_a_bad_prefix_is_one_line_before_any_call(
    nowhere: None, command: str, prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    line = _refused(_argv(command, "backover-sandbox", prefix, "m-1"), capsys)
    assert "invalid prefix" in line and PREFIX_RULE in line
    assert len(line) < 600  # a 1,100-character prefix is not echoed whole


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("migration_id", BAD_IDS)
def test_a_bad_migration_id_is_one_line_before_any_call(
    nowhere: None, command: str, migration_id: str, capsys: pytest.CaptureFixture[str]
) -> None:
    line = _refused(_argv(command, "backover-sandbox", "backover", migration_id), capsys)
    assert "invalid migration id" in line and MIGRATION_ID_RULE in line


def test_a_missing_bucket_is_named_by_every_command(
    aws_endpoints: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A well-formed name of a bucket that does not exist: one line, exit 2 (backup included, whose
    default databases are read from the bucket)."""
    missing = f"backover-missing-{uuid.uuid4().hex[:8]}"
    for command in COMMANDS:
        line = _refused(_argv(command, missing, "backover", "m-1"), capsys)
        assert f"bucket {missing!r} cannot be used: does not exist" in line, (command, line)


@pytest.mark.parametrize("command", ["status", "replicate", "restore", "verify", "backup", "clean", "abort"])
def test_nothing_is_written_for_a_bad_prefix(
    bucket: str, command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    for prefix in ("../../etc", "//a//b//", "x" * 1100):
        _refused(_argv(command, bucket, prefix, "m-1"), capsys)
    assert boto3.client("s3").list_objects_v2(Bucket=bucket).get("KeyCount") == 0


@pytest.mark.parametrize(
    ("given", "used"),
    [
        pytest.param("team/backover/", "team/backover/m-1/", id="outer-slashes-dropped"),
        pytest.param("/backover", "backover/m-1/", id="leading-slash"),
        pytest.param("", "m-1/", id="bucket-top"),
        pytest.param("a.b_c-d/e", "a.b_c-d/e/m-1/", id="all-allowed-characters"),
    ],
)
def test_good_prefixes_are_used_without_outer_slashes(given: str, used: str) -> None:
    assert MigrationLayout("backover-sandbox", given, "m-1").root == used


def test_the_longest_key_stays_under_s3s_limit() -> None:
    """The longest prefix and migration id, and a backup of a 255-byte namespace."""
    layout = MigrationLayout("backover-sandbox", "/".join(["p" * 63] * 3 + ["p" * 64]), "m" * 128)
    assert len(layout.prefix) == PREFIX_MAX
    key = layout.backup_metadata("documentdb", "d" * 63, "c" * (255 - 64))
    assert len(key.encode()) < 1024 - 300  # room left for '/' and '%' escaped in a collection name


def test_the_lambda_event_applies_the_same_rules_and_never_strips() -> None:
    good = {
        "migration_id": "m-1",
        "bucket": "backover-sandbox",
        "master_secret_id": "s",
        "app_user": "app",
        "databases": ["shop"],
    }
    assert (
        LifecycleEvent.from_dict({**good, "prefix": "team/backover/"}).layout().root == "team/backover/m-1/"
    )
    for field, value, rule in [
        ("migration_id", "m-1\n", MIGRATION_ID_RULE),
        ("migration_id", " m-1", MIGRATION_ID_RULE),
        ("bucket", "backover-sandbox\n", BUCKET_RULE),
        ("bucket", "Not_A_Bucket", BUCKET_RULE),
        ("prefix", "../../etc", PREFIX_RULE),
        ("prefix", "x" * 1100, PREFIX_RULE),
    ]:
        with pytest.raises(InvalidEvent) as refused:
            LifecycleEvent.from_dict({**good, field: value})
        assert refused.value.field == field and rule in str(refused.value)
        assert "\n" not in str(refused.value)


def test_the_airflow_configuration_applies_the_same_rules() -> None:
    from backover_airflow.config import BackoverConfig, ConfigError, RunParams

    variable = {
        "bucket": "backover-sandbox",
        "prefix": "migrations",
        "worker_instance_id": "i-1",
        "lambda_names": {"start": "s", "restore": "r", "clean": "c"},
        "secret_ids": {"documentdb": "d", "mongodb": "m", "app_user": "a"},
        "app_user": "app",
        "databases": ["shop"],
    }
    config = BackoverConfig.from_mapping({**variable, "prefix": "/migrations/"})
    assert config.prefix == "migrations"
    for field, value, rule in [
        ("prefix", "../../etc", PREFIX_RULE),
        ("prefix", "//a//b//", PREFIX_RULE),
        ("prefix", 7, PREFIX_RULE),
        ("bucket", "Not_A_Bucket", BUCKET_RULE),
    ]:
        with pytest.raises(ConfigError) as refused:
            BackoverConfig.from_mapping({**variable, field: value})
        assert f"'{field}'" in str(refused.value) and rule in str(refused.value)
    with pytest.raises(ConfigError, match="invalid migration id 'm-1\\\\n'"):
        RunParams.from_params({"migration_id": "m-1\n"}, config)


def test_check_bucket_refuses_a_bad_name_without_calling_s3(nowhere: None) -> None:
    with pytest.raises(UsageError, match="invalid bucket name 'Not_A_Bucket'"):
        S3Objects("Not_A_Bucket").check_bucket()


def test_check_prefix_returns_what_the_keys_use() -> None:
    assert check_prefix("a/b/") == "a/b"
    with pytest.raises(UsageError):
        check_prefix("a/../b")
