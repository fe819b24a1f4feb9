"""Signal quality (docs/scoring.md): the scorer's model, its bounds and its learning."""

from __future__ import annotations

import asyncio
import math
import random
import sys
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import msgspec
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from alphad.actors.base import TAKE_STATE, Actor, Handle
from alphad.actors.exact import binomial_at_most, student_t_above
from alphad.actors.figures import Figures, figures_of
from alphad.actors.lifecycle_shapes import PAPER_BATCHES_KEPT, PaperTrades
from alphad.actors.scorer import ScorerActor
from alphad.actors.scorer_config import ScorerConfig
from alphad.actors.scorer_fit import regime_fit_of
from alphad.actors.scorer_model import PlacedOutcome, ScoredRestore, ScorerModel
from alphad.actors.scorer_state import STATE_VERSION
from alphad.actors.scorer_tallies import BUCKETS, Tally
from alphad.actors.store_messages import JournaledSignal
from alphad.protocol.messages import STATUSES, ScoreSignal, SignalScore
from alphad.protocol.wire import SIZE_MIN

STRATEGIES = ["ema", "rsi", "macd"]
SYMBOLS = ["BTC", "ETH"]
REGIMES = ["trend", "range", "volatile"]

PROPERTY = settings(max_examples=60, deadline=None)


def signal(
    strategy: str = "ema",
    *,
    symbol: str = "BTC",
    side: str = "buy",
    confidence: float = 0.8,
    confluence: int = 3,
    regime: str | None = None,
    signal_id: str | None = None,
) -> ScoreSignal:
    return ScoreSignal(
        strategy=strategy,
        symbol=symbol,
        side=side,  # type: ignore[arg-type]
        confidence=confidence,
        confluence=confluence,
        regime=regime,
        signal_id=signal_id,
    )


def binomial_tail(wins: int, outcomes: int, p: float) -> float:
    """P(X ≤ wins) for X ~ Binomial(outcomes, p), from the definition."""
    return math.fsum(
        math.comb(outcomes, k) * p**k * (1.0 - p) ** (outcomes - k) for k in range(wins + 1)
    )


def learn(model: ScorerModel, request: ScoreSignal, outcomes: list[bool]) -> None:
    """Score the same setup once per outcome and report each outcome."""
    for success in outcomes:
        reply = model.score(msgspec.structs.replace(request, signal_id=None))
        assert reply.signal_id is not None
        assert model.record_outcome(reply.signal_id, success)


def allocate(
    model: ScorerModel,
    statuses: dict[str, str] | None = None,
    multipliers: dict[str, float] | None = None,
    regime_multipliers: dict[str, dict[str, float]] | None = None,
    weights: dict[str, float] | None = None,
) -> None:
    model.set_allocation(statuses or {}, weights or {}, multipliers or {}, regime_multipliers or {})


def figures(
    trades: int, expectancy: float, mean_abs_pnl: float = 5.0, sharpe: float | None = None
) -> Figures:
    return Figures(trades=trades, expectancy=expectancy, mean_abs_pnl=mean_abs_pnl, sharpe=sharpe)


# --------------------------------------------------------------------------- generators

requests = st.builds(
    signal,
    st.sampled_from(STRATEGIES),
    symbol=st.sampled_from(SYMBOLS),
    side=st.sampled_from(["buy", "sell"]),
    confidence=st.floats(0.0, 1.0),
    confluence=st.integers(0, 6),
    regime=st.none() | st.sampled_from(REGIMES),
    signal_id=st.none() | st.sampled_from(["a", "b", "c", "d"]),
)

# Anything a broken upstream could push, not only what the weighting model produces.
multiplier_values = st.floats(0.0, 10.0) | st.sampled_from([-1.0, math.nan, math.inf, -math.inf])

allocations = st.tuples(
    st.dictionaries(st.sampled_from(STRATEGIES), st.sampled_from(STATUSES)),
    st.dictionaries(st.sampled_from(STRATEGIES), st.floats(0.0, 10.0)),
    st.dictionaries(st.sampled_from(STRATEGIES), multiplier_values),
    st.dictionaries(
        st.sampled_from(REGIMES), st.dictionaries(st.sampled_from(STRATEGIES), multiplier_values)
    ),
)

figures_values = st.builds(
    figures,
    st.integers(0, 300),
    st.floats(-50.0, 50.0),
    st.floats(0.0, 50.0),
)

regime_fits = st.tuples(
    st.dictionaries(st.sampled_from(STRATEGIES), figures_values),
    st.dictionaries(
        st.sampled_from(REGIMES), st.dictionaries(st.sampled_from(STRATEGIES), figures_values)
    ),
)

configs = st.builds(
    ScorerConfig,
    min_quality=st.floats(0.0, 1.0),
    confluence_target=st.integers(1, 5),
    confluence_floor=st.floats(0.0, 1.0),
    regime_factors=st.dictionaries(st.sampled_from(REGIMES), st.floats(0.0, 1.0)),
    regime_min_trades=st.integers(1, 50),
    prior_strength=st.floats(0.1, 50.0),
    history_floor=st.floats(0.0, 1.0),
    setup_window=st.integers(1, 20),
    strategy_window=st.integers(1, 50),
    size_at_min_quality=st.floats(0.0, 1.0),
    max_size_multiplier=st.floats(0.01, 2.0),
    degraded_size_factor=st.floats(0.01, 0.99),
    max_pending_signals=st.integers(1, 8),
    max_setups=st.integers(1, 6),
    max_strategies=st.integers(1, 2),
)


@dataclass
class Outcome:
    pick: int
    success: bool


@dataclass
class Toggle:
    pass


operations = st.lists(
    st.one_of(
        requests,
        st.builds(Outcome, st.integers(0, 1000), st.booleans()),
        allocations,
        regime_fits,
        st.just(Toggle()),
    ),
    max_size=40,
)


def replay(model: ScorerModel, ops: list[Any]) -> list[tuple[ScoreSignal, SignalScore]]:
    """Apply a stream of operations; outcomes go to signals scored earlier (or unknown ids)."""
    scored: list[tuple[ScoreSignal, SignalScore]] = []
    for op in ops:
        if isinstance(op, ScoreSignal):
            scored.append((op, model.score(op)))
        elif isinstance(op, Outcome):
            ids = [reply.signal_id for _, reply in scored] + ["never-scored"]
            model.record_outcome(str(ids[op.pick % len(ids)]), op.success)
        elif isinstance(op, Toggle):
            model.enabled = not model.enabled
        elif len(op) == 4:
            model.set_allocation(*op)
        else:
            model.set_regime_fit(*op)
    return scored


# --------------------------------------------------------------------------- the bounds


