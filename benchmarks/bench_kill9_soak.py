"""Kill -9 soak of a whole migration: replicator, backups, restore and clean killed at random
moments (two processes at once now and then) under a load with unique-key swaps and DDL, then an
independent byte comparison: 0 lost, 0 divergent, 0 stuck (see ``soak_lifecycle.py``)::

    .venv/bin/python benchmarks/bench_kill9_soak.py [--kills 1000] [--seed 1]

moto and both stand-ins run as their own processes; every command is ``python -m backover ...``.
Exit status 0 only when nothing was lost, divergent or stuck.
"""

from __future__ import annotations

import argparse
import os
import sys

from replicate_servers import MotoProcess, source_uri
from soak_lifecycle import Servers, run
from standin_process import standin_process


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=1000, help="kill -9s in all (default 1000)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--load-pause",
        type=float,
        default=0.01,
        help="seconds between the load's steps (default 0.01: the capture phase of 1,000 kills "
        "then holds some 25,000 events)",
    )
    args = parser.parse_args()
    load = os.getloadavg()
    print(
        f"load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} ({os.cpu_count()} cores)",
        flush=True,
    )
    with MotoProcess() as moto, standin_process("documentdb") as source, standin_process("mongodb") as target:
        os.environ.update(moto.environment())
        servers = Servers(
            env=dict(os.environ),
            bucket=moto.bucket("backover-soak"),
            source_uri=source_uri(source),
            target_uri=f"mongodb://127.0.0.1:{target}/?directConnection=true",
        )
        result = run(
            servers,
            kills=args.kills,
            seed=args.seed,
            say=lambda line: print(line, flush=True),
            load_pause=args.load_pause,
        )
    load = os.getloadavg()
    print(f"load average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", flush=True)
    return 0 if result.lost == result.divergent == 0 and not result.stuck and not result.problems else 1


if __name__ == "__main__":
    sys.exit(main())
