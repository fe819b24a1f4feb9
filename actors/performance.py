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
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_left, bisect_right, insort
from collections.abc import Collection, Iterator, Mapping, Sequence
from itertools import accumulate, combinations
from operator import mul, truediv
from statistics import median
from typing import Annotated, Any

import msgspec
import structlog
from msgspec import Meta

from alphad.actors.base import TAKE_STATE, Actor, Ask, encode_in_slices
from alphad.actors.events import ClosedTrade
from alphad.actors.figures import Figures, sharpe_ratio
from alphad.protocol.messages import (
    METRIC_FIELDS,
    PAGE_ROWS,
    TOP_MIN_TRADES,
    GetPerformance,
    GetTop,
    Performance,
    Top,
)

log = structlog.get_logger("alphad.performance")

DIMENSIONS: tuple[str, ...] = ("strategy", "symbol", "regime")
GROUPINGS: tuple[tuple[str, ...], ...] = tuple(
    combo for size in (1, 2, 3) for combo in combinations(DIMENSIONS, size)
)
WINDOWS: tuple[str, ...] = ("all", "recent")
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
# A judged trade counts at no less than this share of its window's median size (see
# ``JudgedWindow``).
SIZE_FLOOR_SHARE = 0.5

# Below this fraction of the figures' scale a quantity is rounding noise, not a
# measurement: identical pnls must give "no Sharpe", not a huge number.
_ROUNDING_FLOOR = 1e-12
_SQRT2 = math.sqrt(2.0)


