"""The HTML page of ``alphad replay --report``: one self-contained file, no script.

Charts are inline SVG drawn here (equity, drawdown, weights, status timeline), styles
are inline, so the page opens anywhere, offline, and can be attached to an email. The
page holds no timestamp of its making: the same replay writes the same bytes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from html import escape
from pathlib import Path
from typing import Any

from alphad.replay.bars import Accuracy, Detection
from alphad.replay.results import Curve, Replay, ReplayResult, Sides, Stats, StatusEvent
from alphad.replay.signals import LAST_TS_MS, write_whole
from alphad.replay.text import (
    LUCK_HEADER,
    STAT_LINES,
    accuracy_line,
    days_of,
    detection_line,
    exposure_line,
    luck_rows,
    utc_day,
    utc_minute,
)

WIDTH = 960
HEIGHT = 260
LEFT, RIGHT, TOP, BOTTOM = 118, 16, 26, 28  # LEFT fits a 16-letter strategy name
BASELINE_COLOUR = "#8a8f98"
ALPHAD_COLOUR = "#1f6feb"
PALETTE = (
    "#1f6feb",
    "#d1495b",
    "#2a9d8f",
    "#e9a23b",
    "#7b5ea7",
    "#3d405b",
    "#8ab17d",
    "#e76f51",
    "#00798c",
    "#b56576",
)
STATUS_COLOURS = {
    "active": "#2a9d8f",
    "degraded": "#e9a23b",
    "suspended": "#d1495b",
    "retired": "#3d405b",
}

_STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1b1f24;
       max-width: 1000px; margin: 24px auto; padding: 0 16px; }
h1 { font-size: 22px; } h2 { font-size: 17px; margin-top: 28px; }
table { border-collapse: collapse; margin: 8px 0; }
th, td { padding: 3px 10px; border-bottom: 1px solid #e4e7eb; text-align: right; }
th:first-child, td:first-child, td.text, th.text { text-align: left; }
.wide { overflow-x: auto; max-width: 100%; } .wide table { font-size: 12.5px; }
.wide th, .wide td { padding: 3px 6px; white-space: nowrap; }
th { background: #f3f5f7; font-weight: 600; }
.muted { color: #5c6570; } .legend span { margin-right: 18px; }
.swatch { display: inline-block; width: 12px; height: 12px; margin-right: 5px;
          vertical-align: -1px; border-radius: 2px; }
svg text { font: 11px system-ui, sans-serif; fill: #5c6570; }
svg text.unit { font-style: italic; }
"""


def write_report(replayed: Replay, path: str | Path, title: str = "") -> None:
    """Write the page, whole or not at all (``write_whole``: an old page stays as it was
    if this one cannot be written); raises ``InputError`` when it cannot be written."""
    # A title made of a file name may hold bytes that are not UTF-8 (as surrogates).
    shown = title.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    write_whole(path, render_html(replayed, shown))


