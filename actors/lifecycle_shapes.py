"""The lifecycle's shapes: its ``[lifecycle]`` config, the record it keeps of each
strategy, and the ``Transition`` it reports.

Apart from the model (actors/lifecycle.py) because they are formats others hold to: the
config file's keys, the snapshot's ``HealthState`` and the journal's and alerts'
``Transition``; the daemon's config, the optimizer, the engine and the per-regime
lifecycle import them without the rules that move a status.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from msgspec import Meta

from alphad.protocol.messages import Status

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
    # The peak stop (actors/sequential.py ``below_peak``): how far the strategy's equity
    # per unit of size may fall below its peak, in standard deviations of its pnl per
    # trade, before it is suspended until its paper trades or an operator bring it back
    # (never on the clock); 0: off. The scale-free form of a trader's drawdown kill
    # switch: the same setting means the same on minute and daily bars and at any size.
    peak_drawdown: Annotated[float, Meta(ge=0.0, le=1e6)] = 0.0
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


class PaperTrades(msgspec.Struct, frozen=True):
    """A suspended strategy's paper trades since its suspension (``ScorerModel``): wins and
    outcomes so far, and the (outcomes, wins) so far at the end of each batch of
    ``paper_trades`` among them, oldest first, so that every batch is judged by itself
    however many arrive between two cycles (the latest ``PAPER_BATCHES_KEPT``)."""

    wins: float
    outcomes: float
    batch_ends: tuple[tuple[float, float], ...] = ()


PAPER_BATCHES_KEPT = 64
"""Batch ends a paper record keeps: batches older than these, not judged by a cycle, are
judged as one with the oldest kept (more than 64 batches between two cycles)."""


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
    # The recent window last assessed (trades, total pnl, drawdowns) and the strategy's
    # trade count then (0 in a state saved before it was kept): a cycle without a new
    # trade brings no new evidence and is not counted again.
    evidence: tuple[float, float, float, float] | None = None
    evidence_seen: Annotated[int, Meta(ge=0)] = 0
    # The edge test's statistic and the trade count it has read up to.
    edge_statistic: Annotated[float, Meta(ge=0.0)] = 0.0
    edge_read: Annotated[int, Meta(ge=0)] = 0
    # How far its equity per unit of size is below its peak, in σ (the peak stop), and
    # whether its suspension is the peak stop's (which never ends on the clock).
    below_peak: Annotated[float, Meta(ge=0.0)] = 0.0
    stopped_below_peak: bool = False
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
    # Its trade count when an operator brought it back from a suspension or retirement:
    # judged again from its next trade on (None otherwise).
    back_at: Annotated[int, Meta(ge=0)] | None = None
