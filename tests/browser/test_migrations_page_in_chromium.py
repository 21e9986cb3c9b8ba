"""The Migrations page in a real browser: Airflow's API server with the plugin, against moto.

Two migrations are written to moto the way Back Over writes them: one capturing (segments, a
running replicator, a follow restore), one rehearsed to the end (verified, its lag history
recorded by the rehearsal's own recorder before clean-up deleted the segments, cleaned, its
``reports/rehearsal.json`` built by the report's own code). A ``backover_rehearsal`` run whose plan
task named that migration is run with ``DAG.test()``. Then only ``airflow api-server --apps core``
starts (no scheduler), and Debian's chromium, driven by playwright-core (``look.mjs``), signs in
with the UI's session cookie, clicks "Migrations" in the navigation bar and reads the list in the
UI's frame, opens a migration, and opens the rehearsal run's "Migration" tab. Screenshots are kept
under ``tests/browser/artifacts/`` (printed at the end; gitignored).

Needs ``/usr/bin/chromium`` and ``npm ci`` in ``tests/browser`` (``.ci/run`` does both): without
them the test fails, naming what is missing.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from bson.timestamp import Timestamp

from backover import segments
from backover.layout import MigrationLayout
from backover.s3objects import S3Objects
from backover.state import (
    CleanRecord,
    FreezeRecord,
    ReplicatorCheckpoint,
    RestoreCheckpoint,
    StartRecord,
    write,
)

pytestmark = pytest.mark.slow

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = HERE / "artifacts"
PREFIX = "migrations"
CAPTURING = "orders-capture"
REHEARSED = f"rehearsal-{uuid.uuid4().hex[:8]}"
SEGMENTS = 12


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def browser_installed() -> None:
    """Fail (never skip) when the browser or the driver is missing: CI must install them."""
    missing = []
    if not CHROMIUM.exists():
        missing.append("/usr/bin/chromium (apt-get install -y chromium chromium-driver)")
    if shutil.which("node") is None:
        missing.append("node (apt-get install -y nodejs npm)")
    if not (HERE / "node_modules" / "playwright-core").is_dir():
        missing.append("playwright-core (cd tests/browser && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci)")
    if missing:
        pytest.fail(
            "the browser test needs " + "; ".join(missing) + " (.ci/run installs them)", pytrace=False
        )


def _segment(s3: S3Objects, layout: MigrationLayout, seq: int, newest: int) -> None:
    """Segment ``seq`` as the replicator writes it: one event, its metadata, ``newest`` its cluster time."""
    body, info = segments.build(
        [b"\x05\x00\x00\x00\x00"],
        Timestamp(newest - 1, 1),
        Timestamp(newest, 1),
        "zstd",
        migration_id=layout.migration_id,
        seq=seq,
    )
    s3.put_bytes(layout.segment(seq, "zstd"), body, metadata=info.metadata())


def write_capturing(s3: S3Objects, layout: MigrationLayout, now: datetime) -> None:
    """A capture 20 minutes in: 12 segments, a running replicator 40 s behind, a follow restore."""
    started = now - timedelta(minutes=20)
    t0 = int(started.timestamp())
    write(
        s3,
        layout.start_state,
        StartRecord(layout.migration_id, Timestamp(t0, 1), ["shop"], ["shop"], started_at=started),
    )
    for seq in range(1, SEGMENTS + 1):
        _segment(s3, layout, seq, t0 + seq * 90)
    write(
        s3,
        layout.replicator_checkpoint,
        ReplicatorCheckpoint(
            migration_id=layout.migration_id,
            last_seq=SEGMENTS,
            resume_token={"_data": "82"},
            last_cluster_time=Timestamp(int(now.timestamp()) - 40, 1),
            events_total=24_000,
            bytes_total=9_600_000,
            state="running",
            heartbeat_at=now,
        ),
    )
    write(
        s3,
        layout.restore_checkpoint,
        RestoreCheckpoint(
            migration_id=layout.migration_id,
            last_applied_seq=SEGMENTS - 2,
            events_applied=20_000,
            state="running",
            updated_at=now,
            follow=True,
            applied_cluster_time=Timestamp(t0 + (SEGMENTS - 2) * 90, 1),
        ),
    )


def write_rehearsed(s3: S3Objects, layout: MigrationLayout, now: datetime) -> None:
    """A rehearsal run to its end, written in the order the lifecycle writes it."""
    from backover.verify.report import VerifyReport
    from backover_airflow import report
    from backover_airflow.ui import lag_history

    started = now - timedelta(minutes=30)
    t0 = int(started.timestamp())
    frozen_at = now - timedelta(minutes=5)
    f = Timestamp(int(frozen_at.timestamp()), 1)
    write(
        s3,
        layout.start_state,
        StartRecord(layout.migration_id, Timestamp(t0, 1), ["shop"], ["shop"], started_at=started),
    )
    for seq in range(1, SEGMENTS + 1):
        _segment(s3, layout, seq, t0 + seq * 120)
    replicator = ReplicatorCheckpoint(
        migration_id=layout.migration_id,
        last_seq=SEGMENTS,
        resume_token={"_data": "82"},
        last_cluster_time=f,
        events_total=30_000,
        bytes_total=12_000_000,
        state="drained",
        heartbeat_at=frozen_at + timedelta(seconds=2),
        drained_until=f,
    )
    write(s3, layout.replicator_checkpoint, replicator)
    write(s3, layout.freeze_state, FreezeRecord(layout.migration_id, f, "orders_app", frozen_at=frozen_at))
    restore = RestoreCheckpoint(
        migration_id=layout.migration_id,
        last_applied_seq=SEGMENTS,
        events_applied=30_000,
        state="completed",
        updated_at=frozen_at + timedelta(seconds=3),
        follow=True,
        applied_cluster_time=f,
    )
    write(s3, layout.restore_checkpoint, restore)
    s3.put_json(
        layout.verify_report,
        {
            "identical": True,
            "checked_at": frozen_at + timedelta(seconds=7),
            "mode": "incremental",
            "namespaces": {
                "shop.orders": {
                    "source_count": 4_000,
                    "target_count": 4_000,
                    "missing": 0,
                    "extra": 0,
                    "different": 0,
                    "first_differences": [],
                    "indexes_identical": True,
                }
            },
        },
    )
    # The rehearsal's clean.figures task: the counts, and the lag history before clean-up.
    snap = report.MigrationSnapshot(
        start=StartRecord(layout.migration_id, Timestamp(t0, 1), ["shop"], ["shop"], started_at=started),
        freeze=FreezeRecord(layout.migration_id, f, "orders_app", frozen_at=frozen_at),
        replicator=replicator,
        restore=restore,
        verify=VerifyReport.from_json(s3.get_json(layout.verify_report), "verify"),
    )
    counts = report.figures(snap)
    lag_history.record(s3, layout, replicator, restore)
    # backover_clean: the segments and checkpoints go, state/clean.json stays.
    s3.delete_keys([layout.segment(seq, "zstd") for seq in range(1, SEGMENTS + 1)])
    s3.delete_keys([layout.replicator_checkpoint, layout.restore_checkpoint])
    write(s3, layout.clean_state, CleanRecord(layout.migration_id, cleaned_at=now, segments_deleted=SEGMENTS))
    phases = {
        "start": report.Phase("success", 41.0, "manual__start", {"start.start_lambda": 6.0}),
        "capture": report.Phase("success", 300.0),
        "restore": report.Phase("success", 76.0, "manual__restore", {"restore.restore": 0.4}),
        "clean": report.Phase("success", 30.0, "manual__clean", {"clean.clean_lambda": 4.0}),
    }
    built = report.build(
        layout.migration_id,
        phases,
        report.MigrationSnapshot(start=snap.start, freeze=snap.freeze, verify=snap.verify),
        counts,
    )
    s3.put_bytes(layout.rehearsal_report, json.dumps(built).encode(), content_type="application/json")


REHEARSAL_DAG = """
from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG, TaskGroup

