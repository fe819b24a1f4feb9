"""The pure scorer: ``ScorerModel`` scores a signal from its state and learns outcomes.

quality = confidence × f_confluence × f_regime × f_history (docs/scoring.md). The model
holds what scoring reads (the allocation pushed by the engine, the regime fits, the
records of setups), the hot path that reads it, ``score``, and beside it the factors
one at a time. Apart from the actor (actors/scorer.py) because it has no I/O and no
asyncio: the actor feeds it, the replay runs it offline. Its settings, records, regime
fits and snapshot are in the scorer_* modules beside it.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import msgspec

from alphad.actors.events import STRICTNESS, UNKNOWN_REGIME
from alphad.actors.exact import binomial_at_most
from alphad.actors.figures import Figures, shown_below
from alphad.actors.lifecycle_shapes import LifecycleConfig, PaperTrades
from alphad.actors.scorer_config import ScorerConfig
from alphad.actors.scorer_fit import Fits, learn_regime_fits
from alphad.actors.scorer_state import read_state, restore, state_header, state_setups, summary_of
from alphad.actors.scorer_tallies import BUCKETS, PAPER, PaperTally, SetupKey, SetupTally, Tally
from alphad.actors.store_messages import JournaledSignal
from alphad.protocol.messages import ScoreSignal, SignalScore
from alphad.protocol.wire import SIZE_MIN

EXECUTABLE = frozenset(("active", "degraded"))


class PlacedOutcome(NamedTuple):
    """An outcome committed after the snapshot, for ``restore_scored``: how many signals
    the scorer had scored when it came (None: not recorded), its signal, whether that
    signal was pending then (None: not recorded), and a trade's strategy and symbol (None
    for a ``record_signal_outcome``; ``record_outcome``'s ``owner``)."""

    scored: int | None
    signal_id: str
    success: bool
    pending: bool | None
    owner: tuple[str, str] | None = None


def _place(outcome: PlacedOutcome) -> int:
    return outcome.scored or 0


