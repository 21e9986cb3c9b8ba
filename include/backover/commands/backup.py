"""``backover backup --label documentdb|mongodb --uri|--secret-id ... [--restore [--drop]]``."""

from __future__ import annotations

import argparse
import json

from ..backup.dump import LABELS, BackupConfig, BackupResult, backup, default_databases
from ..backup.load import LoadConfig, LoadResult, load
from ..connections import resolve
from ..errors import UsageError
from ..options import add_migration_options, migration_layout


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "backup", help="dump databases to S3 in mongodump's --gzip layout, or bring a backup back (--restore)"
    )
    add_migration_options(parser)
    group = parser.add_argument_group("database")
    group.add_argument("--uri", help="the database's URI; never logged")
    group.add_argument("--secret-id", help="Secrets Manager secret with the database's credentials")
    parser.add_argument(
        "--label",
        required=True,
        choices=LABELS,
        help="which side this is: backups/{label}/ in the migration's folder",
    )
    parser.add_argument(
        "--databases",
        help="comma-separated databases (default: state/start.json's, else "
        "every database but admin/config/local; with --restore: all)",
    )
    parser.add_argument("--parallel", type=int, default=4, help="collections at a time (default 4)")
    parser.add_argument(
        "--restore", action="store_true", help="bring the backup back into the database instead of dumping it"
    )
    parser.add_argument(
        "--drop",
        action="store_true",
        help="with --restore: replace the target's collections (each is replaced only once every "
        "collection of the backup is loaded and checked; without it, they must be empty)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if not (args.uri or args.secret_id):
        raise UsageError("no database: pass --uri or --secret-id")
    if args.drop and not args.restore:
        raise UsageError("--drop only goes with --restore")
    layout = migration_layout(args)
    databases = tuple(d.strip() for d in (args.databases or "").split(",") if d.strip())
    result: LoadResult | BackupResult
    if args.restore:
        target = resolve(args.uri, args.secret_id, "database")
        result = load(
            LoadConfig(target, layout, args.label, databases, drop=args.drop, parallel=args.parallel)
        )
    else:
        source = resolve(
            args.uri, args.secret_id, "database", documentdb=True if args.label == "documentdb" else None
        )
        config = BackupConfig(
            source, layout, args.label, databases or default_databases(layout), parallel=args.parallel
        )
        result = backup(config)
    print(json.dumps(result.to_dict(), indent=2))
    return 0
