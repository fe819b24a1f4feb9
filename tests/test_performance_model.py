"""The performance model against docs/metrics.md, figure by figure.

The reference, ``exact_figures``, computes every figure from its definition in exact
rational arithmetic (``fractions.Fraction``) with plain lists and loops; it shares no
code with the model. Floats are rounded from the exact values only at the end.
"""

from __future__ import annotations

import asyncio
import math
import random
import statistics
import tracemalloc
from fractions import Fraction
from itertools import combinations
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alphad.actors.base import TAKE_STATE
from alphad.actors.events import ClosedTrade
from alphad.actors.figures import Figures
from alphad.actors.lifecycle import NOT_READ
from alphad.actors.performance import PerformanceConfig, PerformanceModel
from alphad.actors.performance_actor import PerformanceActor, ReportTables
from alphad.protocol.messages import (
    METRIC_FIELDS,
    PAGE_ROWS,
    TOP_MIN_TRADES,
    GetPerformance,
    GetTop,
)

DIMENSIONS = ("strategy", "symbol", "regime")
ALL_GROUPINGS = [c for size in (1, 2, 3) for c in combinations(DIMENSIONS, size)]
NAMES = {"strategy": ["ema", "rsi", "macd"], "symbol": ["BTC", "ETH"], "regime": ["trend", "range"]}

Trade = tuple[str, str, str, float]  # strategy, symbol, regime, pnl

MONEY = {"total_pnl", "gross_profit", "gross_loss", "max_drawdown", "current_drawdown"}
PER_TRADE_MONEY = {"expectancy", "avg_win", "avg_loss", "mean_abs_pnl"}


# --------------------------------------------------------------------------- reference


def exact_figures(pnls: list[float]) -> dict[str, Any]:
    """Every figure of docs/metrics.md, computed exactly from its definition."""
    n = len(pnls)
    p = [Fraction(x) for x in pnls]
    wins = [x for x in p if x > 0]
    losses = [x for x in p if x < 0]
    total = sum(p, Fraction(0))
    gross_profit = sum(wins, Fraction(0))
    gross_loss = -sum(losses, Fraction(0))
    mean = total / n
    mean_abs = (gross_profit + gross_loss) / n

    sharpe = None
    if n >= 2:
        std = math.sqrt(sum((x - mean) ** 2 for x in p) / (n - 1))
        # docs/metrics.md: a std below 1e-12 × mean |pnl| counts as 0.
        if std > 1e-12 * float(mean_abs):
            sharpe = float(mean) / std

    psr = None
    if n >= 3 and sharpe is not None:
        variance = sum((x - mean) ** 2 for x in p) / n
        skew = float(sum((x - mean) ** 3 for x in p) / n) / float(variance) ** 1.5
        kurtosis = float(sum((x - mean) ** 4 for x in p) / n / variance**2)
        under = 1 - skew * sharpe + (kurtosis - 1) / 4 * sharpe**2
        # docs/metrics.md: within rounding (1e-12 of the terms' size) of 0 counts as 0.
        scale = 1 + abs(skew * sharpe) + (kurtosis - 1) / 4 * sharpe**2
        if under > 1e-12 * scale:
            psr = statistics.NormalDist().cdf(sharpe * math.sqrt(n - 1) / math.sqrt(under))

    running = Fraction(0)
    peak = Fraction(0)
    max_drawdown = Fraction(0)
    for x in p:
        running += x
        peak = max(peak, running)
        max_drawdown = max(max_drawdown, peak - running)

    sortino = None
    if losses:
        sortino = float(mean) / math.sqrt(sum(x * x for x in losses) / n)

    return {
        "trades": n,
        "wins": len(wins),
        "losses": len(losses),
        "win_rate": len(wins) / n,
        "expectancy": float(mean),
        "total_pnl": float(total),
        "gross_profit": float(gross_profit),
        "gross_loss": float(gross_loss),
        "profit_factor": float(gross_profit / gross_loss) if gross_loss > 0 else None,
        "profit_factor_infinite": gross_loss == 0 and gross_profit > 0,
        "avg_win": float(gross_profit / len(wins)) if wins else None,
        "avg_loss": float(gross_loss / len(losses)) if losses else None,
        "sharpe": sharpe,
        "sortino": sortino,
        "sqn": math.sqrt(n) * sharpe if sharpe is not None else None,
        "psr": psr,
        "max_drawdown": float(max_drawdown),
        "current_drawdown": float(peak - running),
        "mean_abs_pnl": float(mean_abs),
    }


def assert_figures_match(got: dict[str, Any], pnls: list[float]) -> None:
    """``got`` equals the exact figures of ``pnls`` up to float rounding."""
    want = exact_figures(pnls)
    size = math.fsum(abs(x) for x in pnls)  # the scale of every money figure's rounding
    for name, expected in want.items():
        if name not in got:
            continue
        value = got[name]
        if expected is None or isinstance(expected, bool | int):
            assert value == expected, (name, value, expected)
            continue
        assert value is not None, name
        if name in MONEY:
            abs_tol = 1e-12 * size
        elif name in PER_TRADE_MONEY:
            abs_tol = 1e-12 * size / len(pnls)
        else:  # ratios and probabilities
            abs_tol = 1e-10
        assert math.isclose(value, expected, rel_tol=1e-9, abs_tol=abs_tol), (
            name,
            value,
            expected,
        )


# --------------------------------------------------------------------------- helpers


def trade(seq: int, strategy: str, symbol: str, regime: str, pnl: float) -> ClosedTrade:
    return ClosedTrade(
        seq=seq,
        trade_id=f"t{seq}",
        strategy=strategy,
        symbol=symbol,
        side="buy",
        pnl=pnl,
        entry_ts_ms=seq,
        exit_ts_ms=seq,
        regime=regime,
    )


def build(trades: list[Trade], window: int = 10, first_seq: int = 1) -> PerformanceModel:
    model = PerformanceModel(PerformanceConfig(window_trades=window))
    feed(model, trades, first_seq)
    return model


def feed(model: PerformanceModel, trades: list[Trade], first_seq: int) -> None:
    for seq, (strategy, symbol, regime, pnl) in enumerate(trades, start=first_seq):
        model.record(trade(seq, strategy, symbol, regime, pnl))


def one_strategy(pnls: list[float]) -> list[Trade]:
    return [("ema", "BTC", "trend", pnl) for pnl in pnls]


def only_row(model: PerformanceModel, window: str = "all") -> dict[str, Any]:
    rows = model.rows(["strategy"], window)
    assert len(rows) == 1
    return rows[0]


pnl_values = st.one_of(
    # Money: cents up to 100k.
    st.integers(-(10**7), 10**7).map(lambda cents: cents / 100),
    # Odd amounts over eight orders of magnitude, either sign.
    st.floats(1e-4, 1e4).flatmap(lambda x: st.sampled_from([x, -x])),
    # Breakevens and exact repeats.
    st.sampled_from([0.0, 1.0, -1.0, 0.5]),
)
trade_streams = st.lists(
    st.tuples(
        st.sampled_from(NAMES["strategy"]),
        st.sampled_from(NAMES["symbol"]),
        st.sampled_from(NAMES["regime"]),
        pnl_values,
    ),
    min_size=1,
    max_size=120,
)


