"""Bulk replace-upserts by ``_id`` per second into the stand-in, through plain pymongo over TCP.

Usage: ``.venv/bin/python benchmarks/bench_standin_upserts.py [--docs N] [--flavour mongodb]``.
Starts the stand-in as its own process (as the sandbox does), writes N documents with
``ReplaceOne(upsert=True)`` in batches of 1,000 twice (first pass inserts, second pass replaces),
as the restore service does, and prints the rates of both passes.
"""

from __future__ import annotations

import argparse
import time

from bson import Decimal128, Int64
from pymongo import MongoClient, ReplaceOne

from standin_process import standin_process


def document(i: int, generation: int) -> dict:
    return {
        "_id": i,
        "gen": generation,
        "total": Int64(i * 7),
        "price": Decimal128("19.99"),
        "name": f"item {i}",
        "tags": ["a", "b"],
        "nested": {"x": i, "y": 1.5},
    }


def run(n: int, flavour: str, batch: int = 1000) -> list[float]:
    rates = []
    with (
        standin_process(flavour) as port,
        MongoClient(f"mongodb://127.0.0.1:{port}/?directConnection=true", retryWrites=False) as client,
    ):
        coll = client.bench.items
        for generation in (1, 2):
            started = time.perf_counter()
            for lo in range(0, n, batch):
                coll.bulk_write(
                    [
                        ReplaceOne({"_id": i}, document(i, generation), upsert=True)
                        for i in range(lo, min(n, lo + batch))
                    ],
                    ordered=False,
                )
            rates.append(n / (time.perf_counter() - started))
        assert coll.count_documents({"gen": 2}) == n
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=50_000)
    parser.add_argument("--flavour", default="mongodb")
    args = parser.parse_args()
    insert_rate, replace_rate = run(args.docs, args.flavour)
    print(
        f"standin {args.flavour}: {args.docs} replace-upserts by _id: "
        f"{insert_rate:,.0f}/s inserting, {replace_rate:,.0f}/s replacing (target 20,000/s)"
    )


if __name__ == "__main__":
    main()
