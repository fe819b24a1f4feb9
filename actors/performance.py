"""Performance decomposition: every figure of docs/metrics.md for any grouping of trades.

Each closed trade updates seven groups (every non-empty subset of strategy, symbol,
regime). For the ``all`` window a group keeps compensated running sums, the running
peak and worst drawdown, and central moments up to the fourth updated one trade at a
time (Welford, Terriberry). For the ``recent`` window it keeps its last
``window_trades`` pnls in a preallocated ring and computes the figures from them when
asked, caching them until the group's next trade. Either way the work and the memory
per trade do not grow with history.

The groups by strategy and by strategy and regime also keep their recent trades' pnls
and sizes: the recent window the weights, the lifecycle and the scorer's regime fits
judge, per unit of size (``pnl / size``), so that the size alphad chose for a trade does
not feed back into its judgement of the strategy. Reported figures stay on the pnl.

The performance model is in three parts: this model, which keeps the groups of every
grouping, answers for them and snapshots them; the windows of one group
(actors/performance_windows.py); and the actor that feeds the model and its asks
(actors/performance_actor.py). The figures themselves are computed in actors/figures.py.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Collection, Iterator, Mapping, Sequence
from itertools import combinations, islice
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from alphad.actors.events import UNKNOWN_REGIME, ClosedTrade
from alphad.actors.figures import Figures, RunningStats
from alphad.actors.performance_windows import WINDOWS, Group, JudgedWindow, Ring, trade_size
from alphad.protocol.messages import METRIC_FIELDS

DIMENSIONS: tuple[str, ...] = ("strategy", "symbol", "regime")
GROUPINGS: tuple[tuple[str, ...], ...] = tuple(
    combo for size in (1, 2, 3) for combo in combinations(DIMENSIONS, size)
)
# The groupings whose recent window per unit of size is judged by the optimization cycle.
JUDGED: tuple[tuple[str, ...], ...] = (("strategy",), ("strategy", "regime"))
# The finer groupings, kept only while their groups number fewer than ``max_groups``:
# one group per combination of names, so many names could make very many of them. The
# groups by strategy, by symbol and by regime are bounded by ``[limits]`` already, and
# the judged ones are always kept.
CAPPED: tuple[tuple[str, ...], ...] = tuple(
    grouping for grouping in GROUPINGS if len(grouping) > 1 and grouping not in JUDGED
)
# 3: judged groups carry their recent pnls and sizes. Version 2 kept pnls per unit of
# size, which restore as pnls at size 1.0; version 1 kept no sizes, its judged windows
# restore as the recent pnls at size 1.0.
STATE_VERSION = 3
READABLE_VERSIONS = (1, 2, 3)


def _judged_window(kept: Group | JudgedWindow) -> JudgedWindow:
    """The judged window of a judged group, whichever kind the model keeps."""
    if isinstance(kept, JudgedWindow):
        return kept
    if kept.window is None:
        raise ValueError("only the groups of JUDGED keep pnls per unit of size")
    return kept.window


class PerformanceConfig(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """``[performance]``: the size of every group's recent window."""

    window_trades: Annotated[int, Meta(ge=2, le=100_000)] = 100


def _check_window(window: str) -> None:
    if window not in WINDOWS:
        raise ValueError(f"unknown window {window!r}; one of {', '.join(WINDOWS)}")


def grouping_of(dims: Collection[str]) -> tuple[str, ...]:
    """The grouping of ``dims`` in canonical order (strategy, symbol, regime)."""
    chosen = set(dims)
    if not chosen or not chosen <= set(DIMENSIONS):
        raise ValueError(f"group_by must be a non-empty subset of {', '.join(DIMENSIONS)}")
    return tuple(d for d in DIMENSIONS if d in chosen)


def check_metric(metric: str) -> None:
    """Raise ValueError unless ``metric`` is one of ``METRIC_FIELDS``."""
    if metric not in METRIC_FIELDS:
        raise ValueError(f"unknown metric {metric!r}; one of {', '.join(METRIC_FIELDS)}")