def trades_by_group(
    trades: list[Trade], grouping: tuple[str, ...]
) -> dict[tuple[str, ...], list[float]]:
    groups: dict[tuple[str, ...], list[float]] = {}
    for strategy, symbol, regime, pnl in trades:
        names = {"strategy": strategy, "symbol": symbol, "regime": regime}
        groups.setdefault(tuple(names[d] for d in grouping), []).append(pnl)
    return groups


# --------------------------------------------------------------------------- figures


@settings(max_examples=100, deadline=None)
@given(trade_streams, st.integers(2, 15))
def test_every_figure_of_every_grouping_and_window_matches_its_definition(
    trades: list[Trade], window: int
) -> None:
    model = build(trades, window)
    for grouping in ALL_GROUPINGS:
        groups = trades_by_group(trades, grouping)
        for window_name in ("all", "recent"):
            rows = model.rows(grouping, window_name)
            assert [tuple(row[d] for d in grouping) for row in rows] == sorted(groups)
            for row in rows:
                key = tuple(row[d] for d in grouping)
                pnls = groups[key]
                if window_name == "recent":
                    pnls = pnls[-window:]
                assert list(row) == [*grouping, *METRIC_FIELDS]
                assert_figures_match(row, pnls)
                figures = model.group_figures(grouping, key, window_name)
                assert figures is not None and figures.as_row() == {
                    name: row[name] for name in METRIC_FIELDS
                }
                assert_figures_match({"mean_abs_pnl": figures.mean_abs_pnl}, pnls)


def test_the_worked_example_of_the_docs() -> None:
    row = only_row(build(one_strategy([2.0, -1.0, 3.0, -2.0, 4.0])))
    assert (row["trades"], row["wins"], row["losses"]) == (5, 3, 2)
    assert row["win_rate"] == pytest.approx(0.6)
    assert row["total_pnl"] == pytest.approx(6.0)
    assert row["expectancy"] == pytest.approx(1.2)
    assert (row["gross_profit"], row["gross_loss"]) == pytest.approx((9.0, 3.0))
    assert row["profit_factor"] == pytest.approx(3.0)
    assert (row["avg_win"], row["avg_loss"]) == pytest.approx((3.0, 1.5))
    assert row["sharpe"] == pytest.approx(1.2 / math.sqrt(6.7))
    assert row["sortino"] == pytest.approx(1.2)
    assert row["sqn"] == pytest.approx(math.sqrt(5) * 1.2 / math.sqrt(6.7))
    assert row["psr"] == pytest.approx(0.8080, abs=1e-4)
    assert (row["max_drawdown"], row["current_drawdown"]) == pytest.approx((2.0, 0.0))


def test_profit_factor_is_none_and_infinite_when_no_losses() -> None:
    for window in ("all", "recent"):
        row = only_row(build(one_strategy([2.0, 0.0, 1.0])), window)
        assert row["profit_factor"] is None and row["profit_factor_infinite"] is True
        assert row["avg_loss"] is None and row["sortino"] is None
        assert (row["wins"], row["losses"], row["gross_loss"]) == (2, 0, 0.0)
        # A positive amount: 0.0, not -0.0 (which the JSON reply would show as -0.0).
        assert math.copysign(1.0, row["gross_loss"]) == 1.0, window


def test_a_record_without_wins_has_a_zero_profit_factor_and_no_average_win() -> None:
    for window in ("all", "recent"):
        row = only_row(build(one_strategy([-2.0, 0.0, -1.0])), window)
        assert row["profit_factor"] == 0.0 and row["profit_factor_infinite"] is False
        assert row["avg_win"] is None and row["avg_loss"] == pytest.approx(1.5)
        assert row["win_rate"] == 0.0 and row["sortino"] is not None


def test_breakevens_count_in_trades_but_not_in_wins_or_losses() -> None:
    row = only_row(build(one_strategy([1.0, 0.0, -0.0, -1.0])))
    assert (row["trades"], row["wins"], row["losses"]) == (4, 1, 1)
    assert row["win_rate"] == pytest.approx(0.25)


def test_all_breakeven_trades_have_no_ratios() -> None:
    for window in ("all", "recent"):
        row = only_row(build(one_strategy([0.0] * 5)), window)
        assert row["trades"] == 5 and row["win_rate"] == 0.0 and row["expectancy"] == 0.0
        assert row["profit_factor"] is None and row["profit_factor_infinite"] is False
        assert row["avg_win"] is None and row["avg_loss"] is None
        for ratio in ("sharpe", "sortino", "sqn", "psr"):
            assert row[ratio] is None, ratio


def test_a_single_trade_has_no_sharpe_sqn_or_psr() -> None:
    for window in ("all", "recent"):
        row = only_row(build(one_strategy([-3.0])), window)
        assert row["sharpe"] is None and row["sqn"] is None and row["psr"] is None
        assert row["sortino"] == pytest.approx(-1.0)
        assert (row["max_drawdown"], row["current_drawdown"]) == pytest.approx((3.0, 3.0))


def test_two_trades_have_a_sharpe_but_no_psr() -> None:
    for window in ("all", "recent"):
        row = only_row(build(one_strategy([3.0, 1.0])), window)
        assert row["sharpe"] == pytest.approx(2.0 / statistics.stdev([3.0, 1.0]))
        assert row["sqn"] == pytest.approx(math.sqrt(2) * row["sharpe"])
        assert row["psr"] is None


def test_identical_pnls_have_no_sharpe_instead_of_a_huge_one() -> None:
    # In each case the float mean of the pnls is one rounding step off the pnl, so the
    # computed spread is rounding noise (about 1e-17 of the pnl) rather than exactly 0.
    for pnl, count in ((0.1, 3), (0.03, 9), (7.77, 5), (12345.67, 23), (0.01, 29), (-0.07, 50)):
        for window in ("all", "recent"):
            row = only_row(build(one_strategy([pnl] * count), window=count), window)
            assert row["sharpe"] is None and row["sqn"] is None and row["psr"] is None
            assert row["expectancy"] == pytest.approx(pnl, rel=1e-15)


def test_a_recent_window_of_identical_pnls_has_no_sharpe_while_all_has_one() -> None:
    model = build(one_strategy([5.0] + [0.1] * 30), window=20)
    assert only_row(model, "recent")["sharpe"] is None
    assert only_row(model, "all")["sharpe"] is not None


def test_psr_is_none_where_a_two_valued_record_leaves_the_sharpe_ratio_no_uncertainty() -> None:
    # For pnls 1, b, b the expression under psr's root is (1 − γ₃·sharpe/2)², which is 0
    # at b = (2√6 − 1) / (2 + 2√6); next to that point rounding decides its sign.
    b = (2 * math.sqrt(6) - 1) / (2 + 2 * math.sqrt(6))
    for pnl in (b, math.nextafter(b, 0.0), math.nextafter(b, 1.0)):
        for window in ("all", "recent"):
            row = only_row(build(one_strategy([1.0, pnl, pnl])), window)
            assert row["sharpe"] == pytest.approx(2 * math.sqrt(2))
            assert row["psr"] is None
    assert only_row(build(one_strategy([1.0, 0.5, 0.5])))["psr"] == pytest.approx(1.0)


