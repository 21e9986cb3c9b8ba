"""Fixtures shared by the whole suite: moto, the local AWS runner, the MongoDB stand-ins, Airflow.

Everything here is session-scoped and started on free loopback ports:

* ``aws_env``: fake credentials and region (``testing``/``us-east-1``) in ``os.environ``.
* ``moto_server``: moto's threaded server (S3, Secrets Manager, EC2 ...); its base URL.
* ``ec2_instances``: two running and one stopped EC2 instance in moto (:class:`Instances`).
* ``runner_workdir`` / ``runner``: the local AWS runner (Lambda Invoke + SSM Run Command), checking
  instance ids against moto's EC2; a :class:`~backover_sandbox.runner.RunnerServer` (``.url``).
* ``airflow_home``: an initialised Airflow 3 metadata DB in a temporary ``AIRFLOW_HOME``.
* ``airflow_aws_connection``: ``AIRFLOW_CONN_AWS_DEFAULT`` routing lambda/ssm to the runner and
  ec2/s3/secretsmanager to moto.
* ``standins``: both MongoDB stand-in flavours (``documentdb``, ``mongodb``) with a root user;
  ``standin_password`` is root's password; ``server.uri("root", standin_password)`` a URI.
* ``aws_endpoints``: ``AWS_ENDPOINT_URL`` pointed at moto (and lambda/ssm at the runner when it is
  up) for the duration of one test, so code under test uses boto3's default clients unchanged.
* ``bucket``: a fresh S3 bucket in moto for one test.
* ``run_dag``: writes a DAG file into the Airflow DAGs folder, runs it with ``DAG.test()`` and
  returns a :class:`DagResult` (run state, task states, XCom return values).

Airflow reads ``AIRFLOW_HOME`` and its database URL when ``airflow`` is first imported, so test
modules must import Airflow only inside tests or fixtures that depend on ``airflow_home``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest

from backover_sandbox.runner import RunnerServer, start_in_thread

# slow_tier: the check that tests starting Python processes or running DAGs are marked slow, and
# the summary line of what ``-m "not slow"`` left out; pytester: to test that check.
pytest_plugins = ["slow_tier", "pytester"]

REGION = "us-east-1"


@pytest.fixture(scope="session")
def aws_env() -> Iterator[None]:
    """Fake AWS credentials and region for every boto3 client of the session (no real AWS)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_ACCESS_KEY_ID", "testing")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        mp.setenv("AWS_DEFAULT_REGION", REGION)
        # The worker commands publish CloudWatch metrics only in the tests that ask for them.
        mp.setenv("BACKOVER_METRICS", "off")
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL"):
            mp.delenv(name, raising=False)
        yield


@pytest.fixture(scope="session")
def moto_server(aws_env: None) -> Iterator[str]:
    """Start moto's server on a free loopback port; yield its base URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@dataclass(frozen=True)
class Instances:
    """EC2 instances created in moto for SSM tests."""

    running: str
    other_running: str
    stopped: str


@pytest.fixture(scope="session")
def ec2_instances(moto_server: str) -> Instances:
    """Create two running instances and one stopped instance in moto's EC2."""
    ec2 = boto3.client("ec2", endpoint_url=moto_server, region_name=REGION)
    # One of moto's Amazon Linux 2 images (listing all 1,300 of its images takes seconds).
    amazon_linux = [{"Name": "name", "Values": ["amzn2-ami-hvm-*-x86_64-gp2"]}]
    image_id = ec2.describe_images(Owners=["amazon"], Filters=amazon_linux)["Images"][0]["ImageId"]
    reply = ec2.run_instances(ImageId=image_id, MinCount=3, MaxCount=3, InstanceType="t3.micro")
    running, other, stopped = (instance["InstanceId"] for instance in reply["Instances"])
    ec2.stop_instances(InstanceIds=[stopped])
    return Instances(running=running, other_running=other, stopped=stopped)


@pytest.fixture(scope="session")
def runner_workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The runner's default working directory (SSM commands without ``workingDirectory`` run here)."""
    return tmp_path_factory.mktemp("runner-workdir")


@pytest.fixture(scope="session")
def runner(moto_server: str, runner_workdir: Path) -> Iterator[RunnerServer]:
    """Start the local AWS runner in a thread, checking instances against moto's EC2."""
    server, _port = start_in_thread(ec2_endpoint=moto_server, workdir=runner_workdir, region=REGION)
    try:
        yield server
    finally:
        server.stop()


@dataclass(frozen=True)
class AirflowHome:
    """Where the session's Airflow lives."""

    home: Path
    dags_folder: Path
    database: Path


