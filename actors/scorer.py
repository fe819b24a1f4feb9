"""Signal quality: should a signal be taken, and at what size (docs/scoring.md).

quality = confidence × f_confluence × f_regime × f_history, every factor in [0, 1], so
quality never exceeds the bot's own confidence. The scorer answers ``score_signal``
from its own state, inline on the gateway's receive path: weights, statuses and regime
fits are pushed to it after each optimization cycle, outcomes arrive in its mailbox.
"""

from __future__ import annotations

import math
import time
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from alphad.actors.base import TAKE_STATE, Actor, Ask, Handle, encode_in_slices
from alphad.actors.events import UNKNOWN_REGIME, ClosedTrade, SetEnabled, SignalOutcome
from alphad.actors.exact import binomial_at_most, student_t_above
from alphad.actors.figures import Figures
from alphad.actors.market import MarketRegimes, RegimesConfig
from alphad.actors.store import AppendSignal, AppendSignals
from alphad.protocol.messages import BarsTaken, MarketBars, Name, ScoreSignal, SignalScore

Factor = Annotated[float, Meta(ge=0.0, le=1.0)]
Cap = Annotated[int, Meta(ge=1, le=10_000_000)]
NonNegative = Annotated[float, Meta(ge=0.0)]
Positive = Annotated[float, Meta(gt=0.0)]
NonNegativeInt = Annotated[int, Meta(ge=0)]
StoredSetup = tuple[str, str, str, str, NonNegativeInt]

BUCKETS: tuple[float, ...] = (0.0, 0.5, 0.6, 0.7, 0.8, 0.9)
"""Lower edges of the quality buckets of the summary: 0-0.5, 0.5-0.6, ..., 0.9-1.0."""

EXECUTABLE = frozenset(("active", "degraded"))
_STRICTNESS = {"active": 0, "degraded": 1, "suspended": 2, "retired": 3}
"""A strategy's status in a regime counts where it is stricter than its own."""
PAPER = len(BUCKETS)
"""Added to a pending signal's quality bucket when it was refused because its strategy
was suspended: its outcome is a paper trade, the evidence a suspension ends on."""
STATE_VERSION = 2
"""2 added the records by confluence bucket; a version 1 snapshot restores without them."""

SetupKey = tuple[str, str, str, str, int]
"""(strategy, symbol, side, regime, confluence bucket): signals alike enough to share a record."""


