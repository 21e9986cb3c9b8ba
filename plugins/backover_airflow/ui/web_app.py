"""The plugin's FastAPI app: the Migrations pages, served by Airflow's API server at ``/backover``.

Plugin apps are not protected by Airflow on their own: the app's one dependency (:func:`signed_in`,
so a new route cannot miss it) signs the user in as Airflow's API does (the UI's session cookie or a
bearer token; 401 without one) and asks the auth manager (:func:`authorized`; 403) for read access
to each lifecycle DAG, named here (a ``?dag_id=`` in the URL changes nothing), to the runs of a run
tab's DAG, and to the Variable ``?environment=`` names unless a DAG's Param defaults to it
(``backover``, ``backover_rehearsal``). A page reads that Variable (default ``backover``;
:func:`backover_airflow.config.environment`, the tasks' own reader: only a Variable that validates
is used, and a refusal echoes none of its values) and S3 through
:class:`~backover_airflow.hooks.migration.MigrationHook` (connection ``aws_default``, as the
tasks), read-only: nothing here writes. Bad input (an unknown Variable, a malformed migration id,
an unknown file) answers one line and status 400/404; S3 that cannot be read answers 502 with the
reason; a migration whose records are damaged shows as failed with the record's own line.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

from botocore.exceptions import BotoCoreError
from fastapi import Depends, FastAPI, HTTPException, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from backover import state
from backover.errors import BackoverError, UsageError
from backover.layout import MigrationLayout, check_migration_id, migrations_root
from backover.s3objects import S3Objects
from backover.state import AbortRecord, BackupManifest, VerifyLiveRecord
from backover.sync.status import sync_status
from backover_airflow import config
from backover_airflow.hooks.migration import MigrationHook
from backover_airflow.ui import html_pages, lag_history, links
from backover_airflow.ui.html_pages import Environment
from backover_airflow.ui.lag_history import LagHistory
from backover_airflow.ui.overview import Folder, MigrationOverview, damaged, overview

log = logging.getLogger(__name__)

#: The AWS connection the pages read S3 with (the tasks' default too).
AWS_CONN_ID = "aws_default"
#: Segments sampled per migration for the list page's charts, and for a migration's own page.
LIST_POINTS = 24
PAGE_POINTS = 120
#: At most this many migration folders on the list page (the last ones in key order).
MAX_MIGRATIONS = 100
#: Migrations read at once for the list page.
READERS = 8


class Refusal(Exception):
    """A request answered with one line (``status``: 400 bad input, 404 absent, 502 S3)."""

    def __init__(self, status: int, line: str, environment: str | None = None) -> None:
        super().__init__(line)
        self.status = status
        self.line = line
        self.environment = environment


#: The DAGs whose readers may open the pages: the lifecycle's, whose runs write what the pages show.
LIFECYCLE_DAG_IDS = ("backover_start", "backover_restore", "backover_clean", "backover_abort")
#: The environments the DAGs' own ``environment`` Params default to: reading one needs no more than
#: access to the DAGs; any other ``?environment=`` needs read access to that Variable too.
DAG_ENVIRONMENTS = (config.DEFAULT_VARIABLE, config.REHEARSAL_VARIABLE)
#: What a page accepts as a Variable name (Airflow's keys are at most 250 characters).
_VARIABLE_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,250}")
FORBIDDEN = (
    "the Migrations pages need read access to the Back Over DAGs "
    f"({', '.join(LIFECYCLE_DAG_IDS)}), to a run's DAG for its tab, and to the Variable that "
    "?environment= names unless it is a DAG's default"
)


def authorized(request: Request, user: Any) -> bool:
    """Whether ``user`` may see the page ``request`` asks for, by Airflow's auth manager: read access
    to each lifecycle DAG (named here, never taken from the request: a ``?dag_id=`` changes
    nothing), to the runs of the DAG a run tab's path names, and to the Variable ``?environment=``
    names unless the DAGs default to it."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import (
        DagAccessEntity,
        DagDetails,
        VariableDetails,
    )
    from airflow.models.dag import DagModel

    run_dag = request.path_params.get("dag_id")
    dag_ids = [*LIFECYCLE_DAG_IDS, *([run_dag] if run_dag else [])]
    teams = DagModel.get_dag_id_to_team_name_mapping(dag_ids)
    asked: list[Any] = [
        {"method": "GET", "details": DagDetails(id=dag_id, team_name=teams.get(dag_id))}
        for dag_id in LIFECYCLE_DAG_IDS
    ]
    if run_dag:
        details = DagDetails(id=run_dag, team_name=teams.get(run_dag))
        asked.append({"method": "GET", "access_entity": DagAccessEntity.RUN, "details": details})
    manager = get_auth_manager()
    if not manager.batch_is_authorized_dag(asked, user=user):
        return False
    environment = request.query_params.get("environment")
    if environment is None or environment in DAG_ENVIRONMENTS:
        return True
    return bool(
        manager.is_authorized_variable(method="GET", details=VariableDetails(key=environment), user=user)
    )


