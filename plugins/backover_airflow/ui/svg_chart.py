"""Inline SVG charts (no script: the UI shows plugin pages in a sandboxed iframe).

:func:`lag_chart` draws seconds-behind over wall-clock time, one line per series, a dot per
point with a tooltip (``<title>``); :func:`bar_chart` draws durations as horizontal bars. Every
text is escaped; the markup carries ``data-*`` attributes (series name, point count) for tests and
for people reading the source.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html import escape

#: Series colours (stroke), by series name; others fall back to the first.
COLOURS = {"capture": "#1f77b4", "restore": "#d62728"}
FALLBACK_COLOUR = "#555555"


@dataclass(frozen=True)
class Series:
    """``name`` (``capture``/``restore``), ``label`` for the legend, ``points`` (time, seconds)."""

    name: str
    label: str
    points: Sequence[tuple[datetime, float]]


def _one_decimal(value: float) -> str:
    return f"{value:.1f}".removesuffix(".0")


def duration(seconds: float | None) -> str:
    """``0 s``, ``42 s``, ``3.5 min``, ``2 h``, ``1.5 d``: a lag or a phase for people."""
    if seconds is None:
        return "n/a"
    if seconds < 120:
        return f"{seconds:.0f} s" if seconds >= 10 or seconds == 0 else f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{_one_decimal(seconds / 60)} min"
    if seconds < 172_800:
        return f"{_one_decimal(seconds / 3600)} h"
    return f"{_one_decimal(seconds / 86_400)} d"


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


#: Steps of the lag axis, in seconds: whole seconds, minutes, hours, days.
_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)


def _axis_step(largest: float) -> float:
    """The step of four ticks that reach ``largest``: a round duration (1 s .. 1 d, then days)."""
    for step in _STEPS:
        if 4 * step >= largest:
            return float(step)
    return 86400.0 * math.ceil(largest / 4 / 86400)


def _time_label(moment: datetime, span: timedelta) -> str:
    moment = _aware(moment).astimezone(UTC)
    if span >= timedelta(days=2):
        return moment.strftime("%m-%d %H:%M")
    if span >= timedelta(minutes=10):
        return moment.strftime("%H:%M")
    return moment.strftime("%H:%M:%S")


def lag_chart(series: Sequence[Series], *, title: str, width: int = 720, height: int = 260) -> str:
    """Seconds behind over time (UTC), or a short note in the frame when no series has a point."""
    points = [(_aware(t), max(0.0, s)) for one in series for t, s in one.points]
    left, right, top, bottom = 76, 16, 28, 44
    plot_w, plot_h = width - left - right, height - top - bottom
    counts = " ".join(f'data-{escape(one.name)}-points="{len(one.points)}"' for one in series)
    head = (
        f'<svg class="lag-chart" role="img" aria-label="{escape(title)}" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg" {counts}>'
        f"<title>{escape(title)}</title>"
        f'<text x="{left}" y="18" class="chart-title">{escape(title)}</text>'
    )
    if not points:
        return (
            head + f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" class="plot"/>'
            f'<text x="{left + plot_w / 2}" y="{top + plot_h / 2}" text-anchor="middle" class="note">'
            "no lag measured yet</text></svg>"
        )
    first, last = min(t for t, _ in points), max(t for t, _ in points)
    if last - first < timedelta(seconds=60):  # a single moment: a minute around it
        middle = first + (last - first) / 2
        first, last = middle - timedelta(seconds=30), middle + timedelta(seconds=30)
    span = last - first
    y_max = 4 * _axis_step(max(s for _, s in points) * 1.05)

    def x(moment: datetime) -> float:
        return left + plot_w * ((moment - first) / span)

    def y(seconds: float) -> float:
        return top + plot_h * (1 - seconds / y_max)

    parts = [head, f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" class="plot"/>']
    for i in range(5):
        value = y_max * i / 4
        parts.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{y(value):.1f}" y2="{y(value):.1f}" class="grid"/>'
            f'<text x="{left - 6}" y="{y(value) + 4:.1f}" text-anchor="end" class="tick">{duration(value)}</text>'
        )
    for i in range(5):
        moment = first + span * (i / 4)
        anchor = {0: "start", 4: "end"}.get(i, "middle")
        parts.append(
            f'<text x="{x(moment):.1f}" y="{top + plot_h + 16}" text-anchor="{anchor}" class="tick">'
            f"{escape(_time_label(moment, span))}</text>"
        )
    parts.append(
        f'<text x="{left + plot_w}" y="{height - 6}" text-anchor="end" class="tick">time (UTC)</text>'
        f'<text x="12" y="{top + plot_h / 2}" transform="rotate(-90 12 {top + plot_h / 2})" '
        'text-anchor="middle" class="tick">seconds behind</text>'
    )
    legend_x = left + 8
    for one in series:
        colour = COLOURS.get(one.name, FALLBACK_COLOUR)
        ordered = sorted((_aware(t), max(0.0, s)) for t, s in one.points)
        parts.append(f'<g class="series" data-series="{escape(one.name)}" data-points="{len(ordered)}">')
        if len(ordered) > 1:
            line = " ".join(f"{x(t):.1f},{y(s):.1f}" for t, s in ordered)
            parts.append(f'<polyline points="{line}" fill="none" stroke="{colour}" stroke-width="1.5"/>')
        for t, s in ordered:
            when = t.astimezone(UTC).isoformat(timespec="seconds")
            parts.append(
                f'<circle cx="{x(t):.1f}" cy="{y(s):.1f}" r="3" fill="{colour}">'
                f"<title>{escape(one.label)}: {duration(s)} at {when}</title></circle>"
            )
        parts.append("</g>")
        parts.append(
            f'<rect x="{legend_x}" y="{top + 6}" width="10" height="10" fill="{colour}"/>'
            f'<text x="{legend_x + 14}" y="{top + 15}" class="legend">{escape(one.label)} '
            f"({len(ordered)} point{'s' if len(ordered) != 1 else ''})</text>"
        )
        legend_x += 14 + 7 * len(one.label) + 90
    parts.append("</svg>")
    return "".join(parts)


def bar_chart(rows: Sequence[tuple[str, float | None]], *, title: str, width: int = 720) -> str:
    """Durations as horizontal bars, one row each (a row without a duration says "n/a")."""
    row_h, left, right, top = 22, 190, 80, 28
    height = top + row_h * max(1, len(rows)) + 8
    longest = max((s for _, s in rows if s is not None), default=0.0) or 1.0
    plot_w = width - left - right
    parts = [
        f'<svg class="bar-chart" role="img" aria-label="{escape(title)}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg" data-rows="{len(rows)}">'
        f"<title>{escape(title)}</title>"
        f'<text x="8" y="18" class="chart-title">{escape(title)}</text>'
    ]
    for i, (label, seconds) in enumerate(rows):
        y = top + i * row_h
        bar = 0.0 if seconds is None else max(1.0, plot_w * seconds / longest)
        parts.append(
            f'<text x="{left - 8}" y="{y + 15}" text-anchor="end" class="tick">{escape(label)}</text>'
            f'<rect x="{left}" y="{y + 3}" width="{bar:.1f}" height="{row_h - 6}" class="bar"/>'
            f'<text x="{left + bar + 6:.1f}" y="{y + 15}" class="tick">{duration(seconds)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
