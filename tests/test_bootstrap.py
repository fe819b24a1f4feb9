"""The replay's "could it be luck?" bootstrap against a direct resampling.

The reference draws the same blocks (same seeded generator, same calls), then builds each
resampled history day by day and computes its figures with ``statistics``; the quantiles
are interpolated by hand. It shares no arithmetic with ``replay.bootstrap``.
"""

from __future__ import annotations

import math
import random
import statistics

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from alphad.replay.bootstrap import SEED, bootstrap


def direct(
    base: list[float], mine: list[float], ppy: float, resamples: int, block_days: int
) -> tuple[list[float], list[float]]:
    """(Sharpe differences of the resamples where both are defined, pnl differences).

    Differences that are 0 in exact arithmetic come out of floats as noise: a pnl
    difference within a millionth of a cent, a Sharpe difference within a billionth of
    the Sharpe ratios (or of 1, for ratios near 0), is 0 (a tie), as in money counted in
    cents it can be nothing else.
    """
    days = len(base)
    block = min(block_days, days)
    blocks = math.ceil(days / block)
    rng = random.Random(SEED)
    sharpes, pnls = [], []
    for _ in range(resamples):
        starts = rng.choices(range(days), k=blocks)
        b = [base[(s + i) % days] for s in starts for i in range(block)][:days]
        a = [mine[(s + i) % days] for s in starts for i in range(block)][:days]
        pnl = sum(a) - sum(b)
        pnls.append(0.0 if abs(pnl) <= 1e-9 else pnl)
        sb, sa = statistics.stdev(b), statistics.stdev(a)
        if sb > 1e-9 and sa > 1e-9:
            sharpe_a = statistics.mean(a) / sa * math.sqrt(ppy)
            sharpe_b = statistics.mean(b) / sb * math.sqrt(ppy)
            tie = abs(sharpe_a - sharpe_b) <= 1e-9 * max(abs(sharpe_a), abs(sharpe_b), 1.0)
            sharpes.append(0.0 if tie else sharpe_a - sharpe_b)
    return sharpes, pnls


def ahead(differences: list[float]) -> float:
    """The share of resamples with alphad ahead, a tie counting half."""
    return sum(1.0 if d > 0 else 0.5 if d == 0 else 0.0 for d in differences) / len(differences)


def quantile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    position = p * (len(ordered) - 1)
    below = math.floor(position)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (position - below)


money = st.integers(-50_000, 50_000).map(lambda cents: cents / 100)


@settings(max_examples=30, deadline=None)
# Once found: a daily Sharpe difference of 1.25e9 from a resample without spread whose
# variance came out as rounding noise; pnl differences of 1e-18 counted as alphad ahead;
# alphad's days a multiple of the baseline's (the same Sharpe ratio, up to rounding);
# days whose mean is 0 but for rounding (Sharpe ratios of ±3e-16).
@example(days=[(0.0, 0.0), (0.0, 0.0), (-0.01, 0.01)], block_days=1, ppy=252.0)
@example(days=[(0.0, 0.0), (0.0, 0.0), (0.01, -0.01)], block_days=1, ppy=252.0)
@example(days=[(0.0, 0.0), (0.0, 0.03), (0.01, 0.01)], block_days=1, ppy=252.0)
@example(days=[(0.1, 0.3), (-0.07, -0.21), (0.13, 0.39), (0.0, 0.0)], block_days=2, ppy=365.0)
@example(days=[(-40.0, 0.0), (1.0, 1.0), (2.0, 2.0)], block_days=5, ppy=365.0)
@example(
    days=[(0.0, 0.0), (-0.01, 0.0), (-0.02, 0.0), (0.03, 0.0), (0.0, 0.01), (0.0, -0.01)],
    block_days=3,
    ppy=252.0,
)
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
    if len(days) <= block_days:
        # One block holds every day: no resample differs from the history but by its
        # order, so no range is told (it was the observed value, "ahead in 100 %").
        assert luck.resamples == 0 and luck.days == len(days)
        assert luck.total_pnl.observed == pytest.approx(sum(mine) - sum(base), abs=1e-6)
        for interval in (luck.daily_sharpe, luck.total_pnl):
            assert (interval.low, interval.high, interval.ahead) == (None, None, None)
        return
    sharpes, pnls = direct(base, mine, ppy, 300, block_days)
    assert luck.block_days == min(block_days, len(days))
    assert luck.total_pnl.observed == pytest.approx(sum(mine) - sum(base), abs=1e-6)
    assert luck.total_pnl.low == pytest.approx(quantile(pnls, 0.05), rel=1e-9, abs=1e-6)
    assert luck.total_pnl.high == pytest.approx(quantile(pnls, 0.95), rel=1e-9, abs=1e-6)
    assert luck.total_pnl.ahead == pytest.approx(ahead(pnls), abs=1e-12)
    if len(sharpes) < 150:
        assert luck.daily_sharpe.low is None and luck.daily_sharpe.ahead is None
        return  # most resamples without spread: no interval
    assert luck.daily_sharpe.low == pytest.approx(quantile(sharpes, 0.05), rel=1e-6, abs=1e-9)
    assert luck.daily_sharpe.high == pytest.approx(quantile(sharpes, 0.95), rel=1e-6, abs=1e-9)
    assert luck.daily_sharpe.ahead == pytest.approx(ahead(sharpes), abs=1e-12)


