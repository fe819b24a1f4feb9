"""Strategy lifecycle: active → degraded → suspended → retired, assessed on recent figures.

Every automatic transition is one row of ``TRANSITIONS``; an operator's
``force_status`` may set any status. Time-based rules read ``now_ms`` passed in by the
caller (event time in a replay, the daemon's clock live), never the wall clock, so the
same input gives the same transitions.

The figures judged are each strategy's recent window per unit of size (the performance
model's ``recent_by_strategy``), so alphad's own sizing does not change its verdict.
Evidence is counted in trades, not in cycles: a breach counts as another violation only
once ``recount_share`` of the window is new since the last one counted, and a strategy
on probation is judged on the trades it made since probation began.

This module holds the table and the model that keeps the counters and moves the
statuses; what a window, the edge test and the paper trades say is in
actors/lifecycle_evidence.py, the config, the per-strategy record and ``Transition`` in
actors/lifecycle_shapes.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeGuard, cast

import msgspec

from alphad.actors.errors import BadInput
from alphad.actors.figures import Figures, figures_of, fingerprint, max_drawdown_of, pnl_scale
from alphad.actors.lifecycle_evidence import (
    HOUR_MS,
    Assessment,
    DrawdownLimit,
    edge_level,
    judge_window,
    ordinal,
    probation_ends,
    probation_words,
    read_edge,
)
from alphad.actors.lifecycle_shapes import HealthState, LifecycleConfig, PaperTrades, Transition
from alphad.actors.weighting_config import StrategyConfig
from alphad.protocol.messages import STATUSES, Status

TRANSITIONS: dict[tuple[str, str], str] = {
    ("active", "degraded"): "a soft breach: PSR below psr_floor, win rate below "
    "win_rate_floor, or max drawdown over the soft limit",
    ("active", "suspended"): "a hard breach: max drawdown over the hard limit, the edge "
    "test's alarm (a one-sided CUSUM on pnl per unit of size), or the peak stop (its equity "
    "per unit of size peak_drawdown σ below its peak; off by default)",
    ("degraded", "active"): "every threshold cleared by the hysteresis margin in "
    "recovery_checks consecutive assessments",
    ("degraded", "suspended"): "max_violations consecutive violations, each on a window "
    "mostly renewed since the last (the one that degraded it counts), a hard breach, the "
    "edge test's alarm, the peak stop, or any breach on probation",
    ("suspended", "degraded"): "probation, after an automatic suspension: as soon as its "
    "paper trades since the suspension win significantly more often than it needs to break "
    "even; or, for its first timer_probations suspensions but the peak stop's and unless its "
    "paper trades significantly fall short, after the time it took to make "
    "probation_after_trades trades (unless that is 0)",
    ("suspended", "retired"): "right after the retire_after_suspensions-th automatic suspension",
}
"""Every automatic transition and its rule; nothing else happens without an operator.

