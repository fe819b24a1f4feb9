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

The messages the daemon sends it are in actors/engine_messages.py, the audit drafts it
journals in actors/engine_drafts.py, its writing to the store (commits, snapshots and
when one is due) in actors/engine_journal.py, the snapshot's format in
actors/engine_snapshot.py.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import msgspec
import structlog

from alphad.actors.base import TAKE_STATE, Actor, Handle, Samples, take_with_turns
from alphad.actors.engine_drafts import (
    component_draft,
    cycle_draft,
    cycle_state,
    forget_draft,
    status_draft,
    weight_draft,
)
from alphad.actors.engine_journal import Journal, Since, ask_peer
from alphad.actors.engine_messages import (
    EngineInline,
    EngineStats,
    FinalSnapshot,
    Tick,
)
from alphad.actors.errors import BadInput, NotFound
from alphad.actors.events import UNKNOWN_REGIME, SetEnabled
from alphad.actors.lifecycle_shapes import PaperTrades
from alphad.actors.optimizer import Allocation, Optimizer, set_allocation
from alphad.actors.performance_actor import (
    AttachGroups,
    DetachStrategy,
    RecentFigures,
    ReportTables,
    TradesSeen,
)
from alphad.actors.regimes import REGIMES
from alphad.actors.report_pages import ReportParts, report_page
from alphad.actors.scorer import (
    AttachSignals,
    DetachSignals,
    PaperRecord,
    RegimePaperRecord,
    ServeRegimeFit,
    SignalSummary,
    StageRegimeFit,
)
from alphad.actors.store import TradesCommitted
from alphad.actors.weighting_tables import WeightUpdate
from alphad.protocol.messages import (
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
    StatusChanged,
    StatusReply,
    StrategyForgotten,
    UpdateOptimization,
    Weights,
)

log = structlog.get_logger("alphad.engine")

_T = TypeVar("_T")

CYCLE_RETRY_MS = 60_000
"""How long after a failed scheduled cycle (a full disk) the next one is tried."""


