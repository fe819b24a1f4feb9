"""The optimization: weights and lifecycle, and the switches that turn them off and on.

One synchronous model (no asyncio, no I/O) that both the daemon's engine and the offline
replay drive, so a cycle is written once: update the weights (globally, and per regime),
assess the lifecycle, take the new statuses. What the scorer serves follows from
``allocation()``, turned into the scorer's message by ``set_allocation``. The journal
and the alerts stay with the engine; every time-based rule reads the ``now_ms`` it is
given, so the same figures at the same times give the same result, live or replayed.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from typing import Any

import msgspec

from alphad.actors.errors import NotFound
from alphad.actors.events import STRICTNESS
from alphad.actors.figures import Figures
from alphad.actors.lifecycle import LifecycleModel
from alphad.actors.lifecycle_shapes import PaperTrades, Transition
from alphad.actors.regime_lifecycle import Paper, RegimeLifecycle
from alphad.actors.scorer import SetAllocation
from alphad.actors.weighting import WeightingModel
from alphad.actors.weighting_tables import WeightTable, WeightUpdate
from alphad.protocol.messages import AuditEntry, Health, HealthRow, Weights

COMPONENTS = ("scorer", "weighting", "lifecycle")
"""The optimization components an operator can switch off (``set_component``)."""


class Allocation(msgspec.Struct, kw_only=True):
    """What the scorer and the reports need after a change of weights or statuses."""

    statuses: dict[str, str]
    global_table: WeightTable
    regime_tables: dict[str, WeightTable]
    multipliers: dict[str, float]
    regime_multipliers: dict[str, dict[str, float]]
    frozen: bool = False
    # regime -> strategy -> its status in the regime, where not active (per_regime).
    regime_statuses: dict[str, dict[str, str]] = msgspec.field(default_factory=dict)


class CycleResult(msgspec.Struct, kw_only=True):
    """What one optimization cycle changed."""

    cycle: int
    updates: list[WeightUpdate]
    transitions: list[Transition]
    statuses: dict[str, str]
    regime_statuses: dict[str, dict[str, str]] = msgspec.field(default_factory=dict)


def set_allocation(allocation: Allocation) -> SetAllocation:
    """The scorer's message for an allocation: statuses, effective weights, multipliers."""
    return SetAllocation(
        statuses=dict(allocation.statuses),
        weights=dict(allocation.global_table.effective),
        multipliers=dict(allocation.multipliers),
        regime_multipliers={k: dict(v) for k, v in allocation.regime_multipliers.items()},
        regime_statuses={k: dict(v) for k, v in allocation.regime_statuses.items()},
    )


