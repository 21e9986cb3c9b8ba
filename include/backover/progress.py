"""How far a long command is, said one way: done of the total, percent, rate, time left.

The restore's, the copy's and verify's progress lines (``backover.{restore,sync,verify}.progress``)
use :func:`amount`, so every task log reads the same shape: ``5,000/10,000 events (50.0%), 1,000
events/s, ETA 5s``. Where the total is not known it says only what is: ``5,000 events, 1,000
events/s`` (no percent, no ETA).
"""

from __future__ import annotations


def eta(seconds: float | None) -> str:
    """``45s``, ``4m05s``, ``3h02m``; ``unknown`` for None (nothing done yet, so no rate)."""
    if seconds is None:
        return "unknown"
    whole = int(seconds + 0.5)
    if whole >= 3600:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    if whole >= 60:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole}s"


def amount(done: int, total: int, rate: float, unit: str, *, final: bool = False) -> str:
    """``done/total unit (percent), rate unit/s, ETA time left`` at ``rate``; ``total <= 0`` (not
    known): ``done unit, rate unit/s``. ``final``: the work is over (ETA 0s even if an estimated
    total was not reached)."""
    speed = f"{rate:,.0f} {unit}/s"
    if total <= 0:
        return f"{done:,} {unit}, {speed}"
    left = max(total - done, 0)
    seconds = 0.0 if final or left == 0 else (left / rate if rate > 0 else None)
    return f"{done:,}/{total:,} {unit} ({100.0 * done / total:.1f}%), {speed}, ETA {eta(seconds)}"
