"""Adaptive weights: bounds that hold for any stream of figures, reset, rollback, regimes."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.figures import Figures
from actors.weighting import StrategyConfig, WeightingConfig, WeightingModel
from protocol.errors import AlphadError

STRATEGIES = {"ema": StrategyConfig(base_weight=1.0), "rsi": StrategyConfig(base_weight=0.4)}

maybe = st.one_of(st.none(), st.floats(-1e6, 1e6, allow_nan=False))
figures_st = st.builds(
    Figures,
    trades=st.integers(0, 200),
    wins=st.integers(0, 100),
    losses=st.integers(0, 100),
    win_rate=st.floats(0, 1),
    expectancy=st.floats(-1e6, 1e6, allow_nan=False),
    profit_factor=st.one_of(st.none(), st.floats(0, 1e6)),
    profit_factor_infinite=st.booleans(),
    sharpe=maybe,
    max_drawdown=st.floats(0, 1e7),
    mean_abs_pnl=st.floats(0, 1e6),
)


def good(trades: int = 50) -> Figures:
    return Figures(
        trades=trades,
        expectancy=1.0,
        profit_factor=2.5,
        sharpe=0.5,
        max_drawdown=2.0,
        mean_abs_pnl=2.0,
        win_rate=0.6,
    )


def bad(trades: int = 50) -> Figures:
    return Figures(
        trades=trades,
        expectancy=-1.5,
        profit_factor=0.4,
        sharpe=-0.6,
        max_drawdown=60.0,
        mean_abs_pnl=2.0,
        win_rate=0.2,
    )


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(figures_st, figures_st), min_size=1, max_size=30))
def test_weights_stay_in_bounds_and_move_at_most_max_change(
    stream: list[tuple[Figures, Figures]],
) -> None:
    config = WeightingConfig()
    model = WeightingModel(config, STRATEGIES)
    for ema, rsi in stream:
        before = dict(model.adaptive)
        model.update({"ema": ema, "rsi": rsi}, {"volatile": {"ema": rsi}})
        for name, weight in model.adaptive.items():
            base = STRATEGIES[name].base_weight
            assert math.isfinite(weight)
            assert 0.1 * base - 1e-12 <= weight <= 2.0 * base + 1e-12
            assert abs(weight - before[name]) <= 0.15 * before[name] + 1e-12
        for table in model.regime_adaptive.values():
            for name, weight in table.items():
                base = STRATEGIES[name].base_weight
                assert 0.1 * base - 1e-12 <= weight <= 2.0 * base + 1e-12


def test_good_strategy_gains_and_bad_one_loses_weight_slowly() -> None:
    model = WeightingModel(WeightingConfig(), STRATEGIES)
    model.update({"ema": good(), "rsi": bad()}, {})
    assert model.adaptive["ema"] == pytest.approx(1.15)
    assert model.adaptive["rsi"] == pytest.approx(0.4 * 0.85)
    for _ in range(100):
        model.update({"ema": good(), "rsi": bad()}, {})
    assert model.adaptive["rsi"] >= 0.1 * 0.4 - 1e-12


def test_strategy_under_min_trades_keeps_its_weight() -> None:
    model = WeightingModel(WeightingConfig(min_trades=20), STRATEGIES)
    assert model.update({"ema": good(trades=19)}, {}) == []
    assert model.adaptive["ema"] == 1.0


def test_suspended_strategy_gets_zero_weight_and_normalized_sums_to_one() -> None:
    model = WeightingModel(WeightingConfig(), STRATEGIES)
    table = model.table(None, {"ema": "suspended", "rsi": "degraded"})
    assert table.effective == {"ema": 0.0, "rsi": 0.4}
    assert table.normalized == {"ema": 0.0, "rsi": 1.0}
    retired = model.table(None, {"ema": "retired", "rsi": "retired"})
    assert sum(retired.normalized.values()) == 0.0


def test_reset_returns_to_base_and_rollback_undoes_the_last_update() -> None:
    model = WeightingModel(WeightingConfig(), STRATEGIES)
    model.update({"ema": good()}, {})
    after_first = dict(model.adaptive)
    model.update({"ema": good()}, {})
    changes = model.rollback("operator says so")
    assert model.adaptive == after_first
    assert [(c.strategy, c.new) for c in changes] == [("ema", after_first["ema"])]
    assert model.rollback("again") == []  # only the last update can be undone
    reset = model.reset("clean slate")
    assert model.adaptive == {"ema": 1.0, "rsi": 0.4}
    assert [c.strategy for c in reset] == ["ema"]


def test_regime_table_falls_back_to_global_weight() -> None:
    model = WeightingModel(WeightingConfig(), STRATEGIES)
    model.update({"ema": good()}, {"volatile": {"ema": bad()}})
    volatile = model.table("volatile", {})
    assert volatile.adaptive["ema"] < model.adaptive["ema"]
    assert volatile.adaptive["rsi"] == model.adaptive["rsi"]  # no regime trades: global
    assert model.multiplier("ema", "volatile") == pytest.approx(volatile.adaptive["ema"])
    assert model.multiplier("rsi", "ranging") == pytest.approx(1.0)


def test_unknown_strategy_is_refused_without_auto_register() -> None:
    model = WeightingModel(WeightingConfig(auto_register=False), STRATEGIES)
    with pytest.raises(AlphadError) as info:
        model.ensure_registered("new")
    assert info.value.code == "unknown_strategy"
    open_model = WeightingModel(WeightingConfig(default_base_weight=0.7), STRATEGIES)
    assert open_model.ensure_registered("new") is True
    assert open_model.base["new"] == 0.7 and open_model.adaptive["new"] == 0.7


def test_score_is_scale_free() -> None:
    model = WeightingModel(WeightingConfig(), STRATEGIES)
    small = good()
    large = Figures(
        trades=50,
        expectancy=1000.0,
        profit_factor=2.5,
        sharpe=0.5,
        max_drawdown=2000.0,
        mean_abs_pnl=2000.0,
        win_rate=0.6,
    )
    assert model.score(small)[0] == pytest.approx(model.score(large)[0])


def test_state_round_trip() -> None:
    model = WeightingModel(WeightingConfig(), STRATEGIES)
    model.update({"ema": good(), "rsi": bad()}, {"trend": {"ema": good()}})
    model.ensure_registered("new")
    restored = WeightingModel.from_state(WeightingConfig(), STRATEGIES, model.to_state())
    assert restored.adaptive == model.adaptive
    assert restored.regime_adaptive == model.regime_adaptive
    assert restored.rollback("x") == model.rollback("x")
