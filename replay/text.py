"""The replay's result as terminal tables (``--format text``) or JSON."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec

from alphad.daemon.report import _format_table
from alphad.replay.bars import Accuracy, Detection
from alphad.replay.bootstrap import Luck
from alphad.replay.results import Change, Replay, ReplayResult, Sides, StatusEvent


def render_json(replayed: Replay) -> str:
    """The result as indented JSON (keys in a fixed order); with bars, ``detection`` last."""
    result: object = replayed.result
    if replayed.detection is not None:
        result = {**msgspec.to_builtins(result), "detection": replayed.detection}
    return msgspec.json.format(msgspec.json.encode(result), indent=2).decode()


def utc_day(ts_ms: int) -> str:
    """The UTC calendar day of an event time, as YYYY-MM-DD."""
    return datetime.fromtimestamp(ts_ms / 1000, UTC).strftime("%Y-%m-%d")


def utc_minute(ts_ms: int) -> str:
    """An event time to the minute, UTC."""
    return datetime.fromtimestamp(ts_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M")


def _money(value: float | None) -> str:
    return "-" if value is None else f"{value:,.2f}"


def _ratio(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _signed_percent(value: float | None) -> str:
    return "-" if value is None else f"{value:+.1%}"


def _signed(value: float | None) -> str:
    return "-" if value is None else f"{value:+.3f}"


STAT_LINES: tuple[tuple[str, str, Callable[[Any], str]], ...] = (
    ("trades taken", "trades", lambda v: f"{v:,}"),
    ("total pnl", "total_pnl", _money),
    ("expectancy", "expectancy", _money),
    ("win rate", "win_rate", _percent),
    ("profit factor", "profit_factor", _ratio),
    ("sharpe per trade", "sharpe", _ratio),
    ("daily sharpe (annualized)", "daily_sharpe", lambda v: _ratio(v, 2)),
    ("max drawdown", "max_drawdown", _money),
    ("max drawdown / total pnl", "drawdown_to_pnl", _ratio),
    ("worst day", "worst_day", _money),
)


def render_text(replayed: Replay, source: str = "") -> str:
    """Terminal tables: totals, per strategy, status changes and weights."""
    r = replayed.result
    d = r.decisions
    out = [
        f"alphad replay{f' of {source}' if source else ''}: {r.signals:,} signals, "
        f"{len(r.strategies)} strategies, {utc_day(r.first_ts_ms)} to {utc_day(r.last_ts_ms)} "
        f"({r.days} days), {r.cycles:,} optimization cycles every {r.update_interval_s:g} s"
        + (", shadow outcomes" if r.shadow_outcomes else ""),
        f"alphad executed {d.executed:,} of {r.signals:,} signals (refused: "
        f"{d.refused_quality:,} on quality, {d.refused_status:,} suspended or retired"
        + (f", {d.not_admitted:,} not admitted" if d.not_admitted else "")
        + f"), mean size {_ratio(d.mean_size, 2)}, largest {_ratio(d.max_size, 2)}"
        + (
            f"; {d.trades_not_recorded:,} executed trades not recorded ([limits]: in the "
            "book, not learned)"
            if d.trades_not_recorded
            else ""
        ),
    ]
    if replayed.detection is not None:
        out.append(detection_line(replayed.detection))
        if replayed.detection.accuracy is not None:
            out += [
                "",
                *accuracy_lines(replayed.detection.accuracy, replayed.detection.hmm_accuracy),
            ]
    out += ["", "ALL STRATEGIES"]
    change = r.change
    changes = {
        "total_pnl": _signed_percent(change.total_pnl),
        "max_drawdown": _signed_percent(change.max_drawdown),
        "sharpe": _signed(change.sharpe),
        "daily_sharpe": _signed(change.daily_sharpe),
    }
    lines = []
    for label, key, show in STAT_LINES:
        base = getattr(r.total.baseline, key)
        mine = getattr(r.total.alphad, key)
        lines.append([label, show(base), show(mine), changes.get(key, "")])
    out.append(_format_table(["", "baseline", "alphad", "change"], lines))
    if change.exposure is not None:
        out += ["", exposure_line(change)]
    if r.luck is not None:
        out += ["", *luck_lines(r.luck)]
    out += ["", "BY STRATEGY"]
    out.append(_sides_table("strategy", r.by_strategy))
    out += ["", "BY REGIME (of the signal)"]
    out.append(_sides_table("regime", r.by_regime))
    out += ["", "STATUS CHANGES (UTC, cycle, strategy, change: reason)"]
    out += _status_lines(r.status_changes) or ["(none)"]
    out += ["", "WEIGHTS (global adaptive weight; (s) = suspended or retired, effective 0)"]
    out.append(_weights_table(r))
    return "\n".join(out)


def detection_line(found: Detection) -> str:
    """Where the signals' regimes came from, with bars."""
    return (
        f"bars: {found.bars:,} in {found.series:,} series; [regimes] source {found.source}: "
        f"{found.signals_detected:,} signals under a detected regime, "
        f"{found.signals_no_reading:,} before any reading, {found.signals_bot:,} under the "
        f"bot's label, {found.signals_none:,} with none"
    )


