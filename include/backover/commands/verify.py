"""``backover verify``: prove the target holds exactly what the source holds (exit 0 only then)."""

from __future__ import annotations

import argparse
import json

from ..errors import JobFailed
from ..namespaces import parse_all
from ..options import add_database_options, add_migration_options, database_uri, migration_layout
from ..verify import VerifyConfig, run_verify
from ..verify.config import DEFAULT_BATCH, DEFAULT_EXAMPLES


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("verify", help="compare source and target document by document, byte by byte")
    add_migration_options(parser)
    add_database_options(parser, "source", "DocumentDB source")
    add_database_options(parser, "target", "MongoDB target")
    parser.add_argument(
        "--namespace",
        action="append",
        default=[],
        metavar="DB[.COLL]",
        help="compare only this database or collection (repeatable; default: every "
        "non-system collection of the source's non-system databases)",
    )
    parser.add_argument(
        "--batch-size", type=int, default=DEFAULT_BATCH, help=f"documents per batch (default {DEFAULT_BATCH})"
    )
    parser.add_argument(
        "--examples",
        type=int,
        default=DEFAULT_EXAMPLES,
        help=f"differing _ids listed per namespace (default {DEFAULT_EXAMPLES})",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    config = VerifyConfig(
        layout=migration_layout(args),
        source=database_uri(args, "source"),
        target=database_uri(args, "target"),
        namespaces=parse_all(args.namespace),
        batch_size=args.batch_size,
        examples=args.examples,
    )
    report = run_verify(config)
    print(
        json.dumps(
            {
                "identical": report.identical,
                "namespaces": len(report.namespaces),
                "differing": report.differing,
            },
            sort_keys=True,
        )
    )
    if not report.identical:
        raise JobFailed(report.summary().removeprefix("verify: "))
    return 0
