"""Strategy lifecycle: active → degraded → suspended → retired, assessed on recent figures.

Every automatic transition is one row of ``TRANSITIONS``; an operator's
``force_status`` may set any status. Time-based rules read ``now_ms`` passed in by the
caller (event time in a replay, wall time in the daemon), so the same input gives the
same transitions.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from actors.base import TAKE_STATE, Actor
from actors.events import SetEnabled
from actors.figures import Figures
from actors.weighting import StrategyConfig
from protocol.messages import STATUSES, GetHealth, Health, HealthRow

TRANSITIONS: dict[tuple[str, str], str] = {
    ("active", "degraded"): "a soft breach: expectancy < 0, profit factor < 1, win rate "
    "below its floor, drawdown over its soft limit or PSR below its floor",
    ("active", "suspended"): "a hard breach: drawdown over its hard limit",
    ("degraded", "active"): "every threshold cleared by the hysteresis margin for "
    "recovery_checks consecutive assessments",
    ("degraded", "suspended"): "max_violations consecutive breached assessments, or a hard breach",
    ("suspended", "degraded"): "probation: probation_after_hours since the suspension",
    ("suspended", "retired"): "the retire_after_suspensions-th automatic suspension",
}
"""Every automatic transition and its rule. ``force_status`` may set any status."""


class LifecycleConfig(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """``[lifecycle]``: thresholds on the recent window (docs/optimization.md)."""

    min_trades: Annotated[int, Meta(ge=1, le=100_000)] = 20
    win_rate_floor: Annotated[float, Meta(ge=0.0, le=1.0)] = 0.30
    psr_floor: Annotated[float, Meta(ge=0.0, le=1.0)] = 0.10
    # Drawdown limits in average trades: max_drawdown / mean |pnl| of the window.
    soft_drawdown: Annotated[float, Meta(gt=0.0)] = 12.0
    hard_drawdown: Annotated[float, Meta(gt=0.0)] = 25.0
    # How far a degraded strategy must clear each threshold to count as recovered.
    hysteresis: Annotated[float, Meta(ge=0.0, le=1.0)] = 0.10
    recovery_checks: Annotated[int, Meta(ge=1, le=1000)] = 3
    max_violations: Annotated[int, Meta(ge=1, le=1000)] = 3
    probation_after_hours: Annotated[float, Meta(gt=0.0)] | None = None
    retire_after_suspensions: Annotated[int, Meta(ge=1, le=1000)] = 3


class Transition(msgspec.Struct, kw_only=True):
    """One status change, with the metrics that drove it."""

    strategy: str
    old: str
    new: str
    reason: str
    actor: str
    ts_ms: int
    metrics: dict[str, Any] = msgspec.field(default_factory=dict)


class HealthState(msgspec.Struct, kw_only=True):
    """One strategy's lifecycle state."""

    status: str = "active"
    since_ms: int = 0
    reason: str = "new strategy"
    violations: int = 0
    recoveries: int = 0
    suspensions: int = 0
    suspended_at_ms: int | None = None


