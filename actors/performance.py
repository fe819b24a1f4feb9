"""Performance decomposition: every figure of docs/metrics.md for any grouping of trades.

Each closed trade updates seven groups (every non-empty subset of strategy, symbol,
regime). A group keeps running sums and central moments up to the fourth (updated
with the numerically stable one-pass formulas of Welford and Terriberry) for the
``all`` window, and a fixed-size ring of the last ``window_trades`` pnls for the
``recent`` window, so the work per trade does not grow with history.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable, Sequence
from itertools import combinations
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from actors.base import TAKE_STATE, Actor
from actors.events import ClosedTrade
from actors.figures import Figures
from protocol.messages import GetPerformance, Performance

DIMENSIONS: tuple[str, ...] = ("strategy", "symbol", "regime")
GROUPINGS: tuple[tuple[str, ...], ...] = tuple(
    combo for size in (1, 2, 3) for combo in combinations(DIMENSIONS, size)
)
WINDOWS = ("all", "recent")
METRICS = tuple(f for f in Figures.__struct_fields__ if f != "mean_abs_pnl")

# A standard deviation below this fraction of the pnls' scale is rounding noise:
# identical pnls must give "no Sharpe", not a huge number.
_RELATIVE_STD_FLOOR = 1e-12


class PerformanceConfig(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """``[performance]``: the size of every group's recent window."""

    window_trades: Annotated[int, Meta(ge=2, le=100_000)] = 100


class RunningStats:
    """All-window figures of one group, updated in O(1) per trade."""

    __slots__ = (
        "abs_sum",
        "cum",
        "gross_loss",
        "gross_profit",
        "losses",
        "m2",
        "m3",
        "m4",
        "max_dd",
        "mean",
        "n",
        "neg_sq",
        "peak",
        "total",
        "wins",
    )

    def __init__(self) -> None:
        self.n = 0
        self.wins = 0
        self.losses = 0
        self.total = 0.0
        self.gross_profit = 0.0
        self.gross_loss = 0.0
        self.abs_sum = 0.0
        self.neg_sq = 0.0
        self.mean = 0.0
        self.m2 = 0.0
        self.m3 = 0.0
        self.m4 = 0.0
        self.cum = 0.0
        self.peak = 0.0
        self.max_dd = 0.0

    def add(self, pnl: float) -> None:
        n1 = self.n
        n = n1 + 1
        delta = pnl - self.mean
        delta_n = delta / n
        delta_n2 = delta_n * delta_n
        term1 = delta * delta_n * n1
        self.mean += delta_n
        self.m4 += (
            term1 * delta_n2 * (n * n - 3 * n + 3) + 6 * delta_n2 * self.m2 - 4 * delta_n * self.m3
        )
        self.m3 += term1 * delta_n * (n - 2) - 3 * delta_n * self.m2
        self.m2 += term1
        self.n = n
        self.total += pnl
        self.abs_sum += abs(pnl)
        if pnl > 0:
            self.wins += 1
            self.gross_profit += pnl
        elif pnl < 0:
            self.losses += 1
            self.gross_loss -= pnl
            self.neg_sq += pnl * pnl
        self.cum += pnl
        if self.cum > self.peak:
            self.peak = self.cum
        drawdown = self.peak - self.cum
        if drawdown > self.max_dd:
            self.max_dd = drawdown

    def figures(self) -> Figures:
        n = self.n
        if n == 0:
            return Figures()
        variance = self.m2 / (n - 1) if n > 1 else 0.0
        std = math.sqrt(max(variance, 0.0))
        pop_var = self.m2 / n
        skew = kurt = None
        if pop_var > 0:
            skew = (self.m3 / n) / pop_var**1.5
            kurt = (self.m4 / n) / (pop_var * pop_var)
        return _assemble(
            n=n,
            wins=self.wins,
            losses=self.losses,
            total=self.total,
            gross_profit=self.gross_profit,
            gross_loss=self.gross_loss,
            neg_sq=self.neg_sq,
            mean=self.total / n,
            std=std,
            skew=skew,
            kurt=kurt,
            max_dd=self.max_dd,
            current_dd=self.peak - self.cum,
            mean_abs=self.abs_sum / n,
        )

    def to_state(self) -> list[float]:
        return [getattr(self, name) for name in self.__slots__]

    @classmethod
    def from_state(cls, values: Sequence[float]) -> RunningStats:
        stats = cls()
        for name, value in zip(cls.__slots__, values, strict=True):
            setattr(stats, name, int(value) if name in ("n", "wins", "losses") else value)
        return stats


