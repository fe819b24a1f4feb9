"""Strategy lifecycle: every transition of the table, hysteresis, probation, retirement."""

from __future__ import annotations

from actors.figures import Figures
from actors.lifecycle import TRANSITIONS, LifecycleConfig, LifecycleModel
from actors.weighting import StrategyConfig

HOUR = 3_600_000


def healthy(trades: int = 50) -> Figures:
    return Figures(
        trades=trades,
        wins=30,
        losses=20,
        win_rate=0.6,
        expectancy=1.0,
        profit_factor=2.0,
        sharpe=0.4,
        psr=0.95,
        max_drawdown=4.0,
        mean_abs_pnl=2.0,
    )


def soft_breach() -> Figures:
    return Figures(
        trades=50,
        wins=20,
        losses=30,
        win_rate=0.4,
        expectancy=-0.2,
        profit_factor=0.9,
        sharpe=-0.1,
        psr=0.3,
        max_drawdown=10.0,
        mean_abs_pnl=2.0,
    )


def hard_breach() -> Figures:
    return Figures(
        trades=50,
        wins=20,
        losses=30,
        win_rate=0.4,
        expectancy=-0.5,
        profit_factor=0.7,
        sharpe=-0.2,
        psr=0.1,
        max_drawdown=80.0,
        mean_abs_pnl=2.0,
    )


def model(**overrides: object) -> LifecycleModel:
    return LifecycleModel(LifecycleConfig(**overrides), {})  # type: ignore[arg-type]


def moves(m: LifecycleModel, figures: Figures, now: int = 0) -> list[tuple[str, str]]:
    return [(t.old, t.new) for t in m.assess({"ema": figures}, now)]


def test_soft_breach_degrades_then_suspends_after_max_violations() -> None:
    m = model(max_violations=3)
    assert moves(m, soft_breach()) == [("active", "degraded")]
    assert moves(m, soft_breach()) == []
    assert moves(m, soft_breach()) == [("degraded", "suspended")]
    assert m.status("ema") == "suspended"
    assert m.health("ema")[0]["suspensions"] == 1


def test_hard_breach_suspends_at_once() -> None:
    m = model()
    assert moves(m, hard_breach()) == [("active", "suspended")]


def test_degraded_recovers_only_after_clearing_hysteresis_for_recovery_checks() -> None:
    m = model(recovery_checks=2, hysteresis=0.1)
    moves(m, soft_breach())
    barely = Figures(
        trades=50,
        wins=31,
        losses=19,
        win_rate=0.62,
        expectancy=0.01,
        profit_factor=1.02,
        sharpe=0.1,
        psr=0.6,
        max_drawdown=4.0,
        mean_abs_pnl=2.0,
    )
    assert moves(m, barely) == [] and moves(m, barely) == []  # clean, but within the margin
    assert m.status("ema") == "degraded"
    assert moves(m, healthy()) == []
    assert moves(m, healthy()) == [("degraded", "active")]


def test_too_few_trades_are_not_assessed() -> None:
    m = model(min_trades=20)
    assert moves(m, hard_breach().__class__(**{**hard_breach().as_row(), "trades": 19})) == []


def test_probation_returns_a_suspended_strategy_to_degraded_after_the_time() -> None:
    m = model(probation_after_hours=24)
    moves(m, hard_breach(), now=0)
    assert moves(m, hard_breach(), now=23 * HOUR) == []
    assert moves(m, hard_breach(), now=24 * HOUR) == [("suspended", "degraded")]


def test_without_probation_only_an_operator_lifts_a_suspension() -> None:
    m = model()
    moves(m, hard_breach(), now=0)
    assert moves(m, healthy(), now=1000 * HOUR) == []
    forced = m.force("ema", "active", "reviewed", "alice", now_ms=5)
    assert (forced.old, forced.new, forced.actor) == ("suspended", "active", "alice")


def test_retired_after_the_third_suspension_and_stays_retired() -> None:
    m = model(retire_after_suspensions=3)
    for round_ in range(3):
        transitions = moves(m, hard_breach(), now=round_)
        if round_ < 2:
            assert transitions == [("active", "suspended")]
            m.force("ema", "active", "try again", "alice", now_ms=round_)
    assert transitions == [("active", "suspended"), ("suspended", "retired")]
    assert moves(m, healthy()) == []
    assert m.status("ema") == "retired"


def test_every_automatic_transition_of_the_table_is_exercised() -> None:
    seen: set[tuple[str, str]] = set()
    m = model(
        max_violations=2, recovery_checks=1, probation_after_hours=1, retire_after_suspensions=2
    )
    script = [soft_breach(), healthy(), hard_breach(), healthy()]
    now = 0
    for figures in script:
        seen.update(moves(m, figures, now))
        now += 2 * HOUR
    seen.update(moves(m, soft_breach(), now))
    seen.update(moves(m, soft_breach(), now + 1))
    m.force("ema", "degraded", "again", "bob", now)
    seen.update(moves(m, soft_breach(), now + 2))
    seen.update(moves(m, soft_breach(), now + 3))
    assert set(TRANSITIONS) <= seen


def test_absolute_drawdown_limit_of_a_strategy_beats_the_relative_one() -> None:
    m = LifecycleModel(LifecycleConfig(), {"ema": StrategyConfig(hard_drawdown=5.0)})
    assert moves(m, healthy()) == []  # drawdown 4.0 < 5.0
    worse = Figures(**{**healthy().as_row(), "max_drawdown": 6.0, "mean_abs_pnl": 2.0})
    assert moves(m, worse) == [("active", "suspended")]


def test_reasons_speak_the_traders_language_and_carry_metrics() -> None:
    m = model()
    transition = m.assess({"ema": soft_breach()}, 0)[0]
    assert "expectancy" in transition.reason and "profit factor 0.90 < 1.00" in transition.reason
    assert transition.metrics["expectancy"] == -0.2


def test_state_round_trip_keeps_counters() -> None:
    m = model()
    moves(m, soft_breach())
    restored = LifecycleModel.from_state(LifecycleConfig(), {}, m.to_state())
    assert restored.health() == m.health()
    assert moves(restored, soft_breach()) == moves(m, soft_breach())
