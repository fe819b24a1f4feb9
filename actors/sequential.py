"""The edge test: has a strategy lost its edge? A one-sided CUSUM (Page's test) on its
pnl per unit of size, trade by trade (docs/optimization.md, "The edge test").

Each trade's pnl is standardised by a scale of the strategy's recent window, z = pnl / s,
with s the larger of the window's standard deviation and a robust scale, √(π/2) × the
mean absolute deviation from the median (both the standard deviation for normal pnls).
The standard deviation keeps fat tails honest: on Student-t(3) pnls the robust scale
alone reads the spread 20 % low, and the test raised several times its stated false
alarms (bench/sequential.py); the robust scale is the larger on two-valued records (a
fixed take-profit and stop-loss). Like the judged PSR, the test is never more certain
than either reading. The statistic is the log likelihood ratio of "the mean is −δ" against
"the mean is 0" for unit-variance normal z, reset at 0 (Page 1954):

    W = max(0, W − δ · z − δ² / 2)          alarm once W ≥ ln A

δ (``edge_loss``) is the loss per trade worth stopping for, in standard deviations (a
per-trade Sharpe ratio of −δ); A (``edge_false_alarm_trades``) is the stated false-alarm
rate: on a strategy without edge (mean 0) the mean number of trades before a false alarm
is at least A (Lorden 1971), and on one with a positive edge it is longer still. A
strategy that loses δ a trade is flagged after about 2 · ln A / δ² trades.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from alphad.actors.figures import ROUNDING_FLOOR

SQRT_HALF_PI = math.sqrt(math.pi / 2.0)
MIN_TRADES = 10
"""Trades in the window before the test runs: the scale of fewer is no measurement."""


def robust_scale(pnls: Sequence[float]) -> float:
    """√(π/2) × mean |pnl − median|: the standard deviation of normal pnls; 0.0 for fewer
    than two pnls or pnls without spread."""
    n = len(pnls)
    if n < 2:
        return 0.0
    ordered = sorted(pnls)
    half = n // 2
    median = ordered[half] if n % 2 else (ordered[half - 1] + ordered[half]) / 2.0
    deviation = math.fsum([abs(p - median) for p in pnls]) / n
    scale = SQRT_HALF_PI * deviation
    return scale if math.isfinite(scale) else 0.0


def edge_scale(pnls: Sequence[float]) -> float:
    """The scale the edge test standardises by: the larger of the standard deviation and
    ``robust_scale``; 0.0 for fewer than two pnls or pnls without spread, also when the
    spread is only rounding (at most ``ROUNDING_FLOOR`` of the mean |pnl|, as a Sharpe
    ratio reads it: twelve pnls of −0.1 have a computed deviation of 1.4e-17, and a
    test standardised by it would read each loss as 10^16 σ)."""
    n = len(pnls)
    if n < 2:
        return 0.0
    mean = math.fsum(pnls) / n
    deviation = math.sqrt(math.fsum([(p - mean) ** 2 for p in pnls]) / (n - 1))
    scale = max(deviation, robust_scale(pnls))
    if not scale > ROUNDING_FLOOR * (math.fsum(map(abs, pnls)) / n):
        return 0.0
    return scale if math.isfinite(scale) else 0.0


def threshold(false_alarm_trades: float) -> float:
    """The alarm level ln A for a mean of at least A trades between false alarms."""
    return math.log(false_alarm_trades)


def cusum(statistic: float, pnls: Sequence[float], scale: float, shift: float) -> float:
    """The statistic after ``pnls`` (in order), each standardised by ``scale``."""
    return cusum_to(statistic, pnls, scale, shift, math.inf)[0]


def cusum_to(
    statistic: float, pnls: Sequence[float], scale: float, shift: float, level: float
) -> tuple[float, int | None]:
    """``cusum`` up to the first of ``pnls`` at which the statistic reaches ``level``:
    the statistic then and that pnl's index, or the statistic after all and None. A
    reading of many trades alarms where one trade at a time would have, not only if
    the statistic is still that high at its end."""
    drift = shift * shift / 2.0
    for i, pnl in enumerate(pnls):
        z = pnl / scale
        if not math.isfinite(z):
            continue  # never sent by the performance model; no evidence either way
        statistic -= shift * z + drift
        if statistic < 0.0:
            statistic = 0.0
        elif statistic >= level:
            return statistic, i
    return statistic, None


def below_peak(statistic: float, pnls: Sequence[float], scale: float) -> float:
    """How far below its peak the equity of ``pnls`` (in order) leaves a strategy that was
    ``statistic`` below it, in units of ``scale``: max(0, D − z) trade by trade, a CUSUM
    with no allowance (the peak stop, docs/optimization.md). A strategy that gains μ σ a
    trade first falls K below its peak after about (e^(2μK) − 1 − 2μK) / (2μ²) trades on
    average (K² without edge, about K / |μ| when it loses)."""
    return below_peak_to(statistic, pnls, scale, math.inf)[0]


def below_peak_to(
    statistic: float, pnls: Sequence[float], scale: float, stop: float
) -> tuple[float, int | None]:
    """``below_peak`` up to the first of ``pnls`` that leaves the strategy ``stop`` below
    its peak: the fall then and that pnl's index, or the fall after all and None."""
    for i, pnl in enumerate(pnls):
        z = pnl / scale
        if not math.isfinite(z):
            continue  # never sent by the performance model; no evidence either way
        statistic -= z
        if statistic < 0.0:
            statistic = 0.0
        elif statistic >= stop:
            return statistic, i
    return statistic, None


def first_alarm(
    pnls: Sequence[float], scale: float, shift: float, false_alarm_trades: float
) -> int | None:
    """The 1-based trade at which the test first alarms on ``pnls``, or None: for the
    benchmark and the tests, with the same arithmetic as the lifecycle."""
    level = threshold(false_alarm_trades)
    statistic = 0.0
    for i, pnl in enumerate(pnls, start=1):
        statistic = cusum(statistic, (pnl,), scale, shift)
        if statistic >= level:
            return i
    return None
