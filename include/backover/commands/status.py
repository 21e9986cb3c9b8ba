"""``backover status``: a migration's replicator, restore and clean state as JSON."""

from __future__ import annotations

import argparse
import json

from ..options import add_migration_options, migration_layout
from ..replication.status import status


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "status",
        help="print a migration's state (replicator, restore, clean) as JSON",
        description="Print a migration's replicator, restore and clean state as JSON.",
    )
    add_migration_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    print(json.dumps(status(migration_layout(args)), indent=2))
    return 0
