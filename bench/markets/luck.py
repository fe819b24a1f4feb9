"""Could the pooled verdict be luck? The paired block bootstrap of the replay
(replay/bootstrap.py) on the pooled book: alphad's daily pnl against the baseline's and
against every peer's, over the same calendar days, resampled in the same blocks.

Each side's daily pnl is the sum of the pnls of the trades it closed that day (the days
the pooled daily Sharpe is computed on), so each row's observed difference is the one
the pooled table shows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import msgspec

from alphad.replay.bootstrap import Interval, bootstrap
from alphad.replay.results import DAY_MS
from alphad.replay.results import daily_pnl as pnl_by_day

RESAMPLES = 1_000
"""Fewer than the replay's 2 000: the pooled book spans decades of days, ten sides."""


class Luck(msgspec.Struct, kw_only=True):
    """alphad − one other side on the pooled book, with its 90 % bootstrap range."""

    against: str
    daily_sharpe: Interval
    total_pnl: Interval


def daily_pnl(
    books: Sequence[Mapping[str, list[tuple[int, float]]]], name: str, day0: int, days: int
) -> list[float]:
    """One side's pnl on each calendar day from ``day0``, every history together (each
    day's summed exactly rounded, as ``replay.results.daily_pnl`` sums them)."""
    trades = [trade for book in books for trade in book[name]]
    return pnl_by_day([pnl for _, pnl in trades], [ts // DAY_MS - day0 for ts, _ in trades], days)


def pooled_luck(
    books: Sequence[Mapping[str, list[tuple[int, float]]]],
    alphad: str,
    others: Sequence[str],
    periods_per_year: float,
    day0: int,
    days: int,
    resamples: int = RESAMPLES,
) -> list[Luck]:
    """alphad against each of ``others`` (the baseline and the peers) on the pooled book,
    over the calendar days from ``day0`` (``pooled_days``)."""
    if not books:
        return []
    mine = daily_pnl(books, alphad, day0, days)
    rows = []
    for other in others:
        luck = bootstrap(
            daily_pnl(books, other, day0, days), mine, periods_per_year, resamples=resamples
        )
        rows.append(Luck(against=other, daily_sharpe=luck.daily_sharpe, total_pnl=luck.total_pnl))
    return rows