@PROPERTY
@given(configs, operations, st.lists(requests, min_size=1, max_size=10))
@example(
    # A size of 1.4e-10 was executed: a trade no bot can report (the wire's Size).
    ScorerConfig(min_quality=0.3, size_at_min_quality=0.0),
    [],
    [ScoreSignal(strategy="s1", symbol="X", side="buy", confidence=0.3000000001, confluence=6)],
)
def test_every_reply_respects_the_risk_bounds(
    config: ScorerConfig, ops: list[Any], probes: list[ScoreSignal]
) -> None:
    model = ScorerModel(config, "run")
    scored = replay(model, ops) + replay(model, list(probes))
    for request, reply in scored:
        assert 0.0 <= reply.quality <= request.confidence
        assert 0.0 <= reply.size_multiplier <= config.max_size_multiplier
        if not reply.execute:
            assert reply.size_multiplier == 0.0
            assert reply.reasons, "a refusal always says why"
        else:
            assert reply.size_multiplier >= SIZE_MIN, "an executed trade can be reported"
        if reply.status not in ("active", "degraded"):
            assert not reply.execute


@PROPERTY
@given(configs, operations, requests, st.sampled_from(["suspended", "retired"]), st.booleans())
def test_suspended_and_retired_strategies_never_execute(
    config: ScorerConfig, ops: list[Any], request: ScoreSignal, status: str, enabled: bool
) -> None:
    model = ScorerModel(config, "run")
    replay(model, ops)
    allocate(model, statuses={request.strategy: status}, multipliers={request.strategy: 2.0})
    model.enabled = enabled

    reply = model.score(request)

    assert reply.execute is False
    assert reply.size_multiplier == 0.0
    assert reply.status == status
    assert f"strategy {status}" in reply.reasons


@PROPERTY
@given(configs, operations, requests)
def test_execute_needs_the_minimum_quality_and_a_tradable_status(
    config: ScorerConfig, ops: list[Any], request: ScoreSignal
) -> None:
    model = ScorerModel(config, "run")
    replay(model, ops)
    model.enabled = True

    reply = model.score(request)

    tradable = reply.status in ("active", "degraded")
    if reply.execute:
        assert tradable and reply.quality >= config.min_quality
    elif tradable and reply.quality >= config.min_quality:
        # The one other refusal: a size no trade can be reported at (below).
        assert any("below the smallest" in reason for reason in reply.reasons), reply


@pytest.mark.parametrize(
    ("config", "confidence", "multiplier", "size"),
    [
        # quality_scale = (quality − 0.3) / 0.7 from size_at_min_quality 0 at the minimum.
        (ScorerConfig(min_quality=0.3, size_at_min_quality=0.0), 0.3000000001, 1.0, None),
        (ScorerConfig(min_quality=0.3, size_at_min_quality=0.0), 0.31, 1.0, 0.01 / 0.7),
        (ScorerConfig(), 0.9, 0.0, None),  # a weight of 0: no order to place
        (ScorerConfig(), 0.9, 1e-10, None),
        (ScorerConfig(), 0.9, 2e-9, 2e-9),
    ],
)
def test_a_size_below_the_smallest_a_trade_can_have_is_not_executed(
    config: ScorerConfig, confidence: float, multiplier: float, size: float | None
) -> None:
    model = ScorerModel(config, "run")
    allocate(model, multipliers={"ema": multiplier})
    reply = model.score(signal("ema", confidence=confidence, confluence=6))
    if size is None:
        assert not reply.execute and reply.size_multiplier == 0.0
        assert reply.reasons[-1].endswith("below the smallest 1e-09"), reply.reasons
    else:
        assert reply.execute and reply.size_multiplier == pytest.approx(size)


@PROPERTY
@given(configs, operations, requests, st.floats(0.0, 10.0), st.booleans())
# The smallest size an active strategy executes, halved below it when degraded: refused.
@example(
    ScorerConfig(degraded_size_factor=0.5, max_size_multiplier=1.0),
    [],
    signal(confidence=0.0, confluence=0),
    1e-9,
    False,
)
def test_a_degraded_strategy_is_sized_below_an_active_one(
    config: ScorerConfig, ops: list[Any], request: ScoreSignal, multiplier: float, enabled: bool
) -> None:
    replies = {}
    for status in ("active", "degraded"):
        model = ScorerModel(config, "run")
        replay(model, ops)
        allocate(
            model, statuses={request.strategy: status}, multipliers={request.strategy: multiplier}
        )
        model.enabled = enabled
        replies[status] = model.score(request)
    active, degraded = replies["active"], replies["degraded"]

    assert degraded.quality == active.quality
    if degraded.execute or not active.execute:
        assert degraded.execute == active.execute
    else:
        # Only a size the degraded factor takes below the smallest a trade can have.
        assert active.size_multiplier * config.degraded_size_factor < SIZE_MIN
    if not degraded.execute:
        assert degraded.size_multiplier == 0.0
    elif active.size_multiplier >= sys.float_info.min:  # below that floats cannot shrink
        assert degraded.size_multiplier < active.size_multiplier
        assert degraded.size_multiplier == pytest.approx(
            active.size_multiplier * config.degraded_size_factor
        )
    else:
        assert degraded.size_multiplier <= active.size_multiplier


@PROPERTY
@given(
    configs,
    requests,
    st.floats(0.0, 1.0),
    st.floats(0.0, 1.0),
    st.floats(0.0, 10.0),
    st.floats(0.0, 10.0),
)
def test_size_rises_with_quality_and_with_the_weight_multiplier(
    config: ScorerConfig,
    request: ScoreSignal,
    confidence_a: float,
    confidence_b: float,
    multiplier_a: float,
    multiplier_b: float,
) -> None:
    low_c, high_c = sorted((confidence_a, confidence_b))
    low_m, high_m = sorted((multiplier_a, multiplier_b))

    def size(confidence: float, multiplier: float) -> float:
        model = ScorerModel(config, "run")
        allocate(model, multipliers={request.strategy: multiplier})
        return model.score(msgspec.structs.replace(request, confidence=confidence)).size_multiplier

    assert size(low_c, high_m) <= size(high_c, high_m)
    assert size(high_c, low_m) <= size(high_c, high_m)


def test_size_is_the_weight_multiplier_scaled_by_quality_then_capped() -> None:
    model = ScorerModel(ScorerConfig(min_quality=0.5, size_at_min_quality=0.5), "run")
    allocate(model, multipliers={"ema": 1.2, "rsi": 3.0})

    at_threshold = model.score(signal("ema", confidence=0.5))
    midway = model.score(signal("ema", confidence=0.75))
    perfect = model.score(signal("ema", confidence=1.0))
    capped = model.score(signal("rsi", confidence=1.0))

    assert at_threshold.size_multiplier == pytest.approx(1.2 * 0.5)
    assert midway.size_multiplier == pytest.approx(1.2 * 0.75)
    assert perfect.size_multiplier == pytest.approx(1.2)
    assert capped.size_multiplier == 2.0
    assert "size capped at 2" in capped.reasons


def test_a_broken_multiplier_never_sizes_beyond_the_cap() -> None:
    model = ScorerModel(ScorerConfig(), "run")
    allocate(model, multipliers={"ema": math.nan, "rsi": math.inf, "macd": -1.0})

    nan_size = model.score(signal("ema", confidence=1.0)).size_multiplier
    inf_size = model.score(signal("rsi", confidence=1.0)).size_multiplier
    negative_size = model.score(signal("macd", confidence=1.0)).size_multiplier

    assert nan_size == 1.0
    assert inf_size == 1.0
    assert negative_size == 0.0


