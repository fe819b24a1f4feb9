"""Could alphad's edge over the baseline in a replay be luck? (docs/replay.md)

A replay is one history: alphad's daily Sharpe may come out above the baseline's because
alphad helps, or because its refusals happened to miss the bad days. The paired block
bootstrap answers with the history itself. It draws new histories of the same length
from blocks of ``block_days`` consecutive calendar days, the same days for both sides
(so what the market did on a day is shared, as it was), and recomputes the difference in
each. Blocks keep a few days of serial correlation (a losing streak, a regime spell)
together. The spread of the differences is how much the observed one could move by luck;
the share of resamples in which alphad is ahead (a tie counting half) is how often it
stays ahead.

Deterministic: the resamples come from a ``random.Random`` seeded with a fixed string,
so the same replay gives the same interval on every run and machine.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Sequence

import msgspec

from alphad.actors.figures import ROUNDING_FLOOR, figures_of, sharpe_ratio

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
    ahead: float | None  # share of resamples in which alphad is ahead (> 0; a tie: half)


class Luck(msgspec.Struct, kw_only=True):
    """The paired block bootstrap of a replay's daily pnl."""

    resamples: int  # 0: none drawn (no days, or no more days than a block)
    block_days: int
    daily_sharpe: Interval
    total_pnl: Interval
    days: int = 0  # the history's calendar days


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
    (``block`` = ``block_days``; a history of no more days than that is not resampled:
    every resample would be the history turned round), each starting on a
    day drawn uniformly, running on from the last day to the first (circular blocks),
    the last block cut so that the resample has the history's days. Daily Sharpe is
    the performance model's Sharpe ratio of the days × √``periods_per_year``, undefined
    for a side without spread (such a resample is left out of the Sharpe interval). A
    difference within rounding of 0 is a tie, counted as half a resample ahead.
    """
    days = len(baseline_daily)
    if days != len(alphad_daily):
        raise ValueError("both sides need the same days")
    if resamples < 1 or block_days < 1:
        raise ValueError("resamples and block_days must be at least 1")
    observed_pnl = _difference(
        math.fsum(alphad_daily),
        math.fsum(baseline_daily),
        math.fsum(map(abs, alphad_daily)) + math.fsum(map(abs, baseline_daily)),
    )
    observed_sharpe = _sharpe_difference(
        daily_sharpe(alphad_daily, periods_per_year), daily_sharpe(baseline_daily, periods_per_year)
    )
    if days == 0:
        empty = Interval(observed=None, low=None, high=None, ahead=None)
        return Luck(resamples=0, block_days=0, daily_sharpe=empty, total_pnl=empty)
    if days <= block_days:
        # One block holds every day: each resample is the history turned round, with its
        # sums and its Sharpe ratios, so every range would be the observed value and
        # alphad "ahead in 100 %": certainty from no evidence. None is drawn.
        return Luck(
            resamples=0,
            block_days=block_days,
            daily_sharpe=Interval(observed=observed_sharpe, low=None, high=None, ahead=None),
            total_pnl=Interval(observed=observed_pnl, low=None, high=None, ahead=None),
            days=days,
        )
    block = min(block_days, days)
    blocks = -(-days // block)
    last = days - (blocks - 1) * block  # the days of the last block, cut to the history
    # Circular blocks (Politis and Romano): a block may run past the last day into the
    # first, so that every day is drawn equally often, and the resample is cut to the
    # history's days. Blocks that had to fit inside the history drew its first and last
    # days less often than the others: on a history of six days, 0.6 times as often.
    base_days = [*baseline_daily, *baseline_daily[: block - 1]]
    mine_days = [*alphad_daily, *alphad_daily[: block - 1]]
    base_blocks = [_Block(base_days[s : s + block]) for s in range(days)]
    mine_blocks = [_Block(mine_days[s : s + block]) for s in range(days)]
    base_tails = [_Block(base_days[s : s + last]) for s in range(days)]
    mine_tails = [_Block(mine_days[s : s + last]) for s in range(days)]
    rng = random.Random(seed)
    choices = rng.choices
    first_days = range(days)
    sharpe_differences: list[float] = []
    pnl_differences: list[float] = []
    root = math.sqrt(periods_per_year)
    for _ in range(resamples):
        *picks, end = choices(first_days, k=blocks)
        base = _Resample([*(base_blocks[k] for k in picks), base_tails[end]])
        mine = _Resample([*(mine_blocks[k] for k in picks), mine_tails[end]])
        pnl = _difference(mine.total, base.total, mine.absolute + base.absolute)
        pnl_differences.append(pnl)
        difference = _sharpe_difference(mine.sharpe(root), base.sharpe(root))
        if difference is not None:
            sharpe_differences.append(difference)
    return Luck(
        resamples=resamples,
        block_days=block,
        daily_sharpe=_interval(observed_sharpe, sharpe_differences, resamples),
        total_pnl=_interval(observed_pnl, pnl_differences, resamples),
        days=days,
    )


class _Block:
    """The sums of one block of days: total, absolute total, and the sum of squared
    deviations from the block's own mean (centred, so that nothing cancels)."""

    __slots__ = ("absolute", "m2", "mean", "n", "total")

    def __init__(self, days: Sequence[float]) -> None:
        self.n = len(days)
        self.total = math.fsum(days)
        self.mean = self.total / self.n
        self.absolute = math.fsum(map(abs, days))
        self.m2 = math.fsum((x - self.mean) ** 2 for x in days)


