"""Strategy lifecycle: every transition of the table, hysteresis, probation, retirement, state."""

from __future__ import annotations

import itertools
import math
import random
import statistics
from typing import Any

import msgspec
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from alphad.actors.errors import BadInput
from alphad.actors.events import ClosedTrade
from alphad.actors.exact import binomial_at_least
from alphad.actors.figures import Figures, figures_of, shown_below
from alphad.actors.lifecycle import TRANSITIONS, LifecycleModel
from alphad.actors.lifecycle_evidence import edge_level, lasted_words, paper_batches, paper_verdict
from alphad.actors.lifecycle_shapes import LifecycleConfig, PaperTrades, Transition
from alphad.actors.performance import PerformanceConfig, PerformanceModel
from alphad.actors.sequential import below_peak
from alphad.actors.weighting_config import StrategyConfig
from alphad.protocol.messages import STATUSES

HOUR = 3_600_000
_new_trade = itertools.count(1)


def window(**overrides: Any) -> Figures:
    """A healthy recent window (mean |pnl| 2.0, so drawdown limits are 24 soft, 50 hard).

    Each call is a window after 50 more trades (``seen``; its total pnl differs too), all
    of it new: a window seen before is no new evidence and is not assessed again.
    """
    new = next(_new_trade)
    figures: dict[str, Any] = {
        "total_pnl": 50.0 + new * 1e-6,
        "seen": 50 * new,
        "trades": 50,
        "wins": 30,
        "losses": 20,
        "win_rate": 0.6,
        "expectancy": 1.0,
        "profit_factor": 2.0,
        "sharpe": 0.4,
        "judged_psr": 0.95,
        "max_drawdown": 4.0,
        "mean_abs_pnl": 2.0,
    }
    return Figures(**{**figures, **overrides})


def soft_breach() -> Figures:
    return window(win_rate=0.4, expectancy=-0.2, profit_factor=0.9, sharpe=-0.2, judged_psr=0.05)


def hard_breach() -> Figures:
    return window(
        win_rate=0.4, expectancy=-0.5, profit_factor=0.7, judged_psr=0.02, max_drawdown=80.0
    )


# The mechanics are tested at fixed thresholds, not at the tuned defaults (docs/replay.md).
MECHANICS: dict[str, Any] = {
    "min_trades": 20,
    "soft_drawdown": 12.0,
    "hard_drawdown": 25.0,
    "max_violations": 3,
    "psr_floor": 0.10,
    "recount_share": 1.0,
}


def mechanics(**overrides: Any) -> LifecycleConfig:
    return msgspec.convert({**MECHANICS, **overrides}, LifecycleConfig)


def model(**overrides: Any) -> LifecycleModel:
    return LifecycleModel(mechanics(**overrides), {})


def moves(m: LifecycleModel, figures: Figures, now: int = 0) -> list[tuple[str, str]]:
    return [(t.old, t.new) for t in m.assess({"ema": figures}, now)]


def test_a_cycle_without_new_trades_is_not_counted_again() -> None:
    m = model(max_violations=3)
    same = soft_breach()
    assert moves(m, same) == [("active", "degraded")]
    assert moves(m, same) == [] and moves(m, same) == []  # the same window, no new evidence
    assert m.health("ema")[0]["violations"] == 1
    assert moves(m, soft_breach()) == []
    assert moves(m, soft_breach()) == [("degraded", "suspended")]


def test_losses_of_almost_no_spread_suspend_with_a_reason_instead_of_failing() -> None:
    # The same loss every trade but for a spread of 1e-9 (above the 1e-12 that counts as
    # rounding) makes the edge test's evidence exceed what a float's exponential holds:
    # the strategy is suspended all the same.
    m = LifecycleModel(LifecycleConfig(), {})
    m.register("ema", 0)
    pnls = [-1.0] * 11 + [-1.0 - 1e-9]  # past the edge test's 10 trades, short of min_trades
    transitions = m.assess({"ema": figures_of(pnls, seen=len(pnls), keep_pnls=True)}, 0)
    assert [(t.old, t.new) for t in transitions] == [("active", "suspended")]
    assert "lost its edge" in transitions[0].reason and "times likelier" in transitions[0].reason


def test_a_healthy_strategy_says_what_its_status_rests_on_once_judged() -> None:
    m = model()
    m.register("ema", 0)
    assert m.health("ema")[0]["reason"] == "new strategy"
    assert moves(m, window(trades=10)) == []  # short of min_trades: not judged yet
    assert m.health("ema")[0]["reason"] == "new strategy"
    assert moves(m, window()) == []
    assert m.health("ema")[0]["reason"] == (
        "within every limit since its first judged window (50 trades)"
    )
    assert m.health("ema")[0]["status"] == "active"


# --------------------------------------------------------------------------- the table


def test_transition_table_names_every_automatic_move_between_known_statuses() -> None:
    assert set(TRANSITIONS) == {
        ("active", "degraded"),
        ("active", "suspended"),
        ("degraded", "active"),
        ("degraded", "suspended"),
        ("suspended", "degraded"),
        ("suspended", "retired"),
    }
    assert all(old in STATUSES and new in STATUSES for old, new in TRANSITIONS)
    assert not any(old == "retired" for old, _ in TRANSITIONS)  # only force brings it back


def test_every_automatic_transition_of_the_table_is_exercised() -> None:
    m = model(
        max_violations=2, recovery_checks=1, probation_after_hours=1, retire_after_suspensions=2
    )
    seen: list[tuple[str, str]] = []
    script = [
        (soft_breach(), 0),  # active -> degraded
        (window(), 1),  # degraded -> active
        (hard_breach(), 2),  # active -> suspended (1st)
        (window(), 2 + HOUR),  # suspended -> degraded (probation)
        (soft_breach(), 3 + HOUR),  # degraded, 1st violation after probation
        (soft_breach(), 4 + HOUR),  # degraded -> suspended (2nd) -> retired
    ]
    for figures, now in script:
        seen += moves(m, figures, now)
    assert seen == [
        ("active", "degraded"),
        ("degraded", "active"),
        ("active", "suspended"),
        ("suspended", "degraded"),
        ("degraded", "suspended"),
        ("suspended", "retired"),
    ]
    m.force("ema", "degraded", "second chance", "bob", 5 + HOUR)
    seen += moves(m, hard_breach(), 6 + HOUR)  # degraded -> suspended at once
    assert set(seen) == set(TRANSITIONS)


# --------------------------------------------------------------------------- soft breaches


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"win_rate": 0.2}, "win rate 20% < 25%"),
        ({"max_drawdown": 30.0}, "drawdown 30.00 > 24.00"),
        ({"judged_psr": 0.05}, "PSR 0.05 < 0.10"),
    ],
)
def test_any_soft_breach_degrades_an_active_strategy(
    overrides: dict[str, float], reason: str
) -> None:
    m = model()
    (transition,) = m.assess({"ema": window(**overrides)}, 7)
    assert (transition.old, transition.new, transition.reason) == ("active", "degraded", reason)
    assert (transition.actor, transition.ts_ms) == ("system", 7)
    assert m.health("ema")[0]["violations"] == 1


def test_a_negative_expectancy_without_significance_is_no_breach() -> None:
    # A real edge shows a losing window now and then; only PSR below the floor (fairly
    # sure the Sharpe ratio is negative) breaches on the edge.
    m = model()
    noisy = window(expectancy=-0.1, profit_factor=0.95, sharpe=-0.05, judged_psr=0.35)
    assert moves(m, noisy) == []
    assert moves(m, window(expectancy=-0.1, profit_factor=0.95, sharpe=-0.2, judged_psr=0.09)) == [
        ("active", "degraded")
    ]


def test_one_huge_loss_among_good_trades_is_no_soft_breach_by_psr() -> None:
    # 49 trades of a small edge and one loss of 800: the skewness term of the PSR makes
    # the window look 96 % sure of a negative Sharpe ratio (PSR 0.04). Judged as normal
    # returns would be (PSR 0.17), one trade is not that much evidence.
    pnls = [20.5 if i % 2 else -19.5 for i in range(49)] + [-800.0]
    figures = figures_of(pnls, seen=len(pnls), keep_pnls=True)
    m = LifecycleModel(LifecycleConfig(), {})
    assert figures.psr is not None and figures.psr < m.config.psr_floor
    assert figures.judged_psr is not None and figures.judged_psr > 0.15
    assert not m.check("ema", figures).soft
    assert m.assess({"ema": figures}, 0) == []
    # A steady bleed stays a breach: its PSR is low without any single trade.
    bleeding = figures_of([-2.0, 1.0] * 25, seen=100, keep_pnls=True)
    assert m.check("ema", bleeding).soft == [f"PSR {bleeding.judged_psr:.2f} < 0.05"]


def test_reasons_read_like_a_trader_and_carry_the_metrics() -> None:
    m = model()
    (transition,) = m.assess({"ema": window(judged_psr=0.04, win_rate=0.2)}, 0)
    assert transition.reason == "PSR 0.04 < 0.10; win rate 20% < 25%"
    assert transition.metrics["judged_psr"] == 0.04
    assert transition.metrics["win_rate"] == 0.2
    assert "pnls" not in transition.metrics
    assert transition.metrics["soft_drawdown_limit"] == 24.0
    assert transition.metrics["violations"] == 1
    msgspec.json.encode(transition)  # journaled as JSON


def test_degraded_strategy_is_suspended_after_max_violations_breaches_in_a_row() -> None:
    m = model(max_violations=3)
    assert moves(m, soft_breach()) == [("active", "degraded")]
    assert moves(m, soft_breach()) == []
    transitions = m.assess({"ema": soft_breach()}, 0)
    assert [(t.old, t.new) for t in transitions] == [("degraded", "suspended")]
    assert transitions[0].reason == "3rd violation in a row: PSR 0.05 < 0.10"
    assert m.health("ema")[0]["suspensions"] == 1