def exact_judged_psr(pnls: list[float]) -> float | None:
    """The judged PSR from its definition (docs/optimization.md): the PSR with the expression
    under its root kept at or above its value for normal returns, 1 + sharpe²/2."""
    sharpe = exact_figures(pnls)["sharpe"]
    n = len(pnls)
    if n < 3 or sharpe is None:
        return None
    p = [Fraction(x) for x in pnls]
    mean = sum(p, Fraction(0)) / n
    variance = sum((x - mean) ** 2 for x in p) / n
    skew = float(sum((x - mean) ** 3 for x in p) / n) / float(variance) ** 1.5
    kurtosis = float(sum((x - mean) ** 4 for x in p) / n / variance**2)
    under = max(1 - skew * sharpe + (kurtosis - 1) / 4 * sharpe**2, 1 + sharpe**2 / 2)
    return statistics.NormalDist().cdf(sharpe * math.sqrt(n - 1) / math.sqrt(under))


# 49 trades of a small edge (+20.5 and -19.5 in turn) and one loss of 800: the loss alone
# makes the Sharpe ratio and the skew negative together.
ONE_HUGE_LOSS = [20.5 if i % 2 else -19.5 for i in range(49)] + [-800.0]


def test_the_judged_psr_is_never_more_certain_than_for_normal_returns() -> None:
    model = build(one_strategy(ONE_HUGE_LOSS), window=50)
    for window in ("all", "recent"):
        figures = model.strategy_figures("ema", window)
        assert figures is not None and figures.sharpe is not None
        normal = statistics.NormalDist().cdf(
            figures.sharpe * math.sqrt(49) / math.sqrt(1 + figures.sharpe**2 / 2)
        )
        # The skewness term makes the reported PSR claim 96 % certainty of a negative
        # Sharpe ratio; judged, the window is what normal returns would make of it.
        assert figures.psr == pytest.approx(0.0401, abs=1e-4)
        assert figures.judged_psr == pytest.approx(normal, rel=1e-9)
        assert figures.judged_psr == pytest.approx(exact_judged_psr(ONE_HUGE_LOSS), rel=1e-9)
        assert figures.judged_psr == pytest.approx(0.1674, abs=1e-4)
        assert "judged_psr" not in figures.as_row()
    judged = model.recent_by_strategy()["ema"]
    assert judged.judged_psr == pytest.approx(exact_judged_psr(ONE_HUGE_LOSS), rel=1e-9)


def test_the_judged_psr_is_the_reported_one_where_skew_and_tails_widen_the_doubt() -> None:
    # Small wins and one large loss, with a positive mean: γ₃ · sharpe < 0 adds doubt.
    pnls = [2.0, 1.0] * 20 + [-20.0]
    figures = build(one_strategy(pnls), window=50).strategy_figures("ema", "recent")
    assert figures is not None and figures.psr is not None
    assert figures.judged_psr == figures.psr == pytest.approx(exact_judged_psr(pnls), rel=1e-9)


@settings(max_examples=200, deadline=None)
@given(st.lists(pnl_values, min_size=1, max_size=40))
def test_the_judged_psr_matches_its_definition(pnls: list[float]) -> None:
    for window in ("all", "recent"):
        figures = build(one_strategy(pnls), window=40).strategy_figures("ema", window)
        assert figures is not None
        expected = exact_judged_psr(pnls)
        if expected is None or figures.sharpe is None:
            assert figures.judged_psr is None
            continue
        assert figures.judged_psr == pytest.approx(expected, rel=1e-6, abs=1e-9)
        if figures.psr is not None:
            # Between the reported PSR and 1/2: never further from doubt than it.
            assert abs(figures.judged_psr - 0.5) <= abs(figures.psr - 0.5) + 1e-9


def test_drawdown_counts_from_zero_when_the_record_opens_with_a_loss() -> None:
    row = only_row(build(one_strategy([-2.0, -1.0, 1.5])))
    assert row["max_drawdown"] == pytest.approx(3.0)
    assert row["current_drawdown"] == pytest.approx(1.5)


def test_the_recent_drawdown_restarts_at_the_window_first_trade() -> None:
    model = build(one_strategy([10.0, -8.0, 1.0, 1.0, 1.0]), window=3)
    recent = only_row(model, "recent")
    assert recent["max_drawdown"] == 0.0 and recent["current_drawdown"] == 0.0
    everything = only_row(model, "all")
    assert everything["max_drawdown"] == pytest.approx(8.0)
    assert everything["current_drawdown"] == pytest.approx(5.0)


def test_a_trade_without_regime_is_grouped_as_unknown() -> None:
    model = PerformanceModel(PerformanceConfig())
    model.record(
        ClosedTrade(
            seq=1,
            trade_id="a",
            strategy="ema",
            symbol="BTC",
            side="buy",
            pnl=1.0,
            entry_ts_ms=1,
            exit_ts_ms=2,
        )
    )
    assert [row["regime"] for row in model.rows(["regime"])] == ["unknown"]
    assert model.regimes() == ["unknown"]


# --------------------------------------------------------------------------- numerics


def test_running_moments_stay_accurate_across_magnitudes() -> None:
    rng = random.Random(7)
    pnls = [
        rng.choice((-1, 1)) * 10 ** rng.uniform(-3, 5) + rng.choice((0.0, 0.3)) for _ in range(3000)
    ]
    model = build(one_strategy(pnls), window=400)
    assert_figures_match(only_row(model, "all"), pnls)
    assert_figures_match(only_row(model, "recent"), pnls[-400:])


def test_running_moments_stay_accurate_for_a_large_mean_with_a_small_spread() -> None:
    # A strategy earning ~100k a trade, give or take a few cents: the spread is 1e-7 of
    # the mean, where textbook sums of powers lose every digit of the Sharpe ratio.
    rng = random.Random(11)
    pnls = [100_000 + rng.randint(-300, 300) / 100 for _ in range(2000)]
    model = build(one_strategy(pnls), window=500)
    for window, window_pnls in (("all", pnls), ("recent", pnls[-500:])):
        row = only_row(model, window)
        assert_figures_match(row, window_pnls)
        assert row["sharpe"] == pytest.approx(exact_figures(window_pnls)["sharpe"], rel=1e-13)


def test_running_moments_stay_accurate_for_a_fat_tailed_stream() -> None:
    rng = random.Random(3)
    pnls = [rng.gauss(0.2, 1.0) for _ in range(1500)]
    pnls[700] = -5_000.0  # one disaster in a steady record
    model = build(one_strategy(pnls), window=1000)
    assert_figures_match(only_row(model, "all"), pnls)
    assert_figures_match(only_row(model, "recent"), pnls[-1000:])


def test_totals_keep_small_amounts_next_to_large_ones() -> None:
    # Added one by one to 1e15, a cent is below the float's resolution (0.125).
    pnls = [1e15] + [0.01] * 1000 + [-1e15]
    model = build(one_strategy(pnls), window=2000)
    for window in ("all", "recent"):
        row = only_row(model, window)
        assert row["total_pnl"] == pytest.approx(10.0, rel=1e-12)
        assert row["gross_profit"] == pytest.approx(1e15 + 10.0, rel=1e-15)
        assert row["expectancy"] == pytest.approx(10.0 / 1002, rel=1e-12)


# --------------------------------------------------------------------------- queries


