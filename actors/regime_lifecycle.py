"""The per-regime lifecycle: each strategy judged on its trades in each regime.

With ``[lifecycle] per_regime = true`` every regime (but ``unknown``) has a lifecycle
of its own, ``LifecycleModel`` itself, run on the recent window of each strategy's
trades in that regime (``PerformanceModel.recent_by_regime``) with the same rules and
``[lifecycle]``'s thresholds, except ``regime_min_trades`` for ``min_trades`` and the
overrides of ``[strategies.NAME.regimes.REGIME]``. A strategy suspended in a regime has
its signals in that regime refused (the scorer's status refusal, the regime named),
degraded in it they are sized down; elsewhere nothing changes. Its way back is the
whole strategy's, restricted to the regime: probation after the time it took to make
``probation_after_trades`` trades in the regime, or its paper trades in the regime
winning significantly, then judged on its new trades in the regime. A regime never
retires a strategy: only the whole strategy's lifecycle does (docs/optimization.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from alphad.actors.errors import BadInput
from alphad.actors.events import UNKNOWN_REGIME
from alphad.actors.figures import Figures
from alphad.actors.lifecycle import NOT_READ, LifecycleModel
from alphad.actors.lifecycle_shapes import LifecycleConfig, PaperTrades, Transition
from alphad.actors.weighting_config import StrategyConfig

NEVER_RETIRE = 1000
"""``retire_after_suspensions`` of a regime's lifecycle: its most, never reached in
practice; the strategy stays out of the regime until its evidence brings it back."""

_OVERRIDDEN = ("min_trades", "win_rate_floor", "psr_floor")

Paper = Mapping[str, Mapping[str, PaperTrades]]
"""regime -> strategy -> its paper trades in the regime."""


class RegimeLifecycle:
    """One ``LifecycleModel`` per regime, holding the strategies that traded in it.

    ``enabled`` is the lifecycle component's switch; ``config.per_regime`` whether the
    per-regime judgement runs and is served at all.
    """

    def __init__(self, config: LifecycleConfig, strategies: Mapping[str, StrategyConfig]) -> None:
        self.config = config
        self.strategies = dict(strategies)
        self.enabled = True
        self.base = msgspec.structs.replace(
            config, min_trades=config.regime_min_trades, retire_after_suspensions=NEVER_RETIRE
        )
        self.models: dict[str, LifecycleModel] = {}

    def named(self, regime: str) -> bool:
        """Whether the config names ``regime`` (``[strategies.NAME.regimes.REGIME]``) or
        it has a lifecycle here (a status journaled in it)."""
        return regime in self.models or any(regime in s.regimes for s in self.strategies.values())

    @property
    def on(self) -> bool:
        """Whether per-regime statuses are judged and served."""
        return self.config.per_regime

    def model(self, regime: str) -> LifecycleModel:
        """The regime's lifecycle, made with its thresholds when first needed."""
        model = self.models.get(regime)
        if model is None:
            limits: dict[str, StrategyConfig] = {}
            overrides: dict[str, LifecycleConfig] = {}
            for name, strategy in self.strategies.items():
                own = strategy.regimes.get(regime)
                if own is None:
                    continue
                limits[name] = StrategyConfig(
                    soft_drawdown=own.soft_drawdown, hard_drawdown=own.hard_drawdown
                )
                changes = {k: getattr(own, k) for k in _OVERRIDDEN if getattr(own, k) is not None}
                if changes:
                    overrides[name] = msgspec.structs.replace(self.base, **changes)
            model = self.models[regime] = LifecycleModel(self.base, limits, overrides)
            model.states.clear()  # a strategy enters a regime's lifecycle by trading in it
        return model

    def assess(
        self,
        by_regime: Mapping[str, Mapping[str, Figures]],
        now_ms: int,
        paper: Paper | None = None,
    ) -> list[Transition]:
        """Each regime's lifecycle on its recent windows, in regime order; the transitions
        carry their regime, and their reasons name it."""
        if not (self.on and self.enabled):
            return []
        moves: list[Transition] = []
        paper = paper or {}
        for regime in sorted(set(self.models) | set(by_regime)):
            if regime == UNKNOWN_REGIME:
                continue
            model = self.model(regime)
            for move in model.assess(by_regime.get(regime, {}), now_ms, paper.get(regime)):
                move.regime = regime
                move.reason = model.states[move.strategy].reason = (
                    f"in regime {regime}: {move.reason}"
                )
                moves.append(move)
        return moves

    def edge_read(self) -> dict[str, dict[str, int]] | int:
        """regime → ``LifecycleModel.edge_read`` of its lifecycle: what the next cycle asks
        the performance model for (``PerformanceModel.recent_by_regime``); ``NOT_READ``
        for every window while the per-regime lifecycle does not run (also those of the
        strategies it has not judged yet)."""
        if not (self.on and self.enabled):
            return NOT_READ
        return {regime: model.edge_read() for regime, model in sorted(self.models.items())}

    def statuses(self) -> dict[str, dict[str, str]]:
        """regime -> strategy -> its status there, the strategies not active in a regime
        only; empty when ``per_regime`` is off (nothing served)."""
        if not self.on:
            return {}
        served: dict[str, dict[str, str]] = {}
        for regime, model in sorted(self.models.items()):
            off: dict[str, str] = {
                s: st.status for s, st in sorted(model.states.items()) if st.status != "active"
            }
            if off:
                served[regime] = off
        return served

    def force(
        self,
        strategy: str,
        regime: str,
        status: str,
        reason: str,
        operator: str,
        now_ms: int,
        seen: int | None = None,
    ) -> Transition:
        """An operator sets the strategy's status in a regime; raises ``BadInput`` with
        ``per_regime`` off, for ``unknown`` and for ``retired`` (a regime retires none)."""
        if not self.on:
            raise BadInput("[lifecycle] per_regime is off: no status in a regime to set")
        if regime == UNKNOWN_REGIME or status == "retired":
            raise BadInput(f"a strategy cannot be {status} in regime {regime!r}")
        move = self.model(regime).force(strategy, status, reason, operator, now_ms, seen=seen)
        move.regime = regime
        return move

    def apply_journaled(
        self,
        strategy: str,
        regime: str,
        status: str,
        reason: str,
        actor: str,
        ts_ms: int,
        metrics: Mapping[str, Any] | None = None,
    ) -> None:
        """A journaled per-regime change applied again (``LifecycleModel.apply_journaled``)."""
        self.model(regime).apply_journaled(strategy, status, reason, actor, ts_ms, metrics)

    def forget(self, strategy: str) -> None:
        """Drop the strategy from every regime."""
        for model in self.models.values():
            model.forget(strategy)

    def health(self, strategy: str) -> list[dict[str, Any]]:
        """The strategy's rows in each regime it traded in, in regime order."""
        rows = []
        for regime, model in sorted(self.models.items()):
            if strategy in model.states:
                row = model.health(strategy)[0]
                del row["strategy"]
                rows.append({"regime": regime} | row)
        return rows

    def to_state(self) -> dict[str, Any]:
        """Plain data for a snapshot: each regime's ``LifecycleModel.to_state``."""
        return {regime: model.to_state() for regime, model in sorted(self.models.items())}

    def snapshot_state(self) -> dict[str, Any]:
        """``to_state`` for encoding at once (``LifecycleModel.snapshot_state``)."""
        return {regime: model.snapshot_state() for regime, model in sorted(self.models.items())}

    @classmethod
    def from_state(
        cls,
        config: LifecycleConfig,
        strategies: Mapping[str, StrategyConfig],
        state: Mapping[str, Any],
    ) -> RegimeLifecycle:
        """Rebuild from ``to_state`` under the current thresholds."""
        regimes = cls(config, strategies)
        for regime, saved in state.items():
            model = regimes.model(regime)
            restored = LifecycleModel.from_state(model.config, model.limits, saved, model.overrides)
            restored.states = {k: v for k, v in restored.states.items() if k in saved["strategies"]}
            regimes.models[regime] = restored
        return regimes
