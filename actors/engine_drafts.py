"""What the engine journals of a change: its audit drafts and the changes a cycle reports.

Every change the engine makes (a cycle, a weight, a status, a switch, a forgotten
strategy) is one audit draft built here, and a cycle's weight and status changes are
reported in its history row as built here. Apart from the actor (actors/engine.py)
because these are the audit trail's format, one function per kind of entry, and the actor
reads as the order of its steps without them.
"""

from __future__ import annotations

from alphad.actors.lifecycle_shapes import Transition
from alphad.actors.optimizer import Allocation, CycleResult
from alphad.actors.store import AuditDraft
from alphad.actors.weighting_tables import WeightUpdate
from alphad.protocol.messages import OptimizationState, StatusChange, WeightChange


def cycle_state(
    result: CycleResult, allocation: Allocation, now: int, regime: str | None
) -> OptimizationState:
    """A cycle's history row (and ``update_optimization``'s reply): the weights and
    statuses it left and what it changed."""
    return OptimizationState(
        cycle=result.cycle,
        ts_ms=now,
        regime=regime,
        weights=dict(allocation.global_table.adaptive),
        statuses=result.statuses,
        weight_changes=[_weight_change(u) for u in result.updates],
        status_changes=[_status_change(t) for t in result.transitions],
        weighting_frozen=allocation.frozen,
        regime_statuses=result.regime_statuses,
    )


def _weight_change(update: WeightUpdate) -> WeightChange:
    """A weight change as the cycle's history row and reply report it."""
    return WeightChange(
        strategy=update.strategy,
        regime=update.regime,
        old=update.old,
        new=update.new,
        reason=update.reason,
    )


def _status_change(transition: Transition) -> StatusChange:
    """A status change as the cycle's history row and reply report it."""
    return StatusChange(
        strategy=transition.strategy,
        old=transition.old,
        new=transition.new,
        reason=transition.reason,
        actor=transition.actor,
        regime=transition.regime,
    )


def weight_draft(update: WeightUpdate, now: int, actor: str) -> AuditDraft:
    """The audit entry of one weight change, by the system or an operator."""
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


def status_draft(transition: Transition) -> AuditDraft:
    """The audit entry of one status change; a per-regime one names its regime."""
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


def cycle_draft(
    *,
    now: int,
    cycle: int,
    trigger: str,
    regime: str | None,
    weight_changes: int,
    status_changes: int,
    duration_ms: float,
) -> AuditDraft:
    """The audit entry of one optimization cycle: what set it off and what it changed."""
    return AuditDraft(
        ts_ms=now,
        kind="cycle",
        strategy=None,
        old=cycle - 1,
        new=cycle,
        reason=f"optimization cycle ({trigger})",
        actor="system",
        data={
            "regime": regime,
            "weight_changes": weight_changes,
            "status_changes": status_changes,
            "duration_ms": round(duration_ms, 3),
        },
    )


def forget_draft(
    *,
    now: int,
    strategy: str,
    status: str,
    reason: str,
    operator: str,
    trade_seq: int,
    scored: int,
) -> AuditDraft:
    """The audit entry of a forgotten strategy: its last status, the last trade it had and
    the scorer's count of signals then (a restart from an older snapshot makes the forget
    again there, among the trades and signals it replays)."""
    return AuditDraft(
        ts_ms=now,
        kind="forget",
        strategy=strategy,
        old=status,
        new=None,
        reason=reason,
        actor=operator,
        data={"trade_seq": trade_seq, "scored": scored},
    )


def component_draft(
    *, now: int, component: str, old: bool, enabled: bool, reason: str, operator: str
) -> AuditDraft:
    """The audit entry of a component switched off or on by an operator."""
    return AuditDraft(
        ts_ms=now,
        kind="component",
        strategy=None,
        old=old,
        new=enabled,
        reason=reason,
        actor=operator,
        data={"component": component},
    )
