"""The weighting's configuration: ``[weighting]`` and ``[strategies.NAME]`` with its
per-regime thresholds (``[strategies.NAME.regimes.REGIME]``).

Apart from the model (actors/weighting.py) because the lifecycle reads the strategies'
limits and the daemon's config validates every shape here, neither needing the model.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

from alphad.protocol.messages import Name

# Upper bounds keep infinities out of the config (msgspec lets inf pass a bare ``gt=0``).
BaseWeight = Annotated[float, Meta(gt=0.0, le=1000.0)]
Reference = Annotated[float, Meta(gt=0.0, le=1e6)]
TermWeight = Annotated[float, Meta(ge=0.0, le=100.0)]
DrawdownLimit = Annotated[float, Meta(gt=0.0, le=1e15)]


def _check_drawdowns(soft: float | None, hard: float | None) -> None:
    if soft is not None and hard is not None and soft > hard:
        raise ValueError(f"soft_drawdown {soft:g} is over hard_drawdown {hard:g}")


class RegimeLimits(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """``[strategies.NAME.regimes.REGIME]``: the lifecycle's thresholds for one strategy's
    trades in one regime (``[lifecycle] per_regime``); each unset key is ``[lifecycle]``'s
    (``regime_min_trades`` for ``min_trades``)."""

    min_trades: Annotated[int, Meta(ge=1, le=100_000)] | None = None
    win_rate_floor: Annotated[float, Meta(ge=0.0, le=1.0)] | None = None
    psr_floor: Annotated[float, Meta(ge=0.0, le=1.0)] | None = None
    soft_drawdown: DrawdownLimit | None = None
    hard_drawdown: DrawdownLimit | None = None

    def __post_init__(self) -> None:
        _check_drawdowns(self.soft_drawdown, self.hard_drawdown)


class StrategyConfig(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """``[strategies.NAME]``: a configured strategy."""

    # None: ``[weighting] default_base_weight``, as for a strategy first seen in a request
    # (declared only for its drawdown limits, one took 1.0 beside a default of 0.25).
    base_weight: BaseWeight | None = None
    # Absolute drawdown limits in pnl units, used by the lifecycle; without them its
    # relative limits (in average trades) apply.
    soft_drawdown: DrawdownLimit | None = None
    hard_drawdown: DrawdownLimit | None = None
    # Thresholds of the per-regime lifecycle, by regime.
    regimes: dict[Name, RegimeLimits] = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_drawdowns(self.soft_drawdown, self.hard_drawdown)


class WeightingConfig(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """``[weighting]``: registration, bounds and the composite score (docs/optimization.md)."""

    default_base_weight: BaseWeight = 1.0
    auto_register: bool = True
    min_trades: Annotated[int, Meta(ge=1, le=100_000)] = 20
    min_multiplier: Annotated[float, Meta(gt=0.0, le=1.0)] = 0.1
    # 1.0: alphad sizes a strategy down, never up (more size raises drawdown; docs/replay.md).
    max_multiplier: Annotated[float, Meta(ge=1.0, le=10.0)] = 1.0
    max_change: Annotated[float, Meta(gt=0.0, le=1.0)] = 0.15
    # A weight is judged again (and may move by max_change) only once this share of its
    # recent window is trades made since it was last judged: max_change is a limit per
    # renewal of the evidence, not per cycle or per trade.
    step_share: Annotated[float, Meta(gt=0.0, le=1.0)] = 0.5
    # A weight leaves base only on significant evidence: its target is the score's below
    # base only when the window's PSR (the probability that the true per-trade Sharpe is
    # above 0) is below this level, above base only when the PSR is above 1 - this level;
    # otherwise the target is base. 0.5 lets the score's sign alone decide.
    significance: Annotated[float, Meta(gt=0.0, le=0.5)] = 0.1
    # A strategy with fewer than min_trades trades (at least 3) borrows strength from the
    # strategies that have min_trades: its per-trade Sharpe is shrunk toward theirs
    # (empirical Bayes, the pool worth at most min_trades trades) and its weight is judged
    # on that posterior. False: such a strategy keeps its weight until min_trades.
    borrow_strength: bool = True
    # Edge terms, each scaled so that its reference value scores +1 (clamped to [-1, 1]).
    sharpe_reference: Reference = 0.3  # per-trade Sharpe
    expectancy_reference: Reference = 0.3  # expectancy / mean |pnl|
    # Profit factor on a log scale, so that 2.0 scores +1 and 0.5 scores -1.
    profit_factor_reference: Annotated[float, Meta(gt=1.0, le=1e6)] = 2.0
    sharpe_weight: TermWeight = 0.4
    expectancy_weight: TermWeight = 0.3
    profit_factor_weight: TermWeight = 0.3
    # Drawdown is a penalty only (a small drawdown earns nothing): drawdown_weight at a
    # max drawdown of drawdown_reference average trades or more.
    drawdown_reference: Reference = 20.0
    drawdown_weight: Annotated[float, Meta(ge=0.0, le=2.0)] = 0.25