def ranked_rows(
    rows: Sequence[dict[str, Any]], metric: str, n: int, ascending: bool = False
) -> list[dict[str, Any]]:
    """The ``n`` best of ``rows`` (in name order) by ``metric`` (worst first with
    ``ascending``): ``PerformanceModel.top_strategies``' ranking."""
    if n <= 0:
        return []

    def rank(row: dict[str, Any]) -> float | None:
        if metric == "profit_factor" and row["profit_factor_infinite"]:
            return math.inf
        value = row[metric]
        return None if value is None else float(value)

    ranked = [(rank(row), row) for row in rows]
    defined = [(value, row) for value, row in ranked if value is not None]
    # Python's sort is stable in both directions, so ties stay in name order.
    defined.sort(key=lambda item: item[0], reverse=not ascending)
    undefined = [row for value, row in ranked if value is None]
    return ([row for _, row in defined] + undefined)[:n]


class PerformanceModel:
    """Every figure of every group of trades, over the ``all`` and ``recent`` windows.

    Groups are the trades sharing a strategy, a symbol, a regime, or any combination
    of them. ``record`` does constant work per trade; ``all`` figures cost O(1) to read
    and ``recent`` figures O(window_trades) on the first read after the group trades.
    Figures returned are shared with the model's caches: read them, never modify them.

    With ``judging_only`` the model keeps only what the optimization cycle judges: the
    windows per unit of size of the groups by strategy and by strategy and regime
    (``recent_by_strategy``, ``recent_by_regime``), two groups per trade instead of
    seven and no ``all`` window. A replay needs nothing else; the reported figures,
    the other groupings and the state are then refused with ValueError.

    With ``regime_unread`` the windows by strategy and regime (but ``unknown``) keep the
    trades that leave them before the per-regime lifecycle's edge test read them, as the
    windows by strategy do for the whole strategy's (``recent_by_regime``).
    """

    def __init__(
        self,
        config: PerformanceConfig,
        *,
        judging_only: bool = False,
        max_groups: int = 20_000,
        regime_unread: bool = False,
    ) -> None:
        self.config = config
        self.regime_unread = regime_unread
        self.groups: dict[tuple[str, ...], dict[tuple[str, ...], Group]] = {
            grouping: {} for grouping in GROUPINGS
        }
        # judging_only: the judged windows by strategy, and by strategy and regime.
        self._windows: (
            tuple[dict[tuple[str, ...], JudgedWindow], dict[tuple[str, ...], JudgedWindow]] | None
        ) = ({}, {}) if judging_only else None
        self._tables = tuple(self.groups.values())  # in GROUPINGS order, for record
        self._by_strategy = self.groups[JUDGED[0]]
        self._by_regime = self.groups[JUDGED[1]]
        self._judged = tuple(grouping in JUDGED for grouping in GROUPINGS)
        # The groups by strategy and regime in the order recent_by_regime lists them,
        # sorted again only when a group is added.
        self._by_regime_order: list[tuple[str, ...]] = []
        self._capped = tuple(grouping in CAPPED for grouping in GROUPINGS)
        # Groups of CAPPED kept, and new ones beyond ``max_groups`` that were not.
        self.max_groups = max_groups
        self.capped_groups = 0
        self.groups_not_kept = 0
        self.last_seq = 0
        self.trade_count = 0

    def record(self, trade: ClosedTrade) -> None:
        """Count a committed trade in its seven groups (the new groups of ``CAPPED``
        only while there are fewer than ``max_groups`` of them).

        The judged groups also keep its size (``trade_size``). A trade at
        or below ``last_seq`` was already counted (a replay after a
        restart) and is ignored. A non-finite pnl is refused with ValueError before
        anything changes: it would poison every running figure of its groups.
        """
        if trade.seq <= self.last_seq:
            return
        pnl = trade.pnl
        if not math.isfinite(pnl):
            raise ValueError(f"trade {trade.trade_id!r} has a non-finite pnl {pnl!r}")
        strategy, symbol, regime = trade.strategy, trade.symbol, trade.regime
        if self._windows is not None:
            size = trade_size(trade.size)
            by_strategy, by_regime = self._windows
            judging = by_strategy.get((strategy,))
            if judging is None:
                judging = by_strategy[(strategy,)] = JudgedWindow(
                    self.config.window_trades, keeps_unread=True
                )
            judging.add(pnl, size)
            judging = by_regime.get((strategy, regime))
            if judging is None:
                judging = by_regime[(strategy, regime)] = JudgedWindow(
                    self.config.window_trades, keeps_unread=self._keeps_unread(regime)
                )
            judging.add(pnl, size)
            self.last_seq = trade.seq
            self.trade_count += 1
            return
        keys = (
            (strategy,),
            (symbol,),
            (regime,),
            (strategy, symbol),
            (strategy, regime),
            (symbol, regime),
            (strategy, symbol, regime),
        )
        window = self.config.window_trades
        size = trade_size(trade.size)
        for table, key, judged, capped in zip(
            self._tables, keys, self._judged, self._capped, strict=True
        ):
            group = table.get(key)
            if group is None:
                if capped:
                    if self.capped_groups >= self.max_groups:
                        self.groups_not_kept += 1
                        continue
                    self.capped_groups += 1
                keeps = table is self._by_strategy or (
                    table is self._by_regime and self._keeps_unread(regime)
                )
                group = table[key] = Group(window, judged, keeps_unread=keeps)
            group.add(pnl, size)
        self.last_seq = trade.seq
        self.trade_count += 1

    def _keeps_unread(self, regime: str) -> bool:
        """Whether a window of a strategy's trades in ``regime`` keeps those that leave it
        unread: with ``regime_unread``, in every regime the per-regime lifecycle judges."""
        return self.regime_unread and regime != UNKNOWN_REGIME

    # ------------------------------------------------------------------ queries

    def group_figures(
        self, group_by: Sequence[str], key: tuple[str, ...], window: str = "all"
    ) -> Figures | None:
        """The figures of one group, or None if it has no trade.

        ``key`` holds one value per entry of ``group_by``, in the same order:
        ``group_figures(["regime", "strategy"], ("trend", "ema"))``.
        """
        _check_window(window)
        self._check_reported()
        if len(key) != len(group_by):
            raise ValueError(f"key {key!r} does not match group_by {list(group_by)!r}")
        values: dict[str, str] = {}
        for dim, value in zip(group_by, key, strict=True):
            if values.setdefault(dim, value) != value:
                raise ValueError(f"two values for {dim!r} in key {key!r}")
        grouping = grouping_of(values)
        group = self.groups[grouping].get(tuple(values[d] for d in grouping))
        return group.figures(window) if group is not None else None

    def rows(
        self,
        group_by: Sequence[str],
        window: str = "all",
        strategy: str | None = None,
        *,
        after: Sequence[str] | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Wire rows sorted by key: the group's keys (strategy, symbol, regime), then
        ``METRIC_FIELDS``.

        With ``strategy``, only that strategy's groups; if ``group_by`` lacks
        ``strategy`` the rows are grouped by strategy too and carry its key. With
        ``after``, only the rows whose key sorts after it; with ``limit``, at most that
        many (a page).
        """
        return list(islice(self.iter_rows(group_by, window, strategy, after=after), limit))

    def iter_rows(
        self,
        group_by: Sequence[str],
        window: str = "all",
        strategy: str | None = None,
        *,
        after: Sequence[str] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """``rows``, one at a time: each row is made as it is taken (the arguments are
        checked at once). The model must not change while they are taken."""
        _check_window(window)
        self._check_reported()
        if not group_by:
            raise ValueError("group_by must name at least one of strategy, symbol, regime")
        dims = set(group_by)
        if strategy is not None:
            dims.add("strategy")
        grouping = grouping_of(dims)
        table = self.groups[grouping]
        keys = sorted(table)
        if after is not None:
            del keys[: bisect_right(keys, tuple(after))]
        return self._rows_of(grouping, table, keys, window, strategy)

    @staticmethod
    def _rows_of(
        grouping: tuple[str, ...],
        table: Mapping[tuple[str, ...], Group],
        keys: list[tuple[str, ...]],
        window: str,
        strategy: str | None,
    ) -> Iterator[dict[str, Any]]:
        for key in keys:
            if strategy is not None and key[0] != strategy:
                continue
            row: dict[str, Any] = dict(zip(grouping, key, strict=True))
            row.update(table[key].figures(window).as_row())
            yield row

    def trades_seen(self, strategy: str, regime: str | None = None) -> int:
        """How many trades the strategy has recorded (in ``regime``), as its judged
        window counts them (``Figures.seen``); 0 for none."""
        which, key = (0, (strategy,)) if regime is None else (1, (strategy, regime))
        kept = self._judged_table(which).get(key)
        return _judged_window(kept).seen if kept is not None else 0

    def strategy_figures(self, strategy: str, window: str = "all") -> Figures | None:
        """One strategy's figures, or None if it has no trade."""
        return self.group_figures(("strategy",), (strategy,), window)

    def recent_by_strategy(self, edge_read: Mapping[str, int] | None = None) -> dict[str, Figures]:
        """strategy -> its recent window per unit of size, as the optimization cycle
        judges it (with ``seen`` and ``pnls``); the reported figures are ``rows``'.

        ``edge_read``: for a cycle, strategy → the number of its last trade the edge test
        read (``Optimizer.edge_read``); each window then also has the ``unread`` trades
        that left it since, and forgets those read (a strategy not in it, one the
        lifecycle does not know yet, keeps them all).
        """
        table = self._judged_table(0)
        if edge_read is None:
            return {key[0]: table[key].judged_figures() for key in sorted(table)}
        return {
            key[0]: _judged_window(table[key]).read_figures(edge_read.get(key[0]))
            for key in sorted(table)
        }

    def recent_by_regime(
        self, edge_read: Mapping[str, Mapping[str, int]] | int | None = None
    ) -> dict[str, dict[str, Figures]]:
        """regime -> strategy -> that strategy's recent window in that regime, per unit of
        size, as the optimization cycle judges it.

        ``edge_read``: for a cycle, regime → strategy → the number of its last trade in the
        regime the regime's edge test read (``Optimizer.regime_edge_read``), as
        ``recent_by_strategy``'s: each window that keeps them (``regime_unread``) then has
        the ``unread`` trades that left it since; one not in it keeps them all. One number
        is every window's mark (``NOT_READ``: the test reads none)."""
        table = self._judged_table(1)
        order = self._by_regime_order
        if len(order) != len(table):
            order = self._by_regime_order = sorted(table, key=lambda k: (k[1], k[0]))
        by_regime: dict[str, dict[str, Figures]] = {}
        for key in order:
            strategy, regime = key
            if edge_read is None:
                figures = table[key].judged_figures()
            elif isinstance(edge_read, int):
                figures = _judged_window(table[key]).read_figures(edge_read)
            else:
                marks = edge_read.get(regime)
                mark = marks.get(strategy) if marks is not None else None
                figures = _judged_window(table[key]).read_figures(mark)
            by_regime.setdefault(regime, {})[strategy] = figures
        return by_regime

    def _judged_table(self, which: int) -> Mapping[tuple[str, ...], Group | JudgedWindow]:
        """The groups of ``JUDGED[which]``, whichever kind this model keeps."""
        if self._windows is not None:
            return self._windows[which]
        return self.groups[JUDGED[which]]

    def unread_dropped(self) -> int:
        """Trades of every strategy (and, with ``regime_unread``, of every strategy in each
        regime) that left its window and were dropped unread, more than
        ``UNREAD_WINDOWS`` windows of them between two readings of the edge test."""
        return sum(
            window.unread.dropped
            for which in (0, 1)
            for window in map(_judged_window, self._judged_table(which).values())
            if window.unread is not None
        )

    def _check_reported(self) -> None:
        if self._windows is not None:
            raise ValueError("this performance model keeps only the judged windows")

    def regime_effectiveness(
        self, strategy: str | None = None, window: str = "all"
    ) -> list[dict[str, Any]]:
        """Strategy × regime rows (one strategy's with ``strategy``)."""
        return self.rows(("strategy", "regime"), window, strategy)

    def symbol_breakdown(
        self, strategy: str | None = None, window: str = "all"
    ) -> list[dict[str, Any]]:
        """Strategy × symbol rows (one strategy's with ``strategy``)."""
        return self.rows(("strategy", "symbol"), window, strategy)

    def top_strategies(
        self,
        metric: str = "expectancy",
        n: int = 5,
        window: str = "recent",
        ascending: bool = False,
    ) -> list[dict[str, Any]]:
        """The ``n`` best strategy rows by ``metric`` (worst first with ``ascending``).

        Strategies whose figure is undefined come last; an infinite profit factor
        (gains and no loss) ranks above every finite one. Ties keep name order.
        """
        check_metric(metric)
        return ranked_rows(self.rows(("strategy",), window), metric, n, ascending)

    def strategies(self) -> list[str]:
        """Every strategy with a trade, sorted."""
        return sorted(key[0] for key in self._judged_table(0))

    def symbols(self) -> list[str]:
        """Every symbol with a trade, sorted."""
        self._check_reported()
        return sorted(key[0] for key in self.groups[("symbol",)])

    def regimes(self) -> list[str]:
        """Every regime with a trade, sorted."""
        self._check_reported()
        return sorted(key[0] for key in self.groups[("regime",)])

    def recent_pnls(self, strategy: str, limit: int = 50) -> list[float]:
        """The strategy's last ``limit`` pnls (at most its recent window), oldest first."""
        self._check_reported()
        group = self.groups[("strategy",)].get((strategy,))
        if group is None or limit <= 0:
            return []
        return group.ring.items()[-limit:]

    # ------------------------------------------------------------------ forgetting

    def detach(self, strategy: str) -> dict[tuple[str, ...], dict[tuple[str, ...], Group]]:
        """Take a strategy's groups out (``forget_strategy``): every grouping by strategy.
        The groups by symbol, by regime and by both keep its trades: they are the
        market's figures, not the strategy's. ``attach`` puts them back."""
        self._check_reported()
        detached: dict[tuple[str, ...], dict[tuple[str, ...], Group]] = {}
        for grouping, table in self.groups.items():
            if "strategy" not in grouping:
                continue
            at = grouping.index("strategy")
            keys = [key for key in table if key[at] == strategy]
            detached[grouping] = {key: table.pop(key) for key in keys}
        self._recount()
        return detached

    def attach(self, detached: Mapping[tuple[str, ...], Mapping[tuple[str, ...], Group]]) -> None:
        """Put back what ``detach`` took out (a forget whose journal commit failed)."""
        for grouping, groups in detached.items():
            self.groups[grouping].update(groups)
        self._recount()

    def _recount(self) -> None:
        self.capped_groups = sum(len(self.groups[grouping]) for grouping in CAPPED)
        self._by_regime_order = []

    # ------------------------------------------------------------------ state

    def to_state(self) -> dict[str, Any]:
        """Plain, msgpack-ready data from which ``from_state`` rebuilds this model.

        Groups are listed under their grouping's name (``strategy+symbol``), each as
        ``[key, running stats, recent pnls oldest first]``; a judged group (``JUDGED``)
        adds the sizes of its recent trades, oldest first (the judged window holds the same
        trades as the recent one).
        """
        return self.state_header() | {
            "groups": {name: list(entries) for name, entries in self.state_groups()}
        }

    def state_header(self) -> dict[str, Any]:
        """``to_state`` without its groups."""
        self._check_reported()
        return {
            "version": STATE_VERSION,
            "window_trades": self.config.window_trades,
            "last_seq": self.last_seq,
            "trade_count": self.trade_count,
            # strategy → the trades that left its window unread (``Unread.to_state``).
            "unread": {
                key[0]: window.unread.to_state()
                for key, window in (
                    (key, _judged_window(group)) for key, group in self._by_strategy.items()
                )
                if window.unread is not None and window.unread.pnls
            },
            # strategy → regime → the trades that left its window there unread.
            "regime_unread": self._regime_unread_state(),
        }

    def _regime_unread_state(self) -> dict[str, dict[str, Any]]:
        kept: dict[str, dict[str, Any]] = {}
        for (strategy, regime), group in sorted(self._by_regime.items()):
            window = _judged_window(group)
            if window.unread is not None and window.unread.pnls:
                kept.setdefault(strategy, {})[regime] = window.unread.to_state()
        return kept

    def state_groups(self) -> Iterator[tuple[str, Iterator[list[Any]]]]:
        """The groups of ``to_state``, grouping by grouping, each entry made when asked."""
        self._check_reported()
        for grouping, table in self.groups.items():
            yield (
                "+".join(grouping),
                (
                    [list(key), group.stats.to_state(), group.ring.items()]
                    + ([group.window.sizes.items()] if group.window is not None else [])
                    for key, group in table.items()
                ),
            )

    @classmethod
    def from_state(
        cls,
        config: PerformanceConfig,
        state: dict[str, Any],
        *,
        max_groups: int = 20_000,
        regime_unread: bool = False,
    ) -> PerformanceModel:
        """Rebuild a model from ``to_state``.

        With a different ``window_trades`` than the state's, each recent window keeps
        the newest pnls that fit (a larger window fills up with the next trades); the
        ``all`` window is unaffected. A version 2 state (pnls per unit of size, without
        the sizes) restores its judged windows as those pnls at size 1.0; a version 1
        state (before sizes were judged) as its recent pnls at size 1.0. Every group of
        the state is restored, even beyond ``max_groups`` (a lowered cap keeps no new ones).
        """
        version = state.get("version")
        if version not in READABLE_VERSIONS:
            raise ValueError(
                f"performance state version {version!r}, expected one of "
                f"{', '.join(map(str, READABLE_VERSIONS))}"
            )
        model = cls(config, max_groups=max_groups, regime_unread=regime_unread)
        window = config.window_trades
        unread = state.get("unread", {})
        regime_unread_state = state.get("regime_unread", {})
        for name, entries in state["groups"].items():
            grouping = tuple(name.split("+"))
            if grouping not in model.groups:
                raise ValueError(f"unknown grouping {name!r} in performance state")
            judged = grouping in JUDGED
            # Version 2 and 3 judged groups add one part: pnls per unit of size, or sizes.
            parts = 4 if judged and version != 1 else 3
            table = model.groups[grouping]
            for entry in entries:
                if len(entry) != parts:
                    raise ValueError(
                        f"a {name!r} group of performance state version {version} has "
                        f"{len(entry)} parts, expected {parts}"
                    )
                key, stats, recent = entry[:3]
                if len(key) != len(grouping):
                    raise ValueError(f"key {key!r} does not match grouping {name!r}")
                by_strategy = grouping == JUDGED[0]
                if by_strategy:
                    left = unread.get(key[0], [])
                elif judged and model._keeps_unread(key[1]):
                    left = regime_unread_state.get(key[0], {}).get(key[1], [])
                else:
                    left = None
                group = Group(window, judged)
                group.stats = RunningStats.from_state(stats)
                group.ring = Ring.of(window, recent)
                if judged:
                    if version == STATE_VERSION:
                        pnls, sizes = recent, entry[3]
                    else:
                        pnls = entry[3] if version == 2 else recent
                        sizes = [1.0] * len(pnls)
                    group.window = JudgedWindow.of(
                        window,
                        group.stats.n,
                        pnls,
                        sizes,
                        left,
                    )
                table[tuple(key)] = group
        model.capped_groups = sum(len(model.groups[grouping]) for grouping in CAPPED)
        model.last_seq = int(state["last_seq"])
        model.trade_count = int(state["trade_count"])
        return model
