"""What a replay found: each side's figures, alphad against the baseline, the curves.

Every figure comes from the performance model's ``figures_of`` (docs/metrics.md), the
one place alphad computes Sharpe ratios, drawdowns and the rest.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import accumulate

import msgspec

from alphad.actors.figures import figures_of
from alphad.replay.bars import Detection
from alphad.replay.bootstrap import RESAMPLES, Luck, bootstrap, daily_sharpe
from alphad.replay.signals import SignalRow

DAY_MS = 86_400_000


class Stats(msgspec.Struct, kw_only=True):
    """How one side (baseline or alphad) did over a set of trades (docs/replay.md)."""

    trades: int
    total_pnl: float
    expectancy: float | None
    win_rate: float | None
    profit_factor: float | None  # None without a losing trade
    sharpe: float | None  # per trade, not annualized
    daily_sharpe: float | None  # calendar days of exit time, annualized
    max_drawdown: float
    drawdown_to_pnl: float | None  # max drawdown / total pnl; None unless pnl > 0
    worst_day: float


class Sides(msgspec.Struct, kw_only=True):
    """The same trades without and with alphad."""

    baseline: Stats
    alphad: Stats


class Change(msgspec.Struct, kw_only=True):
    """alphad against the baseline: relative changes and Sharpe differences."""

    total_pnl: float | None  # (alphad − baseline) / |baseline|
    max_drawdown: float | None  # alphad / baseline − 1
    sharpe: float | None  # alphad − baseline
    daily_sharpe: float | None  # alphad − baseline
    # alphad's exposure as a share of the baseline's: Σ size / the baseline's trades.
    exposure: float | None = None
    # Against the baseline cut to that exposure, every trade at size ``exposure``: its pnl
    # and its max drawdown are the baseline's × exposure. What alphad gains by choosing
    # trades, beyond trading less.
    total_pnl_same_exposure: float | None = None  # (alphad − cut) / |cut|
    max_drawdown_same_exposure: float | None = None  # alphad / cut − 1


class SignalCounts(msgspec.Struct, kw_only=True):
    """What the scorer did with the signals."""

    scored: int
    executed: int
    refused_status: int  # the strategy was suspended or retired
    refused_quality: int  # quality below min_quality
    # Signals the daemon's admission refuses (auto_register off, limits): not executed.
    not_admitted: int
    # Trades of executed signals it refuses to record (limits): in the book, since the
    # bot traded them, but nothing learns them.
    trades_not_recorded: int = 0
    mean_size: float | None  # of executed signals
    max_size: float | None
    outcomes_learned: int  # outcomes the scorer counted (shadow ones included)


class StatusEvent(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One lifecycle transition, at the event time of the cycle that made it; ``regime``
    only for a per-regime one (left out of the JSON otherwise)."""

    ts_ms: int
    cycle: int
    strategy: str
    old: str
    new: str
    reason: str
    regime: str | None = None


class ReplayResult(msgspec.Struct, kw_only=True):
    """Everything ``--format json`` prints."""

    signals: int
    strategies: list[str]
    first_ts_ms: int
    last_ts_ms: int
    days: int
    cycles: int
    update_interval_s: float
    shadow_outcomes: bool
    periods_per_year: float
    decisions: SignalCounts
    total: Sides
    change: Change
    by_strategy: dict[str, Sides]
    by_regime: dict[str, Sides]  # by the regime of the signal ("unknown" without one)
    status_changes: list[StatusEvent]
    # strategy -> [ts_ms, adaptive weight, effective weight] at start and at each change
    weights: dict[str, list[tuple[int, float, float]]]
    # regime -> strategy -> adaptive weight at the end, for regimes with their own table
    final_regime_weights: dict[str, dict[str, float]]
    # Could the difference be luck: the paired block bootstrap over days (None: not run).
    luck: Luck | None = None


@dataclass
class Curve:
    """A side's trades in close order: the input row, the exit time, and the cumulative
    pnl after it."""

    rows: list[int] = field(default_factory=list)
    ts_ms: list[int] = field(default_factory=list)
    equity: list[float] = field(default_factory=list)


