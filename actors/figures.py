"""The performance figures of one group of trades, as defined in docs/metrics.md."""

from __future__ import annotations

import math
from typing import Any

import msgspec

# Below this fraction of the figures' scale a quantity is rounding noise, not a
# measurement: identical pnls must give "no Sharpe", not a huge number.
ROUNDING_FLOOR = 1e-12


def sharpe_ratio(n: int, total: float, m2: float, mean_abs: float) -> float | None:
    """Mean / standard deviation (n − 1) of ``n`` pnls, from their sum ``total`` and the
    sum ``m2`` of their squared deviations from their mean.

    None for fewer than two pnls, or where the standard deviation is rounding noise at
    the pnls' scale ``mean_abs`` (their mean absolute value): pnls without spread.
    ``m2`` must be summed from deviations (centred, or combined from centred parts),
    never as the sum of squares minus the squared sum, which cancels to noise.
    """
    if n < 2:
        return None
    std = math.sqrt(max(m2, 0.0) / (n - 1))
    if not std > ROUNDING_FLOOR * mean_abs:
        return None
    return total / n / std


class Figures(msgspec.Struct, kw_only=True):
    """Every figure of one group over one window (None where the figure is undefined)."""

    trades: int = 0
    wins: int = 0
    losses: int = 0
    win_rate: float = 0.0
    expectancy: float = 0.0
    total_pnl: float = 0.0
    gross_profit: float = 0.0
    gross_loss: float = 0.0
    profit_factor: float | None = None
    profit_factor_infinite: bool = False
    avg_win: float | None = None
    avg_loss: float | None = None
    sharpe: float | None = None
    sortino: float | None = None
    sqn: float | None = None
    psr: float | None = None
    # The PSR the weights and the lifecycle judge by: the reported ``psr`` where skew and
    # kurtosis make the Sharpe ratio less certain than for normal returns, the normal
    # returns' PSR where they would make it more certain (one huge trade sets both the
    # Sharpe ratio and the skew); defined wherever the Sharpe ratio is, from 3 trades on (also
    # where a two-valued record leaves ``psr`` undefined). Never on the wire.
    judged_psr: float | None = None
    max_drawdown: float = 0.0
    current_drawdown: float = 0.0
    # Mean absolute pnl of the window: the scale that makes drawdowns comparable across
    # strategies that trade different sizes (drawdown / mean_abs_pnl is in "average trades").
    mean_abs_pnl: float = 0.0
    # Only in the windows the weights and the lifecycle judge (pnl per unit of size,
    # docs/optimization.md), never on the wire: how many trades the group has recorded in
    # all (the window's newest trade is number ``seen``), and the window's pnls, oldest
    # first, so that a rule can judge only its newest trades. 0 and () elsewhere.
    seen: int = 0
    pnls: tuple[float, ...] = ()

    def as_row(self) -> dict[str, Any]:
        """The wire row's metric keys (``protocol.messages.METRIC_FIELDS``)."""
        row = msgspec.structs.asdict(self)
        del row["judged_psr"], row["mean_abs_pnl"], row["seen"], row["pnls"]
        return row


def fingerprint(figures: Figures) -> tuple[float, float, float, float]:
    """What identifies a recent window: it changes with every new trade in it.

    Models use it so that a cycle without a new trade is not counted as new evidence.
    """
    values = (figures.total_pnl, figures.max_drawdown, figures.current_drawdown)
    # Non-finite figures (never sent by the performance model) would not survive a
    # snapshot's round trip; they get one stand-in value.
    total, worst, current = (v if math.isfinite(v) else -1.0 for v in values)
    return (float(figures.trades), total, worst, current)