def test_the_regime_multiplier_falls_back_to_the_global_one() -> None:
    model = ScorerModel(ScorerConfig(), "run")
    allocate(
        model, multipliers={"ema": 1.5, "rsi": 0.8}, regime_multipliers={"trend": {"ema": 0.4}}
    )

    in_trend = model.score(signal("ema", confidence=1.0, regime="trend"))
    other_strategy = model.score(signal("rsi", confidence=1.0, regime="trend"))
    other_regime = model.score(signal("ema", confidence=1.0, regime="range"))

    assert in_trend.size_multiplier == pytest.approx(0.4)
    assert other_strategy.size_multiplier == pytest.approx(0.8)
    assert other_regime.size_multiplier == pytest.approx(1.5)


def test_an_unknown_strategy_is_active_with_a_neutral_weight() -> None:
    model = ScorerModel(ScorerConfig(), "run")
    allocate(model, statuses={"ema": "degraded"}, weights={"ema": 0.3}, multipliers={"ema": 0.3})

    reply = model.score(signal("newcomer", confidence=1.0))

    assert reply.status == "active"
    assert reply.weight == 1.0
    assert reply.execute
    assert reply.size_multiplier == 1.0
    assert reply.reasons == []


def test_a_refused_signal_says_its_quality_and_the_minimum() -> None:
    model = ScorerModel(ScorerConfig(min_quality=0.5), "run")

    low = model.score(signal(confidence=0.42))
    just_below = model.score(signal(confidence=0.4999))

    assert low.reasons == ["quality 0.42 below minimum 0.50"]
    assert just_below.reasons == ["quality 0.49 below minimum 0.50"]
    # Two-digit qualities read as they are, though × 100 they fall short in binary
    # (0.29 × 100 = 28.999999999999996).
    higher = ScorerModel(ScorerConfig(min_quality=0.6), "run")
    for confidence, shown in ((0.29, "0.29"), (0.57, "0.57"), (0.58, "0.58"), (0.0, "0.00")):
        refused = higher.score(signal(confidence=confidence))
        assert refused.reasons == [f"quality {shown} below minimum 0.60"], confidence
    # A minimum of more digits is shown with them (rounded up, the quality down), so
    # that the two shown always differ; -0.0 is a quality of 0.
    for minimum, confidence, expected in (
        (0.305, 0.3049, "quality 0.304 below minimum 0.305"),
        (0.305, 0.3, "quality 0.300 below minimum 0.305"),
        (0.3333333333, 0.3333333332, "quality 0.333333 below minimum 0.333334"),
        (0.6, -0.0, "quality 0.00 below minimum 0.60"),
    ):
        reply = ScorerModel(ScorerConfig(min_quality=minimum), "run").score(
            signal(confidence=confidence)
        )
        assert reply.reasons == [expected], (minimum, confidence)
        assert math.copysign(1.0, reply.quality) == 1.0


# --------------------------------------------------------------------------- f_confluence


@PROPERTY
@given(st.integers(1, 20), st.floats(0.0, 1.0))
def test_confluence_factor_rises_to_one_at_the_target(target: int, floor: float) -> None:
    model = ScorerModel(ScorerConfig(confluence_target=target, confluence_floor=floor), "run")

    factors = [model.confluence_factor(c) for c in range(target + 5)]

    assert factors[0] == floor
    assert all(a <= b for a, b in pairwise(factors))
    assert all(0.0 <= f <= 1.0 for f in factors)
    assert factors[target:] == [1.0] * 5


def test_too_few_agreeing_indicators_lower_quality_and_say_so() -> None:
    model = ScorerModel(ScorerConfig(confluence_target=3, confluence_floor=0.6), "run")

    none_agree = model.score(signal(confidence=0.9, confluence=0))
    one_agrees = model.score(signal(confidence=0.9, confluence=1))
    all_agree = model.score(signal(confidence=0.9, confluence=5))

    assert none_agree.quality == pytest.approx(0.9 * 0.6)
    assert one_agrees.quality == pytest.approx(0.9 * (0.6 + 0.4 / 3))
    assert "confluence 1 of 3" in one_agrees.reasons
    assert all_agree.quality == 0.9
    assert all_agree.reasons == []


# --------------------------------------------------------------------------- f_regime


def test_regime_is_neutral_without_evidence() -> None:
    model = ScorerModel(ScorerConfig(regime_min_trades=10), "run")
    model.set_regime_fit(
        {"ema": figures(100, 2.0)},
        {
            "range": {"ema": figures(9, -10.0)},  # too few trades to judge
            "trend": {"ema": figures(50, 4.0)},  # better than overall
        },
    )

    assert model.score(signal(confidence=0.9)).quality == 0.9
    assert model.score(signal(confidence=0.9, regime="range")).quality == 0.9
    assert model.score(signal(confidence=0.9, regime="trend")).quality == 0.9
    assert model.score(signal(confidence=0.9, regime="never-seen")).quality == 0.9


def test_a_regime_that_loses_where_the_strategy_wins_lowers_quality() -> None:
    config = ScorerConfig(regime_min_trades=10, regime_prior_trades=20, regime_sensitivity=1.0)
    model = ScorerModel(config, "run")
    model.set_regime_fit({"ema": figures(100, 1.0, 5.0)}, {"range": {"ema": figures(40, -1.0)}})
    # shortfall (-1 - 1) / 5 = -0.4 average trades, 40 / (40 + 20) of it counts
    expected = 1.0 - 0.4 * 40 / 60

    reply = model.score(signal(confidence=0.9, regime="range"))

    assert model.regime_factor("ema", "range") == pytest.approx(expected)
    assert reply.quality == pytest.approx(0.9 * expected)
    assert f"regime range fits this strategy poorly ({expected:.2f})" in reply.reasons


def test_a_regime_shortfall_within_its_noise_lowers_nothing() -> None:
    # Expectancy -1 against 1 overall, with a standard deviation of 20 (Sharpe -0.05):
    # over 40 trades the standard error is 20 / √40 = 3.2, and a gap of 2 is 0.6 of it.
    noisy = figures(40, -1.0, sharpe=-0.05)
    # The same gap with a standard deviation of 4 (Sharpe -0.25): 3.2 standard errors.
    clear = figures(40, -1.0, sharpe=-0.25)
    overall = {"ema": figures(100, 1.0, 5.0)}
    model = ScorerModel(ScorerConfig(significance=0.1), "run")
    anything = ScorerModel(ScorerConfig(significance=0.5), "run")

    model.set_regime_fit(overall, {"range": {"ema": noisy}, "trend": {"ema": clear}})
    anything.set_regime_fit(overall, {"range": {"ema": noisy}})

    assert model.regime_factor("ema", "range") == 1.0
    assert model.regime_factor("ema", "trend") == pytest.approx(1.0 - 0.4 * 40 / 60)
    assert anything.regime_factor("ema", "range") == pytest.approx(1.0 - 0.4 * 40 / 60)
    reply = model.score(signal(confidence=0.9, regime="range"))
    assert reply.quality == 0.9
    assert reply.reasons == []


