"""Adaptive weights: the bounds hold for any stream of figures; reset, rollback, regimes, state."""

from __future__ import annotations

import itertools
import math
import random
import statistics
from statistics import NormalDist
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alphad.actors.errors import NotFound, UnknownStrategy
from alphad.actors.figures import Figures, borrowed_psr
from alphad.actors.weighting import ROLLBACK_KEEP, WeightingModel
from alphad.actors.weighting_config import StrategyConfig, WeightingConfig
from alphad.actors.weighting_tables import WeightUpdate

STRATEGIES = {"ema": StrategyConfig(base_weight=1.0), "rsi": StrategyConfig(base_weight=0.4)}
STATUSES = ("active", "degraded", "suspended", "retired")

# --------------------------------------------------------------------------- figures


def renewed() -> int:
    """A trade count (``Figures.seen``) far past every earlier one: a window of new trades."""
    return next(_new_trade) * 1000


def figures_of(pnls: list[float]) -> Figures:
    """The figures of a window of trades, computed directly as docs/metrics.md defines them;
    each call is a window of new trades."""
    n = len(pnls)
    gross_profit = math.fsum(p for p in pnls if p > 0)
    gross_loss = -math.fsum(p for p in pnls if p < 0)
    mean = math.fsum(pnls) / n
    std = statistics.stdev(pnls) if n >= 2 else 0.0
    cumulative = peak = drawdown = 0.0
    for pnl in pnls:
        cumulative += pnl
        peak = max(peak, cumulative)
        drawdown = max(drawdown, peak - cumulative)
    wins = sum(p > 0 for p in pnls)
    return Figures(
        trades=n,
        wins=wins,
        losses=sum(p < 0 for p in pnls),
        win_rate=wins / n,
        expectancy=mean,
        total_pnl=math.fsum(pnls),
        gross_profit=gross_profit,
        gross_loss=gross_loss,
        profit_factor=gross_profit / gross_loss if gross_loss > 0 else None,
        profit_factor_infinite=gross_loss == 0 and gross_profit > 0,
        sharpe=mean / std if std > 0 else None,
        # PSR as for normal returns: Φ(Sharpe × √(n − 1)).
        judged_psr=NormalDist().cdf(mean / std * math.sqrt(n - 1)) if std > 0 and n >= 3 else None,
        max_drawdown=drawdown,
        mean_abs_pnl=math.fsum(abs(p) for p in pnls) / n,
        seen=renewed(),
    )


_new_trade = itertools.count(1)


def good(trades: int = 50) -> Figures:
    """A window with an edge; each call is a window of new trades."""
    return Figures(
        trades=trades,
        seen=renewed(),
        total_pnl=50.0,
        win_rate=0.6,
        expectancy=1.0,
        profit_factor=2.5,
        sharpe=0.5,
        judged_psr=0.999,
        max_drawdown=2.0,
        mean_abs_pnl=2.0,
    )


def bad(trades: int = 50) -> Figures:
    """A losing window; each call is a window of new trades."""
    return Figures(
        trades=trades,
        seen=renewed(),
        total_pnl=-75.0,
        win_rate=0.2,
        expectancy=-1.5,
        profit_factor=0.4,
        sharpe=-0.6,
        judged_psr=0.001,
        max_drawdown=60.0,
        mean_abs_pnl=2.0,
    )


def test_a_cycle_without_new_trades_does_not_move_the_weight_again() -> None:
    model = WeightingModel(WeightingConfig(max_multiplier=2.0), {"ema": StrategyConfig()})
    window = good()
    assert len(model.update({"ema": window}, {})) == 1
    assert model.update({"ema": window}, {}) == []  # same window: no new evidence
    assert len(model.update({"ema": good()}, {})) == 1


def test_a_weight_moves_again_only_once_step_share_of_its_window_is_new() -> None:
    model = WeightingModel(
        WeightingConfig(max_multiplier=2.0, step_share=0.5), {"ema": StrategyConfig()}
    )
    start = good(trades=50)
    assert len(model.update({"ema": start}, {})) == 1
    for new in range(1, 25):  # fewer than 25 of the 50 trades are new: no step
        window = msgspec.structs.replace(start, seen=start.seen + new)
        assert model.update({"ema": window}, {}) == [], new
    assert model.multiplier("ema") == pytest.approx(1.15)
    half = msgspec.structs.replace(start, seen=start.seen + 25)
    assert len(model.update({"ema": half}, {})) == 1
    assert model.multiplier("ema") == pytest.approx(1.15**2)


# Anything a Figures can hold, including what the performance actor never sends.
wild = st.floats(allow_nan=True, allow_infinity=True)
maybe_wild = st.one_of(st.none(), wild)
any_figures = st.builds(
    Figures,
    trades=st.integers(-5, 300),
    seen=st.integers(0, 10**9),
    wins=st.integers(0, 300),
    losses=st.integers(0, 300),
    win_rate=wild,
    expectancy=wild,
    total_pnl=wild,
    gross_profit=wild,
    gross_loss=wild,
    profit_factor=maybe_wild,
    profit_factor_infinite=st.booleans(),
    sharpe=maybe_wild,
    judged_psr=maybe_wild,
    max_drawdown=wild,
    mean_abs_pnl=wild,
)
sane = st.floats(-1e6, 1e6)
realistic_figures = st.builds(
    Figures,
    trades=st.integers(0, 120),
    seen=st.integers(0, 10**9),
    win_rate=st.floats(0, 1),
    expectancy=sane,
    profit_factor=st.one_of(st.none(), st.floats(0, 1e3)),
    profit_factor_infinite=st.booleans(),
    sharpe=st.one_of(st.none(), st.floats(-3, 3)),
    max_drawdown=st.floats(0, 1e6),
    mean_abs_pnl=st.floats(0, 1e6),
)
figure_stream = st.lists(
    st.fixed_dictionaries(
        {
            "ema": st.one_of(any_figures, realistic_figures),
            "rsi": st.one_of(any_figures, realistic_figures),
        }
    ),
    min_size=1,
    max_size=25,
)
configs = st.builds(
    WeightingConfig,
    min_trades=st.integers(1, 60),
    min_multiplier=st.floats(0.01, 1.0),
    max_multiplier=st.floats(1.0, 10.0),
    max_change=st.floats(0.01, 1.0),
)


