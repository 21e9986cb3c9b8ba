"""The Migrations pages' reading side against moto: each phase as a data engineer sees it, the lag
history (from the segments, kept past clean-up), a run's migration, and one-line refusals.

The pages themselves run in Airflow's API server in ``tests/browser`` (slow); here the app is
called in-process, mounted at ``/backover`` as the API server mounts it, with Airflow's sign-in
check replaced (the browser test checks it).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest
from bson.timestamp import Timestamp
from migration_states import T0, F, Migration, environment, now

from backover import segments
from backover.layout import MigrationLayout

Setup = Callable[[Migration], None]


@pytest.fixture(autouse=True)
def _airflow(airflow_home: Any) -> None:
    """Airflow reads AIRFLOW_HOME on first import."""


@pytest.fixture
def env(migration: Migration, set_environment: Any) -> Any:
    """The environment Variable ``backover`` naming the migration's bucket, as a task reads it."""
    set_environment(environment(migration.layout.bucket, "i-0123456789abcdef0"))
    from backover_airflow import config

    return config.environment({})


@pytest.fixture
def client(env: Any) -> Iterator[Any]:
    """The plugin's app as the API server serves it (mounted at ``/backover``), signed in."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from backover_airflow.ui import links, web_app

    server = FastAPI()
    server.mount(links.MOUNT, web_app.app)
    web_app.app.dependency_overrides[web_app.signed_in] = lambda: None
    try:
        yield TestClient(server)
    finally:
        web_app.app.dependency_overrides.clear()


def _look(env: Any, migration: Migration) -> Any:
    from backover_airflow.hooks.migration import MigrationHook
    from backover_airflow.ui import web_app

    seen, _history, _folder = web_app.look(MigrationHook(aws_conn_id=None), env, migration.layout, 24)
    return seen


def _drained(m: Migration) -> None:
    m.start()
    m.freeze()
    m.replicator("drained", last=F, drained_until=F)


def _restored(m: Migration) -> None:
    _drained(m)
    m.restore("completed", applied=4, events=120, updated_at=now() - timedelta(seconds=5))


def _aborted(m: Migration) -> None:
    """An abort to its end: the stop request, then the roles read back (``state/abort.json``)."""
    from backover.state import AbortRecord, write

    m.start()
    m.s3.put_json(m.layout.stop_request, {"reason": "abort"})
    record = AbortRecord(m.layout.migration_id, "app", [], ["shop"], ["reports"], confirmed_at=now())
    write(m.s3, m.layout.abort_state, record)


def _bad_checkpoint(m: Migration) -> None:
    m.start()
    m.s3.put_bytes(m.layout.replicator_checkpoint, b"{not json")


PHASES = [
    pytest.param(lambda m: None, "no state", "waiting", "no state objects", id="empty-folder"),
    pytest.param(lambda m: m.start(t0=None), "starting", "waiting", "not recorded T0", id="starting"),  # type: ignore[arg-type]
    pytest.param(lambda m: m.start(), "capturing", "waiting", "first checkpoint", id="no-checkpoint-yet"),
    pytest.param(
        lambda m: (m.start(), m.replicator("running", last=T0)),
        "capturing",
        "good",
        "replicator healthy",
        id="healthy",
    ),
    pytest.param(
        lambda m: (m.start(), m.replicator("running", last=T0, heartbeat_age=900)),
        "capturing",
        "bad",
        "waiting for a fresh heartbeat",
        id="heartbeat-stale",
    ),
    pytest.param(
        lambda m: (m.start(), m.replicator("failed", reason="change stream history lost")),
        "failed",
        "bad",
        "replicator failed: change stream history lost",
        id="replicator-failed",
    ),
    pytest.param(
        lambda m: (m.start(), m.freeze(), m.replicator("draining", last=Timestamp(F.time - 30, 1))),
        "frozen: draining",
        "waiting",
        "30 s behind",
        id="draining",
    ),
    pytest.param(
        lambda m: (_drained(m), m.restore("running", applied=2)),
        "frozen: restoring",
        "waiting",
        "applied segment 2 of 4",
        id="restoring",
    ),
    pytest.param(
        _restored, "frozen: verifying", "waiting", "waiting for the verification report", id="verifying"
    ),
    pytest.param(
        lambda m: (_restored(m), m.verify(True)), "verified", "good", "verified identical", id="verified"
    ),
    pytest.param(
        lambda m: (
            _restored(m),
            m.verify(
                False,
                shop__orders={
                    "source_count": 5,
                    "target_count": 3,
                    "missing": 2,
                    "extra": 0,
                    "different": 0,
                    "first_differences": [],
                    "indexes_identical": True,
                },
            ),
        ),
        "different",
        "bad",
        "shop.orders",
        id="different",
    ),
    pytest.param(
        lambda m: (_restored(m), m.verify(True), m.clean(deleted=4)),
        "cleaned",
        "good",
        "4 change segments",
        id="cleaned",
    ),
    pytest.param(
        lambda m: (m.start(), m.s3.put_json(m.layout.stop_request, {"reason": "abort"})),
        "aborted",
        "bad",
        "abort requested (control/stop.json); the app user's roles are not confirmed given back",
        id="abort-requested-roles-not-confirmed",
    ),
    pytest.param(
        _aborted,
        "aborted",
        "waiting",
        "app holds its prior roles again (read back from the source), it can write shop (not reports",
        id="aborted-roles-given-back",
    ),
    pytest.param(
        _bad_checkpoint, "failed", "bad", "changes/_checkpoint.json is not a valid JSON", id="damaged-record"
    ),
]


@pytest.mark.parametrize(("setup", "phase", "health", "detail"), PHASES)
def test_each_phase_of_a_migration_as_the_page_shows_it(
    env: Any, migration: Migration, setup: Setup, phase: str, health: str, detail: str
) -> None:
    setup(migration)
    seen = _look(env, migration)
    assert (seen.phase, seen.health) == (phase, health), seen.detail
    assert detail in seen.detail


def test_a_capture_shows_its_lag_rate_and_the_restore_behind_it(env: Any, migration: Migration) -> None:
    started = now() - timedelta(seconds=100)
    migration.start(started_at=started)
    migration.replicator("running", last=Timestamp(int(now().timestamp()) - 12, 1), last_seq=4, events=500)
    migration.restore("running", applied=3, events=400, follow=True)
    seen = _look(env, migration)
    assert 11 <= seen.capture_lag_seconds <= 14
    assert 4.5 <= seen.events_per_second <= 5.1  # 500 events in about 100 s
    assert (seen.restore_lag.segments, seen.restore_lag.events) == (1, 100)
    assert seen.verdict.line == "not verified yet" and seen.freeze.frozen_at is None


def _segment(migration: Migration, seq: int, newest: int) -> None:
    body, info = segments.build(
        [b"\x05\x00\x00\x00\x00"],
        Timestamp(newest, 1),
        Timestamp(newest, 2),
        "zstd",
        migration_id=migration.layout.migration_id,
        seq=seq,
    )
    migration.s3.put_bytes(migration.layout.segment(seq, "zstd"), body, metadata=info.metadata())


def test_the_lag_history_comes_from_the_segments_and_survives_clean_up(migration: Migration) -> None:
    from backover_airflow.ui import lag_history

    wall = int(now().timestamp())
    for seq, age in ((1, 300), (2, 200), (3, 30)):
        _segment(migration, seq, wall - age)
    migration.replicator("drained", last=Timestamp(wall - 30, 2), last_seq=3, events=3)
    migration.restore("completed", applied=3, events=3)
    layout, s3 = migration.layout, migration.s3
    records = _records(migration)
    seen = lag_history.history(s3, layout, *records, max_points=24)
    # Each segment: when it landed in S3 minus its newest event's cluster time.
    ages = [round(p.seconds) for p in seen.capture]
    assert [p.seq for p in seen.capture] == [1, 2, 3]
    assert all(abs(got - want) <= 3 for got, want in zip(ages, (300, 200, 30), strict=True)), ages
    assert [(p.seq, p.seconds) for p in seen.restore] == [(3, 0.0)]

    recorded = lag_history.record(s3, layout, *records)
    s3.delete_keys([layout.segment(seq, "zstd") for seq in (1, 2, 3)])
    s3.delete_keys([layout.replicator_checkpoint, layout.restore_checkpoint])
    after = lag_history.history(s3, layout, None, None, 24, lag_history.read(s3, layout))
    assert [(p.seq, p.seconds) for p in after.capture] == [(p.seq, p.seconds) for p in recorded.capture]
    assert len(after.restore) == 1
    again = lag_history.record(s3, layout, None, None)  # after clean-up: adds nothing, loses nothing
    assert (again.capture, again.restore) == (recorded.capture, recorded.restore)


def _records(migration: Migration) -> tuple[Any, Any]:
    from backover_airflow.hooks.migration import MigrationHook

    hook = MigrationHook(aws_conn_id=None)
    return hook.replicator_checkpoint(migration.layout), hook.restore_checkpoint(migration.layout)


def test_a_segment_sample_keeps_both_ends_and_stays_within_its_size() -> None:
    from backover_airflow.ui.lag_history import sample_seqs

    assert sample_seqs(0, 24) == [] and sample_seqs(3, 24) == [1, 2, 3]
    sample = sample_seqs(100_000, 24)
    assert len(sample) == 24 and (sample[0], sample[-1]) == (1, 100_000)


def test_the_clean_up_records_the_lag_history_and_the_rehearsal_does_not_again(
    env: Any, migration: Migration
) -> None:
    from backover_airflow.operators.lag_history import LagHistoryOperator
    from backover_airflow.operators.rehearsal import MigrationFiguresOperator
    from backover_airflow.ui import lag_history

    wall = int(now().timestamp())
    _segment(migration, 1, wall - 40)
    migration.replicator("drained", last=Timestamp(wall - 40, 2), last_seq=1, events=1)
    context: Any = {"params": {"environment": "backover"}}
    mid = migration.layout.migration_id
    figures = MigrationFiguresOperator(task_id="figures", migration_id=mid, aws_conn_id=None)
    assert figures.execute(context)["segments"] == 1
    assert lag_history.read(migration.s3, migration.layout) is None  # the rehearsal's counts only
    record_lag = LagHistoryOperator(task_id="record_lag", migration_id=mid, aws_conn_id=None)
    assert record_lag.execute(context) == {"capture_points": 1, "restore_points": 0}
    recorded = lag_history.read(migration.s3, migration.layout)
    assert recorded is not None and [p.seq for p in recorded.capture] == [1]


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        pytest.param(
            lambda m, _set: _bad_checkpoint(m),
            "changes/_checkpoint.json is not a valid JSON",
            id="damaged-record",
        ),
        pytest.param(
            lambda _m, set_env: set_env(environment("backover-no-such-bucket", "i-0123456789abcdef0")),
            "NoSuchBucket",
            id="s3-refuses",
        ),
    ],
)
def test_recording_the_lag_history_never_stops_the_clean_up(
    env: Any,
    migration: Migration,
    set_environment: Any,
    damage: Callable[[Migration, Any], None],
    reason: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from backover_airflow.operators.lag_history import LagHistoryOperator

    damage(migration, set_environment)
    task = LagHistoryOperator(
        task_id="record_lag", migration_id=migration.layout.migration_id, aws_conn_id=None
    )
    assert task.execute({"params": {"environment": "backover"}}) is None  # type: ignore[arg-type]
    # The task log (Airflow's structlog, on stdout here): one WARNING line with the reason.
    warned = [line for line in capsys.readouterr().out.splitlines() if "Lag history not recorded" in line]
    assert len(warned) == 1 and "warning" in warned[0] and reason in warned[0], warned


@pytest.mark.parametrize(
    ("dag_id", "conf", "results", "found"),
    [
        pytest.param(
            "backover_start",
            {"migration_id": "m-1", "environment": "rehearsal"},
            [],
            ("m-1", "rehearsal"),
            id="conf",
        ),
        pytest.param(
            "backover_rehearsal",
            {},
            [None, '{"migration_id": "rehearsal-1", "environment": "backover"}'],
            ("rehearsal-1", "backover"),
            id="plan",
        ),
        pytest.param(
            "backover_clean", {}, [{"migration_id": "m-2"}], ("m-2", "backover"), id="default-environment"
        ),
        pytest.param(
            "backover_rehearsal",
            {"migration_id": "r-1"},
            [],
            ("r-1", "backover_rehearsal"),
            id="rehearsal-default-environment",
        ),
        pytest.param("backover_start", {"migration_id": "../etc"}, [], None, id="invalid-id"),
        pytest.param("backover_start", {}, ["not json", 3], None, id="none"),
    ],
)
def test_a_runs_migration_is_named_by_its_conf_or_its_plan(
    dag_id: str, conf: Any, results: list[Any], found: Any
) -> None:
    from backover_airflow.ui.web_app import migration_of

    assert migration_of(dag_id, conf, results) == found


def test_every_link_of_the_pages_opens_a_page(client: Any, migration: Migration) -> None:
    _restored(migration)
    migration.verify(True)
    migration.s3.put_json(
        migration.layout.rehearsal_report, {"migration_id": "x", "passed": True, "phases": {}}
    )
    start = "http://testserver/backover/migrations"
    seen, queue = set(), [start]
    while queue:
        url = queue.pop()
        if url in seen:
            continue
        seen.add(url)
        reply = client.get(url)
        assert reply.status_code == 200, (url, reply.text[:300])
        if reply.headers["content-type"].startswith("text/html"):
            queue += [urljoin(url, href) for href in re.findall(r'href="([^"]+)"', reply.text)]
    pages = {urlsplit(url).path for url in seen}
    mid = migration.layout.migration_id
    assert {f"/backover/migrations/{mid}", f"/backover/migrations/{mid}/rehearsal"} <= pages
    assert f"/backover/migrations/{mid}/files/verify" in pages


@pytest.mark.parametrize(
    ("path", "status", "line"),
    [
        pytest.param(
            "/backover/migrations?environment=nosuch",
            400,
            "Airflow Variable 'nosuch' is not set or not a valid Back Over environment",
            id="no-variable",
        ),
        pytest.param(
            "/backover/migrations?environment=../x%3Cb%3E",
            400,
            "?environment= must name an Airflow Variable",
            id="not-a-variable-name",
        ),
        pytest.param("/backover/migrations/-bad", 400, "invalid migration id '-bad'", id="bad-id"),
        pytest.param("/backover/migrations/never-started", 404, "no migration 'never-started'", id="absent"),
        pytest.param(
            "/backover/migrations/m-1/files/passwords", 404, "no file 'passwords'", id="unknown-file"
        ),
        pytest.param(
            "/backover/migrations/m-1/files/verify", 404, "reports/verify.json does not exist", id="no-report"
        ),
    ],
)
def test_bad_input_is_answered_in_one_line(client: Any, path: str, status: int, line: str) -> None:
    reply = client.get(path)
    assert reply.status_code == status
    shown = re.findall(r'<p class="error">([^<]*)</p>', reply.text)
    assert len(shown) == 1 and line in shown[0].replace("&#x27;", "'"), shown


def test_a_bucket_that_cannot_be_read_is_one_line(
    client: Any, migration: Migration, set_environment: Any
) -> None:
    set_environment(environment("backover-no-such-bucket", "i-0123456789abcdef0"))
    reply = client.get("/backover/migrations")
    assert reply.status_code == 502
    assert "S3 cannot be read for bucket &#x27;backover-no-such-bucket&#x27;: cannot list" in reply.text


def test_a_migration_list_in_key_order_is_shown_newest_first(client: Any, migration: Migration) -> None:
    for name, minutes in (("a-older", 90), ("b-newest", 5), ("c-middle", 30)):
        other = Migration(
            MigrationLayout(migration.layout.bucket, migration.layout.prefix, name), migration.s3
        )
        other.start(started_at=datetime.now(UTC) - timedelta(minutes=minutes))
    page = client.get("/backover/migrations").text
    assert re.findall(r'data-migration-id="([^"]+)" data-phase', page) == ["b-newest", "c-middle", "a-older"]


@pytest.fixture
def signing_in(env: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Any]]:
    """``signing_in(dags, variables)``: a client signed in (bearer token) as a user whom Airflow's
    auth manager lets read only those DAGs and Variables (Airflow's simple auth manager, with per-DAG
    grants as FAB or Keycloak give them), and the app's own sign-in check, not replaced."""
    from airflow.api_fastapi import app as api_app
    from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from backover_airflow.ui import links, web_app

    grants: dict[str, tuple[set[str], set[str]]] = {}

    class PerDagAuthManager(SimpleAuthManager):  # type: ignore[misc]
        def is_authorized_dag(
            self, *, method: str, user: Any, access_entity: Any = None, details: Any = None
        ) -> bool:
            dags = grants[user.username][0]
            return method == "GET" and (details.id in dags if details and details.id else "*" in dags)

        def is_authorized_variable(self, *, method: str, user: Any, details: Any = None) -> bool:
            return method == "GET" and details is not None and details.key in grants[user.username][1]

    monkeypatch.setenv("AIRFLOW__API_AUTH__JWT_SECRET", "test-secret-for-the-pages")
    manager = PerDagAuthManager()
    monkeypatch.setattr(api_app._AuthManagerState, "instance", manager)
    server = FastAPI()
    server.mount(links.MOUNT, web_app.app)
    web_app.app.dependency_overrides.clear()

    def sign_in(dags: set[str], variables: frozenset[str] = frozenset()) -> Any:
        name = f"user{len(grants)}"
        grants[name] = (set(dags), set(variables))
        token = manager.generate_jwt(SimpleAuthManagerUser(username=name, role="viewer"))
        return TestClient(server, headers={"Authorization": f"Bearer {token}"})

    yield sign_in


