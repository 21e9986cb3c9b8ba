"""Run a stand-in server as a process: ``python -m backover_sandbox.standin --flavour documentdb``.

The root password is read from the environment variable named by ``--root-password-env``
(default ``BACKOVER_STANDIN_ROOT_PASSWORD``), never from the command line, so it does not show up
in ``ps`` output or logs.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import signal
import sys
import threading

from .server import FLAVOURS, ServerConfig, StandinServer


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m backover_sandbox.standin", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--flavour", choices=FLAVOURS, default="mongodb")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=27017)
    parser.add_argument("--root-user", default="root")
    parser.add_argument(
        "--root-password-env",
        default="BACKOVER_STANDIN_ROOT_PASSWORD",
        help="environment variable holding the root user's password",
    )
    parser.add_argument("--no-auth", action="store_true", help="accept every command without authentication")
    parser.add_argument(
        "--retention-seconds",
        type=float,
        default=3 * 3600,
        help="change-log retention window (default: 3 hours, as DocumentDB)",
    )
    parser.add_argument("--log-level", default="INFO")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    password = os.environ.get(args.root_password_env)
    if not args.no_auth and not password:
        print(f"backover_sandbox.standin: set {args.root_password_env} or pass --no-auth", file=sys.stderr)
        return 2
    config = ServerConfig(
        flavour=args.flavour,
        host=args.host,
        port=args.port,
        auth=not args.no_auth,
        root_user=None if args.no_auth else args.root_user,
        root_password=None if args.no_auth else password,
        retention_seconds=args.retention_seconds,
    )
    # Stored documents are bytes (no reference cycles); collect less often, as a server can afford.
    gc.set_threshold(100_000, 50, 100)
    server = StandinServer(config)
    try:
        server.bind()
    except OSError as e:
        print(
            f"backover_sandbox.standin: cannot listen on {args.host}:{args.port}: {e.strerror}",
            file=sys.stderr,
        )
        return 2

    def shutdown(signum: int, frame: object) -> None:
        threading.Thread(target=server.stop, daemon=True).start()

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