def test_the_same_days_on_both_sides_show_no_difference_at_all() -> None:
    rng = random.Random(3)
    days = [round(rng.gauss(5, 40), 2) for _ in range(90)]
    luck = bootstrap(days, list(days), 365.0)
    for interval in (luck.daily_sharpe, luck.total_pnl):
        # Every resample a tie: alphad as often ahead as behind.
        assert (interval.observed, interval.low, interval.high, interval.ahead) == (0, 0, 0, 0.5)


def test_flat_days_give_finite_sharpe_differences_and_rounding_is_no_lead() -> None:
    luck = bootstrap([0, 0, -0.01], [0, 0, 0.01], 252, resamples=300, block_days=1)
    # A resample with spread holds the one day with pnl once or twice among three: a
    # Sharpe ratio of (1/3)/(1/√3) or (2/3)/(1/√3) for alphad, its negative for the
    # baseline. A resample of one value three times has no spread: left out.
    root = math.sqrt(252)
    sharpe = luck.daily_sharpe
    assert sharpe.low == pytest.approx(2 / math.sqrt(3) * root)
    assert sharpe.high == pytest.approx(4 / math.sqrt(3) * root)
    assert sharpe.ahead == 1.0
    # The same days but for alphad's 0.03 on a day the baseline had 0: only the
    # resamples with that day put alphad ahead, the others are exact ties.
    base, mine = [0.0, 0.0, 0.01], [0.0, 0.03, 0.01]
    luck = bootstrap(base, mine, 252, resamples=300, block_days=1)
    pnl = luck.total_pnl
    assert pnl.low == 0.0 and pnl.ahead is not None
    _, pnls = direct(base, mine, 252, 300, 1)
    with_day = sum(1 for d in pnls if d > 0)
    assert with_day < 300 and pnl.ahead == pytest.approx((with_day + (300 - with_day) / 2) / 300)


def test_a_side_better_by_the_same_amount_every_day_is_always_ahead() -> None:
    rng = random.Random(4)
    base = [round(rng.gauss(0, 40), 2) for _ in range(91)]
    better = [b + 2.0 for b in base]
    luck = bootstrap(base, better, 365.0)
    # Every resample has the history's 91 days: 2.0 a day more.
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


def test_the_first_and_last_days_are_drawn_as_often_as_the_others() -> None:
    # Six days in blocks of five, alphad's whole lead on the first and the last day:
    # blocks that had to fit inside the history drew those days 0.6 times as often as
    # the others, so every resample put alphad 40 % short of its lead on the history
    # (+60, 90 % of resamples "+36 to +36"), and "ahead" rested on that.
    base = [10.0, -5.0, 3.0, 4.0, -2.0, 7.0]
    mine = [40.0, -5.0, 3.0, 4.0, -2.0, 37.0]
    luck = bootstrap(base, mine, 365.0, resamples=4_000)
    _, pnls = direct(base, mine, 365.0, 4_000, 5)
    assert luck.total_pnl.observed == pytest.approx(60.0)
    # Each day is drawn once a resample on average: the mean lead is the history's.
    assert statistics.mean(pnls) == pytest.approx(60.0, rel=0.03)
    assert luck.total_pnl.low is not None and luck.total_pnl.high is not None
    assert luck.total_pnl.low < 60.0 < luck.total_pnl.high


def test_a_history_no_longer_than_a_block_is_not_resampled_and_says_so() -> None:
    from alphad.replay.text import luck_lines

    # Five days, alphad skipping the one losing day: every resample was the same five
    # days turned round, "+40.00 to +40.00, 100.0 % of resamples".
    luck = bootstrap([-40.0, 0.0, 0.0, 0.0, 0.0], [0.0] * 5, 365.0)
    assert luck.resamples == 0 and luck.total_pnl.observed == 40.0
    assert luck.total_pnl.low is None and luck.total_pnl.ahead is None
    assert luck_lines(luck) == [
        "COULD IT BE LUCK? not told: the history has 5 days, no more than a block of 5, and"
        " every resample would be the history turned round"
    ]
    six = bootstrap([-40.0, 0.0, 0.0, 0.0, 0.0, 0.0], [0.0] * 6, 365.0)
    assert six.resamples == 2000 and six.total_pnl.low is not None