def test_a_setup_below_average_by_chance_keeps_its_quality() -> None:
    # 4 wins of 10 against a strategy rate of 0.5: z = 0.1 × √(10 / 0.25) = 0.63, not
    # significant at 10 % (1.28); 40 of 100 at the same rate is z = 2.0, significant.
    model = ScorerModel(ScorerConfig(significance=0.1), "run")
    learn(model, signal(symbol="BTC"), [True] * 4 + [False] * 6)
    learn(model, signal(symbol="ETH"), [True] * 6 + [False] * 4)
    by_chance = model.score(signal(symbol="BTC", confidence=1.0))
    learn(model, signal(symbol="BTC", side="sell"), [True] * 40 + [False] * 60)
    learn(model, signal(symbol="ETH", side="sell"), [True] * 60 + [False] * 40)
    shown = model.score(signal(symbol="BTC", side="sell", confidence=1.0))

    assert model.base_rate("ema") == pytest.approx(0.5)
    assert by_chance.quality == 1.0
    assert shown.quality < 1.0
    assert "similar setups won 40% of 100" in shown.reasons


def test_a_regime_fit_follows_new_overall_figures_with_the_same_regime_figures() -> None:
    model = ScorerModel(ScorerConfig(), "run")
    in_range = figures(40, -1.0, sharpe=-0.25)
    model.set_regime_fit({"ema": figures(100, 1.0, 5.0)}, {"range": {"ema": in_range}})
    before = model.regime_factor("ema", "range")
    # The same regime figures, the strategy now doing worse overall: a smaller shortfall.
    model.set_regime_fit({"ema": figures(100, 0.0, 5.0)}, {"range": {"ema": in_range}})

    assert before == pytest.approx(1.0 - 0.4 * 40 / 60)
    assert model.regime_factor("ema", "range") == pytest.approx(1.0 - 0.2 * 40 / 60)


def test_a_regime_breaking_even_with_spread_is_judged_by_its_significance() -> None:
    # 30 trades of +1 and -1: mean 0, standard deviation 1.017, Sharpe ratio exactly 0.
    config = ScorerConfig()
    even = figures_of([1.0, -1.0] * 15, keep_pnls=True)
    assert even.sharpe == 0.0
    slightly = figures_of([0.3, 0.0] * 50, keep_pnls=True)  # +0.15: gap 0.8 errors
    assert regime_fit_of(config, slightly, even) == 1.0
    clearly = figures_of([1.5, 0.5] * 50, keep_pnls=True)  # +1.0: gap 5.4 errors
    gap = -1.0 / clearly.mean_abs_pnl
    expected = max(config.regime_floor, 1.0 + config.regime_sensitivity * 30 / 50 * gap)
    assert regime_fit_of(config, clearly, even) == pytest.approx(expected)
    assert expected < 1.0


def test_the_config_factor_caps_a_regime_even_without_evidence() -> None:
    model = ScorerModel(ScorerConfig(regime_factors={"volatile": 0.8, "range": 0.9}), "run")
    model.set_regime_fit({"ema": figures(100, 1.0, 5.0)}, {"range": {"ema": figures(200, -5.0)}})

    volatile = model.score(signal(confidence=1.0, regime="volatile"))
    ranging = model.score(signal(confidence=1.0, regime="range"))

    assert volatile.quality == pytest.approx(0.8)
    assert "regime volatile capped at 0.80 by config" in volatile.reasons
    learned = model.regime_factor("ema", "range")
    assert learned < 0.9, "the learned fit is lower than the cap, so it applies"
    assert ranging.quality == pytest.approx(learned)


@PROPERTY
@given(configs, figures_values, figures_values)
def test_regime_fit_stays_between_its_floor_and_one(
    config: ScorerConfig, overall: Figures, in_regime: Figures
) -> None:
    model = ScorerModel(config, "run")

    fit = regime_fit_of(model.config, overall, in_regime)

    assert config.regime_floor <= fit <= 1.0
    if in_regime.trades < config.regime_min_trades or in_regime.expectancy >= overall.expectancy:
        assert fit == 1.0


# --------------------------------------------------------------------------- f_history

setup_outcomes = st.lists(
    st.tuples(st.sampled_from(SYMBOLS), st.sampled_from(["buy", "sell"]), st.booleans()),
    max_size=40,
)


@PROPERTY
@given(setup_outcomes, st.floats(0.5, 50.0), st.floats(0.0, 1.0), st.sampled_from(SYMBOLS))
def test_history_is_the_beta_posterior_around_the_strategy_rate(
    outcomes: list[tuple[str, str, bool]], strength: float, floor: float, probe_symbol: str
) -> None:
    config = ScorerConfig(prior_strength=strength, history_floor=floor)
    model = ScorerModel(config, "run")
    for symbol, side, success in outcomes:
        learn(model, signal(symbol=symbol, side=side), [success])
    probe = signal(symbol=probe_symbol, side="buy", confidence=1.0)
    # Written from the definition: prior Beta(k·p, k·(1 − p)), p the strategy's rate.
    wins_all = sum(success for _, _, success in outcomes)
    p = wins_all / len(outcomes) if outcomes else 0.5
    mine = [
        success for symbol, side, success in outcomes if (symbol, side) == (probe_symbol, "buy")
    ]
    posterior = (sum(mine) + strength * p) / (len(mine) + strength)
    rate = sum(mine) / len(mine) if mine else p
    # Only a shortfall significant at config.significance counts: an exact one-sided
    # binomial test of the setup's wins against p, summed term by term (certain when p
    # is 0 or 1).
    significant = p in (0.0, 1.0) or binomial_tail(sum(mine), len(mine), p) <= config.significance
    expected = max(floor, posterior / p) if rate < p and significant else 1.0

    reply = model.score(probe)

    assert model.base_rate("ema") == pytest.approx(p)
    assert model.posterior(model.setup_of(probe)) == pytest.approx(posterior)
    assert model.history_factor(model.setup_of(probe)) == pytest.approx(expected)
    assert reply.quality == pytest.approx(expected)


def test_an_average_setup_keeps_its_full_quality() -> None:
    model = ScorerModel(ScorerConfig(), "run")
    learn(model, signal(symbol="BTC"), [True, False, False] * 5)
    learn(model, signal(symbol="ETH"), [True, False, False] * 7)

    reply = model.score(signal(symbol="BTC", confidence=0.8))

    assert reply.quality == 0.8
    assert reply.reasons == []


def test_a_few_lucky_trades_do_not_make_a_setup_certain() -> None:
    model = ScorerModel(ScorerConfig(prior_strength=10.0), "run")
    learn(model, signal(symbol="ETH"), [False, True, False, False, True, False, False])
    learn(model, signal(symbol="BTC"), [True, True, True])

    posterior = model.posterior(model.setup_of(signal(symbol="BTC")))

    assert model.base_rate("ema") == pytest.approx(0.5)
    assert posterior == pytest.approx((3 + 10 * 0.5) / (3 + 10))
    assert posterior < 0.65


def test_a_losing_setup_lowers_quality_and_says_how_it_did() -> None:
    config = ScorerConfig(prior_strength=10.0, history_floor=0.5)
    model = ScorerModel(config, "run")
    learn(model, signal(symbol="ETH"), [True] * 20 + [False] * 7)
    learn(model, signal(symbol="BTC"), [True] * 4 + [False] * 9)
    p = 24 / 40
    expected = ((4 + 10 * p) / (13 + 10)) / p

    reply = model.score(signal(symbol="BTC", confidence=1.0))

    assert reply.quality == pytest.approx(expected)
    assert "similar setups won 31% of 13" in reply.reasons


