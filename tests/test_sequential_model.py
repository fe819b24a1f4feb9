"""The edge test (actors/sequential.py, docs/optimization.md): its false-alarm rate on
no-edge noise and its delay on a decay, against a direct computation."""

from __future__ import annotations

import math
import random
import statistics

import pytest

from alphad.actors.sequential import (
    below_peak,
    below_peak_to,
    cusum,
    cusum_to,
    edge_scale,
    first_alarm,
    robust_scale,
    threshold,
)


def siegmund(mean_z: float, shift: float, false_alarm_trades: float) -> float:
    """Siegmund's approximation of the mean run length of a CUSUM whose increments are
    N(−δ·μ − δ²/2, δ²), written out here independently of the bench's copy."""
    drift = -shift * mean_z - shift**2 / 2.0
    b = math.log(false_alarm_trades) + 1.166 * shift
    a = 2.0 * drift / shift**2
    return (math.exp(-a * b) + a * b - 1.0) / (2.0 * drift**2 / shift**2)


def run_length(rng: random.Random, mean_z: float, shift: float, alarm_at: float) -> int:
    level = threshold(alarm_at)
    statistic, n = 0.0, 0
    while statistic < level:
        n += 1
        statistic = cusum(statistic, (rng.gauss(mean_z, 1.0),), 1.0, shift)
    return n


def test_on_no_edge_noise_false_alarms_come_no_sooner_than_stated() -> None:
    # A = 20 and δ = 0.5 make runs short enough to simulate 400 of them. Lorden's bound
    # says the mean run length of a strategy without edge is at least A; Siegmund's
    # approximation says how much longer (≈ 251 trades).
    rng = random.Random(7)
    runs = [run_length(rng, 0.0, 0.5, 20.0) for _ in range(400)]
    mean = statistics.fmean(runs)
    assert mean >= 20.0
    assert mean == pytest.approx(siegmund(0.0, 0.5, 20.0), rel=0.15)


def test_a_real_edge_raises_fewer_false_alarms_than_no_edge() -> None:
    rng = random.Random(8)
    flat = statistics.fmean(run_length(rng, 0.0, 0.5, 20.0) for _ in range(200))
    edge = statistics.fmean(run_length(rng, 0.1, 0.5, 20.0) for _ in range(200))
    assert edge > 1.5 * flat


def test_a_decay_is_flagged_after_the_computed_delay() -> None:
    # A strategy losing δ = 0.3 σ a trade, A = 1000: about 139 trades by Siegmund's
    # approximation; the lifecycle's own arithmetic, simulated, matches it.
    rng = random.Random(9)
    delays = []
    for _ in range(300):
        pnls = [rng.gauss(-0.3, 1.0) for _ in range(5_000)]
        at = first_alarm(pnls, 1.0, 0.3, 1000.0)
        assert at is not None
        delays.append(at)
    assert statistics.fmean(delays) == pytest.approx(siegmund(-0.3, 0.3, 1000.0), rel=0.1)


def test_the_statistic_is_the_reset_log_likelihood_ratio() -> None:
    # Three trades of z = −1, +2, −3 with δ = 0.5: increments 0.375, −1.125, 1.375.
    assert cusum(0.0, [-1.0], 1.0, 0.5) == pytest.approx(0.375)
    assert cusum(0.0, [-1.0, 2.0], 1.0, 0.5) == 0.0  # reset at 0
    assert cusum(0.0, [-1.0, 2.0, -3.0], 1.0, 0.5) == pytest.approx(1.375)
    assert cusum(0.0, [-2.0, -2.0], 2.0, 0.5) == pytest.approx(0.75)  # z = pnl / scale


def test_the_scale_is_never_below_the_standard_deviation_nor_the_robust_scale() -> None:
    rng = random.Random(10)
    normal = [rng.gauss(0.0, 2.0) for _ in range(20_000)]
    assert robust_scale(normal) == pytest.approx(2.0, rel=0.03)
    assert edge_scale(normal) == pytest.approx(2.0, rel=0.03)
    # Fat tails: the robust scale reads the spread low, the standard deviation does not.
    fat = [x * 10.0 if i % 50 == 0 else x for i, x in enumerate(normal)]
    assert edge_scale(fat) == pytest.approx(statistics.stdev(fat))
    assert robust_scale(fat) < 0.8 * statistics.stdev(fat)
    # A two-valued record (take-profit and stop-loss alike): the robust scale is larger.
    two_valued = [1.0, -1.0] * 20
    assert edge_scale(two_valued) == pytest.approx(math.sqrt(math.pi / 2.0))
    assert statistics.stdev(two_valued) < edge_scale(two_valued)
    assert robust_scale([3.0]) == 0.0 and edge_scale([3.0, 3.0]) == 0.0


@pytest.mark.parametrize("pnl", [-0.1, -0.3, -1.0, -2.0, 0.7, 1e-9])
def test_equal_pnls_have_no_scale_whatever_their_rounding(pnl: float) -> None:
    # Twelve pnls of -0.1 sum to a mean that is not exactly -0.1: their computed standard
    # deviation is 1.4e-17, the rounding of equal pnls, not a spread to standardise by.
    for n in (10, 12, 37, 100):
        assert edge_scale([pnl] * n) == 0.0, n
    # A real spread, however small against the pnls, is kept.
    assert edge_scale([pnl] * 11 + [pnl * (1 + 1e-9)]) > 0.0


@pytest.mark.parametrize("seed", range(5))
def test_a_reading_of_many_trades_alarms_at_the_trade_one_at_a_time_would(seed: int) -> None:
    rng = random.Random(seed)
    pnls = [rng.gauss(-0.6, 1.0) for _ in range(80)] + [rng.gauss(0.5, 1.0) for _ in range(200)]
    level, stop = threshold(1000.0), 8.0
    # One trade at a time, written out: the first trade where each statistic reaches its
    # line, and the statistic there.
    edge = fall = 0.0
    edge_first = fall_first = None
    for i, pnl in enumerate(pnls):
        edge = max(0.0, edge - 0.3 * pnl / 1.0 - 0.045)
        fall = max(0.0, fall - pnl / 1.0)
        if edge_first is None and edge >= level:
            edge_first = (edge, i)
        if fall_first is None and fall >= stop:
            fall_first = (fall, i)
    assert edge_first is not None and fall_first is not None
    # The gains after the losing run take both back under their lines by the end.
    assert cusum(0.0, pnls, 1.0, 0.3) < level and below_peak(0.0, pnls, 1.5) < stop
    assert cusum_to(0.0, pnls, 1.0, 0.3, level) == pytest.approx(edge_first, rel=1e-12)
    assert below_peak_to(0.0, pnls, 1.0, stop) == pytest.approx(fall_first, rel=1e-12)
    assert cusum_to(0.0, pnls, 1.0, 0.3, math.inf) == (cusum(0.0, pnls, 1.0, 0.3), None)