def accuracy_lines(found: Accuracy, hmm: Accuracy | None = None) -> list[str]:
    """The detected regimes against the bars' true ones: accuracy, delays, confusion;
    with ``hmm``, the rule set's and the hidden Markov model's side by side."""
    title = "DETECTED REGIMES AGAINST THE TRUE ONES (rows: true regime; columns: detected; bars)"
    if hmm is None:
        return [title, accuracy_line(found), _confusion_table(found)]
    rows = [["rule set", *_accuracy_cells(found)], ["hidden Markov model", *_accuracy_cells(hmm)]]
    header = ["detector", "bars", "read", "accuracy", "switches", "missed", "median delay (bars)"]
    return [
        title,
        _format_table(header, rows),
        "",
        "RULE SET (the daemon's: the signals counted under its readings)",
        _confusion_table(found),
        "",
        "HIDDEN MARKOV MODEL (--hmm: offline over the same bars; no signal counted under it)",
        _confusion_table(hmm),
    ]


def _accuracy_cells(found: Accuracy) -> list[str]:
    delay = "-" if found.median_delay is None else f"{found.median_delay:g}"
    counts = (found.bars, found.read, found.accuracy, found.switches, found.missed)
    return [f"{n:,}" if isinstance(n, int) else f"{n:.3f}" for n in counts] + [delay]


def _confusion_table(found: Accuracy) -> str:
    labels = list(found.confusion)
    rows = [[true, *found.confusion[true].values()] for true in labels]
    return _format_table(["true", *labels], rows)


def accuracy_line(found: Accuracy) -> str:
    """Accuracy, switches and delay in one line (the text's and the page's)."""
    delay = "-" if found.median_delay is None else f"{found.median_delay:g} bars"
    return (
        f"accuracy {found.accuracy:.3f} over {found.read:,} of {found.bars:,} bars read; "
        f"{found.switches:,} switches, {found.missed:,} missed, median delay {delay}"
    )


def exposure_line(change: Change) -> str:
    """Is alphad only trading less? Its change against the baseline cut to its exposure."""
    return (
        f"alphad's exposure is {_ratio(change.exposure, 2)} of the baseline's (sum of sizes / "
        f"trades). Against the baseline cut to that size on every trade: total pnl "
        f"{_signed_percent(change.total_pnl_same_exposure)}, max drawdown "
        f"{_signed_percent(change.max_drawdown_same_exposure)}."
    )


