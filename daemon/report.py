"""``alphad report``: the ``get_report`` reply as terminal tables, JSON or CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

import msgspec

from protocol.messages import Report

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


def report_tables(report: Report) -> dict[str, tuple[list[str], list[list[Any]]]]:
    """Every table of the report as (header, rows): one source for text and CSV."""
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
                " ".join(f"{k}={v}" for k, v in sorted(status.components.items())),
            ]
        ],
    )
    for window in ("all", "recent"):
        rows = []
        for entry in report.strategies:
            figures = entry.get(window) or {}
            rows.append([entry["strategy"], *(figures.get(c) for c in STRATEGY_COLUMNS)])
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
    tables["health"] = (
        ["strategy", "status", "since_ms", "violations", "suspensions", "reason"],
        [
            [h.strategy, h.status, h.since_ms, h.violations, h.suspensions, h.reason]
            for h in report.health
        ],
    )
    tables["regime_effectiveness"] = (
        ["strategy", "regime", "trades", "win_rate", "expectancy", "profit_factor", "sharpe"],
        [
            [
                r.get("strategy"),
                r.get("regime"),
                r.get("trades"),
                r.get("win_rate"),
                r.get("expectancy"),
                r.get("profit_factor"),
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
    tables["top_strategies"] = (
        ["strategy", "expectancy", "trades", "win_rate", "profit_factor"],
        [
            [
                r.get("strategy"),
                r.get("expectancy"),
                r.get("trades"),
                r.get("win_rate"),
                r.get("profit_factor"),
            ]
            for r in report.top_strategies
        ],
    )
    return tables


def render_text(report: Report) -> str:
    """Readable fixed-width tables."""
    out: list[str] = []
    for title, (header, rows) in report_tables(report).items():
        out.append(title.replace("_", " ").upper())
        out.append(_format_table(header, rows))
        out.append("")
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


def render_csv(report: Report) -> str:
    """One CSV block per table, each preceded by a ``# table`` line."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for title, (header, rows) in report_tables(report).items():
        buffer.write(f"# {title}\n")
        writer.writerow(header)
        writer.writerows(rows)
        buffer.write("\n")
    return buffer.getvalue()


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


def _format_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [len(h) for h in header]
    for row in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    for row in cells:
        lines.append(
            "  ".join(
                c.rjust(w) if i else c.ljust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    if not cells:
        lines.append("(none)")
    return "\n".join(lines)