LIFECYCLE = {"backover_start", "backover_restore", "backover_clean", "backover_abort"}


def test_the_pages_need_a_signed_in_user(env: Any) -> None:
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from backover_airflow.ui import links, web_app

    server = FastAPI()
    server.mount(links.MOUNT, web_app.app)
    web_app.app.dependency_overrides.clear()
    assert TestClient(server).get("/backover/migrations").status_code == 401


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/backover/migrations", id="list"),
        pytest.param("/backover/migrations?dag_id=someone_elses_dag", id="dag_id-bypass"),
        pytest.param(
            "/backover/migrations/m-1/files/start?dag_id=someone_elses_dag", id="file-dag_id-bypass"
        ),
        pytest.param("/backover/runs/someone_elses_dag/manual__1", id="run-tab-of-its-dag"),
    ],
)
def test_a_user_who_cannot_read_the_backover_dags_is_refused(signing_in: Any, path: str) -> None:
    outsider = signing_in({"someone_elses_dag"})
    reply = outsider.get(path)
    assert reply.status_code == 403, reply.text[:300]
    assert "read access to the Back Over DAGs" in reply.text


def test_a_reader_of_the_backover_dags_sees_the_pages_and_only_variables_it_may_read(
    signing_in: Any, migration: Migration, set_environment: Any
) -> None:
    migration.start()
    set_environment({"secret_ids": "hunter2-not-an-environment"}, "other_team")
    reader = signing_in(LIFECYCLE)
    assert reader.get("/backover/migrations").status_code == 200
    assert reader.get("/backover/migrations?environment=backover_rehearsal").status_code == 400  # not set
    # Another Variable: only with read access to it, and a Variable that does not validate echoes nothing.
    assert reader.get("/backover/migrations?environment=other_team").status_code == 403
    allowed = signing_in(LIFECYCLE, frozenset({"other_team"})).get(
        "/backover/migrations?environment=other_team"
    )
    assert allowed.status_code == 400 and "hunter2" not in allowed.text
    assert "not a valid Back Over environment" in allowed.text
    # A run's tab needs its own DAG's runs too.
    assert reader.get("/backover/runs/someone_elses_dag/manual__1").status_code == 403
    assert reader.get("/backover/runs/backover_start/manual__none").status_code == 404


