"""``backover sync``: the initial copy of every migrated collection from DocumentDB to MongoDB,
after T0 and before the restore, in resumable ``_id`` partitions.

``--plan`` writes the plan (and the target's collections and indexes) and prints the partition
ids; ``--partition ID`` copies one of them (a worker's share); neither: plan if needed, copy every
partition left, complete. A completed sync prints its totals and changes nothing.
``--release-ttl`` (after verification) gives every TTL index held back on the target in the
migrated databases the source's ``expireAfterSeconds`` (``backover.sync.ttl``)."""

from __future__ import annotations

import argparse
import json

from .. import state
from ..connections import check_connection
from ..errors import UsageError
from ..namespaces import parse_all
from ..options import add_database_options, add_migration_options, database_uri, migration_layout
from ..s3objects import S3Objects
from ..state import StartRecord
from ..sync import SyncConfig, run_sync
from ..sync.config import DEFAULT_BATCH, DEFAULT_PARTITION_DOCUMENTS, DEFAULT_PROGRESS_SECONDS
from ..sync.ttl import release


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "sync",
        help="copy the migrated collections from DocumentDB to an empty MongoDB (after T0, before the restore)",
    )
    add_migration_options(parser)
    add_database_options(parser, "source", "DocumentDB source")
    add_database_options(parser, "target", "MongoDB target")
    parser.add_argument(
        "--plan",
        action="store_true",
        help="only plan: check the target, create its collections and indexes, write sync/plan.json and "
        "print the partition ids",
    )
    parser.add_argument(
        "--partition",
        metavar="ID",
        help="copy only this partition of the plan (e.g. shop.orders.0003); default: every partition left",
    )
    parser.add_argument(
        "--release-ttl",
        action="store_true",
        help="after verification: give every TTL index held back on the target (so that MongoDB's TTL "
        "monitor deletes nothing before the cutover) the source's expireAfterSeconds; reads the source",
    )
    parser.add_argument(
        "--drop-target",
        action="store_true",
        help="drop the migrated collections the target already has before the copy (default: refuse "
        "when one holds documents)",
    )
    parser.add_argument(
        "--if-needed",
        action="store_true",
        help="copy only when every migrated collection is absent or empty on the target; otherwise say so "
        "and exit 0 without a plan",
    )
    parser.add_argument(
        "--partition-documents",
        type=int,
        default=DEFAULT_PARTITION_DOCUMENTS,
        metavar="N",
        help=f"about N documents per partition (default {DEFAULT_PARTITION_DOCUMENTS:,})",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=DEFAULT_BATCH,
        help=f"documents per insert (default {DEFAULT_BATCH}; a batch also ends at 16 MiB)",
    )
    parser.add_argument(
        "--progress-seconds",
        type=float,
        default=DEFAULT_PROGRESS_SECONDS,
        help=f"seconds between progress lines (default {DEFAULT_PROGRESS_SECONDS:g})",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.release_ttl:
        return _release_ttl(args)
    config = SyncConfig(
        layout=migration_layout(args),
        source=database_uri(args, "source"),
        target=database_uri(args, "target"),
        plan_only=args.plan,
        partition=args.partition,
        drop_target=args.drop_target,
        if_needed=args.if_needed,
        partition_documents=args.partition_documents,
        batch_size=args.batch_size,
        progress_seconds=args.progress_seconds,
    )
    result = run_sync(config)
    print(json.dumps(result.summary(), sort_keys=True))
    return 0


def _release_ttl(args: argparse.Namespace) -> int:
    given = [
        flag
        for flag, on in (
            ("--plan", args.plan),
            ("--partition", args.partition),
            ("--drop-target", args.drop_target),
            ("--if-needed", args.if_needed),
        )
        if on
    ]
    if given:
        raise UsageError(
            f"--release-ttl takes no {', '.join(given)}: it only changes the target's TTL indexes"
        )
    layout = migration_layout(args)
    s3 = S3Objects(layout.bucket)
    s3.check_bucket()
    start = state.read(s3, layout.start_state, StartRecord)
    scope = parse_all(start.namespaces or start.databases) if start is not None else ()
    if not scope:
        raise UsageError(
            f"s3://{s3.bucket}/{layout.start_state} names no migrated database: nothing to release"
        )
    source = database_uri(args, "source", documentdb=True)
    target = database_uri(args, "target")
    with source.client() as source_client, target.client() as target_client:
        check_connection(source, source_client)
        check_connection(target, target_client)
        done = release(source_client, target_client, scope)
    print(json.dumps(done.summary(), sort_keys=True))
    return 0
