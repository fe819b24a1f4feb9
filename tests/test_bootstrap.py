"""The replay's "could it be luck?" bootstrap against a direct resampling.

The reference draws the same blocks (same seeded generator, same calls), then builds each
resampled history day by day and computes its figures with ``statistics``; the quantiles
are interpolated by hand. It shares no arithmetic with ``daemon.bootstrap``.
"""

from __future__ import annotations

import math
import random
import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.bootstrap import SEED, bootstrap


def direct(
    base: list[float], mine: list[float], ppy: float, resamples: int, block_days: int
) -> tuple[list[float], list[float]]:
    """(Sharpe differences of the resamples where both are defined, pnl differences)."""
    days = len(base)
    block = min(block_days, days)
    blocks = math.ceil(days / block)
    rng = random.Random(SEED)
    sharpes, pnls = [], []
    for _ in range(resamples):
        starts = rng.choices(range(days - block + 1), k=blocks)
        b = [base[s + i] for s in starts for i in range(block)]
        a = [mine[s + i] for s in starts for i in range(block)]
        pnls.append((sum(a) - sum(b)) * days / len(a))
        sb, sa = statistics.stdev(b), statistics.stdev(a)
        if sb > 1e-9 and sa > 1e-9:
            sharpes.append(
                (statistics.mean(a) / sa - statistics.mean(b) / sb) * math.sqrt(ppy)
            )
    return sharpes, pnls


def quantile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    position = p * (len(ordered) - 1)
    below = math.floor(position)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (position - below)


money = st.integers(-50_000, 50_000).map(lambda cents: cents / 100)


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.tuples(money, money), min_size=3, max_size=60),
    st.integers(1, 9),
    st.sampled_from([252.0, 365.0]),
)
def test_the_bootstrap_matches_a_direct_resampling(
    days: list[tuple[float, float]], block_days: int, ppy: float
) -> None:
    base = [b for b, _ in days]
    mine = [a for _, a in days]
    luck = bootstrap(base, mine, ppy, resamples=300, block_days=block_days)
    sharpes, pnls = direct(base, mine, ppy, 300, block_days)
    assert luck.block_days == min(block_days, len(days))
    assert luck.total_pnl.observed == pytest.approx(sum(mine) - sum(base), abs=1e-6)
    assert luck.total_pnl.low == pytest.approx(quantile(pnls, 0.05), rel=1e-9, abs=1e-6)
    assert luck.total_pnl.high == pytest.approx(quantile(pnls, 0.95), rel=1e-9, abs=1e-6)
    assert luck.total_pnl.ahead == sum(1 for d in pnls if d > 1e-9) / len(pnls)
    if len(sharpes) < 150:
        return  # most resamples without spread: no interval, checked elsewhere
    assert luck.daily_sharpe.low == pytest.approx(quantile(sharpes, 0.05), rel=1e-6, abs=1e-9)
    assert luck.daily_sharpe.high == pytest.approx(quantile(sharpes, 0.95), rel=1e-6, abs=1e-9)


def test_the_same_days_on_both_sides_show_no_difference_at_all() -> None:
    rng = random.Random(3)
    days = [round(rng.gauss(5, 40), 2) for _ in range(90)]
    luck = bootstrap(days, list(days), 365.0)
    for interval in (luck.daily_sharpe, luck.total_pnl):
        assert (interval.observed, interval.low, interval.high, interval.ahead) == (0, 0, 0, 0)


def test_a_side_better_by_the_same_amount_every_day_is_always_ahead() -> None:
    rng = random.Random(4)
    base = [round(rng.gauss(0, 40), 2) for _ in range(91)]
    better = [b + 2.0 for b in base]
    luck = bootstrap(base, better, 365.0)
    # Every resample has 91 days' worth: 2.0 a day more, scaled to the history's length.
    assert luck.total_pnl.low == pytest.approx(182.0)
    assert luck.total_pnl.high == pytest.approx(182.0)
    assert luck.total_pnl.ahead == 1.0
    assert luck.daily_sharpe.ahead == 1.0 and luck.daily_sharpe.low > 0


def test_no_spread_means_no_sharpe_interval_and_mismatched_days_are_refused() -> None:
    flat = [0.0] * 30
    luck = bootstrap(flat, flat, 365.0, resamples=50)
    assert luck.daily_sharpe.observed is None and luck.daily_sharpe.low is None
    assert luck.total_pnl.low == 0.0
    with pytest.raises(ValueError, match="same days"):
        bootstrap([1.0, 2.0], [1.0], 365.0)
    with pytest.raises(ValueError, match="at least 1"):
        bootstrap([1.0, 2.0], [1.0, 2.0], 365.0, resamples=0)