def test_history_never_lowers_quality_below_its_floor() -> None:
    model = ScorerModel(ScorerConfig(history_floor=0.7, prior_strength=1.0), "run")
    learn(model, signal(symbol="ETH"), [True] * 30)
    learn(model, signal(symbol="BTC"), [False] * 30)

    reply = model.score(signal(symbol="BTC", confidence=1.0))

    assert reply.quality == pytest.approx(0.7)


def test_setups_are_told_apart_by_side_regime_and_confluence() -> None:
    model = ScorerModel(ScorerConfig(), "run")
    learn(model, signal(side="buy"), [True] * 10)
    learn(model, signal(side="sell"), [False] * 10)

    buy = model.score(signal(side="buy", confidence=1.0))
    sell = model.score(signal(side="sell", confidence=1.0))
    sell_in_trend = model.score(signal(side="sell", confidence=1.0, regime="trend"))
    sell_weaker = model.score(signal(side="sell", confidence=1.0, confluence=1))

    assert buy.quality == 1.0
    assert sell.quality < 1.0
    assert sell_in_trend.quality == 1.0
    assert sell_weaker.quality == pytest.approx(model.confluence_factor(1))


@PROPERTY
@given(st.lists(st.booleans(), max_size=120), st.integers(1, 30))
def test_a_setup_remembers_about_its_window_of_outcomes(outcomes: list[bool], window: int) -> None:
    model = ScorerModel(ScorerConfig(setup_window=window, strategy_window=window), "run")
    learn(model, signal(), outcomes)
    key = model.setup_of(signal())

    if outcomes:
        tally = model.setups[key]
        assert tally.outcomes == min(len(outcomes), window)
        assert 0.0 <= tally.successes <= tally.outcomes
        if len(outcomes) <= window:
            assert tally.successes == sum(outcomes)


def test_a_setup_rate_follows_a_change_of_fortune() -> None:
    model = ScorerModel(ScorerConfig(setup_window=20), "run")
    learn(model, signal(), [True] * 200 + [False] * 40)

    tally = model.setups[model.setup_of(signal())]

    assert tally.successes / tally.outcomes < 0.25


# --------------------------------------------------------------------------- outcomes


def test_an_outcome_is_learned_once_and_only_for_a_scored_signal() -> None:
    model = ScorerModel(ScorerConfig(), "run")
    reply = model.score(signal(signal_id="sig-1"))

    assert model.record_outcome("sig-1", True) is True
    assert model.record_outcome("sig-1", True) is False
    assert model.record_outcome("never-scored", False) is False
    assert model.summary()["outcomes"] == 1
    assert reply.signal_id == "sig-1"


def test_generated_signal_ids_carry_the_prefix_and_never_repeat() -> None:
    model = ScorerModel(ScorerConfig(), "18c2f3a")

    ids = [model.score(signal()).signal_id for _ in range(50)]

    assert len(set(ids)) == 50
    assert all(str(i).startswith("18c2f3a-") for i in ids)


def test_the_oldest_pending_signal_is_forgotten_first() -> None:
    model = ScorerModel(ScorerConfig(max_pending_signals=3), "run")
    for n in range(5):
        model.score(signal(signal_id=f"s{n}"))

    assert [model.record_outcome(f"s{n}", True) for n in range(5)] == [
        False,
        False,
        True,
        True,
        True,
    ]
    assert model.summary()["evicted"] == 2


@PROPERTY
@given(configs, operations)
def test_memory_stays_bounded_for_any_stream(config: ScorerConfig, ops: list[Any]) -> None:
    model = ScorerModel(config, "run")
    many = [
        signal(f"s{n % 7}", symbol=f"X{n % 5}", confluence=n % 4, signal_id=f"id{n}")
        for n in range(60)
    ]

    replay(model, ops)
    for request in many:
        reply = model.score(request)
        model.record_outcome(str(reply.signal_id), reply.quality > 0.5)
        model.score(msgspec.structs.replace(request, signal_id=f"open-{request.signal_id}"))

    assert len(model.pending) <= config.max_pending_signals
    assert len(model.setups) <= config.max_setups
    assert len(model.strategy_tallies) <= config.max_strategies


# --------------------------------------------------------------------------- scorer off


@PROPERTY
@given(configs, operations, requests, allocations)
def test_scorer_off_passes_confidence_through_and_follows_only_the_status(
    config: ScorerConfig, ops: list[Any], request: ScoreSignal, allocation: Any
) -> None:
    model = ScorerModel(config, "run")
    replay(model, ops)
    model.set_allocation(*allocation)
    model.enabled = False
    status = model.statuses.get(request.strategy, "active")
    multiplier = model.multipliers.get(request.strategy, 1.0)
    if request.regime is not None:
        multiplier = model.regime_multipliers.get(request.regime, {}).get(
            request.strategy, multiplier
        )
    expected_size = min(multiplier, config.max_size_multiplier)
    if status == "degraded":
        expected_size *= config.degraded_size_factor

    reply = model.score(request)

    assert reply.quality == request.confidence
    assert reply.execute == (status in ("active", "degraded") and expected_size >= SIZE_MIN)
    assert reply.size_multiplier == (pytest.approx(expected_size) if reply.execute else 0.0)


# --------------------------------------------------------------------------- summary


def test_summary_counts_success_by_quality_bucket() -> None:
    model = ScorerModel(ScorerConfig(confluence_target=1), "run")
    for n, (confidence, success) in enumerate(
        [(0.95, True), (0.92, True), (0.91, False), (0.55, False), (0.25, False)]
    ):
        model.score(signal(confidence=confidence, signal_id=f"s{n}"))
        model.record_outcome(f"s{n}", success)
    model.score(signal(confidence=0.65, signal_id="open"))

    summary = model.summary()
    buckets = {b["bucket"]: b for b in summary["buckets"]}

    assert summary["scored"] == 6
    assert summary["executed"] == 5
    assert summary["outcomes"] == 5
    assert summary["pending"] == 1
    assert summary["mean_quality"] == pytest.approx((0.95 + 0.92 + 0.91 + 0.55 + 0.25 + 0.65) / 6)
    assert buckets["0.9-1.0"]["success_rate"] == pytest.approx(2 / 3)
    assert buckets["0.5-0.6"]["success_rate"] == 0.0
    assert buckets["0.0-0.5"] == {
        "bucket": "0.0-0.5",
        "scored": 1,
        "executed": 0,
        "outcomes": 1,
        "success_rate": 0.0,
    }
    assert buckets["0.6-0.7"]["outcomes"] == 0 and buckets["0.6-0.7"]["success_rate"] is None


