"""Label every Back Over DAG run with its migration id: the run's note, shown in the UI's run lists.

Run ids are Airflow's (``manual__<timestamp>``): a DAG cannot make them from the run's conf
(``Timetable.generate_run_id`` is not given it), and no task can set its own run's note or id (the
Task SDK's execution API has no such call). Airflow's listeners can: this plugin's
``on_dag_run_running`` runs in the scheduler when a run starts, with the run attached to the
scheduler's session, and gives a ``backover_*`` run whose conf names a migration the note
``migration <id> · environment <Variable>`` (``airflow dags test`` and ``DAG.test()`` report no
start, so there the note is set when the run ends). A note the user wrote in the trigger form is
kept. A listener's error is logged by Airflow and never fails a run.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from airflow.listeners import hookimpl
from airflow.plugins_manager import AirflowPlugin

from backover_airflow.config import run_environment

DAG_PREFIX = "backover_"


def label(dag_id: str, conf: Mapping[str, Any] | None) -> str | None:
    """The note of a run of ``dag_id`` with this conf, or None when it names no migration (the
    environment: :func:`backover_airflow.config.run_environment`)."""
    migration_id = (conf or {}).get("migration_id")
    if not isinstance(migration_id, str) or not migration_id.strip():
        return None
    return f"migration {migration_id.strip()} · environment {run_environment(dag_id, conf)}"


def _label(dag_run: Any) -> None:
    if not str(dag_run.dag_id).startswith(DAG_PREFIX) or dag_run.note:
        return
    note = label(str(dag_run.dag_id), dag_run.conf)
    if note is not None:
        dag_run.note = note


@hookimpl
def on_dag_run_running(dag_run: Any, msg: str) -> None:
    _label(dag_run)


@hookimpl
def on_dag_run_success(dag_run: Any, msg: str) -> None:
    _label(dag_run)


@hookimpl
def on_dag_run_failed(dag_run: Any, msg: str) -> None:
    _label(dag_run)


class BackoverRunLabels(AirflowPlugin):
    """Registers this module's listeners (Airflow loads the plugins folder's modules)."""

    name = "backover_run_labels"
    listeners = [sys.modules[__name__]]
