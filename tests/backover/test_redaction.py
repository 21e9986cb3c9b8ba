"""No command ever shows a database password, whatever characters the password holds.

Each command (replicate, restore, verify, backup) is run with URIs whose password holds an
unescaped '/', '@', ':', '%', '?' or '#', or is correctly escaped but wrong; neither the password
nor any four characters of it may appear in stdout, stderr, a log record or a warning. A
correctly escaped, correct password lets backup run, and its INFO line names the user, not the
password.
"""

from __future__ import annotations

import logging
import urllib.parse
import uuid
import warnings
from typing import Any

import pytest
from pymongo import MongoClient

from backover import cli
from backover.connections import DatabaseUri, redact, strip_password
from backover.errors import UsageError
from backover.layout import MigrationLayout
from backover.s3objects import S3Objects
from backover.state import ReplicatorCheckpoint
from secret_leaks import SPECIALS, VALID_ESCAPES, leaks, password, uri


def _argv(command: str, layout: MigrationLayout, tried: str, other_uri: str) -> list[str]:
    common = ["--bucket", layout.bucket, "--prefix", layout.prefix, "--migration-id", layout.migration_id]
    if command == "replicate":
        return [
            "replicate",
            *common,
            "--source-uri",
            tried,
            "--namespace",
            "shop",
            "--start-at",
            "1:1",
            "--connect-timeout",
            "3",
        ]
    if command == "restore":
        return ["restore", *common, "--target-uri", tried]
    if command == "verify-source":
        return ["verify", *common, "--source-uri", tried, "--target-uri", other_uri]
    if command == "verify-target":
        return ["verify", *common, "--source-uri", other_uri, "--target-uri", tried]
    if command == "backup":
        return ["backup", *common, "--label", "documentdb", "--uri", tried, "--databases", "shop"]
    if command == "backup-restore":
        return ["backup", *common, "--label", "mongodb", "--uri", tried, "--restore"]
    raise AssertionError(command)


COMMANDS = ["replicate", "restore", "verify-source", "verify-target", "backup", "backup-restore"]


def _run(
    argv: list[str], capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> tuple[int, str, str]:
    """Exit status, stderr, and everything shown (stdout, stderr, log records, warnings)."""
    caplog.clear()
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.DEBUG):
        warnings.simplefilter("always")
        code = cli.main(argv)
    out = capsys.readouterr()
    # every record but the access log of moto's server, which runs in this process (a test double's
    # lines of paths, times and "HTTP/1.1", where four random letters of the password can turn up)
    records = "\n".join(
        caplog.handler.format(record) for record in caplog.records if record.name != "werkzeug"
    )
    shown = "\n".join([out.out, out.err, records, *(str(w.message) for w in caught)])
    return code, out.err, shown


def _prepare(command: str, layout: MigrationLayout) -> None:
    """What each command needs in S3 before it reaches for the database."""
    s3 = S3Objects(layout.bucket)
    if command == "restore":
        s3.put_json(
            layout.replicator_checkpoint,
            ReplicatorCheckpoint(migration_id=layout.migration_id, state="drained").to_doc(),
        )
    if command == "backup-restore":  # listed only; the objects are read after the connection check
        s3.put_bytes(layout.backup_data("mongodb", "shop", "items"), b"")
        s3.put_bytes(layout.backup_metadata("mongodb", "shop", "items"), b"")