def render_html(replayed: Replay, title: str = "") -> str:
    """The whole page as one string."""
    r = replayed.result
    heading = f"alphad replay{f' of {title}' if title else ''}"
    d = r.decisions
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(heading)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{escape(heading)}</h1>",
        f'<p class="muted">{r.signals:,} signals of {len(r.strategies)} strategies, '
        f"{utc_day(r.first_ts_ms)} to {utc_day(r.last_ts_ms)} ({r.days} days); "
        f"{r.cycles:,} optimization cycles every {r.update_interval_s:g} s of event time"
        f"{'; refused signals teach their outcome (shadow outcomes)' if r.shadow_outcomes else ''}."
        f" alphad executed {d.executed:,} signals, refused {d.refused_quality:,} on quality and "
        f"{d.refused_status:,} of suspended or retired strategies; mean size "
        f"{_num(d.mean_size, 2)}, largest {_num(d.max_size, 2)}.</p>",
        *_detection_section(replayed.detection),
        "<h2>Baseline and alphad</h2>",
        _summary_table(r),
        *([f"<p>{escape(exposure_line(r.change))}</p>"] if r.change.exposure is not None else []),
        *_luck_section(r),
        "<h2>Equity</h2>",
        _legend(
            [("baseline (every signal at size 1)", BASELINE_COLOUR), ("alphad", ALPHAD_COLOUR)]
        ),
        _line_chart(
            r,
            [(replayed.baseline, BASELINE_COLOUR), (replayed.alphad, ALPHAD_COLOUR)],
            drawdown=False,
        ),
        "<h2>Drawdown from the running peak</h2>",
        _line_chart(
            r,
            [(replayed.baseline, BASELINE_COLOUR), (replayed.alphad, ALPHAD_COLOUR)],
            drawdown=True,
        ),
        "<h2>Effective weights</h2>",
        '<p class="muted">The global adaptive weight of each strategy, one lane each on '
        "the same scale (dashed: 1.0); 0 while it is suspended or retired. Signals are "
        "sized by weight / base weight (and by the regime's own table where the strategy "
        "has one).</p>",
        _weights_chart(r),
        "<h2>Status timeline</h2>",
        _legend(list(STATUS_COLOURS.items())),
        _status_chart(r),
        _status_table(r),
        "<h2>By strategy</h2>",
        _sides_table("strategy", r.by_strategy),
        "<h2>By regime</h2>",
        f'<p class="muted">{_by_regime_note(replayed.detection)}</p>',
        _sides_table("regime", r.by_regime),
        "</body></html>",
        "",
    ]
    return "\n".join(parts)


# ----------------------------------------------------------------------------- tables


def _summary_table(r: ReplayResult) -> str:
    rows = ["<table><tr><th></th><th>baseline</th><th>alphad</th></tr>"]
    for label, key, show in STAT_LINES:
        base = show(getattr(r.total.baseline, key))
        mine = show(getattr(r.total.alphad, key))
        rows.append(f"<tr><td>{escape(label)}</td><td>{base}</td><td>{mine}</td></tr>")
    rows.append("</table>")
    return "".join(rows)


def _detection_section(found: Detection | None) -> list[str]:
    """With bars: where the signals' regimes came from and, with the bars' true regimes,
    how well the readings found them (the text's lines, as a paragraph and a table); with
    ``--hmm``, the hidden Markov model's beside the rule set's."""
    if found is None:
        return []
    parts = ["<h2>Detected regimes</h2>", f"<p>{escape(detection_line(found))}.</p>"]
    accuracy, hmm = found.accuracy, found.hmm_accuracy
    if accuracy is not None:
        whose = (
            "" if hmm is None else ", by the rule set (the daemon's; the signals counted under it)"
        )
        parts += [
            f"<p>Against the bars' true regimes{whose}: {escape(accuracy_line(accuracy))}.</p>",
            '<p class="muted">Bars by true regime (rows) and detected one (columns).</p>',
            _confusion_table(accuracy),
        ]
    if hmm is not None:
        parts += [
            "<p>By the hidden Markov model, run offline over the same bars (no signal counted"
            f" under it): {escape(accuracy_line(hmm))}.</p>",
            _confusion_table(hmm),
        ]
    return parts


def _confusion_table(found: Accuracy) -> str:
    labels = list(found.confusion)
    head = "".join(f"<th>{escape(label)}</th>" for label in labels)
    rows = [f'<table><tr><th class="text">true</th>{head}</tr>']
    for true, detected in found.confusion.items():
        cells = "".join(f"<td>{count:,}</td>" for count in detected.values())
        rows.append(f"<tr><td>{escape(true)}</td>{cells}</tr>")
    rows.append("</table>")
    return "".join(rows)


def _by_regime_note(found: Detection | None) -> str:
    if found is None:
        return "By the regime the bot saw at the signal."
    return f"By the regime each signal counted under ([regimes] source {escape(found.source)})."