with DAG("backover_rehearsal", schedule=None) as dag:
    with TaskGroup("check"):
        PythonOperator(
            task_id="plan",
            python_callable=lambda: {{"migration_id": "{migration_id}", "environment": "backover"}},
        )
"""


@dataclass
class ApiServer:
    base: str
    token: str
    log: Path


def _wait_until_up(base: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"airflow api-server exited with {proc.returncode}; see {log}", pytrace=False)
        try:
            with urllib.request.urlopen(f"{base}/api/v2/monitor/health", timeout=2):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(1)
    pytest.fail(f"airflow api-server did not answer within {timeout:.0f} s; see {log}", pytrace=False)


@pytest.fixture
def api_server(airflow_home: Any, moto_server: str, bucket: str, tmp_path: Path) -> Iterator[ApiServer]:
    """Only Airflow's API server (core apps: the UI, its API and the plugins), on a free port."""
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    password = secrets.token_urlsafe(12)
    passwords = tmp_path / "passwords.json"
    passwords.write_text(json.dumps({"admin": password}), encoding="utf-8")
    variable = {
        "bucket": bucket,
        "prefix": PREFIX,
        "worker_instance_id": "i-0123456789abcdef0",
        "lambda_names": {"start": "backover-start", "restore": "backover-restore", "clean": "backover-clean"},
        "secret_ids": {"documentdb": "sb/docdb", "mongodb": "sb/mongo", "app_user": "sb/app"},
        "app_user": "orders_app",
    }
    connection = {
        "conn_type": "aws",
        "login": "testing",
        "password": "testing",
        "extra": {"region_name": "us-east-1", "endpoint_url": moto_server},
    }
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT_URL")},
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__API__BASE_URL": base,
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW_VAR_BACKOVER": json.dumps(variable),
        "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(connection),
        "PYTHONPATH": os.pathsep.join([str(ROOT / "plugins"), os.environ.get("PYTHONPATH", "")]),
    }
    log = tmp_path / "api-server.log"
    airflow = str(Path(sys.executable).with_name("airflow"))
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [airflow, "api-server", "--apps", "core", "-H", "127.0.0.1", "-p", str(port), "-w", "1"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_until_up(base, proc, log)
        request = urllib.request.Request(
            f"{base}/auth/token",
            data=json.dumps({"username": "admin", "password": password}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as reply:
            token = json.loads(reply.read())["access_token"]
        yield ApiServer(base=base, token=token, log=log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=30) as reply:
            return int(reply.status)
    except urllib.error.HTTPError as e:
        return int(e.code)


def test_the_migrations_page_shows_each_migration_and_its_lag_in_the_airflow_ui(
    browser_installed: None,
    bucket: str,
    run_dag: Callable[[str, str], Any],
    api_server: ApiServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    now = datetime.now(UTC)
    s3 = S3Objects(bucket)
    write_capturing(s3, MigrationLayout(bucket, PREFIX, CAPTURING), now)
    write_rehearsed(s3, MigrationLayout(bucket, PREFIX, REHEARSED), now)
    rehearsal_run = run_dag("backover_rehearsal", REHEARSAL_DAG.format(migration_id=REHEARSED))
    assert rehearsal_run.state == "success", rehearsal_run
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        run_id = (  # this test's run: the newest of that DAG in the session's database
            session.query(DagRun.run_id)
            .filter(DagRun.dag_id == "backover_rehearsal")
            .order_by(DagRun.id.desc())
            .limit(1)
            .scalar()
        )

    # The pages are not public: no session, no page.
    assert _status(f"{api_server.base}/backover/migrations") == 401

    out = ARTIFACTS / datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    plan = {
        "base": api_server.base,
        "token": api_server.token,
        "out": str(out),
        "detail": CAPTURING,
        "rehearsal": {"dag_id": "backover_rehearsal", "run_id": run_id},
    }
    driven = subprocess.run(
        ["node", str(HERE / "look.mjs"), json.dumps(plan)],
        cwd=HERE,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD": "1"},
        check=False,
    )
    with capsys.disabled():
        print(f"\nbrowser screenshots: {out}")
    assert driven.returncode == 0, f"{driven.stderr[-3000:]}\n(api-server log: {api_server.log})"
    seen = json.loads(driven.stdout)

    # The nav entry opens the list in the UI's frame; each migration with its phase and verdict.
    assert "/plugin/migrations" in seen["list_url"], seen["list_url"]
    rows = {row["id"]: row for row in seen["rows"]}
    assert set(rows) == {CAPTURING, REHEARSED}, rows
    assert rows[CAPTURING]["phase"] == "capturing" and rows[CAPTURING]["health"] == "good"
    assert rows[CAPTURING]["verdict"] == "not verified yet"
    assert rows[REHEARSED]["phase"] == "cleaned"
    assert rows[REHEARSED]["verdict"].startswith("identical (incremental, 1 namespaces")
    # A lag chart per migration: the capturing one from its segments and heartbeat; the cleaned
    # one from the history recorded before its segments were deleted.
    charts = {chart["id"]: chart for chart in seen["list_charts"]}
    assert charts[CAPTURING]["capture"] == SEGMENTS + 1 and charts[CAPTURING]["restore"] == 1
    assert charts[REHEARSED]["capture"] == SEGMENTS and charts[REHEARSED]["restore"] == 1
    assert all(chart["drawn"] == chart["capture"] + chart["restore"] for chart in charts.values())

    # Clicking a migration opens its page: its phase, its chart, its files.
    assert seen["detail"]["title"] == f"Migration {CAPTURING}"
    assert seen["detail"]["phase"] == "capturing"
    assert seen["detail"]["chart_points"] == SEGMENTS + 2
    assert "state/start.json" in seen["detail"]["files"]

    # The rehearsal run's "Migration" tab shows the rehearsal report: verdict, phases, timings, lag.
    rehearsal = seen["rehearsal"]
    assert "/dags/backover_rehearsal/runs/" in rehearsal["tab_url"], rehearsal["tab_url"]
    assert rehearsal["url"].endswith(f"/backover/migrations/{REHEARSED}/rehearsal"), rehearsal["url"]
    assert rehearsal["verdict"] == "PASSED"
    assert rehearsal["phases"] == ["start", "capture", "restore", "clean"]
    assert rehearsal["timings"] == 1 and rehearsal["lag_points"] == SEGMENTS + 1
    assert {p.name for p in out.iterdir()} == {"migrations.png", "migration.png", "rehearsal.png"}
