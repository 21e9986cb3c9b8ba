"""``backover restore``: replay the captured changes into MongoDB, in order, in parallel lanes."""

from __future__ import annotations

import argparse
import contextlib
import json
import threading
from pathlib import Path

from .. import detach, metrics
from ..errors import UsageError
from ..options import add_database_options, add_migration_options, database_uri, migration_layout
from ..restore import RestoreConfig, run_restore
from ..restore.config import DEFAULT_WINDOW, DEFAULT_WORKERS
from ..restore.follow import DEFAULT_HEARTBEAT_SECONDS, DEFAULT_POLL_SECONDS
from ..signals import stop_on_signals

#: Options passed on unchanged to a detached follow restore, with their argparse destinations.
_FORWARDED = (
    ("--bucket", "bucket"),
    ("--prefix", "prefix"),
    ("--migration-id", "migration_id"),
    ("--target-secret-id", "target_secret_id"),
    ("--workers", "workers"),
    ("--window", "window"),
    ("--progress-seconds", "progress_seconds"),
    ("--checkpoint-seconds", "checkpoint_seconds"),
    ("--poll-seconds", "poll_seconds"),
    ("--heartbeat-seconds", "heartbeat_seconds"),
    ("--follow", "follow"),
)


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
    follow = parser.add_argument_group("follow mode")
    follow.add_argument(
        "--follow",
        action="store_true",
        help="apply segments as they land, until the replicator has drained past the freeze "
        "(then write back, complete and exit 0); SIGTERM or an abort stops it (state stopped, exit 0)",
    )
    follow.add_argument(
        "--poll-seconds",
        type=float,
        default=DEFAULT_POLL_SECONDS,
        help="with --follow: look for new segments this often (default %(default)g)",
    )
    follow.add_argument(
        "--heartbeat-seconds",
        type=float,
        default=DEFAULT_HEARTBEAT_SECONDS,
        help="with --follow: rewrite the checkpoint at least this often while waiting (default %(default)g)",
    )
    follow.add_argument(
        "--wait",
        action="store_true",
        help="when another restore holds the lease (a follow restore applying the tail), wait for "
        "it to end, then apply what is left (default: exit 2 naming the holder)",
    )
    follow.add_argument(
        "--detach",
        action="store_true",
        help="with --follow: run in the background (pid and log files); return once it follows",
    )
    follow.add_argument(
        "--pid-file",
        type=Path,
        help="default: $BACKOVER_RUN_DIR or ~/.backover/run, restore-<migration-id>.pid",
    )
    follow.add_argument(
        "--log-file", type=Path, help="default: next to the pid file, restore-<migration-id>.log"
    )
    metrics.add_options(parser)
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
        follow=args.follow,
        poll_seconds=args.poll_seconds,
        heartbeat_seconds=args.heartbeat_seconds,
        wait=args.wait,
    )
    metrics.settings(args)
    if args.detach:
        if not args.follow:
            raise UsageError("--detach needs --follow (a one-off restore runs in the foreground)")
        assert target is not None
        return detach.run_detached(
            "restore",
            args,
            _FORWARDED,
            layout=layout,
            secret_env={} if args.target_secret_id else {"BACKOVER_TARGET_URI": target.value},
            what="the follow restore",
            ready="following the capture in the background",
            extra=metrics.forwarded(args),
        )
    stop = threading.Event()
    signals = (
        stop_on_signals(stop, "the follow restore stops after its current step")
        if args.follow
        else contextlib.nullcontext()  # a one-off restore ends on SIGTERM as any process does
    )
    try:
        with signals, metrics.publishing(args, layout):
            result = run_restore(config, stop=stop, on_ready=detach.ready_notifier())
    finally:
        detach.forget_own_pid_file()
    print(json.dumps(result.summary(), sort_keys=True))
    return 0