def regime_view(model: WeightingModel) -> dict[tuple[str | None, str], float]:
    """Every weight a reader sees: the global table and each regime's, with fallback."""
    seen: dict[tuple[str | None, str], float] = {}
    for regime in [None, *model.regimes()]:
        for strategy, weight in model.table(regime, {}).adaptive.items():
            seen[(regime, strategy)] = weight
    return seen


def finite_or_none(value: Any) -> bool:
    if isinstance(value, dict):
        return all(finite_or_none(v) for v in value.values())
    if isinstance(value, float):
        return math.isfinite(value)
    return True


# --------------------------------------------------------------------------- bounds


@settings(max_examples=60, deadline=None)
@given(configs, figure_stream)
def test_weights_stay_within_bounds_for_any_figure_stream(
    config: WeightingConfig, stream: list[dict[str, Figures]]
) -> None:
    model = WeightingModel(config, STRATEGIES)
    for recent in stream:
        model.update(recent, {"volatile": {"ema": recent["rsi"], "rsi": recent["ema"]}})
        for (_, strategy), weight in regime_view(model).items():
            base = STRATEGIES[strategy].base_weight
            assert math.isfinite(weight)
            assert config.min_multiplier * base <= weight <= config.max_multiplier * base


@settings(max_examples=60, deadline=None)
@given(configs, figure_stream)
def test_weight_change_never_exceeds_max_change(
    config: WeightingConfig, stream: list[dict[str, Figures]]
) -> None:
    model = WeightingModel(config, STRATEGIES)
    for recent in stream:
        before = regime_view(model)
        model.update(recent, {"volatile": {"ema": recent["rsi"]}, "calm": dict(recent)})
        after = regime_view(model)
        for key, weight in after.items():
            # A regime table that did not exist yet showed the global weight.
            old = before.get(key, before[(None, key[1])])
            assert abs(weight - old) <= config.max_change * old * (1 + 1e-12)


@settings(max_examples=60, deadline=None)
@given(figure_stream)
def test_every_weight_change_is_reported_with_finite_metrics(
    stream: list[dict[str, Figures]],
) -> None:
    model = WeightingModel(WeightingConfig(max_multiplier=2.0), STRATEGIES)
    for recent in stream:
        before_global = dict(model.adaptive)
        before_regimes = {r: dict(t) for r, t in model.regime_adaptive.items()}
        updates = model.update(recent, {"volatile": {"ema": recent["rsi"]}})
        reported = {(u.regime, u.strategy): (u.old, u.new) for u in updates}
        assert len(reported) == len(updates)
        changed: dict[tuple[str | None, str], tuple[float, float]] = {
            (None, s): (before_global[s], w)
            for s, w in model.adaptive.items()
            if w != before_global[s]
        }
        for regime, table in model.regime_adaptive.items():
            for s, w in table.items():
                old = before_regimes.get(regime, {}).get(s, before_global[s])
                if w != old:
                    changed[(regime, s)] = (old, w)
        assert reported == changed
        for update in updates:
            assert update.target is not None and update.reason
            assert finite_or_none(update.metrics)
            msgspec.json.encode(update)  # journaled as JSON


@settings(max_examples=60, deadline=None)
@given(
    figure_stream,
    st.dictionaries(st.sampled_from(["ema", "rsi", "new"]), st.sampled_from(STATUSES)),
)
def test_inactive_weigh_zero_and_normalized_weights_sum_to_one(
    stream: list[dict[str, Figures]], statuses: dict[str, str]
) -> None:
    model = WeightingModel(WeightingConfig(max_multiplier=2.0), STRATEGIES)
    model.ensure_registered("new")
    for recent in stream:
        model.update(recent, {"volatile": dict(recent)})
    for regime in (None, "volatile", "never-seen"):
        table = model.table(regime, statuses)
        for strategy, weight in table.effective.items():
            if statuses.get(strategy, "active") in ("suspended", "retired"):
                assert weight == 0.0
            else:
                assert weight == table.adaptive[strategy] > 0
        if any(w > 0 for w in table.effective.values()):
            assert math.fsum(table.normalized.values()) == pytest.approx(1.0, abs=1e-12)
        else:
            assert set(table.normalized.values()) == {0.0}
        assert all(0.0 <= w <= 1.0 for w in table.normalized.values())


# --------------------------------------------------------------------------- the update


def test_good_strategy_gains_weight_and_bad_one_loses_it_gradually() -> None:
    model = WeightingModel(WeightingConfig(max_multiplier=2.0), STRATEGIES)
    updates = model.update({"ema": good(), "rsi": bad()}, {})
    assert model.adaptive == {"ema": pytest.approx(1.15), "rsi": pytest.approx(0.4 * 0.85)}
    assert [u.strategy for u in updates] == ["ema", "rsi"]
    assert "step held to 15%" in updates[0].reason
    for _ in range(100):
        model.update({"ema": good(), "rsi": bad()}, {})
    assert model.multiplier("ema") > 1.5
    assert model.multiplier("rsi") == pytest.approx(0.1)


