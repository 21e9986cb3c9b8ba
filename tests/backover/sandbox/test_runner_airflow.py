"""The UNCHANGED Airflow Amazon provider operators against the runner, inside ``DAG.test()``.

``LambdaInvokeFunctionOperator``, ``SsmRunCommandOperator`` (with its waiter),
``SsmRunCommandCompletedSensor`` and ``SsmGetCommandInvocationOperator`` reach the runner through
the ``aws_default`` connection's ``service_config`` (see ``airflow_aws_connection`` in conftest.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import pytest

from backover_sandbox.runner import RunnerServer

pytestmark = pytest.mark.slow  # Airflow tasks against the runner (DAG runs, Lambdas)

HANDLER = """
def handler(event, context):
    print("airflow invoked", context.function_name)
    if event.get("fail"):
        raise RuntimeError("asked to fail")
    return {"doubled": event["n"] * 2, "function": context.function_name}
"""


class Instances(Protocol):
    """The ``ec2_instances`` fixture of conftest.py."""

    running: str
    other_running: str
    stopped: str


class DagResult(Protocol):
    """What the ``run_dag`` fixture of conftest.py returns."""

    state: str
    task_states: dict[str, str | None]
    xcom: dict[str, Any]


RunDag = Callable[[str, str], DagResult]


@pytest.fixture(scope="module")
def airflow_function(runner: RunnerServer, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Register a small Lambda handler with the runner; return the function name."""
    folder = tmp_path_factory.mktemp("airflow-fn")
    (folder / "handler.py").write_text(HANDLER, encoding="utf-8")
    runner.registry.put("airflow-doubler", {"handler": "handler.py:handler", "working_dir": str(folder)})
    return "airflow-doubler"


DAG_OK = """
import json

import pendulum
from airflow.providers.amazon.aws.operators.lambda_function import LambdaInvokeFunctionOperator
from airflow.providers.amazon.aws.operators.ssm import SsmGetCommandInvocationOperator, SsmRunCommandOperator
from airflow.providers.amazon.aws.sensors.ssm import SsmRunCommandCompletedSensor
from airflow.sdk import DAG

INSTANCE = {instance!r}
SCRIPT = {{"InstanceIds": [INSTANCE], "Parameters": {{"commands": ["echo airflow-ok", "echo $((6 * 7))"]}}}}

with DAG("{dag_id}", schedule=None, start_date=pendulum.datetime(2024, 1, 1), catchup=False) as dag:
    invoke = LambdaInvokeFunctionOperator(
        task_id="invoke",
        function_name={function!r},
        payload=json.dumps({{"n": 21}}),
        log_type="Tail",
    )
    run_and_wait = SsmRunCommandOperator(
        task_id="run_and_wait",
        document_name="AWS-RunShellScript",
        run_command_kwargs=SCRIPT,
        wait_for_completion=True,
        waiter_delay=1,
        waiter_max_attempts=30,
    )
    run_no_wait = SsmRunCommandOperator(
        task_id="run_no_wait",
        document_name="AWS-RunShellScript",
        run_command_kwargs={{"InstanceIds": [INSTANCE], "Parameters": {{"commands": ["sleep 1", "echo later"]}}}},
        wait_for_completion=False,
    )
    sensor = SsmRunCommandCompletedSensor(
        task_id="sensor",
        command_id="{{{{ ti.xcom_pull(task_ids='run_no_wait') }}}}",
        poke_interval=1,
        timeout=60,
    )
    get_output = SsmGetCommandInvocationOperator(
        task_id="get_output",
        command_id="{{{{ ti.xcom_pull(task_ids='run_and_wait') }}}}",
        instance_id=INSTANCE,
    )
    get_all = SsmGetCommandInvocationOperator(
        task_id="get_all",
        command_id="{{{{ ti.xcom_pull(task_ids='run_no_wait') }}}}",
    )
    run_and_wait >> get_output
    run_no_wait >> sensor >> get_all
"""

DAG_FAIL = """
import pendulum
from airflow.providers.amazon.aws.operators.lambda_function import LambdaInvokeFunctionOperator
from airflow.providers.amazon.aws.operators.ssm import SsmRunCommandOperator
from airflow.providers.amazon.aws.sensors.ssm import SsmRunCommandCompletedSensor
from airflow.sdk import DAG

INSTANCE = {instance!r}

with DAG("{dag_id}", schedule=None, start_date=pendulum.datetime(2024, 1, 1), catchup=False) as dag:
    failing_command = SsmRunCommandOperator(
        task_id="failing_command",
        document_name="AWS-RunShellScript",
        run_command_kwargs={{"InstanceIds": [INSTANCE], "Parameters": {{"commands": ["echo bad >&2", "exit 4"]}}}},
        waiter_delay=1,
        waiter_max_attempts=30,
    )
    failing_no_wait = SsmRunCommandOperator(
        task_id="failing_no_wait",
        document_name="AWS-RunShellScript",
        run_command_kwargs={{"InstanceIds": [INSTANCE], "Parameters": {{"commands": ["exit 5"]}}}},
        wait_for_completion=False,
    )
    failing_sensor = SsmRunCommandCompletedSensor(
        task_id="failing_sensor",
        command_id="{{{{ ti.xcom_pull(task_ids='failing_no_wait') }}}}",
        poke_interval=1,
        timeout=60,
    )
    failing_lambda = LambdaInvokeFunctionOperator(
        task_id="failing_lambda",
        function_name={function!r},
        payload='{{"fail": true}}',
    )
    failing_no_wait >> failing_sensor
"""


def test_provider_operators_succeed_against_the_runner(
    run_dag: RunDag, airflow_aws_connection: str, airflow_function: str, ec2_instances: Instances
) -> None:
    dag_id = "runner_operators_ok"
    source = DAG_OK.format(dag_id=dag_id, instance=ec2_instances.running, function=airflow_function)
    result = run_dag(dag_id, source)
    assert result.state == "success", result.task_states
    assert set(result.task_states.values()) == {"success"}
    assert json.loads(result.xcom["invoke"]) == {"doubled": 42, "function": airflow_function}
    output = result.xcom["get_output"]
    (invocation,) = output["invocations"]
    assert invocation["instance_id"] == ec2_instances.running
    assert invocation["status"] == "Success"
    assert invocation["response_code"] == 0
    assert invocation["standard_output"] == "airflow-ok\n42\n"
    assert output["command_id"] == result.xcom["run_and_wait"]
    (later,) = result.xcom["get_all"]["invocations"]
    assert later["standard_output"] == "later\n"


def test_failing_command_and_function_fail_their_tasks(
    run_dag: RunDag, airflow_aws_connection: str, airflow_function: str, ec2_instances: Instances
) -> None:
    dag_id = "runner_operators_fail"
    source = DAG_FAIL.format(dag_id=dag_id, instance=ec2_instances.running, function=airflow_function)
    result = run_dag(dag_id, source)
    assert result.state == "failed"
    assert result.task_states == {
        "failing_command": "failed",
        "failing_no_wait": "success",
        "failing_sensor": "failed",
        "failing_lambda": "failed",
    }


def test_dags_folder_is_the_airflow_home_one(airflow_home: Any) -> None:
    from airflow.configuration import conf

    assert Path(conf.get("core", "dags_folder")) == airflow_home.dags_folder
    assert airflow_home.database.exists()
