"""The engine: runs optimization cycles and every operator change, and journals them.

A cycle takes the recent figures from the performance actor, runs the ``Optimizer``'s
cycle (weights, globally and per regime, then the lifecycle), journals the audit
entries, a history row and a state snapshot in one transaction, pushes weights and
statuses to the scorer, and only then publishes the alerts (an alert's ``seq`` is its
audit entry's). The engine owns the optimizer: weights and statuses change nowhere else.
Snapshots are also taken on a timer (when trades or bars came in since the last one) and
every so many trades, so a restart replays only a short tail and holds the bars again.

The engine asks the store, the performance actor and the scorer and waits for room in
their mailboxes; none of them ever waits on the engine (the store tells it the committed
trade counts with a plain ``tell``), so the waits cannot close a circle (actors/base.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import msgspec
import structlog

from alphad.actors.base import TAKE_STATE, Actor, Ask, Handle, SampleReader, Samples, msgpack_pieces
from alphad.actors.errors import BadInput, NotFound
from alphad.actors.events import SetEnabled
from alphad.actors.lifecycle_shapes import Transition
from alphad.actors.optimizer import Allocation, Optimizer, set_allocation
from alphad.actors.performance_actor import (
    AttachGroups,
    DetachStrategy,
    RecentFigures,
    ReportTables,
)
from alphad.actors.report_pages import ReportParts, report_page
from alphad.actors.scorer import (
    AttachSignals,
    DetachSignals,
    PaperRecord,
    RegimePaperRecord,
    SetRegimeFit,
    SignalSummary,
)
from alphad.actors.store import AuditDraft, Commit, Snapshot, TradesCommitted
from alphad.actors.weighting_tables import WeightUpdate
from alphad.protocol.messages import (
    Alert,
    AuditEntry,
    Components,
    ForceStatus,
    ForgetStrategy,
    GetHealth,
    GetReport,
    GetWeights,
    Health,
    OptimizationState,
    Report,
    ResetWeights,
    RollbackWeights,
    SetComponent,
    StatusChange,
    StatusChanged,
    StatusReply,
    StrategyForgotten,
    UpdateOptimization,
    WeightChange,
    Weights,
)

log = structlog.get_logger("alphad.engine")

_T = TypeVar("_T")

CYCLE_RETRY_MS = 60_000
"""How long after a failed scheduled cycle (a full disk) the next one is tried."""


class Tick(msgspec.Struct, frozen=True):
    """Tell: the timer fired; run a cycle or take a snapshot if one is due."""


class StrategySeen(msgspec.Struct, frozen=True):
    """Tell: a request named a strategy for the first time."""

    strategy: str


class FinalSnapshot(Ask[None], frozen=True):
    """Ask: write a snapshot now (at shutdown)."""


class _Saved(msgspec.Struct, kw_only=True):
    """What a failed change puts back."""

    optimizer: dict[str, Any]
    last_cycle_ms: int
    last_state: OptimizationState | None


class EngineStats(msgspec.Struct, frozen=True, kw_only=True):
    """The engine's counters, as ``EngineActor.stats()`` took them."""

    cycle: int  # the number of the last optimization cycle
    switches: dict[str, bool]  # which optimization components are on
    switched_ms: dict[str, int]  # when each was last switched
    cycle_samples: SampleReader[float]  # the durations of the latest cycles, seconds


class EngineInline(msgspec.Struct, frozen=True, kw_only=True):
    """The engine's synchronous reads, answered in the gateway's receive callback.

    ``get_weights`` and ``get_health`` only read the optimizer's tables, which change
    only while the engine handles a message: on the daemon's one event loop a read
    between two awaits sees them whole, as an ask would, without the mailbox's wait.
    """

    weights: Callable[[GetWeights], Weights]
    health: Callable[[GetHealth], Health]


def wall_clock_ms() -> int:
    """Milliseconds since the epoch; the daemon's clock (a replay injects event time)."""
    return time.time_ns() // 1_000_000


