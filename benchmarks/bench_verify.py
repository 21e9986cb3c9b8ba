"""Verify benchmark (issue 4, figure (e)): the streaming merge against a raw scan of both sides.

Usage: ``.venv/bin/python benchmarks/bench_verify.py [--docs 200000]``. Both stand-ins run as
separate processes (``documentdb`` the source, ``mongodb`` the target) holding the same documents.
The raw scan reads both sides with the same query verify uses (``find_raw_batches`` sorted by
``_id``, batches of 1,000) and only counts documents: once one side after the other, once both at
the same time. ``compare_namespace`` then reads both sides in parallel, merges by ``_id`` and
compares every document's bytes. Prints one line per figure, with the process's peak RSS growth.
"""

from __future__ import annotations

import argparse
import resource
import threading
import time

from bson import Decimal128, Int64, ObjectId
from pymongo import MongoClient

from backover.bsonvalues import RAW
from backover.segments import iter_raw_events
from backover.verify.job import compare_namespace
from backover.verify.scan import raw_batches
from standin_process import standin_process

BATCH = 1000


def load(client: MongoClient, docs: int) -> None:
    coll = client.bench.customers
    for lo in range(0, docs, 10_000):
        coll.insert_many(
            [
                {
                    "_id": ObjectId(i.to_bytes(12, "big")),
                    "n": i,
                    "total": Int64(i * 7),
                    "price": Decimal128("19.99"),
                    "name": f"customer {i}",
                    "tags": ["a", "b", i % 7],
                    "address": {"street": f"{i} Main St", "zip": f"{i % 99999:05d}"},
                }
                for i in range(lo, min(docs, lo + 10_000))
            ],
            ordered=False,
        )


def scan(client: MongoClient, out: list[int]) -> None:
    coll = client.get_database("bench", codec_options=RAW).customers
    out.append(sum(1 for batch in raw_batches(coll, BATCH) for _ in iter_raw_events(batch)))


def max_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=200_000)
    args = parser.parse_args()
    with (
        standin_process("documentdb") as source_port,
        standin_process("mongodb") as target_port,
        MongoClient(port=source_port, directConnection=True, retryWrites=False) as source,
        MongoClient(port=target_port, directConnection=True) as target,
    ):
        load(source, args.docs)
        load(target, args.docs)
        rss_before = max_rss_mib()

        counts: list[int] = []
        started = time.perf_counter()
        scan(source, counts)
        scan(target, counts)
        sequential = time.perf_counter() - started
        assert counts == [args.docs, args.docs]

        counts = []
        threads = [threading.Thread(target=scan, args=(c, counts)) for c in (source, target)]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        parallel = time.perf_counter() - started

        started = time.perf_counter()
        report = compare_namespace(source, target, "bench", "customers", BATCH, 10)
        verify = time.perf_counter() - started
        assert report.identical and report.merge.source_count == args.docs
        grown = max_rss_mib() - rss_before
        print(
            f"(e) verify {args.docs:,} documents per side: {args.docs / verify:,.0f} docs/s vs raw scan of both "
            f"sides {args.docs / sequential:,.0f} docs/s one after the other (ratio {sequential / verify:.2f}) and "
            f"{args.docs / parallel:,.0f} docs/s both at once (ratio {parallel / verify:.2f}) (target >= 0.8); "
            f"peak RSS grew {grown:.0f} MiB during the scans and the merge"
        )


if __name__ == "__main__":
    main()