def test_weight_settles_at_its_target_without_overshooting() -> None:
    model = WeightingModel(WeightingConfig(max_multiplier=2.0), STRATEGIES)
    figures = figures_of([1.0, -0.5] * 15)  # a modest edge, significant (PSR 0.96)
    target = model.evidenced_target(model.score(figures)[0], figures)
    path = []
    for _ in range(31):
        # The same figures after a window of new trades each cycle.
        window = msgspec.structs.replace(figures, seen=renewed())
        changes = model.update({"ema": window}, {})
        path.append(model.adaptive["ema"])
    assert 1.0 < target < 2.0
    assert path == sorted(path)  # monotonic toward the target
    assert path[-1] == pytest.approx(target)
    assert changes == []  # at the target: nothing to journal


def no_edge_weights(significance: float) -> list[float]:
    """The weight of a strategy without edge over 300 windows of 100 new trades."""
    rng = random.Random(20240601)
    config = WeightingConfig(max_multiplier=2.0, significance=significance)
    model = WeightingModel(config, STRATEGIES)
    weights = []
    for _ in range(300):
        model.update({"ema": figures_of([rng.gauss(0.0, 1.0) for _ in range(100)])}, {})
        weights.append(model.adaptive["ema"])
    return weights


def test_strategy_without_edge_stays_near_base() -> None:
    gated = no_edge_weights(0.1)
    by_sign = no_edge_weights(0.5)  # any score moves the weight: it wanders on noise
    assert sum(w == 1.0 for w in gated) > 0.5 * len(gated)
    assert 0.95 < statistics.fmean(gated[50:]) < 1.05
    assert statistics.fmean(by_sign[50:]) < 0.9


def test_an_insignificant_window_relaxes_the_weight_toward_base() -> None:
    model = WeightingModel(WeightingConfig(), STRATEGIES)
    for _ in range(5):
        model.update({"ema": bad()}, {})
    low = model.adaptive["ema"]
    # Losing, with a deep drawdown, but PSR 0.3: not significant at 0.1.
    doubtful = msgspec.structs.replace(bad(), judged_psr=0.3)
    assert model.score(doubtful)[0] < 0
    path = [low]
    for _ in range(6):
        model.update({"ema": msgspec.structs.replace(doubtful, seen=renewed())}, {})
        path.append(model.adaptive["ema"])
    assert low < 0.5
    assert path == sorted(path)
    assert path[1] == pytest.approx(low * 1.15)  # back toward base at max_change


def test_a_score_against_the_significant_sign_targets_base() -> None:
    model = WeightingModel(WeightingConfig(max_multiplier=2.0), STRATEGIES)
    # A significant edge whose drawdown penalty outweighs it, and a significant loss
    # whose terms happen to score above 0: neither sign is supported by its evidence.
    penalized = msgspec.structs.replace(
        good(),
        max_drawdown=1000.0,
        sharpe=0.05,
        expectancy=0.05,
        profit_factor=1.02,
        judged_psr=0.95,
    )
    lucky = msgspec.structs.replace(good(), judged_psr=0.05)
    assert model.score(penalized)[0] < 0 < model.score(lucky)[0]
    assert model.evidenced_target(model.score(penalized)[0], penalized) == 1.0
    assert model.evidenced_target(model.score(lucky)[0], lucky) == 1.0
    significant = msgspec.structs.replace(lucky, judged_psr=0.95)
    assert model.evidenced_target(model.score(significant)[0], significant) > 1.0


def test_a_window_without_psr_is_judged_on_its_score_only_when_it_has_no_spread() -> None:
    model = WeightingModel(WeightingConfig(min_trades=1), STRATEGIES)
    alike = figures_of([-1.0] * 20)  # every trade the same loss: no Sharpe, no PSR
    short = figures_of([-1.0, -2.0])  # two trades: no PSR
    assert alike.judged_psr is None and short.judged_psr is None
    score = model.score(alike)[0]
    assert model.evidenced_target(score, alike) == model.target_multiplier(score) < 1.0
    assert model.evidenced_target(model.score(short)[0], short) == 1.0


def test_strategy_with_edge_is_weighted_up() -> None:
    rng = random.Random(7)
    model = WeightingModel(WeightingConfig(max_multiplier=2.0), STRATEGIES)
    for _ in range(40):
        model.update({"ema": figures_of([rng.gauss(0.3, 1.0) for _ in range(100)])}, {})
    assert model.multiplier("ema") > 1.3


def test_score_is_scale_free() -> None:
    model = WeightingModel(WeightingConfig(max_multiplier=2.0), STRATEGIES)
    rng = random.Random(3)
    pnls = [rng.gauss(0.1, 1.0) for _ in range(60)]
    small = model.score(figures_of(pnls))[0]
    large = model.score(figures_of([p * 2500.0 for p in pnls]))[0]
    assert small == pytest.approx(large)


def test_undefined_figures_count_as_neutral() -> None:
    model = WeightingModel(WeightingConfig(max_multiplier=2.0), STRATEGIES)
    flat = Figures(trades=30, profit_factor=None, sharpe=None)  # thirty breakeven trades
    score, metrics = model.score(flat)
    assert score == 0.0 and model.target_multiplier(score) == 1.0
    assert metrics["terms"] == {
        "sharpe": 0.0,
        "expectancy": 0.0,
        "profit_factor": 0.0,
        "drawdown_penalty": 0.0,
    }


