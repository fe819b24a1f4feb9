"""``alphad report``: the ``get_report`` reply as terminal tables, JSON or CSV."""

from __future__ import annotations

import csv
import io
import math
import re
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec

from alphad.protocol.messages import Alert, HealthRow, Report, StatusReply

STRATEGY_COLUMNS = (
    "trades",
    "win_rate",
    "expectancy",
    "total_pnl",
    "profit_factor",
    "sharpe",
    "sortino",
    "psr",
    "max_drawdown",
    "current_drawdown",
)


def report_tables(
    report: Report, now_ms: int | None = None
) -> dict[str, tuple[list[str], list[list[Any]]]]:
    """Every table of the report as (header, rows): one source for text and CSV; a
    switched-off component's age at ``now_ms`` when given (the text's, not the CSV's)."""
    tables: dict[str, tuple[list[str], list[list[Any]]]] = {}
    status = report.status
    tables["status"] = (
        ["version", "uptime_s", "trades", "strategies", "cycle", "components"],
        [
            [
                status.version,
                status.uptime_s,
                status.trades,
                status.strategies,
                status.cycle,
                "  ".join(
                    f"{k}={v}" for k, v in sorted(component_states(status, now_ms).items())
                ),
            ]
        ],
    )
    for window in ("all", "recent"):
        rows = []
        for entry in report.strategies:
            figures = entry.get(window) or {}
            rows.append([entry["strategy"], *(shown(figures, c) for c in STRATEGY_COLUMNS)])
        tables[f"strategies_{window}"] = (["strategy", *STRATEGY_COLUMNS], rows)
    allocation = report.allocation
    names = sorted(allocation.get("base", {}))
    tables["allocation"] = (
        ["strategy", "base", "adaptive", "effective", "normalized"],
        [
            [
                name,
                allocation["base"].get(name),
                allocation["adaptive"].get(name),
                allocation["effective"].get(name),
                allocation["normalized"].get(name),
            ]
            for name in names
        ],
    )
    tables |= health_tables(report.health)
    tables["regime_effectiveness"] = (
        ["strategy", "regime", "trades", "win_rate", "expectancy", "profit_factor", "sharpe"],
        [
            [
                r.get("strategy"),
                r.get("regime"),
                r.get("trades"),
                r.get("win_rate"),
                r.get("expectancy"),
                shown(r, "profit_factor"),
                r.get("sharpe"),
            ]
            for r in report.regime_effectiveness
        ],
    )
    quality = report.signal_quality
    tables["signal_quality"] = (
        ["bucket", "scored", "executed", "outcomes", "success_rate"],
        [
            [
                b.get("bucket"),
                b.get("scored"),
                b.get("executed"),
                b.get("outcomes"),
                b.get("success_rate"),
            ]
            for b in quality.get("buckets", [])
        ],
    )
    # The figure they are ranked by first, then the usual ones.
    top_columns = [report.top_metric]
    top_columns += [
        c for c in ("expectancy", "trades", "win_rate", "profit_factor") if c != report.top_metric
    ]
    tables["top_strategies"] = (
        ["strategy", *top_columns],
        [[r.get("strategy"), *(shown(r, c) for c in top_columns)] for r in report.top_strategies],
    )
    return tables


def shown(figures: dict[str, Any], column: str) -> Any:
    """A figure of a row as a table shows it: a profit factor with gains and no loss is
    infinite (``inf``), not undefined like one without either (``None``, ``-``)."""
    if column == "profit_factor" and figures.get("profit_factor_infinite"):
        return math.inf
    return figures.get(column)


def alert_subject(alert: Alert) -> str:
    """What an alert is about: its strategy, or the component an operator switched."""
    if alert.strategy:
        return alert.strategy
    component = alert.data.get("component") if alert.kind == "component" else None
    return str(component) if component else ""


def alert_change(alert: Alert) -> tuple[Any, Any]:
    """An alert's ``old`` and ``new`` as an operator reads them: a component ``on``/``off``."""
    if alert.kind == "component":
        return ("on" if alert.old else "off"), ("on" if alert.new else "off")
    return alert.old, alert.new


def health_tables(health: Sequence[HealthRow]) -> dict[str, tuple[list[str], list[list[Any]]]]:
    """The strategies' lifecycle states (``health``) and, with [lifecycle] per_regime, each
    one's state in each regime it traded in (``regime_health``, when some strategy has
    one)."""
    tables: dict[str, tuple[list[str], list[list[Any]]]] = {
        "health": (
            ["strategy", "status", "since_ms", "violations", "suspensions", "reason"],
            [
                [h.strategy, h.status, h.since_ms, h.violations, h.suspensions, h.reason]
                for h in health
            ],
        )
    }
    in_regimes = [(h.strategy, r) for h in health for r in h.regimes]
    if in_regimes:
        tables["regime_health"] = (
            ["strategy", "regime", "status", "since_ms", "violations", "suspensions", "reason"],
            [
                [name, r.regime, r.status, r.since_ms, r.violations, r.suspensions, r.reason]
                for name, r in in_regimes
            ],
        )
    return tables


