"""``backover`` command line: one sub-command per job, found in ``backover.commands``.

Development commands (``sandbox``, ``rehearsal``, ``airflow``) come from the ``backover-sandbox``
distribution through the ``backover.commands`` entry-point group, so the worker, which installs
only ``backover``, does not list them.

Exit status: 0 done, 1 the job failed, 2 bad usage or configuration (one-line reason on stderr).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import logging
import pkgutil
import sys

from . import commands
from .errors import BackoverError

EXIT_FAILED = 1
#: What ``backover --help`` says (plain text: the module docstring is reStructuredText).
DESCRIPTION = (
    "Back Over: move a live application back from Amazon DocumentDB to MongoDB without losing a write."
)
#: Entry-point group of sub-commands from other distributions (the sandbox's development commands).
COMMAND_GROUP = "backover.commands"


def command_modules() -> dict[str, str]:
    """``{name: module}`` of every sub-command: the worker's own, then those installed alongside."""
    found = {m.name: f"{commands.__name__}.{m.name}" for m in pkgutil.iter_modules(commands.__path__)}
    for entry in importlib.metadata.entry_points(group=COMMAND_GROUP):
        found.setdefault(entry.name, entry.value)
    return dict(sorted(found.items()))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="backover",
        description=DESCRIPTION,
        epilog="Exit status: 0 done, 1 the job failed, 2 bad usage or configuration. "
        "`backover COMMAND --help` describes each command.",
    )
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO (default), WARNING")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in command_modules().values():
        importlib.import_module(module).register(sub)
    return parser


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    for noisy in ("botocore", "boto3", "urllib3", "s3transfer"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.log_level)
    try:
        return args.run(args)
    except BackoverError as e:
        print(f"backover {args.command}: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
