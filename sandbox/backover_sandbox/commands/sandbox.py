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
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    config = SandboxConfig.from_env(args.dir, args.port_base)
    if args.action == "up":
        state = manager.up(config)
        print(
            f"sandbox up: moto {state.ports['moto']}, runner {state.ports['runner']}, "
            f"documentdb {state.ports['documentdb']}, mongodb {state.ports['mongodb']} "
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
