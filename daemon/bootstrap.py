"""Could alphad's edge over the baseline in a replay be luck? (docs/replay.md)

A replay is one history: alphad's daily Sharpe may come out above the baseline's because
alphad helps, or because its refusals happened to miss the bad days. The paired block
bootstrap answers with the history itself. It draws new histories of the same length
from blocks of ``block_days`` consecutive calendar days, the same days for both sides
(so what the market did on a day is shared, as it was), and recomputes the difference in
each. Blocks keep a few days of serial correlation (a losing streak, a regime spell)
together. The spread of the differences is how much the observed one could move by luck;
the share of resamples in which alphad is ahead is how often it stays ahead.

Deterministic: the resamples come from a ``random.Random`` seeded with a fixed string,
so the same replay gives the same interval on every run and machine.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Sequence
from itertools import accumulate

import msgspec

BLOCK_DAYS = 5
RESAMPLES = 2_000
SEED = "alphad replay bootstrap"
# The interval: the 5th and the 95th percentile of the resampled differences.
INTERVAL = 0.90


class Interval(msgspec.Struct, kw_only=True):
    """alphad − baseline for one figure: on the history, and over the resamples."""

    observed: float | None
    low: float | None  # the 5th percentile of the resampled differences
    high: float | None  # the 95th percentile
    ahead: float | None  # share of resamples in which alphad is ahead (> 0)


class Luck(msgspec.Struct, kw_only=True):
    """The paired block bootstrap of a replay's daily pnl."""

    resamples: int
    block_days: int
    daily_sharpe: Interval
    total_pnl: Interval


def bootstrap(
    baseline_daily: Sequence[float],
    alphad_daily: Sequence[float],
    periods_per_year: float,
    *,
    resamples: int = RESAMPLES,
    block_days: int = BLOCK_DAYS,
    seed: str = SEED,
) -> Luck:
    """The bootstrap of two daily pnl series over the same calendar days.

    Each resample is ``ceil(days / block)`` blocks of ``block`` consecutive days
    (``block`` = ``block_days``, or every day of a shorter history), each starting on a
    day drawn uniformly among those that leave room for the whole block. Daily Sharpe is
    mean / standard deviation (n − 1) × √``periods_per_year``, undefined for a side
    without spread; the pnl difference is scaled to the history's length.
    """
    days = len(baseline_daily)
    if days != len(alphad_daily):
        raise ValueError("both sides need the same days")
    if resamples < 1 or block_days < 1:
        raise ValueError("resamples and block_days must be at least 1")
    observed_pnl = math.fsum(alphad_daily) - math.fsum(baseline_daily)
    observed_sharpe = _difference(
        daily_sharpe(alphad_daily, periods_per_year), daily_sharpe(baseline_daily, periods_per_year)
    )
    if days == 0:
        empty = Interval(observed=None, low=None, high=None, ahead=None)
        return Luck(resamples=0, block_days=0, daily_sharpe=empty, total_pnl=empty)
    block = min(block_days, days)
    starts = days - block + 1
    blocks = -(-days // block)
    length = blocks * block
    # The sums of each block (by its first day) of b, b², a and a², from prefix sums.
    sums = []
    for series in (baseline_daily, alphad_daily):
        prefix = list(accumulate(series, initial=0.0))
        squares = list(accumulate((x * x for x in series), initial=0.0))
        sums.append([prefix[s + block] - prefix[s] for s in range(starts)])
        sums.append([squares[s + block] - squares[s] for s in range(starts)])
    base_sum, base_squares, mine_sum, mine_squares = sums
    rng = random.Random(seed)
    choices = rng.choices
    first_days = range(starts)
    sharpe_differences: list[float] = []
    pnl_differences: list[float] = []
    scale = days / length
    root = math.sqrt(periods_per_year)
    for _ in range(resamples):
        picks = choices(first_days, k=blocks)
        b = sum([base_sum[k] for k in picks])
        a = sum([mine_sum[k] for k in picks])
        pnl_differences.append((a - b) * scale)
        difference = _difference(
            _sharpe_of_sums(a, sum([mine_squares[k] for k in picks]), length, root),
            _sharpe_of_sums(b, sum([base_squares[k] for k in picks]), length, root),
        )
        if difference is not None:
            sharpe_differences.append(difference)
    return Luck(
        resamples=resamples,
        block_days=block,
        daily_sharpe=_interval(observed_sharpe, sharpe_differences, resamples),
        total_pnl=_interval(observed_pnl, pnl_differences, resamples),
    )


def _interval(observed: float | None, differences: list[float], resamples: int) -> Interval:
    # Fewer than half the resamples defined (a side without spread in most of them): no
    # interval worth the name.
    if len(differences) < max(2, resamples // 2):
        return Interval(observed=observed, low=None, high=None, ahead=None)
    tail = (1.0 - INTERVAL) / 2.0
    cuts = statistics.quantiles(differences, n=round(1.0 / tail), method="inclusive")
    ahead = sum(1 for d in differences if d > 0.0) / len(differences)
    return Interval(observed=observed, low=cuts[0], high=cuts[-1], ahead=ahead)


def daily_sharpe(daily: Sequence[float], periods_per_year: float) -> float | None:
    """Annualized daily Sharpe: mean / standard deviation (n − 1) of the daily pnl ×
    √``periods_per_year``; None for fewer than two days or no spread."""
    n = len(daily)
    if n < 2:
        return None
    mean = math.fsum(daily) / n
    std = math.sqrt(math.fsum((x - mean) ** 2 for x in daily) / (n - 1))
    if not std > 1e-12 * max(abs(mean), 1e-300):
        return None
    return mean / std * math.sqrt(periods_per_year)


def _sharpe_of_sums(total: float, squares: float, n: int, root: float) -> float | None:
    if n < 2:
        return None
    mean = total / n
    variance = (squares - total * mean) / (n - 1)
    std = math.sqrt(variance) if variance > 0.0 else 0.0
    if not std > 1e-12 * max(abs(mean), 1e-300):
        return None
    return mean / std * root


def _difference(a: float | None, b: float | None) -> float | None:
    return a - b if a is not None and b is not None else None