class ScorerModel:
    """The scoring state: allocation pushed by the engine, regime fits, outcomes of setups.

    ``enabled = False`` is the operator's "scorer off": quality = confidence, execute
    follows only the strategy's status, size = the weight multiplier under the usual caps.
    """

    def __init__(
        self,
        config: ScorerConfig,
        id_prefix: str,
        paper_batch: int = LifecycleConfig().paper_trades,
    ) -> None:
        # Structs built in code skip the Meta bounds; check them once here so that the
        # bounds of the replies hold for any caller, not only for a config file.
        self.config = msgspec.convert(msgspec.structs.asdict(config), ScorerConfig)
        self.id_prefix = id_prefix
        # The lifecycle's paper_trades: the batch each paper record marks the ends of.
        self.paper_batch = paper_batch
        self.enabled = True
        self.counter = 0
        self.statuses: dict[str, str] = {}
        self.weights: dict[str, float] = {}
        self.multipliers: dict[str, float] = {}
        self.regime_multipliers: dict[str, dict[str, float]] = {}
        # regime -> strategy -> learned fit; only fits below 1.0 are kept.
        self.regime_fit: dict[str, dict[str, float]] = {}
        # Every fit with the figures it was learned from (``scorer_fit.Fits``).
        self._fits: Fits = {}
        # The fits a cycle learned, waiting for its journal's commit (``stage_regime_fit``):
        # in the snapshot of that commit, served only once it is on disk.
        self.staged_fit: tuple[dict[str, dict[str, float]], Fits] | None = None
        # Least recently updated first, so eviction drops the stalest record.
        self.setups: OrderedDict[SetupKey, SetupTally] = OrderedDict()
        self.strategy_tallies: OrderedDict[str, Tally] = OrderedDict()
        # (strategy, confluence bucket) -> its record, for f_confluence by record. At most
        # confluence_target + 1 per strategy; dropped with the strategy's record.
        self.confluence_tallies: dict[tuple[str, int], Tally] = {}
        # signal_id -> (setup, quality bucket), oldest first. An OrderedDict because a
        # plain dict's "delete the first key" slows down as the deleted slots pile up.
        self.pending: OrderedDict[str, tuple[SetupKey, int]] = OrderedDict()
        # strategy -> the outcomes reported for its signals refused while it was
        # suspended, since its suspension; only suspended strategies.
        self.paper: dict[str, PaperTally] = {}
        # regime -> strategy -> its status in the regime where not active, and the paper
        # record of each (strategy, regime) suspended in the regime, as ``paper``.
        self.regime_statuses: dict[str, dict[str, str]] = {}
        self.regime_paper: dict[tuple[str, str], PaperTally] = {}
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
            if there is not None and STRICTNESS[there] > STRICTNESS.get(status, 0):
                status, in_regime = there, f" in regime {regime}"
        confidence = request.confidence
        if not 0.0 < confidence <= 1.0:
            # The wire refuses these; a request built in-process is clamped (NaN to 0)
            # so the bounds hold for every caller; -0.0 (which the wire lets through as
            # 0) is 0.0, so that no quality reads "-0.00".
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
                reasons.append(
                    f"confluence {confluence}: {f_confluence:.2f} by its record"
                    if self._by_record
                    else f"confluence {confluence} of {target}"
                )
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
            shown, minimum = shown_below(quality, cfg.min_quality)
            reasons.append(f"quality {shown} below minimum {minimum}")
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
            if size < SIZE_MIN:
                # A trade this small cannot be reported (nor placed, in most markets):
                # not executed, so that a bot never holds an execute it cannot report.
                execute = False
                reasons.append(f"size {size:.3g} below the smallest {SIZE_MIN:g}")
                size = 0.0
        signal_id = request.signal_id
        if signal_id is None:
            self.counter += 1
            signal_id = f"{self.id_prefix}-{self.counter}"
        self._count(signal_id, key, quality, execute, status)
        return SignalScore(
            signal_id=signal_id,
            quality=quality,
            execute=execute,
            size_multiplier=size,
            # 0 where the strategy may not trade, a regime's suspension included.
            weight=self.weights.get(strategy, 1.0) if status in EXECUTABLE else 0.0,
            status=status,
            reasons=reasons,
            regime=regime,
            regime_source="bot" if regime is not None else None,
        )

    def _count(
        self, signal_id: str, key: SetupKey, quality: float, execute: bool, status: str
    ) -> None:
        """Count a scored signal and hold it pending until its outcome."""
        bucket_q = bisect_right(BUCKETS, quality) - 1
        self.scored += 1
        self.quality_sum += quality
        self.bucket_scored[bucket_q] += 1
        if execute:
            self.executed += 1
            self.bucket_executed[bucket_q] += 1
        pending = self.pending
        if len(pending) >= self.config.max_pending_signals and signal_id not in pending:
            pending.popitem(last=False)
            self.evicted_signals += 1
        pending[signal_id] = (key, bucket_q + PAPER if status == "suspended" else bucket_q)

    def restore_scored(
        self,
        signals: Iterable[JournaledSignal],
        outcomes: Sequence[PlacedOutcome] = (),
        forgets: Sequence[tuple[int, str]] = (),
    ) -> int:
        """Count and hold pending again the signals the journal kept from after the
        snapshot this model was restored from (in their order), as when they were scored,
        and learn the ``outcomes`` committed after it at their place among them; the
        number of signals taken. The count goes on from the last one's place even where
        the journal lost some (a full mailbox).

        Each outcome is learned after the signals scored before it came (its ``scored``)
        and before the next, so the pending signals are forgotten and learned as live;
        one whose signal was not pending when it came teaches nothing, as live; one
        without a place (recorded before schema 6) is learned after them all. Each of
        ``forgets`` (the count of signals scored then, a strategy) takes the strategy's
        records out at its place (``detach``), as ``forget_strategy`` did live."""
        restoring = ScoredRestore(self, outcomes, forgets)
        restoring.take(signals)
        return restoring.finish()

    def _learn_placed(self, outcome: PlacedOutcome) -> None:
        if outcome.pending is not False:
            self.record_outcome(outcome.signal_id, outcome.success, outcome.owner)

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
        return self._setup_key(
            request.strategy, request.symbol, request.side, request.regime, request.confluence
        )

    def _setup_key(
        self, strategy: str, symbol: str, side: str, regime: str | None, confluence: int
    ) -> SetupKey:
        # ``score`` builds the same key inline: it is the hot path.
        target = self.config.confluence_target
        bucket = target if confluence >= target else max(confluence, 0)
        return (strategy, symbol, side, UNKNOWN_REGIME if regime is None else regime, bucket)

    # ------------------------------------------------------------------ learning

    def record_outcome(
        self, signal_id: str, success: bool, owner: tuple[str, str] | None = None
    ) -> bool:
        """Learn a scored signal's outcome; False if it is unknown, evicted or already done,
        or if ``owner`` (a trade's strategy and symbol) is not the signal's: a trade naming
        another's signal is not its outcome, which stays awaited."""
        entry = self.pending.get(signal_id)
        if entry is None or (owner is not None and owner != entry[0][:2]):
            return False
        del self.pending[signal_id]
        key, bucket_q = entry
        if bucket_q >= PAPER:
            bucket_q -= PAPER
            for paper in (self.paper.get(key[0]), self.regime_paper.get((key[0], key[3]))):
                if paper is not None:
                    paper.add(success)
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
                paper[strategy] = PaperTally(self.paper_batch)
                self._unmark_paper(strategy)
        for strategy in [s for s in paper if s not in statuses]:
            del paper[strategy]
        self.statuses = dict(statuses)
        self.weights = {k: _finite(v, 1.0) for k, v in weights.items()}
        self.multipliers = {k: _multiplier(v) for k, v in multipliers.items()}
        self.regime_multipliers = {
            regime: {k: _multiplier(v) for k, v in table.items()}
            for regime, table in regime_multipliers.items()
        }

    def _unmark_paper(self, strategy: str, regime: str | None = None) -> None:
        """A new paper record starts from its suspension on: the signals refused in an
        earlier one (of the strategy, or of it in ``regime``) still waiting for their
        outcomes are no longer paper trades. Their outcomes, coming late, would fill the
        new record with another suspension's evidence; they still teach their setups.
        (One number marks them for both the strategy's record and its regime's, so a new
        suspension of the strategy unmarks those of a regime suspension too: such
        outcomes then count for neither, which can only delay a probation.)"""
        pending = self.pending
        for signal_id, (key, bucket_q) in pending.items():
            if bucket_q >= PAPER and key[0] == strategy and (regime is None or key[3] == regime):
                pending[signal_id] = (key, bucket_q - PAPER)

    def _take_regime_statuses(self, statuses: Mapping[str, Mapping[str, str]]) -> None:
        before, paper = self.regime_statuses, self.regime_paper
        suspended = set()
        for regime, table in statuses.items():
            for strategy, status in table.items():
                if status == "suspended":
                    key = (strategy, regime)
                    suspended.add(key)
                    if before.get(regime, {}).get(strategy) != "suspended" or key not in paper:
                        paper[key] = PaperTally(self.paper_batch)
                        self._unmark_paper(strategy, regime)
        for key in [k for k in paper if k not in suspended]:
            del paper[key]
        self.regime_statuses = {regime: dict(table) for regime, table in statuses.items()}

    def regime_paper_record(self) -> dict[str, dict[str, PaperTrades]]:
        """regime -> strategy -> the paper trades in the regime of each strategy suspended
        in it, since that suspension (``paper_record``'s, by regime)."""
        record: dict[str, dict[str, PaperTrades]] = {}
        for (strategy, regime), paper in sorted(self.regime_paper.items()):
            record.setdefault(regime, {})[strategy] = paper.record()
        return record

    def paper_record(self) -> dict[str, PaperTrades]:
        """strategy -> the paper trades of each suspended strategy since its suspension:
        what the lifecycle ends a suspension on."""
        return {strategy: paper.record() for strategy, paper in self.paper.items()}

    def set_regime_fit(
        self, overall: Mapping[str, Figures], by_regime: Mapping[str, Mapping[str, Figures]]
    ) -> None:
        """Learn f_regime from each strategy's recent results per regime (regime ->
        strategy -> figures) against its recent results overall (strategy -> figures)."""
        self.regime_fit, self._fits = learn_regime_fits(self.config, self._fits, overall, by_regime)

    def stage_regime_fit(
        self, overall: Mapping[str, Figures], by_regime: Mapping[str, Mapping[str, Figures]]
    ) -> None:
        """``set_regime_fit``, kept aside until ``serve_staged_fit``: a snapshot taken
        meanwhile holds these fits (those a restart must serve), the signals scored
        meanwhile the fits before them."""
        self.staged_fit = learn_regime_fits(self.config, self._fits, overall, by_regime)

    def serve_staged_fit(self, serve: bool) -> None:
        """Serve the staged fits (their cycle is on disk), or drop them (it was undone)."""
        if serve and self.staged_fit is not None:
            self.regime_fit, self._fits = self.staged_fit
        self.staged_fit = None

    # ------------------------------------------------------------------ reports and state

    def summary(self) -> dict[str, Any]:
        """Scored, executed, mean quality, outcomes and success rate by quality bucket."""
        return summary_of(self)

    def to_state(self) -> dict[str, Any]:
        """Plain msgpack-serializable data for a snapshot (the layout of ``ScorerState``)."""
        return state_header(self) | {
            "setups": list(state_setups(self)),
            "pending": list(self.pending.items()),
        }

    @classmethod
    def from_state(
        cls,
        config: ScorerConfig,
        id_prefix: str,
        state: dict[str, Any],
        paper_batch: int = LifecycleConfig().paper_trades,
    ) -> ScorerModel:
        """Rebuild from ``to_state``; raises ``ValueError`` on a snapshot it cannot read.
        Records beyond the config's current caps or windows are trimmed, newest kept."""
        saved = read_state(state)
        model = cls(config, id_prefix, paper_batch)
        restore(model, config, saved)
        return model


