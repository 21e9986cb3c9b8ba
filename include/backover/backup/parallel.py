"""Run one task per collection on a few threads; the first failure stops the ones not started."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import TypeVar

T = TypeVar("T")


def run_parallel(tasks: list[Callable[[], T]], parallel: int) -> list[T]:
    """The tasks' results in order; re-raises the first failure once running tasks have ended."""
    with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="backover") as pool:
        futures = [pool.submit(task) for task in tasks]
        _, pending = wait(futures, return_when=FIRST_EXCEPTION)
        for future in pending:
            future.cancel()
    for future in futures:
        if not future.cancelled() and future.exception() is not None:
            raise future.exception()  # type: ignore[misc]
    return [future.result() for future in futures]
