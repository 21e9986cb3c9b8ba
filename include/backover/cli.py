"""``backover`` command line: one sub-command per job; each builds its config and calls a function.

Exit status: 0 done, 1 the job failed, 2 bad usage or configuration (one-line reason on stderr).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from .sandbox import manager
from .sandbox.config import SandboxConfig
from .sandbox.environment import exports

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _sandbox_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("sandbox", help="start, stop and inspect the local sandbox")
    parser.add_argument("action", choices=("up", "down", "status", "env"))
    parser.add_argument("--dir", help="pid, log and state files (default .sandbox or BACKOVER_SANDBOX_DIR)")
    parser.add_argument("--port-base", type=int,
                        help="first of the loopback ports (default 47000 or BACKOVER_SANDBOX_PORT_BASE)")
    parser.set_defaults(run=run_sandbox)


def run_sandbox(args: argparse.Namespace) -> int:
    config = SandboxConfig.from_env(args.dir, args.port_base)
    if args.action == "up":
        state = manager.up(config)
        print(f"sandbox up: moto {state.ports['moto']}, runner {state.ports['runner']}, "
              f"documentdb {state.ports['documentdb']}, mongodb {state.ports['mongodb']} "
              f"(state in {config.directory}); `eval \"$(backover sandbox env)\"` to use it")
    elif args.action == "down":
        stopped = manager.down(config)
        print(f"sandbox down: stopped {', '.join(stopped) or 'nothing (it was not running)'}")
    elif args.action == "status":
        report = manager.status(config)
        print(json.dumps(report, indent=2))
        return EXIT_OK if all(s["answering"] for s in report.values()) else EXIT_FAILED
    else:
        print(exports(manager.env(config)))
    return EXIT_OK


def _rehearsal_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("rehearsal", help="rehearse the lifecycle on a fresh local sandbox")
    parser.add_argument("--dir", help="its own sandbox directory (default .sandbox/rehearsal)")
    parser.add_argument("--port-base", type=int,
                        help="first of its sandbox's loopback ports (default 47200, apart from `sandbox up`'s)")
    parser.set_defaults(run=run_rehearsal)


def run_rehearsal(args: argparse.Namespace) -> int:
    from . import rehearsal

    config = SandboxConfig.from_env(args.dir or rehearsal.DEFAULT_DIR, args.port_base or rehearsal.DEFAULT_PORT_BASE)
    report = rehearsal.run(config)
    print(rehearsal.summary(report))
    return EXIT_OK if report.ok else EXIT_FAILED


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="backover", description=__doc__.splitlines()[0])
    parser.add_argument("--log-level", default="INFO")
    sub = parser.add_subparsers(dest="command", required=True)
    _sandbox_parser(sub)
    _rehearsal_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    for noisy in ("botocore", "boto3", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        return args.run(args)
    except manager.SandboxError as e:
        print(f"backover: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