def _luck_section(r: ReplayResult) -> list[str]:
    """The bootstrap, when it was run: heading, explanation, table."""
    luck = r.luck
    if luck is None:
        return []
    if luck.resamples == 0 and luck.days:
        return [
            "<h2>Could it be luck?</h2>",
            f'<p class="muted">Not told: the history has {days_of(luck.days)}, no more than a '
            f"block of {luck.block_days}, and every resample would be the history turned "
            "round.</p>",
        ]
    head = "".join(f"<th>{escape(cell)}</th>" for cell in LUCK_HEADER)
    rows = [f"<table><tr>{head}</tr>"]
    for cells in luck_rows(luck):
        rows.append("<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in cells) + "</tr>")
    rows.append("</table>")
    return [
        "<h2>Could it be luck?</h2>",
        f'<p class="muted">{luck.resamples:,} histories redrawn from this one in blocks of '
        f"{luck.block_days} consecutive days, the same days for both sides; the middle 90 % "
        "of the differences, and how often alphad stays ahead.</p>",
        "".join(rows),
    ]


def _sides_table(what: str, groups: dict[str, Sides]) -> str:
    labels = [label for label, _, _ in STAT_LINES]
    head = f'<th>{escape(what)}</th><th class="text">side</th>'
    head += "".join(f"<th>{escape(label)}</th>" for label in labels)
    rows = [f'<div class="wide"><table><tr>{head}</tr>']
    for name, sides in groups.items():
        for side, stats in (("baseline", sides.baseline), ("alphad", sides.alphad)):
            cells = "".join(f"<td>{_stat(stats, key, show)}</td>" for _, key, show in STAT_LINES)
            who = escape(name) if side == "baseline" else ""
            rows.append(f'<tr><td>{who}</td><td class="text">{side}</td>{cells}</tr>')
    rows.append("</table></div>")
    return "".join(rows)


def _stat(stats: Stats, key: str, show: Callable[[Any], str]) -> str:
    return escape(str(show(getattr(stats, key))))


def _status_table(r: ReplayResult) -> str:
    if not r.status_changes:
        return '<p class="muted">No status change.</p>'
    rows = [
        '<div class="wide"><table><tr><th>time (UTC)</th><th>cycle</th>'
        '<th class="text">strategy</th><th class="text">change</th><th class="text">reason</th>'
        "</tr>"
    ]
    for e in r.status_changes:
        rows.append(
            f"<tr><td>{utc_minute(e.ts_ms)}</td><td>{e.cycle:,}</td>"
            f'<td class="text">{escape(_name_of(e))}</td>'
            f'<td class="text">{e.old} → {e.new}</td><td class="text">{escape(e.reason)}</td></tr>'
        )
    rows.append("</table></div>")
    return "".join(rows)


def _legend(items: Sequence[tuple[str, str]]) -> str:
    spans = "".join(
        f'<span><i class="swatch" style="background:{colour}"></i>{escape(label)}</span>'
        for label, colour in items
    )
    return f'<p class="legend">{spans}</p>'


# ----------------------------------------------------------------------------- charts


class _Frame:
    """Maps event time and values to the pixels of one chart."""

    def __init__(self, r: ReplayResult, low: float, high: float, height: int = HEIGHT) -> None:
        # A history of one instant spans the millisecond after it, or before it at the
        # last instant the rows take (after it is past the year 9999, which no date prints).
        self.t0, self.t1 = r.first_ts_ms, max(r.last_ts_ms, r.first_ts_ms + 1)
        if self.t1 > LAST_TS_MS:
            self.t0, self.t1 = LAST_TS_MS - 1, LAST_TS_MS
        if high <= low:
            high = low + 1.0
        self.ticks = _ticks(low, high)
        self.low = min(low, self.ticks[0])
        self.high = max(high, self.ticks[-1])
        self.height = height
        self.plot_w = WIDTH - LEFT - RIGHT
        self.plot_h = height - TOP - BOTTOM

    def x(self, ts_ms: int) -> float:
        return LEFT + (ts_ms - self.t0) / (self.t1 - self.t0) * self.plot_w

    def y(self, value: float) -> float:
        return TOP + (self.high - value) / (self.high - self.low) * self.plot_h

    def axes(self, money: bool = True) -> list[str]:
        out = []
        for tick in self.ticks:
            y = self.y(tick)
            label = f"{tick:,.0f}" if money and abs(self.high - self.low) >= 10 else f"{tick:g}"
            out.append(
                f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
                f'stroke="{"#9aa1a9" if tick == 0 else "#e4e7eb"}"/>'
                f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{label}</text>'
            )
        out += self.time_axis()
        return out

    def time_axis(self) -> list[str]:
        out = []
        for k in range(6):
            ts = self.t0 + (self.t1 - self.t0) * k // 5
            x = self.x(ts)
            anchor = "start" if k == 0 else "end" if k == 5 else "middle"
            y = self.height - 8
            out.append(f'<text x="{x:.1f}" y="{y}" text-anchor="{anchor}">{utc_day(ts)}</text>')
        return out


def _svg(height: int, body: list[str]) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" role="img">' + "".join(body) + "</svg>"
    )


