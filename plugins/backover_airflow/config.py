"""The environment a migration runs in (Airflow Variable ``backover``) and the run's own choices.

The Variable holds what stays the same from run to run: bucket, prefix, the EC2 worker, the Lambda
names, the Secrets Manager secret ids, how the worker starts ``backover``. A DAG run's Params hold
what a user picks when triggering: the migration id, the databases, dry run. Both are read at run
time, never at parse time. Secrets themselves are never here: only their ids.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from backover import defaults
from backover.errors import UsageError
from backover.layout import InvalidName, MigrationLayout, check_bucket_name, check_migration_id, check_prefix
from backover.sync.config import DEFAULT_PARTITION_DOCUMENTS

#: The Airflow Variable (JSON) that describes the environment; a DAG's ``environment`` Param can
#: name another one (a rehearsal environment, say).
DEFAULT_VARIABLE = "backover"
#: The environment ``backover_rehearsal`` runs against unless told otherwise: its own Variable
#: (e.g. a DocumentDB cluster restored from a snapshot and a scratch MongoDB).
REHEARSAL_VARIABLE = "backover_rehearsal"
#: What an environment is for (the Variable's optional ``purpose``): only a ``rehearsal``
#: environment may be rehearsed (a rehearsal freezes the writes of the application there).
PURPOSES = ("rehearsal", "production")
#: Airflow connections (type ``mongo``) for the preflight checks.
DOCUMENTDB_CONN_ID = "backover_documentdb"
MONGODB_CONN_ID = "backover_mongodb"
LAMBDAS = ("start", "restore", "clean")
SECRETS = ("documentdb", "mongodb", "app_user")
#: Defaults of the Variable's optional fields (the prefix's is :data:`backover.defaults.PREFIX`,
#: shared with the command line and the Lambda event).
BACKOVER_COMMAND = "backover"
POLL_INTERVAL_SECONDS = 30
COMMAND_TIMEOUT_SECONDS = 86_400
HEARTBEAT_MAX_AGE_SECONDS = 300
#: The ``initial_sync`` Param of ``backover_start``: ``auto`` copies only when the target lacks the
#: migrated collections (or they are empty), ``always`` copies (a target holding data is refused
#: unless ``drop_target``), ``never`` runs no sync task.
INITIAL_SYNC_MODES = ("auto", "always", "never")


class ConfigError(ValueError):
    """The environment Variable or a Param is missing or wrong; the message names which and why."""


def _require(data: Mapping[str, Any], name: str, key: str, kind: type) -> Any:
    if key not in data or data[key] in (None, ""):
        raise ConfigError(f"Variable {name!r} lacks {key!r}")
    value = data[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(f"Variable {name!r}: {key!r} must be a {kind.__name__}, not {type(value).__name__}")
    return value


def _names(data: Mapping[str, Any], name: str, key: str, required: tuple[str, ...]) -> dict[str, str]:
    value = _require(data, name, key, dict)
    missing = [k for k in required if not isinstance(value.get(k), str) or not value.get(k)]
    if missing:
        raise ConfigError(f"Variable {name!r}: {key!r} lacks {', '.join(missing)}")
    return {k: str(v) for k, v in value.items()}


def _checked(name: str, key: str, check: Callable[[object], str], value: object) -> str:
    """The Variable's bucket or prefix, checked by the rule the command line and the Lambdas apply."""
    try:
        return check(value)
    except InvalidName as e:
        raise ConfigError(f"Variable {name!r}: {key!r}: {e}") from None


def _optional(data: Mapping[str, Any], key: str, default: str) -> object:
    """An optional field: ``default`` when absent or null; an empty string stays empty."""
    value = data.get(key)
    return default if value is None else value


def _purpose(data: Mapping[str, Any], name: str) -> str | None:
    value = data.get("purpose")
    if value is None:
        return None
    if value not in PURPOSES:
        raise ConfigError(f"Variable {name!r}: 'purpose' must be one of {', '.join(PURPOSES)}, not {value!r}")
    return str(value)


def check_rehearsable(config: BackoverConfig) -> None:
    """A rehearsal freezes the writes of the application it runs against: only an environment whose
    Variable says ``"purpose": "rehearsal"`` may be rehearsed (one line otherwise)."""
    if config.purpose == "production":
        raise ConfigError(
            f"environment {config.variable!r} is marked production: a rehearsal would freeze the writes of its "
            'application; rehearse on a rehearsal environment (a Variable with "purpose": "rehearsal", e.g. '
            f"{REHEARSAL_VARIABLE!r})"
        )
    if config.purpose != "rehearsal":
        raise ConfigError(
            f'environment {config.variable!r} is not marked as a rehearsal environment ("purpose": "rehearsal" '
            "in its Variable): a rehearsal freezes the writes of the application there"
        )


