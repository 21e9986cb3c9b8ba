"""``backover verify``: prove the target holds exactly what the source holds (exit 0 only then).

``--live`` runs the pre-freeze pass (``reports/verify-live.json``), whole or in steps mapped over
workers (``--begin``, one ``--partition ID`` per sync-plan partition, ``--finish``); without a
flag, at the freeze, the check is incremental when that record exists and full otherwise;
``--full`` compares every document whatever exists."""

from __future__ import annotations

import argparse
import json

from ..errors import JobFailed, UsageError
from ..namespaces import parse_all
from ..options import (
    PassStep,
    add_database_options,
    add_migration_options,
    add_pass_steps,
    database_uri,
    migration_layout,
    pass_step,
)
from ..verify import VerifyConfig, live, run_verify
from ..verify.config import (
    DEFAULT_BATCH,
    DEFAULT_EXAMPLES,
    DEFAULT_POLL_SECONDS,
    DEFAULT_PROGRESS_SECONDS,
    DEFAULT_SETTLE_SECONDS,
    VerifyMode,
)


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
    parser.add_argument(
        "--live",
        action="store_true",
        help="the pre-freeze pass, while the application writes and the follow restore applies: "
        "writes reports/verify-live.json; exit 1 on a proven difference, documents that do not "
        "settle, or a write on the target by anyone but the restore",
    )
    add_pass_steps(
        parser,
        begin="--live, mapped over workers: the pass's start only (the restore's position, the "
        "target's change stream, the sync plan's partitions to compare); prints them as JSON",
        partition="--live, mapped over workers: compare one partition of the sync plan for the running "
        "pass (after --begin); exit 1 on a proven difference or documents that do not settle",
        finish="--live, mapped over workers: once every partition ran, compare what no partition "
        "holds, the indexes and the target's change stream, and write the verdict",
    )
    parser.add_argument(
        "--full",
        action="store_true",
        help="compare every document, even after a live pass (default at the freeze: only what "
        "changed since the live pass, when it passed)",
    )
    parser.add_argument(
        "--settle-seconds",
        type=float,
        default=DEFAULT_SETTLE_SECONDS,
        help="--live: how long differing documents may wait for the restore to pass them "
        f"(default {DEFAULT_SETTLE_SECONDS:g})",
    )
    parser.add_argument(
        "--poll-seconds",
        type=float,
        default=DEFAULT_POLL_SECONDS,
        help=f"--live: how often the restore checkpoint is read while documents wait (default "
        f"{DEFAULT_POLL_SECONDS:g})",
    )
    parser.add_argument(
        "--progress-seconds",
        type=float,
        default=DEFAULT_PROGRESS_SECONDS,
        help=f"seconds between progress lines (default {DEFAULT_PROGRESS_SECONDS:g})",
    )
    parser.set_defaults(run=run)


def _live_step(args: argparse.Namespace) -> tuple[PassStep | None, str | None]:
    """Which step of a mapped live pass the flags ask for (:func:`~backover.options.pass_step`;
    None: the whole pass or no live pass), and the partition id."""
    step, partition = pass_step(args)
    if step is not None and not args.live:
        raise UsageError(f"{step} needs --live")
    return step, partition


def run(args: argparse.Namespace) -> int:
    if args.live and args.full:
        raise UsageError("--live and --full exclude each other")
    step, partition_id = _live_step(args)
    mode = VerifyMode.LIVE if args.live else VerifyMode.FULL if args.full else VerifyMode.AUTO
    config = VerifyConfig(
        layout=migration_layout(args),
        source=database_uri(args, "source"),
        target=database_uri(args, "target"),
        namespaces=parse_all(args.namespace),
        batch_size=args.batch_size,
        examples=args.examples,
        mode=mode,
        settle_seconds=args.settle_seconds,
        poll_seconds=args.poll_seconds,
        progress_seconds=args.progress_seconds,
    )
    if step is PassStep.BEGIN:
        begun = live.begin(config)
        print(
            json.dumps(
                {
                    "live": True,
                    "state": begun.state.value,
                    "begin_id": begun.begin_id,
                    "partitions": begun.partitions,
                    "namespaces": begun.namespaces,
                    "applied_seq": begun.applied_seq,
                },
                sort_keys=True,
            )
        )
        return 0
    if step is PassStep.PARTITION:
        assert partition_id is not None
        part = live.verify_partition(config, partition_id)
        print(
            json.dumps(
                {
                    "live": True,
                    "partition": part.partition,
                    "passed": True,
                    "documents": part.documents,
                    "differed": part.differed,
                    "settled": part.settled,
                    "deferred": part.deferred,
                },
                sort_keys=True,
            )
        )
        return 0
    if mode is VerifyMode.LIVE:
        record = live.finish(config) if step is PassStep.FINISH else live.run_verify_live(config)
        print(
            json.dumps(
                {
                    "live": True,
                    "passed": True,
                    "namespaces": len(record.compared),
                    "documents": record.documents,
                    "differed": record.differed,
                    "settled": record.settled,
                    "deferred": record.deferred,
                    "partitions": len(record.partitions),
                },
                sort_keys=True,
            )
        )
        return 0
    report = run_verify(config)
    print(
        json.dumps(
            {
                "identical": report.identical,
                "namespaces": len(report.namespaces),
                "differing": report.differing,
                "mode": report.mode.value,
                "documents_at_freeze": report.documents_at_freeze,
            },
            sort_keys=True,
        )
    )
    if not report.identical:
        raise JobFailed(report.summary().removeprefix("verify: "))
    return 0