def test_the_list_page_reads_each_segment_once_and_none_of_a_cleaned_migration(
    client: Any, migration: Migration, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two migrations of 30 segments (gzip): one capturing, one whose clean-up deleted them but kept
    the checkpoint; one list view HEADs 24 segments of the first (+1 to find the compression) and
    none of the other (its clean-up started)."""
    from botocore.client import BaseClient

    wall = int(now().timestamp())
    capturing = migration
    cleaned = Migration(
        MigrationLayout(migration.layout.bucket, migration.layout.prefix, "z-cleaned"), migration.s3
    )
    for m, keep in ((capturing, True), (cleaned, False)):
        m.start()
        for seq in range(1, 31):
            body, info = segments.build(
                [b"\x05\x00\x00\x00\x00"],
                Timestamp(wall - 100 + seq, 1),
                Timestamp(wall - 100 + seq, 2),
                "gzip",
                migration_id=m.layout.migration_id,
                seq=seq,
            )
            if keep:
                m.s3.put_bytes(m.layout.segment(seq, "gzip"), body, metadata=info.metadata())
        m.replicator("drained", last=Timestamp(wall - 70, 2), last_seq=30, events=30)
    cleaned.freeze()
    cleaned.clean(deleted=30)

    calls: list[tuple[str, str]] = []
    real = BaseClient._make_api_call

    def counted(self: Any, operation: str, params: dict[str, Any]) -> Any:
        calls.append((operation, str(params.get("Key", ""))))
        return real(self, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", counted)
    page = client.get("/backover/migrations")
    assert page.status_code == 200
    segment_heads = [key for op, key in calls if op == "HeadObject" and "/changes/0" in key]
    assert len(segment_heads) == 25, segment_heads
    assert not [key for key in segment_heads if "/z-cleaned/" in key]
    assert len(calls) <= 25 + 2 * 20, calls  # and some 20 reads of each migration's records
