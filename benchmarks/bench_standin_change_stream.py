"""Benchmark: read N inserts through ``coll.watch(start_at_operation_time=...)`` on the stand-in.

Starts a stand-in server as its own process, inserts N small documents with ``insert_many`` and
times reading all N insert events through plain pymongo. Prints one line of figures::

    .venv/bin/python benchmarks/bench_standin_change_stream.py [N] [--flavour documentdb]
"""

from __future__ import annotations

import argparse
import time

from pymongo import MongoClient

from standin_process import standin_process

DEFAULT_N = 50_000


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", nargs="?", type=int, default=DEFAULT_N, help="documents to insert and read")
    parser.add_argument("--flavour", choices=("mongodb", "documentdb"), default="mongodb")
    return parser.parse_args()


def _read_all(client: MongoClient, n: int, start_at: object) -> float:
    """Seconds to read ``n`` events from ``start_at``."""
    coll = client.bench.items
    began = time.perf_counter()
    seen = 0
    with coll.watch(start_at_operation_time=start_at, max_await_time_ms=100) as stream:
        for event in stream:
            if event["operationType"] != "insert":
                raise RuntimeError(f"unexpected event {event['operationType']}")
            seen += 1
            if seen == n:
                break
    return time.perf_counter() - began


def main() -> None:
    args = _parse_args()
    with (
        standin_process(args.flavour) as port,
        MongoClient(f"mongodb://127.0.0.1:{port}/?directConnection=true", retryWrites=False) as client,
    ):
        if args.flavour == "documentdb":
            client.admin.command(
                {"modifyChangeStreams": 1, "database": "bench", "collection": "", "enable": True}
            )
        with client.start_session() as session:
            client.bench.marker.insert_one({"_id": "start"}, session=session)
            start_at = session.operation_time
        began = time.perf_counter()
        client.bench.items.insert_many(
            [{"_id": i, "name": f"item-{i}", "qty": i % 100} for i in range(args.n)]
        )
        insert_s = time.perf_counter() - began
        read_s = _read_all(client, args.n, start_at)
        print(
            f"flavour={args.flavour} n={args.n} insert_many={insert_s:.2f}s ({args.n / insert_s:,.0f} docs/s) "
            f"watch_read={read_s:.2f}s ({args.n / read_s:,.0f} events/s; target 20,000/s)"
        )


if __name__ == "__main__":
    main()
