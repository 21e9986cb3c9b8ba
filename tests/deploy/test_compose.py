"""docker-compose.yaml: valid against the Compose Specification's JSON schema, complete for the DAGs,
wired like ``backover sandbox env``, and free of secrets. No Docker engine runs here, so the file is
checked, not started; the seed script it runs is exercised against moto."""

from __future__ import annotations

import hashlib
import json
import re
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from backover_sandbox import environment, seed
from backover_sandbox.config import SandboxState
from backover_sandbox.runner.registry import FunctionRegistry

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yaml"
ENV_EXAMPLE = ROOT / ".env.example"
SCHEMA = ROOT / "deploy" / "schemas" / "compose-spec.json"
SCHEMA_SHA256 = "d549057ebc2925f39f62799eab0db7b9e2c18b35b6c00595199116da3ed10e64"
#: ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?message}, ${NAME?message}; $$ is a literal $.
VARIABLE = re.compile(r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")
LONG_RUNNING = (
    "postgres",
    "documentdb",
    "mongodb",
    "moto",
    "runner",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
)
ONE_SHOTS = ("mongo-init", "airflow-init", "backover-seed")
AIRFLOW = ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer")


def raw_compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's variable interpolation (the subset the file uses); a missing ``:?`` variable fails."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group("name", "op", "arg")
        present = env.get(name)
        if op in (":?", "?") and not present:
            raise AssertionError(f"compose would refuse to start: {name} is unset ({arg})")
        if op in (":-", "-") and not present:
            return arg
        return present or ""

    return VARIABLE.sub(one, value)


def variables_used() -> set[str]:
    return {m.group("name") for m in VARIABLE.finditer(COMPOSE.read_text()) if m.group("name")}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """The file as compose sees it with the placeholders of .env.example."""
    return interpolate(raw_compose(), env_example())


def test_the_vendored_schema_is_the_compose_specification() -> None:
    assert hashlib.sha256(SCHEMA.read_bytes()).hexdigest() == SCHEMA_SHA256
    assert json.loads(SCHEMA.read_text())["title"] == "Compose Specification"


@pytest.mark.parametrize("interpolated", [False, True], ids=["as-written", "interpolated"])
def test_compose_file_is_valid_against_the_compose_specification(interpolated: bool) -> None:
    schema = json.loads(SCHEMA.read_text())
    document = interpolate(raw_compose(), env_example()) if interpolated else raw_compose()
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(document), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors[:10])


def test_the_schema_check_catches_a_broken_file() -> None:
    """The validation is not vacuous: a typo in a service key is refused."""
    schema = json.loads(SCHEMA.read_text())
    broken = raw_compose()
    broken["services"]["moto"]["helthcheck"] = broken["services"]["moto"].pop("healthcheck")
    assert list(jsonschema.Draft202012Validator(schema).iter_errors(broken))