def test_profit_factor_without_losses_scores_best_and_zero_scores_worst() -> None:
    model = WeightingModel(WeightingConfig(max_multiplier=2.0), STRATEGIES)
    no_losses = Figures(trades=30, profit_factor=None, profit_factor_infinite=True)
    no_wins = Figures(trades=30, profit_factor=0.0)
    assert model.score(no_losses)[1]["terms"]["profit_factor"] == 1.0
    assert model.score(no_wins)[1]["terms"]["profit_factor"] == -1.0
    half = model.score(Figures(trades=30, profit_factor=0.5))[1]["terms"]["profit_factor"]
    double = model.score(Figures(trades=30, profit_factor=2.0))[1]["terms"]["profit_factor"]
    assert half == pytest.approx(-1.0) and double == pytest.approx(1.0)


def test_drawdown_only_ever_lowers_the_score() -> None:
    model = WeightingModel(WeightingConfig(max_multiplier=2.0), STRATEGIES)
    calm = model.score(Figures(trades=30, mean_abs_pnl=1.0, max_drawdown=0.0))[0]
    deep = model.score(Figures(trades=30, mean_abs_pnl=1.0, max_drawdown=40.0))[0]
    assert calm == 0.0
    assert deep == pytest.approx(-0.25)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_nan_and_infinite_figures_never_reach_a_weight(value: float) -> None:
    model = WeightingModel(WeightingConfig(max_multiplier=2.0), STRATEGIES)
    poisoned = Figures(
        trades=50,
        win_rate=value,
        expectancy=value,
        gross_profit=value,
        gross_loss=value,
        profit_factor=value,
        sharpe=value,
        max_drawdown=value,
        mean_abs_pnl=value,
    )
    for _ in range(30):
        model.update({"ema": poisoned, "rsi": poisoned}, {"volatile": {"ema": poisoned}})
    for (_, strategy), weight in regime_view(model).items():
        base = STRATEGIES[strategy].base_weight
        assert math.isfinite(weight) and 0.1 * base <= weight <= 2.0 * base


def test_strategy_under_min_trades_keeps_its_weight() -> None:
    model = WeightingModel(WeightingConfig(min_trades=20, max_multiplier=2.0), STRATEGIES)
    assert model.update({"ema": good(trades=19), "rsi": bad(trades=19)}, {}) == []
    assert model.adaptive == {"ema": 1.0, "rsi": 0.4}
    assert [u.strategy for u in model.update({"ema": good(trades=20)}, {})] == ["ema"]


def test_figures_of_an_unregistered_strategy_are_ignored() -> None:
    model = WeightingModel(WeightingConfig(max_multiplier=2.0), STRATEGIES)
    assert model.update({"ghost": good()}, {"volatile": {"ghost": good()}}) == []
    assert model.strategies() == ["ema", "rsi"]
    assert model.regimes() == []


# --------------------------------------------------------------------------- the tables


def test_suspended_strategy_gets_zero_weight() -> None:
    model = WeightingModel(WeightingConfig(max_multiplier=2.0), STRATEGIES)
    table = model.table(None, {"ema": "suspended", "rsi": "degraded"})
    assert table.adaptive == {"ema": 1.0, "rsi": 0.4}
    assert table.effective == {"ema": 0.0, "rsi": 0.4}
    assert table.normalized == {"ema": 0.0, "rsi": 1.0}


def test_retired_strategies_get_zero_weight_and_nothing_is_normalized() -> None:
    model = WeightingModel(WeightingConfig(max_multiplier=2.0), STRATEGIES)
    table = model.table(None, {"ema": "retired", "rsi": "retired"})
    assert table.effective == {"ema": 0.0, "rsi": 0.0}
    assert table.normalized == {"ema": 0.0, "rsi": 0.0}


def test_normalized_weights_are_shares_of_the_effective_total() -> None:
    model = WeightingModel(WeightingConfig(max_multiplier=2.0), STRATEGIES)
    table = model.table(None, {})
    assert table.base == {"ema": 1.0, "rsi": 0.4}
    assert table.normalized == {"ema": pytest.approx(1 / 1.4), "rsi": pytest.approx(0.4 / 1.4)}


def test_regime_table_falls_back_to_global_weight() -> None:
    model = WeightingModel(WeightingConfig(max_multiplier=2.0), STRATEGIES)
    model.update({"ema": good(), "rsi": good()}, {"volatile": {"ema": bad(), "rsi": bad(10)}})
    volatile = model.table("volatile", {})
    assert volatile.adaptive["ema"] < 1.0 < model.adaptive["ema"]
    assert volatile.adaptive["rsi"] == model.adaptive["rsi"]  # too few regime trades
    assert model.table("ranging", {}).adaptive == model.adaptive  # no regime trades at all
    assert model.multiplier("ema", "volatile") == pytest.approx(volatile.adaptive["ema"])
    assert model.multiplier("rsi", "volatile") == pytest.approx(model.adaptive["rsi"] / 0.4)
    assert model.multiplier("ema", "ranging") == model.multiplier("ema")
    assert model.multiplier("never-seen") == 1.0


def test_regime_weight_starts_from_the_global_weight_before_the_update() -> None:
    model = WeightingModel(WeightingConfig(max_multiplier=2.0), STRATEGIES)
    model.update({"ema": good()}, {})
    assert model.adaptive["ema"] == pytest.approx(1.15)
    updates = model.update({"ema": good()}, {"volatile": {"ema": bad()}})
    regime_update = next(u for u in updates if u.regime == "volatile")
    assert regime_update.old == pytest.approx(1.15)
    assert regime_update.new == pytest.approx(1.15 * 0.85)
    assert model.adaptive["ema"] == pytest.approx(1.15 * 1.15)


