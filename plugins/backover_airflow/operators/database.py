"""Checks on DocumentDB and MongoDB through the mongo provider's ``MongoHook``.

:class:`PreflightOperator` runs before a DAG changes anything: the environment Variable (shown in
its log), the bucket, both databases reachable (with their versions), the microservices' user and
its roles, change-stream status on the source, and before a migration starts that the source holds
its databases. :class:`AppUserRolesOperator` proves after an abort that the microservices' user
has its prior roles back, and says what they let it write. Connections: ``backover_documentdb`` and
``backover_mongodb`` (type ``mongo``); their passwords never reach a log line or an exception.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException, BaseOperator
from pymongo import MongoClient
from pymongo.errors import OperationFailure, PyMongoError

from backover.connections import strip_password
from backover.errors import BackoverError, Unreachable
from backover.layout import MigrationLayout
from backover.lifecycle import abort, change_streams, users
from backover.lifecycle.source import check_namespaces_exist
from backover.namespaces import Namespace
from backover_airflow import config
from backover_airflow.hooks.migration import MigrationHook

if TYPE_CHECKING:
    from airflow.sdk import Context

SERVER_SELECTION_TIMEOUT_MS = 10_000


@contextmanager
def mongo_client(conn_id: str) -> Iterator[MongoClient]:
    """A client for an Airflow ``mongo`` connection; driver errors become one-line, password-free
    :class:`AirflowException`s naming the connection."""
    from airflow.providers.mongo.hooks.mongo import MongoHook

    hook = MongoHook(mongo_conn_id=conn_id)
    hook.extras.setdefault("serverSelectionTimeoutMS", SERVER_SELECTION_TIMEOUT_MS)
    password = hook.connection.password
    try:
        with hook:
            yield hook.get_conn()
    except PyMongoError as e:
        detail = strip_password(f"{type(e).__name__}: {e}", password).splitlines()[0]
        raise AirflowException(f"connection {conn_id!r}: {detail}") from None


def server_facts(client: MongoClient) -> dict[str, Any]:
    """Version and replica set of a server (after an authenticated ``ping``)."""
    client.admin.command("ping")
    hello = client.admin.command("hello")
    version = client.admin.command("buildInfo").get("version", "?")
    return {"version": version, "replica_set": hello.get("setName")}


class PreflightOperator(BaseOperator):
    """Check the environment and both databases before a DAG changes anything.

    Fails (without retries when retrying cannot help) on: an invalid environment Variable or
    Params (a bad migration id, say), an unusable bucket, a database that cannot be reached or
    refuses the login, a source that is not a replica set (no change streams), a missing
    microservices' user, before the migration's start a database the source does not hold (unless
    the run's ``allow_missing`` says it is created later: the start Lambda's rule,
    :func:`backover.lifecycle.source.check_namespaces_exist`), and with ``require_started`` a
    migration without ``state/start.json``. Its first log line shows the environment Variable as
    validated (secret ids, never a secret). Returns what it found (the environment, versions, the
    user's roles, enabled change streams): no secret.

    :param require_started: the migration must have been started (restore, clean, abort).
    :param documentdb_conn_id: the source's connection (default ``backover_documentdb``).
    :param mongodb_conn_id: the target's connection (default ``backover_mongodb``).
    :param aws_conn_id: AWS connection for S3 (default ``aws_default``).
    """

    template_fields: Sequence[str] = ("documentdb_conn_id", "mongodb_conn_id")
    ui_color = "#e8f7e4"

    def __init__(
        self,
        *,
        require_started: bool = False,
        documentdb_conn_id: str = config.DOCUMENTDB_CONN_ID,
        mongodb_conn_id: str = config.MONGODB_CONN_ID,
        aws_conn_id: str | None = "aws_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.require_started = require_started
        self.documentdb_conn_id = documentdb_conn_id
        self.mongodb_conn_id = mongodb_conn_id
        self.aws_conn_id = aws_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        try:
            env, run = config.load(context["params"])
            layout = env.layout(run.migration_id)
        except (config.ConfigError, BackoverError) as e:
            raise AirflowFailException(str(e)) from e
        environment = asdict(env)
        self.log.info("Environment: Variable %r = %s", env.variable, json.dumps(environment, sort_keys=True))
        self.log.info(
            "Migration %s in s3://%s/%s; databases %s; worker %s",
            run.migration_id,
            layout.bucket,
            layout.root,
            ", ".join(run.databases),
            env.worker_instance_id,
        )
        found: dict[str, Any] = {
            "migration_id": run.migration_id,
            "databases": run.databases,
            "environment": environment,
        }
        found["migration"] = self.check_bucket(layout)
        found["documentdb"] = self.check_source(env, run, started=found["migration"]["started"])
        with mongo_client(self.mongodb_conn_id) as client:
            found["mongodb"] = server_facts(client)
        self.log.info("MongoDB (%s): version %s", self.mongodb_conn_id, found["mongodb"]["version"])
        return found

    def check_bucket(self, layout: MigrationLayout) -> dict[str, Any]:
        hook = MigrationHook(aws_conn_id=self.aws_conn_id)
        if not hook.check_for_bucket(layout.bucket):
            raise AirflowFailException(f"bucket {layout.bucket!r} does not exist or cannot be reached")
        start = hook.start_state(layout)
        if self.require_started and start is None:
            raise AirflowFailException(
                f"migration {layout.migration_id!r} was not started: no s3://{layout.bucket}/{layout.start_state}"
            )
        self.log.info(
            "Bucket %s reachable; migration %s", layout.bucket, "started" if start else "not started yet"
        )
        return {"started": start is not None}

    def check_source(
        self, env: config.BackoverConfig, run: config.RunParams, started: bool = True
    ) -> dict[str, Any]:
        """The source's facts; before the migration started (``started`` False) its databases must
        exist there (a started migration keeps its scope: a database dropped since T0 is captured)."""
        with mongo_client(self.documentdb_conn_id) as client:
            facts = server_facts(client)
            if not facts["replica_set"]:
                raise AirflowFailException(
                    f"connection {self.documentdb_conn_id!r} is not a replica set: it has no change streams"
                )
            try:
                facts["flavour"] = change_streams.detect_flavour(client)
                roles = users.get_roles(client, env.app_user)
                enabled = (
                    sorted(str(ns) for ns in change_streams.list_enabled(client))
                    if facts["flavour"] == change_streams.DOCUMENTDB
                    else ["always on (MongoDB)"]
                )
                missing = (
                    []
                    if started
                    else check_namespaces_exist(
                        client, map(Namespace.parse, run.databases), run.allow_missing
                    )
                )
            except Unreachable as e:  # a timeout or a failover: the task's retries may get through
                raise AirflowException(str(e)) from e
            except BackoverError as e:
                raise AirflowFailException(str(e)) from e
            except OperationFailure as e:
                raise AirflowException(
                    f"connection {self.documentdb_conn_id!r}: {e.code} {e.details}"
                ) from None
        writable = [db for db in run.databases if users.write_roles_on(roles, db)]
        facts.update(
            app_user=env.app_user,
            app_user_roles=roles,
            app_user_can_write=writable,
            change_streams_enabled=enabled,
            created_later=[str(ns) for ns in missing],
        )
        self.log.info(
            "Source (%s): %s %s, replica set %s",
            self.documentdb_conn_id,
            facts["flavour"],
            facts["version"],
            facts["replica_set"],
        )
        self.log.info(
            "User %s: roles %s; can write %s", env.app_user, _roles(roles), ", ".join(writable) or "nothing"
        )
        self.log.info("Change streams enabled: %s", ", ".join(enabled) or "none")
        if missing:
            self.log.info(
                "Not on the source yet (allow_missing is on): %s", ", ".join(facts["created_later"])
            )
        return facts


def _roles(roles: Sequence[dict[str, str]]) -> str:
    return ", ".join(f"{r['role']}@{r['db']}" for r in roles) or "none"


class AppUserRolesOperator(BaseOperator):
    """Prove that the microservices' user holds exactly the roles it had before the migration, and
    say what an abort left.

    Compares ``usersInfo`` on the source with ``prior_roles`` in ``state/start.json``; fails with
    both lists when they differ. Its log says which migrated databases those roles let the user
    write (prior roles that were read-only stay so: abort gives back what the user had), then what
    the abort left as it is (:func:`backover.lifecycle.abort.aftermath`: the replicator's and the
    follow restore's state, the change streams Back Over enabled) and the next steps. Returns the
    roles, the databases they write and that account.

    :param documentdb_conn_id: the source's connection (default ``backover_documentdb``).
    :param aws_conn_id: AWS connection for S3 (default ``aws_default``).
    """

    template_fields: Sequence[str] = ("documentdb_conn_id",)
    ui_color = "#e8f7e4"

    def __init__(
        self,
        *,
        documentdb_conn_id: str = config.DOCUMENTDB_CONN_ID,
        aws_conn_id: str | None = "aws_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.documentdb_conn_id = documentdb_conn_id
        self.aws_conn_id = aws_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        with config.failing_task():
            layout = config.layout_for(context["params"])
        hook = MigrationHook(aws_conn_id=self.aws_conn_id)
        start = hook.start_state(layout)
        if start is None:
            raise AirflowFailException(
                f"no s3://{layout.bucket}/{layout.start_state}: nothing to compare with"
            )
        if start.app_user is None:
            raise AirflowFailException(f"s3://{layout.bucket}/{layout.start_state} names no app_user")
        user = start.app_user
        prior = users.normalise(start.prior_roles)
        with mongo_client(self.documentdb_conn_id) as client:
            try:
                current = users.get_roles(client, user)
            except BackoverError as e:
                raise AirflowFailException(str(e)) from e
        if sorted(map(str, current)) != sorted(map(str, prior)):
            raise AirflowException(
                f"user {user} has roles {_roles(current)}, not its prior roles {_roles(prior)}"
            )
        databases = abort.migrated_databases(start)
        left = abort.aftermath(hook.objects(layout), layout, start)
        for line in abort.summary(user, current, databases, left):
            self.log.info("%s", line[0].upper() + line[1:])
        can_write, cannot_write = abort.describe_writes(current, databases)
        return {
            "app_user": user,
            "roles": current,
            "can_write": can_write,
            "cannot_write": cannot_write,
            **left.to_dict(),
        }
