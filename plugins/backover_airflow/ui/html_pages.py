"""The plugin's pages as plain HTML with inline SVG: every value escaped, every link relative.

No script and no external asset: the Airflow UI shows plugin pages in an iframe sandboxed to
``allow-forms``, and a page must read the same opened on its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from typing import Any

from backover import clustertime
from backover.layout import MigrationLayout
from backover_airflow.report import summary_lines
from backover_airflow.ui import links
from backover_airflow.ui.lag_history import LagHistory
from backover_airflow.ui.overview import Health, MigrationOverview
from backover_airflow.ui.svg_chart import Series, bar_chart, duration, lag_chart

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 16px 20px; color: #1a1a1a;
       font-size: 14px; }
h1 { font-size: 20px; margin: 0 0 4px; } h2 { font-size: 16px; margin: 24px 0 8px; }
.sub { color: #555; margin: 0 0 12px; }
table { border-collapse: collapse; margin: 4px 0 12px; }
th, td { border-bottom: 1px solid #ddd; padding: 6px 10px; text-align: left; vertical-align: top; }
th { background: #f4f4f6; font-weight: 600; }
td.num { text-align: right; white-space: nowrap; }
.phase { display: inline-block; padding: 1px 8px; border-radius: 10px; font-weight: 600; white-space: nowrap; }
.phase.good { background: #dff5e1; color: #17602a; } .phase.waiting { background: #fff3c4; color: #6b5200; }
.phase.bad { background: #fde2e1; color: #8f1d1a; }
.detail { color: #555; font-size: 12px; max-width: 420px; }
.verdict-true { color: #17602a; font-weight: 600; } .verdict-false { color: #8f1d1a; font-weight: 600; }
.note { color: #666; font-size: 12px; } code { background: #f4f4f6; padding: 1px 4px; border-radius: 3px; }
.error { color: #8f1d1a; font-weight: 600; }
.charts { display: flex; flex-wrap: wrap; gap: 16px; }
svg .plot { fill: #fbfbfc; stroke: #ccc; } svg .grid { stroke: #e6e6e6; }
svg .tick { font-size: 11px; fill: #444; } svg .legend { font-size: 12px; fill: #222; }
svg .chart-title { font-size: 13px; font-weight: 600; fill: #222; } svg .note { font-size: 12px; fill: #777; }
svg .bar { fill: #4c78a8; }
"""


def _t(moment: datetime | None) -> str:
    if moment is None:
        return "n/a"
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _n(value: int | float | None, unit: str = "") -> str:
    if value is None:
        return "n/a"
    return (f"{value:,.1f}" if isinstance(value, float) else f"{value:,}") + unit


def _e(value: Any) -> str:
    return escape(str(value))


def page(title: str, body: str) -> str:
    """A whole document."""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title><style>{STYLE}</style></head><body>{body}</body></html>"
    )


def error_page(line: str, environment: str | None = None) -> str:
    """A refusal or a failure: its one line."""
    where = f' <span class="note">(environment <code>{_e(environment)}</code>)</span>' if environment else ""
    return page("Back Over: error", f'<h1>Back Over</h1><p class="error">{_e(line)}</p>{where}')


@dataclass(frozen=True)
class Environment:
    """What the page says of the environment it shows (never a secret: the Variable holds ids)."""

    variable: str
    bucket: str
    prefix: str


def _environment_line(env: Environment) -> str:
    return (
        f'<p class="sub">Environment <code>{_e(env.variable)}</code> (Airflow Variable): bucket '
        f"<code>{_e(env.bucket)}</code>, prefix <code>{_e(env.prefix or '(the bucket top)')}</code></p>"
    )


def _phase(o: MigrationOverview) -> str:
    return f'<span class="phase {o.health}" data-health="{o.health}">{_e(o.phase)}</span>'


def _verdict(o: MigrationOverview) -> str:
    identical = o.verdict.identical
    css = "" if identical is None else ("verdict-true" if identical else "verdict-false")
    return f'<span class="verdict {css}">{_e(o.verdict.line)}</span>'


def _restore_lag(o: MigrationOverview) -> str:
    if o.restore_lag is None:
        return "n/a" if o.restore_state is None else _e(o.restore_state)
    lag = o.restore_lag
    return f"{duration(lag.seconds)}<br><span class='note'>{lag.segments:,} segments, {lag.events:,} events</span>"