def test_a_regime_cycle_leaves_other_regimes_alone() -> None:
    model = WeightingModel(WeightingConfig(max_multiplier=2.0), STRATEGIES)
    model.update({}, {"volatile": {"ema": bad()}, "trending": {"ema": good()}})
    trending = dict(model.regime_adaptive["trending"])
    model.update({}, {"volatile": {"ema": bad()}})
    assert model.regime_adaptive["trending"] == trending
    assert model.regime_adaptive["volatile"]["ema"] == pytest.approx(0.85 * 0.85)


# --------------------------------------------------------------------------- operator actions


def test_reset_returns_every_weight_to_base_and_reports_each_change() -> None:
    model = WeightingModel(WeightingConfig(max_multiplier=2.0), STRATEGIES)
    model.update({"ema": good()}, {"volatile": {"ema": bad(), "rsi": good()}})
    changes = model.reset("clean slate")
    assert model.adaptive == {"ema": 1.0, "rsi": 0.4}
    assert model.table("volatile", {}).adaptive == {"ema": 1.0, "rsi": 0.4}
    assert {(c.regime, c.strategy) for c in changes} == {
        (None, "ema"),
        ("volatile", "ema"),
        ("volatile", "rsi"),
    }
    assert all(c.reason == "clean slate" and c.target is None for c in changes)
    assert model.reset("again") == []


def test_rollback_restores_the_tables_before_the_last_update_then_the_one_before() -> None:
    model = WeightingModel(WeightingConfig(max_multiplier=2.0), STRATEGIES)
    model.update({"ema": good()}, {"volatile": {"ema": good()}}, cycle=1)
    after_first = (dict(model.adaptive), {r: dict(t) for r, t in model.regime_adaptive.items()})
    model.update(
        {"ema": good(), "rsi": bad()}, {"volatile": {"ema": bad()}, "calm": {"ema": bad()}}, cycle=2
    )
    changes, restored = model.roll_back("operator says so")
    assert restored == 1
    assert (model.adaptive, model.regime_adaptive) == after_first
    assert model.regimes() == ["volatile"]  # the table the rolled-back update made is gone
    assert {(c.regime, c.strategy) for c in changes} == {
        (None, "ema"),
        (None, "rsi"),
        ("volatile", "ema"),
        ("calm", "ema"),
    }
    assert model.roll_back("again")[1] == 0  # the update before it
    assert (model.adaptive, model.regime_adaptive) == ({"ema": 1.0, "rsi": 0.4}, {})
    assert model.rollback("nothing left") == []


def test_a_rollback_after_a_reset_undoes_the_reset_only() -> None:
    model = WeightingModel(WeightingConfig(max_multiplier=2.0), STRATEGIES)
    model.update({"ema": good()}, {}, cycle=1)
    model.update({"ema": good()}, {}, cycle=2)
    after_last = dict(model.adaptive)
    model.reset("flatten")
    assert model.roll_back("undo the reset")[1] == 2
    assert model.adaptive == after_last


def test_an_update_that_moves_nothing_is_not_what_a_rollback_undoes() -> None:
    model = WeightingModel(WeightingConfig(max_multiplier=2.0), STRATEGIES)
    first = good()
    model.update({"ema": first}, {}, cycle=1)
    after_first = dict(model.adaptive)
    model.update({"ema": good()}, {}, cycle=2)
    assert model.update({"ema": first}, {}, cycle=3) == []  # the same figures: no move
    assert model.roll_back("undo")[1] == 1
    assert model.adaptive == after_first


def test_a_rollback_to_a_named_cycle_undoes_every_change_after_it() -> None:
    model = WeightingModel(WeightingConfig(max_multiplier=2.0), STRATEGIES)
    after: dict[int, dict[str, float]] = {}
    for cycle in (1, 2, 3, 5):
        model.update({"ema": good()}, {}, cycle=cycle)
        after[cycle] = dict(model.adaptive)
    _, restored = model.roll_back("back", to_cycle=4)  # cycle 4 moved nothing: 3's weights
    assert restored == 3 and model.adaptive == after[3]
    assert model.roll_back("back", to_cycle=1)[1] == 1 and model.adaptive == after[1]
    with pytest.raises(NotFound):
        model.roll_back("back", to_cycle=1)


def test_the_rollback_history_is_bounded_and_survives_a_snapshot() -> None:
    model = WeightingModel(WeightingConfig(max_multiplier=2.0, max_change=0.001), STRATEGIES)
    for cycle in range(1, ROLLBACK_KEEP + 11):
        model.update({"ema": good(), "rsi": bad()}, {}, cycle=cycle)
    assert len(model.rollbacks) == ROLLBACK_KEEP
    restored = round_trip(model)
    assert restored.to_state() == model.to_state()
    assert restored.roll_back("x") == model.roll_back("x")
    assert model.rollbacks[0].cycle == 10
    with pytest.raises(NotFound):
        model.roll_back("x", to_cycle=9)  # cycle 10's weights are the oldest kept


def test_a_snapshot_of_the_old_layout_still_rolls_back_once() -> None:
    model = WeightingModel(WeightingConfig(max_multiplier=2.0), STRATEGIES)
    model.update({"ema": good()}, {"calm": {"ema": good()}})
    state = msgspec.msgpack.decode(msgspec.msgpack.encode(model.to_state()))
    for key in ("version", "rollbacks", "tables_cycle"):
        del state[key]
    state["previous"] = [{"ema": 1.0, "rsi": 0.4}, {}]
    old = WeightingModel.from_state(WeightingConfig(max_multiplier=2.0), STRATEGIES, state)
    changes, restored = old.roll_back("undo")
    assert restored is None and {(c.regime, c.strategy) for c in changes} == {
        (None, "ema"),
        ("calm", "ema"),
    }
    assert (old.adaptive, old.regime_adaptive) == ({"ema": 1.0, "rsi": 0.4}, {})
    assert old.rollback("again") == []


