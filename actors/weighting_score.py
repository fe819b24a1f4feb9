"""How the weighting model judges one recent window: the composite score of its
scale-free figures (docs/optimization.md), the target multiplier the score sets, held at
base unless the window's PSR makes its sign significant, and the prior a short window
borrows from the other strategies.

Apart from the model (actors/weighting.py), which moves, keeps and rolls back the
weights, because this part reads only the config and the figures: it changes no weight.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from alphad.actors.figures import Figures, pnl_scale, pooled_sharpe
from alphad.actors.weighting_config import WeightingConfig


def bounded(value: float, low: float = -1.0, high: float = 1.0, nan: float = 0.0) -> float:
    """``value`` clamped to [low, high]; NaN becomes ``nan`` (neutral unless told)."""
    if math.isnan(value):
        return nan
    return low if value < low else high if value > high else value


def _finite_or_none(value: float | None) -> float | None:
    """For metrics that are journaled as JSON: no NaN or infinity."""
    return value if value is not None and math.isfinite(value) else None


class Scoring:
    """The score and the target of a window under ``config``: the base class of
    ``WeightingModel``, the part of it that reads no weight."""

    config: WeightingConfig

    def score(self, figures: Figures) -> tuple[float, dict[str, Any]]:
        """The composite score in [-1, 1] of one recent window, and the terms behind it.

        Every term is scale-free, so strategies that trade different sizes compare.
        """
        cfg = self.config
        scale = pnl_scale(figures)
        sharpe = figures.sharpe
        sharpe_term = bounded(sharpe / cfg.sharpe_reference) if sharpe is not None else 0.0
        expectancy_units = figures.expectancy / scale if scale > 0 else 0.0
        expectancy_term = bounded(expectancy_units / cfg.expectancy_reference)
        profit_factor = figures.profit_factor
        if profit_factor is None:
            # No losing trade: as good as a profit factor gets; no trade either way: neutral.
            profit_factor_term = 1.0 if figures.profit_factor_infinite else 0.0
        elif math.isnan(profit_factor):
            profit_factor_term = 0.0
        elif profit_factor <= 0.0:
            profit_factor_term = -1.0
        else:
            profit_factor_term = bounded(
                math.log(profit_factor) / math.log(cfg.profit_factor_reference)
            )
        drawdown_units = figures.max_drawdown / scale if scale > 0 else 0.0
        drawdown_penalty = bounded(drawdown_units / cfg.drawdown_reference, 0.0, 1.0)
        edge_weight = cfg.sharpe_weight + cfg.expectancy_weight + cfg.profit_factor_weight
        edge = (
            (
                cfg.sharpe_weight * sharpe_term
                + cfg.expectancy_weight * expectancy_term
                + cfg.profit_factor_weight * profit_factor_term
            )
            / edge_weight
            if edge_weight > 0
            else 0.0
        )
        score = bounded(edge - cfg.drawdown_weight * drawdown_penalty)
        metrics: dict[str, Any] = {
            "trades": figures.trades,
            "expectancy": _finite_or_none(figures.expectancy),
            "profit_factor": _finite_or_none(profit_factor),
            "profit_factor_infinite": figures.profit_factor_infinite,
            "sharpe": _finite_or_none(sharpe),
            "max_drawdown": _finite_or_none(figures.max_drawdown),
            "psr": _finite_or_none(figures.psr),
            "judged_psr": _finite_or_none(figures.judged_psr),
            "mean_abs_pnl": scale,
            "terms": {
                "sharpe": sharpe_term,
                "expectancy": expectancy_term,
                "profit_factor": profit_factor_term,
                "drawdown_penalty": drawdown_penalty,
            },
            "score": score,
        }
        return score, metrics

    def target_multiplier(self, score: float) -> float:
        """Score -1 → ``min_multiplier``, 0 → 1.0, +1 → ``max_multiplier``, linear between."""
        cfg = self.config
        score = bounded(score)
        if score >= 0:
            return 1.0 + score * (cfg.max_multiplier - 1.0)
        return 1.0 + score * (1.0 - cfg.min_multiplier)

    def evidenced_target(self, score: float, figures: Figures) -> float:
        """The target multiplier of a window's score where the window's judged PSR
        (``Figures.judged_psr``) makes its sign significant at ``significance``; 1.0
        (base) where it does not.

        A per-trade Sharpe of 0.1 and one of 0 cannot be told apart on 100 trades: acting on
        the score of such a window sizes a good strategy down on noise. A score against the
        significant sign (a penalty outweighing a significant edge) targets base as well.
        Without a PSR, a window of at least three trades has no spread to be unsure about
        (every trade alike) and its score decides; a shorter one is no evidence.
        """
        psr = figures.judged_psr
        if psr is None:
            return self.target_multiplier(score) if figures.trades >= 3 else 1.0
        level = self.config.significance
        if psr < level:
            return self.target_multiplier(min(score, 0.0))
        if psr > 1.0 - level:
            return self.target_multiplier(max(score, 0.0))
        return 1.0  # also a NaN PSR

    def pooled_prior(self, recent: Mapping[str, Figures]) -> tuple[float, float] | None:
        """``pooled_sharpe`` of the windows of ``recent`` (strategy → figures) at the
        config's ``min_trades``: the prior a short window borrows."""
        return pooled_sharpe(recent.values(), self.config.min_trades)
