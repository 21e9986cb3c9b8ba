"""Command-line options every job shares, with their environment-variable fallbacks."""

from __future__ import annotations

import argparse
import enum
import os

from . import defaults
from .connections import DatabaseUri, resolve
from .errors import UsageError
from .layout import MigrationLayout


def add_migration_options(parser: argparse.ArgumentParser) -> None:
    """``--bucket``, ``--prefix``, ``--migration-id`` (or BACKOVER_BUCKET, _PREFIX, _MIGRATION_ID)."""
    group = parser.add_argument_group("migration")
    group.add_argument(
        "--bucket", default=os.environ.get("BACKOVER_BUCKET"), help="S3 bucket (default: BACKOVER_BUCKET)"
    )
    group.add_argument(
        "--prefix",
        default=os.environ.get("BACKOVER_PREFIX", defaults.PREFIX),
        help="key prefix in the bucket: '/'-separated segments of letters, digits, '.', '_', '-' "
        f"(default: BACKOVER_PREFIX or {defaults.PREFIX!r})",
    )
    group.add_argument(
        "--migration-id",
        default=os.environ.get("BACKOVER_MIGRATION_ID"),
        help="this migration's id (default: BACKOVER_MIGRATION_ID)",
    )


def migration_layout(args: argparse.Namespace) -> MigrationLayout:
    return MigrationLayout(
        bucket=args.bucket or "", prefix=args.prefix or "", migration_id=args.migration_id or ""
    )


def add_database_options(parser: argparse.ArgumentParser, role: str, help_name: str) -> None:
    """``--{role}-uri`` / ``--{role}-secret-id`` (or BACKOVER_{ROLE}_URI / _SECRET_ID)."""
    env = role.upper().replace("-", "_")
    group = parser.add_argument_group(help_name)
    group.add_argument(
        f"--{role}-uri",
        default=os.environ.get(f"BACKOVER_{env}_URI"),
        help=f"{help_name} URI (default: BACKOVER_{env}_URI); never logged",
    )
    group.add_argument(
        f"--{role}-secret-id",
        default=os.environ.get(f"BACKOVER_{env}_SECRET_ID"),
        help=f"Secrets Manager secret with the {help_name} credentials (default: BACKOVER_{env}_SECRET_ID)",
    )


def database_uri(args: argparse.Namespace, role: str, *, documentdb: bool | None = None) -> DatabaseUri:
    attr = role.replace("-", "_")
    return resolve(
        getattr(args, f"{attr}_uri"), getattr(args, f"{attr}_secret_id"), role, documentdb=documentdb
    )


class PassStep(enum.StrEnum):
    """A step of a pass over the sync plan's partitions (the DocumentDB backup, ``verify --live``),
    as its flag."""

    BEGIN = "--begin"
    PARTITION = "--partition"
    FINISH = "--finish"


def add_pass_steps(parser: argparse._ActionsContainer, *, begin: str, partition: str, finish: str) -> None:
    """``--begin``, ``--partition ID``, ``--finish``: a pass in three steps that Airflow maps over
    the workers (without one, the command runs all three); the helps are the command's."""
    parser.add_argument(PassStep.BEGIN.value, action="store_true", help=begin)
    parser.add_argument(PassStep.PARTITION.value, metavar="ID", help=partition)
    parser.add_argument(PassStep.FINISH.value, action="store_true", help=finish)


def pass_step(args: argparse.Namespace) -> tuple[PassStep | None, str | None]:
    """The step asked for (None: the whole pass) and the partition id of ``--partition``;
    UsageError for two steps at once or a blank id."""
    given = {
        PassStep.BEGIN: args.begin,
        PassStep.PARTITION: args.partition is not None,
        PassStep.FINISH: args.finish,
    }
    steps = [step for step, wanted in given.items() if wanted]
    if len(steps) > 1:
        raise UsageError(f"{' and '.join(steps)} exclude each other")
    partition = args.partition.strip() if args.partition is not None else None
    if partition == "":
        raise UsageError("--partition needs a partition id of the sync plan (--begin prints them)")
    return (steps[0] if steps else None), partition