def _line_chart(r: ReplayResult, curves: list[tuple[Curve, str]], drawdown: bool) -> str:
    series = []
    for curve, colour in curves:
        # From 0 at the start to the end of the replay, flat after the side's last trade.
        ts = [r.first_ts_ms, *curve.ts_ms, r.last_ts_ms]
        values = [0.0, *curve.equity]
        values.append(values[-1])
        if drawdown:
            peak = 0.0
            under = []
            for v in values:
                peak = max(peak, v)
                under.append(v - peak)
            values = under
        series.append((ts, values, colour))
    every = [v for _, values, _ in series for v in values]
    frame = _Frame(r, min(every), max(every))
    body = frame.axes()
    what = "below the running peak" if drawdown else "cumulative"
    body.append(_unit(f"pnl {what}, in the history's pnl units; time in UTC", TOP - 2))
    for ts, values, colour in series:
        points = _thin([frame.x(t) for t in ts], [frame.y(v) for v in values])
        body.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" '
            f'points="{_points(points)}"/>'
        )
    return _svg(HEIGHT, body)


def _weights_chart(r: ReplayResult) -> str:
    """Small multiples: one lane per strategy on a shared scale, so that strategies at the
    same weight (most of them, most of the time) do not hide behind each other."""
    top = max((p[2] for path in r.weights.values() for p in path), default=1.0)
    high = max(top, 1.0)
    lane = 48
    height = TOP + lane * len(r.weights) + BOTTOM
    frame = _Frame(r, 0.0, 1.0, height)
    body = frame.time_axis()
    body.append(_unit(f"effective weight, each lane 0 to {high:g}", TOP - 8))
    for i, (name, path) in enumerate(r.weights.items()):
        lane_top = TOP + i * lane
        floor = lane_top + lane - 6  # the lane's weight 0
        scale = (lane - 20) / high

        def y(weight: float, floor: int = floor, scale: float = scale) -> float:
            return floor - weight * scale

        label = name if len(name) <= 16 else name[:15] + "…"
        shade = "#f6f8fa" if i % 2 == 0 else "#ffffff"
        body.append(
            f'<rect x="{LEFT}" y="{lane_top}" width="{WIDTH - LEFT - RIGHT}" height="{lane}" '
            f'fill="{shade}"/>'
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{floor}" y2="{floor}" stroke="#9aa1a9"/>'
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(1.0):.1f}" y2="{y(1.0):.1f}" '
            'stroke="#c9ced4" stroke-dasharray="3 3"/>'
            f'<text x="{LEFT - 6}" y="{lane_top + lane / 2 + 4:.1f}" text-anchor="end">'
            f"<title>{escape(name)}</title>{escape(label)}</text>"
        )
        # A step line: each weight holds until the next change, then the end of the replay.
        points: list[tuple[float, float]] = []
        for k, (ts, _, effective) in enumerate(path):
            if k:
                points.append((frame.x(ts), points[-1][1]))
            points.append((frame.x(ts), y(effective)))
        if points:
            points.append((frame.x(r.last_ts_ms), points[-1][1]))
        body.append(
            f'<polyline fill="none" stroke="{_colour(i)}" stroke-width="1.5" '
            f'points="{_points(_thin_steps(points))}"/>'
        )
    return _svg(height, body)