class _Resample:
    """The figures of one resampled history from its blocks, without building it.

    The squared deviations combine exactly as for two halves of a sample (Chan, Golub
    and LeVeque): each block's own plus its size × (block mean − overall mean)², every
    term non-negative, so a history without spread comes out without spread.
    """

    __slots__ = ("absolute", "m2", "n", "total")

    def __init__(self, picked: list[_Block]) -> None:
        self.n = sum(b.n for b in picked)
        self.total = math.fsum([b.total for b in picked])
        self.absolute = math.fsum([b.absolute for b in picked])
        mean = self.total / self.n
        self.m2 = math.fsum([b.m2 for b in picked]) + math.fsum(
            [b.n * (b.mean - mean) ** 2 for b in picked]
        )

    def sharpe(self, root: float) -> float | None:
        sharpe = sharpe_ratio(self.n, self.total, self.m2, self.absolute / self.n)
        return sharpe * root if sharpe is not None else None


def _interval(observed: float | None, differences: list[float], resamples: int) -> Interval:
    # Fewer than half the resamples defined (a side without spread in most of them): no
    # interval worth the name.
    if len(differences) < max(2, resamples // 2):
        return Interval(observed=observed, low=None, high=None, ahead=None)
    tail = (1.0 - INTERVAL) / 2.0
    cuts = statistics.quantiles(differences, n=round(1.0 / tail), method="inclusive")
    # Ties (exactly 0: _difference rounds noise to it) count half: alphad is as far ahead
    # as behind in them.
    ahead = sum(1.0 if d > 0.0 else 0.5 if d == 0.0 else 0.0 for d in differences)
    return Interval(observed=observed, low=cuts[0], high=cuts[-1], ahead=ahead / len(differences))


def daily_sharpe(daily: Sequence[float], periods_per_year: float) -> float | None:
    """Annualized daily Sharpe: the Sharpe ratio of the daily pnl (the performance
    model's, ``figures_of``) × √``periods_per_year``; None for fewer than two days or
    no spread."""
    sharpe = figures_of(daily).sharpe
    return sharpe * math.sqrt(periods_per_year) if sharpe is not None else None


def _difference(a: float, b: float, scale: float) -> float:
    """a − b, or exactly 0 (a tie) where it is rounding noise at ``scale``."""
    difference = a - b
    return 0.0 if abs(difference) <= ROUNDING_FLOOR * scale else difference


def _sharpe_difference(a: float | None, b: float | None) -> float | None:
    if a is None or b is None:
        return None
    # Near 0 the ratios themselves are noise (a mean that is 0 but for rounding): below
    # a Sharpe ratio of 1, the floor is absolute.
    return _difference(a, b, max(abs(a), abs(b), 1.0))