def test_rows_have_the_keys_in_canonical_order_whatever_the_order_of_group_by() -> None:
    model = build(
        [("rsi", "ETH", "trend", 1.0), ("ema", "BTC", "range", -1.0), ("ema", "BTC", "trend", 2.0)]
    )
    rows = model.rows(["regime", "strategy"])
    assert rows == model.rows(["strategy", "regime"])
    assert [list(row)[:2] for row in rows] == [["strategy", "regime"]] * 3
    assert [(row["strategy"], row["regime"]) for row in rows] == [
        ("ema", "range"),
        ("ema", "trend"),
        ("rsi", "trend"),
    ]


def test_a_strategy_filter_groups_by_strategy_too() -> None:
    model = build(
        [("rsi", "ETH", "trend", 1.0), ("ema", "BTC", "range", -1.0), ("ema", "ETH", "trend", 2.0)]
    )
    rows = model.rows(["symbol"], "all", strategy="ema")
    assert [(row["strategy"], row["symbol"]) for row in rows] == [("ema", "BTC"), ("ema", "ETH")]
    assert list(rows[0])[:2] == ["strategy", "symbol"]
    assert model.rows(["symbol"], "all", strategy="nobody") == []


def test_group_figures_take_the_key_in_the_order_of_group_by() -> None:
    model = build([("ema", "BTC", "trend", 1.0), ("ema", "ETH", "range", -1.0)])
    figures = model.group_figures(["regime", "strategy"], ("range", "ema"))
    assert figures is not None and figures.total_pnl == -1.0
    assert model.group_figures(["strategy"], ("rsi",)) is None
    assert model.strategy_figures("ema", "recent") == model.group_figures(
        ["strategy"], ("ema",), "recent"
    )
    assert model.strategy_figures("rsi") is None


def test_unknown_windows_groupings_and_mismatched_keys_are_refused() -> None:
    model = build([("ema", "BTC", "trend", 1.0)])
    with pytest.raises(ValueError):
        model.rows(["strategy"], "weekly")
    with pytest.raises(ValueError):
        model.rows(["exchange"])
    with pytest.raises(ValueError):
        model.rows([])
    with pytest.raises(ValueError):
        model.group_figures(["strategy", "symbol"], ("ema",))
    with pytest.raises(ValueError):
        model.group_figures(["strategy", "strategy"], ("ema", "rsi"))
    with pytest.raises(ValueError):
        model.strategy_figures("ema", "weekly")


def test_regime_effectiveness_and_symbol_breakdown_are_strategy_cross_tables() -> None:
    model = build(
        [("ema", "BTC", "trend", 1.0), ("ema", "ETH", "range", -1.0), ("rsi", "BTC", "trend", 2.0)]
    )
    assert [(r["strategy"], r["regime"]) for r in model.regime_effectiveness()] == [
        ("ema", "range"),
        ("ema", "trend"),
        ("rsi", "trend"),
    ]
    assert [(r["strategy"], r["regime"]) for r in model.regime_effectiveness("ema")] == [
        ("ema", "range"),
        ("ema", "trend"),
    ]
    assert [(r["strategy"], r["symbol"]) for r in model.symbol_breakdown("rsi", "recent")] == [
        ("rsi", "BTC")
    ]
    assert model.symbol_breakdown() == model.rows(["strategy", "symbol"])


def test_recent_figures_by_strategy_and_by_regime_cover_each_recent_window() -> None:
    trades = [
        ("ema", "BTC", "trend", 1.0),
        ("ema", "BTC", "range", -2.0),
        ("ema", "ETH", "trend", 3.0),
        ("ema", "ETH", "trend", -0.5),
        ("rsi", "BTC", "range", 4.0),
    ]
    model = build(trades, window=2)
    by_strategy = model.recent_by_strategy()
    assert sorted(by_strategy) == ["ema", "rsi"]
    assert by_strategy["ema"].trades == 2 and by_strategy["ema"].total_pnl == 2.5
    by_regime = model.recent_by_regime()
    assert {regime: sorted(table) for regime, table in by_regime.items()} == {
        "range": ["ema", "rsi"],
        "trend": ["ema"],
    }
    assert by_regime["trend"]["ema"].total_pnl == 2.5  # its last two trend trades
    assert by_regime["range"]["ema"].total_pnl == -2.0


def test_top_strategies_orders_by_metric_with_ties_by_name_and_undefined_last() -> None:
    trades = [
        ("ema", "BTC", "trend", 3.0),
        ("ema", "BTC", "trend", 1.0),
        ("rsi", "BTC", "trend", -1.0),
        ("rsi", "BTC", "trend", 0.5),
        ("macd", "BTC", "trend", 2.0),
        ("adx", "BTC", "trend", 2.0),
    ]
    model = build(trades)
    best = model.top_strategies("expectancy", n=10, window="all")
    assert [row["strategy"] for row in best] == ["adx", "ema", "macd", "rsi"]
    worst = model.top_strategies("expectancy", n=2, window="all", ascending=True)
    assert [row["strategy"] for row in worst] == ["rsi", "adx"]
    # adx and macd have one trade each: no Sharpe ratio, so they come last either way.
    by_sharpe = model.top_strategies("sharpe", n=4, window="all")
    assert [row["strategy"] for row in by_sharpe] == ["ema", "rsi", "adx", "macd"]
    assert model.top_strategies("sharpe", n=0) == []


def test_top_strategies_ranks_an_infinite_profit_factor_above_every_finite_one() -> None:
    trades = [
        ("ema", "BTC", "trend", 5.0),
        ("ema", "BTC", "trend", -1.0),
        ("rsi", "BTC", "trend", 0.1),
        ("flat", "BTC", "trend", 0.0),
    ]
    model = build(trades)
    best = model.top_strategies("profit_factor", n=3)
    assert [row["strategy"] for row in best] == ["rsi", "ema", "flat"]
    worst = model.top_strategies("profit_factor", n=3, ascending=True)
    assert [row["strategy"] for row in worst] == ["ema", "rsi", "flat"]


def test_top_strategies_refuses_an_unknown_metric() -> None:
    model = build([("ema", "BTC", "trend", 1.0)])
    with pytest.raises(ValueError, match="luck"):
        model.top_strategies("luck")


def test_names_are_listed_sorted() -> None:
    model = build(
        [("rsi", "ETH", "trend", 1.0), ("ema", "BTC", "range", -1.0), ("ema", "SOL", "trend", 2.0)]
    )
    assert model.strategies() == ["ema", "rsi"]
    assert model.symbols() == ["BTC", "ETH", "SOL"]
    assert model.regimes() == ["range", "trend"]


def test_recent_pnls_are_the_newest_oldest_first() -> None:
    model = build(one_strategy([float(i) for i in range(30)]), window=20)
    assert model.recent_pnls("ema", 5) == [25.0, 26.0, 27.0, 28.0, 29.0]
    assert model.recent_pnls("ema", 50) == [float(i) for i in range(10, 30)]
    assert model.recent_pnls("ema", 0) == []
    assert model.recent_pnls("rsi") == []


# --------------------------------------------------------------------------- recording


def test_replayed_trades_are_ignored() -> None:
    model = build(one_strategy([1.0, -2.0, 3.0]))
    before = model.rows(["strategy", "symbol", "regime"])
    model.record(trade(3, "ema", "BTC", "trend", 3.0))  # the last one again
    model.record(trade(1, "rsi", "ETH", "range", 100.0))  # an old seq with new content
    model.record(trade(0, "ema", "BTC", "trend", 7.0))
    assert model.last_seq == 3 and model.trade_count == 3
    assert model.rows(["strategy", "symbol", "regime"]) == before
    assert model.strategies() == ["ema"]
    model.record(trade(10, "ema", "BTC", "trend", 1.0))  # a gap in seq is still new
    assert model.last_seq == 10 and model.trade_count == 4