@pytest.fixture(scope="session")
def airflow_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowHome]:
    """Point Airflow at a fresh ``AIRFLOW_HOME`` with a SQLite metadata DB and create its tables.

    Sets ``AIRFLOW_HOME``, ``AIRFLOW__DATABASE__SQL_ALCHEMY_CONN`` (SQLite file in that home),
    ``AIRFLOW__CORE__DAGS_FOLDER`` (``home/dags``), ``AIRFLOW__CORE__LOAD_EXAMPLES=False`` and
    ``AIRFLOW__LOGGING__BASE_LOG_FOLDER``, then runs ``airflow.utils.db.initdb()`` in-process
    (about 5 s; ``airflow db migrate`` in a subprocess works too but is slower). With Airflow
    3.3.2, ``DAG.test()`` also needs the DAG to be in a file of the DAGs folder: use ``run_dag``.
    If Airflow was already imported, its settings and ORM are reconfigured for the new database.
    """
    home = tmp_path_factory.mktemp("airflow-home")
    dags = home / "dags"
    dags.mkdir()
    database = home / "airflow.db"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIRFLOW_HOME", str(home))
        mp.setenv("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{database}")
        mp.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(dags))
        mp.setenv("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
        mp.setenv("AIRFLOW__LOGGING__BASE_LOG_FOLDER", str(home / "logs"))
        already_imported = "airflow.settings" in sys.modules
        from airflow import settings

        if already_imported:
            settings.dispose_orm()
            settings.configure_vars()
            settings.configure_orm()
        from airflow.utils import db

        db.initdb()
        yield AirflowHome(home=home, dags_folder=dags, database=database)


@pytest.fixture(scope="session")
def airflow_aws_connection(
    airflow_home: AirflowHome, runner: RunnerServer, moto_server: str
) -> Iterator[str]:
    """Define the ``aws_default`` connection (env var) routing Lambda/SSM to the runner, the rest to moto."""
    extra = {
        "region_name": REGION,
        "service_config": {
            "lambda": {"endpoint_url": runner.url},
            "ssm": {"endpoint_url": runner.url},
            "ec2": {"endpoint_url": moto_server},
            "s3": {"endpoint_url": moto_server},
            "secretsmanager": {"endpoint_url": moto_server},
            "sts": {"endpoint_url": moto_server},
            "logs": {"endpoint_url": moto_server},
        },
    }
    connection = {"conn_type": "aws", "login": "testing", "password": "testing", "extra": extra}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps(connection))
        yield "aws_default"


@dataclass
class DagResult:
    """The outcome of one ``DAG.test()`` run."""

    state: str
    task_states: dict[str, str | None]
    xcom: dict[str, Any] = field(default_factory=dict)


def _state_name(state: Any) -> str | None:
    """Return an Airflow state enum as its plain value (``"success"``), None stays None."""
    return None if state is None else str(getattr(state, "value", state))


def _load_dag(path: Path, dag_id: str) -> Any:
    """Import the DAG file at ``path`` as a fresh module and return its DAG ``dag_id``."""
    spec = importlib.util.spec_from_file_location(f"backover_test_dag_{uuid.uuid4().hex}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    from airflow.sdk import DAG

    for value in vars(module).values():
        if isinstance(value, DAG) and value.dag_id == dag_id:
            return value
    raise LookupError(f"no DAG {dag_id!r} in {path}")


@pytest.fixture(scope="session")
def run_dag(airflow_home: AirflowHome) -> Callable[[str, str], DagResult]:
    """Return ``run(dag_id, source)``: write ``source`` as ``<dag_id>.py`` in the DAGs folder, run it
    with ``DAG.test()``, and report the run state, each task's state and each task's return value."""

    def run(dag_id: str, source: str) -> DagResult:
        from airflow.models.xcom import XComModel
        from airflow.utils.session import create_session

        path = airflow_home.dags_folder / f"{dag_id}.py"
        path.write_text(textwrap.dedent(source), encoding="utf-8")
        dag = _load_dag(path, dag_id)
        dag_run = dag.test()
        with create_session() as session:
            task_states = {
                ti.task_id: _state_name(ti.state) for ti in dag_run.get_task_instances(session=session)
            }
            rows = (
                session.query(XComModel)
                .filter(XComModel.dag_id == dag_id, XComModel.run_id == dag_run.run_id)
                .filter(XComModel.key == "return_value")
                .all()
            )
            # Task SDK XComs are stored as plain JSON; ``XComModel.deserialize_value`` would also
            # decode a string that merely looks like JSON (a Lambda payload), so read ``value``.
            xcom = {row.task_id: row.value for row in rows}
        return DagResult(state=str(_state_name(dag_run.state)), task_states=task_states, xcom=xcom)

    return run


@pytest.fixture(scope="session", autouse=True)
def _no_real_aws_endpoints() -> Iterator[None]:
    """Keep ambient ``AWS_ENDPOINT_URL_*`` settings of the machine out of the tests."""
    with pytest.MonkeyPatch.context() as mp:
        for name in list(os.environ):
            if name.startswith("AWS_ENDPOINT_URL_"):
                mp.delenv(name)
        yield


# -- MongoDB stand-ins ----------------------------------------------------------------------------
STANDIN_ROOT_USER = "root"


@pytest.fixture(scope="session")
def standin_password() -> str:
    import secrets

    return secrets.token_urlsafe(12)


@pytest.fixture(scope="session")
def standins(standin_password: str) -> Iterator[dict[str, Any]]:
    """Both stand-in flavours, started once per session; tests use their own database names."""
    from backover_sandbox.standin.server import ServerConfig
    from backover_sandbox.standin.server import start_in_thread as start_standin

    servers = {
        flavour: start_standin(
            ServerConfig(flavour=flavour, root_user=STANDIN_ROOT_USER, root_password=standin_password)
        )
        for flavour in ("mongodb", "documentdb")
    }
    yield servers
    for server in servers.values():
        server.stop()


# -- AWS endpoints for code under test ----------------------------------------------------------------
@pytest.fixture
def aws_endpoints(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """boto3's default clients go to moto during this test; returns moto's URL."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    return moto_server


@pytest.fixture(scope="session")
def _moto_s3(moto_server: str) -> Any:
    """One S3 client on moto for the fixtures (building a boto3 client costs tens of milliseconds)."""
    return boto3.client("s3", endpoint_url=moto_server, region_name=REGION)


@pytest.fixture
def bucket(aws_endpoints: str, _moto_s3: Any) -> str:
    """A fresh bucket in moto."""
    name = f"backover-test-{uuid.uuid4().hex[:12]}"
    _moto_s3.create_bucket(Bucket=name)
    return name
