"""Registers the Migrations pages with Airflow (Airflow 3.1+ plugin interface).

* ``fastapi_apps``: :data:`backover_airflow.ui.web_app.app`, mounted by the API server at
  ``/backover`` (under ``[api] base_url``);
* ``external_views``: "Migrations" at the top of the navigation bar (``/plugin/migrations``, the list page in
  the UI's frame) and a "Migration" tab on every DAG run (``{DAG_ID}``/``{RUN_ID}`` filled in by
  the UI): that run's migration, the rehearsal's report for a ``backover_rehearsal`` run.

Hrefs are relative (no leading ``/``): the UI resolves them against its base URL. Nothing may
import this module: Airflow loads it from the plugins folder, and a second import would register
the plugin twice.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from backover_airflow.ui import links
from backover_airflow.ui.web_app import app


class BackoverMigrationsPlugin(AirflowPlugin):
    """The Migrations page, its app and its entries in the UI."""

    name = "backover_migrations"
    fastapi_apps = [{"app": app, "url_prefix": links.MOUNT, "name": "Back Over migrations"}]
    external_views = [
        {
            "name": "Migrations",
            "href": (links.MOUNT + links.MIGRATIONS).removeprefix("/"),
            "url_route": links.NAV_ROUTE,
            "destination": "nav",
            "nav_top_level": True,
        },
        {
            "name": "Migration",
            "href": (links.MOUNT + links.RUN)
            .removeprefix("/")
            .replace("{dag_id}", "{DAG_ID}")
            .replace("{run_id}", "{RUN_ID}"),
            "url_route": links.RUN_TAB_ROUTE,
            "destination": "dag_run",
        },
    ]