class Ring:
    """The last ``size`` pnls of a group, oldest first, in a preallocated array."""

    __slots__ = ("count", "size", "start", "values")

    def __init__(self, size: int) -> None:
        self.size = size
        self.values = array("d", bytes(8 * size))
        self.start = 0
        self.count = 0

    def add(self, pnl: float) -> None:
        if self.count < self.size:
            self.values[(self.start + self.count) % self.size] = pnl
            self.count += 1
        else:
            self.values[self.start] = pnl
            self.start = (self.start + 1) % self.size

    def items(self) -> list[float]:
        end = self.start + self.count
        if end <= self.size:
            return self.values[self.start : end].tolist()
        return self.values[self.start :].tolist() + self.values[: end - self.size].tolist()


class Group:
    """One group of trades: running all-window stats and the recent ring."""

    __slots__ = ("_recent", "ring", "stats")

    def __init__(self, window: int) -> None:
        self.stats = RunningStats()
        self.ring = Ring(window)
        self._recent: Figures | None = None

    def add(self, pnl: float) -> None:
        self.stats.add(pnl)
        self.ring.add(pnl)
        self._recent = None

    def figures(self, window: str) -> Figures:
        if window == "all":
            return self.stats.figures()
        if window != "recent":
            raise ValueError(f"unknown window {window!r}")
        if self._recent is None:
            self._recent = figures_of(self.ring.items())
        return self._recent


def figures_of(pnls: Sequence[float]) -> Figures:
    """Every figure of a list of pnls, computed directly (used for recent windows)."""
    n = len(pnls)
    if n == 0:
        return Figures()
    total = math.fsum(pnls)
    mean = total / n
    wins = losses = 0
    gross_profit = gross_loss = neg_sq = abs_sum = 0.0
    cum = peak = max_dd = 0.0
    m2 = m3 = m4 = 0.0
    for pnl in pnls:
        if pnl > 0:
            wins += 1
            gross_profit += pnl
        elif pnl < 0:
            losses += 1
            gross_loss -= pnl
            neg_sq += pnl * pnl
        abs_sum += abs(pnl)
        d = pnl - mean
        d2 = d * d
        m2 += d2
        m3 += d2 * d
        m4 += d2 * d2
        cum += pnl
        if cum > peak:
            peak = cum
        if peak - cum > max_dd:
            max_dd = peak - cum
    std = math.sqrt(m2 / (n - 1)) if n > 1 else 0.0
    pop_var = m2 / n
    skew = kurt = None
    if pop_var > 0:
        skew = (m3 / n) / pop_var**1.5
        kurt = (m4 / n) / (pop_var * pop_var)
    return _assemble(
        n=n,
        wins=wins,
        losses=losses,
        total=total,
        gross_profit=gross_profit,
        gross_loss=gross_loss,
        neg_sq=neg_sq,
        mean=mean,
        std=std,
        skew=skew,
        kurt=kurt,
        max_dd=max_dd,
        current_dd=peak - cum,
        mean_abs=abs_sum / n,
    )


def _assemble(
    *,
    n: int,
    wins: int,
    losses: int,
    total: float,
    gross_profit: float,
    gross_loss: float,
    neg_sq: float,
    mean: float,
    std: float,
    skew: float | None,
    kurt: float | None,
    max_dd: float,
    current_dd: float,
    mean_abs: float,
) -> Figures:
    sharpe: float | None = None
    if n >= 2 and std > _RELATIVE_STD_FLOOR * max(mean_abs, 1e-300):
        sharpe = mean / std
    psr: float | None = None
    if n >= 3 and sharpe is not None and skew is not None and kurt is not None:
        under = 1.0 - skew * sharpe + (kurt - 1.0) / 4.0 * sharpe * sharpe
        if under > 0:
            z = sharpe * math.sqrt(n - 1) / math.sqrt(under)
            psr = 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))
    sortino = mean / math.sqrt(neg_sq / n) if losses and neg_sq > 0 else None
    profit_factor = gross_profit / gross_loss if gross_loss > 0 else None
    return Figures(
        trades=n,
        wins=wins,
        losses=losses,
        win_rate=wins / n,
        expectancy=total / n,
        total_pnl=total,
        gross_profit=gross_profit,
        gross_loss=gross_loss,
        profit_factor=profit_factor,
        profit_factor_infinite=gross_loss == 0 and gross_profit > 0,
        avg_win=gross_profit / wins if wins else None,
        avg_loss=gross_loss / losses if losses else None,
        sharpe=sharpe,
        sortino=sortino,
        sqn=math.sqrt(n) * sharpe if sharpe is not None else None,
        psr=psr,
        max_drawdown=max_dd,
        current_drawdown=current_dd,
        mean_abs_pnl=mean_abs,
    )


