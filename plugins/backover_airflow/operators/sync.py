"""The initial sync in ``backover_start`` (Param ``initial_sync``): the tasks around the mapped copy.

``sync.plan`` is a :class:`~backover_airflow.operators.worker.WorkerCommandOperator` (``backover
sync --plan`` on the first worker); then :class:`SyncPartitionsOperator` reads the plan the worker
wrote (``sync/plan.json``, through :class:`~backover_airflow.hooks.migration.MigrationHook`) and
spreads its partitions over the workers (:mod:`backover_airflow.workers`): its return value is
what ``sync.copy`` (``WorkerCommandOperator.partial(...).expand_kwargs(...)``) maps over, one
``backover sync --partition ID`` per partition. :class:`SyncCompletedOperator` then checks
``sync/complete.json`` (the last partition to complete writes it; written here with
:func:`backover.sync.finish` when every partition is completed and it is missing) and logs the
copy's figures. Nothing here reads S3 or EC2 at parse time.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.hooks.ec2 import EC2Hook
from airflow.providers.common.compat.sdk import AirflowFailException, AirflowSkipException, BaseOperator

from backover import state
from backover.backup import partition_ids as backup_partition_ids
from backover.errors import BackoverError
from backover.layout import MigrationLayout
from backover.namespaces import parse_all
from backover.s3objects import S3Objects
from backover.state import SyncComplete, SyncPartitionState, SyncPlan
from backover.sync import finish, read_plan
from backover.sync.copy import load_checkpoint
from backover.verify.live import partition_ids as verify_partition_ids
from backover_airflow import config, workers
from backover_airflow.config import BackoverConfig, RunParams
from backover_airflow.hooks.migration import MigrationHook

if TYPE_CHECKING:
    from airflow.sdk import Context


def run_if_initial_sync(context: Any) -> None:
    """``pre_execute`` of every sync task: skipped when the run's ``initial_sync`` is ``never``."""
    if context["params"].get("initial_sync", "auto") == "never":
        raise AirflowSkipException("initial_sync is never for this run: MongoDB must hold DocumentDB's data")


def completed_partitions(s3: S3Objects, layout: MigrationLayout, plan: SyncPlan) -> set[str]:
    """The plan's partitions whose checkpoint says completed."""
    done = set()
    for pid in plan.partition_ids():
        got = load_checkpoint(s3, layout.sync_partition(pid), layout.migration_id)
        if got is not None and got[0].state is SyncPartitionState.COMPLETED:
            done.add(pid)
    return done


def copy_figures(complete: SyncComplete, workers_used: int | None = None) -> dict[str, Any]:
    """The copy's figures: documents, partitions, collections, seconds (plan to completion), docs/s."""
    seconds = (
        (complete.completed_at - complete.planned_at).total_seconds()
        if complete.planned_at is not None
        else None
    )
    figures: dict[str, Any] = {
        "documents": complete.documents,
        "bytes": complete.bytes_copied,
        "collections": complete.collections,
        "partitions": complete.partitions,
        "skipped_duplicates": complete.skipped_duplicates,
        "seconds": None if seconds is None else round(seconds, 1),
        "documents_per_second": round(complete.documents / seconds, 1) if seconds else None,
    }
    if workers_used is not None:
        figures["workers"] = workers_used
    return figures


class _SyncTask(BaseOperator):
    """Reads the run's environment and the migration's sync objects in S3 when it runs."""

    ui_color = "#d8f0d8"

    def __init__(self, *, aws_conn_id: str | None = "aws_default", **kwargs: Any) -> None:
        kwargs.setdefault("pre_execute", run_if_initial_sync)
        super().__init__(**kwargs)
        self.aws_conn_id = aws_conn_id

    def _load(self, context: Context) -> tuple[BackoverConfig, RunParams, MigrationLayout, S3Objects]:
        with config.failing_task():
            env, run = config.load(context["params"])
            layout = config.layout_for(context["params"])
        return env, run, layout, MigrationHook(aws_conn_id=self.aws_conn_id).objects(layout)

    def execute(self, context: Context) -> Any:
        """A damaged sync object fails the task at once with its one-line reason (no retry mends it)."""
        try:
            return self.look(context)
        except state.RecordError as e:
            raise AirflowFailException(str(e)) from e

    def look(self, context: Context) -> Any:
        raise NotImplementedError


