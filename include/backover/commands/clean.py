"""``backover clean [--delete-backups] [--force] [--source-uri|--source-secret-id ...]``."""

from __future__ import annotations

import argparse
import json

from ..cleanup.job import CleanConfig, clean
from ..options import add_database_options, add_migration_options, database_uri, migration_layout


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "clean",
        help="delete the migration's change segments and checkpoints (after a completed, verified restore)",
    )
    add_migration_options(parser)
    add_database_options(
        parser, "source", "source (DocumentDB); given: disable the change streams start enabled"
    )
    parser.add_argument("--delete-backups", action="store_true", help="delete backups/ too (kept by default)")
    parser.add_argument(
        "--force",
        action="store_true",
        help="clean even if the migration was not frozen, the replicator still captures, the "
        "restore is not completed or not verified identical (a forced approval is never "
        "reused by a run without --force)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    layout = migration_layout(args)  # names checked before a secret is read
    source = (
        database_uri(args, "source", documentdb=None) if (args.source_uri or args.source_secret_id) else None
    )
    result = clean(CleanConfig(layout, delete_backups=args.delete_backups, force=args.force, source=source))
    print(json.dumps(result.to_dict(), indent=2))
    return 0