class LifecycleModel:
    """Statuses of every strategy and the counters behind them."""

    def __init__(self, config: LifecycleConfig, strategies: Mapping[str, StrategyConfig]) -> None:
        self.config = config
        self.limits = dict(strategies)
        self.states: dict[str, HealthState] = {}
        # Off: no automatic transitions (force_status still works).
        self.enabled = True
        for name in strategies:
            self.states[name] = HealthState(reason="configured")

    def register(self, strategy: str, now_ms: int) -> bool:
        """Start tracking a strategy as active; False if already known."""
        if strategy in self.states:
            return False
        self.states[strategy] = HealthState(since_ms=now_ms)
        return True

    def status(self, strategy: str) -> str:
        state = self.states.get(strategy)
        return state.status if state is not None else "active"

    def statuses(self) -> dict[str, str]:
        return {name: state.status for name, state in sorted(self.states.items())}

    # ------------------------------------------------------------------ assessment

    def breaches(
        self, strategy: str, figures: Figures, margin: float = 0.0
    ) -> tuple[list[str], bool]:
        """Soft breaches in words, and whether the drawdown is over the hard limit.

        With ``margin`` > 0 every threshold is tightened: that is the recovery test.
        """
        cfg = self.config
        scale = figures.mean_abs_pnl if figures.mean_abs_pnl > 0 else 1.0
        soft_dd, hard_dd = self._drawdown_limits(strategy, scale)
        found = []
        if figures.expectancy < margin * scale:
            found.append(f"expectancy {figures.expectancy:.4g} < {margin * scale:.4g}")
        profit_factor = figures.profit_factor
        if profit_factor is not None and profit_factor < 1.0 + margin:
            found.append(f"profit factor {profit_factor:.2f} < {1.0 + margin:.2f}")
        if figures.win_rate < cfg.win_rate_floor + margin:
            found.append(f"win rate {figures.win_rate:.0%} < {cfg.win_rate_floor + margin:.0%}")
        if figures.max_drawdown > soft_dd * (1.0 - margin):
            found.append(f"drawdown {figures.max_drawdown:.4g} > {soft_dd * (1 - margin):.4g}")
        if figures.psr is not None and figures.psr < cfg.psr_floor + margin:
            found.append(f"PSR {figures.psr:.2f} < {cfg.psr_floor + margin:.2f}")
        return found, figures.max_drawdown > hard_dd

    def _drawdown_limits(self, strategy: str, scale: float) -> tuple[float, float]:
        cfg = self.config
        limits = self.limits.get(strategy)
        soft = (
            limits.soft_drawdown if limits and limits.soft_drawdown else cfg.soft_drawdown * scale
        )
        hard = (
            limits.hard_drawdown if limits and limits.hard_drawdown else cfg.hard_drawdown * scale
        )
        return soft, hard

    def assess(self, recent: Mapping[str, Figures], now_ms: int) -> list[Transition]:
        """Apply the rules of ``TRANSITIONS`` to every strategy."""
        cfg = self.config
        transitions: list[Transition] = []
        if not self.enabled:
            return transitions
        for strategy in sorted(set(self.states) | set(recent)):
            state = self.states.get(strategy)
            if state is None:
                state = self.states[strategy] = HealthState(since_ms=now_ms)
            figures = recent.get(strategy)
            if state.status == "suspended":
                if (
                    cfg.probation_after_hours is not None
                    and state.suspended_at_ms is not None
                    and now_ms - state.suspended_at_ms >= cfg.probation_after_hours * 3_600_000
                ):
                    state.violations = 0
                    state.recoveries = 0
                    transitions.append(
                        self._move(
                            strategy,
                            state,
                            "degraded",
                            f"probation after {cfg.probation_after_hours:g} h suspended",
                            now_ms,
                            figures,
                        )
                    )
                continue
            if state.status == "retired" or figures is None or figures.trades < cfg.min_trades:
                continue
            soft, hard = self.breaches(strategy, figures)
            if hard:
                _, hard_dd = self._drawdown_limits(strategy, figures.mean_abs_pnl or 1.0)
                reason = f"hard breach: drawdown {figures.max_drawdown:.4g} > {hard_dd:.4g}"
                transitions += self._suspend(strategy, state, reason, now_ms, figures)
                continue
            if soft:
                state.recoveries = 0
                state.violations += 1
                if state.status == "active":
                    transitions.append(
                        self._move(strategy, state, "degraded", "; ".join(soft), now_ms, figures)
                    )
                elif state.violations >= cfg.max_violations:
                    reason = f"{state.violations} breached assessments: " + "; ".join(soft)
                    transitions += self._suspend(strategy, state, reason, now_ms, figures)
                continue
            state.violations = 0
            if state.status == "degraded":
                tight, _ = self.breaches(strategy, figures, cfg.hysteresis)
                state.recoveries = 0 if tight else state.recoveries + 1
                if state.recoveries >= cfg.recovery_checks:
                    state.recoveries = 0
                    transitions.append(
                        self._move(
                            strategy,
                            state,
                            "active",
                            f"recovered for {cfg.recovery_checks} assessments",
                            now_ms,
                            figures,
                        )
                    )
        return transitions

    def _suspend(
        self, strategy: str, state: HealthState, reason: str, now_ms: int, figures: Figures | None
    ) -> list[Transition]:
        state.suspensions += 1
        state.suspended_at_ms = now_ms
        state.violations = 0
        state.recoveries = 0
        moves = [self._move(strategy, state, "suspended", reason, now_ms, figures)]
        if state.suspensions >= self.config.retire_after_suspensions:
            moves.append(
                self._move(
                    strategy,
                    state,
                    "retired",
                    f"suspended {state.suspensions} times",
                    now_ms,
                    figures,
                )
            )
        return moves

    def _move(
        self,
        strategy: str,
        state: HealthState,
        new: str,
        reason: str,
        now_ms: int,
        figures: Figures | None,
        actor: str = "system",
    ) -> Transition:
        old = state.status
        state.status = new
        state.since_ms = now_ms
        state.reason = reason
        metrics = figures.as_row() if figures is not None else {}
        return Transition(
            strategy=strategy,
            old=old,
            new=new,
            reason=reason,
            actor=actor,
            ts_ms=now_ms,
            metrics=metrics,
        )

    def force(
        self, strategy: str, status: str, reason: str, operator: str, now_ms: int
    ) -> Transition:
        """An operator's change: any status; counters start over."""
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}")
        state = self.states.get(strategy)
        if state is None:
            state = self.states[strategy] = HealthState(since_ms=now_ms)
        state.violations = 0
        state.recoveries = 0
        state.suspended_at_ms = now_ms if status == "suspended" else None
        return self._move(
            strategy, state, status, reason or f"forced by {operator}", now_ms, None, actor=operator
        )

    def health(self, strategy: str | None = None) -> list[dict[str, Any]]:
        """Rows of ``get_health``."""
        names = [strategy] if strategy is not None else sorted(self.states)
        rows = []
        for name in names:
            state = self.states.get(name) or HealthState()
            rows.append(
                {
                    "strategy": name,
                    "status": state.status,
                    "since_ms": state.since_ms,
                    "reason": state.reason,
                    "violations": state.violations,
                    "suspensions": state.suspensions,
                }
            )
        return rows

    # ------------------------------------------------------------------ state

    def to_state(self) -> dict[str, Any]:
        """Plain data for a snapshot."""
        return {
            "enabled": self.enabled,
            "strategies": {name: msgspec.to_builtins(st) for name, st in self.states.items()},
        }

    @classmethod
    def from_state(
        cls,
        config: LifecycleConfig,
        strategies: Mapping[str, StrategyConfig],
        state: dict[str, Any],
    ) -> LifecycleModel:
        """Rebuild from ``to_state``."""
        model = cls(config, strategies)
        model.enabled = bool(state["enabled"])
        for name, saved in state["strategies"].items():
            model.states[name] = msgspec.convert(saved, HealthState)
        return model


