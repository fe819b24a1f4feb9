"""The scorer's configuration, ``[scorer]``: every threshold and shape of its factors.

Apart from the model so that every key of ``[scorer]``, its bound and its reason read
in one place, as docs/scoring.md lists them, and so that what reads the settings alone
(the daemon's config, the regime fits) imports no scoring state.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from alphad.protocol.messages import Name

Factor = Annotated[float, Meta(ge=0.0, le=1.0)]
Cap = Annotated[int, Meta(ge=1, le=10_000_000)]


class ScorerConfig(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """``[scorer]``: thresholds and shapes of the quality factors and the position size."""

    min_quality: Factor = 0.3
    # f_confluence. "record": judged by what confluence has predicted for
    # the strategy: 1.0 unless the strategy's outcomes at this confluence bucket are
    # significantly below its own rate, then their Beta posterior over that rate, at least
    # confluence_floor. "target": confluence_floor with no agreeing indicator, rising
    # linearly to 1.0 at confluence_target, whatever the record (the default). Both count every
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
