"""``backover replicate``: capture DocumentDB change streams into segments in S3."""

from __future__ import annotations

import argparse
from pathlib import Path

from .. import clustertime, detach, metrics
from ..lease import DEFAULT_RENEW_SECONDS, DEFAULT_TTL_SECONDS
from ..options import add_database_options, add_migration_options, database_uri, migration_layout
from ..replication import config as defaults
from ..replication.config import ReplicateConfig
from ..replication.service import replicate
from ..segments import COMPRESSIONS

#: Options passed on unchanged to the detached child, with their argparse destinations.
_FORWARDED = (
    ("--bucket", "bucket"),
    ("--prefix", "prefix"),
    ("--migration-id", "migration_id"),
    ("--start-at", "start_at"),
    ("--compression", "compression"),
    ("--max-events", "max_events"),
    ("--max-bytes", "max_bytes"),
    ("--max-seconds", "max_seconds"),
    ("--heartbeat-seconds", "heartbeat_seconds"),
    ("--drain-poll-seconds", "drain_poll_seconds"),
    ("--await-ms", "await_ms"),
    ("--connect-timeout", "connect_timeout"),
    ("--give-up-seconds", "give_up_seconds"),
    ("--progress-seconds", "progress_seconds"),
    ("--lease-ttl-seconds", "lease_ttl_seconds"),
    ("--lease-renew-seconds", "lease_renew_seconds"),
    ("--source-secret-id", "source_secret_id"),
)


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "replicate",
        help="capture change streams into BSON segments in S3",
        description="Capture change streams (DocumentDB) into gapless, checkpointed BSON "
        "segments in S3; resume after the checkpoint, drain on request.",
    )
    add_migration_options(parser)
    add_database_options(parser, "source", "DocumentDB source")
    group = parser.add_argument_group("capture")
    group.add_argument(
        "--namespace",
        action="append",
        default=[],
        metavar="DB[.COLL]",
        help="a database or collection to capture (repeatable; default: those of state/start.json)",
    )
    group.add_argument(
        "--start-at",
        metavar="SECS:INC",
        help="cluster time to start at when there is no checkpoint (default: t0 of state/start.json)",
    )
    group.add_argument(
        "--compression", choices=COMPRESSIONS, default="zstd", help="segment compression (default zstd)"
    )
    group.add_argument(
        "--max-events",
        type=int,
        default=defaults.DEFAULT_MAX_EVENTS,
        help=f"roll a segment at this many events (default {defaults.DEFAULT_MAX_EVENTS})",
    )
    group.add_argument(
        "--max-bytes",
        type=int,
        default=defaults.DEFAULT_MAX_BYTES,
        help=f"... or this many uncompressed bytes (default {defaults.DEFAULT_MAX_BYTES})",
    )
    group.add_argument(
        "--max-seconds",
        type=float,
        default=defaults.DEFAULT_MAX_SECONDS,
        help=f"... or when its oldest event is this old (default {defaults.DEFAULT_MAX_SECONDS:g})",
    )
    group.add_argument(
        "--heartbeat-seconds",
        type=float,
        default=defaults.DEFAULT_HEARTBEAT_SECONDS,
        help="re-write the checkpoint this often while idle (default %(default)g)",
    )
    group.add_argument(
        "--drain-poll-seconds",
        type=float,
        default=defaults.DEFAULT_DRAIN_POLL_SECONDS,
        help="read control/drain.json this often (default %(default)g)",
    )
    group.add_argument(
        "--await-ms",
        type=int,
        default=defaults.DEFAULT_AWAIT_MS,
        help="how long one getMore waits for events (default %(default)d)",
    )
    group.add_argument(
        "--connect-timeout",
        type=float,
        default=defaults.DEFAULT_CONNECT_TIMEOUT,
        help="seconds to find the source (default %(default)g)",
    )
    group.add_argument(
        "--give-up-seconds",
        type=float,
        default=defaults.DEFAULT_GIVE_UP_SECONDS,
        help="retry a transient source or S3 error this long before failing (default %(default)g)",
    )
    group.add_argument(
        "--progress-seconds",
        type=float,
        default=defaults.DEFAULT_PROGRESS_SECONDS,
        help="log a progress line this often (default %(default)g)",
    )
    group.add_argument(
        "--lease-ttl-seconds",
        type=float,
        default=DEFAULT_TTL_SECONDS,
        help="another replicator may take over the lease when it was not renewed for this long "
        "(default %(default)g)",
    )
    group.add_argument(
        "--lease-renew-seconds",
        type=float,
        default=DEFAULT_RENEW_SECONDS,
        help="renew the lease this often, at most half the TTL (default %(default)g)",
    )
    metrics.add_options(parser)
    background = parser.add_argument_group("background")
    background.add_argument(
        "--detach",
        action="store_true",
        help="run in the background (pid and log files); return once it is capturing",
    )
    background.add_argument(
        "--pid-file",
        type=Path,
        help="default: $BACKOVER_RUN_DIR or ~/.backover/run, replicate-<migration-id>.pid",
    )
    background.add_argument(
        "--log-file", type=Path, help="default: next to the pid file, replicate-<migration-id>.log"
    )
    parser.set_defaults(run=run)


def build_config(args: argparse.Namespace) -> ReplicateConfig:
    return ReplicateConfig(
        layout=migration_layout(args),
        source=database_uri(args, "source"),
        namespaces=tuple(args.namespace),
        start_at=clustertime.parse(args.start_at) if args.start_at else None,
        compression=args.compression,
        max_events=args.max_events,
        max_bytes=args.max_bytes,
        max_seconds=args.max_seconds,
        heartbeat_seconds=args.heartbeat_seconds,
        drain_poll_seconds=args.drain_poll_seconds,
        await_ms=args.await_ms,
        connect_timeout=args.connect_timeout,
        give_up_seconds=args.give_up_seconds,
        progress_seconds=args.progress_seconds,
        lease_ttl_seconds=args.lease_ttl_seconds,
        lease_renew_seconds=args.lease_renew_seconds,
    )


def run(args: argparse.Namespace) -> int:
    config = build_config(args)  # bad options fail here, before anything starts
    metrics.settings(args)
    if args.detach:
        return _run_detached(args, config)
    try:
        with metrics.publishing(args, config.layout):
            result = replicate(config, on_ready=detach.ready_notifier())
    finally:
        detach.forget_own_pid_file()
    print(result.summary())
    return 0


def _run_detached(args: argparse.Namespace, config: ReplicateConfig) -> int:
    return detach.run_detached(
        "replicate",
        args,
        _FORWARDED,
        layout=config.layout,
        secret_env={} if args.source_secret_id else {"BACKOVER_SOURCE_URI": config.source.value},
        what="the replicator",
        ready="capturing in the background",
        extra=(*(arg for ns in args.namespace for arg in ("--namespace", ns)), *metrics.forwarded(args)),
    )