class PerformanceModel:
    """Figures of every group of trades, for both windows."""

    def __init__(self, config: PerformanceConfig) -> None:
        self.config = config
        self.groups: dict[tuple[str, ...], dict[tuple[str, ...], Group]] = {
            grouping: {} for grouping in GROUPINGS
        }
        self.last_seq = 0
        self.trade_count = 0

    def record(self, trade: ClosedTrade) -> None:
        """Add a committed trade; a trade at or below ``last_seq`` was already counted."""
        if trade.seq <= self.last_seq:
            return
        self.last_seq = trade.seq
        self.trade_count += 1
        values = {"strategy": trade.strategy, "symbol": trade.symbol, "regime": trade.regime}
        window = self.config.window_trades
        pnl = trade.pnl
        for grouping, groups in self.groups.items():
            key = tuple(values[d] for d in grouping)
            group = groups.get(key)
            if group is None:
                group = groups[key] = Group(window)
            group.add(pnl)

    # ------------------------------------------------------------------ queries

    def group_figures(
        self, group_by: Sequence[str], key: tuple[str, ...], window: str = "all"
    ) -> Figures | None:
        """The figures of one group, or None if it has no trade."""
        group = self.groups[_grouping(group_by)].get(key)
        return group.figures(window) if group is not None else None

    def rows(
        self, group_by: Sequence[str], window: str = "all", strategy: str | None = None
    ) -> list[dict[str, Any]]:
        """Wire rows: the group's keys, then every metric; sorted by key."""
        if window not in WINDOWS:
            raise ValueError(f"unknown window {window!r}")
        dims = set(group_by)
        if strategy is not None:
            dims.add("strategy")
        grouping = _grouping(dims)
        rows = []
        for key, group in sorted(self.groups[grouping].items()):
            if strategy is not None and key[0] != strategy:
                continue
            row: dict[str, Any] = dict(zip(grouping, key, strict=True))
            row.update(group.figures(window).as_row())
            rows.append(row)
        return rows

    def strategy_figures(self, strategy: str, window: str = "all") -> Figures | None:
        """One strategy's figures."""
        return self.group_figures(("strategy",), (strategy,), window)

    def recent_by_strategy(self) -> dict[str, Figures]:
        """Every strategy's recent-window figures."""
        return {key[0]: g.figures("recent") for key, g in self.groups[("strategy",)].items()}

    def recent_by_regime(self) -> dict[str, dict[str, Figures]]:
        """regime -> strategy -> recent figures of that strategy's trades in that regime."""
        table: dict[str, dict[str, Figures]] = {}
        for (strategy, regime), group in self.groups[("strategy", "regime")].items():
            table.setdefault(regime, {})[strategy] = group.figures("recent")
        return table

    def regime_effectiveness(
        self, strategy: str | None = None, window: str = "all"
    ) -> list[dict[str, Any]]:
        """Strategy × regime rows."""
        return self.rows(("strategy", "regime"), window, strategy)

    def symbol_breakdown(
        self, strategy: str | None = None, window: str = "all"
    ) -> list[dict[str, Any]]:
        """Strategy × symbol rows."""
        return self.rows(("strategy", "symbol"), window, strategy)

    def top_strategies(
        self,
        metric: str = "expectancy",
        n: int = 5,
        window: str = "recent",
        ascending: bool = False,
    ) -> list[dict[str, Any]]:
        """The best (or worst) strategies by any metric; undefined values sort last."""
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}; one of {', '.join(METRICS)}")
        rows = self.rows(("strategy",), window)
        defined = [r for r in rows if r[metric] is not None]
        undefined = [r for r in rows if r[metric] is None]
        defined.sort(key=lambda r: (float(r[metric]), r["strategy"]), reverse=not ascending)
        return (defined + undefined)[:n]

    def strategies(self) -> list[str]:
        return sorted(k[0] for k in self.groups[("strategy",)])

    def symbols(self) -> list[str]:
        return sorted(k[0] for k in self.groups[("symbol",)])

    def regimes(self) -> list[str]:
        return sorted(k[0] for k in self.groups[("regime",)])

    def recent_pnls(self, strategy: str, limit: int = 50) -> list[float]:
        """The strategy's last pnls, oldest first (for a sparkline)."""
        group = self.groups[("strategy",)].get((strategy,))
        return group.ring.items()[-limit:] if group is not None else []

    # ------------------------------------------------------------------ state

    def to_state(self) -> dict[str, Any]:
        """Plain data for a snapshot."""
        groups = []
        for grouping, table in self.groups.items():
            for key, group in table.items():
                ring = group.ring
                groups.append(
                    [
                        list(grouping),
                        list(key),
                        group.stats.to_state(),
                        ring.items(),
                    ]
                )
        return {
            "window_trades": self.config.window_trades,
            "last_seq": self.last_seq,
            "trade_count": self.trade_count,
            "groups": groups,
        }

    @classmethod
    def from_state(cls, config: PerformanceConfig, state: dict[str, Any]) -> PerformanceModel:
        """Rebuild from ``to_state``; a changed window keeps the newest pnls that fit."""
        model = cls(config)
        model.last_seq = int(state["last_seq"])
        model.trade_count = int(state["trade_count"])
        window = config.window_trades
        for grouping, key, stats, recent in state["groups"]:
            group = Group(window)
            group.stats = RunningStats.from_state(stats)
            for pnl in recent[-window:]:
                group.ring.add(pnl)
            model.groups[tuple(grouping)][tuple(key)] = group
        return model