class PerformanceConfig(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """``[performance]``: the size of every group's recent window."""

    window_trades: Annotated[int, Meta(ge=2, le=100_000)] = 100


class RunningStats:
    """The ``all`` window of one group, updated in constant time per trade.

    ``mean``, ``m2``, ``m3`` and ``m4`` are the running mean and central moment sums of
    ``pnl - shift``, where ``shift`` is the group's first pnl: central moments do not
    change under a shift, and keeping what is accumulated near zero stops a large
    average pnl from eating the digits of a small spread. ``pnl``, ``profit`` and
    ``loss`` (the running pnl C_t, gross profit and gross loss) each carry the
    rounding error of their sum in a ``*_error`` twin.
    """

    __slots__ = (
        "loss",
        "loss_error",
        "loss_squares",
        "losses",
        "m2",
        "m3",
        "m4",
        "max_drawdown",
        "mean",
        "n",
        "peak",
        "pnl",
        "pnl_error",
        "profit",
        "profit_error",
        "shift",
        "wins",
    )

    # The layout of ``to_state``; fixed here so that reordering the slots cannot
    # silently change the meaning of a stored snapshot.
    STATE_FIELDS: tuple[str, ...] = (
        "n",
        "wins",
        "losses",
        "shift",
        "mean",
        "m2",
        "m3",
        "m4",
        "pnl",
        "pnl_error",
        "profit",
        "profit_error",
        "loss",
        "loss_error",
        "loss_squares",
        "peak",
        "max_drawdown",
    )
    _COUNTS = frozenset(("n", "wins", "losses"))

    def __init__(self) -> None:
        self.n = 0
        self.wins = 0
        self.losses = 0
        self.shift = 0.0
        self.mean = 0.0
        self.m2 = 0.0
        self.m3 = 0.0
        self.m4 = 0.0
        self.pnl = 0.0
        self.pnl_error = 0.0
        self.profit = 0.0
        self.profit_error = 0.0
        self.loss = 0.0
        self.loss_error = 0.0
        self.loss_squares = 0.0
        self.peak = 0.0
        self.max_drawdown = 0.0

    def add(self, pnl: float) -> None:
        """Count one more trade.

        Each sum of money is Neumaier's compensated addition, written out (this runs seven
        times per trade): ``total + error`` keeps the digits ``total`` drops. Without it
        every addition to a large running pnl rounds off the low digits of the trade, and a
        long record drifts away from the sum of its trades.
        """
        n1 = self.n
        if n1 == 0:
            self.shift = pnl
        n = n1 + 1
        # Terriberry's one-pass update of the central moment sums, each from the old
        # lower moments (so M4 before M3 before M2).
        delta = (pnl - self.shift) - self.mean
        delta_n = delta / n
        delta_n2 = delta_n * delta_n
        term1 = delta * delta_n * n1
        m2 = self.m2
        m3 = self.m3
        self.mean += delta_n
        self.m4 += term1 * delta_n2 * (n * n - 3 * n + 3) + 6 * delta_n2 * m2 - 4 * delta_n * m3
        self.m3 = m3 + (term1 * delta_n * (n - 2) - 3 * delta_n * m2)
        self.m2 = m2 + term1
        self.n = n

        if pnl > 0:
            self.wins += 1
            total = self.profit
            new = total + pnl
            self.profit_error += (total - new) + pnl if abs(total) >= pnl else (pnl - new) + total
            self.profit = new
        elif pnl < 0:
            self.losses += 1
            loss = -pnl
            total = self.loss
            new = total + loss
            self.loss_error += (total - new) + loss if abs(total) >= loss else (loss - new) + total
            self.loss = new
            self.loss_squares += pnl * pnl

        total = self.pnl
        new = total + pnl
        self.pnl_error += (total - new) + pnl if abs(total) >= abs(pnl) else (pnl - new) + total
        self.pnl = new
        running = new + self.pnl_error
        peak = self.peak
        if running > peak:
            self.peak = peak = running
        drawdown = peak - running
        if drawdown > self.max_drawdown:
            self.max_drawdown = drawdown

    def figures(self) -> Figures:
        """Every figure of the trades counted so far."""
        if self.n == 0:
            return Figures()
        total = self.pnl + self.pnl_error
        return _assemble(
            n=self.n,
            wins=self.wins,
            losses=self.losses,
            total=total,
            gross_profit=self.profit + self.profit_error,
            gross_loss=self.loss + self.loss_error,
            loss_squares=self.loss_squares,
            m2=self.m2,
            m3=self.m3,
            m4=self.m4,
            max_drawdown=self.max_drawdown,
            current_drawdown=self.peak - total,
        )

    def to_state(self) -> list[int | float]:
        """The fields, in ``STATE_FIELDS`` order."""
        return [getattr(self, name) for name in self.STATE_FIELDS]

    @classmethod
    def from_state(cls, values: Sequence[int | float]) -> RunningStats:
        """Rebuild from ``to_state``."""
        if len(values) != len(cls.STATE_FIELDS):
            raise ValueError(f"running stats need {len(cls.STATE_FIELDS)} values")
        stats = cls()
        for name, value in zip(cls.STATE_FIELDS, values, strict=True):
            setattr(stats, name, int(value) if name in cls._COUNTS else float(value))
        return stats


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


def per_unit_pnls(pnls: Sequence[float], sizes: Sequence[float]) -> list[float]:
    """Each trade's pnl per unit of size, ``pnl / max(size, floor)`` with ``floor`` the
    ``SIZE_FLOOR_SHARE`` of the median size of the trades given (``JudgedWindow``)."""
    if not sizes:
        return []
    floor = SIZE_FLOOR_SHARE * median(sizes)
    if min(sizes) > floor and len(pnls) == len(sizes):
        # Every size above the floor (the usual window): each trade divided by its own
        # size, as below. A sum that is not finite means a ratio overflowed (or the sum
        # did): the loop below then finds which.
        quick = list(map(truediv, pnls, sizes))
        if math.isfinite(sum(quick)):
            return quick
    out = []
    for pnl, size in zip(pnls, sizes, strict=True):
        per_unit = pnl / (size if size > floor else floor)
        # Sizes so tiny that even the floor overflows the ratio: the pnl itself.
        out.append(per_unit if math.isfinite(per_unit) else pnl)
    return out


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

    __slots__ = ("judged", "odd_sizes", "ordered_sizes", "pnls", "ratios", "seen", "sizes")

    def __init__(self, window_trades: int, seen: int = 0) -> None:
        self.pnls = Ring(window_trades)
        self.sizes = Ring(window_trades)
        self.seen = seen
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
            self.judged = figures_of(self.per_unit(), seen=self.seen, keep_pnls=True)
        return self.judged

    @classmethod
    def of(
        cls, window_trades: int, seen: int, pnls: Sequence[float], sizes: Sequence[float]
    ) -> JudgedWindow:
        """A window holding the newest trades of ``pnls`` and ``sizes`` that fit."""
        window = cls(window_trades)
        pnls, sizes = _newest(pnls, window_trades), _newest(sizes, window_trades)
        if len(pnls) == len(sizes):
            for pnl, size in zip(pnls, sizes, strict=True):
                window.add(pnl, size)
        else:  # a state whose rings do not pair up: judged by per_unit_pnls alone
            window.pnls = Ring.of(window_trades, pnls)
            window.sizes = Ring.of(window_trades, sizes)
            window.odd_sizes = -1
        window.seen = seen
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

    def __init__(self, window_trades: int, judged: bool = False) -> None:
        self.stats = RunningStats()
        self.ring = Ring(window_trades)
        self.window = JudgedWindow(window_trades) if judged else None
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


def figures_of(pnls: Sequence[float], *, seen: int = 0, keep_pnls: bool = False) -> Figures:
    """Every figure of a window of pnls, computed directly in O(len(pnls)).

    ``seen`` and, with ``keep_pnls``, the pnls themselves are carried along for the rules
    that judge a window (``Figures.seen``, ``Figures.pnls``). An optimization cycle asks
    for hundreds of groups at once, so the passes lean on C-level builtins (``sorted``,
    ``sum``, ``map``) and tight comprehensions.
    """
    n = len(pnls)
    if n == 0:
        return Figures(seen=seen)
    ordered = sorted(pnls)
    losing = ordered[: bisect_left(ordered, 0.0)]
    winning = ordered[bisect_right(ordered, 0.0) :]
    # Money is summed exactly rounded; the moment sums below add terms that are
    # already centred (or all of one sign), where a plain sum loses nothing that shows.
    total = math.fsum(pnls)
    # Two passes: deviations from the exactly rounded mean, so no digits are lost to
    # the size of the mean (the flaw of summing powers of the raw pnls).
    mean = total / n
    deviations = [p - mean for p in pnls]
    squares = [d * d for d in deviations]
    peak = max_drawdown = 0.0
    # The running pnl from 0.0 (the additions of ``running += pnl``, made by accumulate).
    for running in accumulate(pnls, initial=0.0):
        if running > peak:
            peak = running
        elif peak - running > max_drawdown:
            max_drawdown = peak - running
    return _assemble(
        n=n,
        wins=len(winning),
        losses=len(losing),
        total=total,
        gross_profit=math.fsum(winning),
        gross_loss=-math.fsum(losing),
        loss_squares=sum(map(mul, losing, losing)),
        m2=sum(squares),
        m3=sum(map(mul, squares, deviations)),
        m4=sum(map(mul, squares, squares)),
        max_drawdown=max_drawdown,
        current_drawdown=peak - running,
        seen=seen,
        pnls=tuple(pnls) if keep_pnls else (),
    )


def _assemble(
    *,
    n: int,
    wins: int,
    losses: int,
    total: float,
    gross_profit: float,
    gross_loss: float,
    loss_squares: float,
    m2: float,
    m3: float,
    m4: float,
    max_drawdown: float,
    current_drawdown: float,
    seen: int = 0,
    pnls: tuple[float, ...] = (),
) -> Figures:
    """The figures from the sums both windows keep (m2…m4: central moment sums)."""
    mean = total / n
    mean_abs = (gross_profit + gross_loss) / n
    sharpe = sharpe_ratio(n, total, m2, mean_abs)
    psr, judged_psr = _psr(n, sharpe, m2, m3, m4) if sharpe is not None and n >= 3 else (None, None)
    # Tiny losses whose squares underflow leave no downside deviation to divide by.
    sortino = mean / math.sqrt(loss_squares / n) if losses and loss_squares > 0 else None
    return Figures(
        trades=n,
        wins=wins,
        losses=losses,
        win_rate=wins / n,
        expectancy=mean,
        total_pnl=total,
        gross_profit=gross_profit,
        gross_loss=gross_loss,
        profit_factor=gross_profit / gross_loss if gross_loss > 0 else None,
        profit_factor_infinite=gross_loss == 0 and gross_profit > 0,
        avg_win=gross_profit / wins if wins else None,
        avg_loss=gross_loss / losses if losses else None,
        sharpe=sharpe,
        sortino=sortino,
        sqn=math.sqrt(n) * sharpe if sharpe is not None else None,
        psr=psr,
        judged_psr=judged_psr,
        max_drawdown=max_drawdown,
        current_drawdown=current_drawdown,
        mean_abs_pnl=mean_abs,
        seen=seen,
        pnls=pnls,
    )


def _psr(n: int, sharpe: float, m2: float, m3: float, m4: float) -> tuple[float | None, float]:
    """Probabilistic Sharpe ratio against 0 (None where it is undefined), and the PSR the
    weights and the lifecycle judge by: never more certain than for normal returns.

    The reported PSR divides by √(1 − γ₃·SR + (γ₄ − 1)/4·SR²), the standard error of the
    Sharpe ratio for returns of that skew and kurtosis. Measured on a window, γ₃ and γ₄
    come from the very trades that make the Sharpe ratio: one huge loss makes the mean,
    the Sharpe ratio and the skew negative together, γ₃·SR turns large and positive, and
    the window looks more certain of a negative Sharpe ratio than normal returns would,
    not less. The judged PSR keeps the expression at or above its value for normal
    returns, 1 + SR²/2: fat tails and skew may widen the doubt, never narrow it. Where
    the reported PSR is undefined (a two-valued record, or moments that underflow), the
    judged one is that of normal returns.
    """
    normal = 1.0 + 0.5 * sharpe * sharpe
    scaled = sharpe * math.sqrt(n - 1)
    variance = m2 / n
    sd_cubed = variance * math.sqrt(variance)
    variance_squared = variance * variance
    if sd_cubed == 0 or variance_squared == 0:  # pnls so tiny that their powers underflow
        return None, _phi(scaled / math.sqrt(normal))
    skew = (m3 / n) / sd_cubed
    kurtosis = (m4 / n) / variance_squared
    spread = skew * sharpe
    tail = (kurtosis - 1.0) / 4.0 * sharpe * sharpe
    # Never negative in exact arithmetic (kurtosis >= 1 + skew²); 0 only for a
    # two-valued record, where the Sharpe ratio's uncertainty vanishes and psr is
    # undefined. Within rounding of 0 counts as 0.
    under = 1.0 - spread + tail
    judged = _phi(scaled / math.sqrt(max(under, normal)))
    if under <= _ROUNDING_FLOOR * (1.0 + abs(spread) + tail):
        return None, judged
    return _phi(scaled / math.sqrt(under)), judged


def _phi(z: float) -> float:
    """The standard normal distribution function.

    Φ(z) = (1 + erf(z/√2)) / 2 = erfc(−z/√2) / 2; erfc keeps the digits of a small
    probability that 1 + erf would round away.
    """
    return 0.5 * math.erfc(-z / _SQRT2)


def _check_window(window: str) -> None:
    if window not in WINDOWS:
        raise ValueError(f"unknown window {window!r}; one of {', '.join(WINDOWS)}")


def _grouping(dims: Collection[str]) -> tuple[str, ...]:
    """The grouping of ``dims`` in canonical order (strategy, symbol, regime)."""
    chosen = set(dims)
    if not chosen or not chosen <= set(DIMENSIONS):
        raise ValueError(f"group_by must be a non-empty subset of {', '.join(DIMENSIONS)}")
    return tuple(d for d in DIMENSIONS if d in chosen)


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
    """

    def __init__(
        self, config: PerformanceConfig, *, judging_only: bool = False, max_groups: int = 20_000
    ) -> None:
        self.config = config
        self.groups: dict[tuple[str, ...], dict[tuple[str, ...], Group]] = {
            grouping: {} for grouping in GROUPINGS
        }
        # judging_only: the judged windows by strategy, and by strategy and regime.
        self._windows: (
            tuple[dict[tuple[str, ...], JudgedWindow], dict[tuple[str, ...], JudgedWindow]] | None
        ) = ({}, {}) if judging_only else None
        self._tables = tuple(self.groups.values())  # in GROUPINGS order, for record
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
            for windows, name in ((by_strategy, (strategy,)), (by_regime, (strategy, regime))):
                judging = windows.get(name)
                if judging is None:
                    judging = windows[name] = JudgedWindow(self.config.window_trades)
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
                group = table[key] = Group(window, judged)
            group.add(pnl, size)
        self.last_seq = trade.seq
        self.trade_count += 1

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
        grouping = _grouping(values)
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
        _check_window(window)
        self._check_reported()
        if not group_by:
            raise ValueError("group_by must name at least one of strategy, symbol, regime")
        dims = set(group_by)
        if strategy is not None:
            dims.add("strategy")
        grouping = _grouping(dims)
        table = self.groups[grouping]
        keys = sorted(table)
        if after is not None:
            del keys[: bisect_right(keys, tuple(after))]
        rows: list[dict[str, Any]] = []
        for key in keys:
            if strategy is not None and key[0] != strategy:
                continue
            if limit is not None and len(rows) == limit:
                break
            row: dict[str, Any] = dict(zip(grouping, key, strict=True))
            row.update(table[key].figures(window).as_row())
            rows.append(row)
        return rows

    def strategy_figures(self, strategy: str, window: str = "all") -> Figures | None:
        """One strategy's figures, or None if it has no trade."""
        return self.group_figures(("strategy",), (strategy,), window)

    def recent_by_strategy(self) -> dict[str, Figures]:
        """strategy -> its recent window per unit of size, as the optimization cycle
        judges it (with ``seen`` and ``pnls``); the reported figures are ``rows``'."""
        table = self._judged_table(0)
        return {key[0]: table[key].judged_figures() for key in sorted(table)}

    def recent_by_regime(self) -> dict[str, dict[str, Figures]]:
        """regime -> strategy -> that strategy's recent window in that regime, per unit of
        size, as the optimization cycle judges it."""
        table = self._judged_table(1)
        order = self._by_regime_order
        if len(order) != len(table):
            order = self._by_regime_order = sorted(table, key=lambda k: (k[1], k[0]))
        by_regime: dict[str, dict[str, Figures]] = {}
        for key in order:
            strategy, regime = key
            by_regime.setdefault(regime, {})[strategy] = table[key].judged_figures()
        return by_regime

    def _judged_table(self, which: int) -> Mapping[tuple[str, ...], Group | JudgedWindow]:
        """The groups of ``JUDGED[which]``, whichever kind this model keeps."""
        if self._windows is not None:
            return self._windows[which]
        return self.groups[JUDGED[which]]

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
        if metric not in METRIC_FIELDS:
            raise ValueError(f"unknown metric {metric!r}; one of {', '.join(METRIC_FIELDS)}")
        rows = self.rows(("strategy",), window)
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
        }

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
        cls, config: PerformanceConfig, state: dict[str, Any], *, max_groups: int = 20_000
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
        model = cls(config, max_groups=max_groups)
        window = config.window_trades
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
                group = Group(window, judged)
                group.stats = RunningStats.from_state(stats)
                group.ring = Ring.of(window, recent)
                if judged:
                    if version == STATE_VERSION:
                        pnls, sizes = recent, entry[3]
                    else:
                        pnls = entry[3] if version == 2 else recent
                        sizes = [1.0] * len(pnls)
                    group.window = JudgedWindow.of(window, group.stats.n, pnls, sizes)
                table[tuple(key)] = group
        model.capped_groups = sum(len(model.groups[grouping]) for grouping in CAPPED)
        model.last_seq = int(state["last_seq"])
        model.trade_count = int(state["trade_count"])
        return model