def _worker_tag(data: Mapping[str, Any], name: str) -> dict[str, str] | None:
    """The optional ``worker_tag``: ``{"Key": ..., "Value": ...}``, EC2's own shape of a tag."""
    value = data.get("worker_tag")
    if value is None:
        return None
    if (
        not isinstance(value, Mapping)
        or set(value) != {"Key", "Value"}
        or not all(isinstance(value[k], str) and value[k] for k in ("Key", "Value"))
    ):
        shape = '{"Key": ..., "Value": ...}'
        raise ConfigError(
            f"Variable {name!r}: 'worker_tag' must be an EC2 tag {shape} of two non-empty strings"
        )
    return {"Key": str(value["Key"]), "Value": str(value["Value"])}


def _positive(data: Mapping[str, Any], name: str, key: str, default: int) -> int:
    if data.get(key) is None:
        return default
    value = _require(data, name, key, int)
    if value <= 0:
        raise ConfigError(f"Variable {name!r}: {key!r} must be positive, not {value}")
    return value


#: CloudWatch Logs' rule for a log group name.
_LOG_GROUP = re.compile(r"[.\-_/#A-Za-z0-9]{1,512}")


def _log_group(data: Mapping[str, Any], name: str) -> str | None:
    """The optional ``log_group``: a CloudWatch Logs group name, ``""`` (none) or absent/null (default)."""
    value = data.get("log_group")
    if value is None or value == "":
        return value
    if not isinstance(value, str) or not _LOG_GROUP.fullmatch(value):
        raise ConfigError(
            f"Variable {name!r}: 'log_group' must be a CloudWatch Logs group name (1 to 512 of "
            f'A-Z a-z 0-9 . - _ / #) or "" for none, not {value!r}'
        )
    return value