class EngineActor(Actor):
    """Coordinates the optimization components; the only writer of audit and snapshots."""

    name = "engine"

    def __init__(
        self,
        *,
        performance: Handle[Actor],
        optimizer: Optimizer,
        scorer: Handle[Actor],
        store: Handle[Actor],
        alerts: Handle[Actor],
        update_interval_s: float,
        snapshot_interval_s: float,
        snapshot_every_trades: int,
        status: Callable[[], StatusReply],
        seen: Callable[[str], bool] | None = None,
        forgotten: Callable[[str], Callable[[], None]] | None = None,
        regime_seen: Callable[[str], bool] | None = None,
        bars_taken: Callable[[], int] | None = None,
        clock: Callable[[], int] = wall_clock_ms,
        last_cycle_ms: int = 0,
        mailbox_size: int = 8192,
    ) -> None:
        super().__init__(mailbox_size)
        self.performance = performance
        self.optimizer = optimizer
        self.scorer = scorer
        self.store = store
        self.alerts = alerts
        self.update_interval_ms = int(update_interval_s * 1000)
        self.snapshot_interval_ms = int(snapshot_interval_s * 1000)
        self.snapshot_every_trades = snapshot_every_trades
        self.status = status
        # Names the daemon serves but has not taken on (scored, never traded).
        self.seen = seen or (lambda strategy: False)
        # Drops a forgotten name from the daemon's admission; returns how to undo that.
        self.forgotten = forgotten or (lambda strategy: lambda: None)
        # Whether a regime was ever named in a trade or a signal.
        self.regime_seen = regime_seen or (lambda regime: True)
        # The bars the scorer's book took since the start: new ones make the timer's
        # snapshot due, as trades do (the book is in the snapshot).
        self.bars_taken = bars_taken or (lambda: 0)
        self.bars_in_snapshot = self._bars_being_saved = 0
        self.clock = clock
        self.last_cycle_ms = last_cycle_ms or clock()
        self.retry_cycle_at_ms = 0  # after a scheduled cycle failed, not before
        self.last_snapshot_ms = clock()
        self.trades_since_snapshot = 0
        self.last_state: OptimizationState | None = None
        self.cycle_samples: Samples[float] = Samples()  # seconds, read by the metrics

    @property
    def cycle(self) -> int:
        """The number of the last optimization cycle."""
        return self.optimizer.cycles

    @property
    def switches(self) -> dict[str, bool]:
        """Which optimization components are on."""
        return self.optimizer.switches

    def stats(self) -> EngineStats:
        """The engine's counters for the metrics and ``get_status``."""
        return EngineStats(
            cycle=self.optimizer.cycles,
            switches=dict(self.optimizer.switches),
            switched_ms=dict(self.optimizer.switched_ms),
            cycle_samples=self.cycle_samples,
        )

    def inline(self) -> EngineInline:
        """What the gateway answers from the engine in its receive callback (see
        ``EngineInline``)."""
        return EngineInline(weights=self.weights, health=self.health)

    def weights(self, request: GetWeights) -> Weights:
        """``get_weights``, answered inline: the optimizer's tables as they stand."""
        reply = self.optimizer.weights(request.regime)
        if request.regime is not None and not self._knows_regime(request.regime):
            reply.notes.append(
                f"regime {request.regime!r} was never seen in a trade or a signal:"
                " these are the global weights"
            )
        return reply

    def health(self, request: GetHealth) -> Health:
        """``get_health``, answered inline; ``not_found`` for a name never seen (a typo
        must not read as a healthy strategy)."""
        name = request.strategy
        if name is not None and not self.optimizer.knows(name) and not self.seen(name):
            raise NotFound(f"strategy {name!r} is neither configured nor seen")
        return self.optimizer.health(name)

    def _knows_regime(self, regime: str) -> bool:
        return regime in self.optimizer.weighting.regime_adaptive or self.regime_seen(regime)

    async def handle(self, message: Any) -> Any:
        match message:
            case TradesCommitted():
                self.trades_since_snapshot += message.count
                if self.trades_since_snapshot >= self.snapshot_every_trades:
                    await self._background_snapshot("trades")
                return None
            case UpdateOptimization():
                return await self._all_or_nothing(self.run_cycle(message.regime, "request"))
            case Tick():
                await self._tick()
                return None
            case StrategySeen():
                self.optimizer.register(message.strategy, self.clock())
                return None
            case ForceStatus():
                return await self._all_or_nothing(self.force_status(message))
            case ResetWeights():
                reset = self.optimizer.reset
                reason = message.reason or "reset by operator"
                return await self._all_or_nothing(
                    self.change_weights(reset, reason, message.operator)
                )
            case RollbackWeights():
                return await self._all_or_nothing(self.rollback_weights(message))
            case GetReport():
                return await self.report(message.after)
            case SetComponent():
                return await self._all_or_nothing(self.set_component(message))
            case ForgetStrategy():
                return await self._all_or_nothing(self.forget(message))
            case GetWeights():
                return self.weights(message)
            case GetHealth():
                return self.health(message)
            case FinalSnapshot():
                await self.snapshot("shutdown")
                return None
            case _ if message is TAKE_STATE:
                return self._state()
        raise TypeError(f"engine cannot handle {type(message).__name__}")

    # ------------------------------------------------------------------ cycles

    async def _tick(self) -> None:
        now = self.clock()
        if (
            self.update_interval_ms > 0
            and now - self.last_cycle_ms >= self.update_interval_ms
            and now >= self.retry_cycle_at_ms
        ):
            try:
                await self._all_or_nothing(self.run_cycle(None, "schedule"))
            except Exception as exc:
                # Undone, so nothing to lose by trying again; raised, it would crash the
                # loop once a second while the disk is full.
                self.retry_cycle_at_ms = now + CYCLE_RETRY_MS
                log.warning("cycle_not_run", error=f"{type(exc).__name__}: {exc}")
        elif (
            self.trades_since_snapshot or self.bars_taken() != self.bars_in_snapshot
        ) and now - self.last_snapshot_ms >= self.snapshot_interval_ms:
            await self._background_snapshot("timer")

    async def run_cycle(self, regime: str | None, trigger: str) -> OptimizationState:
        """One optimization cycle; returns what changed."""
        started = time.perf_counter()
        now = self.clock()
        by_strategy, by_regime = await self._ask(self.performance, RecentFigures())
        paper = await self._ask(self.scorer, PaperRecord())
        regime_paper: dict[str, dict[str, tuple[float, float]]] | None = None
        if self.optimizer.regimes.on:
            regime_paper = await self._ask(self.scorer, RegimePaperRecord())
        result = self.optimizer.cycle(by_strategy, by_regime, now, regime, paper, regime_paper)
        updates, transitions = result.updates, result.transitions
        allocation = self.optimizer.allocation()
        self.last_cycle_ms = now
        state = OptimizationState(
            cycle=result.cycle,
            ts_ms=now,
            regime=regime,
            weights=dict(allocation.global_table.adaptive),
            statuses=result.statuses,
            weight_changes=[_weight_change(u) for u in updates],
            status_changes=[_status_change(t) for t in transitions],
            weighting_frozen=allocation.frozen,
            regime_statuses=result.regime_statuses,
        )
        if regime is not None and not self._knows_regime(regime):
            state.notes.append(
                f"regime {regime!r} was never seen in a trade or a signal: no weight of its"
                " own was updated"
            )
        drafts = [_weight_draft(u, now, "system") for u in updates]
        drafts += [_status_draft(t) for t in transitions]
        duration_ms = (time.perf_counter() - started) * 1000
        self.cycle_samples.add(duration_ms / 1000)
        drafts.append(
            AuditDraft(
                ts_ms=now,
                kind="cycle",
                strategy=None,
                old=result.cycle - 1,
                new=result.cycle,
                reason=f"optimization cycle ({trigger})",
                actor="system",
                data={
                    "regime": regime,
                    "weight_changes": len(updates),
                    "status_changes": len(transitions),
                    "duration_ms": round(duration_ms, 3),
                },
            )
        )
        await self._journal(drafts, history=state)
        # The scorer serves the new weights and statuses only once they are on disk.
        await self.scorer.tell_wait(SetRegimeFit(by_strategy, by_regime))
        await self._push_allocation(allocation)
        self.last_state = state
        log.info(
            "optimization_cycle",
            cycle=result.cycle,
            trigger=trigger,
            weight_changes=len(updates),
            status_changes=len(transitions),
            duration_ms=round(duration_ms, 3),
        )
        return state

    async def force_status(self, request: ForceStatus) -> StatusChanged:
        """An operator sets a status by hand; journaled and published like any transition."""
        now = self.clock()
        if not self.optimizer.knows(request.strategy) and not self.seen(request.strategy):
            # A typo must not leave the intended strategy trading while a phantom is
            # "suspended": refuse names neither configured, traded nor scored lately.
            raise NotFound(
                f"strategy {request.strategy!r} is neither configured nor seen; nothing changed",
            )
        transition = self.optimizer.force(
            request.strategy, request.status, request.reason, request.operator, now, request.regime
        )
        allocation = self.optimizer.allocation()
        entries = await self._journal([_status_draft(transition)])
        await self._push_allocation(allocation)
        return StatusChanged(
            strategy=transition.strategy,
            old=transition.old,
            new=transition.new,
            reason=transition.reason,
            operator=request.operator,
            seq=entries[0].seq,
            regime=transition.regime,
        )

    async def change_weights(
        self, change: Callable[[str], list[WeightUpdate]], reason: str, operator: str
    ) -> Weights:
        """Reset or roll back the adaptive weights, journaled per strategy."""
        now = self.clock()
        updates = change(reason)
        allocation = self.optimizer.allocation()
        await self._journal([_weight_draft(u, now, operator) for u in updates])
        await self._push_allocation(allocation)
        return allocation.global_table.reply(allocation.frozen)

    async def forget(self, request: ForgetStrategy) -> StrategyForgotten:
        """An operator forgets a strategy that is no longer configured: its weights, status,
        figures by strategy and signal records go, so it no longer counts against
        ``max_strategies``; its trades stay in the journal. All or nothing."""
        name = request.strategy
        if name in self.optimizer.weighting.configured:
            raise BadInput(
                f"strategy {name!r} is configured ([strategies.{name}] in the config file):"
                " remove it there and restart before forgetting it; nothing changed",
            )
        if not self.optimizer.knows(name) and not self.seen(name):
            raise NotFound(f"strategy {name!r} is neither traded nor seen; nothing changed")
        now = self.clock()
        groups, trade_seq = await self._ask(self.performance, DetachStrategy(name))
        try:
            signals = await self._ask(self.scorer, DetachSignals(name))
            try:
                undo_admission = self.forgotten(name)
                try:
                    status = self.optimizer.forget(name) or "active"
                    allocation = self.optimizer.allocation()
                    entries = await self._journal(
                        [
                            AuditDraft(
                                ts_ms=now,
                                kind="forget",
                                strategy=name,
                                old=status,
                                new=None,
                                reason=request.reason or "forgotten by operator",
                                actor=request.operator,
                                data={"trade_seq": trade_seq},
                            )
                        ]
                    )
                except BaseException:
                    undo_admission()
                    raise
            except BaseException:
                await self._ask(self.scorer, AttachSignals(signals))
                raise
        except BaseException:
            await self._ask(self.performance, AttachGroups(groups))
            raise
        await self._push_allocation(allocation)
        log.warning("strategy_forgotten", strategy=name, operator=request.operator)
        return StrategyForgotten(
            strategy=name,
            status=status,
            reason=entries[0].reason,
            operator=request.operator,
            seq=entries[0].seq,
        )

    async def rollback_weights(self, request: RollbackWeights) -> Weights:
        """Undo the last change of the weights, or every one after ``to_cycle``; the reply
        says which cycle's weights are restored."""
        restored: int | None = None

        def undo(reason: str) -> list[WeightUpdate]:
            nonlocal restored
            updates, restored = self.optimizer.rollback(reason, request.to_cycle)
            return updates

        back_to = f" to cycle {request.to_cycle}" if request.to_cycle is not None else ""
        reason = request.reason or f"rollback{back_to} by operator"
        reply = await self.change_weights(undo, reason, request.operator)
        reply.restored_cycle = restored
        return reply

    async def _push_allocation(self, allocation: Allocation) -> None:
        await self.scorer.tell_wait(set_allocation(allocation))

    async def set_component(self, request: SetComponent) -> Components:
        """An operator switches a component off or on; journaled, published, persisted."""
        if request.name == "scorer":
            await self._ask(self.scorer, SetEnabled(request.enabled))
        now = self.clock()
        old = self.optimizer.set_component(request.name, request.enabled, now)
        if old == request.enabled:
            return Components(components=dict(self.switches), changed=False)
        verb = "on" if request.enabled else "off"
        entries = await self._journal(
            [
                AuditDraft(
                    ts_ms=now,
                    kind="component",
                    strategy=None,
                    old=old,
                    new=request.enabled,
                    reason=request.reason or f"{request.name} switched {verb}",
                    actor=request.operator,
                    data={"component": request.name},
                )
            ]
        )
        log.warning(
            "component_switched",
            component=request.name,
            enabled=request.enabled,
            operator=request.operator,
            reason=request.reason,
        )
        return Components(components=dict(self.switches), changed=True, seq=entries[0].seq)

    async def _all_or_nothing(self, change: Coroutine[Any, Any, _T]) -> _T:
        """Run a change of weights, statuses, switches or the cycle count, all or nothing.

        If any step fails (the journal's commit above all: a full disk), every model is put
        back as it was: a change answered with an error has no effect anywhere, neither on
        the scorer's answers nor on a later snapshot, and leaves no gap in the cycles.
        """
        try:
            saved = _Saved(
                optimizer=self.optimizer.to_state(),
                last_cycle_ms=self.last_cycle_ms,
                last_state=self.last_state,
            )
        except BaseException:
            change.close()
            raise
        try:
            return await change
        except Exception as exc:
            await self._put_back(saved, exc)
            raise

    async def _put_back(self, saved: _Saved, failure: Exception) -> None:
        self.last_cycle_ms = saved.last_cycle_ms
        self.last_state = saved.last_state
        scorer_was = saved.optimizer["switches"].get("scorer")
        scorer_changed = scorer_was is not None and self.switches.get("scorer") != scorer_was
        try:
            self.optimizer.restore(saved.optimizer)
            if scorer_changed:
                await self._ask(self.scorer, SetEnabled(bool(scorer_was)))
        except Exception as exc:
            log.error(
                "change_not_undone", failure=str(failure), error=f"{type(exc).__name__}: {exc}"
            )
            raise
        log.warning("change_undone", error=f"{type(failure).__name__}: {failure}")

    def _state(self) -> dict[str, Any]:
        return {
            "cycle": self.cycle,
            "last_cycle_ms": self.last_cycle_ms,
            "switches": dict(self.switches),
            "switched_ms": dict(self.optimizer.switched_ms),
        }

    # ------------------------------------------------------------------ journal

    async def _journal(
        self, drafts: list[AuditDraft], history: OptimizationState | None = None
    ) -> list[AuditEntry]:
        """Commit audit entries with a fresh snapshot, then publish them as alerts."""
        snapshot = await self._snapshot_now()
        # No timeout: the store always answers (committed or refused), and one given up
        # on could still commit what the engine then undoes.
        entries = await self.store.ask(
            Commit(audit=drafts, history=history, snapshot=snapshot),
            timeout=None,
            wait_for_room=True,
        )
        self._after_snapshot(snapshot)
        alerts = [Alert.from_audit(e) for e in entries]
        if alerts:
            try:
                self.alerts.tell(alerts)
            except Exception as exc:  # the audit row is the record; the alert is a courtesy
                log.warning("alerts_not_queued", error=str(exc), count=len(alerts))
        return entries

    async def snapshot(self, reason: str) -> None:
        """Write a snapshot of every stateful actor."""
        snapshot = await self._snapshot_now()
        await self._ask(self.store, Commit(snapshot=snapshot))
        self._after_snapshot(snapshot)
        log.debug("snapshot_written", reason=reason, trade_seq=snapshot.trade_seq)

    async def _background_snapshot(self, reason: str) -> None:
        """A snapshot nobody waits for: a failure is logged and tried again later.

        Raised, it would crash the loop, and a storage outage would soon fail the daemon
        over what only shortens the next restart's replay. The trade count is kept, so the
        next commit tries again; the timer waits one interval.
        """
        try:
            await self.snapshot(reason)
        except Exception as exc:
            self.last_snapshot_ms = self.clock()
            log.warning(
                "snapshot_not_written",
                reason=reason,
                error=f"{type(exc).__name__}: {exc}",
                trades_since_snapshot=self.trades_since_snapshot,
            )

    async def _ask(self, actor: Handle[Actor], message: Ask[_T]) -> _T:
        """Ask, waiting for room in a full mailbox: none of the engine's peers waits on it."""
        return await actor.ask(message, timeout=30.0, wait_for_room=True)

    def _after_snapshot(self, snapshot: Snapshot) -> None:
        self.last_snapshot_ms = self.clock()
        self.trades_since_snapshot = 0
        self.bars_in_snapshot = self._bars_being_saved

    async def _snapshot_now(self) -> Snapshot:
        self._bars_being_saved = self.bars_taken()  # a bar taken meanwhile is saved again
        performance = await self._ask(self.performance, TAKE_STATE)
        scorer = await self._ask(self.scorer, TAKE_STATE)
        state = {
            "performance": performance,
            "scorer": scorer,
            "weighting": self.optimizer.weighting.to_state(),
            "lifecycle": self.optimizer.lifecycle.to_state(),
            "regime_lifecycle": self.optimizer.regimes.to_state(),
            "engine": self._state(),
        }
        return Snapshot(
            ts_ms=self.clock(),
            trade_seq=min(performance["last_seq"], scorer["last_trade_seq"]),
            outcome_seq=scorer["last_outcome_seq"],
            state=msgpack_pieces(state),
        )

    # ------------------------------------------------------------------ report

    async def report(self, after: list[str] | None) -> Report:
        """One page of everything a dashboard needs (actors/report_pages.py)."""
        asked = ReportTables(after=after[0] if after else None)
        tables = await self._ask(self.performance, asked)
        weighting, statuses = self.optimizer.weighting, self.optimizer.statuses
        parts = ReportParts(
            status=self.status(),
            weights=weighting.table(None, statuses),
            regime_weights={r: weighting.table(r, statuses) for r in weighting.regimes()},
            frozen=weighting.frozen,
            health=self.optimizer.health_rows(None),
            tables=tables,
            signal_quality=await self._ask(self.scorer, SignalSummary()),
        )
        return report_page(parts, after)


def _weight_change(update: WeightUpdate) -> WeightChange:
    return WeightChange(
        strategy=update.strategy,
        regime=update.regime,
        old=update.old,
        new=update.new,
        reason=update.reason,
    )


def _status_change(transition: Transition) -> StatusChange:
    return StatusChange(
        strategy=transition.strategy,
        old=transition.old,
        new=transition.new,
        reason=transition.reason,
        actor=transition.actor,
        regime=transition.regime,
    )


def _weight_draft(update: WeightUpdate, now: int, actor: str) -> AuditDraft:
    return AuditDraft(
        ts_ms=now,
        kind="weight",
        strategy=update.strategy,
        old=update.old,
        new=update.new,
        reason=update.reason,
        actor=actor,
        data={"regime": update.regime, "target": update.target, "metrics": update.metrics},
    )


def _status_draft(transition: Transition) -> AuditDraft:
    return AuditDraft(
        ts_ms=transition.ts_ms,
        kind="status",
        strategy=transition.strategy,
        old=transition.old,
        new=transition.new,
        reason=transition.reason,
        actor=transition.actor,
        data={"metrics": transition.metrics}
        if transition.regime is None
        else {"regime": transition.regime, "metrics": transition.metrics},
    )
