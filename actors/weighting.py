"""Adaptive weighting: strategy weights that follow recent performance, slowly and in bounds.

Each update scores every strategy with enough recent trades on scale-free figures
(docs/optimization.md), maps the score to a target multiplier in
[min_multiplier, max_multiplier], and moves the weight toward target × base by at most
``max_change`` of its current value. Weights never leave [min, max] × base.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from actors.base import TAKE_STATE, Actor
from actors.events import SetEnabled
from actors.figures import Figures
from protocol.errors import AlphadError
from protocol.messages import GetWeights, Weights

INACTIVE = frozenset(("suspended", "retired"))


class StrategyConfig(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """``[strategies.NAME]``: a configured strategy."""

    base_weight: Annotated[float, Meta(gt=0.0, le=1000.0)] = 1.0
    # Absolute drawdown limits in pnl units; without them the lifecycle's relative
    # limits (in average trades) apply.
    soft_drawdown: Annotated[float, Meta(gt=0.0)] | None = None
    hard_drawdown: Annotated[float, Meta(gt=0.0)] | None = None


class WeightingConfig(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """``[weighting]``: bounds and the composite score's shape."""

    default_base_weight: Annotated[float, Meta(gt=0.0, le=1000.0)] = 1.0
    auto_register: bool = True
    min_trades: Annotated[int, Meta(ge=1, le=100_000)] = 20
    min_multiplier: Annotated[float, Meta(gt=0.0, le=1.0)] = 0.1
    max_multiplier: Annotated[float, Meta(ge=1.0, le=10.0)] = 2.0
    max_change: Annotated[float, Meta(gt=0.0, le=1.0)] = 0.15
    # The composite score: each term is scaled to [-1, 1] at these reference values.
    sharpe_reference: Annotated[float, Meta(gt=0.0)] = 0.3
    expectancy_reference: Annotated[float, Meta(gt=0.0)] = 0.3
    profit_factor_reference: Annotated[float, Meta(gt=0.0)] = 1.0
    drawdown_reference: Annotated[float, Meta(gt=0.0)] = 10.0
    sharpe_weight: Annotated[float, Meta(ge=0.0)] = 0.35
    expectancy_weight: Annotated[float, Meta(ge=0.0)] = 0.25
    profit_factor_weight: Annotated[float, Meta(ge=0.0)] = 0.25
    drawdown_weight: Annotated[float, Meta(ge=0.0)] = 0.15


class WeightUpdate(msgspec.Struct, kw_only=True):
    """One weight that moved, with what drove it."""

    strategy: str
    regime: str | None
    old: float
    new: float
    target: float | None
    reason: str
    metrics: dict[str, Any] = msgspec.field(default_factory=dict)


class WeightTable(msgspec.Struct, kw_only=True):
    """Weights of every strategy, globally or for one regime."""

    regime: str | None
    base: dict[str, float]
    adaptive: dict[str, float]
    effective: dict[str, float]
    normalized: dict[str, float]


def _clamp(value: float, low: float, high: float) -> float:
    if not math.isfinite(value):
        return 0.0
    return low if value < low else high if value > high else value


