"""The windows of one group of trades, as the performance model keeps them: the ring of
its recent pnls (``Ring``), for the judged groups (``JUDGED`` of actors/performance.py)
the recent window per unit of size (``JudgedWindow``), and the group holding them with
its ``all`` window (``Group``).

Apart from the model (actors/performance.py), which decides which groups a trade
counts in and answers for them, because these are the per-trade bookkeeping of one
group: constant work and memory per trade, whatever the history. Their figures come
from actors/figures.py.
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_left, insort
from collections.abc import Sequence
from operator import truediv
from statistics import median
from typing import Any

import msgspec

from alphad.actors.figures import Figures, RunningStats, figures_of

WINDOWS: tuple[str, ...] = ("all", "recent")
# A judged trade counts at no less than this share of its window's median size (see
# ``JudgedWindow``).
SIZE_FLOOR_SHARE = 0.5
UNREAD_WINDOWS = 10
"""How many windows of trades a strategy keeps at least for the edge test once they left
its window unread (``Unread``); beyond twice as many the oldest half is dropped."""


class Ring:
    """The last ``capacity`` pnls of a group in a preallocated array of doubles."""

    __slots__ = ("count", "head", "values")

    def __init__(self, capacity: int) -> None:
        self.values = array("d", bytes(8 * capacity))
        self.head = 0  # where the next pnl goes; the oldest pnl once the ring is full
        self.count = 0

    @property
    def capacity(self) -> int:
        """How many pnls the ring holds at most."""
        return len(self.values)

    def add(self, pnl: float) -> None:
        """Keep ``pnl``, dropping the oldest one when the ring is full."""
        values = self.values
        values[self.head] = pnl
        self.head += 1
        if self.head == len(values):
            self.head = 0
        if self.count < len(values):
            self.count += 1

    def items(self) -> list[float]:
        """The pnls held, oldest first."""
        if self.count < len(self.values):
            return self.values[: self.count].tolist()
        held = self.values.tolist()
        return held[self.head :] + held[: self.head]

    @classmethod
    def of(cls, capacity: int, pnls: Sequence[float]) -> Ring:
        """A ring holding the newest ``capacity`` of ``pnls``."""
        ring = cls(capacity)
        kept = pnls[len(pnls) - capacity :] if len(pnls) > capacity else pnls
        ring.values[: len(kept)] = array("d", kept)
        ring.count = len(kept)
        ring.head = len(kept) % capacity
        return ring


def trade_size(size: float | None) -> float:
    """The size a trade is judged at: the reported one, 1.0 when it is missing or not a
    positive finite number."""
    if size is None or not 0.0 < size < math.inf:
        return 1.0
    return size


def per_unit_at(pnls: Sequence[float], sizes: Sequence[float], floor: float) -> list[float]:
    """Each trade's pnl per unit of size at a given size ``floor``, ``pnl / max(size,
    floor)`` (the pnl itself where even that overflows), as ``per_unit_pnls`` divides."""
    out = []
    for pnl, size in zip(pnls, sizes, strict=True):
        per_unit = pnl / (size if size > floor else floor)
        out.append(per_unit if math.isfinite(per_unit) else pnl)
    return out


class Unread:
    """The trades that left a strategy's window before the edge test read them: their
    pnls and sizes, oldest first, numbered from ``first`` (the group's trade count when
    each was recorded). ``mark``: the trades up to that number are read (or are not to
    be: a strategy the test does not read). The cycle reads a strategy's window, and these,
    on the trades since its last reading, so that more trades between two cycles than
    the window holds are still each read once (docs/optimization.md, "The edge test")."""

    __slots__ = ("dropped", "first", "handed", "keeps", "mark", "pnls", "sizes", "spilled")

    def __init__(self, keeps: int, mark: int = 0) -> None:
        self.keeps = keeps  # trades kept at least; twice as many at most
        self.mark = mark
        # The trades up to this number went to a cycle, which read them unless it was
        # undone: the next cycle's mark drops them, and a full buffer drops them first.
        self.handed = mark
        self.first = mark + 1
        self.pnls = array("d")
        self.sizes = array("d")
        # Trades dropped unread, past twice ``keeps``: ``spilled`` since the last reading,
        # ``dropped`` those a reading wanted (not those of a strategy the test does not
        # read then, a suspended one's: they were not to be read).
        self.spilled = 0
        self.dropped = 0

    def keep(self, number: int, pnl: float, size: float) -> None:
        """Trade ``number`` leaves the window: kept if it is not read yet."""
        if number <= self.mark:
            return
        if not self.pnls:
            self.first = number
        self.pnls.append(pnl)
        self.sizes.append(size)
        keeps, held = self.keeps, len(self.pnls)
        if held >= 2 * keeps:
            handed = max(0, min(held, self.handed - self.first + 1))
            drop = max(handed, keeps)
            del self.pnls[:drop], self.sizes[:drop]
            self.first += drop
            self.spilled += drop - handed

    def count_spilled(self) -> None:
        """A reading that wanted the trades dropped since the last one: count them."""
        self.dropped += self.spilled
        self.spilled = 0

    def read_to(self, mark: int, *, reads: bool = True) -> None:
        """The trades up to ``mark`` are read (``reads``), or are not to be: drop them.
        The trades dropped since the last reading count as skipped only if it reads."""
        if reads:
            self.count_spilled()
        self.spilled = 0
        self.mark = mark
        drop = min(mark - self.first + 1, len(self.pnls))
        if drop > 0:
            del self.pnls[:drop], self.sizes[:drop]
            self.first += drop

    def to_state(self) -> list[int | list[float]]:
        """``[first, pnls, sizes]`` for a snapshot (the mark is the next cycle's)."""
        return [self.first, self.pnls.tolist(), self.sizes.tolist()]


def size_floor(sizes: Sequence[float]) -> float:
    """The size a judged trade counts at no less than: ``SIZE_FLOOR_SHARE`` of the median
    of its window's ``sizes`` (not empty)."""
    return SIZE_FLOOR_SHARE * median(sizes)


def per_unit_pnls(pnls: Sequence[float], sizes: Sequence[float]) -> list[float]:
    """Each trade's pnl per unit of size, ``pnl / max(size, floor)`` with ``floor`` the
    ``SIZE_FLOOR_SHARE`` of the median size of the trades given (``JudgedWindow``)."""
    if not sizes:
        return []
    floor = size_floor(sizes)
    if min(sizes) > floor and len(pnls) == len(sizes):
        # Every size above the floor (the usual window): each trade divided by its own
        # size, as below. A sum that is not finite means a ratio overflowed (or the sum
        # did): the loop below then finds which.
        quick = list(map(truediv, pnls, sizes))
        if math.isfinite(sum(quick)):
            return quick
    # Sizes so tiny that even the floor overflows the ratio: the pnl itself.
    return per_unit_at(pnls, sizes, floor)


class JudgedWindow:
    """The recent window of a judged group (``JUDGED``) per unit of size: the rings of its
    trades' pnls and sizes and how many trades the group has seen. It is the judged part
    of a ``Group``, and all a group is in a model that keeps only what the optimization
    cycle judges (``PerformanceModel(judging_only=True)``).

    Each trade counts as ``pnl / max(size, SIZE_FLOOR_SHARE × median size of the
    window)``. Divided by its own size alone, one trade reported at a size near zero
    would turn a modest pnl into an astronomic one and decide the whole window (a losing
    strategy kept at full weight by one trade of size 1e-300). With the floor no trade
    counts for more than two trades of the window's median size, the most one trade of a
    hundred can move the window by. The floor comes from the window's own median,
    recomputed whenever the window is judged, so it holds from a strategy's first trades
    on and follows a strategy whose sizes change. Half the median leaves the division
    exact for the sizes alphad itself chooses within one window: a degraded strategy
    trades at 0.65 of its size, and weights move by at most ``max_change`` a cycle. A
    floor on the size, rather than a cap on the pnl, also keeps a real large loss at its
    full weight.
    """

    __slots__ = (
        "judged",
        "odd_sizes",
        "ordered_sizes",
        "pnls",
        "ratios",
        "seen",
        "sizes",
        "unread",
    )

    def __init__(self, window_trades: int, seen: int = 0, *, keeps_unread: bool = False) -> None:
        self.pnls = Ring(window_trades)
        self.sizes = Ring(window_trades)
        self.seen = seen
        # A strategy's window: the trades that leave it before the edge test read them.
        self.unread = Unread(UNREAD_WINDOWS * window_trades) if keeps_unread else None
        # Kept with every trade so that judging the window does not divide and sort
        # again: each trade's pnl / size, the window's positive finite sizes in order,
        # and how many of its sizes are not (only a restored state can hold those; with
        # any, or -1 for rings that do not pair up, the window is judged by
        # ``per_unit_pnls`` alone).
        self.ratios = Ring(window_trades)
        self.ordered_sizes = array("d")
        self.odd_sizes = 0
        # Computed on the first ask after a trade and kept until the next one.
        self.judged: Figures | None = None

    def add(self, pnl: float, size: float) -> None:
        """Count one more trade (its size from ``trade_size``)."""
        self.seen += 1
        self.judged = None
        unread = self.unread
        if unread is not None and self.pnls.count == self.pnls.capacity:
            # The oldest trade, number seen − capacity, leaves the window.
            head = self.pnls.head
            unread.keep(
                self.seen - self.pnls.capacity, self.pnls.values[head], self.sizes.values[head]
            )
        if self.odd_sizes < 0:
            self.pnls.add(pnl)
            self.sizes.add(size)
            return
        sizes = self.sizes
        if sizes.count == sizes.capacity:  # the oldest trade leaves the window
            oldest = sizes.values[sizes.head]
            if 0.0 < oldest < math.inf:
                ordered = self.ordered_sizes
                del ordered[bisect_left(ordered, oldest)]
            else:
                self.odd_sizes -= 1
        self.pnls.add(pnl)
        sizes.add(size)
        if 0.0 < size < math.inf:
            insort(self.ordered_sizes, size)
            self.ratios.add(pnl / size)
        else:
            self.odd_sizes += 1
            self.ratios.add(math.nan)

    def per_unit(self) -> list[float]:
        """``per_unit_pnls`` of the window, oldest first: the pnls / sizes kept with the
        trades when every size is above the floor and no ratio overflowed, as
        ``per_unit_pnls`` computes them then."""
        ordered = self.ordered_sizes
        if (
            ordered
            and not self.odd_sizes
            and ordered[0] > SIZE_FLOOR_SHARE * _median_of_sorted(ordered)
        ):
            ratios = self.ratios.items()
            if math.isfinite(sum(ratios)):
                return ratios
        return per_unit_pnls(self.pnls.items(), self.sizes.items())

    def judged_figures(self) -> Figures:
        """The recent window per unit of size, with ``seen`` and ``pnls`` (shared: read,
        never modify)."""
        if self.judged is None:
            judged = figures_of(self.per_unit(), seen=self.seen, keep_pnls=True)
            # Their drawdown is computed where an absolute limit needs it (drawdown_limits):
            # for every window it cost a tenth of a replay.
            judged.sized_pnls = tuple(self.pnls.items())
            self.judged = judged
        return self.judged

    def read_figures(self, mark: int | None) -> Figures:
        """``judged_figures`` for a cycle whose edge test has read this strategy's trades
        up to number ``mark`` (None: a strategy it does not know yet), with the
        ``unread`` trades that left the window since, per unit of size at the window's
        own size floor."""
        figures = self.judged_figures()
        unread = self.unread
        if unread is None:
            return figures
        if mark is None:
            unread.count_spilled()  # kept to be read once the lifecycle knows it
        else:
            # A mark past the window's newest trade (NOT_READ: a strategy the test does not
            # read now, a suspended one) reads the trades so far, not those to come: a
            # strategy back on probation has its next trades that leave the window read at
            # the next cycle; those that spilled meanwhile were not to be read.
            unread.read_to(min(mark, self.seen), reads=mark <= self.seen)
            unread.handed = self.seen  # the cycle reads up to the window's newest trade
        if not unread.pnls:
            return figures
        sizes = self.sizes.items()
        floor = size_floor(sizes) if sizes else 0.0
        left = array("d", per_unit_at(unread.pnls, unread.sizes, floor))
        return msgspec.structs.replace(figures, unread=left)

    @classmethod
    def of(
        cls,
        window_trades: int,
        seen: int,
        pnls: Sequence[float],
        sizes: Sequence[float],
        unread: Sequence[Any] | None = None,
    ) -> JudgedWindow:
        """A window holding the newest trades of ``pnls`` and ``sizes`` that fit; a
        strategy's with ``unread`` (``Unread.to_state``; [] for none), whose trades are
        kept where they end just before the window's first."""
        window = cls(window_trades)
        saved_pnls, saved_sizes = pnls, sizes
        pnls, sizes = _newest(pnls, window_trades), _newest(sizes, window_trades)
        if len(pnls) == len(sizes):
            for pnl, size in zip(pnls, sizes, strict=True):
                window.add(pnl, size)
        else:  # a state whose rings do not pair up: judged by per_unit_pnls alone
            window.pnls = Ring.of(window_trades, pnls)
            window.sizes = Ring.of(window_trades, sizes)
            window.odd_sizes = -1
        window.seen = seen
        if unread is not None:
            window.unread = kept = Unread(UNREAD_WINDOWS * window_trades)
            # The saved window's oldest trade is number seen − its length + 1: the saved
            # unread trades end just before it, and the trades a smaller window no
            # longer holds follow them.
            start = seen - len(saved_pnls) + 1
            if unread:
                first, left_pnls, left_sizes = unread
                if (
                    len(left_pnls) == len(left_sizes) <= 2 * kept.keeps
                    and int(first) + len(left_pnls) == start
                ):
                    kept.first = int(first)
                    kept.pnls = array("d", left_pnls)
                    kept.sizes = array("d", left_sizes)
            if len(saved_pnls) == len(saved_sizes):
                for i in range(len(saved_pnls) - len(pnls)):
                    kept.keep(start + i, saved_pnls[i], saved_sizes[i])
        return window


def _newest(values: Sequence[float], capacity: int) -> Sequence[float]:
    return values[len(values) - capacity :] if len(values) > capacity else values


def _median_of_sorted(ordered: Sequence[float]) -> float:
    """``statistics.median`` of values already in order (its arithmetic, without the sort)."""
    n = len(ordered)
    half = n // 2
    if n % 2:
        return ordered[half]
    return (ordered[half - 1] + ordered[half]) / 2


class Group:
    """One group of trades: the all-window stats and the recent-window ring, and for a
    judged group (``JUDGED``) its window per unit of size."""

    __slots__ = ("recent", "ring", "stats", "window")

    def __init__(
        self, window_trades: int, judged: bool = False, *, keeps_unread: bool = False
    ) -> None:
        self.stats = RunningStats()
        self.ring = Ring(window_trades)
        self.window = JudgedWindow(window_trades, keeps_unread=keeps_unread) if judged else None
        # The recent figures, computed on the first ask after a trade and kept until the
        # next one: cycles and reports between two trades of the group cost nothing.
        self.recent: Figures | None = None

    def add(self, pnl: float, size: float) -> None:
        """Count one more trade in both windows (and in the judged one, with its size)."""
        self.stats.add(pnl)
        self.ring.add(pnl)
        self.recent = None
        if self.window is not None:
            self.window.add(pnl, size)

    def figures(self, window: str) -> Figures:
        """The figures of one window (the recent ones are shared: read, never modify)."""
        if window == "all":
            return self.stats.figures()
        if window != "recent":
            raise ValueError(f"unknown window {window!r}; one of {', '.join(WINDOWS)}")
        if self.recent is None:
            self.recent = figures_of(self.ring.items())
        return self.recent

    def judged_figures(self) -> Figures:
        """``JudgedWindow.judged_figures``; only for a judged group."""
        if self.window is None:
            raise ValueError("only the groups of JUDGED keep pnls per unit of size")
        return self.window.judged_figures()
