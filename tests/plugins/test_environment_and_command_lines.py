"""The environment Variable, the run's Params, and the command lines and script sent to the worker."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest
from migration_states import environment

from backover_airflow import commands
from backover_airflow.config import BackoverConfig, ConfigError, RunParams
from backover_sandbox.config import SandboxState
from backover_sandbox.environment import airflow_env


def _sandbox_variable() -> dict[str, Any]:
    state = SandboxState(
        ports={"moto": 47000, "runner": 47001, "documentdb": 47017, "mongodb": 47018},
        pids={},
        host="127.0.0.1",
        bucket="backover-sandbox",
        prefix="migrations",
        worker_instance_id="i-0123456789abcdef0",
        secret_ids={"documentdb": "sb/docdb", "mongodb": "sb/mongo", "app_user": "sb/app"},
        lambda_names={"start": "backover-start", "restore": "backover-restore", "clean": "backover-clean"},
        app_user="orders_app",
        databases=["shop", "inventory"],
    )
    secret = {"engine": "docdb", "username": "root", "password": "pw", "host": "127.0.0.1", "port": 47017}
    return json.loads(airflow_env(state, {"documentdb": secret, "mongodb": secret})["AIRFLOW_VAR_BACKOVER"])


def test_the_sandbox_variable_is_a_valid_environment() -> None:
    """What `backover sandbox env` exports is what the DAGs read."""
    config = BackoverConfig.from_mapping(_sandbox_variable())
    assert config.bucket == "backover-sandbox" and config.prefix == "migrations"
    assert config.worker_instance_id == "i-0123456789abcdef0"
    assert config.lambda_names["restore"] == "backover-restore"
    assert config.secret_ids["app_user"] == "sb/app"
    assert config.poll_interval_seconds == 2
    assert config.backover_command.endswith("-m backover")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        pytest.param({"bucket": None}, "lacks 'bucket'", id="no-bucket"),
        pytest.param({"worker_instance_id": 7}, "'worker_instance_id' must be a str", id="bad-worker"),
        pytest.param(
            {"lambda_names": {"start": "s"}}, "'lambda_names' lacks restore, clean", id="lambdas-missing"
        ),
        pytest.param(
            {"secret_ids": {"documentdb": "d", "mongodb": "m"}},
            "'secret_ids' lacks app_user",
            id="secret-missing",
        ),
        pytest.param({"databases": "shop"}, "'databases' must be a list", id="databases-not-list"),
        pytest.param(
            {"poll_interval_seconds": 0}, "'poll_interval_seconds' must be positive", id="zero-poll"
        ),
        pytest.param({"poll_interval_seconds": True}, "must be a int", id="bool-poll"),
    ],
)
def test_an_invalid_variable_is_named_with_its_field(change: dict[str, Any], message: str) -> None:
    doc = {**environment("bkt", "i-1"), **change}
    with pytest.raises(ConfigError, match=message):
        BackoverConfig.from_mapping(doc, "backover")


def test_run_params_fall_back_to_the_environment_databases() -> None:
    config = BackoverConfig.from_mapping(environment("bkt", "i-1"))
    assert RunParams.from_params({"migration_id": "m-1"}, config).databases == ["shop", "inventory"]
    assert RunParams.from_params({"migration_id": "m-1", "databases": ["shop"]}, config).databases == ["shop"]
    with pytest.raises(ConfigError, match="invalid migration id 'no/slash'"):
        RunParams.from_params({"migration_id": "no/slash"}, config)


def test_command_lines_name_secret_ids_and_quote_for_the_shell() -> None:
    config = BackoverConfig.from_mapping(environment("bkt", "i-1", prefix="team-a/migrations"))
    run = RunParams.from_params({"migration_id": "m-1", "databases": ["shop&co", "inventory"]}, config)
    line = commands.command_line(config, commands.arguments("verify", config, run))
    assert line == (
        "backover verify --source-secret-id sb/docdb-master --target-secret-id sb/mongo-master "
        "--bucket bkt --prefix team-a/migrations --migration-id m-1 --namespace 'shop&co' "
        "--namespace inventory"
    )
    with pytest.raises(ConfigError, match="backup label must be one of documentdb, mongodb"):
        commands.arguments("backup", config, run, label="postgres")
    with pytest.raises(ConfigError, match="unknown backover command 'drop'"):
        commands.arguments("drop", config, run)


def _run_script(body: str) -> subprocess.CompletedProcess[str]:
    script = "\n".join(commands.shell_script(body))
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60, check=False)


def test_worker_script_reports_short_output_whole_with_the_exit_status() -> None:
    done = _run_script("sh -c 'echo progress; echo reason >&2; exit 3'")
    assert done.returncode == 3
    assert done.stdout == "progress\nreason\n"


def test_worker_script_keeps_head_and_tail_of_long_output() -> None:
    """SSM keeps 24,000 characters; the final summary or error must survive a long log."""
    done = _run_script("sh -c 'echo first-line; seq 1 20000; echo final-summary; exit 1'")
    assert done.returncode == 1
    assert done.stdout.startswith("first-line\n")
    assert done.stdout.rstrip().endswith("final-summary")
    assert "bytes of output left out" in done.stdout
    assert len(done.stdout) < 24_000


@pytest.mark.parametrize(
    ("command", "options"),
    [
        pytest.param("replicate", {}, id="replicate"),
        pytest.param("backup", {"label": "documentdb"}, id="backup-documentdb"),
        pytest.param("backup", {"label": "mongodb"}, id="backup-mongodb"),
        pytest.param("restore", {}, id="restore"),
        pytest.param("verify", {}, id="verify"),
        pytest.param("clean", {}, id="clean"),
        pytest.param("abort", {}, id="abort"),
    ],
)
def test_every_command_line_is_one_backover_accepts(command: str, options: dict[str, Any]) -> None:
    """The worker's own parser accepts what the DAGs send, with the values where they belong."""
    from backover.cli import build_parser

    config = BackoverConfig.from_mapping(environment("bkt", "i-1"))
    run = RunParams.from_params({"migration_id": "m-1", "databases": ["shop"]}, config)
    args = build_parser().parse_args(commands.arguments(command, config, run, **options))
    assert (args.command, args.bucket, args.prefix, args.migration_id) == (
        command,
        "bkt",
        "migrations",
        "m-1",
    )
    secrets = {k: v for k, v in vars(args).items() if k.endswith("secret_id") and v}
    assert set(secrets.values()) <= set(config.secret_ids.values())
    if command == "replicate":
        assert args.detach is True and args.source_secret_id == "sb/docdb-master"
    if command == "backup":
        assert args.secret_id == config.secret_ids[options["label"]]
    if command == "verify":
        assert args.namespace == ["shop"]


