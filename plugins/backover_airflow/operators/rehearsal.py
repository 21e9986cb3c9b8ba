"""The rehearsal DAG's own tasks: plan the run (its migration id), and write the rehearsal report.

The phases themselves are the lifecycle DAGs, triggered unchanged; the report reads their
outcome and task durations from Airflow (task "breadcrumbs" of each run) and the migration's
state objects from S3, writes ``reports/rehearsal.json`` and logs a summary.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowFailException, BaseOperator, conf

from backover.s3objects import S3Objects
from backover_airflow import config, report
from backover_airflow.hooks.migration import MigrationHook
from backover_airflow.ui import links

if TYPE_CHECKING:
    from airflow.sdk import Context
    from airflow.sdk.types import RuntimeTaskInstanceProtocol


def rehearsal_conf(params: Mapping[str, Any], ts_nodash: str) -> dict[str, Any]:
    """The conf every phase of one rehearsal is triggered with (a fresh migration id per run)."""
    migration_id = params.get("migration_id") or f"rehearsal-{ts_nodash.lower()}"
    environment = config.run_environment(config.REHEARSAL_DAG_ID, params)
    try:
        env = config.BackoverConfig.from_variable(environment)
        config.check_rehearsable(env)
        run = config.RunParams.from_params({**params, "migration_id": migration_id}, env)
    except config.ConfigError as e:
        raise AirflowFailException(str(e)) from e
    return {
        "migration_id": run.migration_id,
        "databases": run.databases,
        "environment": environment,
        "follow": run.follow,
    }


def start_conf(params: Mapping[str, Any], conf: Mapping[str, Any]) -> dict[str, Any]:
    """The conf of the start phase: the rehearsal's conf and the initial sync's Params (only
    ``backover_start`` has them); a rehearsal environment's MongoDB that is empty is filled by the
    sync, one that holds last week's data needs ``always`` and ``drop_target``."""
    environment = config.run_environment(config.REHEARSAL_DAG_ID, conf)
    try:
        env = config.BackoverConfig.from_variable(environment)
        run = config.RunParams.from_params({**params, **conf}, env)
    except config.ConfigError as e:
        raise AirflowFailException(str(e)) from e
    return {
        **conf,
        "initial_sync": run.initial_sync,
        "drop_target": run.drop_target,
        "sync_partition_documents": run.sync_partition_documents,
    }


class MigrationFiguresOperator(BaseOperator):
    """Read the counts the checkpoints hold (events captured and replayed, segments) before the clean
    phase deletes them; returns them for the report (XCom). The lag history is recorded by the clean
    phase itself (``backover_clean``'s ``clean.record_lag``,
    :class:`~backover_airflow.operators.lag_history.LagHistoryOperator`): one recording, there.

    :param migration_id: the migration (templated).
    :param aws_conn_id: AWS connection for S3 (default ``aws_default``).
    """

    template_fields: Sequence[str] = ("migration_id",)
    ui_color = "#fff3c4"

    def __init__(self, *, migration_id: str, aws_conn_id: str | None = "aws_default", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.migration_id = migration_id
        self.aws_conn_id = aws_conn_id

    def execute(self, context: Context) -> dict[str, int | None]:
        layout = _layout(context, self.migration_id)
        hook = MigrationHook(aws_conn_id=self.aws_conn_id)
        snap = hook.snapshot(layout)
        counts = report.figures(snap)
        self.log.info("Before clean-up: %s", json.dumps(counts, sort_keys=True))
        return counts


def _breadcrumbs(ti: RuntimeTaskInstanceProtocol, dag_id: str, run_id: str) -> Iterable[dict[str, Any]]:
    """The task states and durations of a DAG run (``get_task_breadcrumbs``)."""
    # The task runner's RuntimeTaskInstance has get_task_breadcrumbs (a static method); Airflow
    # 3.3's RuntimeTaskInstanceProtocol, the type of context["ti"], does not declare it.
    return ti.get_task_breadcrumbs(dag_id=dag_id, run_id=run_id)  # type: ignore[attr-defined]


def _layout(context: Context, migration_id: str) -> Any:
    with config.failing_task():
        return config.migration(context["params"], migration_id)[1]


class RehearsalReportOperator(BaseOperator):
    """Write the rehearsal report to ``reports/rehearsal.json`` and the log; fail unless it passed.

    Meant to run with ``trigger_rule=ALL_DONE`` so a failed rehearsal still gets its report.

    :param migration_id: the rehearsal's migration (templated).
    :param phases: phase name -> ``(task id in this DAG, triggered DAG id or None)``, in order.
    :param figures_task_id: the :class:`MigrationFiguresOperator` task (its counts survive clean-up).
    :param aws_conn_id: AWS connection for S3 (default ``aws_default``).
    """

    template_fields: Sequence[str] = ("migration_id",)
    ui_color = "#fff3c4"

    def __init__(
        self,
        *,
        migration_id: str,
        phases: Mapping[str, tuple[str, str | None]],
        figures_task_id: str | None = None,
        aws_conn_id: str | None = "aws_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.migration_id = migration_id
        self.phases = dict(phases)
        self.figures_task_id = figures_task_id
        self.aws_conn_id = aws_conn_id

    def phase_outcomes(self, context: Context) -> dict[str, report.Phase]:
        """Each phase's state and duration (its task in this run), with its DAG run's task durations."""
        ti = context["ti"]
        own = {crumb["task_id"]: crumb for crumb in _breadcrumbs(ti, ti.dag_id, ti.run_id)}
        phases = {}
        for name, (task_id, dag_id) in self.phases.items():
            crumb = own.get(task_id, {})
            run_id = ti.xcom_pull(task_ids=task_id, key="trigger_run_id") if dag_id else None
            tasks = None
            if dag_id and run_id:
                tasks = {c["task_id"]: c.get("duration") for c in _breadcrumbs(ti, dag_id, run_id)}
            phases[name] = report.Phase(
                state=crumb.get("state"), seconds=crumb.get("duration"), run_id=run_id, tasks=tasks
            )
        return phases

    def execute(self, context: Context) -> dict[str, Any]:
        layout = _layout(context, self.migration_id)
        hook = MigrationHook(aws_conn_id=self.aws_conn_id)
        counts = context["ti"].xcom_pull(task_ids=self.figures_task_id) if self.figures_task_id else None
        result = report.build(self.migration_id, self.phase_outcomes(context), hook.snapshot(layout), counts)
        key = layout.rehearsal_report
        S3Objects(layout.bucket, client=hook.conn).put_bytes(
            key, json.dumps(result, indent=2).encode(), content_type="application/json"
        )
        for line in report.summary_lines(result):
            self.log.info("%s", line)
        self.log.info("Report: s3://%s/%s", layout.bucket, key)
        with config.failing_task():
            environment = config.environment(context["params"]).variable  # as _layout read it
        base_url = conf.get("api", "base_url", fallback="") or "http://localhost:8080"
        page = links.page_url(base_url, links.REHEARSAL, environment, migration_id=self.migration_id)
        self.log.info("Report page (the run's Migration tab): %s", page)
        if not result["passed"]:
            raise AirflowFailException(
                f"rehearsal {self.migration_id} failed; see s3://{layout.bucket}/{key}"
            )
        return result
