"""Strategy lifecycle: active → degraded → suspended → retired, assessed on recent figures.

Every automatic transition is one row of ``TRANSITIONS``; an operator's
``force_status`` may set any status. Time-based rules read ``now_ms`` passed in by the
caller (event time in a replay, the daemon's clock live), never the wall clock, so the
same input gives the same transitions.

The figures judged are each strategy's recent window per unit of size (the performance
model's ``recent_by_strategy``), so alphad's own sizing does not change its verdict.
Evidence is counted in trades, not in cycles: a breach counts as another violation only
once ``recount_share`` of the window is new since the last one counted, and a strategy
on probation is judged on the trades it made since probation began.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated, Any, cast

import msgspec
from msgspec import Meta

from alphad.actors.errors import BadInput
from alphad.actors.exact import binomial_at_least, binomial_at_most
from alphad.actors.figures import Figures, figures_of, fingerprint, pnl_scale
from alphad.actors.sequential import MIN_TRADES as EDGE_MIN_TRADES
from alphad.actors.sequential import cusum, edge_scale, threshold
from alphad.actors.weighting_config import StrategyConfig
from alphad.protocol.messages import STATUSES, Status

HOUR_MS = 3_600_000
LEGACY_PROBATION_HOURS = 72
"""The probation of a suspension made before probation was counted in trades."""

TRANSITIONS: dict[tuple[str, str], str] = {
    ("active", "degraded"): "a soft breach: PSR below psr_floor, win rate below "
    "win_rate_floor, or max drawdown over the soft limit",
    ("active", "suspended"): "a hard breach: max drawdown over the hard limit, or the edge "
    "test's alarm (a one-sided CUSUM on pnl per unit of size)",
    ("degraded", "active"): "every threshold cleared by the hysteresis margin in "
    "recovery_checks consecutive assessments",
    ("degraded", "suspended"): "max_violations consecutive violations, each on a window "
    "mostly renewed since the last (the one that degraded it counts), a hard breach, the "
    "edge test's alarm, or any breach on probation",
    ("suspended", "degraded"): "probation, after an automatic suspension: as soon as its "
    "paper trades since the suspension win significantly more often than it needs to break "
    "even; or, for its first timer_probations suspensions and unless its paper trades "
    "significantly fall short, after the time it took to make probation_after_trades trades "
    "(unless that is 0)",
    ("suspended", "retired"): "right after the retire_after_suspensions-th automatic suspension",
}
"""Every automatic transition and its rule; nothing else happens without an operator.