def _sides_table(what: str, groups: dict[str, Sides]) -> str:
    """Both sides of every group, a row each."""
    header = [what, "side", "trades", "total pnl", "expect.", "win", "PF", "sh/trade", "sh/day"]
    header += ["max dd", "dd/pnl", "worst day"]
    table = []
    for name, sides in groups.items():
        for label, s in (("baseline", sides.baseline), ("alphad", sides.alphad)):
            table.append(
                [
                    name if label == "baseline" else "",
                    label,
                    f"{s.trades:,}",
                    _money(s.total_pnl),
                    _money(s.expectancy),
                    _percent(s.win_rate),
                    _ratio(s.profit_factor, 2),
                    _ratio(s.sharpe),
                    _ratio(s.daily_sharpe, 2),
                    _money(s.max_drawdown),
                    _ratio(s.drawdown_to_pnl, 2),
                    _money(s.worst_day),
                ]
            )
    return _format_table(header, table)


def luck_rows(luck: Luck) -> list[list[str]]:
    """The bootstrap's table (docs/replay.md): figure, alphad − baseline on the history,
    the middle 90 % of the resamples, the share of resamples with alphad ahead."""
    rows = []
    for label, interval, show in (
        ("daily sharpe", luck.daily_sharpe, _signed),
        ("total pnl", luck.total_pnl, _signed_money),
    ):
        span = (
            f"{show(interval.low)} to {show(interval.high)}"
            if interval.low is not None and interval.high is not None
            else "-"
        )
        ahead = f"{_percent(interval.ahead)} of resamples" if interval.ahead is not None else "-"
        rows.append([label, show(interval.observed), span, ahead])
    return rows


LUCK_HEADER = ["", "alphad - baseline", "90% of resamples", "alphad ahead in"]


def luck_lines(luck: Luck) -> list[str]:
    """The bootstrap as a heading and a table."""
    if luck.resamples == 0 and luck.days:
        return [
            f"COULD IT BE LUCK? not told: the history has {days_of(luck.days)}, no more than a "
            f"block of {luck.block_days}, and every resample would be the history turned round"
        ]
    return [
        f"COULD IT BE LUCK? {luck.resamples:,} resamples of the history's days in blocks of "
        f"{luck.block_days}, the same days for both sides",
        _format_table(LUCK_HEADER, luck_rows(luck)),
    ]


def days_of(n: int) -> str:
    """``1 day``, ``5 days``."""
    return "1 day" if n == 1 else f"{n} days"


def _signed_money(value: float | None) -> str:
    return "-" if value is None else f"{value:+,.2f}"


def _status_lines(changes: Sequence[StatusEvent]) -> list[str]:
    """One line per transition (``NAME in REGIME`` for a per-regime one); the reason
    last, left-aligned, as long as it is."""
    names = [e.strategy if e.regime is None else f"{e.strategy} in {e.regime}" for e in changes]
    width = max((len(name) for name in names), default=0)
    cycles = max((len(f"{e.cycle:,}") for e in changes), default=0)
    return [
        f"{utc_minute(e.ts_ms)}  {e.cycle:>{cycles},}  {name:<{width}}  "
        f"{e.old + ' -> ' + e.new:<21}  {e.reason}"
        for e, name in zip(changes, names, strict=True)
    ]


def _weights_table(r: ReplayResult, columns: int = 7) -> str:
    """Each strategy's weight at evenly spaced times, start to end."""
    span = r.last_ts_ms - r.first_ts_ms
    times = [r.first_ts_ms + span * k // (columns - 1) for k in range(columns)]
    rows = []
    for name, path in r.weights.items():
        cells = [name]
        for t in times:
            point = _at(path, t)
            if point is None:
                cells.append("-")  # not registered yet: before its first trade closed
            else:
                suspended = point[2] == 0.0
                cells.append(f"{point[1]:.2f}{' (s)' if suspended else ''}")
        rows.append(cells)
    return _format_table(["strategy", *(utc_day(t) for t in times)], rows)


def _at(path: list[tuple[int, float, float]], ts_ms: int) -> tuple[int, float, float] | None:
    """The last point of a weight path at or before ``ts_ms``."""
    found = None
    for point in path:
        if point[0] > ts_ms:
            break
        found = point
    return found