def test_every_service_the_dags_need_is_there_and_healthy_checked(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(LONG_RUNNING + ONE_SHOTS) <= set(services)
    for name in LONG_RUNNING:
        assert "test" in services[name].get("healthcheck", {}), f"{name} has no health check"
    for name in ONE_SHOTS:
        assert services[name].get("restart") == "no", f"one-shot {name} must not restart"
    for name in AIRFLOW:
        assert services[name]["image"] == "backover-airflow:3.3.2"
        assert services[name]["depends_on"]["backover-seed"]["condition"] == "service_completed_successfully"
    assert [s["image"] for s in (services["documentdb"], services["mongodb"])] == ["mongo:7.0", "mongo:7.0"]
    assert services["moto"]["image"].startswith("motoserver/moto:")
    dockerfile = (ROOT / compose["x-backover-image"]["build"]["dockerfile"]).read_text()
    assert "FROM apache/airflow:3.3.2-python3.11" in dockerfile


def test_both_mongodb_servers_are_replica_sets_initialised_by_the_one_shot(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in ("documentdb", "mongodb"):
        command = " ".join(services[name]["entrypoint"])
        assert f"--replSet rs-{name}" in command and "--keyFile" in command
        assert services["mongo-init"]["depends_on"][name]["condition"] == "service_healthy"
        assert f"init {name} " in services["mongo-init"]["entrypoint"][-1]
    assert (
        services["backover-seed"]["depends_on"]["mongo-init"]["condition"] == "service_completed_successfully"
    )


def test_ports_and_named_volumes(compose: dict[str, Any]) -> None:
    services = compose["services"]
    published = {name: [p.split(":")[-1] for p in s.get("ports", [])] for name, s in services.items()}
    assert published["airflow-apiserver"] == ["8080"]
    assert published["documentdb"] == ["27017"] and published["mongodb"] == ["27017"]
    assert published["moto"] == ["5000"] and published["runner"] == ["4599"]
    declared = set(compose["volumes"])
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith((".", "/")):
                assert source in declared, f"{name}: volume {source} is not declared"
            else:
                assert (ROOT / source).exists(), f"{name}: {source} does not exist in the repository"
    assert {"postgres-db", "documentdb-data", "mongodb-data"} <= declared


def test_airflow_gets_the_environment_sandbox_env_prints(compose: dict[str, Any]) -> None:
    state = SandboxState(ports={"moto": 1, "runner": 2}, pids={}, host="h", bucket="b", prefix="p")
    names = set(environment.aws_env(state))
    credentials = {label: seed.master_secret(label, label, 27017, "x") for label in ("documentdb", "mongodb")}
    names |= set(environment.airflow_env(state, credentials))
    for service in (*AIRFLOW, "backover-seed"):
        env = compose["services"][service]["environment"]
        # The Variables come from backover-seed (the worker's instance id is known only then).
        seeded = {"AIRFLOW_VAR_BACKOVER", "AIRFLOW_VAR_BACKOVER_REHEARSAL"}
        assert names - seeded <= set(env), service
        assert not seeded & set(env), "an env Variable would hide the one the seed writes"
        aws = json.loads(env["AIRFLOW_CONN_AWS_DEFAULT"])
        assert aws["extra"]["endpoint_url"] == env["AWS_ENDPOINT_URL"] == "http://moto:5000"
        for service_name in ("lambda", "ssm"):
            assert aws["extra"]["service_config"][service_name]["endpoint_url"] == "http://runner:4599"
        for label in ("documentdb", "mongodb"):
            conn = json.loads(env[f"AIRFLOW_CONN_BACKOVER_{label.upper()}"])
            expected = environment.mongo_connection(
                seed.master_secret("mongodb", label, 27017, env_example()[f"{label.upper()}_ROOT_PASSWORD"])
            )
            assert conn == expected
    assert set(environment.aws_env(state)) <= set(compose["services"]["runner"]["environment"])


def test_the_runner_serves_the_three_lambdas_from_the_mounted_repository(compose: dict[str, Any]) -> None:
    command = compose["services"]["runner"]["command"]
    registry_path = Path(command[command.index("--registry") + 1])
    local = ROOT / registry_path.relative_to("/opt/backover")
    raw = json.loads(local.read_text())
    assert set(raw["functions"]) == set(seed.LAMBDAS.values())
    registry = FunctionRegistry(base_dir=local.parent)
    assert registry.load_file(local) == 3
    for spec in registry.all():
        assert (ROOT / Path(spec.handler.split(":")[0]).relative_to("/opt/backover")).is_file()


def test_no_secret_is_written_in_the_file() -> None:
    raw = COMPOSE.read_text()
    secrets = {name for name in variables_used() if re.search("PASSWORD|KEY|SECRET", name)}
    assert {
        "POSTGRES_PASSWORD",
        "DOCUMENTDB_ROOT_PASSWORD",
        "MONGODB_ROOT_PASSWORD",
        "BACKOVER_APP_PASSWORD",
        "AIRFLOW_FERNET_KEY",
        "AIRFLOW_JWT_SECRET",
        "MONGO_REPLICA_KEY",
    } <= secrets
    for name in secrets:
        assert re.search(r"\$\{" + name + r":\?", raw), f"{name} must be required (${{{name}:?...}})"
    literal = VARIABLE.sub("<ref>", raw)
    for match in re.finditer(r"(?i)(password|secret|key)[\"']?\s*[:=]\s*[\"']?([^\s\"',}]+)", literal):
        assert match.group(2) in ("<ref>", "testing"), f"a literal secret? {match.group(0)}"
    assert all(
        value in ("change-me",) or not re.search("PASSWORD|KEY|SECRET", name)
        for name, value in env_example().items()
    )
    assert variables_used() <= set(env_example()), "every variable the file uses is in .env.example"


def test_compose_refuses_to_start_without_the_passwords() -> None:
    env = env_example()
    del env["MONGODB_ROOT_PASSWORD"]
    with pytest.raises(AssertionError, match="MONGODB_ROOT_PASSWORD is unset"):
        interpolate(raw_compose(), env)


def test_the_seed_fills_moto_and_writes_a_valid_variable(aws_endpoints: str) -> None:
    """deploy/docker/seed.py against moto (the databases part needs real MongoDB and is skipped)."""
    import importlib.util

    from backover_airflow.config import BackoverConfig

    spec = importlib.util.spec_from_file_location("compose_seed", ROOT / "deploy" / "docker" / "seed.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    env = {**env_example(), "BACKOVER_BUCKET": "compose-seed-test"}
    value = module.seed_all(module.SeedConfig.from_env(env), databases=False)
    config = BackoverConfig.from_mapping(value)
    assert config.bucket == "compose-seed-test" and config.lambda_names == seed.LAMBDAS
    assert config.worker_instance_id.startswith("i-") and config.databases == seed.DEMO_DATABASES
    import boto3

    secret = json.loads(
        boto3.client("secretsmanager").get_secret_value(SecretId=config.secret_ids["documentdb"])[
            "SecretString"
        ]
    )
    assert (secret["host"], secret["port"], secret["engine"]) == ("documentdb", 27017, "mongo")
    assert "password" not in json.dumps(value).lower()
    with pytest.raises(module.SeedUsageError, match="BACKOVER_APP_PASSWORD") as caught:
        module.SeedConfig.from_env({k: v for k, v in env.items() if k != "BACKOVER_APP_PASSWORD"})
    assert "change-me" not in str(caught.value)
