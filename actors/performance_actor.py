"""The performance actor: feeds committed trades to the performance model
(actors/performance.py) and answers ``get_performance``, ``get_top`` and the
performance part of a report, and the engine's asks (the figures the optimization cycle
judges, a strategy's groups taken out and put back).

Apart from the model so that the model stays plain synchronous math that the replay
and the benchmarks drive without a mailbox.
"""

from __future__ import annotations

from bisect import bisect_right
from typing import Any

import msgspec
import structlog

from alphad.actors.base import TAKE_STATE, Actor, Ask, encode_in_slices, take_with_turns
from alphad.actors.events import ClosedTrade
from alphad.actors.figures import Figures
from alphad.actors.performance import (
    CAPPED,
    PerformanceModel,
    check_metric,
    grouping_of,
    ranked_rows,
)
from alphad.protocol.messages import (
    PAGE_ROWS,
    TOP_MIN_TRADES,
    GetPerformance,
    GetTop,
    Performance,
    Top,
)

log = structlog.get_logger("alphad.performance")


class RecentFigures(Ask[tuple[dict[str, Figures], dict[str, dict[str, Figures]]]], frozen=True):
    """Ask: every strategy's recent figures, overall and per regime; for a cycle, with
    what its edge tests have read (``PerformanceModel.recent_by_strategy``,
    ``recent_by_regime``)."""

    edge_read: dict[str, int] | None = None
    regime_edge_read: dict[str, dict[str, int]] | int | None = None


class TradesSeen(Ask[int], frozen=True):
    """Ask: a strategy's trade count now, overall or in a regime
    (``PerformanceModel.trades_seen``)."""

    strategy: str
    regime: str | None = None


class ReportTables(Ask[dict[str, Any]], frozen=True):
    """Ask: the performance tables of a ``get_report`` page, its strategies those after
    ``after`` (at most ``PAGE_ROWS``)."""

    top_n: int = 5
    after: str | None = None


class DetachStrategy(Ask[tuple[Any, int]], frozen=True):
    """Ask: take a strategy's groups out (``PerformanceModel.detach``); answered with them
    and the seq of the last trade counted."""

    strategy: str


class AttachGroups(Ask[None], frozen=True):
    """Ask: put back the groups of a ``DetachStrategy`` (a forget undone)."""

    groups: Any


class PerformanceStats(msgspec.Struct, frozen=True, kw_only=True):
    """The performance actor's counters, as ``PerformanceActor.stats()`` took them."""

    groups_not_kept: int  # new groups of ``CAPPED`` not kept since the start (max_groups)


class PerformanceActor(Actor):
    """Feeds committed trades to the model and answers ``get_performance``."""

    name = "performance"

    def __init__(self, model: PerformanceModel, mailbox_size: int = 8192) -> None:
        super().__init__(mailbox_size)
        self.model = model
        self._told_not_kept = False
        self._unread_dropped = 0  # the model's count when the last cycle asked

    def stats(self) -> PerformanceStats:
        """The actor's counters for the metrics."""
        return PerformanceStats(groups_not_kept=self.model.groups_not_kept)

    async def handle(self, message: Any) -> Any:
        model = self.model
        match message:
            case ClosedTrade():
                model.record(message)
                if model.groups_not_kept and not self._told_not_kept:
                    self._told_not_kept = True
                    log.warning(
                        "performance_groups_not_kept",
                        max_groups=model.max_groups,
                        groupings=["+".join(grouping) for grouping in CAPPED],
                    )
                return None
            case GetPerformance():
                rows = await take_with_turns(
                    model.iter_rows(
                        message.group_by, message.window, message.strategy, after=message.after
                    ),
                    PAGE_ROWS + 1,
                )
                more = len(rows) > PAGE_ROWS
                del rows[PAGE_ROWS:]
                keys = grouping_of({*message.group_by, *(["strategy"] if message.strategy else [])})
                return Performance(
                    group_by=list(message.group_by),
                    window=message.window,
                    rows=rows,
                    next=[rows[-1][k] for k in keys] if more else None,
                )
            case RecentFigures():
                recent = (
                    model.recent_by_strategy(message.edge_read),
                    model.recent_by_regime(message.regime_edge_read),
                )
                dropped = model.unread_dropped()
                if message.edge_read is not None and dropped > self._unread_dropped:
                    # More of a strategy's trades between two cycles than it keeps for
                    # the edge test (docs/optimization.md): the oldest were not read.
                    log.warning("edge_trades_skipped", trades=dropped - self._unread_dropped)
                self._unread_dropped = dropped  # less after a strategy is forgotten
                return recent
            case TradesSeen():
                return model.trades_seen(message.strategy, message.regime)
            case GetTop():
                rows = await top_rows(
                    model,
                    message.metric,
                    message.n,
                    message.window,
                    message.min_trades,
                    message.ascending,
                )
                return Top(
                    metric=message.metric,
                    window=message.window,
                    min_trades=message.min_trades,
                    rows=rows,
                )
            case DetachStrategy():
                return model.detach(message.strategy), model.last_seq
            case AttachGroups():
                model.attach(message.groups)
                return None
            case ReportTables():
                names = model.strategies()
                del names[: bisect_right(names, message.after) if message.after else 0]
                entries = (
                    {
                        "strategy": name,
                        "all": _row(model.strategy_figures(name, "all")),
                        "recent": _row(model.strategy_figures(name, "recent")),
                        "recent_pnls": model.recent_pnls(name, 30),
                    }
                    for name in names[:PAGE_ROWS]
                )
                return {
                    "strategies": await take_with_turns(entries),
                    "more_strategies": len(names) > PAGE_ROWS,
                    # Bounded like any reply; the rest are get_performance's pages.
                    "regime_effectiveness": await take_with_turns(
                        model.iter_rows(("strategy", "regime"), "recent"), PAGE_ROWS
                    ),
                    "top_strategies": await top_rows(
                        model, "expectancy", message.top_n, "recent", TOP_MIN_TRADES
                    ),
                    "trades": model.trade_count,
                }
            case _ if message is TAKE_STATE:
                # Tens of thousands of groups: encoded in slices, the loop serving between.
                groups = {
                    name: await encode_in_slices(entries) for name, entries in model.state_groups()
                }
                return model.state_header() | {"groups": groups}
        raise TypeError(f"performance cannot handle {type(message).__name__}")


async def top_rows(
    model: PerformanceModel,
    metric: str,
    n: int,
    window: str,
    min_trades: int,
    ascending: bool = False,
) -> list[dict[str, Any]]:
    """``PerformanceModel.top_strategies`` among the strategies with at least
    ``min_trades`` trades in the window (``get_top`` and the report's top strategies)."""
    check_metric(metric)
    rows = await take_with_turns(model.iter_rows(("strategy",), window))
    enough = [row for row in rows if row["trades"] >= min_trades]
    return ranked_rows(enough, metric, n, ascending)


def _row(figures: Figures | None) -> dict[str, Any] | None:
    return figures.as_row() if figures is not None else None