def _unit(text: str, y: float) -> str:
    """The unit of a chart's values, above its value axis."""
    return f'<text class="unit" x="{LEFT}" y="{y:.1f}">{escape(text)}</text>'


def _status_chart(r: ReplayResult) -> str:
    names = list(r.weights) or list(r.strategies)
    lane = 22
    height = TOP + lane * len(names) + BOTTOM
    frame = _Frame(r, 0.0, 1.0, height)
    body = frame.time_axis()
    for row, name in enumerate(names):
        y = TOP + row * lane
        label = name if len(name) <= 16 else name[:15] + "…"
        body.append(
            f'<text x="{LEFT - 6}" y="{y + lane / 2 + 4:.1f}" text-anchor="end">'
            f"<title>{escape(name)}</title>{escape(label)}</text>"
        )
        path = r.weights.get(name)
        start = path[0][0] if path else r.first_ts_ms
        spells = [(start, "active", "")]
        spells += [
            (e.ts_ms, e.new, e.reason)
            for e in r.status_changes
            if e.strategy == name and e.regime is None
        ]
        for k, (ts, status, reason) in enumerate(spells):
            end = spells[k + 1][0] if k + 1 < len(spells) else r.last_ts_ms
            x0, x1 = frame.x(ts), frame.x(end)
            tip = f"{status} from {utc_minute(ts)}" + (f": {reason}" if reason else "")
            body.append(
                f'<rect x="{x0:.1f}" y="{y + 3}" width="{max(x1 - x0, 1.0):.1f}" '
                f'height="{lane - 6}" fill="{STATUS_COLOURS.get(status, "#999")}">'
                f"<title>{escape(tip)}</title></rect>"
            )
    return _svg(height, body)


def _thin(xs: list[float], ys: list[float]) -> list[tuple[float, float]]:
    """At most a few points per pixel column: first, lowest, highest and last, so that a
    long curve stays small without losing its extremes (the drawdowns)."""
    if len(xs) <= 4 * WIDTH:
        return list(zip(xs, ys, strict=True))
    out: list[tuple[float, float]] = []
    column: list[tuple[float, float]] = []
    current = math.floor(xs[0])
    for point in zip(xs, ys, strict=True):
        if math.floor(point[0]) != current:
            out += _column(column)
            column = []
            current = math.floor(point[0])
        column.append(point)
    out += _column(column)
    return out


def _column(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    if len(points) <= 4:
        return points
    # Lowest and highest on screen, in the order they happened.
    low = min(range(len(points)), key=lambda k: points[k][1])
    high = max(range(len(points)), key=lambda k: points[k][1])
    middle = sorted({low, high})
    return [points[0], *(points[k] for k in middle), points[-1]]


def _thin_steps(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    if len(points) <= 4 * WIDTH:
        return points
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    return _thin(xs, ys)


def _points(points: list[tuple[float, float]]) -> str:
    return " ".join(f"{x:.1f},{y:.1f}" for x, y in points)


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values (1, 2 or 5 × 10^k apart) covering [low, high]."""
    # At least 1e-12 apart: a span of subnormal pnls has no logarithm.
    raw = max((high - low) / count, 1e-12)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    first = math.floor(low / step) * step
    ticks = []
    value = first
    while value < high + step * 0.999:
        ticks.append(round(value, 10))
        value += step
    return ticks


def _colour(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def _num(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _name_of(event: StatusEvent) -> str:
    """The strategy of a status change, with its regime for a per-regime one."""
    return event.strategy if event.regime is None else f"{event.strategy} in {event.regime}"