@pytest.mark.parametrize(
    ("command", "options", "expected"),
    [
        pytest.param("backup", {"label": "documentdb", "step": "begin"}, {"begin": True}, id="backup-begin"),
        pytest.param(
            "backup",
            {"label": "documentdb", "step": "partition", "partition": "shop.orders.0001"},
            {"partition": "shop.orders.0001"},
            id="backup-partition",
        ),
        pytest.param(
            "backup", {"label": "documentdb", "step": "finish"}, {"finish": True}, id="backup-finish"
        ),
        pytest.param("verify_live", {"step": "begin"}, {"live": True, "begin": True}, id="verify-live-begin"),
        pytest.param(
            "verify_live",
            {"step": "partition", "partition": "shop.orders.0002"},
            {"live": True, "partition": "shop.orders.0002"},
            id="verify-live-partition",
        ),
        pytest.param(
            "verify_live", {"step": "finish"}, {"live": True, "finish": True}, id="verify-live-finish"
        ),
        pytest.param(
            "release_ttl", {}, {"release_ttl": True, "target_secret_id": "sb/mongo-master"}, id="ttl"
        ),
    ],
)
def test_the_steps_of_a_pass_over_the_partitions_are_lines_backover_accepts(
    command, options, expected
) -> None:
    """The partitioned backup and live verification, and the TTL release, as the DAGs send them."""
    from backover.cli import build_parser

    config = BackoverConfig.from_mapping(environment("bkt", "i-1"))
    run = RunParams.from_params({"migration_id": "m-1", "databases": ["shop"]}, config)
    args = build_parser().parse_args(commands.arguments(command, config, run, **options))
    assert {name: getattr(args, name) for name in expected} == expected
    assert args.migration_id == "m-1"
    for other in {"begin", "finish"} - set(expected):
        assert not getattr(args, other, False), other


@pytest.mark.parametrize(
    "options",
    [
        {"label": "mongodb", "step": "begin"},
        {"label": "documentdb", "step": "partition"},
        {"label": "documentdb", "step": "begin", "partition": "shop.orders.0001"},
        {"label": "documentdb", "step": "partition", "partition": "--drop"},
        {"label": "documentdb", "step": "later"},
    ],
)
def test_a_pass_step_that_cannot_be_run_is_a_config_error(options) -> None:
    config = BackoverConfig.from_mapping(environment("bkt", "i-1"))
    run = RunParams.from_params({"migration_id": "m-1", "databases": ["shop"]}, config)
    with pytest.raises(ConfigError):
        commands.arguments("backup", config, run, **options)