``force_status`` may set any status from any status.
"""

Fraction = Annotated[float, Meta(ge=0.0, le=1.0)]
AverageTrades = Annotated[float, Meta(gt=0.0, le=1e6)]
Count = Annotated[int, Meta(ge=1, le=1000)]


class LifecycleConfig(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """``[lifecycle]``: thresholds on the recent window (docs/optimization.md)."""

    min_trades: Annotated[int, Meta(ge=1, le=100_000)] = 50
    # Low enough for trend followers, which often win a third of their trades or less;
    # expectancy and profit factor judge the edge, this floor catches a collapse.
    win_rate_floor: Fraction = 0.25
    # The soft breach of the edge: PSR below this floor, i.e. at least 1 - psr_floor sure
    # that the per-trade Sharpe ratio is negative. The sign of a noisy window's expectancy
    # is no evidence: a real edge shows a negative one a sixth of the time.
    psr_floor: Fraction = 0.05
    # Drawdown limits in average trades: max drawdown / mean |pnl| of the window. A
    # strategy without edge reaches about 12 over 100 trades, one with a real edge 20 or
    # more in a bad stretch (docs/replay.md); one losing steadily gets past 30.
    soft_drawdown: AverageTrades = 30.0
    hard_drawdown: AverageTrades = 60.0
    # How far a degraded strategy must clear each threshold to count as recovered
    # (fractions for rates and profit factor, average trades × margin for expectancy).
    hysteresis: Annotated[float, Meta(ge=0.0, le=0.5)] = 0.05
    recovery_checks: Count = 3
    # At least 2: the assessment that degrades a strategy is its first violation, and a
    # soft breach alone never suspends an active strategy in one go.
    max_violations: Annotated[int, Meta(ge=2, le=1000)] = 2
    # A breached assessment counts as another violation only once this share of the
    # recent window is trades made since the last violation counted: one bad stretch is
    # one violation, however many cycles see it.
    recount_share: Annotated[float, Meta(gt=0.0, le=1.0)] = 1.0
    # An automatic suspension ends in degraded (reduced size, judged on its new trades
    # only) after the time the strategy took, at its own pace, to make this many trades;
    # 0: it lasts until an operator lifts it. Counted in its trades, so the same setting
    # means the same on minute and on daily bars. Without probation a strategy with a
    # real edge suspended in a bad spell never trades again (docs/replay.md).
    probation_after_trades: Annotated[int, Meta(ge=0, le=1_000_000)] = 20
    # Deprecated: probation after this many hours of the clock, as before
    # probation_after_trades; when set it replaces probation_after_trades.
    probation_after_hours: Annotated[float, Meta(ge=0.0, le=1e5)] | None = None
    retire_after_suspensions: Count = 3
    # A suspension ends on evidence: the outcomes bots report for the signals refused
    # while the strategy was suspended (paper trades, record_signal_outcome). It ends when
    # a batch of them wins significantly (one-sided exact binomial test at
    # paper_significance) more often than the strategy's record says it needs to break
    # even; never on the clock after a batch that significantly fell short of it.
    # Without such evidence only the first timer_probations automatic suspensions end on
    # the probation clock: a strategy that keeps failing stays out until its paper trades
    # or an operator bring it back.
    timer_probations: Annotated[int, Meta(ge=0, le=1000)] = 1
    # Paper trades are judged in batches of paper_trades, each batch once: a test run
    # again on every new outcome would find an edge by chance far more often than stated.
    paper_trades: Annotated[int, Meta(ge=1, le=100_000)] = 20
    paper_significance: Annotated[float, Meta(gt=0.0, le=0.5)] = 0.05
    # The edge test (actors/sequential.py): the per-trade loss, in standard deviations of
    # the pnl per unit of size, worth suspending a strategy for (0: off), and the mean
    # number of trades of a strategy without edge between two false alarms.
    edge_loss: Annotated[float, Meta(ge=0.0, le=10.0)] = 0.3
    edge_false_alarm_trades: Annotated[float, Meta(ge=2.0, le=1e9)] = 1000.0
    # The per-regime lifecycle (actors/regime_lifecycle.py): each strategy also judged
    # on its trades in each regime, by the same rules, and suspended in a regime where
    # it fails (its signals there refused) while it trades on elsewhere. Off by default:
    # on the calibration corpus it did not beat the whole-strategy lifecycle alone
    # (docs/regimes.md#per-regime-lifecycle).
    per_regime: bool = False
    # The trades in a regime its judgement needs ([strategies.NAME.regimes.REGIME]
    # min_trades overrides it).
    regime_min_trades: Annotated[int, Meta(ge=1, le=100_000)] = 30

    def __post_init__(self) -> None:
        if self.soft_drawdown > self.hard_drawdown:
            raise ValueError(
                f"soft_drawdown {self.soft_drawdown:g} is over hard_drawdown {self.hard_drawdown:g}"
            )


class Transition(msgspec.Struct, kw_only=True):
    """One status change, with the metrics that drove it (journaled and alerted)."""

    strategy: str
    old: str
    new: str
    reason: str
    actor: str  # "system" or the operator's name
    ts_ms: int
    metrics: dict[str, Any] = msgspec.field(default_factory=dict)
    # The regime of a per-regime transition (actors/regime_lifecycle.py); None for the
    # strategy's own.
    regime: str | None = None


# The reasons of a strategy's status before its first judged window.
_NOT_YET_JUDGED = frozenset(("new strategy", "configured"))


class HealthState(msgspec.Struct, kw_only=True):
    """One strategy's lifecycle record."""

    status: Status = "active"
    since_ms: int = 0
    reason: str = "new strategy"
    actor: str = "system"  # who set the current status
    violations: Annotated[int, Meta(ge=0)] = 0  # consecutive violations (counted breaches)
    # The strategy's trade count (``Figures.seen``) when its last violation was counted.
    counted_at: Annotated[int, Meta(ge=0)] = 0
    # Its trade count when probation began; until its window is all newer trades, only
    # the trades after it are judged. None off probation.
    probation_from: Annotated[int, Meta(ge=0)] | None = None
    recoveries: Annotated[int, Meta(ge=0)] = 0  # consecutive assessments clear by the margin
    suspensions: Annotated[int, Meta(ge=0)] = 0  # automatic suspensions, toward retirement
    suspended_at_ms: int | None = None
    # The recent window last assessed (trades, total pnl, drawdowns): a cycle without a
    # new trade brings no new evidence and is not counted again.
    evidence: tuple[float, float, float, float] | None = None
    # The edge test's statistic and the trade count it has read up to.
    edge_statistic: Annotated[float, Meta(ge=0.0)] = 0.0
    edge_read: Annotated[int, Meta(ge=0)] = 0
    # The wins and outcomes of its paper record judged so far in this suspension: each
    # batch of paper_trades is tested once, never again as it grows.
    paper_judged: tuple[float, float] = (0.0, 0.0)
    # The last verdict of a batch in this suspension (False: it fell short), None before.
    paper_verdict: bool | None = None
    # When the strategy was first seen, for its pace (time per trade); None in a
    # snapshot older than the pace: set at the next assessment.
    first_ms: int | None = None
    # Its trade count at the last assessment, and the time it took per trade when it was
    # last suspended automatically (the clock of probation).
    seen: Annotated[int, Meta(ge=0)] = 0
    suspended_pace_ms: float | None = None