class WeightingModel:
    """Base weights from config, adaptive weights global and per regime."""

    def __init__(self, config: WeightingConfig, strategies: Mapping[str, StrategyConfig]) -> None:
        self.config = config
        self.configured = dict(strategies)
        self.base: dict[str, float] = {n: s.base_weight for n, s in strategies.items()}
        self.adaptive: dict[str, float] = dict(self.base)
        self.regime_adaptive: dict[str, dict[str, float]] = {}
        self.frozen = False
        self._previous: tuple[dict[str, float], dict[str, dict[str, float]]] | None = None

    def ensure_registered(self, strategy: str) -> bool:
        """Register a strategy first seen in a request; True if it is new."""
        if strategy in self.base:
            return False
        if not self.config.auto_register:
            raise AlphadError(
                "unknown_strategy", f"strategy {strategy!r} is not configured (auto_register off)"
            )
        self.base[strategy] = self.config.default_base_weight
        self.adaptive[strategy] = self.config.default_base_weight
        return True

    def strategies(self) -> list[str]:
        return sorted(self.base)

    def regimes(self) -> list[str]:
        return sorted(self.regime_adaptive)

    # ------------------------------------------------------------------ the update

    def score(self, figures: Figures) -> tuple[float, dict[str, Any]]:
        """The composite score in [-1, 1] and the scale-free terms behind it."""
        cfg = self.config
        scale = figures.mean_abs_pnl if figures.mean_abs_pnl > 0 else 1.0
        sharpe = figures.sharpe if figures.sharpe is not None else 0.0
        if figures.profit_factor is not None:
            profit_factor = figures.profit_factor
        else:
            profit_factor = (
                1.0 + 2 * cfg.profit_factor_reference if (figures.profit_factor_infinite) else 1.0
            )
        expectancy_units = figures.expectancy / scale
        drawdown_units = figures.max_drawdown / scale
        terms = {
            "sharpe": _clamp(sharpe / cfg.sharpe_reference, -1, 1),
            "expectancy": _clamp(expectancy_units / cfg.expectancy_reference, -1, 1),
            "profit_factor": _clamp((profit_factor - 1) / cfg.profit_factor_reference, -1, 1),
            "drawdown": _clamp(1 - drawdown_units / cfg.drawdown_reference, -1, 1),
        }
        total_weight = (
            cfg.sharpe_weight
            + cfg.expectancy_weight
            + cfg.profit_factor_weight
            + cfg.drawdown_weight
        )
        raw = (
            cfg.sharpe_weight * terms["sharpe"]
            + cfg.expectancy_weight * terms["expectancy"]
            + cfg.profit_factor_weight * terms["profit_factor"]
            + cfg.drawdown_weight * terms["drawdown"]
        )
        score = _clamp(raw / total_weight, -1, 1) if total_weight > 0 else 0.0
        metrics = {
            "trades": figures.trades,
            "expectancy": figures.expectancy,
            "profit_factor": figures.profit_factor,
            "sharpe": figures.sharpe,
            "max_drawdown": figures.max_drawdown,
            "score": score,
            "terms": terms,
        }
        return score, metrics

    def target_multiplier(self, score: float) -> float:
        """Score -1 → min_multiplier, 0 → 1.0, +1 → max_multiplier (linear in between)."""
        cfg = self.config
        if score >= 0:
            return 1.0 + score * (cfg.max_multiplier - 1.0)
        return 1.0 + score * (1.0 - cfg.min_multiplier)

    def _step(self, current: float, base: float, target: float) -> float:
        cfg = self.config
        low, high = cfg.min_multiplier * base, cfg.max_multiplier * base
        wanted = _clamp(target * base, low, high)
        limit = cfg.max_change * current
        new = current + _clamp(wanted - current, -limit, limit)
        return _clamp(new, low, high)

    def update(
        self,
        recent: Mapping[str, Figures],
        regime_recent: Mapping[str, Mapping[str, Figures]],
        reason: str = "cycle",
    ) -> list[WeightUpdate]:
        """One update of the global table and of each given regime's table."""
        if self.frozen:
            return []
        self._previous = (dict(self.adaptive), copy.deepcopy(self.regime_adaptive))
        updates = self._update_table(self.adaptive, recent, None, reason)
        for regime, table in sorted(regime_recent.items()):
            weights = self.regime_adaptive.setdefault(regime, {})
            for strategy, figures in table.items():
                if (
                    strategy in self.base
                    and strategy not in weights
                    and (figures.trades >= self.config.min_trades)
                ):
                    weights[strategy] = self.adaptive[strategy]
            updates += self._update_table(weights, table, regime, reason)
        return updates

    def _update_table(
        self,
        weights: dict[str, float],
        recent: Mapping[str, Figures],
        regime: str | None,
        reason: str,
    ) -> list[WeightUpdate]:
        updates = []
        for strategy in sorted(recent):
            figures = recent[strategy]
            if strategy not in weights or figures.trades < self.config.min_trades:
                continue
            score, metrics = self.score(figures)
            target = self.target_multiplier(score)
            old = weights[strategy]
            new = self._step(old, self.base[strategy], target)
            if new != old:
                weights[strategy] = new
                updates.append(
                    WeightUpdate(
                        strategy=strategy,
                        regime=regime,
                        old=old,
                        new=new,
                        target=target,
                        reason=f"{reason}: score {score:+.2f}, target × {target:.2f}",
                        metrics=metrics,
                    )
                )
        return updates

    # ------------------------------------------------------------------ operator actions

    def reset(self, reason: str) -> list[WeightUpdate]:
        """Every adaptive weight, global and per regime, back to base."""
        self._previous = (dict(self.adaptive), copy.deepcopy(self.regime_adaptive))
        updates = []
        for strategy in sorted(self.base):
            if self.adaptive[strategy] != self.base[strategy]:
                updates.append(
                    self._change(
                        strategy, None, self.adaptive[strategy], self.base[strategy], reason
                    )
                )
                self.adaptive[strategy] = self.base[strategy]
        for regime, table in sorted(self.regime_adaptive.items()):
            for strategy, weight in sorted(table.items()):
                if weight != self.base[strategy]:
                    updates.append(
                        self._change(strategy, regime, weight, self.base[strategy], reason)
                    )
        self.regime_adaptive = {}
        return updates

    def rollback(self, reason: str) -> list[WeightUpdate]:
        """The adaptive weights as they were before the last update (once)."""
        if self._previous is None:
            return []
        previous, previous_regimes = self._previous
        self._previous = None
        updates = []
        for strategy in sorted(self.adaptive):
            old = self.adaptive[strategy]
            new = previous.get(strategy, self.base[strategy])
            if old != new:
                updates.append(self._change(strategy, None, old, new, reason))
                self.adaptive[strategy] = new
        for regime in sorted(set(self.regime_adaptive) | set(previous_regimes)):
            current = self.regime_adaptive.get(regime, {})
            before = previous_regimes.get(regime, {})
            for strategy in sorted(set(current) | set(before)):
                old = current.get(strategy, self.adaptive.get(strategy, 1.0))
                new = before.get(strategy, self.adaptive.get(strategy, 1.0))
                if old != new:
                    updates.append(self._change(strategy, regime, old, new, reason))
        self.regime_adaptive = previous_regimes
        return updates

    @staticmethod
    def _change(
        strategy: str, regime: str | None, old: float, new: float, reason: str
    ) -> WeightUpdate:
        return WeightUpdate(
            strategy=strategy, regime=regime, old=old, new=new, target=None, reason=reason
        )

    # ------------------------------------------------------------------ reading

    def table(self, regime: str | None, statuses: Mapping[str, str]) -> WeightTable:
        """Weights under the given statuses; a regime falls back to the global weight."""
        regime_weights = self.regime_adaptive.get(regime, {}) if regime is not None else {}
        adaptive = {s: regime_weights.get(s, self.adaptive[s]) for s in sorted(self.base)}
        effective = {
            s: 0.0 if statuses.get(s, "active") in INACTIVE else w for s, w in adaptive.items()
        }
        total = math.fsum(effective.values())
        normalized = {s: (w / total if total > 0 else 0.0) for s, w in effective.items()}
        return WeightTable(
            regime=regime,
            base=dict(sorted(self.base.items())),
            adaptive=adaptive,
            effective=effective,
            normalized=normalized,
        )

    def multiplier(self, strategy: str, regime: str | None = None) -> float:
        """adaptive / base, from the regime's table when it has the strategy."""
        base = self.base.get(strategy)
        if base is None:
            return 1.0
        weight = self.adaptive[strategy]
        if regime is not None:
            weight = self.regime_adaptive.get(regime, {}).get(strategy, weight)
        return weight / base

    # ------------------------------------------------------------------ state

    def to_state(self) -> dict[str, Any]:
        """Plain data for a snapshot."""
        return {
            "base": self.base,
            "adaptive": self.adaptive,
            "regime_adaptive": self.regime_adaptive,
            "frozen": self.frozen,
            "previous": list(self._previous) if self._previous is not None else None,
        }

    @classmethod
    def from_state(
        cls,
        config: WeightingConfig,
        strategies: Mapping[str, StrategyConfig],
        state: dict[str, Any],
    ) -> WeightingModel:
        """Rebuild from ``to_state``; base weights of configured strategies follow the config,
        and an adaptive weight is brought back within its (possibly new) bounds."""
        model = cls(config, strategies)
        for name, base in state["base"].items():
            model.base.setdefault(name, float(base))
        for name, weight in state["adaptive"].items():
            base = model.base[name]
            model.adaptive[name] = _clamp(
                float(weight), config.min_multiplier * base, config.max_multiplier * base
            )
        model.regime_adaptive = {r: dict(t) for r, t in state["regime_adaptive"].items()}
        model.frozen = bool(state.get("frozen", False))
        previous = state.get("previous")
        if previous is not None:
            model._previous = (dict(previous[0]), {r: dict(t) for r, t in previous[1].items()})
        return model


