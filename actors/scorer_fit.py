"""f_regime learned: how well a strategy fits a regime, from its recent figures.

Apart from the model because it reads figures and the ``[scorer]`` settings alone, and
runs once per optimization cycle, never per signal: the model keeps only the fits it
yields (below 1.0) and the figures they were learned from, to skip the unmoved ones.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from alphad.actors.exact import student_t_above
from alphad.actors.figures import Figures
from alphad.actors.scorer_config import ScorerConfig

Fits = dict[tuple[str, str], tuple[Figures | None, Figures, float]]
"""(regime, strategy) -> the figures overall and in the regime its fit was last learned
from, and the fit: figures are shared and never modified, so the same two objects give
the same fit and a cycle recomputes only the fits that moved."""


def learn_regime_fits(
    config: ScorerConfig,
    known: Fits,
    overall: Mapping[str, Figures],
    by_regime: Mapping[str, Mapping[str, Figures]],
) -> tuple[dict[str, dict[str, float]], Fits]:
    """f_regime from each strategy's recent results per regime (regime -> strategy ->
    figures) against its recent results overall (strategy -> figures): regime ->
    strategy -> fit where below 1.0, and every fit with its figures, for the next call."""
    fit: dict[str, dict[str, float]] = {}
    fits: Fits = {}
    for regime, table in by_regime.items():
        for strategy, figures in table.items():
            whole = overall.get(strategy)
            key = (regime, strategy)
            last = known.get(key)
            if last is not None and last[0] is whole and last[1] is figures:
                factor = last[2]
            else:
                factor = regime_fit_of(config, whole, figures)
            fits[key] = (whole, figures, factor)
            if factor < 1.0:
                fit.setdefault(regime, {})[strategy] = factor
    return fit, fits


def regime_fit_of(config: ScorerConfig, overall: Figures | None, in_regime: Figures) -> float:
    """1 + sensitivity × n / (n + prior trades) × min(0, (E_regime − E_overall) / mean|pnl|),
    at least regime_floor; 1.0 without enough evidence."""
    trades = in_regime.trades
    if overall is None or trades < config.regime_min_trades:
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
    if sharpe is not None:
        if sharpe != 0.0:
            deviation = abs(in_regime.expectancy / sharpe)
        elif len(in_regime.pnls) >= 2:
            # A mean of exactly 0 with spread (+1, −1, …): the ratio gives no deviation.
            mean = in_regime.expectancy
            squares = math.fsum([(p - mean) * (p - mean) for p in in_regime.pnls])
            deviation = math.sqrt(squares / (len(in_regime.pnls) - 1))
        else:
            return 1.0  # no spread to measure the gap against: no significance
        error = deviation / math.sqrt(trades)
        shortfall = overall.expectancy - in_regime.expectancy
        if not student_t_above(shortfall / error, trades - 1) <= config.significance:
            return 1.0
    evidence = trades / (trades + config.regime_prior_trades)
    return max(config.regime_floor, 1.0 + config.regime_sensitivity * evidence * gap)
