"""Signal quality: the risk rules hold for any request and any learned state."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.figures import Figures
from actors.scorer import ScorerConfig, ScorerModel
from protocol.messages import ScoreSignal

requests = st.builds(
    ScoreSignal,
    strategy=st.sampled_from(["ema", "rsi", "new"]),
    symbol=st.sampled_from(["BTC", "ETH"]),
    side=st.sampled_from(["buy", "sell"]),
    confidence=st.floats(0, 1),
    confluence=st.integers(0, 10),
    regime=st.sampled_from([None, "trend", "volatile"]),
)
statuses = st.dictionaries(
    st.sampled_from(["ema", "rsi"]), st.sampled_from(["active", "degraded", "suspended", "retired"])
)
multipliers = st.dictionaries(st.sampled_from(["ema", "rsi"]), st.floats(0.1, 2.0))


def signal(**fields: object) -> ScoreSignal:
    base: dict[str, object] = {
        "strategy": "ema",
        "symbol": "BTC",
        "side": "buy",
        "confidence": 0.8,
        "confluence": 3,
    }
    base.update(fields)
    return ScoreSignal(**base)  # type: ignore[arg-type]


@settings(max_examples=150, deadline=None)
@given(
    st.lists(requests, min_size=1, max_size=40),
    st.lists(st.booleans(), max_size=40),
    statuses,
    multipliers,
    st.booleans(),
)
def test_quality_never_exceeds_confidence_and_size_never_exceeds_cap(
    stream: list[ScoreSignal],
    outcomes: list[bool],
    status: dict[str, str],
    mult: dict[str, float],
    enabled: bool,
) -> None:
    model = ScorerModel(ScorerConfig(regime_factors={"volatile": 0.8}), "t")
    model.enabled = enabled
    model.set_allocation(status, {k: 1.0 for k in mult}, mult, {"trend": mult})
    for i, request in enumerate(stream):
        reply = model.score(request)
        assert 0.0 <= reply.quality <= request.confidence
        assert 0.0 <= reply.size_multiplier <= 2.0
        if not reply.execute:
            assert reply.size_multiplier == 0.0
        if status.get(request.strategy) in ("suspended", "retired"):
            assert not reply.execute
            assert f"strategy {status[request.strategy]}" in reply.reasons
        if i < len(outcomes):
            model.record_outcome(reply.signal_id or "", outcomes[i])


def test_confluence_factor_rises_to_one_at_the_target() -> None:
    model = ScorerModel(ScorerConfig(confluence_target=3), "t")
    qualities = [model.score(signal(confluence=c, confidence=1.0)).quality for c in range(6)]
    assert qualities == sorted(qualities)
    assert qualities[3] == qualities[4] == qualities[5] == 1.0
    assert "confluence 1 of 3" in model.score(signal(confluence=1)).reasons


def test_degraded_strategy_is_sized_lower_than_active_with_same_inputs() -> None:
    active = ScorerModel(ScorerConfig(), "t")
    degraded = ScorerModel(ScorerConfig(), "t")
    degraded.set_allocation({"ema": "degraded"}, {"ema": 1.0}, {"ema": 1.0}, {})
    a = active.score(signal())
    d = degraded.score(signal())
    assert a.execute and d.execute
    assert 0 < d.size_multiplier < a.size_multiplier


def test_size_rises_with_quality_and_weight_multiplier() -> None:
    model = ScorerModel(ScorerConfig(), "t")
    low = model.score(signal(confidence=0.6)).size_multiplier
    high = model.score(signal(confidence=0.9)).size_multiplier
    assert high > low
    model.set_allocation({}, {}, {"ema": 1.3}, {})
    assert model.score(signal(confidence=0.6)).size_multiplier > low


def test_low_quality_is_refused_with_a_reason() -> None:
    reply = ScorerModel(ScorerConfig(min_quality=0.5), "t").score(signal(confidence=0.4))
    assert not reply.execute and reply.size_multiplier == 0.0
    assert "quality 0.40 below minimum 0.50" in reply.reasons


def test_history_factor_is_a_beta_posterior_with_the_strategy_rate_as_prior() -> None:
    model = ScorerModel(ScorerConfig(prior_strength=10), "t")
    # The strategy wins 6 of 10 elsewhere; this setup won 1 of 5.
    for i in range(10):
        sid = model.score(signal(symbol="ETH", signal_id=f"e{i}")).signal_id
        model.record_outcome(sid or "", i < 6)
    for i in range(5):
        sid = model.score(signal(signal_id=f"b{i}")).signal_id
        model.record_outcome(sid or "", i < 1)
    base = (7 + 1) / (15 + 2)  # strategy: 7 wins of 15, Laplace-smoothed
    posterior = (1 + 10 * base) / (5 + 10)
    assert model.posterior("ema", ("ema", "BTC", "buy", "", 3)) == pytest.approx(posterior)
    reply = model.score(signal())
    assert reply.quality == pytest.approx(0.8 * max(0.5, posterior / base))
    assert "similar setups won 1 of 5" in reply.reasons


def test_an_outcome_counts_once() -> None:
    model = ScorerModel(ScorerConfig(), "t")
    sid = model.score(signal()).signal_id or ""
    assert model.record_outcome(sid, True) is True
    assert model.record_outcome(sid, True) is False
    assert model.record_outcome("never-scored", True) is False


def test_regime_that_fits_poorly_lowers_quality_and_config_caps_it() -> None:
    model = ScorerModel(ScorerConfig(regime_factors={"volatile": 0.8}), "t")
    overall = {"ema": Figures(trades=60, expectancy=1.0, mean_abs_pnl=2.0)}
    by_regime = {
        "range": {"ema": Figures(trades=20, expectancy=0.0, mean_abs_pnl=2.0)},
        "trend": {"ema": Figures(trades=40, expectancy=1.5, mean_abs_pnl=2.0)},
    }
    model.set_regime_fit(overall, by_regime)
    assert model.score(signal(regime="trend", confidence=1.0)).quality == 1.0
    assert model.score(signal(regime="range", confidence=1.0)).quality == pytest.approx(0.5)
    assert model.score(signal(regime="volatile", confidence=1.0)).quality == pytest.approx(0.8)
    assert model.score(signal(regime=None, confidence=1.0)).quality == 1.0


def test_pending_signals_and_setups_are_bounded() -> None:
    model = ScorerModel(ScorerConfig(max_pending_signals=50, max_setups=3), "t")
    for i in range(500):
        sid = model.score(signal(symbol=f"S{i % 7}", signal_id=f"x{i}")).signal_id
        model.record_outcome(sid or "", True) if i % 2 else None
    assert len(model.pending) <= 50
    assert len(model.setups) <= 3


def test_scorer_off_passes_confidence_through_but_keeps_risk_rules() -> None:
    model = ScorerModel(ScorerConfig(), "t")
    model.enabled = False
    model.set_allocation({"ema": "suspended", "rsi": "active"}, {}, {"rsi": 1.8}, {})
    refused = model.score(signal(confidence=0.3))
    assert not refused.execute and refused.quality == 0.3
    taken = model.score(signal(strategy="rsi", confidence=0.3, confluence=0))
    assert taken.execute and taken.quality == 0.3 and taken.size_multiplier == 1.8


def test_generated_ids_are_unique_and_state_round_trips() -> None:
    model = ScorerModel(ScorerConfig(), "boot1")
    ids = {model.score(signal()).signal_id for _ in range(20)}
    assert len(ids) == 20 and all(i and i.startswith("boot1-") for i in ids)
    model.record_outcome("boot1-3", False)
    restored = ScorerModel.from_state(ScorerConfig(), "boot2", model.to_state())
    assert restored.summary() == model.summary()
    assert restored.score(signal(signal_id="z")) == model.score(signal(signal_id="z"))