def test_a_non_finite_pnl_is_refused_and_changes_nothing() -> None:
    model = build(one_strategy([1.0, -2.0]))
    before = model.to_state()
    for pnl in (math.nan, math.inf, -math.inf):
        with pytest.raises(ValueError, match="non-finite"):
            model.record(trade(3, "ema", "BTC", "trend", pnl))
    assert model.to_state() == before


def test_recent_figures_are_recomputed_only_after_their_group_trades() -> None:
    model = build([("ema", "BTC", "trend", 1.0), ("rsi", "BTC", "trend", 2.0)])
    ema = model.strategy_figures("ema", "recent")
    rsi = model.strategy_figures("rsi", "recent")
    model.record(trade(3, "ema", "BTC", "trend", -1.0))
    assert model.strategy_figures("rsi", "recent") is rsi
    updated = model.strategy_figures("ema", "recent")
    assert updated is not ema and updated is not None and updated.trades == 2


def test_recording_more_trades_grows_neither_the_rings_nor_the_snapshot() -> None:
    model = build(one_strategy([float(i % 7 - 3) for i in range(40)]), window=20)
    model.recent_by_strategy({"ema": 40})  # a cycle's reading
    snapshot_size = len(msgspec.msgpack.encode(model.to_state()))
    feed(model, one_strategy([float(i % 5 - 2) for i in range(5000)]), first_seq=41)
    assert sum(len(table) for table in model.groups.values()) == 7
    for table in model.groups.values():
        for group in table.values():
            assert group.ring.capacity == 20 and group.ring.count == 20
            assert len(group.ring.values) == 20
    # Without a reading the trades that left the window unread are kept up to twice
    # UNREAD_WINDOWS windows, the newest of them; the rest are counted as dropped.
    unread = list(model.recent_by_strategy({"ema": 40})["ema"].unread)
    assert 10 * 20 <= len(unread) < 2 * 10 * 20
    assert model.unread_dropped() == 5000 - 20 - len(unread)
    assert unread[-1] == float(4979 % 5 - 2)  # trade 5020, just before the window's first
    # After a reading only the trade counters take a few more bytes to write.
    model.recent_by_strategy({"ema": 5040})
    assert len(msgspec.msgpack.encode(model.to_state())) <= snapshot_size + 7 * 3 * 2 + 8


def test_a_large_book_fits_well_under_64_mib() -> None:
    # 100 strategies × 20 symbols × 4 regimes make 10,604 groups; measured on a tenth
    # of that, the memory per group must keep the whole book under half of 64 MiB.
    strategies = [f"s{i}" for i in range(10)]
    symbols = [f"y{i}" for i in range(20)]
    regimes = ["trend", "range", "volatile", "quiet"]
    trades = [(s, y, r, 1.0) for s in strategies for y in symbols for r in regimes]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        model = build(trades, window=100)
        used = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    groups = sum(len(table) for table in model.groups.values())
    assert groups == 10 + 20 + 4 + 200 + 40 + 80 + 800
    assert used / groups * 10_604 < 32 * 2**20


# --------------------------------------------------------------------------- state


def plain(value: object) -> bool:
    if value is None or isinstance(value, bool | int | float | str):
        return True
    if isinstance(value, list):
        return all(plain(item) for item in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and plain(v) for k, v in value.items())
    return False


@settings(max_examples=50, deadline=None)
@given(trade_streams, trade_streams, st.integers(2, 12))
def test_a_restored_model_gives_the_same_figures_now_and_after_more_trades(
    before: list[Trade], after: list[Trade], window: int
) -> None:
    config = PerformanceConfig(window_trades=window)
    model = build(before, window)
    state = model.to_state()
    assert plain(state)
    restored = PerformanceModel.from_state(
        config, msgspec.msgpack.decode(msgspec.msgpack.encode(state))
    )
    assert (restored.last_seq, restored.trade_count) == (model.last_seq, model.trade_count)
    for model_now in (model, restored):
        feed(model_now, after, first_seq=len(before) + 1)
    for grouping in ALL_GROUPINGS:
        for window_name in ("all", "recent"):
            assert restored.rows(grouping, window_name) == model.rows(grouping, window_name)
    assert restored.to_state() == model.to_state()


def test_restoring_with_a_smaller_window_keeps_the_newest_pnls() -> None:
    model = build(one_strategy([float(i) for i in range(10)]), window=8)
    smaller = PerformanceModel.from_state(PerformanceConfig(window_trades=3), model.to_state())
    assert smaller.recent_pnls("ema") == [7.0, 8.0, 9.0]
    assert smaller.rows(["strategy"], "all") == model.rows(["strategy"], "all")
    feed(smaller, one_strategy([10.0]), first_seq=11)
    assert smaller.recent_pnls("ema") == [8.0, 9.0, 10.0]


def test_restoring_with_a_larger_window_fills_it_with_the_next_trades() -> None:
    model = build(one_strategy([float(i) for i in range(10)]), window=4)
    larger = PerformanceModel.from_state(PerformanceConfig(window_trades=6), model.to_state())
    assert larger.recent_pnls("ema") == [6.0, 7.0, 8.0, 9.0]
    feed(larger, one_strategy([10.0, 11.0, 12.0]), first_seq=11)
    assert larger.recent_pnls("ema") == [7.0, 8.0, 9.0, 10.0, 11.0, 12.0]


def test_a_state_of_another_version_is_refused() -> None:
    state = build(one_strategy([1.0])).to_state()
    state["version"] = 99
    with pytest.raises(ValueError, match="version"):
        PerformanceModel.from_state(PerformanceConfig(), state)
    with pytest.raises(ValueError, match="version"):
        PerformanceModel.from_state(PerformanceConfig(), {"last_seq": 0, "groups": []})


# --------------------------------------------------------------------------- judged windows


def sized(seq: int, pnl: float, size: float | None, regime: str = "trend") -> ClosedTrade:
    return msgspec.structs.replace(trade(seq, "ema", "BTC", regime, pnl), size=size)


def test_judged_windows_hold_pnl_per_unit_of_size_and_reports_keep_the_pnl() -> None:
    model = PerformanceModel(PerformanceConfig(window_trades=10))
    # The same trade at base size 1 gains 2.0; alphad sized these at 0.5, 2.0 and 0.25.
    for seq, (pnl, size) in enumerate([(1.0, 0.5), (-4.0, 2.0), (0.5, 0.25)], start=1):
        model.record(sized(seq, pnl, size))
    judged = model.recent_by_strategy()["ema"]
    assert judged.pnls == (2.0, -2.0, 2.0)
    assert (judged.total_pnl, judged.seen, judged.trades) == (2.0, 3, 3)
    assert model.recent_by_regime()["trend"]["ema"].pnls == (2.0, -2.0, 2.0)
    # What users read stays on the money made.
    assert only_row(model, "recent")["total_pnl"] == -2.5
    assert only_row(model, "all")["total_pnl"] == -2.5
    assert "pnls" not in only_row(model, "recent") and "seen" not in only_row(model, "recent")