@dataclass(frozen=True)
class BackoverConfig:
    """One environment, as the Variable describes it (see ``backover sandbox env`` for an example).

    :param bucket: S3 bucket of the migrations.
    :param prefix: key prefix in the bucket (default ``backover``, :data:`backover.defaults.PREFIX`,
        as for the command line and the Lambdas; ``""`` is the bucket's top).
    :param worker_instance_id: the EC2 worker that SSM Run Command runs ``backover`` on (the
        replicator, the restore, the backups, verify, the sync's plan): the first worker.
    :param worker_tag: optional EC2 tag ``{"Key": "backover-worker", "Value": "prod"}``: every
        instance carrying it (not terminated) is a worker too, and the initial sync's partitions are
        spread over all of them round-robin (:mod:`backover_airflow.workers`); the worker group
        starts and waits for each, clean stops each. None (default): the one worker.
    :param lambda_names: function names of the ``start``, ``restore`` and ``clean`` Lambdas.
    :param secret_ids: Secrets Manager ids of the ``documentdb`` and ``mongodb`` master credentials
        and of the microservices' user (``app_user``).
    :param app_user: the microservices' database user.
    :param databases: the databases to move when a run does not name its own.
    :param backover_command: how a shell on the worker starts ``backover`` (default ``backover``,
        the installed console script; the sandbox uses ``<python> -m backover``).
    :param poll_interval_seconds: how often sensors and SSM waits look again (default 30).
    :param command_timeout_seconds: longest a worker command may run (SSM ``executionTimeout``,
        default 86,400).
    :param heartbeat_max_age_seconds: a replicator heartbeat older than this is not healthy
        (default 300).
    :param purpose: optional: ``rehearsal`` or ``production`` (:data:`PURPOSES`); only a
        ``rehearsal`` environment may be rehearsed (:func:`check_rehearsable`).
    :param log_group: optional CloudWatch Logs group that worker commands send their output to while
        they run, streamed into the task log; None (default): ``/backover/<prefix>``
        (:attr:`command_log_group`); ``""``: none, a command's output shows when it ends (SSM
        keeps 24,000 characters of it).
    """

    bucket: str
    prefix: str
    worker_instance_id: str
    lambda_names: dict[str, str]
    secret_ids: dict[str, str]
    app_user: str
    databases: list[str] = field(default_factory=list)
    backover_command: str = BACKOVER_COMMAND
    poll_interval_seconds: int = POLL_INTERVAL_SECONDS
    command_timeout_seconds: int = COMMAND_TIMEOUT_SECONDS
    heartbeat_max_age_seconds: int = HEARTBEAT_MAX_AGE_SECONDS
    worker_tag: dict[str, str] | None = None
    purpose: str | None = None
    variable: str = DEFAULT_VARIABLE
    log_group: str | None = None

    @classmethod
    def from_mapping(cls, data: Any, variable: str = DEFAULT_VARIABLE) -> BackoverConfig:
        """Validate the Variable's JSON; :class:`ConfigError` names the first problem."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"Variable {variable!r} must be a JSON object")
        databases = data.get("databases") or []
        if not isinstance(databases, list) or not all(isinstance(d, str) and d for d in databases):
            raise ConfigError(f"Variable {variable!r}: 'databases' must be a list of database names")
        return cls(
            worker_instance_id=_require(data, variable, "worker_instance_id", str),
            lambda_names=_names(data, variable, "lambda_names", LAMBDAS),
            secret_ids=_names(data, variable, "secret_ids", SECRETS),
            app_user=_require(data, variable, "app_user", str),
            databases=list(databases),
            backover_command=str(data.get("backover_command") or BACKOVER_COMMAND),
            poll_interval_seconds=_positive(data, variable, "poll_interval_seconds", POLL_INTERVAL_SECONDS),
            command_timeout_seconds=_positive(
                data, variable, "command_timeout_seconds", COMMAND_TIMEOUT_SECONDS
            ),
            heartbeat_max_age_seconds=_positive(
                data, variable, "heartbeat_max_age_seconds", HEARTBEAT_MAX_AGE_SECONDS
            ),
            worker_tag=_worker_tag(data, variable),
            purpose=_purpose(data, variable),
            variable=variable,
            log_group=_log_group(data, variable),
            # last, so a missing field is named before a malformed name
            bucket=_checked(variable, "bucket", check_bucket_name, _require(data, variable, "bucket", str)),
            prefix=_checked(variable, "prefix", check_prefix, _optional(data, "prefix", defaults.PREFIX)),
        )

    @classmethod
    def from_variable(cls, variable: str = DEFAULT_VARIABLE) -> BackoverConfig:
        """Read and validate the Airflow Variable (call at run time only)."""
        from airflow.sdk import Variable

        raw = Variable.get(variable, default=None)
        if raw is None:
            raise ConfigError(f"Airflow Variable {variable!r} is not set (see `backover sandbox env`)")
        try:
            data = json.loads(raw) if isinstance(raw, str) else raw
        except json.JSONDecodeError as e:
            raise ConfigError(f"Airflow Variable {variable!r} is not JSON: {e.msg} at {e.pos}") from e
        return cls.from_mapping(data, variable)

    @property
    def command_log_group(self) -> str | None:
        """The log group of worker commands' output: ``log_group``, by default ``/backover/<prefix>``
        (``/backover`` for the bucket's top); None when the Variable says ``""``."""
        if self.log_group is None:
            return f"/backover/{self.prefix}" if self.prefix else "/backover"
        return self.log_group or None

    def layout(self, migration_id: str) -> MigrationLayout:
        """The S3 keys of ``migration_id`` in this environment."""
        return MigrationLayout(bucket=self.bucket, prefix=self.prefix, migration_id=migration_id)


@dataclass(frozen=True)
class RunParams:
    """What one DAG run was asked to do (its Params, validated).

    :param migration_id: names the migration's folder in S3.
    :param databases: the databases to move (the environment's when the run names none).
    :param dry_run: check everything, change nothing.
    :param environment: the Variable that describes the environment.
    :param follow: the follow-mode restore (default): ``backover_start`` backs MongoDB up and starts
        ``backover restore --follow``, ``backover_restore`` freezes only once it trails by seconds;
        off: the restore replays everything after the freeze (the seed's order).
    :param initial_sync: ``auto`` (default), ``always`` or ``never`` (:data:`INITIAL_SYNC_MODES`):
        whether ``backover_start`` copies DocumentDB to MongoDB before the replay (``backover sync``).
    :param drop_target: with ``always``: drop the migrated collections the target holds first
        (``--drop-target``); otherwise such a target is refused.
    :param sync_partition_documents: about this many documents per partition of the copy.
    :param allow_missing: ``backover_start`` accepts databases the source does not hold yet (created
        later); off, the preflight and the start Lambda refuse them, naming each.
    """

    migration_id: str
    databases: list[str]
    dry_run: bool = False
    environment: str = DEFAULT_VARIABLE
    follow: bool = True
    initial_sync: str = "auto"
    drop_target: bool = False
    sync_partition_documents: int = DEFAULT_PARTITION_DOCUMENTS
    allow_missing: bool = False

    @classmethod
    def from_params(cls, params: Mapping[str, Any], config: BackoverConfig | None = None) -> RunParams:
        """Validate a run's Params; ``databases`` falls back to the environment's list."""
        try:
            migration_id = check_migration_id(params.get("migration_id") or "")
        except InvalidName as e:
            raise ConfigError(str(e)) from None
        databases = list(params.get("databases") or (config.databases if config else []))
        if not databases:
            raise ConfigError("no databases: name them in the run's 'databases' or in the Variable")
        initial_sync = params.get("initial_sync") or "auto"
        if initial_sync not in INITIAL_SYNC_MODES:
            raise ConfigError(
                f"Param 'initial_sync' must be one of {', '.join(INITIAL_SYNC_MODES)}, not {initial_sync!r}"
            )
        drop_target = _flag(params, "drop_target", False)
        if drop_target and initial_sync != "always":
            raise ConfigError(
                f"Param 'drop_target' needs initial_sync 'always', not {initial_sync!r}: the target's "
                "collections are dropped only for a copy the user asked for"
            )
        partition_documents = params.get("sync_partition_documents")
        if partition_documents is None:
            partition_documents = DEFAULT_PARTITION_DOCUMENTS
        if (
            not isinstance(partition_documents, int)
            or isinstance(partition_documents, bool)
            or partition_documents < 1
        ):
            raise ConfigError(
                f"Param 'sync_partition_documents' must be a whole number of at least 1, not {partition_documents!r}"
            )
        return cls(
            migration_id=migration_id,
            databases=databases,
            dry_run=_flag(params, "dry_run", False),
            environment=str(params.get("environment") or DEFAULT_VARIABLE),
            follow=_flag(params, "follow", True),
            initial_sync=str(initial_sync),
            drop_target=drop_target,
            sync_partition_documents=partition_documents,
            allow_missing=_flag(params, "allow_missing", False),
        )


def _flag(params: Mapping[str, Any], name: str, default: bool) -> bool:
    """A switch Param; absent or null (the trigger form's switches may send null) is its default."""
    value = params.get(name)
    return default if value is None else bool(value)


def follow_on(params: Mapping[str, Any]) -> bool:
    """The run's ``follow`` switch as every task reads it: on unless the run turned it off (absent
    or cleared, null, is the default, on), as :class:`RunParams` reads it."""
    return _flag(params, "follow", True)


def environment(params: Mapping[str, Any]) -> BackoverConfig:
    """The environment named by the run's ``environment`` Param, validated (call at run time only)."""
    return BackoverConfig.from_variable(str(params.get("environment") or DEFAULT_VARIABLE))


#: The rehearsal DAG, and the DAGs whose ``environment`` Param defaults to
#: :data:`REHEARSAL_VARIABLE` (the others': :data:`DEFAULT_VARIABLE`).
REHEARSAL_DAG_ID = "backover_rehearsal"
REHEARSAL_DAG_IDS = (REHEARSAL_DAG_ID, "backover_rehearsal_weekly")


def run_environment(dag_id: str, conf: Mapping[str, Any] | None) -> str:
    """The environment (Variable name) a run of ``dag_id`` works in: its conf's ``environment``,
    else the DAG's own Param default (:data:`REHEARSAL_VARIABLE` for the rehearsal DAGs,
    :data:`DEFAULT_VARIABLE` for the others). The one rule for run labels, the Migrations page and
    the rehearsal's phases."""
    named = (conf or {}).get("environment")
    if isinstance(named, str) and named.strip():
        return named.strip()
    return REHEARSAL_VARIABLE if dag_id in REHEARSAL_DAG_IDS else DEFAULT_VARIABLE


def load(params: Mapping[str, Any]) -> tuple[BackoverConfig, RunParams]:
    """The environment named by the run's ``environment`` Param, and the run's validated Params."""
    config = environment(params)
    return config, RunParams.from_params(params, config)


def migration(
    params: Mapping[str, Any], migration_id: str | None = None
) -> tuple[BackoverConfig, MigrationLayout]:
    """The environment and the S3 layout of the migration a task watches: ``migration_id``, else the
    run's Param of that name (what a sensor needs; the run's databases are not checked)."""
    config = environment(params)
    try:
        return config, config.layout(check_migration_id(migration_id or params.get("migration_id") or ""))
    except UsageError as e:
        raise ConfigError(str(e)) from None


@contextmanager
def failing_task() -> Iterator[None]:
    """Inside a task: a :class:`ConfigError` fails it at once with its one-line reason, without
    retries (retrying cannot fix the Variable or the Params)."""
    from airflow.providers.common.compat.sdk import AirflowFailException

    try:
        yield
    except ConfigError as e:
        raise AirflowFailException(str(e)) from e


def layout_for(params: Mapping[str, Any]) -> MigrationLayout:
    """The S3 layout of the migration a run works on."""
    config, run = load(params)
    try:
        return config.layout(run.migration_id)
    except UsageError as e:
        raise ConfigError(str(e)) from e
