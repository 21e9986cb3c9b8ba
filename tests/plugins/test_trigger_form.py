"""The lifecycle DAGs' trigger form as Airflow's API server judges it when a user triggers a run.

The server validates the conf against the serialized Params (``SerializedParamsDict.validate``,
what ``POST /dags/{dag_id}/dagRuns`` calls) and answers a value that breaks a schema with
jsonschema's multi-line dump of it. The UI marks a Param required unless its type allows null.
"""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture(autouse=True)
def _airflow(airflow_home: Any) -> None:
    """Airflow is configured before any plugin module is imported."""


def _validated(conf: dict[str, Any]) -> dict[str, Any]:
    """The start DAG's Params as the API server validates a trigger with ``conf``."""
    from airflow.serialization.definitions.param import SerializedParam, SerializedParamsDict

    from backover_airflow import dag_defaults as d

    params = d.lifecycle_params(follow=True, sync=True)
    served = SerializedParamsDict(
        {name: SerializedParam(p.value, p.description, **p.schema) for name, p in params.items()}
    )
    return served.deep_merge(conf).validate()


def _required(name: str) -> bool:
    """Airflow 3.3's trigger form: required unless the schema's type allows null."""
    from backover_airflow import dag_defaults as d

    kind = d.lifecycle_params(follow=True, sync=True)[name].schema.get("type")
    return bool(kind) and not (isinstance(kind, list) and "null" in kind)


def test_empty_databases_and_switches_off_are_not_required_but_the_migration_id_is() -> None:
    assert _required("migration_id")
    for name in ("databases", "dry_run", "follow", "drop_target", "allow_missing"):
        assert not _required(name), name


def test_cleared_fields_mean_the_defaults() -> None:
    from backover_airflow.config import BackoverConfig, RunParams

    conf = {"migration_id": "orders-2026", "databases": None, "dry_run": None, "follow": None}
    env = BackoverConfig.from_mapping(
        {
            "bucket": "b-1",
            "worker_instance_id": "i-1",
            "lambda_names": {"start": "s", "restore": "r", "clean": "c"},
            "secret_ids": {"documentdb": "d", "mongodb": "m", "app_user": "a"},
            "app_user": "orders_app",
            "databases": ["shop"],
        }
    )
    run = RunParams.from_params(_validated(conf), env)
    assert (run.databases, run.dry_run, run.follow, run.allow_missing) == (["shop"], False, True, False)


def test_a_bad_migration_id_is_left_to_the_first_task_and_its_one_line_reason() -> None:
    """The server accepts the run instead of answering with the schema dump; the preflight (and every
    task) refuses it in one line (tests/plugins/test_preflight_checks.py)."""
    from backover_airflow.config import ConfigError, RunParams

    validated = _validated({"migration_id": "orders 2026/06"})
    with pytest.raises(ConfigError) as refused:
        RunParams.from_params(validated)
    assert str(refused.value).startswith("invalid migration id 'orders 2026/06': must be 1 to 128 letters")
    assert "\n" not in str(refused.value)