async def signed_in(request: Request) -> None:
    """Airflow's own authentication, as its API's routes apply it: the user of the bearer token or
    the UI's session cookie (401 without one), then :func:`authorized` (403). The app's dependency:
    every route has it."""
    from airflow.api_fastapi.core_api import security

    credentials = await security.bearer_scheme(request)
    user = await security.get_user(request, None, credentials)
    if not await run_in_threadpool(authorized, request, user):
        raise HTTPException(status.HTTP_403_FORBIDDEN, FORBIDDEN)


app = FastAPI(
    title="Back Over migrations",
    docs_url=None,
    redoc_url=None,
    openapi_url=None,
    dependencies=[Depends(signed_in)],
)


@app.exception_handler(Refusal)
async def _refused(_request: Request, e: Refusal) -> HTMLResponse:
    return HTMLResponse(html_pages.error_page(e.line, e.environment), status_code=e.status)


def _environment(name: str) -> config.BackoverConfig:
    """The environment Variable ``name``, validated; one line that echoes none of its values (a
    Variable that is not a Back Over environment may hold anything)."""
    if not _VARIABLE_NAME.fullmatch(name):
        raise Refusal(400, "?environment= must name an Airflow Variable (letters, digits, . _ -)")
    try:
        return config.environment({"environment": name})
    except config.ConfigError:
        raise Refusal(
            400,
            f"Airflow Variable {name!r} is not set or not a valid Back Over environment "
            "(backover_start's preflight says why)",
            name,
        ) from None


def _shown(env: config.BackoverConfig) -> Environment:
    return Environment(variable=env.variable, bucket=env.bucket, prefix=env.prefix)


def _layout(env: config.BackoverConfig, migration_id: str) -> MigrationLayout:
    try:
        return env.layout(migration_id)
    except UsageError as e:
        raise Refusal(400, str(e), env.variable) from None


def _s3_failure(e: Exception, env: config.BackoverConfig) -> Refusal:
    reason = str(e).splitlines()[0] if str(e) else type(e).__name__
    log.warning("Migrations page: S3 of environment %s: %s", env.variable, reason)
    return Refusal(502, f"S3 cannot be read for bucket {env.bucket!r}: {reason}", env.variable)


def read_folder(hook: MigrationHook, layout: MigrationLayout) -> Folder:
    """Every record a page shows of one migration (:class:`backover.state.RecordError` when one
    is damaged)."""
    s3 = hook.objects(layout)
    snap = hook.snapshot(layout)
    verify_live = state.read(s3, layout.verify_live_report, VerifyLiveRecord)
    aborted = state.read(s3, layout.abort_state, AbortRecord)
    records = {
        "start": snap.start,
        "replicator": snap.replicator,
        "freeze": snap.freeze,
        "restore": snap.restore,
        "verify-live": verify_live,
        "verify": snap.verify,
        "clean": snap.clean,
        "abort": aborted,
    }
    present = {name for name, record in records.items() if record is not None}
    present |= {
        name for name in ("lag", "rehearsal") if s3.head(getattr(layout, links.FILES[name])) is not None
    }
    return Folder(
        snapshot=snap,
        verify_live=verify_live,
        backup=state.read(s3, layout.backup_manifest("documentdb"), BackupManifest),
        stop_requested=s3.head(layout.stop_request) is not None,
        abort=aborted,
        sync_planned=s3.head(layout.sync_plan) is not None,
        sync_complete=s3.head(layout.sync_complete) is not None,
        files=frozenset(present),
    )


def _location(layout: MigrationLayout) -> str:
    return f"s3://{layout.bucket}/{layout.root}"


