"""Adaptive weighting: strategy weights that follow recent performance, slowly and in bounds.

Each update scores every strategy with enough recent trades on scale-free figures
(docs/optimization.md), maps the score to a target multiplier in
[min_multiplier, max_multiplier], and moves the weight toward target × base by at most
``max_change`` of its current value. Weights never leave [min, max] × base, whatever the
figures say: undefined or NaN figures count as neutral, infinite ones are clamped.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from alphad.actors.errors import NotFound, UnknownStrategy
from alphad.actors.figures import Figures
from alphad.protocol.messages import Name, Weights

INACTIVE = frozenset(("suspended", "retired"))
"""Statuses whose effective weight is 0."""

# Upper bounds keep infinities out of the config (msgspec lets inf pass a bare ``gt=0``).
BaseWeight = Annotated[float, Meta(gt=0.0, le=1000.0)]
Reference = Annotated[float, Meta(gt=0.0, le=1e6)]
TermWeight = Annotated[float, Meta(ge=0.0, le=100.0)]
DrawdownLimit = Annotated[float, Meta(gt=0.0, le=1e15)]


def _check_drawdowns(soft: float | None, hard: float | None) -> None:
    if soft is not None and hard is not None and soft > hard:
        raise ValueError(f"soft_drawdown {soft:g} is over hard_drawdown {hard:g}")


class RegimeLimits(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """``[strategies.NAME.regimes.REGIME]``: the lifecycle's thresholds for one strategy's
    trades in one regime (``[lifecycle] per_regime``); each unset key is ``[lifecycle]``'s
    (``regime_min_trades`` for ``min_trades``)."""

    min_trades: Annotated[int, Meta(ge=1, le=100_000)] | None = None
    win_rate_floor: Annotated[float, Meta(ge=0.0, le=1.0)] | None = None
    psr_floor: Annotated[float, Meta(ge=0.0, le=1.0)] | None = None
    soft_drawdown: DrawdownLimit | None = None
    hard_drawdown: DrawdownLimit | None = None

    def __post_init__(self) -> None:
        _check_drawdowns(self.soft_drawdown, self.hard_drawdown)


class StrategyConfig(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """``[strategies.NAME]``: a configured strategy."""

    base_weight: BaseWeight = 1.0
    # Absolute drawdown limits in pnl units, used by the lifecycle; without them its
    # relative limits (in average trades) apply.
    soft_drawdown: DrawdownLimit | None = None
    hard_drawdown: DrawdownLimit | None = None
    # Thresholds of the per-regime lifecycle, by regime.
    regimes: dict[Name, RegimeLimits] = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_drawdowns(self.soft_drawdown, self.hard_drawdown)


class WeightingConfig(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """``[weighting]``: registration, bounds and the composite score (docs/optimization.md)."""

    default_base_weight: BaseWeight = 1.0
    auto_register: bool = True
    min_trades: Annotated[int, Meta(ge=1, le=100_000)] = 20
    min_multiplier: Annotated[float, Meta(gt=0.0, le=1.0)] = 0.1
    # 1.0: alphad sizes a strategy down, never up (more size raises drawdown; docs/replay.md).
    max_multiplier: Annotated[float, Meta(ge=1.0, le=10.0)] = 1.0
    max_change: Annotated[float, Meta(gt=0.0, le=1.0)] = 0.15
    # A weight is judged again (and may move by max_change) only once this share of its
    # recent window is trades made since it was last judged: max_change is a limit per
    # renewal of the evidence, not per cycle or per trade.
    step_share: Annotated[float, Meta(gt=0.0, le=1.0)] = 0.5
    # A weight leaves base only on significant evidence: its target is the score's below
    # base only when the window's PSR (the probability that the true per-trade Sharpe is
    # above 0) is below this level, above base only when the PSR is above 1 - this level;
    # otherwise the target is base. 0.5 lets the score's sign alone decide.
    significance: Annotated[float, Meta(gt=0.0, le=0.5)] = 0.1
    # A strategy with fewer than min_trades trades (at least 3) borrows strength from the
    # strategies that have min_trades: its per-trade Sharpe is shrunk toward theirs
    # (empirical Bayes, the pool worth at most min_trades trades) and its weight is judged
    # on that posterior. False: such a strategy keeps its weight until min_trades.
    borrow_strength: bool = True
    # Edge terms, each scaled so that its reference value scores +1 (clamped to [-1, 1]).
    sharpe_reference: Reference = 0.3  # per-trade Sharpe
    expectancy_reference: Reference = 0.3  # expectancy / mean |pnl|
    # Profit factor on a log scale, so that 2.0 scores +1 and 0.5 scores -1.
    profit_factor_reference: Annotated[float, Meta(gt=1.0, le=1e6)] = 2.0
    sharpe_weight: TermWeight = 0.4
    expectancy_weight: TermWeight = 0.3
    profit_factor_weight: TermWeight = 0.3
    # Drawdown is a penalty only (a small drawdown earns nothing): drawdown_weight at a
    # max drawdown of drawdown_reference average trades or more.
    drawdown_reference: Reference = 20.0
    drawdown_weight: Annotated[float, Meta(ge=0.0, le=2.0)] = 0.25


class WeightUpdate(msgspec.Struct, kw_only=True):
    """One weight that moved, with what drove it (journaled as an audit entry)."""

    strategy: str
    regime: str | None  # None: the global table
    old: float
    new: float
    target: float | None  # target multiplier of an update; None for a reset or rollback
    reason: str
    metrics: dict[str, Any] = msgspec.field(default_factory=dict)


class WeightTable(msgspec.Struct, kw_only=True):
    """Weights of every strategy, globally (``regime`` None) or for one regime."""

    regime: str | None
    base: dict[str, float]
    adaptive: dict[str, float]
    effective: dict[str, float]
    normalized: dict[str, float]

    def reply(self, frozen: bool) -> Weights:
        """The ``weights`` reply showing this table."""
        return Weights(
            regime=self.regime,
            base=self.base,
            adaptive=self.adaptive,
            effective=self.effective,
            normalized=self.normalized,
            frozen=frozen,
        )


def _bounded(value: float, low: float = -1.0, high: float = 1.0, nan: float = 0.0) -> float:
    """``value`` clamped to [low, high]; NaN becomes ``nan`` (neutral unless told)."""
    if math.isnan(value):
        return nan
    return low if value < low else high if value > high else value


def _finite_or_none(value: float | None) -> float | None:
    """For metrics that are journaled as JSON: no NaN or infinity."""
    return value if value is not None and math.isfinite(value) else None


def pnl_scale(figures: Figures) -> float:
    """The window's average trade size, mean |pnl|; 0.0 when every trade broke even.

    Figures from the performance actor always carry ``mean_abs_pnl``. The fallbacks are
    lower bounds of it, so figures built without it still get a scale rather than
    letting a drawdown or an expectancy pass unscaled.
    """
    candidates = [figures.mean_abs_pnl, abs(figures.expectancy)]
    if figures.trades > 0:
        candidates.append((figures.gross_profit + figures.gross_loss) / figures.trades)
    scale = max((c for c in candidates if math.isfinite(c) and c > 0.0), default=0.0)
    # The wire refuses |pnl| above 1e15; the cap keeps limits derived from it finite.
    return min(scale, MAX_PNL_SCALE)


MAX_PNL_SCALE = 1e15

ROLLBACK_KEEP = 50
"""How many changes of the weights ``rollback`` can undo, newest first."""
ROLLBACK_WEIGHTS = 200_000
"""At most this many weights kept over those changes (the oldest changes go first)."""
WEIGHTING_STATE_VERSION = 2  # 1 (no version key) kept one "previous" pair of tables


class WeightsBefore(msgspec.Struct, array_like=True):
    """The weights one change moved, as they were before it; a rollback sets them back.

    ``cycle`` is the cycle whose weights they were (after it and any operator change
    before the next cycle); None when read from a snapshot older than the history.
    Each weight is (regime or None for the global table, strategy, weight), the weight
    None where the regime had no weight of its own for the strategy.
    """

    cycle: int | None
    weights: list[tuple[str | None, str, float | None]]


class WeightingModel:
    """Base weights from config, adaptive weights globally and per regime.

    Invariant: every adaptive weight is finite and within
    [min_multiplier, max_multiplier] × its base weight.
    """

    def __init__(self, config: WeightingConfig, strategies: Mapping[str, StrategyConfig]) -> None:
        self.config = config
        self.configured = dict(strategies)
        self.base: dict[str, float] = {n: s.base_weight for n, s in sorted(strategies.items())}
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

    # ------------------------------------------------------------------ the score

    def score(self, figures: Figures) -> tuple[float, dict[str, Any]]:
        """The composite score in [-1, 1] of one recent window, and the terms behind it.

        Every term is scale-free, so strategies that trade different sizes compare.
        """
        cfg = self.config
        scale = pnl_scale(figures)
        sharpe = figures.sharpe
        sharpe_term = _bounded(sharpe / cfg.sharpe_reference) if sharpe is not None else 0.0
        expectancy_units = figures.expectancy / scale if scale > 0 else 0.0
        expectancy_term = _bounded(expectancy_units / cfg.expectancy_reference)
        profit_factor = figures.profit_factor
        if profit_factor is None:
            # No losing trade: as good as a profit factor gets; no trade either way: neutral.
            profit_factor_term = 1.0 if figures.profit_factor_infinite else 0.0
        elif math.isnan(profit_factor):
            profit_factor_term = 0.0
        elif profit_factor <= 0.0:
            profit_factor_term = -1.0
        else:
            profit_factor_term = _bounded(
                math.log(profit_factor) / math.log(cfg.profit_factor_reference)
            )
        drawdown_units = figures.max_drawdown / scale if scale > 0 else 0.0
        drawdown_penalty = _bounded(drawdown_units / cfg.drawdown_reference, 0.0, 1.0)
        edge_weight = cfg.sharpe_weight + cfg.expectancy_weight + cfg.profit_factor_weight
        edge = (
            (
                cfg.sharpe_weight * sharpe_term
                + cfg.expectancy_weight * expectancy_term
                + cfg.profit_factor_weight * profit_factor_term
            )
            / edge_weight
            if edge_weight > 0
            else 0.0
        )
        score = _bounded(edge - cfg.drawdown_weight * drawdown_penalty)
        metrics: dict[str, Any] = {
            "trades": figures.trades,
            "expectancy": _finite_or_none(figures.expectancy),
            "profit_factor": _finite_or_none(profit_factor),
            "profit_factor_infinite": figures.profit_factor_infinite,
            "sharpe": _finite_or_none(sharpe),
            "max_drawdown": _finite_or_none(figures.max_drawdown),
            "psr": _finite_or_none(figures.psr),
            "judged_psr": _finite_or_none(figures.judged_psr),
            "mean_abs_pnl": scale,
            "terms": {
                "sharpe": sharpe_term,
                "expectancy": expectancy_term,
                "profit_factor": profit_factor_term,
                "drawdown_penalty": drawdown_penalty,
            },
            "score": score,
        }
        return score, metrics

    def target_multiplier(self, score: float) -> float:
        """Score -1 → ``min_multiplier``, 0 → 1.0, +1 → ``max_multiplier``, linear between."""
        cfg = self.config
        score = _bounded(score)
        if score >= 0:
            return 1.0 + score * (cfg.max_multiplier - 1.0)
        return 1.0 + score * (1.0 - cfg.min_multiplier)

    def evidenced_target(self, score: float, figures: Figures) -> float:
        """The target multiplier of a window's score where the window's judged PSR
        (``Figures.judged_psr``) makes its sign significant at ``significance``; 1.0
        (base) where it does not.

        A per-trade Sharpe of 0.1 and one of 0 cannot be told apart on 100 trades: acting on
        the score of such a window sizes a good strategy down on noise. A score against the
        significant sign (a penalty outweighing a significant edge) targets base as well.
        Without a PSR, a window of at least three trades has no spread to be unsure about
        (every trade alike) and its score decides; a shorter one is no evidence.
        """
        psr = figures.judged_psr
        if psr is None:
            return self.target_multiplier(score) if figures.trades >= 3 else 1.0
        level = self.config.significance
        if psr < level:
            return self.target_multiplier(min(score, 0.0))
        if psr > 1.0 - level:
            return self.target_multiplier(max(score, 0.0))
        return 1.0  # also a NaN PSR

    def pooled_prior(self, recent: Mapping[str, Figures]) -> tuple[float, float] | None:
        """The prior of a short history's per-trade Sharpe ratio, from the strategies of
        ``recent`` with at least ``min_trades`` trades: (their mean Sharpe ratio, weighted
        by trades; its worth in trades). The worth is 1 / τ², τ² the spread of the true
        Sharpe ratios between strategies (their observed variance less the sampling
        variance 1 / n of each), at most ``min_trades``: the pool never outweighs a full
        window of the strategy's own. None with fewer than two such strategies."""
        cfg = self.config
        # A per-trade Sharpe ratio beyond ±10 says no more than 10 does (and must not
        # overflow the spread).
        judged = [
            (f.trades, _bounded(f.sharpe, -10.0, 10.0))
            for f in recent.values()
            if f.trades >= cfg.min_trades and f.sharpe is not None and math.isfinite(f.sharpe)
        ]
        if len(judged) < 2:
            return None
        weight = sum(n for n, _ in judged)
        mean = sum(n * sr for n, sr in judged) / weight
        plain = sum(sr for _, sr in judged) / len(judged)
        spread = sum((sr - plain) ** 2 for _, sr in judged) / (len(judged) - 1)
        between = spread - sum(1.0 / n for n, _ in judged) / len(judged)
        worth = float(cfg.min_trades) if between <= 1.0 / cfg.min_trades else 1.0 / between
        return mean, worth

    def borrowed_psr(self, figures: Figures, prior: tuple[float, float]) -> float | None:
        """P(true per-trade Sharpe > 0) for a short history under the pooled ``prior``:
        Φ(posterior mean × √(n + worth)), the posterior of a normal prior and the
        window's Sharpe ratio with its sampling variance 1 / n."""
        sharpe = figures.sharpe
        n = figures.trades
        if sharpe is None or not math.isfinite(sharpe) or n < 3:
            return None
        sharpe = _bounded(sharpe, -10.0, 10.0)
        mean, worth = prior
        precision = n + worth
        posterior = (n * sharpe + worth * mean) / precision
        return 0.5 * math.erfc(-posterior * math.sqrt(precision) / math.sqrt(2.0))

    def _bounds(self, strategy: str) -> tuple[float, float]:
        base = self.base[strategy]
        return self.config.min_multiplier * base, self.config.max_multiplier * base

    def _within(self, strategy: str, weight: float) -> float:
        """``weight`` within the strategy's bounds; NaN becomes its base weight."""
        low, high = self._bounds(strategy)
        return _bounded(weight, low, high, nan=self.base[strategy])

    def _step(self, strategy: str, current: float, target: float) -> tuple[float, bool]:
        """The next weight toward target × base, and whether ``max_change`` held it back."""
        low, high = self._bounds(strategy)
        wanted = _bounded(target * self.base[strategy], low, high, nan=current)
        limit = self.config.max_change * current
        move = wanted - current
        capped = abs(move) > limit
        new = current + _bounded(move, -limit, limit)
        # current and wanted are both in bounds, so this clamp only absorbs rounding; it
        # also keeps the invariant should a weight ever be out of bounds.
        return _bounded(new, low, high, nan=current), capped

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
            key = f"{regime or ''}|{strategy}"
            last = self.judged_at.get(key)
            if last is not None and figures.seen - last < self.config.step_share * figures.trades:
                continue
            self.judged_at[key] = figures.seen
            score, metrics = self.score(figures)
            if short and prior is not None:
                borrowed = self.borrowed_psr(figures, prior)
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
            raise NotFound("no change of the weights to undo")
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

    def apply_journaled(self, strategy: str, regime: str | None, weight: float) -> None:
        """Set a weight as the audit trail recorded it (a restart from an older snapshot
        than the newest applies the journaled changes after it again), within bounds."""
        if strategy not in self.base or not isinstance(weight, int | float):
            return
        weight = self._within(strategy, float(weight))
        if regime is None:
            self.adaptive[strategy] = weight
        else:
            self.regime_adaptive.setdefault(regime, {})[strategy] = weight

    @staticmethod
    def _change(
        strategy: str, regime: str | None, old: float, new: float, reason: str
    ) -> WeightUpdate:
        return WeightUpdate(
            strategy=strategy, regime=regime, old=old, new=new, target=None, reason=reason
        )

    # ------------------------------------------------------------------ reading

    def table(self, regime: str | None, statuses: Mapping[str, str]) -> WeightTable:
        """Every strategy's weights under the given statuses (missing = active).

        A regime's table falls back to the global weight where the strategy has no weight
        of its own in that regime. Effective is 0 for suspended and retired strategies;
        normalized = effective / Σ effective, all 0 when nothing is effective.
        """
        own = self.regime_adaptive.get(regime, {}) if regime is not None else {}
        adaptive = {s: own.get(s, self.adaptive[s]) for s in sorted(self.base)}
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
        model.regime_adaptive = {
            regime: table
            for regime, saved in state.get("regime_adaptive", {}).items()
            if (table := restore(saved))
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
                if name in model.base
            ]
            model.rollbacks.append(change)
        previous = state.get("previous")  # version 1: the tables before the last update
        if previous is not None:
            before = {**model.adaptive, **restore(previous[0])}
            before_regimes = {r: restore(t) for r, t in previous[1].items()}
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