@pytest.mark.parametrize(
    ("quality", "bucket"),
    [(0.0, "0.0-0.5"), (0.4999, "0.0-0.5"), (0.5, "0.5-0.6"), (0.6, "0.6-0.7"), (1.0, "0.9-1.0")],
)
def test_a_quality_on_a_bucket_edge_counts_in_the_bucket_above(quality: float, bucket: str) -> None:
    model = ScorerModel(ScorerConfig(), "run")

    model.score(signal(confidence=quality))

    scored = {b["bucket"]: b["scored"] for b in model.summary()["buckets"]}
    assert scored[bucket] == 1
    assert sum(scored.values()) == 1
    assert len(scored) == len(BUCKETS)


# --------------------------------------------------------------------------- state


@PROPERTY
@given(configs, operations, st.lists(requests, min_size=1, max_size=10), st.booleans())
def test_state_survives_a_snapshot_round_trip(
    config: ScorerConfig, ops: list[Any], follow_up: list[ScoreSignal], success: bool
) -> None:
    model = ScorerModel(config, "run")
    replay(model, ops)
    encoded = msgspec.msgpack.encode(model.to_state())

    restored = ScorerModel.from_state(config, "run", msgspec.msgpack.decode(encoded))

    assert restored.to_state() == model.to_state()
    for request in follow_up:
        expected, got = model.score(request), restored.score(request)
        assert got == expected
        assert restored.record_outcome(str(got.signal_id), success) == model.record_outcome(
            str(expected.signal_id), success
        )
    assert restored.summary() == model.summary()


def test_a_restored_scorer_keeps_only_the_newest_records_of_smaller_caps() -> None:
    model = ScorerModel(ScorerConfig(), "run")
    for n in range(6):
        model.score(signal(symbol=f"S{n}", signal_id=f"s{n}"))
    for n in range(4):
        model.record_outcome(f"s{n}", True)
    smaller = ScorerConfig(max_pending_signals=1, max_setups=2)

    restored = ScorerModel.from_state(smaller, "run", model.to_state())

    assert list(restored.pending) == ["s5"]
    assert [key[1] for key in restored.setups] == ["S2", "S3"]


@pytest.mark.parametrize(
    "damage",
    [
        {"version": 99},
        {"bucket_scored": [0, 0]},
        {"setups": [[["ema", "BTC", "buy", "unknown", 3], 5.0, 2.0]]},
        {"pending": [["s1", [["ema", "BTC", "buy", "unknown", 3], 2 * len(BUCKETS)]]]},
        {"paper": {"ema": [3.0, 2.0]}},
        {"strategies": [["ema", 1.0, 0.0]]},
        {"regime_fit": {"trend": {"ema": 1.5}}},
        {"unexpected": 1},
    ],
)
def test_a_damaged_snapshot_is_refused_with_a_clear_error(damage: dict[str, Any]) -> None:
    state = ScorerModel(ScorerConfig(), "run").to_state() | damage

    with pytest.raises(ValueError, match="scorer state"):
        ScorerModel.from_state(ScorerConfig(), "run", state)


# --------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    "bad",
    [
        {"min_qualty": 0.5},
        {"degraded_size_factor": 1.0},
        {"max_size_multiplier": 2.5},
        {"regime_factors": {"volatile": 1.2}},
        {"confluence_target": 0},
        {"max_pending_signals": 0},
    ],
)
def test_a_config_out_of_bounds_is_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert(bad, ScorerConfig)


def test_a_config_built_in_code_is_checked_too() -> None:
    with pytest.raises(msgspec.ValidationError, match="max_size_multiplier"):
        ScorerModel(ScorerConfig(max_size_multiplier=3.0), "run")


async def test_snapshot_in_slices_is_the_state_of_its_first_instant_while_scoring_goes_on() -> None:
    model = ScorerModel(ScorerConfig(), "run")
    for i in range(3000):
        reply = model.score(signal(f"s{i % 7}", symbol=f"SYM{i % 11}", confluence=i % 5))
        if i % 3:
            model.record_outcome(reply.signal_id or "", i % 2 == 0)
    expected = msgspec.msgpack.decode(msgspec.msgpack.encode(model.to_state()))
    actor = ScorerActor(model, Handle(Actor()))
    snapshot = asyncio.create_task(actor.handle(TAKE_STATE))
    await asyncio.sleep(0)  # the snapshot starts: its first slice runs
    scored_meanwhile = 0
    while not snapshot.done():
        # score_signal is answered inline between the slices of the snapshot.
        model.score(signal("late", symbol="NEW"))
        scored_meanwhile += 1
        await asyncio.sleep(0)
    state = msgspec.msgpack.decode(msgspec.msgpack.encode(snapshot.result()))
    assert scored_meanwhile > 1
    assert state["model"] == expected
    restored = ScorerModel.from_state(ScorerConfig(), "run", state["model"])
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(restored.to_state())) == expected


# --------------------------------------------------------------------------- small samples


def test_one_or_two_losses_of_a_setup_do_not_lower_its_quality() -> None:
    # The strategy wins 60 % of the time. A setup that lost its only two outcomes is
    # P = 0.4² = 0.16 likely by chance: not significant at 10 %. The normal
    # approximation read it as z = 0.6 × √(2 / 0.24) = 1.73 and refused on it.
    model = ScorerModel(ScorerConfig(significance=0.1), "run")
    learn(model, signal(symbol="ETH"), [True] * 60 + [False] * 38)
    learn(model, signal(symbol="BTC"), [False, False])

    assert model.base_rate("ema") == pytest.approx(0.6)
    assert model.history_factor(model.setup_of(signal(symbol="BTC"))) == 1.0
    assert model.score(signal(symbol="BTC", confidence=1.0)).reasons == []


def test_a_setup_significantly_below_its_strategy_by_the_exact_test_loses_quality() -> None:
    # 4 wins of 20 against 0.4: P(X ≤ 4) = 0.051 (summed exactly), significant at 10 %;
    # the documented example (docs/scoring.md): f_history = 0.267 / 0.4.
    model = ScorerModel(ScorerConfig(significance=0.1), "run")
    learn(model, signal(symbol="ETH"), [True] * 36 + [False] * 44)
    learn(model, signal(symbol="BTC"), [True] * 4 + [False] * 16)
    p = model.base_rate("ema")

    assert p == pytest.approx(0.4)
    assert binomial_tail(4, 20, 0.4) == pytest.approx(0.0510, abs=1e-4)
    assert model.history_factor(model.setup_of(signal(symbol="BTC"))) == pytest.approx(
        (4 + 10 * 0.4) / 30 / 0.4
    )


@pytest.mark.parametrize(
    ("wins", "outcomes", "p"),
    [(0, 1, 0.62), (0, 3, 0.5), (1, 5, 0.6), (4, 20, 0.4), (30, 100, 0.45), (12, 40, 0.3)],
)
def test_the_exact_tail_is_the_binomial_sum(wins: int, outcomes: int, p: float) -> None:
    assert binomial_at_most(wins, outcomes, p) == pytest.approx(
        binomial_tail(wins, outcomes, p), rel=1e-9
    )


def test_a_faded_record_gets_the_tail_between_its_neighbours() -> None:
    # A record past its window keeps fractional counts; its tail lies between those of
    # the integer records around it.
    low, mid, high = (binomial_at_most(s, 20.0, 0.5) for s in (5.0, 5.5, 6.0))
    assert low < mid < high


# --------------------------------------------------------------------------- confluence