@dataclass
class Replay:
    """A finished replay: the figures, and the curves the HTML report draws."""

    result: ReplayResult
    baseline: Curve
    alphad: Curve
    # Each side's pnl per calendar day, over the result's days.
    baseline_daily: list[float] = field(default_factory=list)
    alphad_daily: list[float] = field(default_factory=list)
    # With bars: what they did (None without: the output is as before bars existed).
    detection: Detection | None = None

    def bootstrap_luck(self, resamples: int = RESAMPLES) -> Luck:
        """Run the bootstrap of docs/replay.md on the daily pnl and keep it in the result."""
        self.result.luck = bootstrap(
            self.baseline_daily,
            self.alphad_daily,
            self.result.periods_per_year,
            resamples=resamples,
        )
        return self.result.luck


def side_stats(
    pnls: Sequence[float], days_of: Sequence[int], days: int, periods_per_year: float
) -> Stats:
    """The figures of one side: ``pnls`` in close order, ``days_of`` each trade's exit day
    (0 = the replay's first calendar day, of ``days``; days without a trade count as 0)."""
    figures = figures_of(pnls)
    daily = daily_pnl(pnls, days_of, days)
    n = figures.trades
    total = figures.total_pnl
    return Stats(
        trades=n,
        total_pnl=total,
        expectancy=figures.expectancy if n else None,
        win_rate=figures.win_rate if n else None,
        profit_factor=figures.profit_factor,
        sharpe=figures.sharpe,
        daily_sharpe=daily_sharpe(daily, periods_per_year),
        max_drawdown=figures.max_drawdown,
        drawdown_to_pnl=figures.max_drawdown / total if total > 0 else None,
        worst_day=min(daily) if daily else 0.0,
    )


def daily_pnl(pnls: Sequence[float], days_of: Sequence[int], days: int) -> list[float]:
    """The pnl of each calendar day (0 for a day without a trade), each day's summed
    exactly rounded, as the totals are: a running sum could lose a small trade beside
    two large ones that cancel, and a day's pnl would contradict the total."""
    by_day: dict[int, list[float]] = {}
    for pnl, day in zip(pnls, days_of, strict=True):
        by_day.setdefault(day, []).append(pnl)
    daily = [0.0] * days
    for day, day_pnls in by_day.items():
        daily[day] = math.fsum(day_pnls)
    return daily


def change_of(sides: Sides, exposure: float | None = None) -> Change:
    """alphad against the baseline, and against the baseline cut to alphad's
    ``exposure`` (Σ of alphad's sizes / the baseline's trades) when it is given."""
    base, mine = sides.baseline, sides.alphad

    def difference(a: float | None, b: float | None) -> float | None:
        return a - b if a is not None and b is not None else None

    def relative(a: float, b: float) -> float | None:
        return (a - b) / abs(b) if b else None

    def drawdown(a: float, b: float) -> float | None:
        return a / b - 1.0 if b > 0 else None

    cut = exposure if exposure else None
    return Change(
        total_pnl=relative(mine.total_pnl, base.total_pnl),
        max_drawdown=drawdown(mine.max_drawdown, base.max_drawdown),
        sharpe=difference(mine.sharpe, base.sharpe),
        daily_sharpe=difference(mine.daily_sharpe, base.daily_sharpe),
        exposure=exposure,
        total_pnl_same_exposure=relative(mine.total_pnl, base.total_pnl * cut) if cut else None,
        max_drawdown_same_exposure=(
            drawdown(mine.max_drawdown, base.max_drawdown * cut) if cut else None
        ),
    )


def _curve(rows: Sequence[SignalRow], indices: list[int], pnls: list[float]) -> Curve:
    # The running sum from 0.0, as ``equity += pnl`` trade by trade.
    equity = list(accumulate(pnls, initial=0.0))
    del equity[0]
    return Curve(rows=list(indices), ts_ms=[rows[i].exit_ts_ms for i in indices], equity=equity)