@pytest.mark.parametrize("size", [None, 0.0, 1.0, 1e-320])
def test_an_unknown_size_counts_as_one(size: float | None) -> None:
    model = PerformanceModel(PerformanceConfig(window_trades=10))
    model.record(sized(1, 3.0, size))
    assert model.recent_by_strategy()["ema"].pnls == (3.0,)


def test_the_judged_window_keeps_the_newest_trades_and_counts_every_one() -> None:
    model = PerformanceModel(PerformanceConfig(window_trades=3))
    for seq in range(1, 8):
        model.record(sized(seq, float(seq), 2.0))
    judged = model.recent_by_strategy()["ema"]
    assert judged.pnls == (2.5, 3.0, 3.5)
    assert judged.seen == 7


def test_judged_windows_survive_a_snapshot() -> None:
    model = PerformanceModel(PerformanceConfig(window_trades=4))
    for seq in range(1, 7):
        model.record(sized(seq, float(seq), 0.5, "trend" if seq % 2 else "range"))
    state = msgspec.msgpack.decode(msgspec.msgpack.encode(model.to_state()))
    restored = PerformanceModel.from_state(PerformanceConfig(window_trades=4), state)
    assert restored.recent_by_strategy() == model.recent_by_strategy()
    assert restored.recent_by_regime() == model.recent_by_regime()


@pytest.mark.parametrize("judging_only", [False, True])
def test_trades_that_leave_the_window_unread_are_handed_to_the_next_reading(
    judging_only: bool,
) -> None:
    model = PerformanceModel(PerformanceConfig(window_trades=3), judging_only=judging_only)

    def unread(edge_read: dict[str, int] | None) -> list[float]:
        return list(model.recent_by_strategy(edge_read)["ema"].unread)

    for seq in range(1, 10):
        model.record(sized(seq, float(seq), 2.0))
    # Read up to trade 2: trades 3 to 6 left the window since, 7 to 9 are in it; each
    # per unit of size (pnl / 2.0), oldest first.
    judged = model.recent_by_strategy({"ema": 2})["ema"]
    assert list(judged.unread) == [1.5, 2.0, 2.5, 3.0]
    assert judged.pnls == (3.5, 4.0, 4.5) and judged.seen == 9
    # Asked without readings (reports) nothing is handed over or forgotten; a strategy
    # the lifecycle does not know yet keeps its trades; what a reading read is forgotten.
    model.record(sized(10, 10.0, 2.0))
    assert unread(None) == []
    assert unread({}) == [1.5, 2.0, 2.5, 3.0, 3.5]
    assert unread({"ema": 9}) == []
    for seq in range(11, 15):
        model.record(sized(seq, float(seq), 2.0))
    assert unread({"ema": 9}) == [5.0, 5.5]
    # A strategy the test does not read (NOT_READ) keeps nothing of its trades so far,
    assert unread({"ema": NOT_READ}) == []
    model.record(sized(15, 15.0, 2.0))  # trade 12 leaves the window
    assert unread({"ema": NOT_READ}) == []
    # but the trades after it that leave its window wait for the next reading, as when it
    # is back on probation (its mark its last reading's, before it was suspended).
    for seq in range(16, 22):  # trades 13 to 18 leave the window; 16 to 18 came after
        model.record(sized(seq, float(seq), 2.0))
    assert unread({"ema": 9}) == [8.0, 8.5, 9.0]
    assert model.recent_by_regime()["trend"]["ema"].unread == ()


@pytest.mark.parametrize("judging_only", [False, True])
def test_trades_that_leave_a_regimes_window_unread_are_handed_to_its_next_reading(
    judging_only: bool,
) -> None:
    model = PerformanceModel(
        PerformanceConfig(window_trades=3), judging_only=judging_only, regime_unread=True
    )

    def unread(
        edge_read: dict[str, dict[str, int]] | int | None, regime: str = "trend"
    ) -> list[float]:
        return list(model.recent_by_regime(edge_read)[regime]["ema"].unread)

    for seq in range(1, 10):
        model.record(sized(seq, float(seq), 2.0))
    # Read in "trend" up to trade 2: trades 3 to 6 left the window since, 7 to 9 are in
    # it, each per unit of size (pnl / 2.0), as the strategy's own window.
    judged = model.recent_by_regime({"trend": {"ema": 2}})["trend"]["ema"]
    assert list(judged.unread) == [1.5, 2.0, 2.5, 3.0]
    assert judged.pnls == (3.5, 4.0, 4.5) and judged.seen == 9
    model.record(sized(10, 10.0, 2.0))
    assert unread(None) == []  # a report's reading hands over and forgets nothing
    assert unread({}) == [1.5, 2.0, 2.5, 3.0, 3.5]  # a regime with no lifecycle yet
    assert unread({"trend": {}}) == [1.5, 2.0, 2.5, 3.0, 3.5]  # nor the strategy in it
    assert unread({"trend": {"ema": 9}}) == []
    assert unread({"trend": {"ema": NOT_READ}}) == []
    # The regime of trades without one is never judged on its own: it keeps nothing.
    for seq in range(11, 20):
        model.record(sized(seq, float(seq), 2.0, "unknown"))
    assert unread({}, "unknown") == []
    # One mark for every window: NOT_READ, the per-regime test switched off, keeps
    # nothing, also of a strategy its lifecycle has not met in that regime yet.
    for seq in range(20, 26):
        model.record(sized(seq, float(seq), 2.0, "range"))
    assert unread(NOT_READ, "range") == []
    # Without ``regime_unread`` (no per-regime edge test) nothing is kept either.
    plain = PerformanceModel(PerformanceConfig(window_trades=3), judging_only=judging_only)
    for seq in range(1, 10):
        plain.record(sized(seq, float(seq), 2.0))
    assert plain.recent_by_regime({})["trend"]["ema"].unread == ()


def test_more_trades_in_a_regime_than_it_keeps_are_counted_as_dropped() -> None:
    model = PerformanceModel(PerformanceConfig(window_trades=3), regime_unread=True)
    for seq in range(1, 101):
        model.record(sized(seq, float(seq), 1.0))
    # Window 3 keeps 30 trades at least, 60 at most: of the 97 that left each of the two
    # windows (the strategy's and the strategy's in "trend"), the oldest 60 were dropped.
    assert len(model.recent_by_regime({})["trend"]["ema"].unread) == 37
    assert model.unread_dropped() == 60  # counted as a reading finds them gone
    assert len(model.recent_by_strategy({})["ema"].unread) == 37
    assert model.unread_dropped() == 2 * 60


def test_trades_not_to_be_read_are_not_counted_as_dropped() -> None:
    # A strategy the edge test does not read (suspended: NOT_READ) trades more between
    # two cycles than its buffer keeps: what spilled was not to be read, so nothing is
    # counted as skipped; once it is read again (back on probation), a spill counts.
    model = PerformanceModel(PerformanceConfig(window_trades=3), regime_unread=True)
    model.record(sized(1, 1.0, 1.0))
    model.recent_by_strategy({"ema": NOT_READ})
    model.recent_by_regime(NOT_READ)
    for seq in range(2, 101):
        model.record(sized(seq, float(seq), 1.0))
    assert model.recent_by_strategy({"ema": NOT_READ})["ema"].unread == ()
    assert model.recent_by_regime(NOT_READ)["trend"]["ema"].unread == ()
    assert model.unread_dropped() == 0
    # Read from trade 100 on: 97 more leave the window, of which 60 spill before the
    # next reading, which counts them.
    for seq in range(101, 201):
        model.record(sized(seq, float(seq), 1.0))
    assert len(model.recent_by_strategy({"ema": 100})["ema"].unread) == 37
    assert model.unread_dropped() == 60