def freeze_line(o: MigrationOverview) -> tuple[str, str]:
    """The write freeze's total and its phases; a phase without its end is "running" while the
    freeze lasts, and left out once it is over (clean-up deleted the checkpoints that timed it)."""
    window = o.freeze
    if window.frozen_at is None:
        return "not frozen", ""
    over = window.seconds is not None
    phases = ", ".join(
        f"{name} {duration(s) if s is not None else 'running'}"
        for name, s in window.phases.items()
        if s is not None or not over
    )
    return (duration(window.seconds) if over else "running"), phases


def _freeze(o: MigrationOverview) -> str:
    total, phases = freeze_line(o)
    return f"{_e(total)}<br><span class='note'>{_e(phases)}</span>" if phases else _e(total)


def series(history: LagHistory) -> list[Series]:
    """The chart's two series of a lag history."""
    return [
        Series("capture", "capture lag", [(p.at, p.seconds) for p in history.capture]),
        Series("restore", "restore lag", [(p.at, p.seconds) for p in history.restore]),
    ]


def history_note(history: LagHistory, recorded: bool) -> str:
    """Where the chart's points come from, honestly."""
    parts = [
        f"Capture lag: {len(history.capture)} points, each the age of a change segment's newest event when the "
        "segment landed in S3 (sampled evenly over the segments), and a running replicator's heartbeat.",
        f"Restore lag: {len(history.restore)} point{'s' if len(history.restore) != 1 else ''}; the restore "
        "checkpoint keeps only its latest position, so earlier points exist only where a recording kept them.",
    ]
    if recorded:
        parts.append(
            f"Includes the recorded history (reports/lag.json, last recorded {_t(history.recorded_at)}), "
            "which keeps the points after clean-up deletes the segments."
        )
    return '<p class="note">' + " ".join(_e(p) for p in parts) + "</p>"


def migrations_page(
    env: Environment,
    rows: Sequence[tuple[MigrationOverview, LagHistory]],
    *,
    total: int,
) -> str:
    """Every migration of the environment, one row each, and their lag charts."""
    here = links.MIGRATIONS
    head = f"<h1>Migrations</h1>{_environment_line(env)}"
    if not rows:
        body = head + '<p class="note">No migration folder under this prefix yet: trigger backover_start.</p>'
        return page("Back Over: migrations", body)
    shown = (
        "" if total == len(rows) else f'<p class="note">Showing {len(rows)} of {total} migration folders.</p>'
    )
    cells = []
    for o, _ in rows:
        mid = o.migration_id
        detail = links.link(here, links.MIGRATION, env.variable, migration_id=mid)
        files = [
            f'<a href="{_e(links.link(here, links.FILE, env.variable, migration_id=mid, name=name))}">{_e(name)}</a>'
            for name in links.FILES
            if name in o.files and name != "rehearsal"
        ]
        if "rehearsal" in o.files:
            report = links.link(here, links.REHEARSAL, env.variable, migration_id=mid)
            files.append(f'<a href="{_e(report)}">rehearsal report</a>')
        events = (
            "n/a"
            if o.events is None
            else f"{o.events:,}<br><span class='note'>{o.segments:,} segments</span>"
        )
        cells.append(
            f'<tr class="migration" data-migration-id="{_e(mid)}" data-phase="{_e(o.phase)}">'
            f'<td><a class="migration-id" href="{_e(detail)}">{_e(mid)}</a><br>'
            f'<span class="note">{_t(o.started_at)}</span></td>'
            f'<td>{_phase(o)}<div class="detail">{_e(o.detail)}</div></td>'
            f'<td class="num">{duration(o.capture_lag_seconds)}</td>'
            f'<td class="num">{_n(o.events_per_second)}</td>'
            f'<td class="num">{events}</td>'
            f'<td class="num">{_restore_lag(o)}</td>'
            f"<td>{_freeze(o)}</td>"
            f"<td>{_verdict(o)}</td>"
            f"<td><code>{_e(o.location)}</code><br>{' · '.join(files) or '<span class=note>none yet</span>'}</td>"
            "</tr>"
        )
    table = (
        '<table class="migrations"><thead><tr><th>Migration</th><th>Phase</th><th>Capture lag</th>'
        "<th>Events/s</th><th>Events</th><th>Restore lag</th><th>Write freeze</th><th>Verification</th>"
        f"<th>Files</th></tr></thead><tbody>{''.join(cells)}</tbody></table>"
    )
    charts = "".join(
        f'<div class="chart" data-migration-id="{_e(o.migration_id)}">'
        + lag_chart(series(h), title=f"{o.migration_id}: lag over time", width=540, height=220)
        + "</div>"
        for o, h in rows
    )
    note = (
        '<p class="note">Capture lag: how old the newest captured change was when last saved (the '
        "replicator's heartbeat, or a change segment's write). Restore lag: how far the restore trails "
        "the capture. Events/s: averaged from the start to the freeze (or the last heartbeat). Charts: a "
        "sample of each migration's segments; a migration's own page shows more.</p>"
    )
    body = (
        head
        + shown
        + table
        + note
        + f'<h2>Capture and restore lag over time</h2><div class="charts">{charts}</div>'
    )
    return page("Back Over: migrations", body)