def test_a_recovered_assessment_resets_the_violation_count() -> None:
    m = model(max_violations=3, recovery_checks=10)
    moves(m, soft_breach())
    moves(m, soft_breach())
    assert moves(m, window()) == []
    assert m.health("ema")[0]["violations"] == 0
    assert moves(m, soft_breach()) == [] and moves(m, soft_breach()) == []
    assert moves(m, soft_breach()) == [("degraded", "suspended")]


def test_a_clean_assessment_short_of_recovery_keeps_the_violation_count() -> None:
    m = model(max_violations=3, recovery_checks=10)
    moves(m, soft_breach())
    moves(m, soft_breach())
    scraping = window(expectancy=0.01, profit_factor=1.01, judged_psr=0.12)  # no breach, no margin
    assert moves(m, scraping) == []
    assert m.health("ema")[0]["violations"] == 2
    assert moves(m, soft_breach()) == [("degraded", "suspended")]


# --------------------------------------------------------------------------- hard breaches


def test_hard_breach_suspends_an_active_strategy_at_once() -> None:
    m = model()
    (transition,) = m.assess({"ema": hard_breach()}, 0)
    assert (transition.old, transition.new) == ("active", "suspended")
    assert transition.reason == "drawdown 80.00 > hard limit 50.00; PSR 0.02 < 0.10"
    assert transition.metrics["hard_drawdown_limit"] == 50.0


def test_hard_breach_suspends_a_degraded_strategy_at_once() -> None:
    m = model(max_violations=10)
    moves(m, soft_breach())
    assert moves(m, hard_breach()) == [("degraded", "suspended")]


def test_absolute_drawdown_limits_of_a_strategy_replace_the_relative_ones() -> None:
    # In the bot's money (the drawdown as traded), not per unit of size.
    limits = {"ema": StrategyConfig(soft_drawdown=3.0, hard_drawdown=5.0)}
    m = LifecycleModel(mechanics(), limits)
    assert moves(m, window(sized_pnls=(-2.9,), max_drawdown=100.0)) == []
    assert moves(m, window(sized_pnls=(-3.5,))) == [("active", "degraded")]
    assert moves(m, window(sized_pnls=(-6.0,))) == [("degraded", "suspended")]
    relative = LifecycleModel(mechanics(), {"ema": StrategyConfig(hard_drawdown=5.0)})
    assert moves(relative, window(sized_pnls=(-4.5,), max_drawdown=4.5)) == []  # soft: 24
    assert relative.drawdown_limits("ema", window(sized_pnls=(-4.5,), max_drawdown=7.0)) == (
        (24.0, 7.0),
        (5.0, 4.5),
    )


@pytest.mark.parametrize("size", [1.0, 10.0, 0.1])
def test_an_operators_absolute_limit_is_in_the_money_traded_at_any_size(size: float) -> None:
    # 60 wins of 3, 20 losses of 8, 20 wins of 3: a drawdown of 160 per unit of size.
    # Held against the pnl per unit, a limit of 100 stopped the strategy trading size 10
    # only at ten times the loss, and the one trading 0.1 at a tenth of it.
    shape = [3.0] * 60 + [-8.0] * 20 + [3.0] * 20
    performance = PerformanceModel(PerformanceConfig(window_trades=100))
    record(performance, shape, size=size)
    judged = performance.recent_by_strategy()["ema"]
    assert judged.max_drawdown == pytest.approx(160.0)
    limits = {"ema": StrategyConfig(soft_drawdown=80.0, hard_drawdown=100.0)}
    found = LifecycleModel(mechanics(edge_loss=0.0), limits).check("ema", judged)
    assert found.metrics()["sized_drawdown"] == pytest.approx(160.0 * size)
    if size * 160.0 > 100.0:
        assert found.hard == f"drawdown {160.0 * size:.2f} > hard limit 100.00"
    else:
        assert found.hard is None and found.soft == []


def test_relative_drawdown_limits_follow_the_size_of_the_trades() -> None:
    m = model()
    small = window(max_drawdown=40.0, expectancy=1.0, mean_abs_pnl=2.0)
    large = window(max_drawdown=4000.0, expectancy=100.0, mean_abs_pnl=200.0)
    assert m.check("a", small).soft == ["drawdown 40.00 > 24.00"]
    assert m.check("b", large).soft == ["drawdown 4000.00 > 2400.00"]
    assert m.check("a", small).hard is None and m.check("b", large).hard is None


# --------------------------------------------------------------------------- recovery


def test_degraded_recovers_only_after_clearing_the_margin_for_recovery_checks_in_a_row() -> None:
    m = model(recovery_checks=2, hysteresis=0.1)
    moves(m, soft_breach())
    barely = window(win_rate=0.36, expectancy=0.01, profit_factor=1.02, judged_psr=0.6)
    assert moves(m, barely) == [] and moves(m, barely) == []  # clean, but within the margin
    assert moves(m, window()) == []
    assert moves(m, barely) == []  # the streak starts over
    assert moves(m, window()) == []
    transitions = m.assess({"ema": window()}, 0)
    assert [(t.old, t.new) for t in transitions] == [("degraded", "active")]
    assert "2 assessments in a row" in transitions[0].reason


@pytest.mark.parametrize(
    "within_margin",
    [
        {"expectancy": 0.1},  # must exceed 0.05 × mean |pnl| 2.0 = 0.1
        {"profit_factor": 1.05},
        {"win_rate": 0.30},
        {"max_drawdown": 22.8},  # must stay under 24 × 0.95
        {"judged_psr": 0.15},
        {"profit_factor": None},  # no loss and no win: nothing to clear with
    ],
)
def test_every_threshold_must_clear_the_margin_to_recover(within_margin: dict[str, Any]) -> None:
    m = model(recovery_checks=1)
    moves(m, soft_breach())
    assert moves(m, window(**within_margin)) == []
    assert m.status("ema") == "degraded"
    assert moves(m, window()) == [("degraded", "active")]


def test_a_window_without_losses_can_recover() -> None:
    m = model(recovery_checks=1)
    moves(m, soft_breach())
    perfect = window(
        profit_factor=None, profit_factor_infinite=True, judged_psr=None, max_drawdown=0.0
    )
    assert moves(m, perfect) == [("degraded", "active")]


def test_nan_figures_never_recover_a_strategy() -> None:
    m = model(recovery_checks=1)
    moves(m, soft_breach())
    for field in ("expectancy", "win_rate", "profit_factor", "judged_psr", "max_drawdown"):
        assert moves(m, window(**{field: math.nan})) == []
    assert m.status("ema") == "degraded"


# --------------------------------------------------------------------------- suspension


def test_without_probation_a_suspension_lasts_until_an_operator_lifts_it() -> None:
    m = model(probation_after_hours=0)
    moves(m, hard_breach(), now=0)
    assert moves(m, window(), now=1000 * HOUR) == []
    forced = m.force("ema", "active", "reviewed", "alice", now_ms=1000 * HOUR)
    assert (forced.old, forced.new, forced.actor, forced.reason) == (
        "suspended",
        "active",
        "alice",
        "reviewed",
    )
    assert m.status("ema") == "active"


def test_probation_moves_a_suspended_strategy_to_degraded_after_the_time() -> None:
    m = model(probation_after_hours=24)
    moves(m, hard_breach(), now=5)
    assert moves(m, window(), now=5 + 24 * HOUR - 1) == []
    (transition,) = m.assess({}, 5 + 24 * HOUR)
    assert (transition.old, transition.new) == ("suspended", "degraded")
    assert transition.reason == "probation: suspended 24.0 h (probation after 24 h)"
    assert transition.metrics == {"suspended_at_ms": 5, "hours_suspended": 24.0, "seen": 0}
    assert m.health("ema")[0]["violations"] == 0


@pytest.mark.parametrize("minutes_per_trade", [1, 60 * 24 * 14])
def test_by_default_probation_comes_after_the_time_the_strategy_takes_for_20_trades(
    minutes_per_trade: int,
) -> None:
    # The same config on minute bars and on a strategy that trades every two weeks: the
    # suspension lasts as many of the strategy's own trades, not as many hours.
    pace = minutes_per_trade * 60_000
    m = model()
    m.register("ema", 0)
    suspended_at = 100 * pace  # its 100th trade
    assert moves(m, hard_breach_seen(100), now=suspended_at) == [("active", "suspended")]
    assert moves(m, hard_breach_seen(100), now=suspended_at + 20 * pace - 1) == []
    (transition,) = m.assess({"ema": hard_breach_seen(100)}, suspended_at + 20 * pace)
    assert (transition.old, transition.new) == ("suspended", "degraded")
    assert "the time it took to make 20 trades" in transition.reason


def test_a_clock_set_back_past_the_first_sight_does_not_end_a_suspension_at_once() -> None:
    # First seen while the clock ran a day ahead, suspended after it was set back: the
    # pace (time since first seen over the trades) came out at 1 ms a trade, and the
    # suspension ended at the next cycle. The pace is not known then: the hour clock.
    day = 24 * HOUR
    m = model()
    m.register("ema", day)
    assert moves(m, hard_breach_seen(100), now=60_000) == [("active", "suspended")]
    assert moves(m, hard_breach_seen(100), now=120_000) == []
    assert moves(m, hard_breach_seen(100), now=60_000 + 72 * HOUR - 1) == []
    assert moves(m, hard_breach_seen(100), now=60_000 + 72 * HOUR) == [("suspended", "degraded")]