def test_confluence_by_record_comes_back_for_a_bucket_that_wins_as_its_strategy() -> None:
    # A mean-reversion strategy: its signals disagree with the trend readings (confluence
    # 0) and win as often as any of its signals. The fixed line's 0.6 is only the prior.
    record = ScorerModel(ScorerConfig(confluence="record"), "run")
    target = ScorerModel(ScorerConfig(confluence="target"), "run")
    for model in (record, target):
        learn(model, signal(confluence=0, symbol="ETH"), [True, False] * 50)
        learn(model, signal(confluence=3, symbol="ETH"), [True, False] * 50)

    assert target.confluence_factor(0, "ema") == pytest.approx(0.6)
    # posterior (50 + 10 × 0.5 × 0.6) / 110 over 0.5
    assert record.confluence_factor(0, "ema") == pytest.approx((50 + 3.0) / 110 / 0.5)
    assert record.confluence_factor(0, "ema") > 0.95
    assert record.confluence_factor(0, "other") == pytest.approx(0.6)  # no record: the prior


def test_confluence_by_record_stays_low_for_a_bucket_that_loses_more() -> None:
    model = ScorerModel(ScorerConfig(confluence="record"), "run")
    learn(model, signal(confluence=3, symbol="ETH"), [True] * 70 + [False] * 30)
    learn(model, signal(confluence=0, symbol="ETH"), [True] * 10 + [False] * 40)
    base = 80 / 150

    assert model.confluence_factor(0, "ema") == pytest.approx(
        max(0.6, (10 + 10 * base * 0.6) / 60 / base)
    )
    assert model.confluence_factor(0, "ema") < 0.7


def test_a_confluence_held_back_by_its_record_says_so() -> None:
    # A signal of 5 agreeing indicators (the target is 3) whose bucket has won less than
    # its strategy read "confluence 5 of 3", the fixed line's "fewer than the target".
    model = ScorerModel(ScorerConfig(confluence="record"), "run")
    learn(model, signal(confluence=3, symbol="ETH"), [True] * 10 + [False] * 40)
    learn(model, signal(confluence=0, symbol="ETH"), [True] * 60 + [False] * 20)
    factor = model.confluence_factor(5, "ema")
    assert factor < 1.0
    reply = model.score(signal(confluence=5, symbol="SOL"))
    assert f"confluence 5: {factor:.2f} by its record" in reply.reasons
    assert not any(reason.startswith("confluence 5 of") for reason in reply.reasons)


def test_a_version_1_snapshot_restores_without_confluence_records() -> None:
    model = ScorerModel(ScorerConfig(confluence="record"), "run")
    learn(model, signal(confluence=0), [False] * 5)
    state = model.to_state()
    del state["confluence"]
    state["version"] = 1

    restored = ScorerModel.from_state(ScorerConfig(confluence="record"), "run", state)

    assert restored.confluence_tallies == {}
    assert restored.strategy_tallies["ema"].outcomes == 5
    assert restored.to_state()["version"] == STATE_VERSION


def test_the_remembered_test_results_answer_as_the_exact_test_at_every_rate() -> None:
    # Scoring remembers, per record, the rates at which it was found short or not; the
    # p-value falls as the rate rises, so every answer must equal a fresh computation.
    model = ScorerModel(ScorerConfig(significance=0.1), "run")
    tally = Tally(7.0, 30.0)
    rates = [i / 200 for i in range(1, 200)]
    random.Random(11).shuffle(rates)
    for p in rates:
        assert model._shortfall_counts(tally, p) == (binomial_at_most(7.0, 30.0, p) <= 0.1), p
    tally.add(False, 100)  # a new outcome: what was remembered no longer holds
    for p in rates:
        assert model._shortfall_counts(tally, p) == (binomial_at_most(7.0, 31.0, p) <= 0.1), p


def test_outcomes_of_signals_refused_while_suspended_are_its_paper_trades() -> None:
    model = ScorerModel(ScorerConfig(), "run")
    allocate(model, {"ema": "active", "rsi": "active"})
    model.score(signal(signal_id="live"))  # scored while active: not a paper trade
    allocate(model, {"ema": "suspended", "rsi": "active"})
    for n in range(3):
        model.score(signal(signal_id=f"paper-{n}"))
    model.score(signal("rsi", signal_id="other"))
    for signal_id, success in [("live", True), ("paper-0", True), ("paper-1", False)]:
        assert model.record_outcome(signal_id, success)
    model.record_outcome("other", True)
    assert model.paper_record() == {"ema": PaperTrades(1.0, 2.0)}

    # The record survives a snapshot, and so does the mark on the one still pending.
    restored = ScorerModel.from_state(ScorerConfig(), "run", model.to_state())
    assert restored.paper_record() == {"ema": PaperTrades(1.0, 2.0)}
    assert restored.record_outcome("paper-2", True)
    assert restored.paper_record() == {"ema": PaperTrades(2.0, 3.0)}
    # The strategy's own record learned every outcome, paper or not.
    assert restored.base_rate("ema") == pytest.approx(3 / 4)

    # Back on probation the record is dropped; the next suspension starts a new one.
    allocate(restored, {"ema": "degraded", "rsi": "active"})
    assert restored.paper_record() == {}
    allocate(restored, {"ema": "suspended", "rsi": "active"})
    assert restored.paper_record() == {"ema": PaperTrades(0.0, 0.0)}


def test_late_outcomes_of_an_earlier_suspension_are_not_the_next_ones_paper_trades() -> None:
    model = ScorerModel(ScorerConfig(), "run")
    allocate(model, {"ema": "suspended"})
    for n in range(4):
        model.score(signal(signal_id=f"first-{n}"))
    assert model.record_outcome("first-0", True)
    allocate(model, {"ema": "degraded"})  # probation
    allocate(model, {"ema": "suspended"})  # suspended again: a new record from here
    model.score(signal(signal_id="second-0"))
    # The first suspension's signals report late: they teach their setup, not the record.
    for n in (1, 2, 3):
        assert model.record_outcome(f"first-{n}", True)
    assert model.record_outcome("second-0", False)
    assert model.paper_record() == {"ema": PaperTrades(0.0, 1.0)}
    assert model.base_rate("ema") == pytest.approx(4 / 5)
    # The same in a regime: a new suspension there unmarks that regime's signals only.
    model = ScorerModel(ScorerConfig(), "run")
    regimes = {"bear": {"ema": "suspended"}, "bull": {"ema": "suspended"}}
    model.set_allocation({"ema": "active"}, {}, {}, {}, regimes)
    for regime in ("bear", "bull"):
        model.score(signal(signal_id=f"old-{regime}", regime=regime))
    model.set_allocation({"ema": "active"}, {}, {}, {}, {"bull": {"ema": "suspended"}})
    model.set_allocation({"ema": "active"}, {}, {}, {}, regimes)  # bear suspended again
    for regime in ("bear", "bull"):
        assert model.record_outcome(f"old-{regime}", True)
    assert model.regime_paper_record() == {
        "bear": {"ema": PaperTrades(0.0, 0.0)},
        "bull": {"ema": PaperTrades(1.0, 1.0)},
    }