class SyncPartitionsOperator(_SyncTask):
    """The partitions left to copy, spread over the workers round-robin: a list of
    ``{"options": {"partition": ID}, "worker": INSTANCE}`` (the copy task's mapped arguments; empty
    when there is nothing to copy: ``auto`` found the data on the target, or the sync completed).

    :param aws_conn_id: AWS connection for S3 and EC2 (default ``aws_default``).
    """

    def look(self, context: Context) -> list[dict[str, Any]]:
        env, run, layout, s3 = self._load(context)
        where = f"s3://{layout.bucket}/{layout.sync_plan}"
        done = state.read(s3, layout.sync_complete, SyncComplete)
        if done is not None:
            self.log.info("The initial sync completed at %s: nothing to copy", done.completed_at.isoformat())
            return []
        plan = read_plan(s3, layout)
        if plan is None:
            if run.initial_sync == "auto":
                self.log.info("No copy needed: the plan found MongoDB holding the migrated collections' data")
                return []
            raise AirflowFailException(
                f"no sync plan {where}: the plan task wrote none (initial_sync always)"
            )
        left = [pid for pid in plan.partition_ids() if pid not in completed_partitions(s3, layout, plan)]
        ec2 = EC2Hook(aws_conn_id=self.aws_conn_id, api_type="client_type").conn
        ids = workers.worker_ids(env, ec2)
        assigned = workers.spread(left, ids)
        per_worker = Counter(a["worker"] for a in assigned)
        self.log.info(
            "%d of %d partition(s) of %s left to copy (%d documents planned), over %d worker(s): %s",
            len(left),
            len(plan.partition_ids()),
            where,
            plan.documents,
            len(ids),
            ", ".join(f"{w} {n}" for w, n in per_worker.items()) or "none",
        )
        return assigned


class SyncCompletedOperator(_SyncTask):
    """The copy is complete: ``sync/complete.json`` exists (written here when every partition's
    checkpoint says completed and it is missing); logs the copy's figures. No plan: nothing was
    to be copied (``auto``). A plan with partitions not completed fails without retries, naming them.

    :param aws_conn_id: AWS connection for S3 (default ``aws_default``).
    """

    def look(self, context: Context) -> dict[str, Any]:
        _, run, layout, s3 = self._load(context)
        plan = read_plan(s3, layout)
        if plan is None:
            if run.initial_sync == "auto":
                self.log.info(
                    "No initial sync for this migration: MongoDB held the migrated collections' data"
                )
                return {"copied": False}
            raise AirflowFailException(
                f"no sync plan s3://{layout.bucket}/{layout.sync_plan} (initial_sync always)"
            )
        complete = finish(s3, layout, plan)
        if complete is None:
            left = sorted(set(plan.partition_ids()) - completed_partitions(s3, layout, plan))
            raise AirflowFailException(
                f"the initial sync is not complete: {len(left)} of {len(plan.partition_ids())} partition(s) not "
                f"copied ({', '.join(left[:5])}{' ...' if len(left) > 5 else ''}); run backover_start again"
            )
        figures = copy_figures(complete)
        self.log.info(
            "Initial sync complete: %s documents of %s collection(s) in %s partition(s), %s s from the plan "
            "(%s documents/s), %s skipped duplicate(s) (the replay brings them)",
            figures["documents"],
            figures["collections"],
            figures["partitions"],
            figures["seconds"],
            figures["documents_per_second"],
            figures["skipped_duplicates"],
        )
        return {"copied": True, **figures}


def _begun_partitions(pass_name: str, s3: S3Objects, layout: MigrationLayout, run: RunParams) -> list[str]:
    """The partitions the begun pass goes over (its ``begin`` recorded them from the sync plan)."""
    if pass_name == "verify_live":
        return verify_partition_ids(s3, layout, parse_all(run.databases))
    if pass_name == "backup":
        return backup_partition_ids(s3, layout)
    raise ValueError(f"no pass over the partitions named {pass_name!r}")


class PlanPartitionsOperator(_SyncTask):
    """The partitions a begun pass over the sync plan goes over (the DocumentDB backup, ``verify
    --live``: what its ``begin`` step recorded), spread over the workers round-robin, as the
    mapped arguments of its ``partition`` step: ``[{"options": {**options, "partition": ID},
    "worker": INSTANCE}, ...]``. Empty without a plan (no initial sync): the pass's ``finish``
    step then reads every collection whole.

    :param pass_name: ``backup`` or ``verify_live`` (the command of the pass).
    :param options: the mapped command's fixed options (e.g. ``{"label": "documentdb", "step":
        "partition"}``).
    :param aws_conn_id: AWS connection for S3 and EC2 (default ``aws_default``).
    """

    def __init__(
        self, *, pass_name: str, options: dict[str, Any], pre_execute: Any = None, **kwargs: Any
    ) -> None:
        super().__init__(pre_execute=pre_execute, **kwargs)
        self.pass_name = pass_name
        self.options = options

    def look(self, context: Context) -> list[dict[str, Any]]:
        env, run, layout, s3 = self._load(context)
        try:
            ids = _begun_partitions(self.pass_name, s3, layout, run)
        except BackoverError as e:
            raise AirflowFailException(str(e)) from e
        if not ids:
            self.log.info("No sync plan with partitions: the finish step reads every collection whole")
            return []
        ec2 = EC2Hook(aws_conn_id=self.aws_conn_id, api_type="client_type").conn
        workers_found = workers.worker_ids(env, ec2)
        assigned = workers.spread(ids, workers_found, self.options)
        per_worker = Counter(a["worker"] for a in assigned)
        self.log.info(
            "%d partition(s) of the sync plan s3://%s/%s over %d worker(s): %s; the finish step reads what no "
            "partition holds",
            len(assigned),
            layout.bucket,
            layout.sync_plan,
            len(workers_found),
            ", ".join(f"{w} {n}" for w, n in per_worker.items()),
        )
        return assigned
