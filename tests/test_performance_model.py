"""Performance figures against a plain, direct computation on random trade streams."""

from __future__ import annotations

import math
import statistics
from itertools import combinations
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.events import ClosedTrade
from actors.performance import PerformanceConfig, PerformanceModel

NAMES = {"strategy": ["ema", "rsi", "macd"], "symbol": ["BTC", "ETH"], "regime": ["trend", "range"]}
GROUPINGS = [c for n in (1, 2, 3) for c in combinations(("strategy", "symbol", "regime"), n)]


def direct(pnls: list[float]) -> dict[str, Any]:
    """Every figure from its definition in docs/metrics.md, written as plainly as possible."""
    n = len(pnls)
    wins = [p for p in pnls if p > 0]
    losses = [p for p in pnls if p < 0]
    total = math.fsum(pnls)
    gross_profit = math.fsum(wins)
    gross_loss = abs(math.fsum(losses))
    mean = total / n
    std = statistics.stdev(pnls) if n >= 2 else 0.0
    sharpe = mean / std if n >= 2 and std > 1e-12 * statistics.fmean(abs(p) for p in pnls) else None
    psr = None
    if n >= 3 and sharpe is not None:
        pop_sd = statistics.pstdev(pnls)
        skew = sum((p - mean) ** 3 for p in pnls) / n / pop_sd**3
        kurt = sum((p - mean) ** 4 for p in pnls) / n / pop_sd**4
        under = 1 - skew * sharpe + (kurt - 1) / 4 * sharpe**2
        if under > 0:
            z = sharpe * math.sqrt(n - 1) / math.sqrt(under)
            psr = statistics.NormalDist().cdf(z)
    cum = peak = worst = 0.0
    for p in pnls:
        cum += p
        peak = max(peak, cum)
        worst = max(worst, peak - cum)
    return {
        "trades": n,
        "wins": len(wins),
        "losses": len(losses),
        "win_rate": len(wins) / n,
        "expectancy": total / n,
        "total_pnl": total,
        "gross_profit": gross_profit,
        "gross_loss": gross_loss,
        "profit_factor": gross_profit / gross_loss if gross_loss > 0 else None,
        "profit_factor_infinite": gross_loss == 0 and gross_profit > 0,
        "avg_win": statistics.fmean(wins) if wins else None,
        "avg_loss": statistics.fmean(abs(p) for p in losses) if losses else None,
        "sharpe": sharpe,
        "sortino": mean / math.sqrt(sum(p * p for p in losses) / n) if losses else None,
        "sqn": math.sqrt(n) * sharpe if sharpe is not None else None,
        "psr": psr,
        "max_drawdown": worst,
        "current_drawdown": peak - cum,
    }


def assert_same(got: dict[str, Any], want: dict[str, Any], scale: float) -> None:
    for key, value in want.items():
        other = got[key]
        if value is None or isinstance(value, bool | int):
            assert other == value, (key, other, value)
        else:
            assert other is not None, key
            assert math.isclose(other, value, rel_tol=1e-7, abs_tol=1e-9 * max(scale, 1.0)), (
                key,
                other,
                value,
            )


trade_rows = st.lists(
    st.tuples(
        st.sampled_from(NAMES["strategy"]),
        st.sampled_from(NAMES["symbol"]),
        st.sampled_from(NAMES["regime"]),
        # Money: cents up to 100k, plus small odd amounts and exact repeats.
        st.one_of(
            st.integers(-(10**7), 10**7).map(lambda cents: cents / 100),
            st.floats(1e-4, 1e3).flatmap(lambda x: st.sampled_from([x, -x])),
            st.sampled_from([0.0, 1.0, -1.0, 0.5]),
        ),
    ),
    min_size=1,
    max_size=120,
)


