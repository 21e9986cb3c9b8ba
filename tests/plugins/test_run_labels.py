"""Each Back Over DAG run gets its migration id as its note, through Airflow's own listener call.

A DagRun in the session's SQLite metadata DB goes to ``running`` and Airflow's
``DagRun.notify_dagrun_state_changed`` calls the registered listeners, as the scheduler does when a
run starts; the note read back from the database is what the UI's run lists show.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture
def listening(airflow_home: Any) -> Iterator[Any]:
    """The plugin's listeners registered with Airflow's listener manager for one test."""
    from airflow.listeners.listener import get_listener_manager

    from backover_airflow import run_labels

    manager = get_listener_manager()
    manager.add_listener(run_labels)
    try:
        yield run_labels
    finally:
        manager.pm.unregister(run_labels)


def _run(dag_id: str, conf: dict[str, Any], note: str | None = None) -> str | None:
    """Start a run of ``dag_id`` with ``conf`` as the scheduler does; its note, read back."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState
    from airflow.utils.types import DagRunType

    run_id = f"manual__{uuid.uuid4().hex}"
    with create_session() as session:
        run = DagRun(dag_id=dag_id, run_id=run_id, run_type=DagRunType.MANUAL, conf=conf, note=note)
        run.state = DagRunState.RUNNING
        session.add(run)
        session.flush()
        run.notify_dagrun_state_changed(msg="started")
    with create_session() as session:
        found = session.query(DagRun).filter(DagRun.run_id == run_id).one()
        return found.note


def test_a_backover_run_is_noted_with_its_migration_id_and_environment(listening: Any) -> None:
    assert (
        _run("backover_start", {"migration_id": "orders-2026-06", "environment": "backover_prod"})
        == "migration orders-2026-06 · environment backover_prod"
    )
    assert (
        _run("backover_clean", {"migration_id": "orders-2026-06"})
        == "migration orders-2026-06 · environment backover"
    )


@pytest.mark.parametrize(
    ("dag_id", "conf", "expected"),
    [
        pytest.param(
            "backover_rehearsal", {"migration_id": "r-1"}, "backover_rehearsal", id="rehearsal-default"
        ),
        pytest.param("backover_rehearsal_weekly", {}, "backover_rehearsal", id="weekly-default"),
        pytest.param("backover_start", {"migration_id": "m-1"}, "backover", id="lifecycle-default"),
        pytest.param("backover_rehearsal", {"environment": "rehearsal_eu"}, "rehearsal_eu", id="conf-wins"),
        pytest.param("backover_clean", {"environment": ""}, "backover", id="empty-is-the-default"),
    ],
)
def test_a_runs_environment_is_its_conf_else_its_dags_own_default(
    dag_id: str, conf: dict[str, Any], expected: str
) -> None:
    """The Param defaults of the DAGs themselves: backover_rehearsal runs on backover_rehearsal."""
    from backover_airflow.config import run_environment

    assert run_environment(dag_id, conf) == expected


def test_a_rehearsal_run_is_noted_with_the_rehearsal_environment(listening: Any) -> None:
    assert (
        _run("backover_rehearsal", {"migration_id": "rehearsal-20261202"})
        == "migration rehearsal-20261202 · environment backover_rehearsal"
    )


@pytest.mark.parametrize(
    ("dag_id", "conf", "note", "expected"),
    [
        pytest.param(
            "backover_start",
            {"migration_id": "m1"},
            "cutover of shop",
            "cutover of shop",
            id="user-note-kept",
        ),
        pytest.param("backover_rehearsal", {"migration_id": ""}, None, None, id="no-migration-id-yet"),
        pytest.param("someone_elses_dag", {"migration_id": "m1"}, None, None, id="not-a-backover-dag"),
    ],
)
def test_a_run_is_left_as_it_is_when_it_has_a_note_or_no_migration(
    listening: Any, dag_id: str, conf: dict[str, Any], note: str | None, expected: str | None
) -> None:
    assert _run(dag_id, conf, note) == expected


def test_the_plugin_registers_the_listener(airflow_home: Any) -> None:
    from backover_airflow import run_labels

    assert run_labels.BackoverRunLabels.listeners == [run_labels]
    assert callable(run_labels.on_dag_run_running)
