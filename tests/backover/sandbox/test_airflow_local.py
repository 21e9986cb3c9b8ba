"""The local Airflow's environment: the project's DAGs, the sandbox's endpoints, nothing from outside."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from backover_sandbox.airflow_local import LocalAirflow

REPO = Path(__file__).resolve().parents[3]


def test_environment_runs_the_projects_dags_against_the_sandbox_only(tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "https://real-aws.example")
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", "aws://from-the-caller")
    airflow = LocalAirflow(tmp_path / "home", REPO, {"AWS_ENDPOINT_URL": "http://127.0.0.1:47000"})
    env = airflow.environment()
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:47000"
    assert "AIRFLOW_CONN_AWS_DEFAULT" not in env  # only the sandbox's connections
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == str(REPO / "dags")
    assert env["AIRFLOW__CORE__PLUGINS_FOLDER"] == str(REPO / "plugins")
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].endswith(str(tmp_path / "home" / "airflow.db"))
    # `airflow standalone` starts its components as `airflow ...`: the venv's must come first on PATH.
    found = shutil.which("airflow", path=env["PATH"])
    assert found is not None and Path(found).parent == Path(airflow.airflow).parent
    assert os.access(found, os.X_OK)
