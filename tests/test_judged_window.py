"""The judged window's kept ratios and sizes in order against a direct recomputation.

A judged window (``actors.performance_windows.JudgedWindow``) keeps, trade by trade, each trade's
pnl / size and its sizes in order, so that judging it needs neither the divisions nor
the sort of ``per_unit_pnls``. The figures it judges must be those of the direct
recomputation bit for bit (a replay's output is byte for byte the same): every float is
compared by its repr, so even a zero's sign counts. The reference below is the rule of
``JudgedWindow`` written out as plainly as it reads, sharing no code with the model.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence

import msgspec
from hypothesis import example, given, settings
from hypothesis import strategies as st

from alphad.actors.figures import ROUNDING_FLOOR, Figures, figures_of
from alphad.actors.performance import PerformanceConfig, PerformanceModel
from alphad.actors.performance_windows import SIZE_FLOOR_SHARE, JudgedWindow, per_unit_pnls
from alphad.actors.sequential import edge_scale, robust_scale


def plain_per_unit(pnls: Sequence[float], sizes: Sequence[float]) -> list[float]:
    """pnl / max(size, half the median size), the pnl itself where that overflows."""
    if not sizes:
        return []
    floor = SIZE_FLOOR_SHARE * statistics.median(sizes)
    out = []
    for pnl, size in zip(pnls, sizes, strict=True):
        ratio = pnl / (size if size > floor else floor)
        out.append(ratio if math.isfinite(ratio) else pnl)
    return out


def plain_drawdowns(pnls: Sequence[float]) -> tuple[float, float]:
    """The worst and the current fall of the running pnl from its peak, both from 0."""
    running = peak = worst = 0.0
    for pnl in pnls:
        running = running + pnl
        peak = running if running > peak else peak
        worst = peak - running if peak - running > worst else worst
    return worst, peak - running


def same(a: Figures | list[float] | float, b: Figures | list[float] | float) -> bool:
    """Equal bit for bit: every float by its repr (NaN equals NaN, -0.0 is not 0.0)."""
    return repr(msgspec.to_builtins(a)) == repr(msgspec.to_builtins(b))


def direct(window: JudgedWindow) -> Figures:
    """The window's judged figures recomputed from its rings alone."""
    per_unit = plain_per_unit(window.pnls.items(), window.sizes.items())
    figures = figures_of(per_unit, seen=window.seen, keep_pnls=True)
    figures.sized_pnls = tuple(window.pnls.items())  # as traded
    return figures


pnls = st.one_of(
    st.floats(-1e6, 1e6, allow_nan=False),
    st.sampled_from([0.0, -0.0, 1e300, -1e300, 5e-324, 1.5, -2.25]),
)
# The sizes alphad chooses (a degraded strategy at 0.65), sizes near the floor, sizes so
# tiny that a ratio overflows, and sizes no trade reports (only a restored state holds them).
sizes = st.one_of(
    st.floats(1e-3, 4.0),
    st.sampled_from([1.0, 0.65, 0.5, 0.325, 1e-300, 5e-324, 1e300]),
)
odd_sizes = st.sampled_from([0.0, -1.0, math.inf, math.nan, -0.0])
trades = st.lists(st.tuples(pnls, sizes), max_size=40)


def check(window: JudgedWindow) -> None:
    """The window's kept structure and its figures, against the rings."""
    held = window.sizes.items()
    if window.odd_sizes >= 0:
        assert list(window.ordered_sizes) == sorted(s for s in held if 0.0 < s < math.inf)
        assert window.odd_sizes == sum(not 0.0 < s < math.inf for s in held)
        ratios = window.ratios.items()
        for ratio, pnl, size in zip(ratios, window.pnls.items(), held, strict=True):
            assert not 0.0 < size < math.inf or same(ratio, pnl / size)
    window.judged = None  # judge it afresh, not from the cache
    assert outcome(lambda: window.judged_figures()) == outcome(lambda: direct(window))


def outcome(judge: Callable[[], Figures]) -> str:
    """The figures' repr, or the error judging raised (a floor of 0 divides by zero, a
    sum of huge ratios overflows ``math.fsum``: the same for both, or a difference)."""
    try:
        return repr(msgspec.to_builtins(judge()))
    except (ZeroDivisionError, OverflowError) as error:
        return type(error).__name__


