"""Where the plugin's pages are: the one place that names their paths.

The app is mounted at :data:`MOUNT` under the API server's base URL (``[api] base_url``). Pages
link to each other with relative URLs, so they work behind a proxy that serves Airflow under a
path; :func:`page_url` is the absolute URL for a task log.
"""

from __future__ import annotations

from urllib.parse import quote, urlencode

from backover_airflow.config import DEFAULT_VARIABLE

#: Where the API server mounts the plugin's FastAPI app.
MOUNT = "/backover"
#: The pages, relative to :data:`MOUNT` (FastAPI route templates).
MIGRATIONS = "/migrations"
MIGRATION = "/migrations/{migration_id}"
REHEARSAL = "/migrations/{migration_id}/rehearsal"
FILE = "/migrations/{migration_id}/files/{name}"
RUN = "/runs/{dag_id}/{run_id}"
#: The navigation entry's route in the UI (``/plugin/<url_route>``).
NAV_ROUTE = "migrations"
RUN_TAB_ROUTE = "backover-migration"


def _query(environment: str) -> str:
    return "" if environment == DEFAULT_VARIABLE else "?" + urlencode({"environment": environment})


def _path(template: str, **parts: str) -> str:
    return template.format(**{k: quote(v, safe="") for k, v in parts.items()})


def link(here: str, page: str, environment: str, **parts: str) -> str:
    """A relative link from the page ``here`` (a template) to ``page`` (a template, ``parts`` filled
    in): up as many folders as ``here`` is deep, so it works under any base URL."""
    depth = here.strip("/").count("/")
    return "../" * depth + _path(page, **parts).removeprefix("/") + _query(environment)


def page_url(base_url: str, page: str, environment: str, **parts: str) -> str:
    """The absolute URL of ``page`` under the API server's ``base_url``."""
    return base_url.rstrip("/") + MOUNT + _path(page, **parts) + _query(environment)


#: The files of a migration's folder a page links to: name in the URL -> the
#: :class:`~backover.layout.MigrationLayout` property that names its key (nothing else is served).
FILES = {
    "start": "start_state",
    "replicator": "replicator_checkpoint",
    "freeze": "freeze_state",
    "restore": "restore_checkpoint",
    "verify-live": "verify_live_report",
    "verify": "verify_report",
    "clean": "clean_state",
    "abort": "abort_state",
    "lag": "lag_history",
    "rehearsal": "rehearsal_report",
}