``force_status`` may set any status from any status.
"""

# The reasons of a strategy's status before its first judged window.
_NOT_YET_JUDGED = frozenset(("new strategy", "configured"))


NOT_READ = 2**62
"""The mark of a strategy the edge test does not read (``LifecycleModel.edge_read``):
every trade of it counts as read."""


def _back_from_now(cfg: LifecycleConfig, state: HealthState, seen: int) -> None:
    """A strategy back from a suspension (or retirement) at trade ``seen``: the edge test
    and the peak stop read its trades from there on, not those made while it was out (a
    bot that went on trading it reported them; read at the next cycle, they suspended it
    again with no new trade)."""
    if cfg.edge_loss > 0.0 or cfg.peak_drawdown > 0.0:
        state.edge_read = max(state.edge_read, seen)


class LifecycleModel:
    """Statuses of every strategy and the counters behind them."""

    def __init__(
        self,
        config: LifecycleConfig,
        strategies: Mapping[str, StrategyConfig],
        overrides: Mapping[str, LifecycleConfig] | None = None,
    ) -> None:
        self.config = config
        self.limits = dict(strategies)
        # strategy -> the thresholds it is judged by instead of ``config`` (the
        # per-regime lifecycle's [strategies.NAME.regimes.REGIME]).
        self.overrides = dict(overrides or {})
        self.states: dict[str, HealthState] = {
            name: HealthState(reason="configured") for name in sorted(strategies)
        }
        # Off-switch: no automatic transitions while off; force_status still works.
        self.enabled = True
        # The figures each strategy was last assessed on (off probation). Figures are
        # shared and never modified, so the same object is the same evidence: a cycle
        # skips it without taking its fingerprint.
        self._assessed: dict[str, Figures] = {}

    def register(self, strategy: str, now_ms: int) -> bool:
        """Start tracking a strategy as active; False if already known."""
        if strategy in self.states:
            return False
        self.states[strategy] = HealthState(since_ms=now_ms, first_ms=now_ms)
        return True

    def status(self, strategy: str) -> str:
        """The strategy's status; "active" for one never seen."""
        state = self.states.get(strategy)
        return state.status if state is not None else "active"

    def statuses(self) -> dict[str, str]:
        """Every known strategy's status, sorted by name."""
        return {name: state.status for name, state in sorted(self.states.items())}

    def edge_read(self) -> dict[str, int]:
        """strategy → the number of its last trade the edge test and the peak stop read,
        for the strategies they read at the next cycle (neither retired nor suspended),
        ``NOT_READ`` for the others: the performance model keeps the trades after it
        that leave the window (``PerformanceModel.recent_by_strategy``)."""
        cfg = self.config
        reads = self.enabled and (cfg.edge_loss > 0.0 or cfg.peak_drawdown > 0.0)
        return {
            name: (
                state.edge_read
                if reads and state.status not in ("retired", "suspended")
                else NOT_READ
            )
            for name, state in self.states.items()
        }

    def forget(self, strategy: str) -> str | None:
        """Stop tracking a strategy (``forget_strategy``); its last status, None if unknown."""
        self._assessed.pop(strategy, None)
        state = self.states.pop(strategy, None)
        return state.status if state is not None else None

    # ------------------------------------------------------------------ assessment

    def drawdown_limits(
        self, strategy: str, figures: Figures
    ) -> tuple[DrawdownLimit, DrawdownLimit]:
        """The soft and hard drawdown limits of this window, each with the drawdown it
        is held against.

        The strategy's absolute limits when configured, against the drawdown of the pnl
        as traded (of ``Figures.sized_pnls``, computed only then: an operator's limit of
        100 is 100 of the bot's money whatever the size; held against the pnl per unit
        of size, a strategy trading size 10 was stopped only at 10 times it); else the
        relative ones times the window's mean |pnl|, against the drawdown per unit of size.
        """
        scale = pnl_scale(figures)
        soft, hard = self._absolute_limits(strategy)
        per_unit = figures.max_drawdown
        absolute = soft is not None or hard is not None
        sized = max_drawdown_of(figures.sized_pnls) if absolute else 0.0
        return (
            (soft, sized) if soft is not None else (self.config.soft_drawdown * scale, per_unit),
            (hard, sized) if hard is not None else (self.config.hard_drawdown * scale, per_unit),
        )

    def check(self, strategy: str, figures: Figures) -> Assessment:
        """Soft and hard breaches of one recent window, and whether it clears the margin
        (``judge_window``), by the strategy's thresholds and drawdown limits."""
        cfg = self.overrides.get(strategy, self.config)
        soft_rule, hard_rule = self.drawdown_limits(strategy, figures)
        found = judge_window(cfg, figures, soft_rule, hard_rule)
        soft, hard = self._absolute_limits(strategy)
        if soft is not None or hard is not None:  # the drawdown as traded, journaled
            found.sized_drawdown = (soft_rule if soft is not None else hard_rule)[1]
        return found

    def _absolute_limits(self, strategy: str) -> tuple[float | None, float | None]:
        """The strategy's ``soft_drawdown`` and ``hard_drawdown`` (None: relative)."""
        limits = self.limits.get(strategy)
        if limits is None:
            return None, None
        return limits.soft_drawdown, limits.hard_drawdown

    def assess(
        self,
        recent: Mapping[str, Figures],
        now_ms: int,
        paper: Mapping[str, PaperTrades] | None = None,
    ) -> list[Transition]:
        """Apply the rules of ``TRANSITIONS`` to every strategy, in name order.

        ``recent``: strategy → recent-window figures per unit of size, with ``seen`` and
        ``pnls`` (``PerformanceModel.recent_by_strategy``); strategies seen here for the
        first time are registered. ``now_ms`` is the clock of the probation rule;
        ``paper``: strategy → its paper trades since its suspension.
        """
        if not self.enabled:
            return []
        cfg = self.config
        transitions: list[Transition] = []
        for strategy in sorted(set(self.states) | set(recent)):
            state = self.states.get(strategy)
            if state is None:
                state = self.states[strategy] = HealthState(since_ms=now_ms, first_ms=now_ms)
            if state.first_ms is None:
                state.first_ms = now_ms
                if state.since_ms == 0:
                    # A configured strategy, judged from its first cycle on: its status
                    # holds since then, not since 1970.
                    state.since_ms = now_ms
            figures = recent.get(strategy)
            if figures is not None and state.status in ("retired", "suspended"):
                state.seen = figures.seen  # where it comes back, if it does
            if state.status == "retired":
                continue
            if state.status == "suspended":
                words = probation_ends(cfg, state, figures, (paper or {}).get(strategy), now_ms)
                if words is not None:
                    hours = (now_ms - (state.suspended_at_ms or 0)) / HOUR_MS
                    state.violations = state.recoveries = 0
                    state.probation_from = figures.seen if figures is not None else 0
                    _back_from_now(cfg, state, state.seen)
                    self._start_probation(state)
                    transitions.append(
                        self._move(
                            strategy,
                            state,
                            "degraded",
                            f"probation: {words or probation_words(cfg, state, hours)}",
                            now_ms,
                            {
                                "suspended_at_ms": state.suspended_at_ms,
                                "hours_suspended": hours,
                                "seen": state.probation_from,  # where probation begins
                            },
                        )
                    )
                continue
            if figures is not None:
                state.seen = figures.seen
            back, state.back_at = state.back_at, None
            if figures is not None and back is not None and figures.seen <= back:
                # Brought back by an operator, and no trade since: the window it came
                # back with is not judged again (it re-suspended it on no new trade).
                state.evidence, state.evidence_seen = fingerprint(figures), figures.seen
                self._assessed[strategy] = figures
                continue
            if figures is not None and figures.seen > state.edge_read:
                alarm = read_edge(cfg, state, figures)
                if alarm is not None:
                    self._assessed[strategy] = figures
                    transitions += self._suspend(
                        strategy,
                        state,
                        alarm.reason,
                        now_ms,
                        alarm.metrics,
                        below_peak=alarm.below_peak,
                    )
                    continue
            window = figures  # the whole recent window, also on probation
            if state.probation_from is not None:
                if figures is not None:
                    figures = self._since_probation(state, figures)
            elif figures is not None:
                if figures is self._assessed.get(strategy):
                    continue
                self._assessed[strategy] = figures
            if figures is None or figures.trades < self.overrides.get(strategy, cfg).min_trades:
                continue
            evidence = fingerprint(figures)
            if evidence == state.evidence and state.evidence_seen in (0, figures.seen):
                continue  # the same window (a state saved before the count: as it was)
            state.evidence, state.evidence_seen = evidence, figures.seen
            found = self.check(strategy, figures)
            if found.hard is not None:
                # The soft drawdown line would only repeat the hard one.
                others = [b for b in found.soft if not b.startswith("drawdown")]
                reason = "; ".join([found.hard, *others])
                transitions += self._suspend(strategy, state, reason, now_ms, found.metrics())
            elif found.soft:
                state.recoveries = 0
                renewed = figures.seen - state.counted_at
                if state.violations and renewed < cfg.recount_share * figures.trades:
                    continue  # the breach already counted, on much the same trades
                state.violations += 1
                state.counted_at = figures.seen
                breaches = "; ".join(found.soft)
                if state.probation_from is not None:
                    # On probation the breach that suspended it has already counted: a
                    # strategy let back in at reduced size gets no second warning (also
                    # one that recovered to active before probation's window was new).
                    metrics = found.metrics() | {"violations": state.violations}
                    reason = f"breach on probation: {breaches}"
                    transitions += self._suspend(strategy, state, reason, now_ms, metrics)
                elif state.status == "active":
                    metrics = found.metrics() | {"violations": state.violations}
                    transitions.append(
                        self._move(strategy, state, "degraded", breaches, now_ms, metrics)
                    )
                elif state.violations >= cfg.max_violations:
                    metrics = found.metrics() | {"violations": state.violations}
                    reason = f"{ordinal(state.violations)} violation in a row: {breaches}"
                    transitions += self._suspend(strategy, state, reason, now_ms, metrics)
            else:
                self._end_probation(state, window or figures)
                if state.status == "active" and state.reason in _NOT_YET_JUDGED:
                    # Say what the healthy status rests on, not "new strategy" for ever.
                    state.reason = (
                        "within every limit since its first judged window "
                        f"({figures.trades} trades)"
                    )
                # Only a window that clears every threshold by the margin ends a run of
                # violations: one that merely scrapes past them is no recovery.
                if found.recovered:
                    state.violations = 0
                if state.status == "degraded":
                    state.recoveries = state.recoveries + 1 if found.recovered else 0
                    if state.recoveries >= cfg.recovery_checks:
                        state.recoveries = 0
                        reason = (
                            f"recovered: every threshold cleared by the {cfg.hysteresis:g} "
                            f"margin in {cfg.recovery_checks} assessments in a row"
                        )
                        transitions.append(
                            self._move(strategy, state, "active", reason, now_ms, found.metrics())
                        )
        return transitions

    @staticmethod
    def _since_probation(state: HealthState, figures: Figures) -> Figures:
        """The figures of the trades made since probation began; the whole window once
        every trade in it is newer (judged once more as probation: ``_end_probation``)."""
        new = figures.seen - (state.probation_from or 0)
        if new >= figures.trades:
            return figures
        since = figures_of(figures.pnls[-new:] if new > 0 else (), seen=figures.seen)
        # The same trades as traded, for an operator's absolute limits (left out, they
        # never held on probation).
        since.sized_pnls = figures.sized_pnls[-new:] if new > 0 else ()
        return since

    @staticmethod
    def _end_probation(state: HealthState, window: Figures) -> None:
        """Probation is over once the whole recent ``window`` (not the new trades judged
        on probation: they are always all new) is newer trades and has passed: that window
        was probation's judgement too (with ``window_trades`` equal to ``min_trades`` it
        is the only one, and a breach of it was taken for a first warning)."""
        if state.probation_from is not None and (
            window.seen - state.probation_from >= window.trades
        ):
            state.probation_from = None

    def _start_probation(self, state: HealthState) -> None:
        """The suspension's evidence is not forgotten on probation: the edge test starts
        halfway to its alarm, so a strategy still losing is caught again in about half
        the trades, and the peak stop starts halfway below the peak."""
        cfg = self.config
        state.edge_statistic = max(state.edge_statistic, edge_level(cfg) / 2.0)
        state.below_peak = max(state.below_peak, cfg.peak_drawdown / 2.0)
        state.stopped_below_peak = False

    def _suspend(
        self,
        strategy: str,
        state: HealthState,
        reason: str,
        now_ms: int,
        metrics: dict[str, Any],
        below_peak: bool = False,
    ) -> list[Transition]:
        """Suspend, and retire at once on the retire_after_suspensions-th suspension;
        ``below_peak``: by the peak stop, so that the clock never ends it."""
        state.suspensions += 1
        state.stopped_below_peak = below_peak
        state.suspended_at_ms = now_ms
        state.paper_judged, state.paper_verdict = (0.0, 0.0), None
        if state.first_ms is not None:
            # A strategy suspended before it recorded a trade counts as having made one.
            state.suspended_pace_ms = _pace_ms(now_ms, state.first_ms, state.seen)
        state.violations = state.recoveries = 0
        state.probation_from = None
        metrics = {**metrics, "suspensions": state.suspensions}
        if state.suspended_pace_ms is not None:
            # Journaled, so that a start that applies it again (from an older snapshot,
            # or none) keeps the pace: it registers the strategy at the entry's time.
            metrics["pace_ms"] = state.suspended_pace_ms
        moves = [self._move(strategy, state, "suspended", reason, now_ms, metrics)]
        if state.suspensions >= self.config.retire_after_suspensions:
            moves.append(
                self._move(
                    strategy,
                    state,
                    "retired",
                    f"suspended {state.suspensions} times "
                    f"(retire after {self.config.retire_after_suspensions})",
                    now_ms,
                    metrics,
                )
            )
        return moves

    def _move(
        self,
        strategy: str,
        state: HealthState,
        new: Status,
        reason: str,
        now_ms: int,
        metrics: dict[str, Any],
        actor: str = "system",
    ) -> Transition:
        old = state.status
        if actor == "system" and (old, new) not in TRANSITIONS:
            # The table is the specification; a move outside it is a bug, never a trade.
            raise RuntimeError(f"automatic transition {old} -> {new} is not in TRANSITIONS")
        state.status = new
        state.since_ms = now_ms
        state.reason = reason
        state.actor = actor
        return Transition(
            strategy=strategy,
            old=old,
            new=new,
            reason=reason,
            actor=actor,
            ts_ms=now_ms,
            metrics=metrics,
        )

    # ------------------------------------------------------------------ operator actions

    def force(
        self,
        strategy: str,
        status: str,
        reason: str,
        operator: str,
        now_ms: int,
        seen: int | None = None,
    ) -> Transition:
        """An operator sets any status; the violation and recovery counters start over.

        The suspension count is kept (three strikes stay three strikes), except when the
        strategy leaves retirement: that is a new start. A strategy never seen is
        registered. Raises ``BadInput`` for an unknown status. ``seen``: the strategy's
        trade count now (the last cycle's without it): a return from a suspension or
        retirement is judged from the trades after it.
        """
        if status not in STATUSES:
            raise BadInput(f"unknown status {status!r}")
        state = self.states.get(strategy)
        if state is None:
            state = self.states[strategy] = HealthState(since_ms=now_ms)
        if state.status == "retired" and status != "retired":
            state.suspensions = 0
        metrics: dict[str, Any] = {"suspensions": state.suspensions}
        if state.status in ("suspended", "retired") and status in ("active", "degraded"):
            state.seen = max(state.seen, seen or 0)
            _back_from_now(self.config, state, state.seen)
            state.back_at = metrics["seen"] = state.seen  # journaled: a restart knows it
        state.violations = state.recoveries = 0
        state.probation_from = None
        state.below_peak, state.stopped_below_peak = 0.0, False
        state.suspended_at_ms = now_ms if status == "suspended" else None
        return self._move(
            strategy,
            state,
            cast(Status, status),
            reason or f"set by {operator}",
            now_ms,
            metrics,
            actor=operator,
        )

    def apply_journaled(
        self,
        strategy: str,
        status: str,
        reason: str,
        actor: str,
        ts_ms: int,
        metrics: Mapping[str, Any] | None = None,
    ) -> None:
        """Apply a status change as the audit trail recorded it.

        For a restart from an older snapshot than the newest (which was unreadable): the
        journaled changes after it are applied again. The counters start over as after
        ``force``, but for an automatic warning's violations (its ``metrics``); an
        automatic suspension counts toward retirement, and one by the peak stop (its
        ``metrics`` carry ``below_peak``) still never ends on the clock.
        """
        if status not in STATUSES:
            return
        state = self.states.get(strategy)
        if state is None:
            state = self.states[strategy] = HealthState(since_ms=ts_ms)
        if state.status == "retired" and status != "retired":
            state.suspensions = 0
        if status == "suspended" and actor == "system":
            seen = (metrics or {}).get("seen")
            if _count(seen):
                state.seen = max(state.seen, seen)  # the trades up to the suspension
            state.suspensions += 1
            pace = (metrics or {}).get("pace_ms")
            if isinstance(pace, (int, float)) and not isinstance(pace, bool) and pace > 0:
                state.suspended_pace_ms = float(pace)
            elif state.first_ms is not None and state.first_ms < ts_ms:
                state.suspended_pace_ms = _pace_ms(ts_ms, state.first_ms, state.seen)
            else:
                # No pace known (an entry from before it was journaled, of a strategy first
                # seen at the entry's time by this start): the clock of before, not a
                # millisecond a trade (the suspension ended at the first cycle).
                state.suspended_pace_ms = None
        if actor != "system":
            state.below_peak, state.stopped_below_peak = 0.0, False
        elif status == "suspended":
            alarm = metrics or {}
            state.stopped_below_peak = "below_peak" in alarm
            if "below_peak" in alarm or "edge_statistic" in alarm:
                state.edge_statistic = state.below_peak = 0.0  # as the alarm did
            seen = alarm.get("seen")
            if _count(seen) and seen > state.edge_read:
                # The trades the suspension judged are read: probation does not read
                # them again (and suspend again on no new trade).
                state.edge_read = seen
        elif state.status == "suspended" and status == "degraded":
            self._start_probation(state)
        returned = state.status in ("suspended", "retired") and status in ("active", "degraded")
        back = (metrics or {}).get("seen")
        if not _count(back):
            back = None
        if returned:
            if back is not None:
                state.seen = max(state.seen, back)  # where the return was made
            _back_from_now(self.config, state, state.seen)
            if actor != "system":
                state.back_at = state.seen
        state.violations = state.recoveries = 0
        counted = (metrics or {}).get("violations")
        if actor == "system" and status == "degraded" and not returned and _count(counted):
            # A breach's warning keeps its count, and the trades it was counted at (the
            # window's ``seen``): started over, a losing strategy was suspended a whole
            # window later than without the restart.
            state.violations = counted
            if back is not None:
                state.counted_at = back
        state.probation_from = None
        if returned and actor == "system" and status == "degraded" and back is not None:
            # An automatic probation journaled with where it began (since 2026-12-07):
            # judged on its new trades alone again, a breach suspending at once.
            state.probation_from = back
        state.suspended_at_ms = ts_ms if status == "suspended" else None
        state.paper_judged, state.paper_verdict = (0.0, 0.0), None
        state.status = cast(Status, status)
        state.since_ms = ts_ms
        state.reason = reason
        state.actor = actor

    # ------------------------------------------------------------------ reading

    def health(self, strategy: str | None = None) -> list[dict[str, Any]]:
        """Rows of ``get_health``: one strategy (a default row if never seen) or all."""
        names = [strategy] if strategy is not None else sorted(self.states)
        rows = []
        for name in names:
            # A name the daemon serves without a trade (scored only): active, untracked.
            state = self.states.get(name) or HealthState(reason="no trade recorded yet")
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
            "strategies": {
                name: msgspec.to_builtins(state) for name, state in sorted(self.states.items())
            },
        }

    def snapshot_state(self) -> dict[str, Any]:
        """``to_state`` with each record as it is (a struct, encoded to the same msgpack),
        for encoding at once: not copied into plain data first (a third of the time)."""
        return {"enabled": self.enabled, "strategies": dict(sorted(self.states.items()))}

    @classmethod
    def from_state(
        cls,
        config: LifecycleConfig,
        strategies: Mapping[str, StrategyConfig],
        state: Mapping[str, Any],
        overrides: Mapping[str, LifecycleConfig] | None = None,
    ) -> LifecycleModel:
        """Rebuild from ``to_state``; the config's thresholds and limits apply from now on."""
        model = cls(config, strategies, overrides)
        model.enabled = bool(state.get("enabled", True))
        for name, saved in state.get("strategies", {}).items():
            model.states[name] = msgspec.convert(saved, HealthState)
        return model


def _count(value: Any) -> TypeGuard[int]:
    """A journaled count: an int, not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def _pace_ms(now_ms: int, first_ms: int, seen: int) -> float | None:
    """The time a trade took, from when the strategy was first seen to ``now_ms``, over
    the trades it made; None when the clock is behind when it was first seen (set back
    since, by an operator or NTP): the pace is not known, and the suspension ends on the
    clock of before (``LEGACY_PROBATION_HOURS``), not at once (a pace of 1 ms a trade
    ended a suspension at the next cycle)."""
    if now_ms < first_ms:
        return None
    return max(now_ms - first_ms, 1) / max(seen, 1)