def test_rollback_before_any_update_changes_nothing() -> None:
    model = WeightingModel(WeightingConfig(max_multiplier=2.0), STRATEGIES)
    assert model.rollback("nothing to undo") == []
    assert model.adaptive == {"ema": 1.0, "rsi": 0.4}


def test_frozen_weights_do_not_move_but_reset_and_rollback_still_work() -> None:
    model = WeightingModel(WeightingConfig(max_multiplier=2.0), STRATEGIES)
    model.update({"ema": good()}, {})
    model.frozen = True
    assert model.update({"ema": good()}, {}) == []
    assert model.adaptive["ema"] == pytest.approx(1.15)
    assert [c.new for c in model.rollback("undo")] == [1.0]
    model.update({"ema": bad()}, {})  # still frozen: no effect, nothing to roll back
    assert model.rollback("again") == []
    model.adaptive["ema"] = 1.5
    assert [c.new for c in model.reset("flatten")] == [1.0]


# --------------------------------------------------------------------------- registration


def test_first_seen_strategy_gets_the_default_base_weight() -> None:
    model = WeightingModel(WeightingConfig(default_base_weight=0.7), STRATEGIES)
    assert model.ensure_registered("new") is True
    assert model.ensure_registered("new") is False
    assert model.ensure_registered("ema") is False
    assert model.strategies() == ["ema", "new", "rsi"]
    assert model.table(None, {}).base["new"] == 0.7
    assert model.multiplier("new") == 1.0


def test_unknown_strategy_is_refused_without_auto_register() -> None:
    model = WeightingModel(WeightingConfig(auto_register=False), STRATEGIES)
    with pytest.raises(UnknownStrategy):
        model.ensure_registered("new")
    assert model.ensure_registered("ema") is False
    assert model.strategies() == ["ema", "rsi"]


def test_config_rejects_typos_and_out_of_range_values() -> None:
    with pytest.raises(msgspec.ValidationError, match="max_chnage"):
        msgspec.convert({"max_chnage": 0.2}, WeightingConfig)
    for bad_value in (
        {"min_multiplier": 0.0},
        {"max_multiplier": 0.9},
        {"max_change": 1.5},
        {"sharpe_reference": math.inf},
        {"profit_factor_reference": 1.0},
        {"drawdown_weight": -0.1},
    ):
        with pytest.raises(msgspec.ValidationError):
            msgspec.convert(bad_value, WeightingConfig)
    with pytest.raises(msgspec.ValidationError, match="soft_drawdown"):
        msgspec.convert({"soft_drawdown": 50.0, "hard_drawdown": 20.0}, StrategyConfig)
    with pytest.raises(msgspec.ValidationError, match="base_weight"):
        msgspec.convert({"base_weight": 0}, StrategyConfig)


# --------------------------------------------------------------------------- state


def round_trip(
    model: WeightingModel,
    config: WeightingConfig | None = None,
    strategies: dict[str, StrategyConfig] | None = None,
) -> WeightingModel:
    """Through JSON, as a snapshot would go."""
    state = msgspec.json.decode(msgspec.json.encode(model.to_state()))
    return WeightingModel.from_state(
        config or model.config, strategies if strategies is not None else STRATEGIES, state
    )


def updates_of(changes: list[WeightUpdate]) -> list[tuple[str, str | None, float, float]]:
    return [(c.strategy, c.regime, c.old, c.new) for c in changes]


@settings(max_examples=40, deadline=None)
@given(figure_stream, st.integers(0, 25), st.booleans())
def test_state_round_trip_gives_identical_behaviour(
    stream: list[dict[str, Figures]], split: int, frozen: bool
) -> None:
    model = WeightingModel(WeightingConfig(max_multiplier=2.0), STRATEGIES)
    model.ensure_registered("new")
    for recent in stream[:split]:
        model.update(recent, {"volatile": {"ema": recent["rsi"]}})
    model.frozen = frozen
    restored = round_trip(model)
    assert restored.to_state() == model.to_state()
    for recent in stream[split:]:
        regimes = {"volatile": {"ema": recent["ema"]}, "calm": {"rsi": recent["rsi"]}}
        assert updates_of(restored.update(recent, regimes)) == updates_of(
            model.update(recent, regimes)
        )
    assert updates_of(restored.rollback("x")) == updates_of(model.rollback("x"))
    assert updates_of(restored.reset("y")) == updates_of(model.reset("y"))
    assert restored.table("volatile", {}) == model.table("volatile", {})


def test_a_new_base_weight_keeps_the_learned_multiplier() -> None:
    model = WeightingModel(WeightingConfig(max_multiplier=2.0), STRATEGIES)
    for _ in range(3):
        model.update({"ema": good()}, {"volatile": {"ema": good()}})
    multiplier = model.multiplier("ema")
    restored = round_trip(model, strategies={**STRATEGIES, "ema": StrategyConfig(base_weight=3.0)})
    assert restored.adaptive["ema"] == pytest.approx(3.0 * multiplier)
    assert restored.multiplier("ema", "volatile") == pytest.approx(
        model.multiplier("ema", "volatile")
    )


