"""Run one task per collection on a few threads; the first failure stops the ones not started."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import TypeVar

T = TypeVar("T")


def run_parallel(tasks: Sequence[Callable[[], T]], parallel: int) -> list[T]:
    """The tasks' results in order; re-raises the first failure once running tasks have ended."""
    with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="backover") as pool:
        futures = [pool.submit(task) for task in tasks]
        _, pending = wait(futures, return_when=FIRST_EXCEPTION)
        for future in pending:
            future.cancel()
    for future in futures:
        error = None if future.cancelled() else future.exception()
        if error is not None:
            raise error
    return [future.result() for future in futures]
