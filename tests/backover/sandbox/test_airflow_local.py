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


def test_the_callers_airflow_settings_are_kept_but_not_the_ones_pointing_at_the_project(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("AIRFLOW__LOGGING__LOGGING_LEVEL", "DEBUG")
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", "/somewhere/else")
    monkeypatch.setenv("AIRFLOW_VAR_BACKOVER", '{"bucket": "the-callers"}')
    env = LocalAirflow(
        tmp_path / "home", REPO, {"AIRFLOW_VAR_BACKOVER": '{"bucket": "sandbox"}'}
    ).environment()
    assert env["AIRFLOW__LOGGING__LOGGING_LEVEL"] == "DEBUG"  # dropped before
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == str(REPO / "dags")
    assert env["AIRFLOW_VAR_BACKOVER"] == '{"bucket": "sandbox"}'


def test_one_port_moves_every_airflow_port_as_airflow_reads_them(airflow_home, monkeypatch):
    """Airflow's own configuration reads the settings: the UI, the execution API the task runners
    call (Airflow's default is localhost:8080 whatever the UI's port), both log servers."""
    from airflow.configuration import conf

    from backover_sandbox.airflow_local import server_ports

    for name, value in server_ports(9180).items():
        monkeypatch.setenv(name, value)
    assert conf.getint("api", "port") == 9180
    assert conf.get("core", "execution_api_server_url") == "http://127.0.0.1:9180/execution/"
    assert conf.getint("logging", "worker_log_server_port") == 9181
    assert conf.getint("logging", "trigger_log_server_port") == 9182
    assert conf.getint("scheduler", "scheduler_health_check_server_port") == 9183


def test_a_busy_airflow_port_is_refused_in_one_line_before_the_sandbox_starts(tmp_path, capsys):
    import socket

    from backover.cli import main

    def free(port: int) -> bool:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                return False
        return True

    for _ in range(50):  # a base whose other ports (base, +2, +3) are free: only ours is busy
        busy = socket.socket()
        busy.bind(("127.0.0.1", 0))
        log_port = busy.getsockname()[1]
        if all(free(p) for p in (log_port - 1, log_port + 1, log_port + 2)):
            break
        busy.close()
    with busy:
        busy.listen()
        code = main(["airflow", "--dir", str(tmp_path / "sandbox"), "--port", str(log_port - 1)])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith(
        f"cannot start Airflow: the worker log server port {log_port} already in use "
        "(make airflow PORT=... moves them all)"
    )
    assert "\n" not in err
    assert not (tmp_path / "sandbox").exists()  # nothing started