class Assessment(msgspec.Struct, kw_only=True):
    """What one recent window says about a strategy."""

    soft: list[str]  # soft breaches, in words
    hard: str | None  # the hard breach, in words
    recovered: bool  # every threshold cleared by the hysteresis margin
    figures: Figures
    soft_limit: float  # the drawdown limits applied, in pnl units
    hard_limit: float

    def metrics(self) -> dict[str, Any]:
        """The figures and limits for the journal (built only for a transition)."""
        metrics = _metrics(self.figures)
        metrics["soft_drawdown_limit"] = self.soft_limit
        metrics["hard_drawdown_limit"] = self.hard_limit
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
        return True, f"{record}, above the {need:.0%} it needs to break even (p = {above:.3f})"
    below = binomial_at_most(wins, outcomes, need)
    if below <= significance:
        return False, f"{record}, below the {need:.0%} it needs to break even (p = {below:.3f})"
    return None


def _amount(value: float) -> str:
    """A pnl amount for a reason: two decimals, or three significant digits if tiny or huge."""
    if value == 0 or 0.01 <= abs(value) < 1e9:
        return f"{value:.2f}"
    return f"{value:.3g}"


def _metrics(figures: Figures) -> dict[str, Any]:
    """The window's figures for the journal: no NaN or infinity in JSON."""
    row = msgspec.structs.asdict(figures)
    del row["pnls"]
    return {
        k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()
    }


def _times(log_ratio: float) -> str:
    """A likelihood ratio from its log, for a reason: ``1,234``, or ``10^412`` past what
    a float holds (pnls of almost no spread make the evidence astronomic, not an error)."""
    if log_ratio < 46.0:  # below 1e20
        return f"{math.exp(log_ratio):,.0f}"
    return f"10^{log_ratio / math.log(10):.0f}" if math.isfinite(log_ratio) else "infinitely"


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