def look(
    hook: MigrationHook, env: config.BackoverConfig, layout: MigrationLayout, points: int
) -> tuple[MigrationOverview, LagHistory, Folder | None]:
    """One migration's overview and lag history; a damaged record makes a failed row, not an error."""
    try:
        folder = read_folder(hook, layout)
        s3 = hook.objects(layout)
        recorded = lag_history.read(s3, layout) if "lag" in folder.files else None
        snap = folder.snapshot
        history = lag_history.history(
            s3, layout, snap.replicator, snap.restore, points, recorded, segments=snap.clean is None
        )
    except state.RecordError as e:
        return damaged(layout.migration_id, _location(layout), str(e)), LagHistory(layout.migration_id), None
    seen = overview(
        layout.migration_id, _location(layout), folder, heartbeat_max_age=env.heartbeat_max_age_seconds
    )
    return seen, history, folder


def migration_ids(s3: S3Objects, prefix: str) -> list[str]:
    """The folders under the prefix whose names are migration ids, in key order."""
    ids = []
    for name in s3.list_folders(migrations_root(prefix)):
        try:
            ids.append(check_migration_id(name))
        except UsageError:
            continue  # not a migration's folder (something else kept under the prefix)
    return ids


def _started(row: tuple[MigrationOverview, LagHistory, Folder | None]) -> datetime:
    started = row[0].started_at
    if started is None:
        return datetime.min.replace(tzinfo=UTC)
    return started if started.tzinfo is not None else started.replace(tzinfo=UTC)


@app.get(links.MIGRATIONS, response_class=HTMLResponse)
def migrations_list(environment: str = config.DEFAULT_VARIABLE) -> str:
    """Every migration of the environment's bucket and prefix, newest first."""
    env = _environment(environment)
    hook = MigrationHook(aws_conn_id=AWS_CONN_ID)
    try:
        s3 = S3Objects(env.bucket, client=hook.conn)
        ids = migration_ids(s3, env.prefix)
        shown = ids[-MAX_MIGRATIONS:]
        with ThreadPoolExecutor(max_workers=READERS) as pool:
            rows = list(pool.map(lambda mid: look(hook, env, env.layout(mid), LIST_POINTS), shown))
    except (BackoverError, BotoCoreError) as e:
        raise _s3_failure(e, env) from None
    rows.sort(key=_started, reverse=True)
    return html_pages.migrations_page(_shown(env), [(o, h) for o, h, _ in rows], total=len(ids))


def console_url(hook: MigrationHook, layout: MigrationLayout) -> str | None:
    """The AWS S3 console's view of the migration's folder, when S3 is AWS's."""
    endpoint = urlsplit(str(getattr(hook.conn.meta, "endpoint_url", "") or "")).hostname or ""
    if not endpoint.endswith(".amazonaws.com"):
        return None
    return f"https://s3.console.aws.amazon.com/s3/buckets/{quote(layout.bucket)}?prefix={quote(layout.root)}"


@app.get(links.MIGRATION, response_class=HTMLResponse)
def migration_detail(migration_id: str, environment: str = config.DEFAULT_VARIABLE) -> str:
    """One migration: its phase and numbers, its lag chart, links to its files."""
    env = _environment(environment)
    layout = _layout(env, migration_id)
    hook = MigrationHook(aws_conn_id=AWS_CONN_ID)
    try:
        seen, history, folder = look(hook, env, layout, PAGE_POINTS)
        if folder is not None and folder.empty and not folder.files:
            raise Refusal(404, f"no migration {migration_id!r} in {_location(layout)}", env.variable)
        sync = (
            sync_status(hook.objects(layout), layout) if folder is not None and folder.sync_planned else None
        )
        console = console_url(hook, layout)
    except state.RecordError as e:
        sync, console = None, None
        seen = damaged(migration_id, _location(layout), str(e))
    except (BackoverError, BotoCoreError) as e:
        raise _s3_failure(e, env) from None
    report = folder.snapshot.verify if folder is not None else None
    namespaces = [(n.ns, n.line()) for n in report.namespaces] if report is not None else []
    return html_pages.migration_page(
        _shown(env),
        seen,
        history,
        recorded=history.recorded_at is not None,
        layout=layout,
        console_url=console,
        sync=sync,
        namespaces=namespaces,
    )