def _grouping(dims: Iterable[str]) -> tuple[str, ...]:
    chosen = set(dims)
    unknown = chosen - set(DIMENSIONS)
    if unknown or not chosen:
        raise ValueError(f"group_by must be a non-empty subset of {DIMENSIONS}")
    return tuple(d for d in DIMENSIONS if d in chosen)


# ----------------------------------------------------------------------------- the actor


class RecentFigures(msgspec.Struct, frozen=True):
    """Ask: every strategy's recent figures, overall and per regime."""


class ReportTables(msgspec.Struct, frozen=True):
    """Ask: the performance tables of ``get_report``."""

    top_n: int = 5


class PerformanceActor(Actor):
    """Feeds committed trades to the model and answers ``get_performance``."""

    name = "performance"

    def __init__(self, model: PerformanceModel, mailbox_size: int = 8192) -> None:
        super().__init__(mailbox_size)
        self.model = model

    async def handle(self, message: Any) -> Any:
        model = self.model
        match message:
            case ClosedTrade():
                model.record(message)
                return None
            case GetPerformance():
                rows = model.rows(message.group_by, message.window, message.strategy)
                return Performance(
                    group_by=list(message.group_by), window=message.window, rows=rows
                )
            case RecentFigures():
                return model.recent_by_strategy(), model.recent_by_regime()
            case ReportTables():
                return {
                    "strategies": [
                        {
                            "strategy": name,
                            "all": _row(model.strategy_figures(name, "all")),
                            "recent": _row(model.strategy_figures(name, "recent")),
                            "recent_pnls": model.recent_pnls(name, 30),
                        }
                        for name in model.strategies()
                    ],
                    "regime_effectiveness": model.regime_effectiveness(None, "recent"),
                    "top_strategies": model.top_strategies("expectancy", message.top_n, "recent"),
                    "trades": model.trade_count,
                }
            case _ if message is TAKE_STATE:
                return model.to_state()
        raise TypeError(f"performance cannot handle {type(message).__name__}")


def _row(figures: Figures | None) -> dict[str, Any] | None:
    return figures.as_row() if figures is not None else None