class LifecycleModel:
    """Statuses of every strategy and the counters behind them."""

    def __init__(
        self,
        config: LifecycleConfig,
        strategies: Mapping[str, StrategyConfig],
        overrides: Mapping[str, LifecycleConfig] | None = None,
    ) -> None:
        self.config = config
        self.limits = dict(strategies)
        # strategy -> the thresholds it is judged by instead of ``config`` (the
        # per-regime lifecycle's [strategies.NAME.regimes.REGIME]).
        self.overrides = dict(overrides or {})
        self.states: dict[str, HealthState] = {
            name: HealthState(reason="configured") for name in sorted(strategies)
        }
        # Off-switch: no automatic transitions while off; force_status still works.
        self.enabled = True
        # The figures each strategy was last assessed on (off probation). Figures are
        # shared and never modified, so the same object is the same evidence: a cycle
        # skips it without taking its fingerprint.
        self._assessed: dict[str, Figures] = {}

    def register(self, strategy: str, now_ms: int) -> bool:
        """Start tracking a strategy as active; False if already known."""
        if strategy in self.states:
            return False
        self.states[strategy] = HealthState(since_ms=now_ms, first_ms=now_ms)
        return True

    def status(self, strategy: str) -> str:
        """The strategy's status; "active" for one never seen."""
        state = self.states.get(strategy)
        return state.status if state is not None else "active"

    def statuses(self) -> dict[str, str]:
        """Every known strategy's status, sorted by name."""
        return {name: state.status for name, state in sorted(self.states.items())}

    def forget(self, strategy: str) -> str | None:
        """Stop tracking a strategy (``forget_strategy``); its last status, None if unknown."""
        self._assessed.pop(strategy, None)
        state = self.states.pop(strategy, None)
        return state.status if state is not None else None

    # ------------------------------------------------------------------ assessment

    def drawdown_limits(self, strategy: str, figures: Figures) -> tuple[float, float]:
        """Soft and hard drawdown limits in pnl units for this window.

        The strategy's absolute limits when configured, else the relative ones times the
        window's mean |pnl|.
        """
        scale = pnl_scale(figures)
        limits = self.limits.get(strategy)
        soft = limits.soft_drawdown if limits is not None else None
        hard = limits.hard_drawdown if limits is not None else None
        return (
            soft if soft is not None else self.config.soft_drawdown * scale,
            hard if hard is not None else self.config.hard_drawdown * scale,
        )

    def check(self, strategy: str, figures: Figures) -> Assessment:
        """Soft and hard breaches of one recent window, and whether it clears the margin.

        A NaN figure breaches nothing but never counts as cleared either, so bad data
        can keep a strategy degraded but cannot bring it back.
        """
        cfg = self.overrides.get(strategy, self.config)
        margin = cfg.hysteresis
        scale = pnl_scale(figures)
        soft_limit, hard_limit = self.drawdown_limits(strategy, figures)
        expectancy, win_rate, drawdown = figures.expectancy, figures.win_rate, figures.max_drawdown
        profit_factor, psr = figures.profit_factor, figures.judged_psr
        soft = []
        if psr is not None and psr < cfg.psr_floor:
            soft.append(f"PSR {psr:.2f} < {cfg.psr_floor:.2f}")
        if win_rate < cfg.win_rate_floor:
            soft.append(f"win rate {win_rate:.0%} < {cfg.win_rate_floor:.0%}")
        if drawdown > soft_limit:
            soft.append(f"drawdown {_amount(drawdown)} > {_amount(soft_limit)}")
        hard = (
            f"drawdown {_amount(drawdown)} > hard limit {_amount(hard_limit)}"
            if drawdown > hard_limit
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

    def assess(
        self,
        recent: Mapping[str, Figures],
        now_ms: int,
        paper: Mapping[str, tuple[float, float]] | None = None,
    ) -> list[Transition]:
        """Apply the rules of ``TRANSITIONS`` to every strategy, in name order.

        ``recent``: strategy → recent-window figures per unit of size, with ``seen`` and
        ``pnls`` (``PerformanceModel.recent_by_strategy``); strategies seen here for the
        first time are registered. ``now_ms`` is the clock of the probation rule;
        ``paper``: strategy → (wins, outcomes) of its paper trades since its suspension.
        """
        if not self.enabled:
            return []
        cfg = self.config
        transitions: list[Transition] = []
        for strategy in sorted(set(self.states) | set(recent)):
            state = self.states.get(strategy)
            if state is None:
                state = self.states[strategy] = HealthState(since_ms=now_ms, first_ms=now_ms)
            if state.first_ms is None:
                state.first_ms = now_ms
                if state.since_ms == 0:
                    # A configured strategy, judged from its first cycle on: its status
                    # holds since then, not since 1970.
                    state.since_ms = now_ms
            if state.status == "retired":
                continue
            figures = recent.get(strategy)
            if state.status == "suspended":
                words = self._probation_ends(state, figures, (paper or {}).get(strategy), now_ms)
                if words is not None:
                    hours = (now_ms - (state.suspended_at_ms or 0)) / HOUR_MS
                    state.violations = state.recoveries = 0
                    state.probation_from = figures.seen if figures is not None else 0
                    # The suspension's evidence is not forgotten: the edge test starts
                    # probation halfway to its alarm, so a strategy still losing is
                    # caught again in about half the trades.
                    state.edge_statistic = max(state.edge_statistic, self._edge_level / 2.0)
                    transitions.append(
                        self._move(
                            strategy,
                            state,
                            "degraded",
                            f"probation: {words or self._probation_words(state, hours)}",
                            now_ms,
                            {"suspended_at_ms": state.suspended_at_ms, "hours_suspended": hours},
                        )
                    )
                continue
            if figures is not None:
                state.seen = figures.seen
            if figures is not None and figures.seen > state.edge_read:
                alarm = self._edge_test(state, figures)
                if alarm is not None:
                    self._assessed[strategy] = figures
                    transitions += self._suspend(strategy, state, alarm[0], now_ms, alarm[1])
                    continue
            if state.probation_from is not None:
                if figures is not None:
                    figures = self._since_probation(state, figures)
            elif figures is not None:
                if figures is self._assessed.get(strategy):
                    continue
                self._assessed[strategy] = figures
            if figures is None or figures.trades < self.overrides.get(strategy, cfg).min_trades:
                continue
            evidence = fingerprint(figures)
            if evidence == state.evidence:
                continue
            state.evidence = evidence
            found = self.check(strategy, figures)
            if found.hard is not None:
                # The soft drawdown line would only repeat the hard one.
                others = [b for b in found.soft if not b.startswith("drawdown")]
                reason = "; ".join([found.hard, *others])
                transitions += self._suspend(strategy, state, reason, now_ms, found.metrics())
            elif found.soft:
                state.recoveries = 0
                renewed = figures.seen - state.counted_at
                if state.violations and renewed < cfg.recount_share * figures.trades:
                    continue  # the breach already counted, on much the same trades
                state.violations += 1
                state.counted_at = figures.seen
                breaches = "; ".join(found.soft)
                if state.status == "active":
                    metrics = found.metrics() | {"violations": state.violations}
                    transitions.append(
                        self._move(strategy, state, "degraded", breaches, now_ms, metrics)
                    )
                elif state.probation_from is not None:
                    # On probation the breach that suspended it has already counted: a
                    # strategy let back in at reduced size gets no second warning.
                    metrics = found.metrics() | {"violations": state.violations}
                    reason = f"breach on probation: {breaches}"
                    transitions += self._suspend(strategy, state, reason, now_ms, metrics)
                elif state.violations >= cfg.max_violations:
                    metrics = found.metrics() | {"violations": state.violations}
                    reason = f"{_ordinal(state.violations)} violation in a row: {breaches}"
                    transitions += self._suspend(strategy, state, reason, now_ms, metrics)
            else:
                if state.status == "active" and state.reason in _NOT_YET_JUDGED:
                    # Say what the healthy status rests on, not "new strategy" for ever.
                    state.reason = (
                        "within every limit since its first judged window "
                        f"({figures.trades} trades)"
                    )
                # Only a window that clears every threshold by the margin ends a run of
                # violations: one that merely scrapes past them is no recovery.
                if found.recovered:
                    state.violations = 0
                if state.status == "degraded":
                    state.recoveries = state.recoveries + 1 if found.recovered else 0
                    if state.recoveries >= cfg.recovery_checks:
                        state.recoveries = 0
                        reason = (
                            f"recovered: every threshold cleared by the {cfg.hysteresis:g} "
                            f"margin in {cfg.recovery_checks} assessments in a row"
                        )
                        transitions.append(
                            self._move(strategy, state, "active", reason, now_ms, found.metrics())
                        )
        return transitions

    @staticmethod
    def _since_probation(state: HealthState, figures: Figures) -> Figures:
        """The figures of the trades made since probation began; the whole window (and
        the end of probation's own judgement) once every trade in it is newer."""
        new = figures.seen - (state.probation_from or 0)
        if new >= figures.trades:
            state.probation_from = None
            return figures
        return figures_of(figures.pnls[-new:] if new > 0 else (), seen=figures.seen)

    @property
    def _edge_level(self) -> float:
        return threshold(self.config.edge_false_alarm_trades)

    def _edge_test(self, state: HealthState, figures: Figures) -> tuple[str, dict[str, Any]] | None:
        """Read the trades since the last reading into the edge test; the reason and the
        journal's metrics of its alarm, or None. The statistic starts over after an alarm."""
        cfg = self.config
        if cfg.edge_loss <= 0.0 or figures.trades < EDGE_MIN_TRADES:
            return None
        new = min(figures.seen - state.edge_read, len(figures.pnls))
        state.edge_read = figures.seen
        scale = edge_scale(figures.pnls)
        if not scale > 0.0 or new <= 0:
            return None
        state.edge_statistic = cusum(
            state.edge_statistic, figures.pnls[-new:], scale, cfg.edge_loss
        )
        level = self._edge_level
        if state.edge_statistic < level:
            return None
        statistic, state.edge_statistic = state.edge_statistic, 0.0
        reason = (
            f"lost its edge: losing {cfg.edge_loss:g} σ a trade is {_times(statistic)} "
            f"times likelier than no edge (test at {cfg.edge_false_alarm_trades:g})"
        )
        return reason, _metrics(figures) | {"edge_statistic": statistic, "edge_scale": scale}

    def _probation_ends(
        self,
        state: HealthState,
        figures: Figures | None,
        paper: tuple[float, float] | None,
        now_ms: int,
    ) -> str | None:
        """Whether an automatic suspension ends now: the paper trades' words when they
        end it, "" when the clock does, None when it goes on."""
        if state.actor != "system" or state.suspended_at_ms is None:
            return None
        cfg = self.config
        if paper is not None and paper[1] - state.paper_judged[1] >= cfg.paper_trades:
            batch = (paper[0] - state.paper_judged[0], paper[1] - state.paper_judged[1])
            state.paper_judged = paper
            verdict = paper_verdict(figures, batch, cfg.paper_significance)
            if verdict is not None:
                state.paper_verdict = verdict[0]
                if verdict[0]:
                    return verdict[1]
        if state.paper_verdict is None and state.suspensions <= cfg.timer_probations:
            return "" if self._probation_due(state, now_ms) else None
        return None

    def _probation_due(self, state: HealthState, now_ms: int) -> bool:
        # Only automatic suspensions go on probation: one set by an operator stays until
        # an operator lifts it.
        if state.actor != "system" or state.suspended_at_ms is None:
            return False
        waited = now_ms - state.suspended_at_ms
        hours = self.config.probation_after_hours
        if hours is not None:
            return hours > 0 and waited >= round(hours * HOUR_MS)
        trades = self.config.probation_after_trades
        pace = state.suspended_pace_ms
        if trades > 0 and pace is None:
            # A suspension without a pace (one from a snapshot or journal older than the
            # trade clock) ends on the clock it was made under.
            return waited >= LEGACY_PROBATION_HOURS * HOUR_MS
        return trades > 0 and pace is not None and waited >= trades * pace

    def _probation_words(self, state: HealthState, hours: float) -> str:
        cfg = self.config
        if cfg.probation_after_hours is not None:
            return f"suspended {hours:.1f} h (probation after {cfg.probation_after_hours:g} h)"
        if state.suspended_pace_ms is None:
            return f"suspended {hours:.1f} h (suspended before probation counted trades)"
        return (
            f"suspended {hours:.1f} h, the time it took to make {cfg.probation_after_trades} trades"
        )

    def _suspend(
        self,
        strategy: str,
        state: HealthState,
        reason: str,
        now_ms: int,
        metrics: dict[str, Any],
    ) -> list[Transition]:
        """Suspend, and retire at once on the retire_after_suspensions-th suspension."""
        state.suspensions += 1
        state.suspended_at_ms = now_ms
        state.paper_judged, state.paper_verdict = (0.0, 0.0), None
        if state.first_ms is not None:
            # A strategy suspended before it recorded a trade counts as having made one.
            state.suspended_pace_ms = max(now_ms - state.first_ms, 1) / max(state.seen, 1)
        state.violations = state.recoveries = 0
        state.probation_from = None
        metrics = {**metrics, "suspensions": state.suspensions}
        moves = [self._move(strategy, state, "suspended", reason, now_ms, metrics)]
        if state.suspensions >= self.config.retire_after_suspensions:
            moves.append(
                self._move(
                    strategy,
                    state,
                    "retired",
                    f"suspended {state.suspensions} times "
                    f"(retire after {self.config.retire_after_suspensions})",
                    now_ms,
                    metrics,
                )
            )
        return moves

    def _move(
        self,
        strategy: str,
        state: HealthState,
        new: Status,
        reason: str,
        now_ms: int,
        metrics: dict[str, Any],
        actor: str = "system",
    ) -> Transition:
        old = state.status
        if actor == "system" and (old, new) not in TRANSITIONS:
            # The table is the specification; a move outside it is a bug, never a trade.
            raise RuntimeError(f"automatic transition {old} -> {new} is not in TRANSITIONS")
        state.status = new
        state.since_ms = now_ms
        state.reason = reason
        state.actor = actor
        return Transition(
            strategy=strategy,
            old=old,
            new=new,
            reason=reason,
            actor=actor,
            ts_ms=now_ms,
            metrics=metrics,
        )

    # ------------------------------------------------------------------ operator actions

    def force(
        self, strategy: str, status: str, reason: str, operator: str, now_ms: int
    ) -> Transition:
        """An operator sets any status; the violation and recovery counters start over.

        The suspension count is kept (three strikes stay three strikes), except when the
        strategy leaves retirement: that is a new start. A strategy never seen is
        registered. Raises ``BadInput`` for an unknown status.
        """
        if status not in STATUSES:
            raise BadInput(f"unknown status {status!r}")
        state = self.states.get(strategy)
        if state is None:
            state = self.states[strategy] = HealthState(since_ms=now_ms)
        if state.status == "retired" and status != "retired":
            state.suspensions = 0
        state.violations = state.recoveries = 0
        state.probation_from = None
        state.suspended_at_ms = now_ms if status == "suspended" else None
        return self._move(
            strategy,
            state,
            cast(Status, status),
            reason or f"set by {operator}",
            now_ms,
            {"suspensions": state.suspensions},
            actor=operator,
        )

    def apply_journaled(
        self, strategy: str, status: str, reason: str, actor: str, ts_ms: int
    ) -> None:
        """Apply a status change as the audit trail recorded it.

        For a restart from an older snapshot than the newest (which was unreadable): the
        journaled changes after it are applied again. The counters start over as after
        ``force``; an automatic suspension counts toward retirement.
        """
        if status not in STATUSES:
            return
        state = self.states.get(strategy)
        if state is None:
            state = self.states[strategy] = HealthState(since_ms=ts_ms)
        if state.status == "retired" and status != "retired":
            state.suspensions = 0
        if status == "suspended" and actor == "system":
            state.suspensions += 1
            state.suspended_pace_ms = (
                max(ts_ms - state.first_ms, 1) / max(state.seen, 1)
                if state.first_ms is not None
                else None  # no pace known: the clock of before
            )
        state.violations = state.recoveries = 0
        state.probation_from = None
        state.suspended_at_ms = ts_ms if status == "suspended" else None
        state.paper_judged, state.paper_verdict = (0.0, 0.0), None
        state.status = cast(Status, status)
        state.since_ms = ts_ms
        state.reason = reason
        state.actor = actor

    # ------------------------------------------------------------------ reading

    def health(self, strategy: str | None = None) -> list[dict[str, Any]]:
        """Rows of ``get_health``: one strategy (a default row if never seen) or all."""
        names = [strategy] if strategy is not None else sorted(self.states)
        rows = []
        for name in names:
            state = self.states.get(name) or HealthState(reason="not seen yet")
            rows.append(
                {
                    "strategy": name,
                    "status": state.status,
                    "since_ms": state.since_ms,
                    "reason": state.reason,
                    "violations": state.violations,
                    "suspensions": state.suspensions,
                }
            )
        return rows

    # ------------------------------------------------------------------ state

    def to_state(self) -> dict[str, Any]:
        """Plain data for a snapshot."""
        return {
            "enabled": self.enabled,
            "strategies": {
                name: msgspec.to_builtins(state) for name, state in sorted(self.states.items())
            },
        }

    @classmethod
    def from_state(
        cls,
        config: LifecycleConfig,
        strategies: Mapping[str, StrategyConfig],
        state: Mapping[str, Any],
        overrides: Mapping[str, LifecycleConfig] | None = None,
    ) -> LifecycleModel:
        """Rebuild from ``to_state``; the config's thresholds and limits apply from now on."""
        model = cls(config, strategies, overrides)
        model.enabled = bool(state.get("enabled", True))
        for name, saved in state.get("strategies", {}).items():
            model.states[name] = msgspec.convert(saved, HealthState)
        return model