def _facts(rows: Sequence[tuple[str, str]]) -> str:
    return (
        '<table class="facts">'
        + "".join(f"<tr><th>{_e(k)}</th><td>{v}</td></tr>" for k, v in rows)
        + "</table>"
    )


def migration_page(
    env: Environment,
    o: MigrationOverview,
    history: LagHistory,
    *,
    recorded: bool,
    layout: MigrationLayout,
    console_url: str | None,
    sync: Mapping[str, Any] | None,
    namespaces: Sequence[tuple[str, str]],
) -> str:
    """One migration: what it is doing, its numbers, its lag chart, where its files are."""
    here = links.MIGRATION
    mid = o.migration_id
    back = links.link(here, links.MIGRATIONS, env.variable)
    t0 = clustertime.format(o.t0) if o.t0 is not None else "not recorded yet"
    capture = _facts(
        [
            ("Replicator", _e(o.replicator_state or "no checkpoint yet")),
            ("Capture lag", duration(o.capture_lag_seconds)),
            (
                "Heartbeat",
                "n/a" if o.heartbeat_age_seconds is None else f"{duration(o.heartbeat_age_seconds)} ago",
            ),
            ("Events captured", _n(o.events)),
            ("Segments", _n(o.segments)),
            ("Bytes captured", _n(o.bytes_captured)),
            ("Events/s (average)", _n(o.events_per_second)),
        ]
    )
    restore = _facts(
        [
            (
                "Restore",
                _e(o.restore_state or "not started") + (" (follow mode)" if o.restore_follow else ""),
            ),
            ("Restore lag", _restore_lag(o)),
            ("Events applied", _n(o.events_applied)),
        ]
    )
    sync_rows = (
        []
        if sync is None
        else [
            (
                "Initial sync",
                _e(
                    f"{'complete' if sync.get('complete') else 'copying'}: {sync.get('partitions_completed')}/"
                    f"{sync.get('partitions')} partitions, {sync.get('documents_copied'):,} of "
                    f"{sync.get('documents_planned'):,} documents"
                ),
            )
        ]
    )
    freeze = _facts(
        [
            ("Started", _t(o.started_at)),
            ("T0", _e(t0)),
            ("Namespaces", _e(", ".join(o.namespaces) or "n/a")),
            *sync_rows,
            ("Write freeze", _freeze(o)),
            ("Verification", _verdict(o)),
        ]
    )
    ns_table = ""
    if namespaces:
        ns_table = (
            '<table class="namespaces"><thead><tr><th>Namespace</th><th>Compared</th></tr></thead><tbody>'
            + "".join(f"<tr><td>{_e(ns)}</td><td>{_e(line)}</td></tr>" for ns, line in namespaces)
            + "</tbody></table>"
        )
    file_links = []
    for name in links.FILES:
        if name not in o.files:
            continue
        key = getattr(layout, links.FILES[name])
        href = links.link(here, links.FILE, env.variable, migration_id=mid, name=name)
        file_links.append(f'<li><a href="{_e(href)}">{_e(key[len(layout.root) :])}</a></li>')
    if "rehearsal" in o.files:
        report = links.link(here, links.REHEARSAL, env.variable, migration_id=mid)
        file_links.append(f'<li><a href="{_e(report)}">rehearsal report (page)</a></li>')
    console = (
        f' · <a href="{_e(console_url)}">S3 console</a>'
        if console_url
        else ' <span class="note">(an S3 console link is shown for AWS endpoints only)</span>'
    )
    body = (
        f'<p><a href="{_e(back)}">All migrations</a></p>'
        f'<h1 data-migration-id="{_e(mid)}">Migration {_e(mid)}</h1>{_environment_line(env)}'
        f'<p>{_phase(o)} <span class="detail">{_e(o.detail)}</span></p>'
        '<div class="charts">'
        f"<div><h2>Lifecycle</h2>{freeze}</div><div><h2>Capture</h2>{capture}</div>"
        f"<div><h2>Restore</h2>{restore}</div></div>"
        f"{ns_table}"
        "<h2>Capture and restore lag over time</h2>"
        + lag_chart(series(history), title=f"{mid}: lag over time", width=900, height=300)
        + history_note(history, recorded)
        + f"<h2>Files</h2><p>Folder <code>{_e(o.location)}</code>{console}</p>"
        + (f"<ul>{''.join(file_links)}</ul>" if file_links else '<p class="note">no state objects yet</p>')
    )
    return page(f"Back Over: {mid}", body)


