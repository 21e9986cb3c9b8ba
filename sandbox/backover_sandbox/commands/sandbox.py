"""``backover sandbox up | down | status | env``."""

from __future__ import annotations

import argparse
import json

from .. import manager
from ..config import SandboxConfig
from ..environment import exports


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("sandbox", help="start, stop and inspect the local sandbox")
    parser.add_argument("action", choices=("up", "down", "status", "env"))
    parser.add_argument("--dir", help="pid, log and state files (default .sandbox or BACKOVER_SANDBOX_DIR)")
    parser.add_argument(
        "--port-base",
        type=int,
        help="first of the loopback ports (default 31000 or BACKOVER_SANDBOX_PORT_BASE)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="up: EC2 workers in moto, each tagged backover-worker=sandbox (default 1; with more, the "
        "Variable's worker_tag names them and the initial sync spreads its partitions over them)",
    )
    parser.add_argument(
        "--empty-target",
        action="store_true",
        help="up: the MongoDB stand-in starts without the demo data (backover_start's initial sync copies it)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    config = SandboxConfig.from_env(
        args.dir, args.port_base, workers=args.workers, empty_target=args.empty_target
    )
    if args.action == "up":
        state = manager.up(config)
        workers = len(state.worker_instance_ids) or 1
        print(
            f"sandbox up: moto {state.ports['moto']}, runner {state.ports['runner']}, "
            f"documentdb {state.ports['documentdb']}, mongodb {state.ports['mongodb']}, "
            f"{workers} worker{'s' if workers > 1 else ''} "
            f'(state in {config.directory}); `eval "$(backover sandbox env)"` to use it'
        )
    elif args.action == "down":
        stopped = manager.down(config)
        print(f"sandbox down: stopped {', '.join(stopped) or 'nothing (it was not running)'}")
    elif args.action == "status":
        report = manager.status(config)
        print(json.dumps(report, indent=2))
        return 0 if all(s["answering"] for s in report.values()) else 1
    else:
        print(exports(manager.env(config)))
    return 0
