"""``backover backup --label documentdb|mongodb --uri|--secret-id ... [--restore [--drop] [--until T]]``,
``backover backup --label documentdb --seal``, and the partitioned DocumentDB backup:
``backover backup --label documentdb --uri|--secret-id ... --begin | --partition ID | --finish``."""

from __future__ import annotations

import argparse
import json

from ..backup.dump import LABELS, BackupConfig, BackupResult, default_databases
from ..backup.load import LoadConfig, LoadResult, load
from ..backup.partitioned import (
    BeginResult,
    PartResult,
    begin,
    check_label,
    dump_partition,
    finish,
    run_backup,
)
from ..backup.seal import SealResult, seal
from ..clustertime import parse as parse_time
from ..connections import resolve
from ..errors import UsageError
from ..options import PassStep, add_migration_options, add_pass_steps, migration_layout, pass_step


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
    parser.add_argument(
        "--until",
        metavar="SECS:INC",
        help="with --restore of a documentdb backup: replay the captured changes up to this cluster time "
        "instead of F (state/freeze.json), e.g. the capture's position for a migration not frozen yet",
    )
    parser.add_argument(
        "--seal",
        action="store_true",
        help="documentdb only, no database needed: copy the captured segments after the backup's B under "
        "the backup's own .changes/ folder (kept by clean) and record F; run after the drain",
    )
    steps = parser.add_argument_group(
        "a documentdb backup over the sync plan's partitions (one worker each; plain backup runs all three)"
    )
    add_pass_steps(
        steps,
        begin="take B and record the backup's start and the partitions to dump "
        "(backups/documentdb/_begun.json)",
        partition="dump one partition of the begun backup (a sync plan partition id, e.g. shop.orders.0003)",
        finish="once every partition is dumped: the rest, the collections without partitions, each "
        "collection's object from its parts, then backups/documentdb/_backup.json",
    )
    parser.set_defaults(run=run)


def _step(args: argparse.Namespace) -> tuple[PassStep | None, str | None]:
    """The partitioned step asked for (:func:`~backover.options.pass_step`), checked against the
    backup's other flags."""
    step, partition = pass_step(args)
    if step is None:
        return None, None
    if args.restore or args.seal:
        raise UsageError(f"{step} takes a backup: it goes with neither --restore nor --seal")
    check_label(args.label)
    if args.databases and step is not PassStep.BEGIN:
        raise UsageError(f"--databases goes with --begin; {step} backs up the databases the begin recorded")
    return step, partition


def run(args: argparse.Namespace) -> int:
    if args.drop and not args.restore:
        raise UsageError("--drop only goes with --restore")
    if args.until is not None and not args.restore:
        raise UsageError("--until only goes with --restore")
    step, partition = _step(args)
    if args.seal and (args.restore or args.uri or args.secret_id or args.databases):
        raise UsageError(
            "--seal reads and writes S3 only: it takes no --restore, --uri, --secret-id or --databases"
        )
    until = parse_time(args.until) if args.until is not None else None
    layout = migration_layout(args)
    result: LoadResult | BackupResult | SealResult | BeginResult | PartResult
    if args.seal:
        result = seal(layout, args.label, parallel=args.parallel)
        print(json.dumps(result.to_dict(), indent=2))
        return 0
    if not (args.uri or args.secret_id):
        raise UsageError("no database: pass --uri or --secret-id")
    databases = tuple(d.strip() for d in (args.databases or "").split(",") if d.strip())
    if args.restore:
        target = resolve(args.uri, args.secret_id, "database")
        result = load(
            LoadConfig(
                target, layout, args.label, databases, drop=args.drop, parallel=args.parallel, until=until
            )
        )
    else:
        source = resolve(
            args.uri, args.secret_id, "database", documentdb=True if args.label == "documentdb" else None
        )
        if step in (PassStep.PARTITION, PassStep.FINISH):  # the begin record says which databases
            config = BackupConfig(source, layout, args.label, parallel=args.parallel)
        else:
            config = BackupConfig(
                source, layout, args.label, databases or default_databases(layout), parallel=args.parallel
            )
        if step is PassStep.BEGIN:
            result = begin(config)
        elif step is PassStep.PARTITION:
            assert partition is not None
            result = dump_partition(config, partition)
        elif step is PassStep.FINISH:
            result = finish(config)
        else:
            result = run_backup(config)
    print(json.dumps(result.to_dict(), indent=2))
    return 0