def build(rows: list[tuple[str, str, str, float]], window: int = 10) -> PerformanceModel:
    model = PerformanceModel(PerformanceConfig(window_trades=window))
    for seq, (strategy, symbol, regime, pnl) in enumerate(rows, start=1):
        model.record(
            ClosedTrade(
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
        )
    return model


@settings(max_examples=60, deadline=None)
@given(trade_rows, st.integers(2, 15))
def test_every_figure_of_every_grouping_matches_a_direct_computation(
    rows: list[tuple[str, str, str, float]], window: int
) -> None:
    model = build(rows, window)
    for grouping in GROUPINGS:
        index = [("strategy", "symbol", "regime").index(d) for d in grouping]
        groups: dict[tuple[str, ...], list[float]] = {}
        for row in rows:
            groups.setdefault(tuple(row[i] for i in index), []).append(row[3])
        for window_name in ("all", "recent"):
            got_rows = model.rows(grouping, window_name)
            assert [tuple(r[d] for d in grouping) for r in got_rows] == sorted(groups)
            for got in got_rows:
                pnls = groups[tuple(got[d] for d in grouping)]
                if window_name == "recent":
                    pnls = pnls[-window:]
                scale = max(abs(p) for p in pnls) * len(pnls)
                assert_same(got, direct(pnls), scale)


def test_profit_factor_is_none_and_infinite_when_no_losses() -> None:
    figures = build([("ema", "BTC", "trend", 2.0), ("ema", "BTC", "trend", 0.0)])
    row = figures.rows(["strategy"])[0]
    assert row["profit_factor"] is None and row["profit_factor_infinite"] is True
    assert row["sortino"] is None and row["avg_loss"] is None
    assert row["trades"] == 2 and row["wins"] == 1 and row["losses"] == 0


def test_all_breakeven_trades_have_no_ratios() -> None:
    row = build([("ema", "BTC", "trend", 0.0)] * 5).rows(["strategy"])[0]
    assert row["win_rate"] == 0.0 and row["expectancy"] == 0.0
    assert row["profit_factor"] is None and row["profit_factor_infinite"] is False
    assert row["sharpe"] is None and row["psr"] is None and row["sqn"] is None


def test_identical_pnls_have_no_sharpe_instead_of_a_huge_one() -> None:
    row = build([("ema", "BTC", "trend", 0.1)] * 50).rows(["strategy"])[0]
    assert row["sharpe"] is None and row["psr"] is None


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
    assert model.rows(["regime"])[0]["regime"] == "unknown"


def test_replayed_trades_are_not_counted_twice() -> None:
    model = build([("ema", "BTC", "trend", 1.0), ("ema", "BTC", "trend", -2.0)])
    model.record(
        ClosedTrade(
            seq=2,
            trade_id="t2",
            strategy="ema",
            symbol="BTC",
            side="buy",
            pnl=-2.0,
            entry_ts_ms=2,
            exit_ts_ms=2,
            regime="trend",
        )
    )
    assert model.trade_count == 2 and model.rows(["strategy"])[0]["trades"] == 2


def test_running_moments_stay_accurate_across_magnitudes() -> None:
    pnls = [1e-3, 1e5, -3.0, 2.5e4, -1e5 + 7, 0.25, 42.0] * 300
    model = build([("ema", "BTC", "trend", p) for p in pnls], window=50)
    got = model.rows(["strategy"])[0]
    assert_same(got, direct(pnls), 1e5 * len(pnls))


@settings(max_examples=25, deadline=None)
@given(trade_rows)
def test_state_round_trip_keeps_figures_and_behaviour(
    rows: list[tuple[str, str, str, float]],
) -> None:
    model = build(rows, 7)
    restored = PerformanceModel.from_state(PerformanceConfig(window_trades=7), model.to_state())
    for grouping in GROUPINGS:
        for window in ("all", "recent"):
            assert restored.rows(grouping, window) == model.rows(grouping, window)
    extra = ClosedTrade(
        seq=len(rows) + 1,
        trade_id="x",
        strategy="ema",
        symbol="ETH",
        side="sell",
        pnl=-3.0,
        entry_ts_ms=0,
        exit_ts_ms=0,
        regime="range",
    )
    model.record(extra)
    restored.record(extra)
    assert restored.rows(["strategy", "symbol"], "recent") == model.rows(
        ["strategy", "symbol"], "recent"
    )


def test_recent_window_memory_is_fixed_per_group() -> None:
    model = build([("ema", "BTC", "trend", float(i % 5 - 2)) for i in range(1000)], window=20)
    group = model.groups[("strategy",)][("ema",)]
    assert len(group.ring.values) == 20 and group.ring.count == 20
    assert model.recent_pnls("ema", 5) == [float(i % 5 - 2) for i in range(995, 1000)]


def test_top_strategies_orders_by_metric_and_puts_undefined_last() -> None:
    rows = [
        ("ema", "BTC", "trend", 3.0),
        ("ema", "BTC", "trend", 1.5),
        ("rsi", "BTC", "trend", -1.0),
        ("rsi", "BTC", "trend", 0.5),
        ("macd", "BTC", "trend", 2.0),
    ]
    model = build(rows)
    top = model.top_strategies("expectancy", n=3, window="all")
    assert [r["strategy"] for r in top] == ["ema", "macd", "rsi"]
    by_sharpe = model.top_strategies("sharpe", n=3, window="all")
    assert by_sharpe[-1]["strategy"] == "macd"  # one trade: no Sharpe, listed last
    with pytest.raises(ValueError):
        model.top_strategies("luck")


def test_regime_effectiveness_and_symbol_breakdown_filter_by_strategy() -> None:
    model = build(
        [("ema", "BTC", "trend", 1.0), ("ema", "ETH", "range", -1.0), ("rsi", "BTC", "trend", 2.0)]
    )
    assert [(r["strategy"], r["regime"]) for r in model.regime_effectiveness("ema")] == [
        ("ema", "range"),
        ("ema", "trend"),
    ]
    assert [r["symbol"] for r in model.symbol_breakdown("rsi")] == ["BTC"]