@app.get(links.REHEARSAL, response_class=HTMLResponse)
def rehearsal_report(migration_id: str, environment: str = config.DEFAULT_VARIABLE) -> str:
    """The rehearsal's report (``reports/rehearsal.json``) on one page, with the lag chart."""
    env = _environment(environment)
    layout = _layout(env, migration_id)
    hook = MigrationHook(aws_conn_id=AWS_CONN_ID)
    try:
        s3 = hook.objects(layout)
        report = s3.get_json(layout.rehearsal_report)
        recorded = lag_history.read(s3, layout)
        history = lag_history.history(
            s3,
            layout,
            hook.replicator_checkpoint(layout),
            hook.restore_checkpoint(layout),
            PAGE_POINTS,
            recorded,
        )
    except state.RecordError as e:
        raise Refusal(502, str(e), env.variable) from None
    except (BackoverError, BotoCoreError) as e:
        raise _s3_failure(e, env) from None
    if report is not None and not isinstance(report, Mapping):
        raise Refusal(
            502, f"s3://{layout.bucket}/{layout.rehearsal_report} is not a rehearsal report", env.variable
        )
    return html_pages.rehearsal_page(
        _shown(env), migration_id, report, history, recorded=recorded is not None
    )


@app.get(links.FILE)
def migration_file(migration_id: str, name: str, environment: str = config.DEFAULT_VARIABLE) -> Response:
    """One of the migration's state objects or reports, as stored (JSON)."""
    env = _environment(environment)
    layout = _layout(env, migration_id)
    if name not in links.FILES:
        raise Refusal(404, f"no file {name!r}: one of {', '.join(links.FILES)}", env.variable)
    key = getattr(layout, links.FILES[name])
    try:
        data = MigrationHook(aws_conn_id=AWS_CONN_ID).objects(layout).get_bytes(key)
    except (BackoverError, BotoCoreError) as e:
        raise _s3_failure(e, env) from None
    if data is None:
        raise Refusal(404, f"s3://{layout.bucket}/{key} does not exist", env.variable)
    return Response(content=data, media_type="application/json")


def migration_of(
    dag_id: str, conf: Mapping[str, Any] | None, results: Iterable[Any]
) -> tuple[str, str] | None:
    """``(migration id, environment)`` of a run of ``dag_id``: its conf's, else the first task result
    (XCom return value) that names one (the rehearsal's plan); None when nothing names a valid id.
    The environment: :func:`backover_airflow.config.run_environment` of what named the id."""
    for found in (conf or {}, *results):
        if isinstance(found, str):
            try:
                found = json.loads(found)
            except ValueError:
                continue
        if not isinstance(found, Mapping):
            continue
        migration_id = found.get("migration_id")
        if isinstance(migration_id, str) and migration_id:
            try:
                check_migration_id(migration_id)
            except UsageError:
                return None
            return migration_id, config.run_environment(dag_id, found)
    return None


def _run_records(dag_id: str, run_id: str) -> tuple[bool, Mapping[str, Any] | None, list[Any]]:
    """Whether the run exists, its conf, and its tasks' return values (task id order)."""
    from airflow.models.dagrun import DagRun
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        run = session.scalar(select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id))
        if run is None:
            return False, None, []
        values = session.scalars(
            select(XComModel.value)
            .where(XComModel.dag_id == dag_id, XComModel.run_id == run_id, XComModel.key == "return_value")
            .order_by(XComModel.task_id)
        ).all()
        return True, dict(run.conf or {}), list(values)


@app.get(links.RUN, response_class=HTMLResponse, response_model=None)
def run_tab(dag_id: str, run_id: str) -> Response | str:
    """A DAG run's "Migration" tab: its migration's page (the rehearsal's: its report)."""
    exists, conf, results = _run_records(dag_id, run_id)
    if not exists:
        raise Refusal(404, f"no run {run_id!r} of DAG {dag_id!r}")
    found = migration_of(dag_id, conf, results)
    if found is None:
        return html_pages.no_migration_page(dag_id, run_id, config.run_environment(dag_id, conf))
    migration_id, environment = found
    page = links.REHEARSAL if dag_id == config.REHEARSAL_DAG_ID else links.MIGRATION
    return RedirectResponse(
        links.link(links.RUN, page, environment, migration_id=migration_id), status_code=303
    )
