"""The per-regime lifecycle: a strategy judged on its trades in each regime, suspended
where it loses, trading on where it wins (actors/regime_lifecycle.py)."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from alphad.actors.figures import Figures, figures_of
from alphad.actors.lifecycle import NOT_READ, LifecycleModel
from alphad.actors.lifecycle_shapes import LifecycleConfig, PaperTrades, Transition
from alphad.actors.optimizer import Optimizer, set_allocation
from alphad.actors.scorer_config import ScorerConfig
from alphad.actors.scorer_model import ScorerModel
from alphad.actors.weighting import WeightingModel
from alphad.actors.weighting_config import RegimeLimits, StrategyConfig, WeightingConfig
from alphad.daemon.config import ConfigError, load_config
from alphad.protocol.messages import AuditEntry, ScoreSignal, SignalScore

LOSING = "trending_high_vol"
WINNING = "ranging_low_vol"
# One win of +1 in five trades where it loses, three wins of +1 in four where it wins.
LOSING_PATTERN = [-1.0, -1.0, -1.0, -1.0, 1.0]
WINNING_PATTERN = [1.0, 1.0, 1.0, -1.0]


def _optimizer(
    lifecycle: LifecycleConfig, strategies: dict[str, StrategyConfig] | None = None
) -> Optimizer:
    strategies = strategies or {}
    return Optimizer(
        WeightingModel(WeightingConfig(), strategies), LifecycleModel(lifecycle, strategies)
    )


STEP = 42  # trades per regime between two cycles, the window's length: all new each time


def _window(pattern: list[float], seen: int, trades: int = STEP) -> Figures:
    """The last ``trades`` of ``seen`` trades repeating ``pattern``, as the performance
    model hands them to a cycle."""
    pnls = [pattern[i % len(pattern)] for i in range(seen)]
    return figures_of(pnls[-trades:], seen=seen, keep_pnls=True)


def _cycles(optimizer: Optimizer, windows: int, now_ms: int = 0) -> list[Transition]:
    """``windows`` cycles, each on a window of STEP trades in each regime all new."""
    moves = []
    for k in range(1, windows + 1):
        seen = STEP * k
        losing, winning = _window(LOSING_PATTERN, seen), _window(WINNING_PATTERN, seen)
        # The strategy's own window: the two regimes' trades interleaved.
        both = [p for pair in zip(losing.pnls, winning.pnls, strict=True) for p in pair]
        overall = figures_of(both[-STEP:], seen=2 * seen, keep_pnls=True)
        by_regime = {LOSING: {"s": losing}, WINNING: {"s": winning}}
        result = optimizer.cycle({"s": overall}, by_regime, now_ms + k * 1000)
        moves += result.transitions
    return moves


# Per regime, no probation clock, and no edge test: the soft and hard breaches alone.
ON = LifecycleConfig(per_regime=True, probation_after_trades=0, edge_loss=0.0)


def test_a_strategy_losing_in_one_regime_is_suspended_there_and_trades_on_elsewhere() -> None:
    # The evidence, computed here: a fifth of the trades win where it loses, under the
    # 25 % floor, three quarters where it wins, well over it.
    for seen in (STEP, 2 * STEP, 3 * STEP):
        losing, winning = _window(LOSING_PATTERN, seen), _window(WINNING_PATTERN, seen)
        assert sum(p > 0 for p in losing.pnls) / STEP < 0.22 < ON.win_rate_floor
        assert sum(p > 0 for p in winning.pnls) / STEP > 0.73 > ON.win_rate_floor + ON.hysteresis
    optimizer = _optimizer(ON)
    moves = _cycles(optimizer, 3)
    assert [(m.regime, m.old, m.new) for m in moves] == [
        (LOSING, "active", "degraded"),
        (LOSING, "degraded", "suspended"),
    ]
    assert all(m.reason.startswith(f"in regime {LOSING}: ") for m in moves)
    assert "win rate 19% < 25%" in moves[0].reason  # 8 wins of 42
    assert optimizer.statuses == {"s": "active"}
    assert optimizer.regime_statuses == {LOSING: {"s": "suspended"}}

    scorer = ScorerModel(ScorerConfig(), "t")
    served = set_allocation(optimizer.allocation())
    scorer.set_allocation(
        served.statuses,
        served.weights,
        served.multipliers,
        served.regime_multipliers,
        served.regime_statuses,
    )

    def score(regime: str, signal_id: str) -> SignalScore:
        return scorer.score(
            ScoreSignal(
                strategy="s",
                symbol="BTC/USDT",
                side="buy",
                confidence=0.9,
                confluence=3,
                regime=regime,
                signal_id=signal_id,
            )
        )

    refused = score(LOSING, "a")
    assert (refused.execute, refused.status, refused.size_multiplier) == (False, "suspended", 0.0)
    assert f"strategy suspended in regime {LOSING}" in refused.reasons
    taken = score(WINNING, "b")
    assert (taken.execute, taken.status) == (True, "active")
    # The refused signal's outcome is a paper trade of the strategy in that regime only.
    assert scorer.record_outcome("a", True) and scorer.record_outcome("b", True)
    assert scorer.regime_paper_record() == {LOSING: {"s": PaperTrades(1.0, 1.0)}}
    assert scorer.paper_record() == {}


def test_a_strategy_suspended_in_a_regime_has_no_effective_weight_in_that_regime() -> None:
    # Two strategies of equal base weight; only s trades, and loses in LOSING.
    optimizer = _optimizer(ON, {"s": StrategyConfig(), "t": StrategyConfig()})
    _cycles(optimizer, 3)
    assert optimizer.regime_statuses == {LOSING: {"s": "suspended"}}
    there, elsewhere, overall = (optimizer.weights(r) for r in (LOSING, WINNING, None))
    # In LOSING its signals are refused, so its share there goes to t, as a suspension of
    # the strategy itself does in every table.
    assert there.effective["s"] == 0.0 and there.effective["t"] > 0.0
    assert there.normalized == {"s": 0.0, "t": 1.0}
    for table in (elsewhere, overall):
        assert table.effective["s"] > 0.0 and table.normalized["s"] > 0.0
        assert table.normalized["s"] + table.normalized["t"] == pytest.approx(1.0)
    # The tables the scorer is handed and the report shows are the same ones.
    allocation = optimizer.allocation()
    assert allocation.regime_tables[LOSING].normalized == there.normalized
    assert allocation.regime_tables[WINNING].normalized == elsewhere.normalized


def test_without_per_regime_nothing_is_judged_by_regime() -> None:
    optimizer = _optimizer(LifecycleConfig(probation_after_trades=0))
    assert [m for m in _cycles(optimizer, 3) if m.regime is not None] == []
    assert optimizer.regime_statuses == {} and optimizer.regimes.models == {}


def test_paper_trades_in_its_regime_end_the_suspension_there_and_nowhere_else() -> None:
    optimizer = _optimizer(ON)
    _cycles(optimizer, 3)
    figures = {LOSING: {"s": _window(LOSING_PATTERN, 3 * STEP)}}
    # A batch of 20 paper trades in the other regime is no evidence for this one.
    optimizer.cycle({}, figures, 10_000, regime_paper={WINNING: {"s": PaperTrades(20.0, 20.0)}})
    assert optimizer.regime_statuses == {LOSING: {"s": "suspended"}}
    # 17 of 20 where the window's average win and loss (both 1) need half to break even.
    paper = {LOSING: {"s": PaperTrades(17.0, 20.0)}}
    result = optimizer.cycle({}, figures, 11_000, regime_paper=paper)
    [move] = result.transitions
    assert (move.regime, move.old, move.new) == (LOSING, "suspended", "degraded")
    assert "17 of its last 20 paper trades won" in move.reason
    assert optimizer.regime_statuses == {LOSING: {"s": "degraded"}}


def test_per_regime_states_survive_a_restore_and_a_journal_replay() -> None:
    optimizer = _optimizer(ON)
    _cycles(optimizer, 3)
    restored = Optimizer.from_state(optimizer.weighting, optimizer.lifecycle, optimizer.to_state())
    assert restored.regime_statuses == {LOSING: {"s": "suspended"}}
    [row] = restored.health_rows("s")
    assert [(r.regime, r.status) for r in row.regimes] == [
        (WINNING, "active"),
        (LOSING, "suspended"),
    ]
    # A restart from a snapshot older than the suspension: the journal brings it back,
    # into the regime and not onto the strategy.
    fresh = _optimizer(ON)
    fresh.apply_journaled(
        AuditEntry(
            seq=1,
            ts_ms=5,
            kind="status",
            strategy="s",
            old="degraded",
            new="suspended",
            reason=f"in regime {LOSING}: 2nd violation in a row",
            actor="system",
            data={"regime": LOSING, "metrics": {}},
        )
    )
    assert fresh.regime_statuses == {LOSING: {"s": "suspended"}}
    assert fresh.statuses == {}
    assert not fresh.regimes.model(LOSING).states["s"].stopped_below_peak
    # The journal's metrics reach the model: a peak stop applied again is one still.
    for regime in (LOSING, None):
        fresh.apply_journaled(
            AuditEntry(
                seq=2,
                ts_ms=6,
                kind="status",
                strategy="s",
                old="active",
                new="suspended",
                reason="10.2 σ below its peak (stop at 10 σ)",
                actor="system",
                data={"regime": regime, "metrics": {"below_peak": 10.2}},
            )
        )
    assert fresh.regimes.model(LOSING).states["s"].stopped_below_peak
    assert fresh.lifecycle.states["s"].stopped_below_peak


def test_per_regime_thresholds_override_the_global_ones() -> None:
    # A win-rate floor of 80 % in the winning regime for this strategy only.
    strategies = {"s": StrategyConfig(regimes={WINNING: RegimeLimits(win_rate_floor=0.8)})}
    optimizer = _optimizer(ON, strategies)
    moves = _cycles(optimizer, 1)
    assert {(m.regime, m.new) for m in moves} == {(LOSING, "degraded"), (WINNING, "degraded")}
    assert "win rate 76% < 80%" in next(m.reason for m in moves if m.regime == WINNING)


def test_regime_min_trades_holds_the_judgement() -> None:
    optimizer = _optimizer(msgspec.structs.replace(ON, regime_min_trades=STEP + 1))
    assert [m for m in _cycles(optimizer, 3) if m.regime is not None] == []


def test_the_config_file_takes_per_regime_thresholds(tmp_path: Path) -> None:
    path = tmp_path / "alphad.toml"
    path.write_text(
        "[lifecycle]\nper_regime = true\nregime_min_trades = 12\n"
        f"[strategies.s.regimes.{LOSING}]\nwin_rate_floor = 0.4\nmin_trades = 15\n"
    )
    config = load_config(path)
    assert config.lifecycle.per_regime and config.lifecycle.regime_min_trades == 12
    limits = config.strategies["s"].regimes[LOSING]
    assert (limits.win_rate_floor, limits.min_trades, limits.psr_floor) == (0.4, 15, None)
    path.write_text(f"[strategies.s.regimes.{LOSING}]\nwin_rate_flor = 0.4\n")
    with pytest.raises(ConfigError, match="win_rate_flor"):
        load_config(path)
    path.write_text('[strategies.s.regimes."bad regime"]\nwin_rate_floor = 0.4\n')
    with pytest.raises(ConfigError, match=r"strategies.s.*regimes"):
        load_config(path)


def test_each_regimes_lifecycle_says_what_its_edge_test_has_read() -> None:
    optimizer = _optimizer(LifecycleConfig(per_regime=True, regime_min_trades=20))
    assert optimizer.regime_edge_read() == {}  # no regime judged yet
    _cycles(optimizer, 1)
    # Where it wins, the regime's lifecycle read its STEP trades there; where it loses it
    # suspended the strategy at once, and reads no more there until it is back.
    assert optimizer.regimes.statuses() == {LOSING: {"s": "suspended"}}
    assert optimizer.regime_edge_read() == {LOSING: {"s": NOT_READ}, WINNING: {"s": STEP}}
    optimizer.regimes.enabled = False  # the lifecycle switched off: none read, in any
    assert optimizer.regime_edge_read() == NOT_READ  # regime, known to it or not
    off = _optimizer(LifecycleConfig(per_regime=False))
    assert off.regime_edge_read() == NOT_READ


def test_the_snapshots_lifecycle_parts_encode_as_their_states_do() -> None:
    # The snapshot encodes the records as they are instead of copying them into plain
    # data first: the bytes must be the same, or a start would read another state.
    optimizer = _optimizer(ON)
    _cycles(optimizer, 3)
    optimizer.lifecycle.force("s", "degraded", "watch it", "alice", 7)
    assert optimizer.regimes.models and optimizer.lifecycle.states
    encode = msgspec.msgpack.encode
    assert encode(optimizer.lifecycle.snapshot_state()) == encode(optimizer.lifecycle.to_state())
    assert encode(optimizer.regimes.snapshot_state()) == encode(optimizer.regimes.to_state())