def test_a_regimes_unread_trades_survive_a_snapshot() -> None:
    config = PerformanceConfig(window_trades=3)
    model = PerformanceModel(config, regime_unread=True)
    for seq in range(1, 10):
        model.record(sized(seq, float(seq), 2.0, "trend" if seq % 3 else "range"))
    state = msgspec.msgpack.decode(msgspec.msgpack.encode(model.to_state()))
    restored = PerformanceModel.from_state(config, state, regime_unread=True)
    marks = {"trend": {"ema": 1}, "range": {"ema": 3}}
    assert [list(restored.recent_by_regime(marks)[r]["ema"].unread) for r in marks] == [
        list(model.recent_by_regime(marks)[r]["ema"].unread) for r in marks
    ]
    # The marks count a strategy's trades in the regime: "trend" holds trades 1, 2, 4, 5,
    # 7 and 8, its window the last three; read to its first, its second and third wait
    # (pnl 2 and 4 at size 2).
    assert list(restored.recent_by_regime(marks)["trend"]["ema"].unread) == [1.0, 2.0]
    restored.record(sized(10, 10.0, 2.0, "trend"))  # its fourth (trade 5) leaves the window
    assert list(restored.recent_by_regime({"trend": {"ema": 3}})["trend"]["ema"].unread) == [2.5]


def test_unread_trades_count_at_the_windows_own_size_floor() -> None:
    model = PerformanceModel(PerformanceConfig(window_trades=3))
    model.record(sized(1, 1.0, 0.1))  # far below half the median size of the window
    for seq in range(2, 5):
        model.record(sized(seq, 4.0, 2.0))
    # Floor 0.5 × 2.0 = 1.0: the tiny trade counts 1.0 / 1.0, as it did in the window.
    assert list(model.recent_by_strategy({"ema": 0})["ema"].unread) == [1.0]


def test_a_full_buffer_drops_the_trades_a_cycle_was_handed_first() -> None:
    # Window 3 keeps 30 trades at least, 60 at most. Handed to a cycle at trade 50 (47
    # waiting), then 40 more leave the window: the 47 handed go first, none counts as
    # dropped, and the 40 new ones wait.
    model = PerformanceModel(PerformanceConfig(window_trades=3))
    for seq in range(1, 51):
        model.record(sized(seq, float(seq), 1.0))
    assert len(model.recent_by_strategy({"ema": 0})["ema"].unread) == 47
    for seq in range(51, 91):
        model.record(sized(seq, float(seq), 1.0))
    assert model.unread_dropped() == 0
    assert list(model.recent_by_strategy({"ema": 50})["ema"].unread) == [
        float(n) for n in range(51, 88)
    ]
    # Handed with nothing waiting: the window's trades (1 to 3) were read from it and
    # leave it as read; when the buffer fills (60 trades), the 30 oldest go, of which
    # those 3 are not counted as dropped unread.
    fresh = PerformanceModel(PerformanceConfig(window_trades=3))
    for seq in range(1, 4):
        fresh.record(sized(seq, float(seq), 1.0))
    assert len(fresh.recent_by_strategy({"ema": 0})["ema"].unread) == 0
    for seq in range(4, 64):
        fresh.record(sized(seq, float(seq), 1.0))
    fresh.recent_by_strategy({"ema": 3})
    assert fresh.unread_dropped() == 30 - 3
    # Unread trades beyond the bound: the handed ones (up to 90) go uncounted, then the
    # oldest of those never handed, counted.
    for seq in range(91, 200):
        model.record(sized(seq, float(seq), 1.0))
    left = model.recent_by_strategy({"ema": 50})["ema"].unread
    assert 30 <= len(left) < 60 and left[-1] == 196.0
    assert model.unread_dropped() == (196 - 90) - len(left)


def test_unread_trades_survive_a_snapshot_and_follow_the_tail_replayed_after_it() -> None:
    config = PerformanceConfig(window_trades=3)
    model = PerformanceModel(config)
    for seq in range(1, 8):
        model.record(sized(seq, float(seq), 1.0))
    model.recent_by_strategy({"ema": 2})
    state = msgspec.msgpack.decode(msgspec.msgpack.encode(model.to_state()))
    assert state["unread"] == {"ema": [3, [3.0, 4.0], [1.0, 1.0]]}
    restored = PerformanceModel.from_state(config, state)
    for kept in (model, restored):
        for seq in range(8, 10):
            kept.record(sized(seq, float(seq), 1.0))
    read = [kept.recent_by_strategy({"ema": 2})["ema"] for kept in (model, restored)]
    assert read[0] == read[1]
    assert list(read[1].unread) == [3.0, 4.0, 5.0, 6.0] and read[1].pnls == (7.0, 8.0, 9.0)
    # A smaller window: the trades it no longer holds follow the kept ones, in order.
    other = PerformanceModel.from_state(PerformanceConfig(window_trades=2), state)
    assert list(other.recent_by_strategy({"ema": 2})["ema"].unread) == [3.0, 4.0, 5.0]
    # A state without kept trades (before they were kept), in a smaller window.
    del state["unread"]
    older = PerformanceModel.from_state(PerformanceConfig(window_trades=2), state)
    assert list(older.recent_by_strategy({"ema": 2})["ema"].unread) == [5.0]


def test_a_version_1_state_restores_with_its_recent_pnls_as_judged_windows() -> None:
    model = PerformanceModel(PerformanceConfig(window_trades=4))
    for seq in range(1, 4):
        model.record(sized(seq, float(seq), 0.5))
    state = model.to_state()
    # A version 1 state: no sizes were kept, so no judged pnls either.
    state["version"] = 1
    for entries in state["groups"].values():
        for entry in entries:
            del entry[3:]
    restored = PerformanceModel.from_state(PerformanceConfig(window_trades=4), state)
    assert restored.recent_by_strategy()["ema"].pnls == (1.0, 2.0, 3.0)
    assert restored.rows(["strategy"], "recent") == model.rows(["strategy"], "recent")
    # A version 2 state that lost its judged pnls is refused, saying what is wrong.
    state["version"] = 2
    with pytest.raises(ValueError, match="3 parts, expected 4"):
        PerformanceModel.from_state(PerformanceConfig(window_trades=4), state)


def test_a_version_2_state_restores_its_pnls_per_unit_of_size_as_judged_windows() -> None:
    model = PerformanceModel(PerformanceConfig(window_trades=4))
    for seq in range(1, 4):
        model.record(sized(seq, float(seq), 0.5))
    state = model.to_state()
    # Version 2 kept each judged group's pnls per unit of size where version 3 keeps sizes.
    state["version"] = 2
    for name, entries in state["groups"].items():
        for entry in entries:
            if name in ("strategy", "strategy+regime"):
                entry[3] = [pnl / 0.5 for pnl in entry[2]]
    restored = PerformanceModel.from_state(PerformanceConfig(window_trades=4), state)

    def judged(m: PerformanceModel) -> dict[str, Figures]:
        # Version 2 kept no pnl as traded: its windows read as traded at size 1 until
        # their trades are new (an operator's absolute limits then hold on them so).
        return {
            k: msgspec.structs.replace(f, sized_pnls=())
            for k, f in m.recent_by_strategy().items()
        }

    assert judged(restored) == judged(model)
    assert restored.recent_by_strategy()["ema"].pnls == (2.0, 4.0, 6.0)
    assert restored.recent_by_strategy()["ema"].sized_pnls == (2.0, 4.0, 6.0)