def test_restore_brings_weights_within_new_bounds() -> None:
    model = WeightingModel(WeightingConfig(max_multiplier=2.0), STRATEGIES)
    for _ in range(10):
        model.update({"ema": good(), "rsi": bad()}, {})
    tighter = WeightingConfig(min_multiplier=0.5, max_multiplier=1.2)
    restored = round_trip(model, config=tighter)
    assert restored.adaptive == {"ema": pytest.approx(1.2), "rsi": pytest.approx(0.2)}


def test_restore_drops_unconfigured_strategies_when_auto_register_is_off() -> None:
    model = WeightingModel(WeightingConfig(max_multiplier=2.0), STRATEGIES)
    model.ensure_registered("stray")
    model.update({"stray": good()}, {"volatile": {"stray": good()}})
    restored = round_trip(model, config=WeightingConfig(auto_register=False))
    assert restored.strategies() == ["ema", "rsi"]
    assert restored.regimes() == []
    kept = round_trip(model, config=WeightingConfig(default_base_weight=2.0, max_multiplier=2.0))
    assert kept.adaptive["stray"] == pytest.approx(2.0 * model.multiplier("stray"))


def test_restore_replaces_unusable_saved_weights_with_base() -> None:
    state = {
        "base": {"ema": 1.0, "rsi": 0.4, "odd": "x"},
        "adaptive": {"ema": math.nan, "rsi": -3.0, "odd": None},
        "regime_adaptive": {"volatile": {"ema": math.inf}},
        "frozen": False,
        "previous": None,
    }
    restored = WeightingModel.from_state(WeightingConfig(max_multiplier=2.0), STRATEGIES, state)
    assert restored.adaptive == {"ema": 1.0, "odd": 1.0, "rsi": 0.4}
    assert restored.regime_adaptive == {"volatile": {"ema": 1.0}}


def test_when_each_weight_was_judged_survives_a_snapshot() -> None:
    model = WeightingModel(WeightingConfig(max_multiplier=2.0), STRATEGIES)
    window = good()
    model.update({"ema": window}, {"calm": {"ema": window}})
    state = msgspec.msgpack.decode(msgspec.msgpack.encode(model.to_state()))
    restored = WeightingModel.from_state(WeightingConfig(max_multiplier=2.0), STRATEGIES, state)
    assert restored.judged_at == model.judged_at == {"|ema": window.seen, "calm|ema": window.seen}
    one_more = msgspec.structs.replace(window, seen=window.seen + 1)
    assert restored.update({"ema": one_more}, {}) == []  # not enough new trades yet
    # A snapshot from before (it kept "evidence" fingerprints) judges every weight anew.
    del state["judged_at"]
    state["evidence"] = {"|ema": [50.0, 50.0, 2.0, 0.0]}
    older = WeightingModel.from_state(WeightingConfig(max_multiplier=2.0), STRATEGIES, state)
    assert older.judged_at == {}
    assert len(older.update({"ema": one_more}, {})) == 1


# --------------------------------------------------------------------------- short histories


def pool_of(sharpes: list[float], trades: int = 100) -> dict[str, Figures]:
    return {
        f"s{i}": Figures(trades=trades, seen=renewed(), sharpe=sr, judged_psr=0.5)
        for i, sr in enumerate(sharpes)
    }


def test_the_pooled_prior_is_the_trade_weighted_sharpe_worth_at_most_min_trades() -> None:
    model = WeightingModel(WeightingConfig(min_trades=20), {})
    # Alike strategies (spread below sampling noise): the pool is worth min_trades.
    alike = pool_of([-0.1, -0.12, -0.08])
    mean, worth = model.pooled_prior(alike) or (None, None)
    assert mean == pytest.approx(-0.1) and worth == 20.0
    # Strategies whose true Sharpe ratios differ: τ² = var − mean(1/n) = 0.09 − 0.01.
    apart = pool_of([-0.3, 0.0, 0.3])
    mean, worth = model.pooled_prior(apart) or (None, None)
    assert mean == pytest.approx(0.0, abs=1e-12)
    assert worth == pytest.approx(1.0 / (0.09 - 0.01))
    assert model.pooled_prior(pool_of([0.2])) is None  # no pool of one
    assert model.pooled_prior({"s": Figures(trades=19, sharpe=0.5)} | pool_of([0.1])) is None


def test_a_short_history_borrows_the_pools_evidence_but_not_against_its_own_sign() -> None:
    config = WeightingConfig(min_trades=20)
    pool = pool_of([-0.2, -0.22, -0.18], trades=100)  # the other strategies lose
    losing_short = figures_of([-1.0, 0.5, -1.2, 0.4, -0.9, -0.3, 0.2, -1.1, 0.6, -0.8])
    winning_short = figures_of([1.0, -0.5, 1.2, -0.4, 0.9, 0.3, -0.2, 1.1, -0.6, 0.8])
    model = WeightingModel(config, {})
    for name in ("losing", "winning", *pool):
        model.ensure_registered(name)

    model.update(pool | {"losing": losing_short, "winning": winning_short}, {})

    # Direct computation: posterior (n·SR + 20·(−0.2)) / (n + 20), PSR Φ(posterior √(n+20)).
    prior = model.pooled_prior(pool)
    assert prior is not None
    n, sr = losing_short.trades, losing_short.sharpe or 0.0
    posterior = (n * sr + prior[1] * prior[0]) / (n + prior[1])
    assert borrowed_psr(losing_short, prior) == pytest.approx(
        NormalDist().cdf(posterior * math.sqrt(n + prior[1]))
    )
    assert model.adaptive["losing"] < 1.0  # sized down before 20 trades of its own
    assert model.adaptive["winning"] == 1.0  # its own edge is positive: the pool cannot cut it
    assert all(model.adaptive[name] == 1.0 for name in pool)  # none significant