def _phase_rows(report: Mapping[str, Any]) -> list[tuple[str, float | None]]:
    return [(name, phase.get("seconds")) for name, phase in (report.get("phases") or {}).items()]


def rehearsal_page(
    env: Environment,
    migration_id: str,
    report: Mapping[str, Any] | None,
    history: LagHistory,
    *,
    recorded: bool,
    here: str = links.REHEARSAL,
) -> str:
    """The rehearsal report (``reports/rehearsal.json``) on one page: verdict, phase timings, the
    write freeze, figures, the lag chart."""
    back = links.link(here, links.MIGRATION, env.variable, migration_id=migration_id)
    raw = links.link(here, links.FILE, env.variable, migration_id=migration_id, name="rehearsal")
    head = (
        f'<p><a href="{_e(back)}">Migration {_e(migration_id)}</a></p>'
        f'<h1 data-migration-id="{_e(migration_id)}">Rehearsal {_e(migration_id)}</h1>{_environment_line(env)}'
    )
    chart = lag_chart(series(history), title="capture and restore lag", width=900, height=280)
    if report is None:
        body = (
            head + '<p class="note">No rehearsal report yet: the rehearsal\'s report task writes it when the '
            "run ends (also when a phase failed).</p>" + chart + history_note(history, recorded)
        )
        return page(f"Back Over: rehearsal {migration_id}", body)
    passed = bool(report.get("passed"))
    verdict = (
        f'<p><span class="phase {Health.GOOD if passed else Health.BAD}" data-passed="{str(passed).lower()}">'
        f"{'PASSED' if passed else 'FAILED'}</span></p>"
    )
    phases = report.get("phases") or {}
    phase_table = (
        '<table class="phases"><thead><tr><th>Phase</th><th>State</th><th>Duration</th><th>DAG run</th>'
        "<th>Longest tasks</th></tr></thead><tbody>"
    )
    for name, phase in phases.items():
        tasks = sorted(
            ((t, s) for t, s in (phase.get("tasks") or {}).items() if s is not None), key=lambda ts: -ts[1]
        )[:5]
        longest = ", ".join(f"{t} {duration(s)}" for t, s in tasks) or "n/a"
        phase_table += (
            f'<tr data-phase="{_e(name)}"><td>{_e(name)}</td><td>{_e(phase.get("state") or "not run")}</td>'
            f'<td class="num">{duration(phase.get("seconds"))}</td><td><code>{_e(phase.get("run_id") or "")}</code></td>'
            f'<td class="detail">{_e(longest)}</td></tr>'
        )
    phase_table += "</tbody></table>"
    freeze = report.get("write_freeze") or {}
    freeze_rows = [(f"freeze: {k}", v) for k, v in (freeze.get("phases") or {}).items()]
    timings = bar_chart(
        [*_phase_rows(report), ("write freeze", freeze.get("seconds")), *freeze_rows], title="phase timings"
    )
    try:
        lines = summary_lines(report)[1:]
    except (KeyError, TypeError):  # a report of another shape: the tables above still show it
        lines = []
    summary = "".join(f"<li>{_e(line.strip())}</li>" for line in lines)
    body = (
        head
        + verdict
        + "<h2>Phases</h2>"
        + phase_table
        + timings
        + f"<h2>Summary</h2><ul class='summary'>{summary}</ul>"
        + "<h2>Capture and restore lag</h2>"
        + chart
        + history_note(history, recorded)
        + f'<p><a href="{_e(raw)}">The report as JSON</a></p>'
    )
    return page(f"Back Over: rehearsal {migration_id}", body)


def no_migration_page(dag_id: str, run_id: str, environment: str) -> str:
    """The run tab of a run that names no Back Over migration."""
    back = links.link(links.RUN, links.MIGRATIONS, environment)
    return page(
        "Back Over: no migration",
        f"<h1>No migration</h1><p>The run <code>{_e(run_id)}</code> of <code>{_e(dag_id)}</code> names no "
        f'Back Over migration (no <code>migration_id</code> in its conf or its results).</p><p><a href="{_e(back)}">'
        "All migrations</a></p>",
    )
