"""The live engine and the offline replay run the same optimization cycle.

A replay of a simulated history records what it did: the strategies it registered, the
trades it closed (at the sizes its scorer gave them) and its cycles. The same trades
then go through the daemon's own actors, a real store on a SQLite file in a temporary
directory, the performance actor, the scorer and the engine with its clock set to the
replay's event times, and every cycle of both must give the same weights and statuses,
and the journal the same audit entries, in the same order.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import msgspec
import pytest
import zmq

from alphad.actors.base import Handle
from alphad.actors.engine import EngineActor
from alphad.actors.events import ClosedTrade
from alphad.actors.optimizer import CycleResult
from alphad.actors.performance import PerformanceModel
from alphad.actors.performance_actor import PerformanceActor
from alphad.actors.scorer import ScorerActor
from alphad.actors.scorer_model import ScorerModel
from alphad.actors.store import AppendTrade, QueryAudit, StoreActor
from alphad.daemon.alerts import AlertPublisher
from alphad.daemon.config import Config, build_models
from alphad.daemon.supervisor import Supervisor
from alphad.protocol.messages import (
    AuditEntry,
    OptimizationState,
    RecordTrade,
    StatusReply,
    UpdateOptimization,
)
from alphad.replay.runner import Replayer
from alphad.replay.simulate import SCENARIOS, simulate_spec

Audit = tuple[
    str, str | None, Any, Any, str, str | None
]  # kind, strategy, old, new, reason, regime


class RecordingReplayer(Replayer):
    """A replay that notes, in order, each registration, trade and cycle."""

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.events: list[tuple[str, int, Any]] = []
        record = self.performance.record

        def record_and_note(trade: ClosedTrade) -> None:
            self.events.append(("trade", trade.exit_ts_ms, trade))
            record(trade)

        self.performance.record = record_and_note  # type: ignore[method-assign]

    def _register(self, strategy: str) -> None:
        self.events.append(("register", self.now_ms, strategy))
        super()._register(strategy)

    def run_cycle(self, now_ms: int) -> CycleResult:
        result = super().run_cycle(now_ms)
        weights = dict(self.optimizer.allocation().global_table.adaptive)
        self.events.append(("cycle", now_ms, (result, weights, dict(result.statuses))))
        return result


def _audit_of(result: CycleResult) -> list[Audit]:
    weights: list[Audit] = [
        ("weight", u.strategy, u.old, u.new, u.reason, u.regime) for u in result.updates
    ]
    statuses: list[Audit] = [
        ("status", t.strategy, t.old, t.new, t.reason, t.regime) for t in result.transitions
    ]
    return weights + statuses


def _journaled(entry: AuditEntry) -> Audit:
    regime = entry.data.get("regime")
    return (entry.kind, entry.strategy, entry.old, entry.new, entry.reason, regime)


def _history(per_regime: bool) -> tuple[Config, RecordingReplayer]:
    # Seven strategies, one decaying, over 90 days with a cycle every 4 hours of event
    # time: weights move globally and per regime; strategies are degraded, recover,
    # are suspended and let back on probation. Per regime: four strategies whose edge
    # depends on the regime, each judged in each regime too.
    config = msgspec.convert(
        {"engine": {"update_interval_s": 4 * 3600}, "lifecycle": {"per_regime": per_regime}},
        Config,
    )
    replayer = RecordingReplayer(config)
    replayer.run(simulate_spec(SCENARIOS["regime" if per_regime else "mixed"], 1).rows)
    return config, replayer


@pytest.mark.parametrize("per_regime", [False, True], ids=["lifecycle", "per-regime"])
async def test_the_live_engine_and_the_replay_agree_cycle_by_cycle(
    tmp_path: Path, per_regime: bool
) -> None:
    config, replayed = _history(per_regime)
    cycles = [event for event in replayed.events if event[0] == "cycle"]
    moved = [c for c in cycles if c[2][0].updates]
    changed = [c for c in cycles if c[2][0].transitions]
    # The history exercises what the comparison is about.
    assert len(moved) > 10 and len(changed) > 5, (len(moved), len(changed))
    moves = {(t.old, t.new, t.regime is not None) for c in changed for t in c[2][0].transitions}
    wanted = {("active", "degraded"), ("degraded", "suspended"), ("suspended", "degraded")}
    assert moves >= {(*move, per_regime) for move in wanted}, moves
    assert {u.regime for c in moved for u in c[2][0].updates} > {None}

    now = [replayed.events[0][1]]
    store = StoreActor(tmp_path / "alphad.db", synchronous="OFF")
    models = build_models(config, id_prefix="parity")
    performance_model: PerformanceModel = models.performance
    scorer_model: ScorerModel = models.scorer
    performance = PerformanceActor(performance_model)
    scorer = ScorerActor(scorer_model, Handle(store))
    context: zmq.Context[Any] = zmq.Context()
    alerts = AlertPublisher(
        context, f"ipc://{tmp_path}/alerts.sock", hwm=100_000, mailbox_size=8192
    )
    engine = EngineActor(
        performance=Handle(performance),
        optimizer=models.optimizer,
        scorer=Handle(scorer),
        store=Handle(store),
        alerts=Handle(alerts),
        update_interval_s=0,
        snapshot_interval_s=3600,
        snapshot_every_trades=10**9,
        status=lambda: StatusReply(
            version="parity", uptime_s=0.0, trades=0, strategies=0, cycle=0, components={}
        ),
        clock=lambda: now[0],
    )
    store.subscribe(trades=[Handle(performance), Handle(scorer)], outcomes=[])
    supervisor = Supervisor()
    try:
        for actor in (store, performance, scorer, alerts, engine):
            await supervisor.start(actor)
        live_audit: list[Audit] = []
        for kind, ts_ms, item in replayed.events:
            now[0] = ts_ms
            if kind == "register":
                engine.register(item)
            elif kind == "trade":
                trade: ClosedTrade = item
                duplicate, seq = await store.ask(AppendTrade(_request_of(trade)))
                assert not duplicate
                while performance_model.last_seq < seq:  # the store tells it after the ack
                    await asyncio.sleep(0.001)
            else:
                result, weights, statuses = item
                state: OptimizationState = await engine.ask(
                    UpdateOptimization(), timeout=30.0, wait_for_room=True
                )
                assert state.cycle == result.cycle
                assert state.weights == weights, f"cycle {result.cycle}"
                assert state.statuses == statuses, f"cycle {result.cycle}"
                assert state.regime_statuses == result.regime_statuses, f"cycle {result.cycle}"
                live = [
                    ("weight", w.strategy, w.old, w.new, w.reason, w.regime)
                    for w in state.weight_changes
                ] + [
                    ("status", s.strategy, s.old, s.new, s.reason, s.regime)
                    for s in state.status_changes
                ]
                assert live == _audit_of(result), f"cycle {result.cycle}"
                live_audit += live
        journal: list[Audit] = []
        since = 0
        more = True
        while more:
            entries, more = await store.ask(QueryAudit(since, None, 1000))
            journal += [_journaled(e) for e in entries if e.kind in ("weight", "status")]
            since = entries[-1].seq if entries else since
    finally:
        await supervisor.stop(10.0)
        context.destroy(linger=0)
    expected = [a for c in cycles for a in _audit_of(c[2][0])]
    assert journal == expected == live_audit
    assert len(cycles) == engine.cycle


def _request_of(trade: ClosedTrade) -> RecordTrade:
    return RecordTrade(
        trade_id=trade.trade_id,
        strategy=trade.strategy,
        symbol=trade.symbol,
        side=trade.side,
        pnl=trade.pnl,
        entry_ts_ms=trade.entry_ts_ms,
        exit_ts_ms=trade.exit_ts_ms,
        regime=trade.regime,
        size=trade.size,
        signal_id=trade.signal_id,
    )
