"""Command-line options every job shares, with their environment-variable fallbacks."""

from __future__ import annotations

import argparse
import os

from . import defaults
from .connections import DatabaseUri, resolve
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