@pytest.fixture
def layout(bucket: str) -> MigrationLayout:
    return MigrationLayout(bucket, "redaction", f"mig-{uuid.uuid4().hex[:8]}")


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("special", SPECIALS)
@pytest.mark.parametrize("escaped", [False, True], ids=["unescaped", "escaped-wrong"])
def test_no_command_shows_any_piece_of_the_password(
    command: str,
    special: str,
    escaped: bool,
    layout: MigrationLayout,
    standins: dict[str, Any],
    standin_password: str,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = standins["documentdb"]
    secret = password(special)
    _prepare(command, layout)
    good = server.uri("root", standin_password)
    argv = _argv(command, layout, uri(server.port, secret, escaped=escaped), good)
    code, err, shown = _run(argv, capsys, caplog)
    assert not leaks(secret, shown), shown
    assert code == 2, shown
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("backover "), err
    refused = not escaped and special not in VALID_ESCAPES
    assert ("must be percent-escaped" if refused else "authentication failed") in lines[0]
    assert "mongodb://" in lines[0] and f"127.0.0.1:{server.port}" in lines[0]  # the host is still named


def test_backup_info_line_names_the_user_not_the_password(
    layout: MigrationLayout,
    standins: dict[str, Any],
    standin_password: str,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = standins["documentdb"]
    user, secret = f"u{uuid.uuid4().hex[:6]}", password("/@:?#%E9")
    db = f"red_{uuid.uuid4().hex[:8]}"
    with MongoClient(server.uri("root", standin_password)) as root:
        root.admin.command("createUser", user, pwd=secret, roles=[{"role": "readAnyDatabase", "db": "admin"}])
        root[db].items.insert_one({"_id": 1})
    good = uri(server.port, secret, escaped=True, user=user)
    argv = [
        "backup",
        "--bucket",
        layout.bucket,
        "--prefix",
        layout.prefix,
        "--migration-id",
        layout.migration_id,
        "--label",
        "documentdb",
        "--uri",
        good,
        "--databases",
        db,
    ]
    code, _, shown = _run(argv, capsys, caplog)
    assert code == 0, shown
    assert f"from mongodb://{user}:***@127.0.0.1:{server.port}/" in shown
    assert not leaks(secret, shown), shown


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("mongodb://u:p%40ss@h:1/db?x=1", "mongodb://u:***@h:1/db?x=1", id="escaped"),
        pytest.param("mongodb://u:ab/cd@h:1/", "mongodb://***@h:1/", id="slash"),
        pytest.param("mongodb://u:a@b@h:1/", "mongodb://***@h:1/", id="two-ats"),
        pytest.param("mongodb://u:a?b@h:1/", "mongodb://***@h:1/", id="question-mark"),
        pytest.param("mongodb://u:a:b@h:1/", "mongodb://***@h:1/", id="two-colons"),
        pytest.param("mongodb://u:100%@h:1/", "mongodb://***@h:1/", id="bare-percent"),
        pytest.param(
            "mongodb+srv://u:s@cluster.example.com/", "mongodb+srv://u:***@cluster.example.com/", id="srv"
        ),
        pytest.param(
            "mongodb://h:1/?directConnection=true", "mongodb://h:1/?directConnection=true", id="no-user"
        ),
        pytest.param(
            "mongodb://u@h:1/?authMechanism=MONGODB-X509",
            "mongodb://u@h:1/?authMechanism=MONGODB-X509",
            id="user-only",
        ),
        pytest.param(
            "mongodb://h/?tlsCertificateKeyFilePassword=kf&authMechanismProperties=AWS_SESSION_TOKEN:t",
            "mongodb://h/?tlsCertificateKeyFilePassword=***&authMechanismProperties=***",
            id="secret-options",
        ),
        pytest.param("root:secret@host", "<not a mongodb:// URI>", id="no-scheme"),
        pytest.param("hunter22", "<not a mongodb:// URI>", id="bare-word"),
    ],
)
def test_redact_keeps_hosts_and_never_the_credentials(text: str, expected: str) -> None:
    assert redact(text) == expected
    assert str(DatabaseUri(text)) == expected and expected in repr(DatabaseUri(text))


def test_unescaped_credentials_are_refused_before_the_driver_reads_them() -> None:
    # Port 1 on loopback: nothing listens, so reaching the driver's connection step would also fail,
    # but the refusal comes first and says what to do.
    with pytest.raises(UsageError, match="must be percent-escaped") as refused:
        DatabaseUri("mongodb://root:12345/abcd@127.0.0.1:1/").client()
    assert "12345" not in str(refused.value) and "abcd" not in str(refused.value)


@pytest.mark.parametrize("special", SPECIALS)
def test_strip_password_removes_the_password_as_typed_and_escaped(special: str) -> None:
    """The Airflow preflight's driver errors go through this (a connection's password, not a URI)."""
    secret = password(special)
    message = (
        f"auth failed for {secret}; uri mongodb://root:{urllib.parse.quote_plus(secret)}@h/ "
        f"path {urllib.parse.quote(secret, safe='')}"
    )
    stripped = strip_password(message, secret)
    assert not leaks(secret, stripped), stripped
    assert stripped.startswith("auth failed for ***; uri mongodb://root:***@h/")
    assert strip_password(message, None) == message