class ScorerConfig(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """``[scorer]``: thresholds and shapes of the quality factors and the position size."""

    min_quality: Factor = 0.3
    # f_confluence. "record" (the default): judged by what confluence has predicted for
    # the strategy: 1.0 unless the strategy's outcomes at this confluence bucket are
    # significantly below its own rate, then their Beta posterior over that rate, at least
    # confluence_floor. "target": confluence_floor with no agreeing indicator, rising
    # linearly to 1.0 at confluence_target, whatever the record. Both count every
    # confluence from confluence_target up as confluence_target.
    confluence: Literal["record", "target"] = "target"
    confluence_target: Annotated[int, Meta(ge=1, le=100)] = 3
    confluence_floor: Factor = 0.6
    # f_regime: per-regime caps set by the operator, e.g. {"volatile": 0.8}.
    regime_factors: dict[Name, Factor] = msgspec.field(default_factory=dict)
    # A regime's fit counts once the strategy has this many recent trades in it.
    regime_min_trades: Annotated[int, Meta(ge=1, le=1_000_000)] = 10
    # Shrinks a regime's shortfall toward "fits as well as overall": with n trades in the
    # regime only n / (n + regime_prior_trades) of it counts, so 10 unlucky trades do not
    # condemn a regime.
    regime_prior_trades: Annotated[int, Meta(ge=0, le=1_000_000)] = 20
    # How strongly a regime's shortfall (in units of the strategy's mean |pnl|) lowers it.
    regime_sensitivity: Annotated[float, Meta(ge=0.0, le=100.0)] = 1.0
    regime_floor: Factor = 0.5
    # f_regime and f_history lower a signal's quality only for a shortfall that is
    # significant at this level (one-sided: the regime's expectancy below the strategy's
    # overall, the setup's success rate below the strategy's), so noise in a regime table
    # or a setup's few outcomes refuses no signal. 0.5 counts any shortfall.
    significance: Annotated[float, Meta(gt=0.0, le=0.5)] = 0.1
    # f_history: weight of the strategy's overall success rate, in pseudo-outcomes, in the
    # Beta prior of each setup's success rate.
    prior_strength: Annotated[float, Meta(gt=0.0, le=1_000_000.0)] = 10.0
    history_floor: Factor = 0.5
    # Outcomes remembered per setup and per strategy: past the window each new outcome
    # replaces an average old one, so the rates follow what the market does now.
    setup_window: Annotated[int, Meta(ge=1, le=1_000_000)] = 100
    strategy_window: Annotated[int, Meta(ge=1, le=10_000_000)] = 1_000
    # size_multiplier: the quality scale is size_at_min_quality at min_quality and 1.0 at
    # quality 1.0; a degraded strategy gets degraded_size_factor of an active one's size.
    size_at_min_quality: Factor = 1.0
    max_size_multiplier: Annotated[float, Meta(gt=0.0, le=2.0)] = 2.0
    # 0.65, not 0.5: a first breach is a warning on one window, and a good strategy sees
    # one now and then; at half size those weeks cost whole seeds of the simulations
    # their pnl or drawdown criterion (docs/replay.md).
    degraded_size_factor: Annotated[float, Meta(gt=0.0, lt=1.0)] = 0.65
    # Memory bounds for any input stream; the oldest pending signal and the least recently
    # updated setup or strategy record are forgotten first.
    max_pending_signals: Cap = 50_000
    max_setups: Cap = 100_000
    max_strategies: Cap = 10_000


class Tally:
    """Successes out of outcomes, remembering about the last ``window`` outcomes."""

    __slots__ = ("outcomes", "significant_from", "successes", "unsure_to")

    def __init__(self, successes: float = 0.0, outcomes: float = 0.0) -> None:
        self.successes = successes
        self.outcomes = outcomes
        # What the exact test has found for the record as it is: significantly short of
        # any strategy rate at or above ``significant_from``, not of any at or below
        # ``unsure_to`` (its p-value falls as the rate rises), so scoring recomputes the
        # tail only for a rate between the two.
        self.significant_from = 2.0
        self.unsure_to = -1.0

    def add(self, success: bool, window: int) -> None:
        """Count one outcome; past ``window`` the oldest ones fade out proportionally."""
        if self.outcomes >= window:
            # Scaling both counts keeps the observed rate and frees room for one outcome:
            # the count stays at ``window`` and the rate becomes an exponential average.
            keep = (window - 1) / self.outcomes
            self.successes *= keep
            self.outcomes = float(window - 1)
        if success:
            self.successes += 1.0
        self.outcomes += 1.0
        self.significant_from, self.unsure_to = 2.0, -1.0

    def shrink_to(self, window: int) -> None:
        """Fit a record kept under a larger window (a config change between restarts)."""
        if self.outcomes > window:
            self.successes *= window / self.outcomes
            self.outcomes = float(window)
            self.significant_from, self.unsure_to = 2.0, -1.0


class SetupTally(Tally):
    """A setup's record; it keeps its key so that pending signals of a known setup share
    its strings instead of each holding copies (most of a pending signal's memory)."""

    __slots__ = ("key",)

    def __init__(self, key: SetupKey, successes: float = 0.0, outcomes: float = 0.0) -> None:
        super().__init__(successes, outcomes)
        self.key = key


class ScorerState(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The snapshot layout of ``ScorerModel.to_state``, validated on load."""

    version: int
    enabled: bool
    counter: int
    statuses: dict[str, str]
    weights: dict[str, float]
    multipliers: dict[str, float]
    regime_multipliers: dict[str, dict[str, float]]
    regime_fit: dict[str, dict[str, Factor]]
    # [setup, successes, outcomes], least recently updated first
    setups: list[tuple[StoredSetup, NonNegative, Positive]]
    # [strategy, successes, outcomes], least recently updated first
    strategies: list[tuple[str, NonNegative, Positive]]
    # [strategy, confluence bucket, successes, outcomes] (version 2)
    confluence: list[tuple[str, NonNegativeInt, NonNegative, Positive]] = []
    # [signal_id, [setup, quality bucket (+ PAPER for a paper trade)]], oldest first
    pending: list[tuple[str, tuple[StoredSetup, NonNegativeInt]]]
    # strategy -> [wins, outcomes] of its paper trades since it was last suspended
    paper: dict[str, tuple[NonNegative, NonNegative]] = {}
    # regime -> strategy -> status in the regime, where not active (per_regime), and
    # [strategy, regime, wins, outcomes] of the paper trades of those suspended there
    regime_statuses: dict[str, dict[str, str]] = {}
    regime_paper: list[tuple[str, str, NonNegative, NonNegative]] = []
    scored: int
    executed: int
    quality_sum: float
    evicted_signals: int
    bucket_scored: list[int]
    bucket_executed: list[int]
    bucket_outcomes: list[int]
    bucket_successes: list[int]


class ScorerModel:
    """The scoring state: allocation pushed by the engine, regime fits, outcomes of setups.

    ``enabled = False`` is the operator's "scorer off": quality = confidence, execute
    follows only the strategy's status, size = the weight multiplier under the usual caps.
    """

    def __init__(self, config: ScorerConfig, id_prefix: str) -> None:
        # Structs built in code skip the Meta bounds; check them once here so that the
        # bounds of the replies hold for any caller, not only for a config file.
        self.config = msgspec.convert(msgspec.structs.asdict(config), ScorerConfig)
        self.id_prefix = id_prefix
        self.enabled = True
        self.counter = 0
        self.statuses: dict[str, str] = {}
        self.weights: dict[str, float] = {}
        self.multipliers: dict[str, float] = {}
        self.regime_multipliers: dict[str, dict[str, float]] = {}
        # regime -> strategy -> learned fit; only fits below 1.0 are kept.
        self.regime_fit: dict[str, dict[str, float]] = {}
        # (regime, strategy) -> the figures overall and in the regime its fit was last
        # learned from, and the fit: figures are shared and never modified, so the same
        # two objects give the same fit and a cycle recomputes only the fits that moved.
        self._fits: dict[tuple[str, str], tuple[Figures | None, Figures, float]] = {}
        # Least recently updated first, so eviction drops the stalest record.
        self.setups: OrderedDict[SetupKey, SetupTally] = OrderedDict()
        self.strategy_tallies: OrderedDict[str, Tally] = OrderedDict()
        # (strategy, confluence bucket) -> its record, for f_confluence by record. At most
        # confluence_target + 1 per strategy; dropped with the strategy's record.
        self.confluence_tallies: dict[tuple[str, int], Tally] = {}
        # signal_id -> (setup, quality bucket), oldest first. An OrderedDict because a
        # plain dict's "delete the first key" slows down as the deleted slots pile up.
        self.pending: OrderedDict[str, tuple[SetupKey, int]] = OrderedDict()
        # strategy -> [wins, outcomes] of the outcomes reported for its signals refused
        # while it was suspended, since its suspension; only suspended strategies.
        self.paper: dict[str, list[float]] = {}
        # regime -> strategy -> its status in the regime where not active, and the paper
        # record of each (strategy, regime) suspended in the regime, as ``paper``.
        self.regime_statuses: dict[str, dict[str, str]] = {}
        self.regime_paper: dict[tuple[str, str], list[float]] = {}
        self.scored = 0
        self.executed = 0
        self.quality_sum = 0.0
        self.evicted_signals = 0
        self.bucket_scored = [0] * len(BUCKETS)
        self.bucket_executed = [0] * len(BUCKETS)
        self.bucket_outcomes = [0] * len(BUCKETS)
        self.bucket_successes = [0] * len(BUCKETS)
        # Hoisted out of score(): f_confluence by confluence bucket, and the size slope.
        config = self.config
        target = config.confluence_target
        floor = config.confluence_floor
        self._confluence: tuple[float, ...] = (
            *(floor + (1.0 - floor) * c / target for c in range(target)),
            1.0,
        )
        self._by_record = config.confluence == "record"
        span = 1.0 - config.min_quality
        self._size_slope = (1.0 - config.size_at_min_quality) / span if span > 0.0 else 0.0

    # ------------------------------------------------------------------ the hot path

    def score(self, request: ScoreSignal) -> SignalScore:
        """Score one signal and keep it pending until its outcome; a few µs, no I/O."""
        cfg = self.config
        strategy = request.strategy
        regime = request.regime
        status = self.statuses.get(strategy, "active")
        in_regime = ""
        if regime is not None and self.regime_statuses:
            there = self.regime_statuses.get(regime, {}).get(strategy)
            if there is not None and _STRICTNESS[there] > _STRICTNESS.get(status, 0):
                status, in_regime = there, f" in regime {regime}"
        confidence = request.confidence
        if not 0.0 <= confidence <= 1.0:
            # The wire refuses these; a request built in-process is clamped (NaN to 0)
            # so the bounds hold for every caller.
            confidence = 1.0 if confidence > 1.0 else 0.0
        confluence = request.confluence
        target = cfg.confluence_target
        bucket_c = target if confluence >= target else (confluence if confluence > 0 else 0)
        key: SetupKey = (
            strategy,
            request.symbol,
            request.side,
            UNKNOWN_REGIME if regime is None else regime,
            bucket_c,
        )
        tally = self.setups.get(key)
        if tally is not None:
            key = tally.key
        reasons: list[str] = []
        quality = confidence
        if self.enabled:
            f_confluence = (
                self._confluence_record(strategy, bucket_c)
                if self._by_record
                else self._confluence[bucket_c]
            )
            if f_confluence < 1.0:
                quality *= f_confluence
                reasons.append(f"confluence {confluence} of {target}")
            if regime is not None:
                fits = self.regime_fit.get(regime)
                f_regime = 1.0 if fits is None else fits.get(strategy, 1.0)
                cap = cfg.regime_factors.get(regime)
                if cap is not None and cap < f_regime:
                    quality *= cap
                    reasons.append(f"regime {regime} capped at {cap:.2f} by config")
                elif f_regime < 1.0:
                    quality *= f_regime
                    reasons.append(f"regime {regime} fits this strategy poorly ({f_regime:.2f})")
            if tally is not None:
                # history_factor() inlined: this is the hot path.
                overall = self.strategy_tallies.get(strategy)
                if overall is None:
                    won, outcomes = 1.0, 2.0  # as _strategy_record()
                else:
                    won, outcomes = overall.successes, overall.outcomes
                if tally.successes * outcomes < won * tally.outcomes and self._shortfall_counts(
                    tally, won / outcomes
                ):
                    base = won / outcomes
                    k = cfg.prior_strength
                    f_history = (tally.successes + k * base) / (tally.outcomes + k) / base
                    if f_history < cfg.history_floor:
                        f_history = cfg.history_floor
                    elif f_history > 1.0:  # rounding of a setup within an ulp of average
                        f_history = 1.0
                    quality *= f_history
                    reasons.append(
                        f"similar setups won {tally.successes / tally.outcomes:.0%}"
                        f" of {tally.outcomes:.0f}"
                    )
        if status not in EXECUTABLE:
            execute = False
            reasons.append(f"strategy {status}{in_regime}")
        elif self.enabled and quality < cfg.min_quality:
            execute = False
            # Rounded down so a refused 0.497 never reads "0.50 below minimum 0.50".
            shown = math.floor(quality * 100.0) / 100.0
            reasons.append(f"quality {shown:.2f} below minimum {cfg.min_quality:.2f}")
        else:
            execute = True
        size = 0.0
        if execute:
            multiplier = self.multipliers.get(strategy, 1.0)
            if regime is not None:
                by_regime = self.regime_multipliers.get(regime)
                if by_regime is not None:
                    multiplier = by_regime.get(strategy, multiplier)
            if self.enabled:
                quality_scale = cfg.size_at_min_quality + self._size_slope * (
                    quality - cfg.min_quality
                )
                size = multiplier * quality_scale
            else:
                size = multiplier
            if size > cfg.max_size_multiplier:
                size = cfg.max_size_multiplier
                reasons.append(f"size capped at {size:g}")
            # After the cap, so a degraded strategy is always sized below an active one.
            if status == "degraded":
                size *= cfg.degraded_size_factor
                reasons.append(f"strategy degraded{in_regime}: size × {cfg.degraded_size_factor:g}")
        signal_id = request.signal_id
        if signal_id is None:
            self.counter += 1
            signal_id = f"{self.id_prefix}-{self.counter}"
        bucket_q = bisect_right(BUCKETS, quality) - 1
        self.scored += 1
        self.quality_sum += quality
        self.bucket_scored[bucket_q] += 1
        if execute:
            self.executed += 1
            self.bucket_executed[bucket_q] += 1
        pending = self.pending
        if len(pending) >= cfg.max_pending_signals and signal_id not in pending:
            pending.popitem(last=False)
            self.evicted_signals += 1
        pending[signal_id] = (key, bucket_q + PAPER if status == "suspended" else bucket_q)
        return SignalScore(
            signal_id=signal_id,
            quality=quality,
            execute=execute,
            size_multiplier=size,
            weight=self.weights.get(strategy, 1.0),
            status=status,
            reasons=reasons,
            regime=regime,
            regime_source="bot" if regime is not None else None,
        )

    # ------------------------------------------------------------------ the factors

    def confluence_factor(self, confluence: int, strategy: str | None = None) -> float:
        """f_confluence of a signal of ``strategy`` (by record) with this many agreeing
        indicators; the fixed line of ``confluence = "target"``."""
        target = self.config.confluence_target
        bucket = target if confluence >= target else max(confluence, 0)
        if self._by_record:
            return 1.0 if strategy is None else self._confluence_record(strategy, bucket)
        return self._confluence[bucket]

    def _confluence_record(self, strategy: str, bucket: int) -> float:
        """What this confluence bucket has predicted for the strategy. The fixed line is
        the prior: the bucket's success rate is expected at the line's factor × the
        strategy's rate, worth prior_strength outcomes; the bucket's own outcomes move it
        from there (a Beta posterior). f_confluence = posterior / the strategy's rate,
        within [confluence_floor, 1]: a bucket that wins as often as its strategy comes
        back to 1.0, one that wins less stays low, whatever the number of indicators."""
        prior = self._confluence[bucket]
        tally = self.confluence_tallies.get((strategy, bucket))
        overall = self.strategy_tallies.get(strategy)
        if tally is None or overall is None:
            return prior
        base = overall.successes / overall.outcomes
        if not base > 0.0:
            return prior
        k = self.config.prior_strength
        factor = (tally.successes + k * base * prior) / (tally.outcomes + k) / base
        floor = self.config.confluence_floor
        return floor if factor < floor else (1.0 if factor > 1.0 else factor)

    def regime_factor(self, strategy: str, regime: str | None) -> float:
        """f_regime: the learned fit of the strategy in the regime, under the config cap."""
        if regime is None:
            return 1.0
        fit = self.regime_fit.get(regime, {}).get(strategy, 1.0)
        cap = self.config.regime_factors.get(regime, 1.0)
        return min(fit, cap)

    def base_rate(self, strategy: str) -> float:
        """The strategy's success rate over its remembered outcomes (0.5 with none yet)."""
        won, outcomes = self._strategy_record(strategy)
        return won / outcomes

    def _strategy_record(self, strategy: str) -> tuple[float, float]:
        tally = self.strategy_tallies.get(strategy)
        if tally is None:
            return 1.0, 2.0  # no record yet: even odds
        return tally.successes, tally.outcomes

    def posterior(self, key: SetupKey) -> float:
        """Beta posterior mean of a setup's success rate; the prior is Beta(k·p, k·(1 − p))
        with p the strategy's base rate and k = prior_strength."""
        base = self.base_rate(key[0])
        k = self.config.prior_strength
        tally = self.setups.get(key)
        if tally is None:
            return base
        return (tally.successes + k * base) / (tally.outcomes + k)

    def history_factor(self, key: SetupKey) -> float:
        """f_history = posterior / base rate when the setup has done worse than its
        strategy, else 1.0; at least history_floor. An average setup keeps its quality."""
        tally = self.setups.get(key)
        if tally is None:
            return 1.0
        won, outcomes = self._strategy_record(key[0])
        # Cross-multiplied rates, so that an exactly average setup is exactly neutral
        # whatever the rounding of a division.
        if not tally.successes * outcomes < won * tally.outcomes:
            return 1.0
        if not self._shortfall_counts(tally, won / outcomes):
            return 1.0
        return min(1.0, max(self.config.history_floor, self.posterior(key) / (won / outcomes)))

    def _shortfall_counts(self, tally: Tally, base: float) -> bool:
        """Whether a record's success rate is significantly below the strategy's ``base``
        rate: an exact one-sided binomial test at ``significance`` on its remembered
        outcomes, P(X ≤ successes | outcomes, base) ≤ significance. The normal
        approximation it replaces flagged a setup after one or two losses."""
        if base <= 0.0 or base >= 1.0:
            return True  # a strategy that always wins or always loses: any shortfall shows
        if base >= tally.significant_from:
            return True
        if base <= tally.unsure_to:
            return False
        if binomial_at_most(tally.successes, tally.outcomes, base) <= self.config.significance:
            tally.significant_from = base
            return True
        tally.unsure_to = base
        return False

    def setup_of(self, request: ScoreSignal) -> SetupKey:
        """The setup a signal belongs to (its regime is ``unknown`` when it has none)."""
        target = self.config.confluence_target
        bucket = target if request.confluence >= target else max(request.confluence, 0)
        regime = UNKNOWN_REGIME if request.regime is None else request.regime
        return (request.strategy, request.symbol, request.side, regime, bucket)

    # ------------------------------------------------------------------ learning

    def record_outcome(self, signal_id: str, success: bool) -> bool:
        """Learn a scored signal's outcome; False if it is unknown, evicted or already done."""
        entry = self.pending.pop(signal_id, None)
        if entry is None:
            return False
        key, bucket_q = entry
        if bucket_q >= PAPER:
            bucket_q -= PAPER
            for paper in (self.paper.get(key[0]), self.regime_paper.get((key[0], key[3]))):
                if paper is not None:
                    paper[0] += success
                    paper[1] += 1.0
        cfg = self.config
        setups = self.setups
        tally = setups.get(key)
        if tally is None:
            if len(setups) >= cfg.max_setups:
                setups.popitem(last=False)
            tally = setups[key] = SetupTally(key)
        else:
            setups.move_to_end(key)
        tally.add(success, cfg.setup_window)
        strategies = self.strategy_tallies
        strategy = key[0]
        overall = strategies.get(strategy)
        if overall is None:
            if len(strategies) >= cfg.max_strategies:
                dropped, _ = strategies.popitem(last=False)
                for bucket in range(cfg.confluence_target + 1):
                    self.confluence_tallies.pop((dropped, bucket), None)
            overall = strategies[strategy] = Tally()
        else:
            strategies.move_to_end(strategy)
        overall.add(success, cfg.strategy_window)
        by_confluence = self.confluence_tallies.get((strategy, key[4]))
        if by_confluence is None:
            by_confluence = self.confluence_tallies[(strategy, key[4])] = Tally()
        by_confluence.add(success, cfg.strategy_window)
        self.bucket_outcomes[bucket_q] += 1
        if success:
            self.bucket_successes[bucket_q] += 1
        return True

    def detach(self, strategy: str) -> tuple[Any, ...]:
        """Take out a strategy's setups, record, pending signals and regime fits
        (``forget_strategy``); ``attach`` puts them back."""
        setups = {k: t for k, t in self.setups.items() if k[0] == strategy}
        pending = {i: p for i, p in self.pending.items() if p[0][0] == strategy}
        for key in setups:
            del self.setups[key]
        for signal_id in pending:
            del self.pending[signal_id]
        tally = self.strategy_tallies.pop(strategy, None)
        fits = {r: t.pop(strategy) for r, t in self.regime_fit.items() if strategy in t}
        in_regimes = {
            k: self.regime_paper.pop(k) for k in list(self.regime_paper) if k[0] == strategy
        }
        paper = self.paper.pop(strategy, None)
        return strategy, setups, pending, tally, fits, paper, in_regimes

    def attach(self, detached: tuple[Any, ...]) -> None:
        """Put back what ``detach`` took out (a forget undone)."""
        strategy, setups, pending, tally, fits, paper, in_regimes = detached
        if paper is not None:
            self.paper[strategy] = paper
        self.regime_paper.update(in_regimes)
        self.setups.update(setups)
        self.pending.update(pending)
        if tally is not None:
            self.strategy_tallies[strategy] = tally
        for regime, fit in fits.items():
            self.regime_fit.setdefault(regime, {})[strategy] = fit

    def set_allocation(
        self,
        statuses: Mapping[str, str],
        weights: Mapping[str, float],
        multipliers: Mapping[str, float],
        regime_multipliers: Mapping[str, Mapping[str, float]],
        regime_statuses: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        """Take statuses, effective weights and weight multipliers (adaptive / base, global
        and per regime), and the statuses in regimes, after an optimization cycle or an
        operator's change. A strategy suspended now and not before, in all regimes or in
        one, starts a new paper record."""
        self._take_regime_statuses(regime_statuses or {})
        before, paper = self.statuses, self.paper
        for strategy, status in statuses.items():
            if status != "suspended":
                paper.pop(strategy, None)
            elif before.get(strategy) != "suspended" or strategy not in paper:
                paper[strategy] = [0.0, 0.0]
        for strategy in [s for s in paper if s not in statuses]:
            del paper[strategy]
        self.statuses = dict(statuses)
        self.weights = {k: _finite(v, 1.0) for k, v in weights.items()}
        self.multipliers = {k: _multiplier(v) for k, v in multipliers.items()}
        self.regime_multipliers = {
            regime: {k: _multiplier(v) for k, v in table.items()}
            for regime, table in regime_multipliers.items()
        }

    def _take_regime_statuses(self, statuses: Mapping[str, Mapping[str, str]]) -> None:
        before, paper = self.regime_statuses, self.regime_paper
        suspended = set()
        for regime, table in statuses.items():
            for strategy, status in table.items():
                if status == "suspended":
                    key = (strategy, regime)
                    suspended.add(key)
                    if before.get(regime, {}).get(strategy) != "suspended" or key not in paper:
                        paper[key] = [0.0, 0.0]
        for key in [k for k in paper if k not in suspended]:
            del paper[key]
        self.regime_statuses = {regime: dict(table) for regime, table in statuses.items()}

    def regime_paper_record(self) -> dict[str, dict[str, tuple[float, float]]]:
        """regime -> strategy -> (wins, outcomes) of the paper trades in the regime of each
        strategy suspended in it, since that suspension (``paper_record``'s, by regime)."""
        record: dict[str, dict[str, tuple[float, float]]] = {}
        for (strategy, regime), (wins, n) in sorted(self.regime_paper.items()):
            record.setdefault(regime, {})[strategy] = (wins, n)
        return record

    def paper_record(self) -> dict[str, tuple[float, float]]:
        """strategy -> (wins, outcomes) of the paper trades of each suspended strategy
        since its suspension: what the lifecycle ends a suspension on."""
        return {strategy: (wins, n) for strategy, (wins, n) in self.paper.items()}

    def set_regime_fit(
        self, overall: Mapping[str, Figures], by_regime: Mapping[str, Mapping[str, Figures]]
    ) -> None:
        """Learn f_regime from each strategy's recent results per regime (regime ->
        strategy -> figures) against its recent results overall (strategy -> figures)."""
        fit: dict[str, dict[str, float]] = {}
        known = self._fits
        fits: dict[tuple[str, str], tuple[Figures | None, Figures, float]] = {}
        for regime, table in by_regime.items():
            for strategy, figures in table.items():
                whole = overall.get(strategy)
                key = (regime, strategy)
                last = known.get(key)
                if last is not None and last[0] is whole and last[1] is figures:
                    factor = last[2]
                else:
                    factor = self.regime_fit_of(whole, figures)
                fits[key] = (whole, figures, factor)
                if factor < 1.0:
                    fit.setdefault(regime, {})[strategy] = factor
        self._fits = fits
        self.regime_fit = fit

    def regime_fit_of(self, overall: Figures | None, in_regime: Figures) -> float:
        """1 + sensitivity × n / (n + prior trades) × min(0, (E_regime − E_overall) / mean|pnl|),
        at least regime_floor; 1.0 without enough evidence."""
        cfg = self.config
        trades = in_regime.trades
        if overall is None or trades < cfg.regime_min_trades:
            return 1.0
        scale = overall.mean_abs_pnl
        if not (scale > 0.0 and math.isfinite(scale)):
            return 1.0
        gap = (in_regime.expectancy - overall.expectancy) / scale
        if not gap < 0.0:  # also the NaN of a broken figure: no evidence, neutral
            return 1.0
        # The shortfall counts only when significant: in standard errors of the regime's
        # mean (its standard deviation, expectancy / Sharpe, over √trades), against
        # Student's t with trades − 1 degrees of freedom, since that standard deviation
        # is itself measured on the regime's few trades.
        sharpe = in_regime.sharpe
        if sharpe is not None and sharpe != 0.0:
            error = abs(in_regime.expectancy / sharpe) / math.sqrt(trades)
            shortfall = overall.expectancy - in_regime.expectancy
            if not student_t_above(shortfall / error, trades - 1) <= cfg.significance:
                return 1.0
        evidence = trades / (trades + cfg.regime_prior_trades)
        return max(cfg.regime_floor, 1.0 + cfg.regime_sensitivity * evidence * gap)

    # ------------------------------------------------------------------ reports and state

    def summary(self) -> dict[str, Any]:
        """Scored, executed, mean quality, outcomes and success rate by quality bucket."""
        buckets = []
        for i, low in enumerate(BUCKETS):
            high = BUCKETS[i + 1] if i + 1 < len(BUCKETS) else 1.0
            outcomes = self.bucket_outcomes[i]
            buckets.append(
                {
                    "bucket": f"{low:.1f}-{high:.1f}",
                    "scored": self.bucket_scored[i],
                    "executed": self.bucket_executed[i],
                    "outcomes": outcomes,
                    "success_rate": self.bucket_successes[i] / outcomes if outcomes else None,
                }
            )
        outcomes = sum(self.bucket_outcomes)
        return {
            "enabled": self.enabled,
            "scored": self.scored,
            "executed": self.executed,
            "mean_quality": self.quality_sum / self.scored if self.scored else None,
            "outcomes": outcomes,
            "success_rate": sum(self.bucket_successes) / outcomes if outcomes else None,
            "pending": len(self.pending),
            "evicted": self.evicted_signals,
            "setups": len(self.setups),
            "buckets": buckets,
        }

    def to_state(self) -> dict[str, Any]:
        """Plain msgpack-serializable data for a snapshot (the layout of ``ScorerState``)."""
        return self.state_header() | {
            "setups": list(self.state_setups()),
            "pending": list(self.pending.items()),
        }

    def state_header(self) -> dict[str, Any]:
        """``to_state`` without its two long lists, setups and pending signals."""
        return {
            "version": STATE_VERSION,
            "enabled": self.enabled,
            "counter": self.counter,
            "statuses": dict(self.statuses),
            "weights": dict(self.weights),
            "multipliers": dict(self.multipliers),
            "regime_multipliers": {k: dict(v) for k, v in self.regime_multipliers.items()},
            "regime_fit": {k: dict(v) for k, v in self.regime_fit.items()},
            "strategies": [(s, t.successes, t.outcomes) for s, t in self.strategy_tallies.items()],
            "confluence": [
                (s, b, t.successes, t.outcomes) for (s, b), t in self.confluence_tallies.items()
            ],
            "scored": self.scored,
            "executed": self.executed,
            "quality_sum": self.quality_sum,
            "evicted_signals": self.evicted_signals,
            "bucket_scored": list(self.bucket_scored),
            "bucket_executed": list(self.bucket_executed),
            "bucket_outcomes": list(self.bucket_outcomes),
            "bucket_successes": list(self.bucket_successes),
            "paper": {s: tuple(record) for s, record in self.paper.items()},
            "regime_statuses": {k: dict(v) for k, v in self.regime_statuses.items()},
            "regime_paper": [(s, r, w, n) for (s, r), (w, n) in self.regime_paper.items()],
        }

    def state_pending(self, signal_ids: Iterable[str]) -> Iterator[tuple[str, Any]]:
        """The pending signals of ``to_state`` among ``signal_ids``, each made when asked.

        A signal evicted since the ids were listed is left out, as it would be from the
        next snapshot; a signal scored since then is not among them.
        """
        pending = self.pending
        for signal_id in signal_ids:
            entry = pending.get(signal_id)
            if entry is not None:
                yield signal_id, entry

    def state_setups(self) -> Iterator[tuple[SetupKey, float, float]]:
        """The setups of ``to_state``, each made when asked. Scoring only reads them; only
        an outcome changes them."""
        for key, tally in self.setups.items():
            yield key, tally.successes, tally.outcomes

    @classmethod
    def from_state(cls, config: ScorerConfig, id_prefix: str, state: dict[str, Any]) -> ScorerModel:
        """Rebuild from ``to_state``; raises ``ValueError`` on a snapshot it cannot read.
        Records beyond the config's current caps or windows are trimmed, newest kept."""
        try:
            saved = msgspec.convert(state, ScorerState)
        except msgspec.ValidationError as exc:
            raise ValueError(f"scorer state: {exc}") from None
        if saved.version not in (1, STATE_VERSION):
            raise ValueError(f"scorer state: version {saved.version}, expected {STATE_VERSION}")
        if any(len(b) != len(BUCKETS) for b in _buckets_of(saved)):
            raise ValueError(f"scorer state: quality buckets are not {len(BUCKETS)} long")
        if (
            any(row[1] > row[2] for row in (*saved.setups, *saved.strategies))
            or any(row[2] > row[3] for row in saved.confluence)
            or any(wins > outcomes for wins, outcomes in saved.paper.values())
            or any(row[2] > row[3] for row in saved.regime_paper)
        ):
            raise ValueError("scorer state: a record has more successes than outcomes")
        if any(entry[1] >= PAPER + len(BUCKETS) for _, entry in saved.pending):
            raise ValueError("scorer state: a pending signal has no quality bucket")
        model = cls(config, id_prefix)
        model.enabled = saved.enabled
        model.counter = saved.counter
        model.set_allocation(
            saved.statuses,
            saved.weights,
            saved.multipliers,
            saved.regime_multipliers,
            saved.regime_statuses,
        )
        model.regime_fit = saved.regime_fit
        for strategy, (wins, outcomes) in saved.paper.items():
            if strategy in model.paper:
                model.paper[strategy] = [wins, outcomes]
        for strategy, regime, wins, outcomes in saved.regime_paper:
            if (strategy, regime) in model.regime_paper:
                model.regime_paper[(strategy, regime)] = [wins, outcomes]
        for key, successes, outcomes in saved.setups[-config.max_setups :]:
            tally = model.setups[key] = SetupTally(key, successes, outcomes)
            tally.shrink_to(config.setup_window)
        for strategy, successes, outcomes in saved.strategies[-config.max_strategies :]:
            overall = model.strategy_tallies[strategy] = Tally(successes, outcomes)
            overall.shrink_to(config.strategy_window)
        for strategy, bucket, successes, outcomes in saved.confluence:
            if strategy in model.strategy_tallies and bucket <= config.confluence_target:
                by_confluence = model.confluence_tallies[(strategy, bucket)] = Tally(
                    successes, outcomes
                )
                by_confluence.shrink_to(config.strategy_window)
        for sid, (setup, bucket_q) in saved.pending[-config.max_pending_signals :]:
            known = model.setups.get(setup)
            model.pending[sid] = (setup if known is None else known.key, bucket_q)
        model.scored = saved.scored
        model.executed = saved.executed
        model.quality_sum = saved.quality_sum
        model.evicted_signals = saved.evicted_signals
        (
            model.bucket_scored,
            model.bucket_executed,
            model.bucket_outcomes,
            model.bucket_successes,
        ) = _buckets_of(saved)
        return model


def _buckets_of(saved: ScorerState) -> tuple[list[int], list[int], list[int], list[int]]:
    return (
        saved.bucket_scored,
        saved.bucket_executed,
        saved.bucket_outcomes,
        saved.bucket_successes,
    )


def _finite(value: float, default: float) -> float:
    return value if math.isfinite(value) else default


def _multiplier(value: float) -> float:
    # A broken upstream figure must not size a position: NaN or ±inf falls back to
    # neutral, a negative multiplier to nothing; the size cap applies afterwards anyway.
    if not math.isfinite(value):
        return 1.0
    return value if value > 0.0 else 0.0


# ----------------------------------------------------------------------------- the actor


class SetAllocation(msgspec.Struct, frozen=True, kw_only=True):
    """Tell: statuses, effective weights and weight multipliers after a change."""

    statuses: dict[str, str]
    weights: dict[str, float]
    multipliers: dict[str, float]
    regime_multipliers: dict[str, dict[str, float]]
    regime_statuses: dict[str, dict[str, str]] = msgspec.field(default_factory=dict)


class SetRegimeFit(msgspec.Struct, frozen=True):
    """Tell: recent figures overall and per regime, to learn how strategies fit regimes."""

    overall: Mapping[str, Figures]
    by_regime: Mapping[str, Mapping[str, Figures]]


class FlushSignals(msgspec.Struct, frozen=True):
    """Tell: hand the scored signals kept so far to the store (sent every second)."""


class DetachSignals(Ask[tuple[Any, ...]], frozen=True):
    """Ask: take out a strategy's records (``ScorerModel.detach``); answered with them."""

    strategy: str


class AttachSignals(Ask[None], frozen=True):
    """Ask: put back what a ``DetachSignals`` took out (a forget undone)."""

    detached: Any


class SignalSummary(Ask[dict[str, Any]], frozen=True):
    """Ask: the signal quality summary of ``get_report``."""


class PaperRecord(Ask[dict[str, tuple[float, float]]], frozen=True):
    """Ask: the paper trades of the suspended strategies (``ScorerModel.paper_record``)."""


class RegimePaperRecord(Ask[dict[str, dict[str, tuple[float, float]]]], frozen=True):
    """Ask: the paper trades of the strategies suspended in a regime
    (``ScorerModel.regime_paper_record``)."""


class ScorerStats(msgspec.Struct, frozen=True, kw_only=True):
    """The scorer's counters, as ``ScorerActor.stats()`` took them."""

    signals_not_kept: int  # scored signals whose journal rows the store's mailbox refused


class ScorerInline(msgspec.Struct, frozen=True, kw_only=True):
    """The scorer's synchronous interface, called in the gateway's receive callback.

    ``score_signal`` is the hot path: answered with no task, no mailbox and no await
    between receive and reply. That is safe because the daemon runs on one event loop
    and these calls never await: the scorer's other state changes only while it handles
    a message, so each call sees it between two messages, as an ask would. What they
    change themselves (pending signals, the journal rows waiting for a flush, the bars)
    is the scorer's, changed only here and by its own messages.
    """

    score: Callable[[ScoreSignal], SignalScore]  # score_signal
    add_bars: Callable[[MarketBars], BarsTaken]  # market_bars
    knows_signal: Callable[[str], bool]  # record_signal_outcome: pending or scored lately?
    # A trade's regime as the bars read it at its entry: (regime, source, detected).
    resolve_regime: Callable[[str, int, str | None], tuple[str | None, str | None, str | None]]


class ScorerActor(Actor):
    """Answers ``score_signal`` inline from its own state; learns outcomes from its mailbox."""

    name = "scorer"

    def __init__(
        self,
        model: ScorerModel,
        store: Handle[Actor],
        *,
        last_trade_seq: int = 0,
        last_outcome_seq: int = 0,
        mailbox_size: int = 8192,
        market: MarketRegimes | None = None,
    ) -> None:
        super().__init__(mailbox_size)
        self.model = model
        self.store = store
        # The bars and detected regimes, fed by market_bars on the receive path.
        self.market = market or MarketRegimes(RegimesConfig())
        self.last_trade_seq = last_trade_seq
        self.last_outcome_seq = last_outcome_seq
        self.signals_not_kept = 0
        self.flush_every = 1024
        self._signal_rows: list[AppendSignal] = []

    def stats(self) -> ScorerStats:
        """The scorer's counters for the metrics."""
        return ScorerStats(signals_not_kept=self.signals_not_kept)

    def inline(self) -> ScorerInline:
        """What the gateway may call synchronously (see ``ScorerInline``)."""
        return ScorerInline(
            score=self.score,
            add_bars=self.add_bars,
            knows_signal=self.knows_signal,
            resolve_regime=self.market.resolve,
        )

    def score(self, request: ScoreSignal) -> SignalScore:
        """The hot path: score from the model's state; the journal row waits for a flush."""
        market = self.market
        ts_ms = request.ts_ms
        if not market.symbols and market.keeps_bot:
            # No bar was ever taken and the bot's label counts: the request as sent.
            reply = self.model.score(request)
            detected = None
            source = reply.regime_source
        else:
            if ts_ms is None:
                ts_ms = time.time_ns() // 1_000_000
            regime, source, detected = market.resolve(request.symbol, ts_ms, request.regime)
            scored = request
            if regime != request.regime:
                scored = msgspec.structs.replace(request, regime=regime)
            reply = self.model.score(scored)
            reply.regime_source = source
        rows = self._signal_rows
        rows.append(
            AppendSignal(
                reply.signal_id or "",
                ts_ms if ts_ms is not None else time.time_ns() // 1_000_000,
                request.strategy,
                request.symbol,
                request.side,
                request.confidence,
                request.confluence,
                request.regime,
                reply.quality,
                reply.execute,
                reply.size_multiplier,
                reply.weight,
                reply.status,
                "; ".join(reply.reasons),
                detected,
                source,
            )
        )
        if len(rows) >= self.flush_every:
            self.flush_signals()
        return reply

    def add_bars(self, request: MarketBars) -> BarsTaken:
        """``market_bars``, answered on the receive path: checked, taken, read."""
        return self.market.add(request)

    def knows_signal(self, signal_id: str) -> bool:
        """Whether the signal is pending or scored since the last flush to the store (the
        store's journal knows the others)."""
        if signal_id in self.model.pending:
            return True
        return any(row.signal_id == signal_id for row in self._signal_rows)

    def flush_signals(self) -> None:
        """Hand the scored signals to the store in one message (one insert per batch)."""
        rows = self._signal_rows
        if not rows:
            return
        self._signal_rows = []
        try:
            self.store.tell(AppendSignals(rows))
        except Exception:
            # The answers were given; only their journal rows are lost, and counted.
            self.signals_not_kept += len(rows)

    async def on_stop(self) -> None:
        # The store stops after the scorer: the last signals still reach it.
        self.flush_signals()

    def learn_trade(self, trade: ClosedTrade) -> None:
        """A committed trade that carries a signal_id is that signal's outcome."""
        if trade.seq <= self.last_trade_seq:
            return
        self.last_trade_seq = trade.seq
        if trade.signal_id is not None:
            self.model.record_outcome(trade.signal_id, trade.pnl > 0)

    def learn_outcome(self, outcome: SignalOutcome) -> None:
        """A committed ``record_signal_outcome``."""
        if outcome.seq <= self.last_outcome_seq:
            return
        self.last_outcome_seq = outcome.seq
        self.model.record_outcome(outcome.signal_id, outcome.success)

    async def handle(self, message: Any) -> Any:
        model = self.model
        match message:
            case ClosedTrade():
                self.learn_trade(message)
                return None
            case SignalOutcome():
                self.learn_outcome(message)
                return None
            case SetAllocation():
                model.set_allocation(
                    message.statuses,
                    message.weights,
                    message.multipliers,
                    message.regime_multipliers,
                    message.regime_statuses,
                )
                return None
            case SetRegimeFit():
                model.set_regime_fit(message.overall, message.by_regime)
                return None
            case SetEnabled():
                model.enabled = message.enabled
                return None
            case FlushSignals():
                self.flush_signals()
                return None
            case DetachSignals():
                return model.detach(message.strategy)
            case AttachSignals():
                model.attach(message.detached)
                return None
            case PaperRecord():
                return model.paper_record()
            case RegimePaperRecord():
                return model.regime_paper_record()
            case SignalSummary():
                summary = model.summary()
                summary["not_kept"] = self.signals_not_kept
                return summary
            case _ if message is TAKE_STATE:
                # Tens of thousands of setups and pending signals: encoded in slices, the loop
                # answering score_signal between them. Scoring adds pending signals and
                # counts, so those are taken first, at one instant; outcomes, which change
                # the setups, wait in the mailbox until the snapshot is taken.
                state = model.state_header()
                pending = list(model.pending)  # the keys only: copying the items takes 20 ms
                state["setups"] = await encode_in_slices(model.state_setups())
                state["pending"] = await encode_in_slices(model.state_pending(pending))
                return {
                    "model": state,
                    "last_trade_seq": self.last_trade_seq,
                    "last_outcome_seq": self.last_outcome_seq,
                    # The bars held, a series a slice (actors/market.py).
                    "market": await encode_in_slices(self.market.state_series(), every=1),
                }
        raise TypeError(f"scorer cannot handle {type(message).__name__}")
