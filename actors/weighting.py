"""Adaptive weighting: strategy weights that follow recent performance, slowly and in bounds.

Each update scores every strategy with enough recent trades on scale-free figures
(docs/optimization.md), maps the score to a target multiplier in
[min_multiplier, max_multiplier], and moves the weight toward target × base by at most
``max_change`` of its current value. Weights never leave [min, max] × base, whatever the
figures say: undefined or NaN figures count as neutral, infinite ones are clamped.

The weighting is in four parts: this model, which moves, resets, rolls back and
snapshots the weights; the score of a window and the target it sets
(actors/weighting_score.py); the configuration (actors/weighting_config.py); and the
tables, updates and rollback records it hands out (actors/weighting_tables.py).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from typing import Any

import msgspec

from alphad.actors.errors import NotFound, UnknownStrategy
from alphad.actors.events import UNKNOWN_REGIME
from alphad.actors.figures import Figures, borrowed_psr
from alphad.actors.weighting_config import StrategyConfig, WeightingConfig
from alphad.actors.weighting_score import Scoring, bounded
from alphad.actors.weighting_tables import INACTIVE, WeightsBefore, WeightTable, WeightUpdate

ROLLBACK_KEEP = 50
"""How many changes of the weights ``rollback`` can undo, newest first."""
ROLLBACK_WEIGHTS = 200_000
"""At most this many weights kept over those changes (the oldest changes go first)."""
WEIGHTING_STATE_VERSION = 2  # 1 (no version key) kept one "previous" pair of tables


class WeightingModel(Scoring):
    """Base weights from config, adaptive weights globally and per regime.

    Invariant: every adaptive weight is finite and within
    [min_multiplier, max_multiplier] × its base weight.
    """

    def __init__(self, config: WeightingConfig, strategies: Mapping[str, StrategyConfig]) -> None:
        self.config = config
        self.configured = dict(strategies)
        self.base: dict[str, float] = {
            n: s.base_weight if s.base_weight is not None else config.default_base_weight
            for n, s in sorted(strategies.items())
        }
        self.adaptive: dict[str, float] = dict(self.base)
        # regime -> strategy -> adaptive weight; a strategy missing from a regime's table
        # uses its global weight there.
        self.regime_adaptive: dict[str, dict[str, float]] = {}
        # Off-switch: while frozen, update() changes nothing; reset and rollback still work.
        self.frozen = False
        # The weights before each of the last changes that moved any, oldest first, and
        # the cycle whose update made the tables as they stand.
        self.rollbacks: list[WeightsBefore] = []
        self.tables_cycle = 0
        # Why changes made before this start cannot be undone (``drop_history``).
        self.history_lost: str | None = None
        # The strategy's trade count (``Figures.seen``) when each weight was last judged
        # ("regime|strategy" -> seen).
        self.judged_at: dict[str, int] = {}
        # Per table (None: global), the figures each weight was last considered on.
        # Figures are shared and never modified: the same object is no new evidence, so
        # a cycle passes it by without looking up when it was judged.
        self._considered: dict[str | None, dict[str, Figures]] = {}

    # ------------------------------------------------------------------ strategies

    def ensure_registered(self, strategy: str) -> bool:
        """Register a strategy first seen in a request at ``default_base_weight``.

        Returns True if it is new. Raises ``UnknownStrategy`` when it is
        not configured and ``auto_register`` is off.
        """
        if strategy in self.base:
            return False
        if not self.config.auto_register:
            raise UnknownStrategy(f"strategy {strategy!r} is not configured (auto_register off)")
        self.base[strategy] = self.config.default_base_weight
        self.adaptive[strategy] = self.config.default_base_weight
        return True

    def strategies(self) -> list[str]:
        """Every registered strategy, sorted."""
        return sorted(self.base)

    def regimes(self) -> list[str]:
        """Every regime that has its own weight table, sorted."""
        return sorted(self.regime_adaptive)

    # ------------------------------------------------------------------ bounds

    def _bounds(self, strategy: str) -> tuple[float, float]:
        base = self.base[strategy]
        return self.config.min_multiplier * base, self.config.max_multiplier * base

    def _within(self, strategy: str, weight: float) -> float:
        """``weight`` within the strategy's bounds; NaN becomes its base weight."""
        low, high = self._bounds(strategy)
        return bounded(weight, low, high, nan=self.base[strategy])

    def _step(self, strategy: str, current: float, target: float) -> tuple[float, bool]:
        """The next weight toward target × base, and whether ``max_change`` held it back."""
        low, high = self._bounds(strategy)
        wanted = bounded(target * self.base[strategy], low, high, nan=current)
        limit = self.config.max_change * current
        move = wanted - current
        capped = abs(move) > limit
        new = current + bounded(move, -limit, limit)
        # current and wanted are both in bounds, so this clamp only absorbs rounding; it
        # also keeps the invariant should a weight ever be out of bounds.
        return bounded(new, low, high, nan=current), capped

    # ------------------------------------------------------------------ the update

    def update(
        self,
        recent: Mapping[str, Figures],
        regime_recent: Mapping[str, Mapping[str, Figures]],
        reason: str = "cycle",
        cycle: int | None = None,
    ) -> list[WeightUpdate]:
        """One update of the global table and of each given regime's table.

        ``recent``: strategy → recent-window figures; ``regime_recent``: regime →
        strategy → recent figures of that strategy's trades in that regime. Strategies
        that are not registered, or have fewer than ``min_trades`` trades, keep their
        weight. Returns one ``WeightUpdate`` per weight that moved; an update that moved
        any is what the next ``rollback`` undoes, and its tables are ``cycle``'s (by
        default the one after the last).
        """
        if self.frozen:
            return []
        before_global = dict(self.adaptive)
        before_regimes = {r: dict(t) for r, t in self.regime_adaptive.items()}
        updates = self._update_table(self.adaptive, recent, None, reason)
        for regime in sorted(regime_recent):
            if regime == UNKNOWN_REGIME:
                # Trades without a regime: the global table judges them, and a signal
                # without one is sized by it; a table of its own repeated every change.
                continue
            table = regime_recent[regime]
            weights = self.regime_adaptive.get(regime, {})
            for strategy in sorted(table):
                if (
                    strategy in self.base
                    and strategy not in weights
                    and table[strategy].trades >= self.config.min_trades
                ):
                    # A regime's weight starts where the regime table showed it until now
                    # (the global weight before this update), so its first step is also
                    # at most max_change.
                    weights[strategy] = before_global[strategy]
            if weights:
                self.regime_adaptive[regime] = weights
                updates += self._update_table(weights, table, regime, reason)
        if updates:
            self._remember(before_global, before_regimes)
            self.tables_cycle = cycle if cycle is not None else self.tables_cycle + 1
        return updates

    def _remember(
        self, before_global: dict[str, float], before_regimes: dict[str, dict[str, float]]
    ) -> None:
        """Keep the weights a change moved as they were before it (``rollbacks``)."""
        moved: list[tuple[str | None, str, float | None]] = [
            (None, name, weight)
            for name, weight in before_global.items()
            if self.adaptive.get(name) != weight
        ]
        for regime in sorted(set(before_regimes) | set(self.regime_adaptive)):
            then = before_regimes.get(regime, {})
            now = self.regime_adaptive.get(regime, {})
            moved += [
                (regime, n, then.get(n))
                for n in sorted(set(then) | set(now))
                if then.get(n) != now.get(n)
            ]
        if not moved:
            return
        self.rollbacks.append(WeightsBefore(self.tables_cycle, moved))
        del self.rollbacks[:-ROLLBACK_KEEP]
        while (
            len(self.rollbacks) > 1
            and sum(len(r.weights) for r in self.rollbacks) > ROLLBACK_WEIGHTS
        ):
            del self.rollbacks[0]

    def _update_table(
        self,
        weights: dict[str, float],
        recent: Mapping[str, Figures],
        regime: str | None,
        reason: str,
    ) -> list[WeightUpdate]:
        updates = []
        considered = self._considered.setdefault(regime, {})
        # The pooled prior, computed once a short window needs it (most cycles none does).
        prior: tuple[float, float] | None = None
        prior_asked = not self.config.borrow_strength
        for strategy in sorted(recent):
            figures = recent[strategy]
            if strategy not in weights or considered.get(strategy) is figures:
                continue
            short = figures.trades < self.config.min_trades
            if short:
                if figures.trades < 3:
                    continue
                if not prior_asked:
                    prior, prior_asked = self.pooled_prior(recent), True
                if prior is None:
                    continue
            considered[strategy] = figures
            # A weight moves only on new evidence: once step_share of its window is trades
            # made since it was last judged. Cycles in between would step again on much
            # the same trades.
            key = _judged_key(regime, strategy)
            last = self.judged_at.get(key)
            if last is not None and figures.seen - last < self.config.step_share * figures.trades:
                continue
            self.judged_at[key] = figures.seen
            score, metrics = self.score(figures)
            if short and prior is not None:
                borrowed = borrowed_psr(figures, prior)
                metrics["borrowed_psr"] = borrowed
                metrics["pooled_sharpe"], metrics["pooled_worth"] = prior
                judged = msgspec.structs.replace(figures, judged_psr=borrowed)
            else:
                judged = figures
            target = self.evidenced_target(score, judged)
            old = weights[strategy]
            new, capped = self._step(strategy, old, target)
            if new == old:
                continue
            weights[strategy] = new
            metrics["target"] = target
            # For a start that applies the change again (apply_journaled): the trades it
            # was judged at, and the base it is a multiple of.
            metrics["seen"], metrics["base"] = figures.seen, self.base[strategy]
            held = f", step held to {self.config.max_change:.0%}" if capped else ""
            psr = "-" if judged.judged_psr is None else f"{judged.judged_psr:.2f}"
            pooled = ", borrowing from the other strategies" if judged is not figures else ""
            why = f"score {score:+.2f}, PSR {psr}{pooled}, target {target:.2f} × base{held}"
            updates.append(
                WeightUpdate(
                    strategy=strategy,
                    regime=regime,
                    old=old,
                    new=new,
                    target=target,
                    reason=f"{reason}: {why}",
                    metrics=metrics,
                )
            )
        return updates

    # ------------------------------------------------------------------ operator actions

    def reset(self, reason: str) -> list[WeightUpdate]:
        """Every adaptive weight, global and per regime, back to base; a reset that moved
        any is what the next ``rollback`` undoes."""
        before_global = dict(self.adaptive)
        before_regimes = {r: dict(t) for r, t in self.regime_adaptive.items()}
        updates = self._restore(dict(self.base), {}, reason)
        # Regime tables are kept, at base, so every regime still has its table.
        self.regime_adaptive = {
            regime: {s: self.base[s] for s in table}
            for regime, table in self.regime_adaptive.items()
        }
        if updates:
            self._remember(before_global, before_regimes)
        return updates

    def rollback(self, reason: str) -> list[WeightUpdate]:
        """Undo the last change that moved a weight (an update or a reset); [] when there
        is none left (``roll_back`` says which cycle's weights it restored)."""
        if not self.rollbacks:
            return []
        return self.roll_back(reason)[0]

    def roll_back(
        self, reason: str, to_cycle: int | None = None
    ) -> tuple[list[WeightUpdate], int | None]:
        """Undo the last change that moved a weight, or every change after cycle
        ``to_cycle``; returns the weights that moved and the cycle whose weights are
        restored. ``NotFound`` when there is nothing to undo, or
        ``to_cycle`` is older than the history kept (``ROLLBACK_KEEP`` changes)."""
        history = self.rollbacks
        if not history:
            lost = f" ({self.history_lost})" if self.history_lost else ""
            raise NotFound(f"no change of the weights to undo{lost}")
        if to_cycle is None:
            start = len(history) - 1
        else:
            if to_cycle >= self.tables_cycle:
                raise NotFound(
                    f"the weights have not changed since cycle {to_cycle}"
                    f" (they are cycle {self.tables_cycle}'s)",
                )
            older = [
                i for i, r in enumerate(history) if r.cycle is not None and r.cycle <= to_cycle
            ]
            if not older:
                kept = [r.cycle for r in history if r.cycle is not None]
                since = f"; the oldest kept is cycle {min(kept)}" if kept else ""
                raise NotFound(f"cycle {to_cycle} is not in the rollback history{since}")
            start = older[-1]
        global_table = dict(self.adaptive)
        regime_tables = {r: dict(t) for r, t in self.regime_adaptive.items()}
        for change in reversed(history[start:]):
            for regime, name, weight in change.weights:
                if regime is None:
                    if weight is not None and name in self.base:
                        global_table[name] = weight
                elif weight is None:
                    regime_tables.get(regime, {}).pop(name, None)
                else:
                    regime_tables.setdefault(regime, {})[name] = weight
        restored = history[start].cycle
        del history[start:]
        global_table = {s: global_table.get(s, self.adaptive[s]) for s in self.base}
        updates = self._restore(global_table, regime_tables, reason)
        self.regime_adaptive = {
            regime: own
            for regime, table in regime_tables.items()
            if (own := {s: self._within(s, w) for s, w in table.items() if s in self.base})
        }
        if restored is not None:
            self.tables_cycle = restored
        return updates, restored

    def _restore(
        self,
        global_table: dict[str, float],
        regime_tables: dict[str, dict[str, float]],
        reason: str,
    ) -> list[WeightUpdate]:
        """Set the global table, and report every weight a reader sees change.

        A regime's row is reported where that regime has its own weight before or after:
        elsewhere it shows the global weight, whose change has its own row.
        """
        updates = []
        for strategy in sorted(self.base):
            new = global_table[strategy] = self._within(strategy, global_table[strategy])
            if new != self.adaptive[strategy]:
                updates.append(self._change(strategy, None, self.adaptive[strategy], new, reason))
        for regime in sorted(set(self.regime_adaptive) | set(regime_tables)):
            now = self.regime_adaptive.get(regime, {})
            then = regime_tables.get(regime, {})
            for strategy in sorted((set(now) | set(then)) & set(self.base)):
                old = now.get(strategy, self.adaptive[strategy])
                new = self._within(strategy, then.get(strategy, global_table[strategy]))
                if new != old:
                    updates.append(self._change(strategy, regime, old, new, reason))
        self.adaptive = global_table
        return updates

    def forget(self, strategy: str) -> None:
        """Drop an unconfigured strategy's weights everywhere (``forget_strategy``)."""
        for table in (self.base, self.adaptive, *self.regime_adaptive.values()):
            table.pop(strategy, None)
        self.regime_adaptive = {r: t for r, t in self.regime_adaptive.items() if t}
        for key in [k for k in self.judged_at if k.partition("|")[2] == strategy]:
            del self.judged_at[key]
        for considered in self._considered.values():
            considered.pop(strategy, None)

    def drop_history(self, why: str) -> None:
        """Forget the changes ``rollback`` could undo, saying ``why`` when one is asked
        for: a start that applied journaled changes after its snapshot again has the
        snapshot's history, which ends before them (undone, it set back a change older
        than the last one and left the newer ones in place)."""
        self.rollbacks.clear()
        self.history_lost = why

    def apply_journaled(
        self,
        strategy: str,
        regime: str | None,
        weight: float,
        metrics: Mapping[str, Any] | None = None,
    ) -> None:
        """Set a weight as the audit trail recorded it (a restart from an older snapshot
        than the newest applies the journaled changes after it again), within bounds.

        A cycle's change (its ``metrics`` since 2026-12-08) keeps its multiple of the
        base it was made on, on today's base (as ``from_state`` does), and marks its
        evidence judged at the trades it was judged at: otherwise the next cycle stepped
        again on the same trades, and a changed base lost the learned multiplier."""
        if strategy not in self.base or not isinstance(weight, int | float):
            return
        if regime == UNKNOWN_REGIME:
            return  # a table of the trades without a regime, journaled before 2026-12-07
        found = metrics or {}
        then, seen = found.get("base"), found.get("seen")
        weight = float(weight)
        base = self.base[strategy]
        if isinstance(then, int | float) and not isinstance(then, bool) and 0 < then != base:
            weight = weight / then * base
        if isinstance(seen, int) and not isinstance(seen, bool):
            self.judged_at[_judged_key(regime, strategy)] = seen
        weight = self._within(strategy, weight)
        if regime is None:
            self.adaptive[strategy] = weight
        else:
            self.regime_adaptive.setdefault(regime, {})[strategy] = weight

    def _change(
        self, strategy: str, regime: str | None, old: float, new: float, reason: str
    ) -> WeightUpdate:
        """An operator's change (a reset, a rollback), with the base it is a multiple of
        (``apply_journaled``: a reset on a base changed since is back at the new base)."""
        return WeightUpdate(
            strategy=strategy,
            regime=regime,
            old=old,
            new=new,
            target=None,
            reason=reason,
            metrics={"base": self.base[strategy]},
        )

    # ------------------------------------------------------------------ reading

    def table(
        self,
        regime: str | None,
        statuses: Mapping[str, str],
        names: Collection[str] | None = None,
    ) -> WeightTable:
        """Every strategy's weights under the given statuses (missing = active), or only
        those of ``names``' (the strategies registered when a report began).

        A regime's table falls back to the global weight where the strategy has no weight
        of its own in that regime. Effective is 0 for suspended and retired strategies;
        normalized = effective / Σ effective, all 0 when nothing is effective.
        """
        own = self.regime_adaptive.get(regime, {}) if regime is not None else {}
        strategies = (
            sorted(self.base) if names is None else sorted(n for n in names if n in self.base)
        )
        adaptive = {s: own.get(s, self.adaptive[s]) for s in strategies}
        effective = {
            s: 0.0 if statuses.get(s, "active") in INACTIVE else w for s, w in adaptive.items()
        }
        total = math.fsum(effective.values())
        normalized = {s: (w / total if total > 0 else 0.0) for s, w in effective.items()}
        return WeightTable(
            regime=regime,
            base={s: self.base[s] for s in adaptive},
            adaptive=adaptive,
            effective=effective,
            normalized=normalized,
        )

    def multiplier(self, strategy: str, regime: str | None = None) -> float:
        """adaptive / base, from the regime's table when it has the strategy, else global.

        1.0 for a strategy that is not registered.
        """
        base = self.base.get(strategy)
        if base is None:
            return 1.0
        weight = self.adaptive[strategy]
        if regime is not None:
            weight = self.regime_adaptive.get(regime, {}).get(strategy, weight)
        return weight / base

    # ------------------------------------------------------------------ state

    def to_state(self) -> dict[str, Any]:
        """Plain data for a snapshot (copies: later updates do not change it)."""
        return {
            "version": WEIGHTING_STATE_VERSION,
            "base": dict(self.base),
            "adaptive": dict(self.adaptive),
            "regime_adaptive": {r: dict(t) for r, t in self.regime_adaptive.items()},
            "frozen": self.frozen,
            "judged_at": dict(self.judged_at),
            "rollbacks": msgspec.to_builtins(self.rollbacks),
            "tables_cycle": self.tables_cycle,
        }

    @classmethod
    def from_state(
        cls,
        config: WeightingConfig,
        strategies: Mapping[str, StrategyConfig],
        state: Mapping[str, Any],
    ) -> WeightingModel:
        """Rebuild from ``to_state`` under the (possibly changed) config.

        Base weights follow the config: a configured strategy's ``base_weight``, else
        ``default_base_weight``; unconfigured strategies are dropped when
        ``auto_register`` is off. Each adaptive weight keeps its multiplier (adaptive /
        base) across a change of base weight, within the current bounds; a saved value
        that is not a finite positive number falls back to base.
        """
        model = cls(config, strategies)
        saved_base: Mapping[str, Any] = state.get("base", {})
        for name in sorted(saved_base):
            if name not in model.base and config.auto_register:
                model.base[name] = model.adaptive[name] = config.default_base_weight

        def restore(table: Mapping[str, Any]) -> dict[str, float]:
            restored = {}
            for name, weight in table.items():
                if name not in model.base:
                    continue
                base = model.base[name]
                saved = _saved_weight(weight, saved_base.get(name, base), base)
                restored[name] = model._within(name, saved)
            return restored

        model.adaptive.update(restore(state.get("adaptive", {})))
        # A table of the trades without a regime, which a snapshot from before 2026-12-07
        # may hold, is dropped: the global table judges and sizes them.
        model.regime_adaptive = {
            regime: table
            for regime, saved in state.get("regime_adaptive", {}).items()
            if regime != UNKNOWN_REGIME and (table := restore(saved))
        }
        model.frozen = bool(state.get("frozen", False))
        # A snapshot from before judged_at (it kept "evidence") judges every weight anew.
        model.judged_at = {str(k): int(v) for k, v in state.get("judged_at", {}).items()}
        model.tables_cycle = int(state.get("tables_cycle", 0))
        for saved_change in state.get("rollbacks", []):
            change = msgspec.convert(saved_change, WeightsBefore)
            change.weights = [
                (regime, name, restore({name: w})[name] if w is not None else None)
                for regime, name, w in change.weights
                if name in model.base and regime != UNKNOWN_REGIME
            ]
            model.rollbacks.append(change)
        previous = state.get("previous")  # version 1: the tables before the last update
        if previous is not None:
            before = {**model.adaptive, **restore(previous[0])}
            before_regimes = {
                r: restore(t) for r, t in previous[1].items() if r != UNKNOWN_REGIME
            }
            model.tables_cycle = -1  # unknown: the old layout kept no cycle
            model._remember(before, before_regimes)
            for change in model.rollbacks:
                change.cycle = None
            model.tables_cycle = 0
        return model


def _saved_weight(weight: Any, saved_base: Any, base: float) -> float:
    """A saved weight under the current base: the same multiplier, NaN when unusable."""
    try:
        weight, saved_base = float(weight), float(saved_base)
    except (TypeError, ValueError):
        return math.nan
    if not (math.isfinite(weight) and math.isfinite(saved_base)):
        return math.nan
    if weight <= 0 or saved_base <= 0:
        return math.nan
    # Unchanged base: the exact saved value, so a restart changes no digit.
    return weight if saved_base == base else base * (weight / saved_base)


def _judged_key(regime: str | None, strategy: str) -> str:
    """A weight's key in ``judged_at``: ``regime|strategy``, ``|strategy`` for the global
    table (``forget`` finds a strategy's by what follows the bar)."""
    return f"{regime or ''}|{strategy}"
