"""``backover rehearsal``: the main job, a lifecycle rehearsal on a fresh local sandbox."""

from __future__ import annotations

import argparse

from .. import rehearsal
from ..config import SandboxConfig


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("rehearsal", help="rehearse the lifecycle on a fresh local sandbox")
    parser.add_argument("--dir", help=f"its own sandbox directory (default {rehearsal.DEFAULT_DIR})")
    parser.add_argument(
        "--port-base",
        type=int,
        help=f"first of its sandbox's loopback ports (default {rehearsal.DEFAULT_PORT_BASE}, "
        "apart from `sandbox up`'s)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    config = SandboxConfig.from_env(
        args.dir or rehearsal.DEFAULT_DIR, args.port_base or rehearsal.DEFAULT_PORT_BASE
    )
    report = rehearsal.run(config)
    print(rehearsal.summary(report))
    return 0 if report.ok else 1
