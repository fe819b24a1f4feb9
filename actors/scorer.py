"""Signal quality: should a signal be taken, and at what size (docs/scoring.md).

quality = confidence × f_confluence × f_regime × f_history, every factor in [0, 1], so
quality never exceeds the bot's own confidence. The scorer answers ``score_signal``
from its own state, inline on the gateway's receive path: weights, statuses and regime
fits are pushed to it after each optimization cycle, outcomes arrive in its mailbox.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from actors.base import TAKE_STATE, Actor
from actors.events import ClosedTrade, SignalOutcome
from actors.figures import Figures
from actors.store import AppendSignal, AppendSignals
from protocol.messages import ScoreSignal, SignalScore

Factor = Annotated[float, Meta(ge=0.0, le=1.0)]
BUCKETS: tuple[float, ...] = (0.0, 0.5, 0.6, 0.7, 0.8, 0.9)
EXECUTABLE = frozenset(("active", "degraded"))


class ScorerConfig(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """``[scorer]``: thresholds and shapes of the quality factors and the position size."""

    min_quality: Factor = 0.5
    confluence_target: Annotated[int, Meta(ge=1, le=100)] = 3
    # f_confluence with no agreeing indicator; it rises linearly to 1.0 at the target.
    confluence_floor: Factor = 0.6
    regime_factors: dict[str, Factor] = msgspec.field(default_factory=dict)
    # Regime fit: trades of the strategy in that regime needed before it counts.
    regime_min_trades: Annotated[int, Meta(ge=1, le=100_000)] = 10
    # How strongly a regime's shortfall (in units of the strategy's mean |pnl|) lowers it.
    regime_sensitivity: Annotated[float, Meta(ge=0.0, le=100.0)] = 1.0
    regime_floor: Factor = 0.5
    # Beta prior strength (pseudo-outcomes) of a setup's success rate.
    prior_strength: Annotated[float, Meta(gt=0.0, le=10_000.0)] = 10.0
    history_floor: Factor = 0.5
    max_size_multiplier: Annotated[float, Meta(gt=0.0, le=2.0)] = 2.0
    degraded_size_factor: Factor = 0.5
    max_pending_signals: Annotated[int, Meta(ge=1, le=10_000_000)] = 200_000
    max_setups: Annotated[int, Meta(ge=1, le=10_000_000)] = 200_000


class ScorerModel:
    """The scoring state: allocation pushed by the engine, outcomes of past setups."""

    def __init__(self, config: ScorerConfig, id_prefix: str) -> None:
        self.config = config
        self.id_prefix = id_prefix
        self.enabled = True
        self.counter = 0
        self.statuses: dict[str, str] = {}
        self.weights: dict[str, float] = {}
        self.multipliers: dict[str, float] = {}
        self.regime_multipliers: dict[str, dict[str, float]] = {}
        self.regime_fit: dict[tuple[str, str], float] = {}
        # setup key -> [successes, outcomes]; strategy -> [successes, outcomes]
        self.setups: dict[tuple[str, str, str, str, int], list[int]] = {}
        self.strategy_outcomes: dict[str, list[int]] = {}
        # signal_id -> (setup key, quality bucket); insertion order = age
        self.pending: dict[str, tuple[tuple[str, str, str, str, int], int]] = {}
        self.scored = 0
        self.executed = 0
        self.quality_sum = 0.0
        self.bucket_scored = [0] * len(BUCKETS)
        self.bucket_executed = [0] * len(BUCKETS)
        self.bucket_outcomes = [0] * len(BUCKETS)
        self.bucket_successes = [0] * len(BUCKETS)
        target = config.confluence_target
        floor = config.confluence_floor
        self._confluence = [floor + (1.0 - floor) * c / target for c in range(target)] + [1.0]

    # ------------------------------------------------------------------ the hot path

    def score(self, request: ScoreSignal) -> SignalScore:
        """Score one signal; a few microseconds, no I/O."""
        cfg = self.config
        strategy = request.strategy
        regime = request.regime
        status = self.statuses.get(strategy, "active")
        multiplier = self.multipliers.get(strategy, 1.0)
        if regime is not None:
            by_regime = self.regime_multipliers.get(regime)
            if by_regime is not None:
                multiplier = by_regime.get(strategy, multiplier)
        confidence = request.confidence
        confluence = request.confluence
        bucket_c = confluence if confluence < cfg.confluence_target else cfg.confluence_target
        setup = (strategy, request.symbol, request.side, regime or "", bucket_c)
        reasons: list[str] = []
        if self.enabled:
            f_confluence = self._confluence[bucket_c]
            f_regime = self._regime_factor(strategy, regime)
            f_history, history_note = self._history_factor(strategy, setup)
            quality = confidence * f_confluence * f_regime * f_history
            if f_confluence < 1.0:
                reasons.append(f"confluence {confluence} of {cfg.confluence_target}")
            if f_regime < 1.0:
                reasons.append(f"regime {regime} fits this strategy poorly ({f_regime:.2f})")
            if history_note:
                reasons.append(history_note)
        else:
            quality = confidence
        executable = status in EXECUTABLE
        execute = executable and (quality >= cfg.min_quality or not self.enabled)
        if not executable:
            reasons.append(f"strategy {status}")
        elif not execute:
            reasons.append(f"quality {quality:.2f} below minimum {cfg.min_quality:.2f}")
        if execute:
            if self.enabled:
                size = multiplier * (0.5 + quality)
            else:
                size = multiplier
            if status == "degraded":
                size *= cfg.degraded_size_factor
                reasons.append(f"strategy degraded: size × {cfg.degraded_size_factor:g}")
            if size > cfg.max_size_multiplier:
                size = cfg.max_size_multiplier
        else:
            size = 0.0
        signal_id = request.signal_id
        if signal_id is None:
            self.counter += 1
            signal_id = f"{self.id_prefix}-{self.counter}"
        bucket_q = _bucket(quality)
        self.scored += 1
        self.quality_sum += quality
        self.bucket_scored[bucket_q] += 1
        if execute:
            self.executed += 1
            self.bucket_executed[bucket_q] += 1
        pending = self.pending
        if len(pending) >= cfg.max_pending_signals:
            del pending[next(iter(pending))]
        pending[signal_id] = (setup, bucket_q)
        return SignalScore(
            signal_id=signal_id,
            quality=quality,
            execute=execute,
            size_multiplier=size,
            weight=self.weights.get(strategy, 1.0),
            status=status,
            reasons=reasons,
        )

    def _regime_factor(self, strategy: str, regime: str | None) -> float:
        if regime is None:
            return 1.0
        fit = self.regime_fit.get((strategy, regime), 1.0)
        cap = self.config.regime_factors.get(regime)
        return fit if cap is None or cap >= fit else cap

    def _history_factor(
        self, strategy: str, setup: tuple[str, str, str, str, int]
    ) -> tuple[float, str]:
        counts = self.setups.get(setup)
        if counts is None or counts[1] == 0:
            return 1.0, ""
        base = self.base_rate(strategy)
        posterior = self.posterior(strategy, setup)
        factor = posterior / base if base > 0 else 1.0
        floor = self.config.history_floor
        factor = 1.0 if factor > 1.0 else (floor if factor < floor else factor)
        if factor >= 1.0:
            return 1.0, ""
        return factor, f"similar setups won {counts[0]} of {counts[1]}"

    # ------------------------------------------------------------------ learning

    def base_rate(self, strategy: str) -> float:
        """The strategy's success rate over every outcome (0.5 with none yet)."""
        successes, outcomes = self.strategy_outcomes.get(strategy, (0, 0))
        return (successes + 1.0) / (outcomes + 2.0)

    def posterior(self, strategy: str, setup: tuple[str, str, str, str, int]) -> float:
        """Beta posterior mean of the setup's success rate, prior at the strategy's rate."""
        successes, outcomes = self.setups.get(setup, (0, 0))
        k = self.config.prior_strength
        return (successes + k * self.base_rate(strategy)) / (outcomes + k)

    def record_outcome(self, signal_id: str, success: bool) -> bool:
        """Learn a scored signal's outcome; False if the signal is unknown or already done."""
        entry = self.pending.pop(signal_id, None)
        if entry is None:
            return False
        setup, bucket_q = entry
        counts = self.setups.get(setup)
        if counts is None and len(self.setups) < self.config.max_setups:
            counts = self.setups[setup] = [0, 0]
        if counts is not None:
            counts[0] += success
            counts[1] += 1
        strategy_counts = self.strategy_outcomes.setdefault(setup[0], [0, 0])
        strategy_counts[0] += success
        strategy_counts[1] += 1
        self.bucket_outcomes[bucket_q] += 1
        self.bucket_successes[bucket_q] += success
        return True

    def set_allocation(
        self,
        statuses: Mapping[str, str],
        weights: Mapping[str, float],
        multipliers: Mapping[str, float],
        regime_multipliers: Mapping[str, Mapping[str, float]],
    ) -> None:
        """Take statuses, effective weights and weight multipliers after a change."""
        self.statuses = dict(statuses)
        self.weights = dict(weights)
        self.multipliers = {k: _finite(v, 1.0) for k, v in multipliers.items()}
        self.regime_multipliers = {
            regime: {k: _finite(v, 1.0) for k, v in table.items()}
            for regime, table in regime_multipliers.items()
        }

    def set_regime_fit(
        self, overall: Mapping[str, Figures], by_regime: Mapping[str, Mapping[str, Figures]]
    ) -> None:
        """Learn f_regime: a regime whose expectancy falls short of the strategy's overall
        expectancy, measured in units of its mean |pnl|, lowers the factor."""
        cfg = self.config
        fit: dict[tuple[str, str], float] = {}
        for regime, table in by_regime.items():
            for strategy, figures in table.items():
                whole = overall.get(strategy)
                if whole is None or figures.trades < cfg.regime_min_trades:
                    continue
                scale = whole.mean_abs_pnl
                if not scale > 0:
                    continue
                shortfall = (figures.expectancy - whole.expectancy) / scale
                factor = 1.0 + cfg.regime_sensitivity * min(0.0, shortfall)
                if factor < 1.0:
                    fit[(strategy, regime)] = max(cfg.regime_floor, _finite(factor, 1.0))
        self.regime_fit = fit

    # ------------------------------------------------------------------ reports and state

    def summary(self) -> dict[str, Any]:
        """Scored, executed, mean quality and success rate by quality bucket."""
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
        return {
            "enabled": self.enabled,
            "scored": self.scored,
            "executed": self.executed,
            "mean_quality": self.quality_sum / self.scored if self.scored else None,
            "outcomes": sum(self.bucket_outcomes),
            "pending": len(self.pending),
            "buckets": buckets,
        }

    def to_state(self) -> dict[str, Any]:
        """Plain data for a snapshot."""
        return {
            "enabled": self.enabled,
            "counter": self.counter,
            "statuses": self.statuses,
            "weights": self.weights,
            "multipliers": self.multipliers,
            "regime_multipliers": self.regime_multipliers,
            "regime_fit": [[s, r, f] for (s, r), f in self.regime_fit.items()],
            "setups": [[*key, *counts] for key, counts in self.setups.items()],
            "strategy_outcomes": self.strategy_outcomes,
            "pending": [[sid, *setup, bucket] for sid, (setup, bucket) in self.pending.items()],
            "totals": [self.scored, self.executed, self.quality_sum],
            "buckets": [
                self.bucket_scored,
                self.bucket_executed,
                self.bucket_outcomes,
                self.bucket_successes,
            ],
        }

    @classmethod
    def from_state(cls, config: ScorerConfig, id_prefix: str, state: dict[str, Any]) -> ScorerModel:
        """Rebuild from ``to_state``."""
        model = cls(config, id_prefix)
        model.enabled = bool(state["enabled"])
        model.counter = int(state["counter"])
        model.statuses = dict(state["statuses"])
        model.weights = dict(state["weights"])
        model.multipliers = dict(state["multipliers"])
        model.regime_multipliers = {k: dict(v) for k, v in state["regime_multipliers"].items()}
        model.regime_fit = {(s, r): f for s, r, f in state["regime_fit"]}
        model.setups = {
            (s, sym, side, reg, int(c)): [int(w), int(n)]
            for s, sym, side, reg, c, w, n in state["setups"]
        }
        model.strategy_outcomes = {
            k: [int(v[0]), int(v[1])] for k, v in state["strategy_outcomes"].items()
        }
        model.pending = {
            sid: ((s, sym, side, reg, int(c)), int(bucket))
            for sid, s, sym, side, reg, c, bucket in state["pending"]
        }
        model.scored, model.executed, model.quality_sum = state["totals"]
        (
            model.bucket_scored,
            model.bucket_executed,
            model.bucket_outcomes,
            model.bucket_successes,
        ) = (list(b) for b in state["buckets"])
        return model