def direct_per_unit(pnls: list[float], sizes: list[float]) -> list[float]:
    """docs/optimization.md: pnl / max(size, half the window's median size)."""
    ordered = sorted(sizes)
    middle = len(ordered) // 2
    median_size = (
        ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2
    )
    return [p / max(s, median_size / 2) for p, s in zip(pnls, sizes, strict=True)]


def test_one_trade_at_a_tiny_size_cannot_decide_its_strategys_judgement() -> None:
    # Twins with the same losing trades; one reported a winning trade at the smallest
    # size the wire accepts. Divided by that size alone, +2.0 became +2e9 per unit.
    rng = random.Random(7)
    pnls = [round(rng.gauss(-0.5, 1.5), 2) for _ in range(60)]
    pnls[30] = 2.0
    sizes = [1.0] * 60
    tiny = list(sizes)
    tiny[30] = 1e-9
    model = PerformanceModel(PerformanceConfig(window_trades=100))
    seq = 0
    for pnl, size, tiny_size in zip(pnls, sizes, tiny, strict=True):
        seq += 1
        model.record(msgspec.structs.replace(trade(seq, "twin", "BTC", "trend", pnl), size=size))
        seq += 1
        model.record(
            msgspec.structs.replace(trade(seq, "tiny", "BTC", "trend", pnl), size=tiny_size)
        )
    judged = model.recent_by_strategy()
    expected = direct_per_unit(pnls, tiny)
    assert judged["tiny"].pnls == pytest.approx(expected, rel=1e-12)
    assert judged["tiny"].expectancy == pytest.approx(statistics.fmean(expected), rel=1e-12)
    # The tiny trade counts as two trades of the median size, not as a billion.
    assert expected[30] == 4.0
    twin, tiny_judged = judged["twin"], judged["tiny"]
    assert tiny_judged.expectancy - twin.expectancy == pytest.approx(2.0 / 60)
    assert twin.expectancy < 0 and tiny_judged.expectancy < 0
    assert twin.judged_psr is not None and tiny_judged.judged_psr is not None
    assert abs(tiny_judged.judged_psr - twin.judged_psr) < 0.01


async def test_actor_snapshot_in_slices_decodes_to_the_models_state() -> None:
    rng = random.Random(5)
    trades = [
        (f"s{rng.randrange(9)}", f"SYM{rng.randrange(7)}", rng.choice(["a", "b"]), rng.gauss(0, 1))
        for _ in range(3000)
    ]
    model = build(trades, window=20)
    state = await PerformanceActor(model).handle(TAKE_STATE)
    decoded = msgspec.msgpack.decode(msgspec.msgpack.encode(state))
    assert decoded == msgspec.msgpack.decode(msgspec.msgpack.encode(model.to_state()))
    restored = PerformanceModel.from_state(PerformanceConfig(window_trades=20), decoded)
    assert restored.to_state() == model.to_state()


@given(
    st.lists(
        st.tuples(
            st.sampled_from(NAMES["strategy"]),
            st.sampled_from(NAMES["symbol"]),
            st.sampled_from(NAMES["regime"]),
            pnl_values,
            st.sampled_from([None, 0.5, 1.0, 2.0]),
        ),
        min_size=1,
        max_size=40,
    )
)
@settings(max_examples=50)
def test_a_judging_only_model_judges_exactly_as_the_full_one(
    trades: list[tuple[str, str, str, float, float | None]],
) -> None:
    full = PerformanceModel(PerformanceConfig(window_trades=7))
    judging = PerformanceModel(PerformanceConfig(window_trades=7), judging_only=True)
    for seq, (strategy, symbol, regime, pnl, size) in enumerate(trades, start=1):
        recorded = msgspec.structs.replace(trade(seq, strategy, symbol, regime, pnl), size=size)
        full.record(recorded)
        judging.record(recorded)
        judging.record(recorded)  # a repeat is ignored, as by the full model
    assert judging.recent_by_strategy() == full.recent_by_strategy()
    assert judging.recent_by_regime() == full.recent_by_regime()
    assert judging.strategies() == full.strategies()
    assert (judging.trade_count, judging.last_seq) == (full.trade_count, full.last_seq)


def test_a_judging_only_model_refuses_what_it_does_not_keep() -> None:
    model = PerformanceModel(PerformanceConfig(), judging_only=True)
    model.record(trade(1, "ema", "BTC", "trend", 1.0))
    for ask in (
        lambda: model.rows(["strategy"]),
        lambda: model.strategy_figures("ema", "recent"),
        lambda: model.recent_pnls("ema"),
        lambda: model.symbols(),
        lambda: model.to_state(),
    ):
        with pytest.raises(ValueError, match="only the judged windows"):
            ask()


async def _turns_while(work: Any) -> tuple[Any, int]:
    """The answer of ``work`` and how many turns the event loop gave another task while
    it ran (0 for work that holds the loop from start to end)."""
    turns = 0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal turns
        while not done.is_set():
            turns += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)  # the ticker is running
    started = turns
    try:
        answer = await work
    finally:
        done.set()
        await task
    return answer, turns - started - 1


async def test_the_report_tables_of_a_thousand_strategies_let_the_loop_turn() -> None:
    # Every bot's request waits for a reply that is assembled in one go: a report's
    # tables of a thousand strategies took tens of milliseconds.
    rng = random.Random(8)
    trades = [
        (f"s{i:04d}", "BTC", regime, rng.gauss(0, 1))
        for i in range(1000)
        for regime in ("trend", "range", "volatile")
    ]
    # A hundred with enough trades to rank among the top strategies.
    trades += [
        (f"s{i:04d}", "ETH", "trend", rng.gauss(0, 1)) for i in range(100) for _ in range(25)
    ]
    model = build(trades, window=50)
    actor = PerformanceActor(model)
    tables, turns = await _turns_while(actor.handle(ReportTables()))
    assert turns >= 5
    # The same tables as made in one go.
    assert [e["strategy"] for e in tables["strategies"]] == model.strategies()
    assert tables["strategies"][7]["recent"] == model.strategy_figures("s0007", "recent").as_row()
    assert tables["regime_effectiveness"] == model.rows(
        ("strategy", "regime"), "recent", limit=PAGE_ROWS
    )
    ranked = model.top_strategies("expectancy", 1000, "recent")
    top = [row for row in ranked if row["trades"] >= TOP_MIN_TRADES][:5]
    assert len(top) == 5 and tables["top_strategies"] == top
    rows, turns = await _turns_while(actor.handle(GetPerformance(group_by=["strategy", "regime"])))
    assert turns >= 5
    assert rows.rows == model.rows(("strategy", "regime"))[:PAGE_ROWS]
    assert rows.next == [rows.rows[-1]["strategy"], rows.rows[-1]["regime"]]
    best, turns = await _turns_while(actor.handle(GetTop(metric="sharpe", n=3, min_trades=1)))
    assert turns >= 1
    assert best.rows == model.top_strategies("sharpe", 3, "recent")