@settings(max_examples=300, deadline=None)
@given(trades, st.integers(2, 6))
# A window full of sizes the floor divides: the median moves as trades leave.
@example([(1.0, 1.0), (2.0, 0.2), (-1.0, 1.0), (3.0, 1.0), (1.0, 0.2)], 3)
# A ratio that overflows to infinity: the trade counts at its pnl.
@example([(1e300, 1e-300), (1.0, 1e-300), (-1.0, 1e-300)], 2)
# Two ratios that are finite but whose sum overflows.
@example([(1e300, 1e-8), (1e300, 1e-8)], 2)
# Zeros of both signs.
@example([(-0.0, 1.0), (0.0, 0.65), (-0.0, 0.65)], 2)
def test_the_kept_ratios_and_sizes_judge_as_the_direct_recomputation(
    added: list[tuple[float, float]], capacity: int
) -> None:
    window = JudgedWindow(capacity)
    check(window)
    for pnl, size in added:
        window.add(pnl, size)
        check(window)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(pnls, st.one_of(sizes, odd_sizes)), max_size=12),
    st.lists(pnls, max_size=3),
    trades,
    st.integers(2, 6),
)
# A restored size of 0 leaves the window with the trade: the kept structure serves again.
@example([(1.0, 0.0), (2.0, 1.0)], [], [(1.0, 1.0), (2.0, 1.0), (-1.0, 0.5)], 2)
# Rings of a state that do not pair up (more pnls than sizes).
@example([(1.0, 1.0)], [2.0, 3.0], [(1.0, 1.0), (4.0, 0.5), (-1.0, 0.5)], 3)
def test_a_restored_window_judges_as_the_direct_recomputation(
    restored: list[tuple[float, float]],
    extra_pnls: list[float],
    added: list[tuple[float, float]],
    capacity: int,
) -> None:
    pnl_list = [p for p, _ in restored] + extra_pnls
    size_list = [s for _, s in restored]
    window = JudgedWindow.of(capacity, 7 + len(restored), pnl_list, size_list)
    assert window.pnls.items() == pnl_list[-capacity:]
    assert same(window.sizes.items(), size_list[-capacity:])
    assert window.seen == 7 + len(restored)
    if len(pnl_list[-capacity:]) == len(size_list[-capacity:]):
        check(window)
    for pnl, size in added:
        window.add(pnl, size)
        if len(window.pnls.items()) == len(window.sizes.items()):
            check(window)


def test_a_model_judges_every_window_as_its_direct_recomputation() -> None:
    from tests.test_performance_model import trade  # one closed trade

    model = PerformanceModel(PerformanceConfig(window_trades=5), judging_only=True)
    sized = [(1.0, 1.0), (-2.0, 0.65), (3.0, 0.2), (0.5, 1.0), (-1.0, 1e-300), (2.0, 0.65)] * 3
    for seq, (pnl, size) in enumerate(sized, start=1):
        model.record(msgspec.structs.replace(trade(seq, "ema", "BTC", "trend", pnl), size=size))
        judged = model.recent_by_strategy()["ema"]
        window = model._windows[0][("ema",)] if model._windows else None
        assert window is not None and same(judged, direct(window))


@settings(max_examples=300, deadline=None)
@given(st.lists(pnls, max_size=30), st.lists(st.one_of(sizes, odd_sizes), max_size=30))
@example([1.0, 2.0], [1.0, 0.2])
@example([1e300, 1e300], [1e-8, 1e-8])
def test_per_unit_pnls_are_the_plain_rule(pnl_list: list[float], size_list: list[float]) -> None:
    kept = min(len(pnl_list), len(size_list))
    pnl_list, size_list = pnl_list[:kept], size_list[:kept]
    try:
        expected = plain_per_unit(pnl_list, size_list)
    except ZeroDivisionError:
        return
    assert same(per_unit_pnls(pnl_list, size_list), expected)


@settings(max_examples=300, deadline=None)
@given(st.lists(pnls, min_size=1, max_size=40))
@example([-0.0, -0.0])
@example([-1.0, 2.0, -3.0])
@example([1e300, 1e300, -1e300])
def test_the_drawdowns_are_those_of_the_plain_loop(pnl_list: list[float]) -> None:
    figures = figures_of(pnl_list)
    assert same([figures.max_drawdown, figures.current_drawdown], list(plain_drawdowns(pnl_list)))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=2, max_size=40))
@example([0.0, -0.0, 0.0])
@example([1.0, 1.0, 1.0])
@example([699051.1271657345] * 3)  # a spread of rounding alone (1.4e-10): no scale
def test_the_edge_scale_is_its_exact_sums(pnl_list: list[float]) -> None:
    n = len(pnl_list)
    mean = math.fsum(iter(pnl_list)) / n
    spread = math.sqrt(math.fsum(map(lambda p: (p - mean) ** 2, pnl_list)) / (n - 1))
    middle = statistics.median(pnl_list)
    robust = math.sqrt(math.pi / 2.0) * (math.fsum(map(lambda p: abs(p - middle), pnl_list)) / n)
    assert same(robust_scale(pnl_list), robust)
    # A scale at most ROUNDING_FLOOR of the mean |pnl| is rounding, not spread.
    rounding = ROUNDING_FLOOR * math.fsum(abs(p) for p in pnl_list) / n
    scale = max(spread, robust)
    assert same(edge_scale(pnl_list), scale if scale > rounding else 0.0)