def test_a_paper_record_marks_the_end_of_each_batch_and_keeps_them_in_a_snapshot() -> None:
    # Batches of 5; 12 paper trades, every third one won.
    model = ScorerModel(ScorerConfig(), "run", paper_batch=5)
    allocate(model, {"ema": "suspended"})
    outcomes = [n % 3 == 0 for n in range(12)]
    for n, success in enumerate(outcomes):
        model.score(signal(signal_id=f"paper-{n}"))
        assert model.record_outcome(f"paper-{n}", success)
    ends = tuple((float(k), float(sum(outcomes[:k]))) for k in (5, 10))
    assert ends == ((5.0, 2.0), (10.0, 4.0))
    assert model.paper_record() == {"ema": PaperTrades(float(sum(outcomes)), 12.0, ends)}
    restored = ScorerModel.from_state(ScorerConfig(), "run", model.to_state(), paper_batch=5)
    assert restored.paper_record() == model.paper_record()
    # A snapshot from before batch ends (version 2) restores the record without them.
    old = model.to_state()
    del old["paper_ends"], old["regime_paper_ends"]
    old["version"] = 2
    assert ScorerModel.from_state(ScorerConfig(), "run", old).paper_record() == {
        "ema": PaperTrades(4.0, 12.0)
    }
    # An end past the record's outcomes is not believed; more wins than outcomes refused.
    bad = model.to_state()
    bad["paper_ends"] = {"ema": [(5.0, 2.0), (40.0, 9.0)]}
    assert ScorerModel.from_state(ScorerConfig(), "run", bad).paper_record()["ema"].batch_ends == (
        (5.0, 2.0),
    )
    bad["paper_ends"] = {"ema": [(5.0, 6.0)]}
    with pytest.raises(ValueError, match="more successes than outcomes"):
        ScorerModel.from_state(ScorerConfig(), "run", bad)


def test_a_paper_record_keeps_the_ends_of_its_latest_batches() -> None:
    model = ScorerModel(ScorerConfig(max_pending_signals=10_000), "run", paper_batch=1)
    allocate(model, {"ema": "suspended"})
    for n in range(PAPER_BATCHES_KEPT + 3):
        model.score(signal(signal_id=f"paper-{n}"))
        model.record_outcome(f"paper-{n}", True)
    ends = model.paper_record()["ema"].batch_ends
    assert ends == tuple((float(k), float(k)) for k in range(4, PAPER_BATCHES_KEPT + 4))


def test_a_start_learns_the_outcomes_at_their_place_among_the_signals() -> None:
    # Live, under a cap of 3 pending: s0 and s1 had their outcomes at once; s2 was
    # forgotten when s5 came, so its late outcome taught nothing; s4's came last. A start
    # holds the six pending again and learns the outcomes at the places they came, with
    # the pending flag they were recorded with: it must end as live did.
    config = ScorerConfig(max_pending_signals=3)
    live = ScorerModel(config, "run")
    allocate(live, {"ema": "active"})
    snapshot = live.to_state()
    journal, placed = [], []

    def outcome(signal_id: str, success: bool) -> None:
        placed.append(PlacedOutcome(live.scored, signal_id, success, signal_id in live.pending))
        live.record_outcome(signal_id, success)

    for n in range(6):
        request = signal(signal_id=f"s{n}", confluence=n % 3)
        reply = live.score(request)
        journal.append(
            JournaledSignal(
                ordinal=live.scored,
                signal_id=f"s{n}",
                strategy=request.strategy,
                symbol=request.symbol,
                side=request.side,
                confluence=request.confluence,
                regime=request.regime,
                quality=reply.quality,
                execute=reply.execute,
                status=reply.status,
            )
        )
        if n < 2:
            outcome(f"s{n}", n == 0)
    outcome("s2", True)
    outcome("s4", False)
    assert [p.pending for p in placed] == [True, True, False, True]
    assert list(live.pending) == ["s3", "s5"] and live.evicted_signals == 1
    restored = ScorerModel.from_state(config, "run", snapshot)
    allocate(restored, {"ema": "active"})
    assert restored.restore_scored(journal, placed) == 6
    assert restored.to_state() == live.to_state()
    # A page at a time, as a start reads the journal, the same (pages of 1 and 4: the
    # outcomes fall inside a page and between two).
    for size in (1, 4):
        paged = ScorerModel.from_state(config, "run", snapshot)
        allocate(paged, {"ema": "active"})
        restoring = ScoredRestore(paged, placed)
        for start in range(0, len(journal), size):
            restoring.take(journal[start : start + size])
        assert restoring.finish() == 6
        assert paged.to_state() == live.to_state()
    # Learned after all the signals instead (no places, before schema 6), s0 and s1 are
    # forgotten first and s2 is learned: not what live did.
    unplaced = ScorerModel.from_state(config, "run", snapshot)
    allocate(unplaced, {"ema": "active"})
    unplaced.restore_scored(journal, [p._replace(scored=None, pending=None) for p in placed])
    assert unplaced.to_state() != live.to_state()


def t_density_tail(t: float, df: int) -> float:
    """P(T >= t) by Simpson's rule over Student's t density, from 0 to t (the tail is
    1/2 minus that area): an independent route to the same number."""
    norm = math.gamma((df + 1) / 2) / (math.sqrt(df * math.pi) * math.gamma(df / 2))
    steps = 20_000
    h = t / steps
    area = 0.0
    for i in range(steps + 1):
        x = i * h
        weight = 1 if i in (0, steps) else (4 if i % 2 else 2)
        area += weight * norm * (1 + x * x / df) ** (-(df + 1) / 2)
    return 0.5 - area * h / 3


@pytest.mark.parametrize(("t", "df"), [(1.383, 9), (2.262, 9), (0.5, 3), (3.0, 1), (1.2816, 200)])
def test_the_t_tail_is_the_integral_of_its_density(t: float, df: int) -> None:
    assert student_t_above(t, df) == pytest.approx(t_density_tail(t, df), abs=1e-9)
    assert student_t_above(-t, df) == pytest.approx(1 - t_density_tail(t, df), abs=1e-9)


def test_a_regime_shortfall_on_few_trades_is_judged_against_students_t() -> None:
    # 10 trades, expectancy -1 against 1 overall, standard deviation 4.68 (Sharpe
    # -1 / 4.68): the gap is 1.35 standard errors, past the normal 10 % line (1.28)
    # but short of Student's t with 9 degrees of freedom (1.38): no evidence yet.
    few = figures(10, -1.0, sharpe=-1.0 / 4.68)
    assert 2.0 / (4.68 / math.sqrt(10)) == pytest.approx(1.35, abs=0.005)
    model = ScorerModel(ScorerConfig(significance=0.1, regime_min_trades=10), "run")
    model.set_regime_fit({"ema": figures(100, 1.0, 5.0)}, {"range": {"ema": few}})
    assert model.regime_factor("ema", "range") == 1.0
    # At 2.5 standard errors it counts.
    clear = figures(10, -1.0, sharpe=-1.0 / (2.0 / 2.5 * math.sqrt(10)))
    model.set_regime_fit({"ema": figures(100, 1.0, 5.0)}, {"range": {"ema": clear}})
    assert model.regime_factor("ema", "range") < 1.0