class Optimizer:
    """The weighting and lifecycle models, the cycles run and the component switches.

    ``statuses`` are the lifecycle's as of the last change (cycle, force, reset,
    rollback): the statuses the weights are shown and served under;
    ``regime_statuses`` the per-regime lifecycle's (``regimes``), where not active.
    """

    def __init__(
        self,
        weighting: WeightingModel,
        lifecycle: LifecycleModel,
        *,
        cycles: int = 0,
        switches: Mapping[str, bool] | None = None,
        switched_ms: Mapping[str, int] | None = None,
        regimes: RegimeLifecycle | None = None,
    ) -> None:
        self.weighting = weighting
        self.lifecycle = lifecycle
        self.regimes = regimes or RegimeLifecycle(lifecycle.config, lifecycle.limits)
        self.cycles = cycles  # the number of the last cycle
        # Which components are on; an operator's switch outlives restarts (the engine
        # keeps it in its snapshot).
        self.switches: dict[str, bool] = dict(switches or {})
        # When an operator last switched each component (ms), kept with the switches.
        self.switched_ms: dict[str, int] = dict(switched_ms or {})
        for name, enabled in self.switches.items():
            self._switch(name, enabled)
        self.statuses: dict[str, str] = lifecycle.statuses()
        self.regime_statuses = self.regimes.statuses()

    # ------------------------------------------------------------------ changes

    def register(self, strategy: str, now_ms: int) -> None:
        """A strategy seen for the first time: a weight at its base, and a status.

        Raises ``UnknownStrategy`` from the weighting (auto_register off);
        the lifecycle tracks it either way.
        """
        try:
            self.weighting.ensure_registered(strategy)
        finally:
            if self.lifecycle.register(strategy, now_ms):
                self.statuses = self.lifecycle.statuses()

    def apply_journaled(self, entry: AuditEntry) -> None:
        """Apply a journaled weight or status change again (a restart from a snapshot
        older than the journal: ``apply_journaled`` of the models)."""
        if entry.strategy is None:
            return
        regime = entry.data.get("regime")
        metrics = entry.data.get("metrics")
        metrics = metrics if isinstance(metrics, dict) else None
        if entry.kind == "status" and regime is not None:
            self.regimes.apply_journaled(
                entry.strategy,
                str(regime),
                str(entry.new),
                entry.reason,
                entry.actor,
                entry.ts_ms,
                metrics,
            )
            self.regime_statuses = self.regimes.statuses()
        elif entry.kind == "status":
            self.lifecycle.apply_journaled(
                entry.strategy, str(entry.new), entry.reason, entry.actor, entry.ts_ms, metrics
            )
            self.statuses = self.lifecycle.statuses()
        elif entry.kind == "weight":
            self.weighting.apply_journaled(
                entry.strategy, entry.data.get("regime"), entry.new, metrics
            )

    def cycle(
        self,
        by_strategy: Mapping[str, Figures],
        by_regime: Mapping[str, Mapping[str, Figures]],
        now_ms: int,
        regime: str | None = None,
        paper: Mapping[str, PaperTrades] | None = None,
        regime_paper: Paper | None = None,
    ) -> CycleResult:
        """One optimization cycle on the recent figures, at ``now_ms``.

        A requested ``regime`` updates that regime's table; without one every regime's.
        ``paper``: the suspended strategies' paper trades (``ScorerModel.paper_record``);
        ``regime_paper``: those of the strategies suspended in a regime, by regime. The
        per-regime lifecycle judges every regime either way.
        """
        regimes = {regime: by_regime.get(regime, {})} if regime is not None else by_regime
        self.cycles += 1
        updates = self.weighting.update(
            by_strategy, regimes, f"cycle {self.cycles}", cycle=self.cycles
        )
        transitions = self.lifecycle.assess(by_strategy, now_ms, paper)
        self.statuses = self.lifecycle.statuses()
        if self.regimes.on:
            transitions += self.regimes.assess(by_regime, now_ms, regime_paper)
            self.regime_statuses = self.regimes.statuses()
        return CycleResult(
            cycle=self.cycles,
            updates=updates,
            transitions=transitions,
            statuses=self.statuses,
            regime_statuses=self.regime_statuses,
        )

    def edge_read(self) -> dict[str, int]:
        """``LifecycleModel.edge_read``: what the next cycle asks the performance model
        for (``PerformanceModel.recent_by_strategy``)."""
        return self.lifecycle.edge_read()

    def regime_edge_read(self) -> dict[str, dict[str, int]] | int:
        """``RegimeLifecycle.edge_read``: the same for each regime's lifecycle
        (``PerformanceModel.recent_by_regime``)."""
        return self.regimes.edge_read()

    def knows(self, strategy: str) -> bool:
        """Whether the lifecycle tracks the strategy (configured, registered or traded)."""
        return strategy in self.lifecycle.states

    def force(
        self,
        strategy: str,
        status: str,
        reason: str,
        operator: str,
        now_ms: int,
        regime: str | None = None,
        seen: int | None = None,
    ) -> Transition:
        """An operator sets a status (``LifecycleModel.force``), the strategy's own or, in
        a ``regime``, its status there (``RegimeLifecycle.force``); ``seen``: its trade
        count now (in the regime), where a return from a suspension is judged from."""
        if regime is not None:
            transition = self.regimes.force(
                strategy, regime, status, reason, operator, now_ms, seen=seen
            )
            self.regime_statuses = self.regimes.statuses()
            return transition
        transition = self.lifecycle.force(strategy, status, reason, operator, now_ms, seen=seen)
        self.statuses = self.lifecycle.statuses()
        return transition

    def reset(self, reason: str) -> list[WeightUpdate]:
        """Every adaptive weight back to base (``WeightingModel.reset``)."""
        updates = self.weighting.reset(reason)
        self.statuses = self.lifecycle.statuses()
        return updates

    def rollback(
        self, reason: str, to_cycle: int | None = None
    ) -> tuple[list[WeightUpdate], int | None]:
        """Undo the last change of the weights, or every one after ``to_cycle``
        (``WeightingModel.roll_back``); the updates and the cycle restored."""
        if to_cycle is not None and to_cycle > self.cycles:
            raise NotFound(f"cycle {to_cycle} has not run yet: the last cycle is {self.cycles}")
        updates, restored = self.weighting.roll_back(reason, to_cycle)
        self.statuses = self.lifecycle.statuses()
        return updates, restored

    def forget(self, strategy: str) -> str | None:
        """Drop a strategy's weights and lifecycle state; its last status, None if the
        lifecycle did not track it."""
        self.weighting.forget(strategy)
        self.regimes.forget(strategy)
        self.regime_statuses = self.regimes.statuses()
        status = self.lifecycle.forget(strategy)
        self.statuses = self.lifecycle.statuses()
        return status

    def set_component(self, name: str, enabled: bool, now_ms: int | None = None) -> bool:
        """Switch a component off or on; returns whether it was on. A change made at
        ``now_ms`` is kept as the component's last switch (``switched_ms``).

        The scorer's switch is only recorded here: the scorer's model is the scorer's.
        """
        old = self.switches.get(name, True)
        self._switch(name, enabled)
        self.switches[name] = enabled
        if now_ms is not None and old != enabled:
            self.switched_ms[name] = now_ms
        return old

    def _switch(self, name: str, enabled: bool) -> None:
        if name == "weighting":
            self.weighting.frozen = not enabled
        elif name == "lifecycle":
            self.lifecycle.enabled = self.regimes.enabled = enabled

    # ------------------------------------------------------------------ reading

    def allocation(self) -> Allocation:
        """The current tables and multipliers under the last statuses."""
        model = self.weighting
        statuses = self.statuses
        regimes = model.regimes()
        strategies = model.strategies()
        return Allocation(
            statuses=statuses,
            global_table=model.table(None, statuses),
            regime_tables={r: self.table(r) for r in regimes},
            multipliers={s: model.multiplier(s) for s in strategies},
            regime_multipliers={
                r: {s: model.multiplier(s, r) for s in strategies} for r in regimes
            },
            frozen=model.frozen,
            regime_statuses=self.regime_statuses,
        )

    def weights(self, regime: str | None) -> Weights:
        """The ``weights`` reply of ``get_weights``."""
        return self.table(regime).reply(self.weighting.frozen)

    def table(self, regime: str | None, names: Collection[str] | None = None) -> WeightTable:
        """The weights of the global table (``regime`` None) or of one regime's, under
        the statuses that apply there (``statuses_in``); of ``names`` only, if given."""
        return self.weighting.table(regime, self.statuses_in(regime), names)

    def statuses_in(self, regime: str | None) -> dict[str, str]:
        """Each strategy's status where it trades in ``regime``: its own, or its status in
        that regime where that is stricter (``per_regime``), as the scorer serves it. A
        strategy suspended in a regime has no effective weight in that regime's table, and
        the others' normalized weights there share what it leaves."""
        there = self.regime_statuses.get(regime, {}) if regime is not None else {}
        if not there:
            return self.statuses
        statuses = dict(self.statuses)
        for strategy, status in there.items():
            if STRICTNESS[status] > STRICTNESS.get(statuses.get(strategy, "active"), 0):
                statuses[strategy] = status
        return statuses

    def health_rows(self, strategy: str | None) -> list[HealthRow]:
        """Health rows of one strategy (a default row if never seen) or of every one,
        each with the strategy's rows in the regimes it traded in (per_regime)."""
        return list(self.iter_health_rows(strategy))

    def iter_health_rows(
        self, strategy: str | None, names: Collection[str] | None = None
    ) -> Iterator[HealthRow]:
        """``health_rows``, each made as it is taken; of ``names`` only, if given (the
        strategies tracked when a report began: one registered meanwhile is left out)."""
        for row in self.lifecycle.health(strategy):
            if names is not None and row["strategy"] not in names:
                continue
            if self.regimes.on:
                row["regimes"] = self.regimes.health(row["strategy"])
            yield msgspec.convert(row, HealthRow)

    def health(self, strategy: str | None) -> Health:
        """The ``health`` reply of ``get_health``."""
        return Health(rows=self.health_rows(strategy))

    # ------------------------------------------------------------------ state

    def to_state(self) -> dict[str, Any]:
        """A copy of everything a change can touch, for ``restore`` (not a snapshot's form)."""
        return {
            "weighting": self.weighting.to_state(),
            "lifecycle": self.lifecycle.to_state(),
            "regimes": self.regimes.to_state(),
            "cycles": self.cycles,
            "switches": dict(self.switches),
            "switched_ms": dict(self.switched_ms),
        }

    @classmethod
    def from_state(
        cls, weighting: WeightingModel, lifecycle: LifecycleModel, state: Mapping[str, Any]
    ) -> Optimizer:
        """Rebuild from ``to_state``, under the configs of the given models."""
        config, limits = lifecycle.config, lifecycle.limits
        return cls(
            WeightingModel.from_state(weighting.config, weighting.configured, state["weighting"]),
            LifecycleModel.from_state(config, limits, state["lifecycle"]),
            cycles=state["cycles"],
            switches=state["switches"],
            switched_ms=state.get("switched_ms"),
            regimes=RegimeLifecycle.from_state(config, limits, state.get("regimes", {})),
        )

    def restore(self, state: Mapping[str, Any]) -> None:
        """Put everything back as ``to_state`` took it (a change whose commit failed)."""
        restored = Optimizer.from_state(self.weighting, self.lifecycle, state)
        self.weighting, self.lifecycle = restored.weighting, restored.lifecycle
        self.regimes, self.regime_statuses = restored.regimes, restored.regime_statuses
        self.cycles, self.switches = restored.cycles, restored.switches
        self.switched_ms = restored.switched_ms
        self.statuses = restored.statuses
