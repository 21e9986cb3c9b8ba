"""``backover rehearsal``: the main job, a lifecycle rehearsal on a fresh local sandbox, small by
default or at the user's scale (``--documents``, ``--writes-per-second``, ``--minutes``)."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from backover.errors import UsageError

from .. import rehearsal
from ..config import SandboxConfig
from ..rehearsal.lifecycle import LOAD_WRITES_BEFORE_RESTORE
from ..rehearsal.report import RehearsalScale


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("rehearsal", help="rehearse the lifecycle on a fresh local sandbox")
    parser.add_argument("--dir", help=f"its own sandbox directory (default {rehearsal.DEFAULT_DIR})")
    parser.add_argument(
        "--port-base",
        type=int,
        help=f"first of its sandbox's loopback ports (default {rehearsal.DEFAULT_PORT_BASE}, "
        "apart from `sandbox up`'s)",
    )
    parser.add_argument(
        "--documents",
        type=int,
        default=RehearsalScale.documents,
        help=f"orders in shop.orders on both sides before the capture (default {RehearsalScale.documents})",
    )
    parser.add_argument(
        "--writes-per-second",
        type=float,
        default=None,
        help="the microservices' load during the capture (default: as fast as it runs)",
    )
    parser.add_argument(
        "--minutes",
        type=float,
        default=None,
        help=f"how long the load runs before the restore (default: until "
        f"{LOAD_WRITES_BEFORE_RESTORE} writes)",
    )
    parser.add_argument(
        "--no-follow",
        dest="follow",
        action="store_false",
        help="restore only after the freeze (the DAGs' follow Param off), to compare freeze windows",
    )
    parser.add_argument(
        "--empty-target",
        action="store_true",
        help="MongoDB starts empty: backover_start's initial sync (initial_sync auto) copies DocumentDB first",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=RehearsalScale.workers,
        help="EC2 workers in the sandbox; the copy's partitions are spread over them (with --empty-target; "
        f"default {RehearsalScale.workers})",
    )
    parser.add_argument(
        "--partition-documents",
        type=int,
        default=None,
        metavar="N",
        help="about N documents per sync partition (with --empty-target; default: the sync's 1,000,000, with "
        "several workers enough for shop.orders to give each worker a partition)",
    )
    parser.add_argument(
        "--report", type=Path, help="also write the report as JSON to this file (figures, freeze window)"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    scale = RehearsalScale(
        documents=args.documents,
        writes_per_second=args.writes_per_second,
        minutes=args.minutes,
        follow=args.follow,
        empty_target=args.empty_target,
        workers=args.workers,
        partition_documents=args.partition_documents,
    )  # UsageError (exit 2) before anything starts
    if args.report is not None and not args.report.parent.is_dir():
        raise UsageError(f"--report {args.report}: the folder {args.report.parent} does not exist")
    config = SandboxConfig.from_env(
        args.dir or rehearsal.DEFAULT_DIR,
        args.port_base or rehearsal.DEFAULT_PORT_BASE,
        workers=scale.workers,
        empty_target=scale.empty_target,
    )
    report = rehearsal.run(config, scale)
    print(rehearsal.summary(report))
    if args.report:
        document = {**dataclasses.asdict(report), "ok": report.ok, "scale": dataclasses.asdict(scale)}
        args.report.write_text(json.dumps(document, indent=2, default=str) + "\n")
    return 0 if report.ok else 1