def test_a_suspension_applied_again_from_the_journal_keeps_its_pace() -> None:
    # A start from an older snapshot (or none) registers a strategy first seen after it
    # at the journaled suspension's time: its pace came out at 1 / seen ms a trade, and
    # the suspension ended at the first cycle. The pace is journaled with it now, and an
    # entry from before that ends on the hour clock of before.
    pace = 60_000
    live = model()
    live.register("ema", 0)
    (suspension,) = live.assess({"ema": hard_breach_seen(100)}, 100 * pace)
    at = suspension.ts_ms
    assert suspension.metrics["pace_ms"] == pace
    older_entry = {k: v for k, v in suspension.metrics.items() if k != "pace_ms"}
    for metrics, lasts in ((suspension.metrics, 20 * pace), (older_entry, 72 * HOUR)):
        again = model()
        again.register("ema", at)  # as the start does: first seen at the entry's time
        again.apply_journaled("ema", "suspended", suspension.reason, "system", at, metrics)
        assert moves(again, hard_breach_seen(100), now=at + 1_000) == []
        assert moves(again, hard_breach_seen(100), now=at + lasts - 1) == []
        assert moves(again, hard_breach_seen(100), now=at + lasts) == [("suspended", "degraded")]


def hard_breach_seen(seen: int) -> Figures:
    return msgspec.structs.replace(hard_breach(), seen=seen)


def test_the_deprecated_hour_clock_still_applies_when_set() -> None:
    m = model(probation_after_hours=72)
    m.register("ema", 0)
    moves(m, hard_breach_seen(10_000), now=0)
    assert moves(m, hard_breach_seen(10_000), now=72 * HOUR - 1) == []
    assert moves(m, hard_breach_seen(10_000), now=72 * HOUR) == [("suspended", "degraded")]


def test_probation_reads_only_the_clock_it_is_given() -> None:
    m = model(probation_after_hours=1)
    moves(m, hard_breach(), now=10 * HOUR)
    assert moves(m, window(), now=0) == []  # a clock that went back changes nothing
    assert moves(m, window(), now=11 * HOUR) == [("suspended", "degraded")]


def test_an_operators_suspension_is_not_lifted_by_probation() -> None:
    m = model(probation_after_hours=1)
    m.register("ema", 0)
    m.force("ema", "suspended", "exchange outage", "alice", 0)
    assert moves(m, window(), now=100 * HOUR) == []
    assert m.status("ema") == "suspended"


# --------------------------------------------------------------------------- paper trades


def paid(figures: Figures) -> Figures:
    """``figures`` with wins of 2 and losses of 1 on average: break-even at a third."""
    return msgspec.structs.replace(figures, avg_win=2.0, avg_loss=1.0)


def at_least(wins: int, outcomes: int, p: float) -> float:
    """P(X >= wins), X ~ Binomial(outcomes, p), summed term by term."""
    return math.fsum(
        math.comb(outcomes, k) * p**k * (1 - p) ** (outcomes - k) for k in range(wins, outcomes + 1)
    )


@pytest.mark.parametrize(("wins", "outcomes", "p"), [(1, 1, 0.3), (8, 12, 1 / 3), (3, 20, 0.05)])
def test_the_upper_tail_is_the_binomial_sum(wins: int, outcomes: int, p: float) -> None:
    assert binomial_at_least(wins, outcomes, p) == pytest.approx(at_least(wins, outcomes, p))


def test_paper_trades_that_win_end_a_suspension_before_its_clock() -> None:
    m = model(probation_after_hours=1000, paper_trades=10)
    figures = paid(hard_breach())
    assert moves(m, figures, now=0) == [("active", "suspended")]
    # 3 of 10 at a third says nothing; a batch not yet full is not judged; the next
    # batch, 8 of 10, is significant: P = 0.0034.
    assert at_least(8, 10, 1 / 3) < 0.05 < at_least(3, 10, 1 / 3)
    assert m.assess({"ema": figures}, HOUR, {"ema": PaperTrades(3.0, 10.0)}) == []
    assert m.assess({"ema": figures}, HOUR, {"ema": PaperTrades(10.0, 19.0)}) == []
    (transition,) = m.assess({"ema": figures}, HOUR, {"ema": PaperTrades(11.0, 20.0)})
    assert (transition.old, transition.new) == ("suspended", "degraded")
    assert transition.reason == (
        "probation: 8 of its last 10 paper trades won, above the 33% it needs to break "
        f"even (p = {at_least(8, 10, 1 / 3):.2g})"
    )


def test_a_verdict_of_paper_trades_shows_a_tiny_p_value_as_it_is() -> None:
    # 20 of 20 at a third: p = 3 ** -20 = 2.9e-10, which three decimals read as 0.000.
    need = paid(hard_breach())
    assert need.avg_win is not None and need.avg_loss is not None
    rate = need.avg_loss / (need.avg_win + need.avg_loss)
    verdict = paper_verdict(need, (20.0, 20.0), 0.05)
    assert verdict is not None and verdict[0]
    assert verdict[1].endswith(f"(p = {rate**20:.2g})") and "p = 0.000" not in verdict[1]


def test_each_batch_of_paper_trades_is_judged_once() -> None:
    # 5 of 10, then 6 of 10: neither batch is significant (P = 0.21, 0.077), though the
    # growing record, tested again at 11 of 20, would be (P = 0.038).
    assert at_least(6, 10, 1 / 3) > 0.05 > at_least(11, 20, 1 / 3)
    m = model(probation_after_hours=1000, paper_trades=10)
    figures = paid(hard_breach())
    moves(m, figures, now=0)
    assert m.assess({"ema": figures}, HOUR, {"ema": PaperTrades(5.0, 10.0)}) == []
    assert m.assess({"ema": figures}, HOUR, {"ema": PaperTrades(11.0, 20.0)}) == []
    assert m.status("ema") == "suspended"


def test_batches_that_arrive_together_are_each_judged_alone() -> None:
    # Two batches of 10 seen by one cycle. 8 of 10 then 0 of 10: the first wins
    # significantly (P = 0.0034), the 20 together would not (8 of 20: P = 0.34).
    assert at_least(8, 10, 1 / 3) < 0.05 < at_least(8, 20, 1 / 3)
    m = model(probation_after_hours=1000, paper_trades=10)
    figures = paid(hard_breach())
    moves(m, figures, now=0)
    paper = PaperTrades(8.0, 20.0, ((10.0, 8.0), (20.0, 8.0)))
    (transition,) = m.assess({"ema": figures}, HOUR, {"ema": paper})
    assert "8 of its last 10 paper trades won" in transition.reason
    # 5 of 10 then 6 of 10 together: neither batch alone is significant, the 20 would
    # be (11 of 20: P = 0.038).
    m = model(probation_after_hours=1000, paper_trades=10)
    moves(m, figures, now=0)
    paper = PaperTrades(11.0, 25.0, ((10.0, 5.0), (20.0, 11.0)))
    assert m.assess({"ema": figures}, HOUR, {"ema": paper}) == []
    assert m.states["ema"].paper_judged == (11.0, 20.0)  # the 5 after wait for their batch