def _finite(value: float, default: float) -> float:
    return value if math.isfinite(value) else default


def _multiplier(value: float) -> float:
    # A broken upstream figure must not size a position: NaN or ±inf falls back to
    # neutral, a negative multiplier to nothing; the size cap applies afterwards anyway.
    if not math.isfinite(value):
        return 1.0
    return value if value > 0.0 else 0.0


class ScoredRestore:
    """``ScorerModel.restore_scored`` a page of signals at a time (``take``, in their
    order, then ``finish``): a start that reads the journal's signals in pages holds one
    page, not every signal scored since the snapshot (a rebuild without one read them all:
    0.7 GB for a million)."""

    def __init__(
        self,
        model: ScorerModel,
        outcomes: Sequence[PlacedOutcome] = (),
        forgets: Sequence[tuple[int, str]] = (),
    ) -> None:
        self.model = model
        events: list[tuple[int, int, PlacedOutcome | str]] = [
            (_place(o), 1, o) for o in outcomes if o.scored is not None
        ]
        # At one place a forget goes first: an outcome there is of a signal scored before
        # it, learned and dropped or not learned at all, the same either way.
        events += [(place, 0, strategy) for place, strategy in forgets]
        events.sort(key=lambda e: (e[0], e[1]))
        self.events = events
        self.later = [o for o in outcomes if o.scored is None]
        self.at = 0
        self.taken = 0

    def _play(self, event: PlacedOutcome | str) -> None:
        if isinstance(event, str):
            self.model.detach(event)
        else:
            self.model._learn_placed(event)

    def take(self, signals: Iterable[JournaledSignal]) -> None:
        """The next signals, in their order, with the outcomes and forgets before each."""
        model, events = self.model, self.events
        for signal in signals:
            while self.at < len(events) and events[self.at][0] < signal.ordinal:
                self._play(events[self.at][2])
                self.at += 1
            key = model._setup_key(
                signal.strategy, signal.symbol, signal.side, signal.regime, signal.confluence
            )
            tally = model.setups.get(key)
            if tally is not None:
                key = tally.key
            model._count(signal.signal_id, key, signal.quality, signal.execute, signal.status)
            model.scored = max(model.scored, signal.ordinal)
            self.taken += 1

    def finish(self) -> int:
        """The outcomes and forgets after the last signal; the number of signals taken."""
        for _, _, event in self.events[self.at :]:
            self._play(event)
        self.at = len(self.events)
        for outcome in self.later:
            self.model._learn_placed(outcome)
        self.later = []
        return self.taken