# ----------------------------------------------------------------------------- the actor


class RecentFigures(Ask[tuple[dict[str, Figures], dict[str, dict[str, Figures]]]], frozen=True):
    """Ask: every strategy's recent figures, overall and per regime."""


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
                rows = model.rows(
                    message.group_by,
                    message.window,
                    message.strategy,
                    after=message.after,
                    limit=PAGE_ROWS + 1,
                )
                more = len(rows) > PAGE_ROWS
                del rows[PAGE_ROWS:]
                keys = _grouping({*message.group_by, *(["strategy"] if message.strategy else [])})
                return Performance(
                    group_by=list(message.group_by),
                    window=message.window,
                    rows=rows,
                    next=[rows[-1][k] for k in keys] if more else None,
                )
            case RecentFigures():
                return model.recent_by_strategy(), model.recent_by_regime()
            case GetTop():
                rows = top_rows(
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
                return {
                    "strategies": [
                        {
                            "strategy": name,
                            "all": _row(model.strategy_figures(name, "all")),
                            "recent": _row(model.strategy_figures(name, "recent")),
                            "recent_pnls": model.recent_pnls(name, 30),
                        }
                        for name in names[:PAGE_ROWS]
                    ],
                    "more_strategies": len(names) > PAGE_ROWS,
                    # Bounded like any reply; the rest are get_performance's pages.
                    "regime_effectiveness": model.rows(
                        ("strategy", "regime"), "recent", limit=PAGE_ROWS
                    ),
                    "top_strategies": top_rows(
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


def top_rows(
    model: PerformanceModel,
    metric: str,
    n: int,
    window: str,
    min_trades: int,
    ascending: bool = False,
) -> list[dict[str, Any]]:
    """``PerformanceModel.top_strategies`` among the strategies with at least
    ``min_trades`` trades in the window (``get_top`` and the report's top strategies)."""
    ranked = model.top_strategies(metric, len(model.strategies()), window, ascending)
    return [row for row in ranked if row["trades"] >= min_trades][:n]


def _row(figures: Figures | None) -> dict[str, Any] | None:
    return figures.as_row() if figures is not None else None