# ----------------------------------------------------------------------------- the actor


class Register(msgspec.Struct, frozen=True):
    """Tell: a strategy was seen for the first time."""

    strategy: str


class UpdateWeights(msgspec.Struct, frozen=True):
    """Ask: one update from recent figures; answered with the list of ``WeightUpdate``."""

    recent: Mapping[str, Figures]
    regime_recent: Mapping[str, Mapping[str, Figures]]
    reason: str


class ApplyStatuses(msgspec.Struct, frozen=True):
    """Ask: take the lifecycle's statuses; answered with the resulting ``Allocation``."""

    statuses: Mapping[str, str]


class Reset(msgspec.Struct, frozen=True):
    """Ask: every adaptive weight back to base."""

    reason: str


class Rollback(msgspec.Struct, frozen=True):
    """Ask: the adaptive weights back to before the last update."""

    reason: str


class Allocation(msgspec.Struct, kw_only=True):
    """What the scorer and the reports need after a change of weights or statuses."""

    statuses: dict[str, str]
    global_table: WeightTable
    regime_tables: dict[str, WeightTable]
    multipliers: dict[str, float]
    regime_multipliers: dict[str, dict[str, float]]
    frozen: bool = False


class WeightingActor(Actor):
    """Owns the adaptive weights."""

    name = "weighting"

    def __init__(self, model: WeightingModel, mailbox_size: int = 8192) -> None:
        super().__init__(mailbox_size)
        self.model = model
        self.statuses: dict[str, str] = {}

    async def handle(self, message: Any) -> Any:
        model = self.model
        match message:
            case Register():
                model.ensure_registered(message.strategy)
                return None
            case SetEnabled():
                model.frozen = not message.enabled
                return None
            case UpdateWeights():
                return model.update(message.recent, message.regime_recent, message.reason)
            case ApplyStatuses():
                self.statuses = dict(message.statuses)
                return self.allocation()
            case Reset():
                return model.reset(message.reason)
            case Rollback():
                return model.rollback(message.reason)
            case GetWeights():
                table = model.table(message.regime, self.statuses)
                return Weights(
                    regime=message.regime,
                    base=table.base,
                    adaptive=table.adaptive,
                    effective=table.effective,
                    normalized=table.normalized,
                    frozen=model.frozen,
                )
            case _ if message is TAKE_STATE:
                return model.to_state()
        raise TypeError(f"weighting cannot handle {type(message).__name__}")

    def allocation(self) -> Allocation:
        """The current tables and multipliers under the last statuses."""
        model = self.model
        regimes = model.regimes()
        strategies = model.strategies()
        return Allocation(
            statuses=self.statuses,
            global_table=model.table(None, self.statuses),
            regime_tables={r: model.table(r, self.statuses) for r in regimes},
            multipliers={s: model.multiplier(s) for s in strategies},
            regime_multipliers={
                r: {s: model.multiplier(s, r) for s in strategies} for r in regimes
            },
            frozen=model.frozen,
        )