def component_states(status: StatusReply, now_ms: int | None = None) -> dict[str, str]:
    """Each component's state as an operator reads it: one switched off shows ``off``,
    since when (UTC, and its age at ``now_ms`` when given), not its actor's ``running``."""
    states = dict(status.components)
    for name, enabled in status.enabled.items():
        if enabled:
            continue
        since = status.switched_ms.get(name)
        if since is None:
            shown = "off (since the start, by the config)"
        else:
            ago = f" ({age(now_ms - since)} ago)" if now_ms is not None else ""
            shown = f"off since {utc_time(since)} UTC{ago}"
        actor = states.get(name)
        states[name] = shown if actor in (None, "running") else f"{shown}; {actor}"
    return states


def render_text(report: Report, now_ms: int | None = None) -> str:
    """Readable fixed-width tables; times in UTC with their age at ``now_ms`` (the wall
    clock when None)."""
    now_ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    out = render_tables(report_tables(report, now_ms), now_ms)
    quality = report.signal_quality
    if quality:
        out.append(
            "signals scored {scored}, executed {executed}, mean quality {mean}".format(
                scored=quality.get("scored"),
                executed=quality.get("executed"),
                mean=_cell(quality.get("mean_quality")),
            )
        )
    return "\n".join(out)


def render_tables(
    tables: dict[str, tuple[list[str], list[list[Any]]]], now_ms: int | None = None
) -> list[str]:
    """Each table under its title, a blank line after it; times in UTC with their age at
    ``now_ms`` (the wall clock when None)."""
    now_ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    out: list[str] = []
    for title, (header, rows) in tables.items():
        if "since_ms" in header:
            at = header.index("since_ms")
            header = [*header[:at], "since (UTC)", "age", *header[at + 1 :]]
            rows = [[*r[:at], *_since(r[at], now_ms), *r[at + 1 :]] for r in rows]
        out.append(title.replace("_", " ").upper())
        out.append(_format_table(header, rows))
        out.append("")
    return out


def render_csv(report: Report) -> str:
    """One tidy table: a ``section`` column names the table each row belongs to.

    The columns are every table's columns, in the order they first appear; a row leaves
    the columns of other tables empty. A spreadsheet or ``pandas.read_csv`` reads it in
    one call, and ``df[df.section == "health"]`` is one table again.
    """
    tables = report_tables(report)
    columns: dict[str, None] = {}
    for header, _ in tables.values():
        columns.update(dict.fromkeys(header))
    names = list(columns)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["section", *names])
    for title, (header, rows) in tables.items():
        at = [names.index(c) for c in header]
        for row in rows:
            line: list[Any] = [None] * len(names)
            for index, value in zip(at, row, strict=True):
                line[index] = value
            writer.writerow([title, *line])
    return buffer.getvalue().removesuffix("\n")  # the caller prints the last newline


def render_json(report: Report) -> str:
    """The reply as JSON."""
    return msgspec.json.encode(report).decode()


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
    return str(value)


def _since(ts_ms: int, now_ms: int) -> tuple[str | None, str | None]:
    # 0 is "not known" (a configured strategy before its first assessment), not 1970.
    return (utc_time(ts_ms), age(now_ms - ts_ms)) if ts_ms > 0 else (None, None)


def utc_time(ts_ms: int) -> str:
    """``2026-12-02 03:28:48`` for epoch milliseconds."""
    return datetime.fromtimestamp(ts_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def age(ms: int) -> str:
    """How long ago, in the largest unit that fits: ``45s``, ``12m``, ``3.5h``, ``9.2d``."""
    seconds = max(0, ms) / 1000
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    if seconds < 86_400:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86_400:.1f}d"


def _format_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Fixed-width columns: numbers right-aligned under their header, text left-aligned."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [len(h) for h in header]
    for row in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    numeric = [
        i > 0
        and any(_NUMBER.fullmatch(row[i]) for row in cells)
        and all(_NUMBER.fullmatch(row[i]) or row[i] == "-" for row in cells)
        for i in range(len(header))
    ]

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            v.rjust(w) if right else v.ljust(w)
            for v, w, right in zip(values, widths, numeric, strict=True)
        ).rstrip()

    lines = [line(header), "  ".join("-" * w for w in widths)]
    lines += [line(row) for row in cells]
    if not cells:
        lines.append("(none)")
    return "\n".join(lines)


# A cell as _cell or the replay's formatting writes a number: 1,234, -0.5, +12.3%, 1e-05, inf,
# and a weight marked suspended, 0.65 (s).
_NUMBER = re.compile(r"[+\-−]?(?:[\d,]*\.?\d+(?:e[+\-]?\d+)?|inf|nan)%?[×x]?(?: \(s\))?")