def test_batch_ends_of_a_smaller_batch_size_are_merged_to_the_configured_size() -> None:
    # Ends every 5 kept from before paper_trades became 10: judged 10 at a time.
    cfg = msgspec.convert({"paper_trades": 10}, LifecycleConfig)
    ends = tuple((float(n), float(n // 2)) for n in range(5, 30, 5))
    batches = list(paper_batches(cfg, (0.0, 0.0), PaperTrades(14.0, 27.0, ends)))
    assert batches == [((5.0, 10.0), (5.0, 10.0)), ((5.0, 10.0), (10.0, 20.0))]
    # No ends (a record from before them): all its outcomes are one batch.
    assert list(paper_batches(cfg, (2.0, 5.0), PaperTrades(9.0, 27.0))) == [
        ((7.0, 22.0), (9.0, 27.0))
    ]


def test_paper_trades_that_lose_keep_a_suspension_past_its_clock() -> None:
    m = model(probation_after_hours=1, paper_trades=12)
    figures = paid(hard_breach())
    moves(m, figures, now=0)
    # 0 of 12 where a third is needed: P(X <= 0) = (2/3)**12 = 0.008.
    assert m.assess({"ema": figures}, 10 * HOUR, {"ema": PaperTrades(0.0, 12.0)}) == []
    assert moves(m, figures, now=20 * HOUR) == []
    assert m.status("ema") == "suspended"
    # A later batch that wins ends it.
    (transition,) = m.assess({"ema": figures}, 30 * HOUR, {"ema": PaperTrades(12.0, 24.0)})
    assert (transition.old, transition.new) == ("suspended", "degraded")


def test_a_second_suspension_ends_only_on_paper_trades() -> None:
    m = model(probation_after_hours=1, paper_trades=12)
    figures = paid(hard_breach())
    assert moves(m, figures, now=0) == [("active", "suspended")]
    assert moves(m, figures, now=HOUR) == [("suspended", "degraded")]
    assert moves(m, paid(hard_breach()), now=2 * HOUR) == [("degraded", "suspended")]
    assert m.assess({"ema": figures}, 100 * HOUR, {"ema": PaperTrades(4.0, 12.0)}) == []
    assert m.status("ema") == "suspended"
    (transition,) = m.assess({"ema": figures}, 100 * HOUR, {"ema": PaperTrades(12.0, 24.0)})
    assert (transition.old, transition.new) == ("suspended", "degraded")


def test_paper_trades_without_a_break_even_rate_say_nothing() -> None:
    # A window without losses has no break-even rate: the clock decides alone.
    m = model(probation_after_hours=1, paper_trades=12)
    moves(m, hard_breach(), now=0)
    assert m.assess({"ema": hard_breach()}, 0, {"ema": PaperTrades(12.0, 12.0)}) == []
    assert paper_verdict(paid(hard_breach()), (0.0, 0.0), 0.05) is None
    assert moves(m, window(), now=HOUR) == [("suspended", "degraded")]


def test_paper_trades_do_not_lift_an_operators_suspension() -> None:
    m = model(probation_after_hours=1, paper_trades=12)
    m.register("ema", 0)
    m.force("ema", "suspended", "exchange outage", "alice", 0)
    assert m.assess({"ema": paid(window())}, HOUR, {"ema": PaperTrades(12.0, 12.0)}) == []
    assert m.status("ema") == "suspended"


# --------------------------------------------------------------------------- retirement


def test_third_automatic_suspension_retires_the_strategy_at_once() -> None:
    m = model(retire_after_suspensions=3)
    for attempt in range(2):
        assert moves(m, hard_breach(), now=attempt) == [("active", "suspended")]
        m.force("ema", "active", "try again", "alice", now_ms=attempt)
    transitions = m.assess({"ema": hard_breach()}, 2)
    assert [(t.old, t.new) for t in transitions] == [
        ("active", "suspended"),
        ("suspended", "retired"),
    ]
    assert transitions[1].reason == "suspended 3 times (retire after 3)"
    assert m.health("ema")[0]["suspensions"] == 3


def test_retired_strategy_leaves_only_by_force_and_starts_a_fresh_count() -> None:
    m = model(retire_after_suspensions=1, probation_after_hours=1)
    moves(m, hard_breach(), now=0)
    assert m.status("ema") == "retired"
    assert moves(m, window(), now=100 * HOUR) == []
    assert m.status("ema") == "retired"
    m.force("ema", "active", "rewritten and redeployed", "alice", 100 * HOUR)
    assert m.health("ema")[0]["suspensions"] == 0
    assert moves(m, soft_breach(), now=101 * HOUR) == [("active", "degraded")]


def test_suspensions_set_by_an_operator_do_not_count_toward_retirement() -> None:
    m = model(retire_after_suspensions=1)
    m.register("ema", 0)
    for now in range(3):
        m.force("ema", "suspended", "manual", "alice", now)
        m.force("ema", "active", "back", "alice", now)
    assert m.health("ema")[0]["suspensions"] == 0
    assert m.status("ema") == "active"


def test_probation_cycles_end_in_retirement() -> None:
    m = model(probation_after_hours=1, max_violations=2, retire_after_suspensions=2)
    statuses = []
    for hour in range(6):
        m.assess({"ema": soft_breach()}, hour * HOUR)
        statuses.append(m.status("ema"))
    # Each window is 50 new trades: the first after probation began is all new trades,
    # and its breach suspends again at once (it was taken for a first warning).
    assert statuses == ["degraded", "suspended", "degraded", "retired", "retired", "retired"]


# --------------------------------------------------------------------------- the rest


def test_too_few_trades_are_not_assessed() -> None:
    m = model(min_trades=20)
    assert moves(m, window(trades=19, max_drawdown=500.0, expectancy=-5.0)) == []
    assert moves(m, window(trades=20, max_drawdown=500.0, expectancy=-5.0)) == [
        ("active", "suspended")
    ]


def test_unknown_strategy_is_active_and_figures_register_it() -> None:
    m = LifecycleModel(mechanics(), {"ema": StrategyConfig()})
    assert m.status("never-seen") == "active"
    assert m.statuses() == {"ema": "active"}
    assert m.register("rsi", 42) is True and m.register("rsi", 43) is False
    m.assess({"macd": window()}, 50)
    assert m.statuses() == {"ema": "active", "macd": "active", "rsi": "active"}
    assert m.health("rsi") == [
        {
            "strategy": "rsi",
            "status": "active",
            "since_ms": 42,
            "reason": "new strategy",
            "violations": 0,
            "suspensions": 0,
        }
    ]
    assert m.health("never-seen")[0]["status"] == "active"
    assert [row["strategy"] for row in m.health()] == ["ema", "macd", "rsi"]


def test_force_sets_any_status_and_rejects_unknown_ones() -> None:
    m = model()
    for old, new in [("active", "retired"), ("retired", "suspended"), ("suspended", "suspended")]:
        transition = m.force("ema", new, "", "carol", 9)
        assert (transition.old, transition.new, transition.actor) == (old, new, "carol")
        assert transition.reason == "set by carol"
    with pytest.raises(BadInput):
        m.force("ema", "paused", "typo", "carol", 9)
    assert m.status("ema") == "suspended"


def test_a_disabled_lifecycle_makes_no_automatic_transitions_but_force_works() -> None:
    m = model(probation_after_hours=1)
    m.enabled = False
    assert moves(m, hard_breach()) == []
    assert m.force("ema", "suspended", "by hand", "dave", 0).new == "suspended"
    assert moves(m, window(), now=10 * HOUR) == []
    assert m.status("ema") == "suspended"


def test_config_rejects_typos_and_inconsistent_limits() -> None:
    with pytest.raises(msgspec.ValidationError, match="max_violation"):
        msgspec.convert({"max_violation": 3}, LifecycleConfig)
    with pytest.raises(msgspec.ValidationError, match="soft_drawdown"):
        msgspec.convert({"soft_drawdown": 30.0, "hard_drawdown": 20.0}, LifecycleConfig)
    for bad_value in (
        {"max_violations": 1},
        {"win_rate_floor": 1.5},
        {"probation_after_hours": -1},
        {"hard_drawdown": math.inf},
    ):
        with pytest.raises(msgspec.ValidationError):
            msgspec.convert(bad_value, LifecycleConfig)


# --------------------------------------------------------------------------- any stream

wild = st.floats(allow_nan=True, allow_infinity=True)
any_figures = st.builds(
    Figures,
    trades=st.integers(0, 120),
    win_rate=st.one_of(st.floats(0, 1), wild),
    expectancy=st.one_of(st.floats(-10, 10), wild),
    profit_factor=st.one_of(st.none(), st.floats(0, 5), wild),
    profit_factor_infinite=st.booleans(),
    judged_psr=st.one_of(st.none(), st.floats(0, 1), wild),
    max_drawdown=st.one_of(st.floats(0, 100), wild),
    mean_abs_pnl=st.one_of(st.floats(0, 5), wild),
)
# One step: the figures of each strategy and the hours since the last step, or an
# operator's force_status.
step = st.one_of(
    st.tuples(
        st.just("assess"),
        st.dictionaries(st.sampled_from(["ema", "rsi"]), any_figures, max_size=2),
        st.integers(0, 30),
    ),
    st.tuples(st.just("force"), st.sampled_from(["ema", "rsi"]), st.sampled_from(STATUSES)),
)
lifecycle_configs = st.builds(
    LifecycleConfig,
    min_trades=st.integers(1, 60),
    recovery_checks=st.integers(1, 4),
    max_violations=st.integers(2, 4),
    probation_after_hours=st.one_of(st.just(0.0), st.floats(1, 48)),
    retire_after_suspensions=st.integers(1, 4),
)


def run(m: LifecycleModel, steps: list[Any], now: int = 0) -> tuple[list[Transition], int]:
    transitions = []
    for kind, arg, extra in steps:
        if kind == "assess":
            now += extra * HOUR
            transitions += m.assess(arg, now)
        else:
            transitions.append(m.force(arg, extra, "test", "operator", now))
    return transitions, now


@settings(max_examples=80, deadline=None)
@given(lifecycle_configs, st.lists(step, max_size=40))
def test_automatic_transitions_follow_the_table_for_any_stream(
    config: LifecycleConfig, steps: list[Any]
) -> None:
    m = LifecycleModel(config, {"rsi": StrategyConfig(soft_drawdown=5.0, hard_drawdown=10.0)})
    status = {"rsi": "active", "ema": "active"}
    automatic_suspensions = {"rsi": 0, "ema": 0}
    transitions, _ = run(m, steps)
    for t in transitions:
        assert t.old == status[t.strategy]  # each transition starts where the last ended
        status[t.strategy] = t.new
        if t.actor == "system":
            assert (t.old, t.new) in TRANSITIONS
            assert t.old != "retired"
            assert t.reason
            assert all(not isinstance(v, float) or math.isfinite(v) for v in t.metrics.values())
            if t.new == "suspended":
                automatic_suspensions[t.strategy] += 1
            if t.new == "retired":
                assert automatic_suspensions[t.strategy] >= 1
        elif t.old == "retired" and t.new != "retired":
            automatic_suspensions[t.strategy] = 0
    for name, current in m.statuses().items():
        assert current == status[name]
    for row in m.health():
        assert row["violations"] >= 0
        assert row["suspensions"] == automatic_suspensions.get(row["strategy"], 0)


@settings(max_examples=60, deadline=None)
@given(lifecycle_configs, st.lists(step, max_size=30), st.integers(0, 30))
# A win rate far below its floor once overflowed the reason's decimal formatting.
@example(
    LifecycleConfig(min_trades=1),
    [("assess", {"ema": Figures(trades=1, win_rate=-1e26)}, 0)],
    0,
)
def test_same_inputs_give_the_same_transitions_even_across_a_restart(
    config: LifecycleConfig, steps: list[Any], split: int
) -> None:
    first, second = LifecycleModel(config, {}), LifecycleModel(config, {})
    assert run(first, steps) == run(second, steps)
    m = LifecycleModel(config, {})
    _, now = run(m, steps[:split])
    snapshot = msgspec.json.decode(msgspec.json.encode(m.to_state()))
    restored = LifecycleModel.from_state(config, {}, snapshot)
    assert restored.health() == m.health()
    assert run(restored, steps[split:], now) == run(m, steps[split:], now)
    assert restored.to_state() == m.to_state()


def test_state_round_trip_keeps_counters_and_the_off_switch() -> None:
    m = model(probation_after_hours=2)
    moves(m, soft_breach(), now=0)
    moves(m, soft_breach(), now=1)
    m.assess({"rsi": hard_breach()}, 2)
    m.enabled = False
    restored = LifecycleModel.from_state(m.config, {}, m.to_state())
    assert restored.health() == m.health()
    assert restored.enabled is False
    restored.enabled = m.enabled = True
    assert moves(restored, soft_breach(), now=3) == moves(m, soft_breach(), now=3)
    assert restored.assess({}, 2 + 2 * HOUR) == m.assess({}, 2 + 2 * HOUR)
    assert restored.status("rsi") == "degraded"


# --------------------------------------------------------------------------- evidence, not cycles


def test_a_breach_counts_again_only_once_most_of_the_window_is_new() -> None:
    m = model(max_violations=2, recount_share=0.5)
    assert moves(m, soft_breach_at(1000)) == [("active", "degraded")]
    for seen in (1005, 1010, 1020, 1024):  # under 25 of the 50 trades are new
        assert moves(m, soft_breach_at(seen)) == []
    assert m.health("ema")[0]["violations"] == 1
    assert moves(m, soft_breach_at(1025)) == [("degraded", "suspended")]


def soft_breach_at(seen: int) -> Figures:
    return msgspec.structs.replace(soft_breach(), seen=seen)


def record(performance: PerformanceModel, pnls: list[float], size: float = 1.0) -> None:
    for pnl in pnls:
        seq = performance.last_seq + 1
        performance.record(
            ClosedTrade(
                seq=seq,
                trade_id=str(seq),
                strategy="ema",
                symbol="BTC",
                side="buy",
                pnl=pnl * size,
                entry_ts_ms=seq,
                exit_ts_ms=seq,
                size=size,
            )
        )


# A losing stretch of 20 trades, then a real edge: at size 1.0 a drawdown of about 17
# average trades, a soft breach (12) short of the hard limit (25).
STRETCH = [-1.0] * 20
EDGE = [1.5, -1.0] * 20


def test_a_strategy_alphad_sized_down_is_not_judged_worse_for_it() -> None:
    at_base, sized_down = (PerformanceModel(PerformanceConfig()) for _ in range(2))
    record(at_base, STRETCH + EDGE)
    record(sized_down, STRETCH)
    record(sized_down, EDGE, size=0.1)  # alphad cut its size after the losing stretch
    verdicts = [moves(model(), p.recent_by_strategy()["ema"]) for p in (at_base, sized_down)]
    assert verdicts == [[("active", "degraded")]] * 2
    # On the money made, the small trades shrink the average trade and the drawdown made
    # at full size becomes a hard breach: alphad's own sizing would suspend it.
    on_money = sized_down.strategy_figures("ema", "recent")
    assert on_money is not None
    assert moves(model(), on_money) == [("active", "suspended")]


def test_on_probation_only_the_trades_since_it_began_are_judged() -> None:
    def suspended_then_probation() -> tuple[LifecycleModel, PerformanceModel]:
        m = model(probation_after_hours=1)
        performance = PerformanceModel(PerformanceConfig())
        record(performance, [-1.0] * 40)
        assert moves(m, performance.recent_by_strategy()["ema"]) == [("active", "suspended")]
        return m, performance

    m, performance = suspended_then_probation()
    assert moves(m, performance.recent_by_strategy()["ema"], HOUR) == [("suspended", "degraded")]
    record(performance, EDGE[:18])  # fewer than min_trades (20) new trades: not judged yet
    assert moves(m, performance.recent_by_strategy()["ema"], HOUR + 1) == []
    record(performance, EDGE[18:])
    # The window still holds the 40 losses (a hard breach), but they are not judged again.
    window_now = performance.recent_by_strategy()["ema"]
    assert window_now.trades == 80 and window_now.max_drawdown >= 40
    assert moves(m, window_now, HOUR + 2) == []
    assert m.health("ema")[0]["status"] == "degraded"
    assert m.health("ema")[0]["violations"] == 0
    # The same window judged whole suspends the strategy at once.
    assert moves(model(), window_now) == [("active", "suspended")]


def test_probation_ends_its_own_judgement_once_the_window_is_all_new_trades() -> None:
    m = model(probation_after_hours=1)
    performance = PerformanceModel(PerformanceConfig(window_trades=30))
    record(performance, [-1.0] * 30)
    moves(m, performance.recent_by_strategy()["ema"])
    moves(m, performance.recent_by_strategy()["ema"], HOUR)
    assert m.states["ema"].probation_from == 30
    record(performance, EDGE[:30])
    moves(m, performance.recent_by_strategy()["ema"], HOUR + 1)
    assert m.states["ema"].probation_from is None


def test_a_breach_on_probation_suspends_again_at_once() -> None:
    m = model(probation_after_hours=1)
    performance = PerformanceModel(PerformanceConfig())
    record(performance, [-1.0] * 40)
    assert moves(m, performance.recent_by_strategy()["ema"]) == [("active", "suspended")]
    assert moves(m, performance.recent_by_strategy()["ema"], HOUR) == [("suspended", "degraded")]
    # 20 new trades (min_trades) of a steady loss with a bounce: a soft breach (PSR), not
    # a hard one, judged on the new trades alone, with the window still partly old.
    record(performance, [-1.0, 0.5] * 10)
    (transition,) = m.assess({"ema": performance.recent_by_strategy()["ema"]}, HOUR + 1)
    assert (transition.old, transition.new) == ("degraded", "suspended")
    assert transition.reason.startswith("breach on probation: PSR")
    assert m.health("ema")[0]["suspensions"] == 2
    # Off probation the same breach is the first of max_violations (3 here): degraded only.
    fresh = model()
    new_trades = figures_of(performance.recent_by_strategy()["ema"].pnls[-20:], seen=20)
    assert moves(fresh, new_trades) == [("active", "degraded")]


# --------------------------------------------------------------------------- the edge test


def edge_window(pnls: list[float], seen: int) -> Figures:
    """The recent window of the performance model over ``pnls`` (per unit of size)."""
    return figures_of(pnls[-100:], seen=seen, keep_pnls=True)


def until_moved(
    m: LifecycleModel, mean: float, seed: int, limit: int
) -> tuple[list[float], list[Transition]]:
    """Normal pnls of ``mean`` (σ 1), one trade and one assessment at a time, until the
    first transition or ``limit`` trades: the trades and the transitions."""
    rng = random.Random(seed)
    pnls: list[float] = []
    found: list[Transition] = []
    while not found and len(pnls) < limit:
        pnls.append(rng.gauss(mean, 1.0))
        found = m.assess({"ema": edge_window(pnls, len(pnls))}, len(pnls))
    return pnls, found


def suspended_after(m: LifecycleModel, pnls: list[float]) -> int:
    """Assess ``m`` on ever longer prefixes of ``pnls`` (from the 11th trade) until it
    suspends the strategy; the trades it took."""
    m.register("ema", 0)
    for n in range(11, len(pnls) + 1):
        m.assess({"ema": edge_window(pnls[:n], n)}, n)
        if m.status("ema") == "suspended":
            return n
    raise AssertionError("never suspended")


def test_the_edge_test_suspends_a_strategy_that_keeps_losing_before_any_drawdown_limit() -> None:
    # Losing 0.5 σ a trade: the threshold's own rules (50 trades, drawdown 30 / 60 average
    # trades) stay silent for a while; the edge test flags it once the evidence for
    # "losing 0.5 σ" against "no edge" is 1000 to 1.
    m = LifecycleModel(msgspec.convert({"edge_loss": 0.5}, LifecycleConfig), {})
    pnls, found = until_moved(m, -0.5, seed=3, limit=1000)
    assert [(t.old, t.new) for t in found] == [("active", "suspended")]
    assert found[0].reason.startswith("lost its edge: losing 0.5 σ a trade is ")
    assert found[0].metrics["edge_statistic"] >= math.log(1000)
    # Siegmund's approximation of the delay is 52 trades at this loss; well before the
    # drawdown limits, which need about 30 average trades of drawdown.
    assert 10 <= len(pnls) < 150


def test_the_edge_test_is_on_by_default_and_silent_on_no_edge_noise() -> None:
    rng = random.Random(4)
    pnls = [rng.gauss(0.0, 1.0) for _ in range(600)]
    on = LifecycleModel(LifecycleConfig(), {})
    off = LifecycleModel(msgspec.convert({"edge_loss": 0.0}, LifecycleConfig), {})
    for n in range(10, 601, 5):
        for m in (on, off):
            m.assess({"ema": edge_window(pnls[:n], n)}, n)
    assert (on.config.edge_loss, on.config.edge_false_alarm_trades) == (0.3, 1000.0)
    assert off.status("ema") == on.status("ema") == "active"
    assert on.states["ema"].edge_read == 600 and off.states["ema"].edge_read == 0


def test_probation_after_the_edge_test_starts_halfway_to_its_alarm() -> None:
    m = LifecycleModel(msgspec.convert({"edge_loss": 0.5}, LifecycleConfig), {})
    m.register("ema", 0)
    pnls = [-1.0, -0.5] * 40
    for n in range(10, 81, 10):
        m.assess({"ema": edge_window(pnls[:n], n)}, n)
        if m.status("ema") == "suspended":
            break
    assert m.status("ema") == "suspended"
    assert m.states["ema"].edge_statistic == 0.0
    m.assess({"ema": edge_window(pnls[:n], n)}, 10_000 * n)  # long past 20 trades' time
    assert m.status("ema") == "degraded"
    assert m.states["ema"].edge_statistic == pytest.approx(math.log(1000) / 2)


def test_a_snapshot_from_before_the_edge_test_and_the_trade_clock_restores() -> None:
    # The layout before: no edge statistic, no pace; a suspension then gets its pace from
    # the next assessment on.
    old = {
        "enabled": True,
        "strategies": {
            "ema": {
                "status": "degraded",
                "since_ms": 5,
                "reason": "PSR 0.04 < 0.05",
                "actor": "system",
                "violations": 1,
                "counted_at": 120,
                "probation_from": None,
                "recoveries": 0,
                "suspensions": 1,
                "suspended_at_ms": 2,
                "evidence": [100.0, -3.0, 12.0, 4.0],
            }
        },
    }
    m = LifecycleModel.from_state(LifecycleConfig(), {}, old)
    state = m.states["ema"]
    assert (state.status, state.violations, state.suspensions) == ("degraded", 1, 1)
    assert (state.edge_statistic, state.first_ms, state.suspended_pace_ms) == (0.0, None, None)
    m.assess({"ema": window()}, 1_000)
    assert m.states["ema"].first_ms == 1_000


def test_a_suspension_from_before_the_trade_clock_ends_on_the_clock_it_was_made_under() -> None:
    old = {
        "strategies": {
            "ema": {
                "status": "suspended",
                "actor": "system",
                "suspensions": 1,
                "suspended_at_ms": 0,
            }
        }
    }
    m = LifecycleModel.from_state(LifecycleConfig(), {}, old)
    assert moves(m, window(), now=72 * HOUR - 1) == []
    (transition,) = m.assess({"ema": window()}, 72 * HOUR)
    assert (transition.old, transition.new) == ("suspended", "degraded")
    assert (
        transition.reason
        == "probation: suspended 72.0 h (no pace of its trades known: the clock of before)"
    )


def test_a_strategy_suspended_before_its_first_trade_still_gets_probation() -> None:
    m = model()
    m.register("ema", 0)
    suspended = msgspec.structs.replace(hard_breach(), seen=0)
    assert moves(m, suspended, now=10 * HOUR) == [("active", "suspended")]
    # Its pace: 10 h for "one" trade, so probation after 200 h.
    assert moves(m, suspended, now=210 * HOUR - 1) == []
    assert moves(m, suspended, now=210 * HOUR) == [("suspended", "degraded")]


def test_a_configured_strategy_is_active_since_its_first_cycle() -> None:
    m = LifecycleModel(mechanics(), {"ema": StrategyConfig()})
    assert m.health("ema")[0]["since_ms"] == 0  # not judged yet: unknown
    m.assess({}, 5 * HOUR)
    assert m.health("ema")[0]["since_ms"] == 5 * HOUR
    m.assess({}, 6 * HOUR)
    assert m.health("ema")[0]["since_ms"] == 5 * HOUR


# --------------------------------------------------------------------------- the peak stop


def peak_model(**overrides: Any) -> LifecycleModel:
    """The peak stop at 10 σ, the edge test off, so that the stop alone acts."""
    config = {"peak_drawdown": 10.0, "edge_loss": 0.0, **overrides}
    return LifecycleModel(msgspec.convert(config, LifecycleConfig), {})


def fall_in_scales(pnls: list[float], scale: float, start: int) -> float:
    """How far below its peak the equity of pnls[start:] ends, in ``scale``: the running
    peak of the cumulative sum, directly."""
    equity = peak = 0.0
    for pnl in pnls[start:]:
        equity += pnl
        peak = max(peak, equity)
    return (peak - equity) / scale


def test_the_peak_stop_suspends_a_strategy_that_falls_k_sigma_below_its_peak() -> None:
    # Losing 0.1 σ a trade stays inside the window's limits and, at this loss, far from
    # the edge test's alarm; its equity falls below its peak steadily.
    m = peak_model()
    pnls, found = until_moved(m, -0.1, seed=11, limit=3000)
    assert [(t.old, t.new) for t in found] == [("active", "suspended")]
    (transition,) = found
    # The trade that crossed the line is the last: before it the fall was under 10 σ.
    fall = transition.metrics["below_peak"]
    assert 10.0 <= fall < 10.0 + abs(pnls[-1]) / transition.metrics["edge_scale"]
    assert transition.reason == (
        f"{fall:.1f} σ below its peak (stop at 10 σ): "
        "suspended until its paper trades or an operator bring it back"
    )
    assert m.states["ema"].below_peak == 0.0 and m.states["ema"].stopped_below_peak


def test_the_peak_stops_statistic_is_the_fall_below_the_running_peak() -> None:
    # With one scale throughout, max(0, D - z) is the running peak minus the equity.
    rng = random.Random(5)
    pnls = [rng.gauss(-0.05, 2.0) for _ in range(500)]
    statistic = 0.0
    for i, pnl in enumerate(pnls):
        statistic = below_peak(statistic, [pnl], 2.0)
        # The reset at 0 is a new peak: from the last one on, the fall is direct.
        last_peak = max(range(i + 2), key=lambda k: (sum(pnls[:k]), k))
        assert statistic == pytest.approx(fall_in_scales(pnls[: i + 1], 2.0, last_peak), abs=1e-9)
    assert below_peak(3.0, [1.0, float("nan"), -4.0], 2.0) == pytest.approx(4.5)


def test_a_peak_stop_does_not_end_on_the_clock() -> None:
    m = peak_model(probation_after_trades=20)
    pnls = [-1.0, -0.5] * 60
    n = suspended_after(m, pnls)
    assert m.states["ema"].suspensions == 1  # its first suspension: the clock would end it
    for later in (1_000 * n, 1_000_000 * n):
        assert m.assess({"ema": edge_window(pnls[:n], n)}, later) == []
    assert m.status("ema") == "suspended"
    # The same strategy suspended by the edge test comes back on the clock.
    edge = LifecycleModel(msgspec.convert({"edge_loss": 0.5}, LifecycleConfig), {})
    k = suspended_after(edge, pnls)
    edge.assess({"ema": edge_window(pnls[:k], k)}, 1_000 * k)
    assert edge.status("ema") == "degraded"


def test_paper_trades_that_win_end_a_peak_stop_and_it_starts_halfway() -> None:
    m = peak_model(paper_trades=10)
    pnls = [-1.0, -1.0, -1.0, 2.0] * 50  # break-even at a third of wins, as ``paid``
    n = suspended_after(m, pnls)
    figures = edge_window(pnls[:n], n)
    assert m.assess({"ema": figures}, n + 1, {"ema": PaperTrades(3.0, 10.0)}) == []
    (transition,) = m.assess({"ema": figures}, n + 2, {"ema": PaperTrades(11.0, 20.0)})
    assert (transition.old, transition.new) == ("suspended", "degraded")
    state = m.states["ema"]
    assert state.below_peak == 5.0 and not state.stopped_below_peak


def test_an_operator_lifts_a_peak_stop_and_it_starts_over() -> None:
    m = peak_model()
    pnls = [-1.0, -0.5] * 60
    n = suspended_after(m, pnls)
    m.force("ema", "active", "", "ops", n + 1)
    state = m.states["ema"]
    assert (state.status, state.below_peak, state.stopped_below_peak) == ("active", 0.0, False)
    # One more loss is far from another stop.
    assert m.assess({"ema": edge_window(pnls[: n + 1], n + 1)}, n + 2) == []


def test_the_peak_stop_is_off_by_default_and_reads_nothing() -> None:
    m = LifecycleModel(msgspec.convert({"edge_loss": 0.0}, LifecycleConfig), {})
    pnls = [-1.0, -0.5] * 200
    for n in range(10, 401, 10):
        m.assess({"ema": edge_window(pnls[:n], n)}, n)
    assert LifecycleConfig().peak_drawdown == 0.0
    assert m.states["ema"].below_peak == 0.0 and m.states["ema"].edge_read == 0


def test_a_snapshot_keeps_the_fall_below_the_peak() -> None:
    m = peak_model()
    m.register("ema", 0)
    pnls = [-1.0, 0.5] * 10
    m.assess({"ema": edge_window(pnls, len(pnls))}, 1)
    fall = m.states["ema"].below_peak
    assert fall > 0.0
    restored = LifecycleModel.from_state(
        m.config, {}, msgspec.json.decode(msgspec.json.encode(m.to_state()))
    )
    assert restored.states["ema"].below_peak == fall


def test_an_operators_force_starts_the_fall_below_the_peak_over() -> None:
    # Forced while the strategy is still trading and some σ below its peak: the stop
    # counts from 0 again, so the same few losses do not stop it at once.
    m = peak_model()
    m.register("ema", 0)
    pnls = [-1.0, 0.5] * 10
    m.assess({"ema": edge_window(pnls, len(pnls))}, 1)
    assert m.status("ema") == "active" and m.states["ema"].below_peak > 3.0
    m.force("ema", "active", "", "ops", 2)
    assert m.states["ema"].below_peak == 0.0
    # The same for a status change the journal gives again after an older snapshot.
    m.assess({"ema": edge_window(pnls * 2, 2 * len(pnls))}, 3)
    assert m.status("ema") == "active" and m.states["ema"].below_peak > 3.0
    m.apply_journaled("ema", "degraded", "set by ops", "ops", 4)
    assert m.states["ema"].below_peak == 0.0


def journaled_suspension(metrics: dict[str, float]) -> LifecycleModel:
    """A strategy suspended by a journaled change applied again after a snapshot that
    saw it at its first cycle, with these metrics; then a cycle long after."""
    m = peak_model(probation_after_trades=20)
    m.register("ema", 0)
    m.assess({}, 0)
    pnls = [-1.0, 0.5] * 10
    m.states["ema"].below_peak = 6.0
    m.apply_journaled("ema", "suspended", "journaled", "system", len(pnls), metrics)
    m.assess({"ema": edge_window(pnls, len(pnls))}, 10**9)
    return m


def test_a_journaled_peak_stop_applied_again_still_outlasts_the_clock() -> None:
    # A restart from a snapshot older than the stop: the journal's entry (its metrics
    # carry below_peak) suspends the strategy again, and the probation clock, which
    # ends any other first suspension, does not end this one.
    stopped = journaled_suspension({"below_peak": 10.2, "edge_scale": 0.7})
    assert stopped.status("ema") == "suspended" and stopped.states["ema"].below_peak == 0.0
    other = journaled_suspension({"drawdown": 9.0})
    assert other.status("ema") == "degraded"
    # Probation starts the stop and the edge test halfway, as it does live.
    assert other.states["ema"].below_peak == 6.0
    assert other.states["ema"].edge_statistic == edge_level(other.config) / 2.0
    edge = journaled_suspension({"edge_statistic": 7.0, "edge_scale": 0.7})
    assert edge.status("ema") == "degraded" and edge.states["ema"].below_peak == 5.0


# ------------------------------------------------ more trades between two cycles than the window


def losing_then_even() -> list[float]:
    """10 trades without edge, 120 losing 0.5 a trade, 100 without edge (σ about 1): the
    edge test alarms during the losing run; the even trades fill the whole window and
    bring its statistic back under the alarm level by their end."""
    return [1.0, -1.0] * 5 + [0.5, -1.5] * 60 + [1.0, -1.0] * 50


def read_once_after(m: LifecycleModel, pnls: list[float], at: int) -> Transition | None:
    """Record ``pnls`` in a performance model, a cycle after the first ``at`` trades and
    one after all of them, reading as the engine and the replay do; the transition."""
    performance = PerformanceModel(PerformanceConfig())
    m.register("ema", 0)
    found: list[Transition] = []
    for seq, pnl in enumerate(pnls, start=1):
        performance.record(
            ClosedTrade(
                seq=seq,
                trade_id=f"t{seq}",
                strategy="ema",
                symbol="BTC",
                side="buy",
                pnl=pnl,
                entry_ts_ms=seq,
                exit_ts_ms=seq,
                regime="trend",
            )
        )
        if seq in (at, len(pnls)):
            found += m.assess(performance.recent_by_strategy(m.edge_read()), seq)
    return found[0] if found else None


def test_the_edge_test_reads_every_trade_however_many_come_between_two_cycles() -> None:
    pnls = losing_then_even()
    moved = read_once_after(model(), pnls, 10)
    assert moved is not None and (moved.old, moved.new) == ("active", "suspended")
    assert moved.reason.startswith("lost its edge: losing 0.3 σ a trade is ")

    # The statistic that alarmed, computed here directly: the CUSUM of the first 10
    # trades at their own scale (the first cycle), then of the 220 after them at the
    # scale of the window the second cycle judged (its newest 100), the first time it
    # reaches ln 1000.
    def scale_of(window: list[float]) -> float:
        deviation = statistics.mean(abs(p - statistics.median(window)) for p in window)
        return max(statistics.stdev(window), math.sqrt(math.pi / 2) * deviation)

    statistic, crossed = 0.0, None
    for part, scale in ((pnls[:10], scale_of(pnls[:10])), (pnls[10:], scale_of(pnls[-100:]))):
        for pnl in part:
            statistic = max(0.0, statistic - 0.3 * pnl / scale - 0.045)
            if statistic >= math.log(1000) and crossed is None:
                crossed = statistic
    assert crossed is not None
    assert moved.metrics["edge_statistic"] == pytest.approx(crossed, rel=1e-12)
    # A cycle after every trade suspends it as well, in the losing run.
    m = model()
    m.register("ema", 0)
    for n in range(10, len(pnls) + 1):
        m.assess({"ema": figures_of(pnls[max(0, n - 100) : n], seen=n, keep_pnls=True)}, n)
        if m.status("ema") == "suspended":
            break
    assert 10 < n <= 130


def test_the_peak_stop_reads_every_trade_however_many_come_between_two_cycles() -> None:
    # Off the edge test, the peak stop at 8 σ: the losing run takes the equity about
    # 60 σ below its peak, the even trades that follow leave it there; a reading of the
    # 220 trades at once stops it where the fall crossed 8 σ.
    m = model(edge_loss=0.0, peak_drawdown=8.0)
    moved = read_once_after(m, losing_then_even(), 10)
    assert moved is not None and (moved.old, moved.new) == ("active", "suspended")
    assert 8.0 <= moved.metrics["below_peak"] < 8.0 + 1.5 / moved.metrics["edge_scale"]


def test_a_journaled_edge_suspension_applied_again_does_not_read_its_trades_twice() -> None:
    # A start from a snapshot older than an edge-test suspension applies the journaled
    # suspension again: on probation the test must not read the trades that suspended it
    # once more (it would suspend again on no new trade, toward retirement).
    pnls = [1.0, -1.0] * 5 + [0.5, -1.5] * 60
    live = model()
    live.register("ema", 0)
    live.assess({"ema": edge_window(pnls[:10], 10)}, 1)
    older = LifecycleModel.from_state(live.config, {}, live.to_state())
    (alarm,) = live.assess({"ema": edge_window(pnls, len(pnls))}, 2)
    assert alarm.reason.startswith("lost its edge")
    older.apply_journaled("ema", "suspended", alarm.reason, "system", alarm.ts_ms, alarm.metrics)
    for m in (live, older):
        later = 10**12  # long past the probation clock
        assert [t.new for t in m.assess({"ema": edge_window(pnls, len(pnls))}, later)] == [
            "degraded"
        ]
        # The first cycle on probation, without a new trade: nothing moves.
        assert m.assess({"ema": edge_window(pnls, len(pnls))}, later + 1) == []
        assert m.status("ema") == "degraded" and m.states["ema"].edge_read == len(pnls)


def _assess_each_trade(
    m: LifecycleModel, performance: PerformanceModel, pnls: list[float]
) -> list[tuple[int, str, str]]:
    """Record ``pnls`` one by one, a cycle after each; (trade number, old, new) of each move."""
    found = []
    for pnl in pnls:
        record(performance, [pnl])
        for t in m.assess({"ema": performance.recent_by_strategy()["ema"]}, performance.last_seq):
            found.append((performance.last_seq, t.old, t.new))
    return found


def test_a_new_window_with_the_same_total_and_drawdowns_is_new_evidence() -> None:
    # A bot with a fixed take-profit and stop-loss: every window of 20 losses of -1 has
    # the same count, total and drawdowns. Such windows were taken for the one assessed
    # before, so the second violation (due 20 trades after the first, recount_share 1.0)
    # never came while the strategy lost the same amount on every trade.
    m = model(max_violations=2, edge_loss=0.0)
    performance = PerformanceModel(PerformanceConfig(window_trades=20))
    moved = _assess_each_trade(m, performance, [1.0, -1.0] * 10 + [-1.0] * 40)
    (first_trade, _, _), *rest = moved
    assert moved[0][1:] == ("active", "degraded")
    assert rest == [(first_trade + 20, "degraded", "suspended")]


def test_on_probation_a_breach_of_a_window_all_of_new_trades_suspends_at_once() -> None:
    # With window_trades equal to min_trades the first window judged on probation is all
    # new trades: it ended probation before it was judged, so its breach was a first
    # warning (degraded, one violation) instead of a suspension at once.
    m = model(probation_after_hours=1, hard_drawdown=15.0)
    performance = PerformanceModel(PerformanceConfig(window_trades=20))
    record(performance, [-1.0] * 20)
    assert moves(m, performance.recent_by_strategy()["ema"]) == [("active", "suspended")]
    assert moves(m, performance.recent_by_strategy()["ema"], HOUR) == [("suspended", "degraded")]
    record(performance, [-1.0, 0.5] * 10)
    (transition,) = m.assess({"ema": performance.recent_by_strategy()["ema"]}, HOUR + 1)
    assert (transition.old, transition.new) == ("degraded", "suspended")
    assert transition.reason.startswith("breach on probation: ")
    assert m.health("ema")[0]["suspensions"] == 2


def test_a_breachs_reason_never_shows_the_figure_at_its_floor() -> None:
    # "PSR 0.05 < 0.05" for 0.0496, "win rate 25% < 25%" for 24.6 %, "PSR 0.00" for
    # 0.0014: the figure shown rounded down (or to two significant digits), the floor up.
    m = model(psr_floor=0.05, win_rate_floor=0.25)
    assert m.check("ema", window(judged_psr=0.0496)).soft == ["PSR 0.04 < 0.05"]
    assert m.check("ema", window(win_rate=0.246)).soft == ["win rate 24% < 25%"]
    assert m.check("ema", window(judged_psr=0.0014)).soft == ["PSR 0.0014 < 0.05"]
    assert m.check("ema", window(win_rate=0.29, judged_psr=0.049)).soft == ["PSR 0.04 < 0.05"]
    # Small figures to two significant digits, rounded down too, never in exponents.
    assert shown_below(0.00996, 0.01) == ("0.0099", "0.01")  # not "0.010 < 0.01"
    assert shown_below(0.00996, 0.01, percent=True) == ("0.99%", "1%")
    assert shown_below(2.9e-7, 0.05) == ("0.00000029", "0.05")  # not "2.9E-7"
    # Far below any real figure, an exponent: 5e-324 took 330 characters.
    assert shown_below(5e-324, 0.3) == ("5.0e-324", "0.30")
    assert shown_below(1.27e-13, 0.3) == ("1.2e-13", "0.30")
    assert shown_below(1.27e-12, 0.3) == ("0.0000000000012", "0.30")


def test_a_probation_after_seconds_says_seconds() -> None:
    # On minute bars a suspension of twelve seconds read "suspended 0.0 h".
    m = model(probation_after_hours=12 / 3600, hard_drawdown=15.0)
    performance = PerformanceModel(PerformanceConfig(window_trades=20))
    record(performance, [-1.0] * 20)
    assert moves(m, performance.recent_by_strategy()["ema"]) == [("active", "suspended")]
    (back,) = m.assess({"ema": performance.recent_by_strategy()["ema"]}, 12_000)
    assert back.reason == "probation: suspended 12 s (probation after 0.00333333 h)"
    # Rounded down: just short of an hour or a minute is not "60.0 min" nor "60 s".
    shown = (lasted_words(0.99999), lasted_words(0.9999 / 60), lasted_words(2.0))
    assert shown == ("59.9 min", "59 s", "2.0 h")


def test_probation_lasts_until_the_whole_window_is_new_trades() -> None:
    # Window 100, judged on probation from its 50th new trade: probation ended at the
    # first clean judgement of the new trades (they are always all new), and the next
    # cycle judged the whole window again, the losses that got the strategy suspended
    # with it: suspended a second time, which only paper trades or an operator can end.
    m = LifecycleModel(msgspec.convert({"probation_after_hours": 1}, LifecycleConfig), {})
    performance = PerformanceModel(PerformanceConfig())
    record(performance, [0.2] * 50 + [-1.6] * 50)
    assert moves(m, performance.recent_by_strategy()["ema"], HOUR) == [("active", "suspended")]
    assert moves(m, performance.recent_by_strategy()["ema"], 3 * HOUR) == [
        ("suspended", "degraded")
    ]
    rng = random.Random(5)
    seen = []
    for i in range(120):  # a healthy strategy now, a cycle after each trade
        record(performance, [0.5 if rng.random() < 0.6 else -0.4])
        for t in m.assess({"ema": performance.recent_by_strategy()["ema"]}, 3 * HOUR + i):
            seen.append((performance.last_seq, t.old, t.new))
        if performance.last_seq < 200:
            assert m.states["ema"].probation_from == 100, performance.last_seq
    assert [(old, new) for _, old, new in seen] == [("degraded", "active")]
    assert m.states["ema"].probation_from is None and m.states["ema"].suspensions == 1


def test_a_state_saved_before_the_trade_count_does_not_judge_its_last_window_again() -> None:
    # The first cycle after an upgrade: the saved window is the current one (no new
    # trade), and it must not count as one more assessment toward recovery.
    m = model()
    performance = PerformanceModel(PerformanceConfig())
    record(performance, [1.5, -1.0] * 60)  # 120 trades: a window of 100
    same = performance.recent_by_strategy()["ema"]
    moves(m, same)
    m.states["ema"].status, m.states["ema"].recoveries = "degraded", 2
    saved = m.to_state()
    # As an older alphad wrote it: the window's own count, total and drawdowns.
    saved["strategies"]["ema"].pop("evidence_seen", None)
    old = [float(same.trades), same.total_pnl, same.max_drawdown, same.current_drawdown]
    saved["strategies"]["ema"]["evidence"] = old
    restored = LifecycleModel.from_state(mechanics(), {}, saved)
    assert moves(restored, same) == []
    assert restored.states["ema"].recoveries == 2
    record(performance, [1.5])  # a new trade: judged, the third clean assessment
    assert moves(restored, performance.recent_by_strategy()["ema"]) == [("degraded", "active")]


@pytest.mark.parametrize("back", ["probation", "operator", "operator_from_retired"])
def test_trades_made_while_suspended_are_not_read_by_the_edge_test_once_back(back: str) -> None:
    # A bot that went on trading a suspended strategy reported its trades; once back (on
    # probation or by an operator) the edge test read them at the next cycle and
    # suspended it again on no new trade: the second suspension, toward retirement.
    pnls = [1.0, -1.0] * 5 + [0.5, -1.5] * 60
    clock = {"probation_after_trades": 0} if back != "probation" else {}  # 0: no clock
    m = model(retire_after_suspensions=5, **clock)
    m.register("ema", 0)
    m.assess({"ema": edge_window(pnls[:10], 10)}, 1)
    (alarm,) = m.assess({"ema": edge_window(pnls, len(pnls))}, 2)
    assert alarm.reason.startswith("lost its edge")
    if back == "operator_from_retired":
        m.force("ema", "retired", "out", "ops", 3)
    out = pnls + [0.5, -1.5] * 30  # losing trades made while it was out
    if back == "probation":
        later = 10**12  # long past the probation clock
        moved = m.assess({"ema": edge_window(out, len(out))}, later)
        assert [t.new for t in moved] == ["degraded"]
    else:
        # No cycle between the trades made while out and the return: the count at the
        # return is the trades so far (the last cycle's count read them as new).
        later = 10
        m.force("ema", "active", "back", "ops", later, seen=len(out))
    assert m.assess({"ema": edge_window(out, len(out))}, later + 1) == []
    assert m.status("ema") in ("active", "degraded")
    assert m.states["ema"].edge_read == len(out)
    # Losing trades made after it came back are read, and suspend it again.
    more = out + [0.5, -1.5] * 40
    moved = m.assess({"ema": edge_window(more, len(more))}, later + 2)
    assert [t.new for t in moved] == ["suspended"]


def test_an_operators_absolute_limit_holds_on_probation_too() -> None:
    # On probation only the new trades are judged; rebuilt from them, the figures had
    # no drawdown as traded (0.0), so an absolute limit never held there.
    limits = {"ema": StrategyConfig(soft_drawdown=8.0, hard_drawdown=10.0)}
    m = LifecycleModel(mechanics(probation_after_hours=1, edge_loss=0.0), limits)
    performance = PerformanceModel(PerformanceConfig())
    record(performance, [-1.0] * 40, size=1.0)
    assert moves(m, performance.recent_by_strategy()["ema"]) == [("active", "suspended")]
    assert moves(m, performance.recent_by_strategy()["ema"], HOUR) == [("suspended", "degraded")]
    record(performance, [3.0] * 20 + [-3.0] * 10, size=1.0)  # 30 down as traded
    (found,) = m.assess({"ema": performance.recent_by_strategy()["ema"]}, HOUR + 1)
    assert (found.old, found.new) == ("degraded", "suspended")
    assert found.reason.startswith("drawdown 30.00 > hard limit 10.00")
    assert found.metrics["sized_drawdown"] == 30.0


def test_a_breach_on_probation_suspends_also_after_it_recovered_to_active() -> None:
    # Three recovered judgements of the new trades made it active before probation's
    # window was all new; a breach then only degraded it (a second warning).
    m = LifecycleModel(mechanics(probation_after_hours=1, edge_loss=0.0), {})
    performance = PerformanceModel(PerformanceConfig())
    record(performance, [-1.0] * 40)
    assert moves(m, performance.recent_by_strategy()["ema"]) == [("active", "suspended")]
    assert moves(m, performance.recent_by_strategy()["ema"], HOUR) == [("suspended", "degraded")]
    now = HOUR
    statuses = []
    for batch in ([2.0, 1.0, 1.5, -0.5] * 5, [2.0], [1.0], [1.5]):
        record(performance, batch)
        now += 1
        statuses += moves(m, performance.recent_by_strategy()["ema"], now)
    assert statuses == [("degraded", "active")]
    assert m.states["ema"].probation_from is not None  # its window is not all new yet
    record(performance, [-1.0] * 25)
    (found,) = m.assess({"ema": performance.recent_by_strategy()["ema"]}, now + 1)
    assert (found.old, found.new) == ("active", "suspended")
    assert found.reason.startswith("breach on probation")


def test_a_drawdown_just_over_its_limit_reads_over_it() -> None:
    # 30.0001 over a limit of 30.00003 read "drawdown 30.00 > 30.00".
    limits = {"ema": StrategyConfig(soft_drawdown=30.00003, hard_drawdown=60.00001)}
    m = LifecycleModel(mechanics(edge_loss=0.0), limits)
    # Both to the nearest, to the first decimal that tells them apart.
    assert m.check("ema", window(sized_pnls=(-30.0001,))).soft == ["drawdown 30.0001 > 30.0000"]
    assert m.check("ema", window(sized_pnls=(-60.00002,))).hard == (
        "drawdown 60.00002 > hard limit 60.00001"
    )
    assert m.check("ema", window(sized_pnls=(-31.5,))).soft == ["drawdown 31.50 > 30.00"]


def test_a_journaled_probation_applied_again_is_judged_as_probation() -> None:
    # Applied again after a start from an older snapshot, an automatic probation had no
    # start: its strategy was judged on the whole window, a breach only a first warning.
    live = model(probation_after_hours=1, edge_loss=0.0)
    performance = PerformanceModel(PerformanceConfig())
    record(performance, [-1.0] * 40)
    older = LifecycleModel.from_state(live.config, {}, live.to_state())
    (suspension,) = live.assess({"ema": performance.recent_by_strategy()["ema"]}, 0)
    (probation,) = live.assess({"ema": performance.recent_by_strategy()["ema"]}, HOUR)
    assert (probation.old, probation.new) == ("suspended", "degraded")
    for move in (suspension, probation):
        older.apply_journaled("ema", move.new, move.reason, "system", move.ts_ms, move.metrics)
    assert older.states["ema"].probation_from == live.states["ema"].probation_from == 40
    record(performance, [0.5, -1.0, -1.0, -1.0] * 6)  # a win rate of 25 %: a breach
    for m in (live, older):
        (found,) = m.assess({"ema": performance.recent_by_strategy()["ema"]}, HOUR + 1)
        assert (found.old, found.new) == ("degraded", "suspended")
        assert found.reason.startswith("breach on probation")


def test_a_journaled_warning_applied_again_keeps_its_violation_count() -> None:
    # Applied again after a start from an older snapshot, an automatic degradation
    # started its count over: the losing strategy's second violation was its first, and
    # it was suspended a whole window later than without the restart.
    live = model(edge_loss=0.0, recount_share=1.0, max_violations=2)
    older = LifecycleModel.from_state(live.config, {}, live.to_state())
    first = soft_breach()
    (warning,) = live.assess({"ema": first}, 0)
    assert (warning.old, warning.new) == ("active", "degraded")
    older.apply_journaled("ema", "degraded", warning.reason, "system", 0, warning.metrics)
    assert older.states["ema"].violations == live.states["ema"].violations == 1
    assert older.states["ema"].counted_at == live.states["ema"].counted_at == first.seen
    # The same window again: no new evidence for either; then a new window's breach.
    assert moves(live, first) == moves(older, first) == []
    second = soft_breach()
    assert moves(live, second) == moves(older, second) == [("degraded", "suspended")]
