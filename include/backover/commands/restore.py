"""``backover restore``: replay the captured changes into MongoDB, in order, in parallel lanes."""

from __future__ import annotations

import argparse
import json

from ..options import add_database_options, add_migration_options, database_uri, migration_layout
from ..restore import RestoreConfig, run_restore
from ..restore.config import DEFAULT_WINDOW, DEFAULT_WORKERS


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("restore", help="replay the captured change segments into MongoDB")
    add_migration_options(parser)
    add_database_options(parser, "target", "MongoDB target")
    parser.add_argument(
        "--workers",
        type=int,
        default=DEFAULT_WORKERS,
        help=f"parallel write lanes (default {DEFAULT_WORKERS})",
    )
    parser.add_argument(
        "--window",
        type=int,
        default=DEFAULT_WINDOW,
        help=f"events per window; only the last write per document in a window is sent "
        f"(default {DEFAULT_WINDOW:,})",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print the plan (segments, events per namespace and type, DDL); write nothing",
    )
    parser.add_argument(
        "--from-seq",
        type=int,
        metavar="SEQ",
        help="apply segments again from SEQ (default: after the checkpoint); events before "
        "the last applied DDL are skipped, the rest is idempotent",
    )
    parser.add_argument(
        "--reset",
        action="store_true",
        help="forget this restore's state and replay everything (only for a target put back "
        "to its state before the first restore)",
    )
    parser.add_argument("--progress-seconds", type=float, default=5.0, help="seconds between progress lines")
    parser.add_argument(
        "--checkpoint-seconds",
        type=float,
        default=2.0,
        help="at most one checkpoint write per this many seconds (default 2)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    layout, target = migration_layout(args), None  # names checked before a secret is read
    if not args.dry_run or args.target_uri or args.target_secret_id:
        target = database_uri(args, "target")
    config = RestoreConfig(
        layout=layout,
        target=target,
        workers=args.workers,
        window=args.window,
        dry_run=args.dry_run,
        from_seq=args.from_seq,
        reset=args.reset,
        progress_seconds=args.progress_seconds,
        checkpoint_seconds=args.checkpoint_seconds,
    )
    result = run_restore(config)
    print(json.dumps(result.summary(), sort_keys=True))
    return 0
