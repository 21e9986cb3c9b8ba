"""``backover abort --source-uri|--source-secret-id ...``: prior roles back, replicator asked to stop."""

from __future__ import annotations

import argparse
import json

from ..lifecycle.abort import abort
from ..options import add_database_options, add_migration_options, database_uri, migration_layout


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "abort",
        help="give the microservices' user its prior roles back and stop the replicator; deletes nothing",
    )
    add_migration_options(parser)
    add_database_options(parser, "source", "source (DocumentDB, master credentials)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    result = abort(migration_layout(args), database_uri(args, "source"))
    print(json.dumps(result.to_dict(), indent=2))
    return 0
