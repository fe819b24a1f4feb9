"""What the evidence says about a strategy: the verdicts the lifecycle acts on.

A recent window's breaches and whether it clears the recovery margin
(``judge_window``), the edge test and the peak stop read on the trades since their last
reading (``read_edge``), a suspended strategy's paper trades against its break-even rate
(``paper_verdict``) and the probation clock (``probation_ends``), each with the words of
its reason. Apart from the model (actors/lifecycle.py), which counts violations and moves
statuses by its table, because these are the statistics and the wording: functions of a
config, a strategy's record and its figures, readable and testable without the table.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import msgspec

from alphad.actors.exact import binomial_at_least, binomial_at_most
from alphad.actors.figures import Figures, pnl_scale, shown_below
from alphad.actors.lifecycle_shapes import HealthState, LifecycleConfig, PaperTrades
from alphad.actors.sequential import MIN_TRADES as EDGE_MIN_TRADES
from alphad.actors.sequential import below_peak_to, cusum_to, edge_scale, threshold

HOUR_MS = 3_600_000
LEGACY_PROBATION_HOURS = 72
"""The probation of a suspension made before probation was counted in trades."""


class Assessment(msgspec.Struct, kw_only=True):
    """What one recent window says about a strategy."""

    soft: list[str]  # soft breaches, in words
    hard: str | None  # the hard breach, in words
    recovered: bool  # every threshold cleared by the hysteresis margin
    figures: Figures
    soft_limit: float  # the drawdown limits applied, in pnl units
    hard_limit: float
    # The window's drawdown as traded, where an operator's absolute limit judged it.
    sized_drawdown: float | None = None

    def metrics(self) -> dict[str, Any]:
        """The figures and limits for the journal (built only for a transition)."""
        metrics = _metrics(self.figures)
        metrics["soft_drawdown_limit"] = self.soft_limit
        metrics["hard_drawdown_limit"] = self.hard_limit
        if self.sized_drawdown is not None:
            metrics["sized_drawdown"] = self.sized_drawdown
        return metrics


def break_even_rate(figures: Figures | None) -> float | None:
    """The win rate at which trades paying the window's average win and average loss
    break even, avg loss / (avg win + avg loss); None without both wins and losses."""
    if figures is None or figures.avg_win is None or figures.avg_loss is None:
        return None
    total = figures.avg_win + figures.avg_loss
    return figures.avg_loss / total if total > 0.0 and math.isfinite(total) else None


def paper_verdict(
    figures: Figures | None, paper: tuple[float, float] | None, significance: float
) -> tuple[bool, str] | None:
    """What a suspended strategy's paper trades say: (True, words) when they win
    significantly more often than it needs to break even (its window's average win and
    loss, ``break_even_rate``), (False, words) when significantly less often; None
    without paper trades, without a break-even rate, or without a significant answer."""
    if paper is None:
        return None
    wins, outcomes = paper
    need = break_even_rate(figures)
    if outcomes < 1.0 or need is None:
        return None
    record = f"{wins:g} of its last {outcomes:g} paper trades won"
    above = binomial_at_least(wins, outcomes, need)
    if above <= significance:
        return True, f"{record}, above the {need:.0%} it needs to break even (p = {above:.2g})"
    below = binomial_at_most(wins, outcomes, need)
    if below <= significance:
        return False, f"{record}, below the {need:.0%} it needs to break even (p = {below:.2g})"
    return None


def _amount(value: float) -> str:
    """A pnl amount for a reason: two decimals, or three significant digits if tiny or huge."""
    if value == 0 or 0.01 <= abs(value) < 1e9:
        return f"{value:.2f}"
    return f"{value:.3g}"


def _over(value: float, limit: float) -> tuple[str, str]:
    """A drawdown over its limit and the limit, as a reason shows them (``_amount``), with
    as many more decimals (up to six, each rounded to the nearest) as it takes for the
    one shown to be over the other: 30.0001 over 30.00003 read "30.00 > 30.00"."""
    shown = _amount(value), _amount(limit)
    if shown[0] != shown[1] or not (0.01 <= abs(value) < 1e9 and 0.01 <= abs(limit) < 1e9):
        return shown
    for places in range(3, 7):
        step = Decimal(1).scaleb(-places)
        over = Decimal(repr(value)).quantize(step, rounding=ROUND_HALF_EVEN)
        under = Decimal(repr(limit)).quantize(step, rounding=ROUND_HALF_EVEN)
        if over > under:
            return f"{over:f}", f"{under:f}"
    return f"{value!r}", f"{limit!r}"


def _metrics(figures: Figures) -> dict[str, Any]:
    """The window's figures for the journal: no NaN or infinity in JSON."""
    row = msgspec.structs.asdict(figures)
    del row["pnls"], row["unread"], row["sized_pnls"]
    return {
        k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()
    }