# ----------------------------------------------------------------------------- the actor


class RegisterStrategy(msgspec.Struct, frozen=True):
    """Tell: a strategy was seen for the first time."""

    strategy: str
    now_ms: int


class Assess(msgspec.Struct, frozen=True):
    """Ask: assess every strategy; answered with the list of ``Transition``."""

    recent: Mapping[str, Figures]
    now_ms: int


class Force(msgspec.Struct, frozen=True):
    """Ask: an operator's status change; answered with the ``Transition``."""

    strategy: str
    status: str
    reason: str
    operator: str
    now_ms: int


class Statuses(msgspec.Struct, frozen=True):
    """Ask: every strategy's status."""


class HealthRows(msgspec.Struct, frozen=True):
    """Ask: health rows of one or every strategy."""

    strategy: str | None


class LifecycleActor(Actor):
    """Owns the strategy lifecycle."""

    name = "lifecycle"

    def __init__(self, model: LifecycleModel, mailbox_size: int = 8192) -> None:
        super().__init__(mailbox_size)
        self.model = model

    async def handle(self, message: Any) -> Any:
        model = self.model
        match message:
            case SetEnabled():
                model.enabled = message.enabled
                return None
            case RegisterStrategy():
                model.register(message.strategy, message.now_ms)
                return None
            case Assess():
                return model.assess(message.recent, message.now_ms)
            case Force():
                return model.force(
                    message.strategy,
                    message.status,
                    message.reason,
                    message.operator,
                    message.now_ms,
                )
            case Statuses():
                return model.statuses()
            case HealthRows():
                return _health_rows(model, message.strategy)
            case GetHealth():
                return Health(rows=_health_rows(model, message.strategy))
            case _ if message is TAKE_STATE:
                return model.to_state()
        raise TypeError(f"lifecycle cannot handle {type(message).__name__}")


def _health_rows(model: LifecycleModel, strategy: str | None) -> list[HealthRow]:
    return [msgspec.convert(row, HealthRow) for row in model.health(strategy)]