def _bucket(quality: float) -> int:
    index = 0
    for i, low in enumerate(BUCKETS):
        if quality >= low:
            index = i
    return index


def _finite(value: float, default: float) -> float:
    return value if math.isfinite(value) else default


# ----------------------------------------------------------------------------- the actor


class SetAllocation(msgspec.Struct, frozen=True, kw_only=True):
    """Tell: statuses, effective weights and weight multipliers after a change."""

    statuses: dict[str, str]
    weights: dict[str, float]
    multipliers: dict[str, float]
    regime_multipliers: dict[str, dict[str, float]]


class SetRegimeFit(msgspec.Struct, frozen=True):
    """Tell: recent figures overall and per regime, to learn how strategies fit regimes."""

    overall: Mapping[str, Figures]
    by_regime: Mapping[str, Mapping[str, Figures]]


class FlushSignals(msgspec.Struct, frozen=True):
    """Tell: hand the scored signals kept so far to the store (sent every second)."""


class SignalSummary(msgspec.Struct, frozen=True):
    """Ask: the signal quality summary of ``get_report``."""


class ScorerActor(Actor):
    """Answers ``score_signal`` inline from its own state; learns outcomes from its mailbox."""

    name = "scorer"

    def __init__(
        self,
        model: ScorerModel,
        store: Actor,
        *,
        last_trade_seq: int = 0,
        last_outcome_seq: int = 0,
        mailbox_size: int = 8192,
    ) -> None:
        super().__init__(mailbox_size)
        self.model = model
        self.store = store
        self.last_trade_seq = last_trade_seq
        self.last_outcome_seq = last_outcome_seq
        self.signals_not_kept = 0
        self.flush_every = 1024
        self._signal_rows: list[AppendSignal] = []

    def score(self, request: ScoreSignal) -> SignalScore:
        """The hot path: score from the model's state; the journal row waits for a flush."""
        reply = self.model.score(request)
        rows = self._signal_rows
        rows.append(
            AppendSignal(
                reply.signal_id or "",
                request.ts_ms if request.ts_ms is not None else time.time_ns() // 1_000_000,
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
            )
        )
        if len(rows) >= self.flush_every:
            self.flush_signals()
        return reply

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
                )
                return None
            case SetRegimeFit():
                model.set_regime_fit(message.overall, message.by_regime)
                return None
            case FlushSignals():
                self.flush_signals()
                return None
            case SignalSummary():
                summary = model.summary()
                summary["not_kept"] = self.signals_not_kept
                return summary
            case _ if message is TAKE_STATE:
                return {
                    "model": model.to_state(),
                    "last_trade_seq": self.last_trade_seq,
                    "last_outcome_seq": self.last_outcome_seq,
                }
        raise TypeError(f"scorer cannot handle {type(message).__name__}")