def _times(log_ratio: float) -> str:
    """A likelihood ratio from its log, for a reason: ``1,234``, or ``10^412`` past what
    a float holds (pnls of almost no spread make the evidence astronomic, not an error)."""
    if log_ratio < 46.0:  # below 1e20
        return f"{math.exp(log_ratio):,.0f}"
    return f"10^{log_ratio / math.log(10):.0f}" if math.isfinite(log_ratio) else "infinitely"


def ordinal(n: int) -> str:
    """``1st``, ``2nd``, ``11th``: the count of a violation, for a reason."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


DrawdownLimit = tuple[float, float]
"""A drawdown limit and the window's drawdown it is held against (per unit of size for
the relative limits, as traded for an operator's absolute ones)."""


def judge_window(
    cfg: LifecycleConfig, figures: Figures, soft_rule: DrawdownLimit, hard_rule: DrawdownLimit
) -> Assessment:
    """Soft and hard breaches of one recent window under ``cfg`` and the drawdown limits
    (``DrawdownLimit``), and whether it clears the margin.

    A NaN figure breaches nothing but never counts as cleared either, so bad data
    can keep a strategy degraded but cannot bring it back.
    """
    margin = cfg.hysteresis
    scale = pnl_scale(figures)
    expectancy, win_rate = figures.expectancy, figures.win_rate
    (soft_limit, drawdown), (hard_limit, hard_drawdown) = soft_rule, hard_rule
    profit_factor, psr = figures.profit_factor, figures.judged_psr
    soft = []
    if psr is not None and psr < cfg.psr_floor:
        soft.append("PSR {} < {}".format(*shown_below(psr, cfg.psr_floor)))
    if win_rate < cfg.win_rate_floor:
        soft.append(
            "win rate {} < {}".format(*shown_below(win_rate, cfg.win_rate_floor, percent=True))
        )
    if drawdown > soft_limit:
        soft.append("drawdown {} > {}".format(*_over(drawdown, soft_limit)))
    hard = (
        "drawdown {} > hard limit {}".format(*_over(hard_drawdown, hard_limit))
        if hard_drawdown > hard_limit
        else None
    )
    # Recovery asks for more than the absence of a breach: a positive expectancy and
    # profit factor by the margin. No losing trade in the window (profit factor
    # undefined) clears the profit factor test when there are wins; breakeven-only
    # windows fail on expectancy.
    recovered = (
        expectancy > margin * scale
        and (
            profit_factor > 1 + margin
            if profit_factor is not None
            else figures.profit_factor_infinite
        )
        and win_rate > cfg.win_rate_floor + margin
        and drawdown < soft_limit * (1 - margin)
        and (psr is None or psr > cfg.psr_floor + margin)
    )
    return Assessment(
        soft=soft,
        hard=hard,
        recovered=recovered,
        figures=figures,
        soft_limit=soft_limit,
        hard_limit=hard_limit,
    )


def edge_level(cfg: LifecycleConfig) -> float:
    """The edge test's alarm level under ``cfg``."""
    return threshold(cfg.edge_false_alarm_trades)


class Alarm(msgspec.Struct, kw_only=True, frozen=True):
    """What suspends a strategy between two windows: the edge test or the peak stop."""

    reason: str
    metrics: dict[str, Any]
    below_peak: bool  # the peak stop's, which never ends on the clock


def read_edge(cfg: LifecycleConfig, state: HealthState, figures: Figures) -> Alarm | None:
    """Read the trades since the last reading into the edge test and the peak stop; the
    alarm of either, or None. The edge test is read first; an alarm starts both over."""
    if cfg.edge_loss <= 0.0 and cfg.peak_drawdown <= 0.0:
        return None
    if figures.trades < EDGE_MIN_TRADES:
        if figures.seen > figures.trades:
            state.edge_read = figures.seen  # a window too short for the test: never read
        return None
    # The trades since the last reading: the window's newest, and those that left it
    # unread (more trades between two cycles than the window holds).
    held = [*figures.unread, *figures.pnls] if figures.unread else figures.pnls
    new = min(figures.seen - state.edge_read, len(held))
    state.edge_read = figures.seen
    scale = edge_scale(figures.pnls)
    if not scale > 0.0 or new <= 0:
        return None
    pnls = held[-new:]
    # Each rule up to the trade at which it alarms (the edge test first at the same one),
    # as a cycle after every trade would read them.
    edge_at = peak_at = None
    edge, fall = state.edge_statistic, state.below_peak
    if cfg.edge_loss > 0.0:
        edge, edge_at = cusum_to(edge, pnls, scale, cfg.edge_loss, edge_level(cfg))
    if cfg.peak_drawdown > 0.0:
        fall, peak_at = below_peak_to(fall, pnls, scale, cfg.peak_drawdown)
    if edge_at is not None and (peak_at is None or edge_at <= peak_at):
        state.edge_statistic = state.below_peak = 0.0
        reason = (
            f"lost its edge: losing {cfg.edge_loss:g} σ a trade is {_times(edge)} "
            f"times likelier than no edge (test at {cfg.edge_false_alarm_trades:g})"
        )
        metrics = _metrics(figures) | {"edge_statistic": edge, "edge_scale": scale}
        return Alarm(reason=reason, metrics=metrics, below_peak=False)
    if peak_at is not None:
        state.edge_statistic = state.below_peak = 0.0
        reason = (
            f"{fall:.1f} σ below its peak (stop at {cfg.peak_drawdown:g} σ): "
            "suspended until its paper trades or an operator bring it back"
        )
        metrics = _metrics(figures) | {"below_peak": fall, "edge_scale": scale}
        return Alarm(reason=reason, metrics=metrics, below_peak=True)
    state.edge_statistic, state.below_peak = edge, fall
    return None


