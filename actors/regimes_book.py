"""The book: every (symbol, bar size) series' window of bars and its detectors.

Apart from the detectors because it is the one part that takes batches: it checks a
whole batch before taking any bar of it, bounds what is held, skips a batch resent after
a lost reply, and restores series from snapshots; the detectors only ever see one
checked bar at a time.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Iterable, Iterator, MutableSequence, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any

from alphad.actors.regimes import Bar, BarsRefused, Reading, bar_problem, require
from alphad.actors.regimes_hmm import HmmDetector, HmmSettings
from alphad.actors.regimes_rules import RuleDetector, RuleSettings, RuleState

DEFAULT_MAX_BARS = 1_000
DEFAULT_MAX_SERIES = 10_000


@dataclass(frozen=True, slots=True)
class Detected:
    """Both detectors' readings after a series' last bar (None: still warming up)."""

    rules: Reading | None
    hmm: Reading | None
    bars: int  # bars of the series held in its window


def leave_oldest(start: int, max_bars: int, columns: Sequence[MutableSequence[Any]]) -> int:
    """Where a full window of ``max_bars`` in ``columns`` (equal lengths, the window
    their values from ``start`` on) begins once its oldest value is left behind for a new
    one: every ``max_bars`` values left behind are dropped at once."""
    start += 1
    if start >= max_bars:
        for column in columns:
            del column[:start]
        return 0
    return start


class BarWindow:
    """A series' last ``max_bars`` bars, oldest first, column by column in packed arrays:
    8 bytes a value, where a ``Bar`` of Python numbers takes about 230 bytes. A bar read
    back is made again from its columns, equal to the one taken. The oldest bars are
    dropped from the arrays ``max_bars`` at a time (``start`` is where the window
    begins), so a bar costs no copy of the window."""

    __slots__ = ("close", "high", "low", "max_bars", "open", "start", "ts_ms", "volume")

    def __init__(self, max_bars: int) -> None:
        self.max_bars = max_bars
        self.start = 0
        self.ts_ms = array("q")
        self.open, self.high, self.low = array("d"), array("d"), array("d")
        self.close, self.volume = array("d"), array("d")

    def append(self, bar: Bar) -> None:
        if len(self.ts_ms) - self.start >= self.max_bars:  # full: the oldest goes
            columns = (self.ts_ms, self.open, self.high, self.low, self.close, self.volume)
            self.start = leave_oldest(self.start, self.max_bars, columns)
        self.ts_ms.append(bar.ts_ms)
        self.open.append(bar.open)
        self.high.append(bar.high)
        self.low.append(bar.low)
        self.close.append(bar.close)
        self.volume.append(bar.volume)

    def extend(self, bars: Iterable[Bar]) -> None:
        for bar in bars:
            self.append(bar)

    def __len__(self) -> int:
        return len(self.ts_ms) - self.start

    def __getitem__(self, i: int) -> Bar:
        n = len(self)
        if not -n <= i < n:
            raise IndexError("bar index out of range")
        j = self.start + i if i >= 0 else len(self.ts_ms) + i
        return Bar(self.ts_ms[j], self.open[j], self.high[j], self.low[j], self.close[j],
                   self.volume[j])  # fmt: skip

    def __iter__(self) -> Iterator[Bar]:
        columns = (self.ts_ms, self.open, self.high, self.low, self.close, self.volume)
        rows = islice(zip(*columns, strict=True), self.start, None)
        return (Bar(t, o, h, lo, c, v) for t, o, h, lo, c, v in rows)

    def find(self, ts_ms: int) -> Bar | None:
        """The bar that opened at ``ts_ms``, if the window holds it."""
        i = bisect_left(self.ts_ms, ts_ms, lo=self.start)
        return self[i - self.start] if i < len(self.ts_ms) and self.ts_ms[i] == ts_ms else None


class Series:
    """One (symbol, bar size): its bounded window of bars and its detectors (the hidden
    Markov model only when the book runs it)."""

    def __init__(self, max_bars: int, rules: RuleSettings, hmm: HmmSettings | None) -> None:
        self.bars = BarWindow(max_bars)
        self.rules = RuleDetector(rules)
        self.hmm = HmmDetector(hmm, fit_window=max_bars - 1) if hmm is not None else None
        self.last = Detected(None, None, 0)

    def add(self, bar: Bar) -> Detected:
        self.bars.append(bar)
        hmm = self.hmm.update(bar) if self.hmm is not None else None
        self.last = Detected(self.rules.update(bar), hmm, len(self.bars))
        return self.last

    def held(self, ts_ms: int) -> Bar | None:
        """The held bar that opened at ``ts_ms``, if any."""
        return self.bars.find(ts_ms)


class RegimeBook:
    """Every series' bars and detected regimes, fed batch by batch.

    ``with_hmm = False`` runs the rule set alone (the daemon's book: a fit of the hidden
    Markov model takes tens of milliseconds, too long for the event loop).
    """

    def __init__(
        self,
        *,
        max_bars: int = DEFAULT_MAX_BARS,
        max_series: int = DEFAULT_MAX_SERIES,
        rules: RuleSettings | None = None,
        hmm: HmmSettings | None = None,
        with_hmm: bool = True,
    ) -> None:
        require(max_bars >= 2, f"max_bars must be at least 2, not {max_bars}")
        require(max_series >= 1, f"max_series must be at least 1, not {max_series}")
        self.max_bars = max_bars
        self.max_series = max_series
        self.rules = rules or RuleSettings()
        self.hmm = (hmm or HmmSettings()) if with_hmm else None
        # The model is fitted on the window's returns: it must hold enough for a first fit.
        if self.hmm is not None:
            require(
                max_bars > self.hmm.min_returns,
                f"max_bars must be above the HMM's min_returns {self.hmm.min_returns},"
                f" not {max_bars}",
            )
        self._series: dict[tuple[str, str], Series] = {}

    def add_bars(
        self, symbol: str, bar_size: str, bars: Sequence[Bar], *, resent: bool = False
    ) -> list[Detected]:
        """Take a batch of closed bars, oldest first; the readings after each new one.

        With ``resent``, the leading bars of the batch that are held already, exactly as
        sent (a batch sent again after a lost reply), are skipped rather than refused.
        Raises ``BarsRefused`` naming the first bad bar, having taken none of the batch.
        """
        key = (symbol, bar_size)
        series = self._series.get(key)
        if series is None and len(self._series) >= self.max_series:
            raise BarsRefused(
                f"{symbol} {bar_size}: already {self.max_series} series, the most held"
            )
        if not bars:
            raise BarsRefused(f"{symbol} {bar_size}: no bars")
        if len(bars) > self.max_bars:
            raise BarsRefused(
                f"{symbol} {bar_size}: {len(bars)} bars in one batch, at most {self.max_bars}"
            )
        last = series.bars[-1].ts_ms if series is not None and series.bars else None
        repeats = 0
        if resent and series is not None and last is not None:
            for bar in bars:
                ts_ms = bar.ts_ms
                if not isinstance(ts_ms, int) or ts_ms > last or series.held(ts_ms) != bar:
                    break
                if repeats and ts_ms <= bars[repeats - 1].ts_ms:
                    break
                repeats += 1
        previous = last
        for i in range(repeats, len(bars)):
            bar = bars[i]
            problem = bar_problem(bar, previous)
            if problem:
                known = resent and series is not None and type(bar.ts_ms) is int
                held = series.held(bar.ts_ms) if known and series is not None else None
                if held is not None and held != bar:
                    problem += ", and the bar held for that time differs"
                raise BarsRefused(f"{symbol} {bar_size}: bar {i} (ts_ms {bar.ts_ms}): {problem}")
            previous = bar.ts_ms
        if series is None:
            series = self._series[key] = Series(self.max_bars, self.rules, self.hmm)
        return [series.add(bar) for bar in bars[repeats:]]

    def detected(self, symbol: str, bar_size: str) -> Detected | None:
        """The readings after the series' last bar; None for a series never fed."""
        series = self._series.get((symbol, bar_size))
        return series.last if series is not None else None

    def bars(self, symbol: str, bar_size: str) -> list[Bar]:
        """The series' window, oldest first."""
        series = self._series.get((symbol, bar_size))
        return list(series.bars) if series is not None else []

    def rule_state(self, symbol: str, bar_size: str) -> RuleState:
        """The series' rule set after its last bar (``restore``); the series must be held."""
        return self._series[(symbol, bar_size)].rules.to_state()

    def restore(
        self,
        symbol: str,
        bar_size: str,
        bars: Sequence[Bar],
        rules: RuleState,
        last: Reading | None,
    ) -> None:
        """Hold a series again as it was: its window (the newest ``max_bars`` kept), its
        rule set after the last bar and the reading there. The rule set alone: a book
        that runs the hidden Markov model refits it from bars instead."""
        require(self.hmm is None, "a book with the hidden Markov model restores no series")
        require(len(bars) > 0, f"{symbol} {bar_size}: no bars to restore")
        series = self._series[(symbol, bar_size)] = Series(self.max_bars, self.rules, None)
        series.bars.extend(bars)
        series.rules = RuleDetector.from_state(self.rules, bars[-1], rules)
        series.last = Detected(last, None, len(series.bars))
