"""Run every benchmark in this folder (``make bench``), one after the other, and print their lines.

Each ``bench_*.py`` is a standalone script that prints its own figures; run one alone with
``.venv/bin/python benchmarks/bench_<name>.py --help``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    failed = []
    for script in sorted(HERE.glob("bench_*.py")):
        if script.stem.count("_") > 1 and script.stem.rsplit("_", 1)[0] + ".py" in {p.name for p in HERE.glob("bench_*.py")}:
            continue  # a helper module of another benchmark
        print(f"== {script.name}", flush=True)
        result = subprocess.run([sys.executable, str(script)], cwd=HERE.parent, check=False)  # noqa: S603
        if result.returncode != 0:
            failed.append(script.name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