def probation_ends(
    cfg: LifecycleConfig,
    state: HealthState,
    figures: Figures | None,
    paper: PaperTrades | None,
    now_ms: int,
) -> str | None:
    """Whether an automatic suspension ends now: the paper trades' words when they
    end it, "" when the clock does, None when it goes on. Each batch of paper trades is
    judged once, in order (``paper_batches``): its verdict is kept in ``state``."""
    if state.actor != "system" or state.suspended_at_ms is None:
        return None
    for batch, judged in paper_batches(cfg, state.paper_judged, paper):
        state.paper_judged = judged
        verdict = paper_verdict(figures, batch, cfg.paper_significance)
        if verdict is not None:
            state.paper_verdict = verdict[0]
            if verdict[0]:
                return verdict[1]
    if (
        state.paper_verdict is None
        and not state.stopped_below_peak
        and state.suspensions <= cfg.timer_probations
    ):
        return "" if _probation_due(cfg, state, now_ms) else None
    return None


def paper_batches(
    cfg: LifecycleConfig, judged: tuple[float, float], paper: PaperTrades | None
) -> Iterator[tuple[tuple[float, float], tuple[float, float]]]:
    """The batches of ``paper`` not judged yet, oldest first, as (wins, outcomes) of the
    batch and (wins, outcomes) judged once it is: from one batch end to the next, each at
    least ``paper_trades`` long (ends of a smaller batch size, kept from before a config
    change, are merged); the outcomes after the last end wait for their batch to fill,
    unless the record has no ends for them (one kept from before they were recorded)."""
    if paper is None:
        return
    start_wins, start_n = judged
    for n, wins in (*paper.batch_ends, (paper.outcomes, paper.wins)):
        if n - start_n >= cfg.paper_trades:
            yield (wins - start_wins, n - start_n), (wins, n)
            start_wins, start_n = wins, n


def _probation_due(cfg: LifecycleConfig, state: HealthState, now_ms: int) -> bool:
    # Only automatic suspensions go on probation: one set by an operator stays until
    # an operator lifts it.
    if state.actor != "system" or state.suspended_at_ms is None:
        return False
    waited = now_ms - state.suspended_at_ms
    hours = cfg.probation_after_hours
    if hours is not None:
        return hours > 0 and waited >= round(hours * HOUR_MS)
    trades = cfg.probation_after_trades
    pace = state.suspended_pace_ms
    if trades > 0 and pace is None:
        # A suspension without a pace (one from a snapshot or journal older than the
        # trade clock) ends on the clock it was made under.
        return waited >= LEGACY_PROBATION_HOURS * HOUR_MS
    return trades > 0 and pace is not None and waited >= trades * pace


def probation_words(cfg: LifecycleConfig, state: HealthState, hours: float) -> str:
    """Why the clock ended a suspension of ``hours``, for the reason of its probation."""
    lasted = lasted_words(hours)
    if cfg.probation_after_hours is not None:
        return f"suspended {lasted} (probation after {cfg.probation_after_hours:g} h)"
    if state.suspended_pace_ms is None:
        return f"suspended {lasted} (no pace of its trades known: the clock of before)"
    return f"suspended {lasted}, the time it took to make {cfg.probation_after_trades} trades"


def lasted_words(hours: float) -> str:
    """A suspension's length for a reason: in hours from one on, in minutes or seconds
    below (on minute bars a suspension of twelve seconds read "0.0 h")."""
    # Rounded down: 59.99 minutes is not "60.0 min", nor 59.99 seconds "60 s".
    if hours >= 1.0:
        return f"{math.floor(hours * 10.0) / 10.0:.1f} h"
    if hours * 60.0 >= 1.0:
        return f"{math.floor(hours * 600.0) / 10.0:.1f} min"
    return f"{math.floor(hours * 3600.0):.0f} s"