def test_without_borrowing_a_short_history_keeps_its_weight() -> None:
    pool = pool_of([-0.2, -0.22, -0.18], trades=100)
    losing_short = figures_of([-1.0, 0.5, -1.2, 0.4, -0.9, -0.3, 0.2, -1.1, 0.6, -0.8])
    model = WeightingModel(WeightingConfig(min_trades=20, borrow_strength=False), {})
    model.ensure_registered("losing")
    model.update(pool | {"losing": losing_short}, {})
    assert model.adaptive["losing"] == 1.0


def test_the_pooled_prior_is_computed_only_for_a_short_history_it_can_judge() -> None:
    pool = pool_of([-0.2, -0.22, -0.18], trades=100)
    losing_short = figures_of([-1.0, 0.5, -1.2, 0.4, -0.9, -0.3, 0.2, -1.1, 0.6, -0.8])
    pooled: list[int] = []

    class Counting(WeightingModel):
        def pooled_prior(self, recent: Any) -> tuple[float, float] | None:
            pooled.append(len(recent))
            return super().pooled_prior(recent)

    model = Counting(WeightingConfig(min_trades=20), {})
    for name in ("losing", *pool):
        model.ensure_registered(name)
    model.update(pool, {"calm": pool})  # every window full: nothing to borrow for
    assert pooled == []
    model.update(pool | {"losing": losing_short}, {})  # a short one: once for its table
    assert pooled == [4] and model.adaptive["losing"] < 1.0
    # The same windows again: nothing new to judge, nothing pooled.
    model.update(pool | {"losing": losing_short}, {})
    assert pooled == [4]


def test_trades_without_a_regime_have_no_weight_table_of_their_own() -> None:
    # Judged in the global table, and sized by it (a signal without a regime takes the
    # global weight), they had an `unknown` table too: every change journaled and
    # published twice, once with no regime and once with `unknown`.
    config = WeightingConfig(max_multiplier=2.0)
    model = WeightingModel(config, {"ema": StrategyConfig()})
    updates = model.update({"ema": good()}, {"unknown": {"ema": good()}, "calm": {"ema": good()}})
    assert sorted(str(u.regime) for u in updates) == ["None", "calm"]
    assert set(model.regime_adaptive) == {"calm"}
    # A snapshot that holds one (from before) restores without it.
    state = model.to_state()
    state["regime_adaptive"]["unknown"] = {"ema": 1.3}
    restored = WeightingModel.from_state(config, {"ema": StrategyConfig()}, state)
    assert set(restored.regime_adaptive) == {"calm"}
    # Nor a journaled weight of that table, applied again after a start from an older
    # snapshot (it came back, frozen, for signals naming `unknown`).
    restored.apply_journaled("ema", "unknown", 1.8)
    assert set(restored.regime_adaptive) == {"calm"}


def test_a_journaled_change_applied_again_is_not_made_again_and_keeps_its_multiple() -> None:
    # A start from an older snapshot applied the journaled weights again but not when
    # they were judged: the next cycle stepped again on the same trades (a change made
    # twice). And a base changed meanwhile lost the learned multiplier (the journaled
    # weight was taken as it was, not as a multiple of the base it was made on).
    config = WeightingConfig(max_multiplier=2.0)
    live = WeightingModel(config, {"ema": StrategyConfig(base_weight=0.8)})
    older = live.to_state()
    window = good()
    (change,) = live.update({"ema": window}, {})
    again = WeightingModel.from_state(config, {"ema": StrategyConfig(base_weight=0.8)}, older)
    again.apply_journaled("ema", None, change.new, change.metrics)
    assert again.adaptive == live.adaptive
    assert live.update({"ema": window}, {}) == again.update({"ema": window}, {}) == []
    # The operator set the base to 0.4: the multiple learned on 0.8 stays.
    halved = WeightingModel.from_state(config, {"ema": StrategyConfig(base_weight=0.4)}, older)
    halved.apply_journaled("ema", None, change.new, change.metrics)
    assert math.isclose(halved.adaptive["ema"], change.new / 0.8 * 0.4)
    restarted = WeightingModel.from_state(
        config, {"ema": StrategyConfig(base_weight=0.4)}, live.to_state()
    )
    assert math.isclose(halved.adaptive["ema"], restarted.adaptive["ema"])  # as a clean stop


def test_a_journaled_reset_applied_again_on_a_changed_base_is_at_the_new_base() -> None:
    # A reset was journaled as the weight it set: applied again after a start from an
    # older snapshot under a doubled base, it left the weight at half the new base.
    config = WeightingConfig(max_multiplier=2.0)
    live = WeightingModel(config, {"ema": StrategyConfig(base_weight=1.0)})
    live.update({"ema": good()}, {})
    older = live.to_state()
    (reset,) = live.reset("ops")
    doubled = WeightingModel.from_state(config, {"ema": StrategyConfig(base_weight=2.0)}, older)
    doubled.apply_journaled("ema", None, reset.new, reset.metrics)
    assert doubled.adaptive["ema"] == 2.0  # base, as after a clean restart


def test_a_strategy_configured_without_a_base_weight_takes_the_default_one() -> None:
    # Declared only for its drawdown limits, it took 1.0 beside a default of 0.25: four
    # times the allocation the operator set for every strategy.
    config = WeightingConfig(default_base_weight=0.25)
    model = WeightingModel(
        config,
        {
            "limits_only": StrategyConfig(hard_drawdown=500.0),
            "core": StrategyConfig(base_weight=2.0),
        },
    )
    model.ensure_registered("seen")
    assert model.base == {"core": 2.0, "limits_only": 0.25, "seen": 0.25}
