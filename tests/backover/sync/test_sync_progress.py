"""Progress lines: per collection, documents copied of the estimate, documents/s, MiB/s, ETA."""

from __future__ import annotations

import logging

from backover.sync.progress import MIB, Progress


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_line_says_how_far_how_fast_and_how_long_is_left(caplog) -> None:
    clock = Clock()
    progress = Progress(10.0, clock)
    progress.expect("shop.orders", 60)
    progress.expect("shop.orders", 40)  # two partitions of the collection in this run
    progress.already("shop.orders", 20)  # copied by an earlier run: not in the rate
    progress.start("shop.orders")
    with caplog.at_level(logging.INFO, logger="backover.sync"):
        clock.now += 5
        progress.copied("shop.orders", 10, MIB)  # under 10 s since the start: no line yet
        clock.now += 5
        progress.copied("shop.orders", 20, 2 * MIB)
    assert [r.getMessage() for r in caplog.records] == [
        "sync shop.orders: 50/100 documents (50.0%), 3 documents/s, ETA 17s, 0.30 MiB/s"
    ]
    assert progress.line("shop.orders", final=True).endswith("ETA 0s, 0.30 MiB/s")
    idle = Progress(10.0, clock)
    idle.expect("a.b", 5)
    idle.start("a.b")
    assert idle.line("a.b").endswith("0 documents/s, ETA unknown, 0.00 MiB/s")


def test_a_copy_logs_progress_lines_per_collection(world, caplog) -> None:
    world.source[world.db].c.insert_many([{"_id": i} for i in range(30)])
    world.start()
    with caplog.at_level(logging.INFO, logger="backover.sync"):
        world.sync(batch_size=10, partition_documents=15, progress_seconds=1e-9)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith(f"sync {world.db}.c: ")]
    assert f"sync {world.db}.c: 10/30 documents (33.3%)" in lines[0]
    assert lines[-1].startswith(f"sync {world.db}.c: 30/30 documents (100.0%)") and "ETA 0s" in lines[-1]