class _Saved(msgspec.Struct, kw_only=True):
    """What a failed change puts back."""

    optimizer: dict[str, Any]
    since_cycle: Since
    last_state: OptimizationState | None


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
        inputs_taken: Callable[[], int] | None = None,
        clock: Callable[[], int] = wall_clock_ms,
        last_cycle_ms: int = 0,
        mailbox_size: int = 8192,
    ) -> None:
        super().__init__(mailbox_size)
        self.performance = performance
        self.optimizer = optimizer
        self.scorer = scorer
        # 0: cycles only on request; any other interval at least 1 ms, rounded as the
        # replay's (0.0005 s truncated to 0 switched the scheduled cycles off).
        self.update_interval_ms = (
            max(1, round(update_interval_s * 1000)) if update_interval_s > 0 else 0
        )
        self.status = status
        # Names the daemon serves but has not taken on (scored, never traded).
        self.seen = seen or (lambda strategy: False)
        # Drops a forgotten name from the daemon's admission; returns how to undo that.
        self.forgotten = forgotten or (lambda strategy: lambda: None)
        # Whether a regime was ever named in a trade or a signal.
        self.regime_seen = regime_seen or (lambda regime: True)
        self.clock = clock
        self.since_cycle = Since(last_cycle_ms or clock(), "cycle")
        self.since_failed: Since | None = None  # a scheduled cycle failed: retried later
        self.journal = Journal(
            performance=performance,
            scorer=scorer,
            store=store,
            alerts=alerts,
            optimizer=optimizer,
            engine_state=self._state,
            inputs_taken=inputs_taken or (lambda: 0),
            clock=clock,
            snapshot_interval_s=snapshot_interval_s,
            snapshot_every_trades=snapshot_every_trades,
        )
        self.last_state: OptimizationState | None = None
        self.cycle_samples: Samples[float] = Samples()  # seconds, read by the metrics
        # While a change awaits (``_all_or_nothing``): the strategies ``register`` took on
        # meanwhile, and when; a change undone puts them back after the models it restores.
        self.registered_meanwhile: list[tuple[str, int]] | None = None

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
        return EngineInline(weights=self.weights, health=self.health, register=self.register)

    def register(self, strategy: str) -> None:
        """A strategy's first recorded trade, taken on at once (``EngineInline``): a
        weight at its base and the status active. Called in the gateway's callback with
        the trade already stored, so it never raises into the trade's reply."""
        now = self.clock()
        try:
            self.optimizer.register(strategy, now)
        except Exception as exc:
            log.error(
                "strategy_not_registered",
                strategy=strategy,
                error=f"{type(exc).__name__}: {exc}",
            )
            return
        if self.registered_meanwhile is not None:
            self.registered_meanwhile.append((strategy, now))

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
                if self.journal.trades_committed(message.count):
                    await self.journal.background_snapshot("trades")
                return None
            case UpdateOptimization():
                return await self._all_or_nothing(self.run_cycle(message.regime, "request"))
            case Tick():
                await self._tick()
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
                await self.journal.snapshot("shutdown")
                return None
            case _ if message is TAKE_STATE:
                return self._state()
        raise TypeError(f"engine cannot handle {type(message).__name__}")

    # ------------------------------------------------------------------ cycles

    async def _tick(self) -> None:
        now, failed = self.clock(), self.since_failed
        if (
            self.update_interval_ms > 0
            and self.since_cycle.elapsed_ms(now) >= self.update_interval_ms
            and (failed is None or failed.elapsed_ms(now) >= CYCLE_RETRY_MS)
        ):
            try:
                await self._all_or_nothing(self.run_cycle(None, "schedule"))
                self.since_failed = None
            except Exception as exc:
                # Undone, so nothing to lose by trying again; raised, it would crash the
                # loop once a second while the disk is full.
                self.since_failed = Since(now, "failed cycle")
                log.warning("cycle_not_run", error=f"{type(exc).__name__}: {exc}")
        elif self.journal.due_on_timer(now):
            await self.journal.background_snapshot("timer")

    async def run_cycle(self, regime: str | None, trigger: str) -> OptimizationState:
        """One optimization cycle; returns what changed."""
        started = time.perf_counter()
        now = self.clock()
        by_strategy, by_regime = await ask_peer(
            self.performance,
            RecentFigures(self.optimizer.edge_read(), self.optimizer.regime_edge_read()),
        )
        paper = await ask_peer(self.scorer, PaperRecord())
        regime_paper: dict[str, dict[str, PaperTrades]] | None = None
        if self.optimizer.regimes.on:
            regime_paper = await ask_peer(self.scorer, RegimePaperRecord())
        result = self.optimizer.cycle(by_strategy, by_regime, now, regime, paper, regime_paper)
        updates, transitions = result.updates, result.transitions
        allocation = self.optimizer.allocation()
        self.since_cycle.set(now)
        state = cycle_state(result, allocation, now, regime)
        if regime is not None and not self._knows_regime(regime):
            state.notes.append(
                f"regime {regime!r} was never seen in a trade or a signal: no weight of its"
                " own was updated"
            )
        drafts = [weight_draft(u, now, "system") for u in updates]
        drafts += [status_draft(t) for t in transitions]
        duration_ms = (time.perf_counter() - started) * 1000
        self.cycle_samples.add(duration_ms / 1000)
        drafts.append(
            cycle_draft(
                now=now,
                cycle=result.cycle,
                trigger=trigger,
                regime=regime,
                weight_changes=len(updates),
                status_changes=len(transitions),
                duration_ms=duration_ms,
            )
        )
        # The fits the cycle's figures give are in the snapshot of its commit (a restart
        # serves them, as the daemon does after it), and served only once it is on disk,
        # as the new weights and statuses are.
        await self.scorer.tell_wait(StageRegimeFit(by_strategy, by_regime))
        try:
            await self.journal.commit(drafts, history=state)
        except Exception:
            # Dropped for sure (waiting for room if need be): the next snapshot would
            # otherwise hold the fits of a cycle that was undone.
            with contextlib.suppress(Exception):
                await self.scorer.tell_wait(ServeRegimeFit(False))
            raise
        except BaseException:  # cancelled: no await left
            with contextlib.suppress(Exception):
                self.scorer.tell(ServeRegimeFit(False))
            raise
        await self.scorer.tell_wait(ServeRegimeFit(True))
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
        regime = request.regime
        if (
            regime is not None
            and regime != UNKNOWN_REGIME  # refused by the regimes' lifecycle, saying why
            and self.optimizer.regimes.on
            and regime not in REGIMES  # a detector's label, before it was first answered
            and not self._knows_regime(regime)
            and not self.optimizer.regimes.named(regime)  # in the config, or journaled
        ):
            # As for a strategy: a typo must not record a status in a phantom regime.
            raise NotFound(
                f"regime {regime!r} was never seen in a trade or a signal; nothing changed"
            )
        # Where a return from a suspension is judged from: the trades so far, not the last
        # cycle's count (those a bot reported since, while it was out, were read as new).
        # Asked for a return only: a suspension waits on nothing.
        optimizer = self.optimizer
        now_status = (
            optimizer.regime_statuses.get(regime, {}).get(request.strategy)
            if regime is not None
            else optimizer.statuses.get(request.strategy)
        )
        seen = None
        if request.status in ("active", "degraded") and now_status in ("suspended", "retired"):
            seen = await ask_peer(self.performance, TradesSeen(request.strategy, regime))
        transition = optimizer.force(
            request.strategy,
            request.status,
            request.reason,
            request.operator,
            now,
            request.regime,
            seen=seen,
        )
        allocation = self.optimizer.allocation()
        entries = await self.journal.commit([status_draft(transition)])
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
        await self.journal.commit([weight_draft(u, now, operator) for u in updates])
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
        groups, trade_seq = await ask_peer(self.performance, DetachStrategy(name))
        try:
            signals, scored = await ask_peer(self.scorer, DetachSignals(name))
            try:
                undo_admission = self.forgotten(name)
                try:
                    status = self.optimizer.forget(name) or "active"
                    allocation = self.optimizer.allocation()
                    draft = forget_draft(
                        now=now,
                        strategy=name,
                        status=status,
                        reason=request.reason or "forgotten by operator",
                        operator=request.operator,
                        trade_seq=trade_seq,
                        scored=scored,
                    )
                    entries = await self.journal.commit([draft])
                except BaseException:
                    undo_admission()
                    raise
            except BaseException:
                await ask_peer(self.scorer, AttachSignals(signals))
                raise
        except BaseException:
            await ask_peer(self.performance, AttachGroups(groups))
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
            await ask_peer(self.scorer, SetEnabled(request.enabled))
        now = self.clock()
        old = self.optimizer.set_component(request.name, request.enabled, now)
        if old == request.enabled:
            return Components(components=dict(self.switches), changed=False)
        verb = "on" if request.enabled else "off"
        draft = component_draft(
            now=now,
            component=request.name,
            old=old,
            enabled=request.enabled,
            reason=request.reason or f"{request.name} switched {verb}",
            operator=request.operator,
        )
        entries = await self.journal.commit([draft])
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
                since_cycle=self.since_cycle.copy(),
                last_state=self.last_state,
            )
        except BaseException:
            change.close()
            raise
        self.registered_meanwhile = []
        try:
            return await change
        except Exception as exc:
            await self._put_back(saved, exc)
            raise
        finally:
            self.registered_meanwhile = None

    async def _put_back(self, saved: _Saved, failure: Exception) -> None:
        self.since_cycle = saved.since_cycle  # its monotonic start too
        self.last_state = saved.last_state
        scorer_was = saved.optimizer["switches"].get("scorer")
        scorer_changed = scorer_was is not None and self.switches.get("scorer") != scorer_was
        try:
            self.optimizer.restore(saved.optimizer)
            for strategy, registered_ms in self.registered_meanwhile or ():
                self.optimizer.register(strategy, registered_ms)
            if scorer_changed:
                await ask_peer(self.scorer, SetEnabled(bool(scorer_was)))
        except Exception as exc:
            log.error(
                "change_not_undone", failure=str(failure), error=f"{type(exc).__name__}: {exc}"
            )
            raise
        log.warning("change_undone", error=f"{type(failure).__name__}: {failure}")

    def _state(self) -> dict[str, Any]:
        return {
            "cycle": self.cycle,
            "last_cycle_ms": self.since_cycle.at_ms,
            "switches": dict(self.switches),
            "switched_ms": dict(self.optimizer.switched_ms),
        }

    # ------------------------------------------------------------------ report

    async def report(self, after: list[str] | None) -> Report:
        """One page of everything a dashboard needs (actors/report_pages.py)."""
        asked = ReportTables(after=after[0] if after else None)
        tables = await ask_peer(self.performance, asked)
        optimizer = self.optimizer
        # Each weight table and health row of a thousand strategies is made between two
        # turns of the event loop, as the performance actor's tables and the page are.
        # A strategy registered meanwhile (``register``, from a trade's reply) is left out
        # of every table and row, so that the page is of one state: the next shows it.
        registered = frozenset(optimizer.weighting.base)
        tracked = frozenset(optimizer.lifecycle.states)
        weights = await take_with_turns(
            optimizer.table(r, registered) for r in (None, *optimizer.weighting.regimes())
        )
        parts = ReportParts(
            status=self.status(),
            weights=weights[0],
            regime_weights={t.regime: t for t in weights[1:] if t.regime is not None},
            frozen=optimizer.weighting.frozen,
            health=await take_with_turns(optimizer.iter_health_rows(None, tracked)),
            tables=tables,
            signal_quality=await ask_peer(self.scorer, SignalSummary()),
        )
        return await report_page(parts, after)
