"""Run every benchmark in this folder (``make bench``), one after the other, and print their lines.

Each ``bench_*.py`` is a standalone script that prints its own figures (every one runs: helper
modules are named otherwise, e.g. ``replicate_servers.py``, ``soak_lifecycle.py``); run one alone
with ``.venv/bin/python benchmarks/bench_<name>.py --help``. ``--list`` prints what would run.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def benchmarks() -> list[Path]:
    """Every benchmark script, in name order."""
    return sorted(HERE.glob("bench_*.py"))


def main(argv: list[str] | None = None) -> int:
    if (argv if argv is not None else sys.argv[1:]) == ["--list"]:
        print("\n".join(script.name for script in benchmarks()))
        return 0
    failed = []
    for script in benchmarks():
        print(f"== {script.name}", flush=True)
        result = subprocess.run([sys.executable, str(script)], cwd=HERE.parent, check=False)
        if result.returncode != 0:
            failed.append(script.name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
