"""Bars in a replay: the market the signals were taken in, so that detection is replayed
as live (docs/replay.md, "Bars and detected regimes").

``alphad replay FILE --bars BARS`` reads one bar per row and feeds each to the daemon's
own book of bars (``actors.market.MarketRegimes``, the code behind ``market_bars``) at
its close, one request a bar, as a feeder sends them live. Signals and trades then take
the regime ``[regimes] source`` says, read from that book at their time, exactly as
``score_signal`` and ``record_trade`` do in the daemon. Bars whose true regime is known
(``alphad simulate --bars``) also score the book's readings against it, and with
``--hmm`` the hidden Markov model's on the same bars beside them: the daemon does not run
it (docs/regimes.md), so it is run here over each series after the replay and counts no
signal.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import msgspec

from alphad.actors.market import MarketRegimes, RegimesConfig, bar_ms
from alphad.actors.regimes import Bar, Reading, bar_problem
from alphad.actors.regimes_hmm import HmmDetector
from alphad.actors.regimes_sim import Score, pool, score
from alphad.protocol.messages import (
    BarSize,
    MarketBar,
    MarketBars,
    Name,
    Price,
    TimestampMs,
    Volume,
)
from alphad.replay.signals import InputError, Table, after_last_day, read_table, write_table

TrueRegime = Literal["trending_up", "trending_down", "ranging", "volatile"]  # REGIMES

# The event kind of a bar's close: before everything else at the same millisecond, as a
# bar closed by a signal's time is read by it (actors/market.py).
BAR = -1


class BarRow(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One closed bar of a symbol, as ``market_bars`` carries it, with its series."""

    symbol: Name
    bar_size: BarSize
    ts_ms: TimestampMs  # when the bar opened; it closes bar_size later
    open: Price
    high: Price
    low: Price
    close: Price
    volume: Volume = 0.0
    # The bar's true regime when it is known (simulated bars); detection never reads it.
    true_regime: TrueRegime | None = None


class Accuracy(msgspec.Struct, kw_only=True):
    """The book's readings against the bars' true regimes, pooled over the series
    (``actors.regimes_sim.score`` per series)."""

    bars: int  # bars fed, each with its true regime
    read: int  # of them with a reading (the rule set warms up on each series' first bars)
    accuracy: float  # share of the read bars whose reading is the true regime
    confusion: dict[str, dict[str, int]]  # true regime → reading → bars
    switches: int  # switches of the true regime after a series' first reading
    missed: int  # of them never named for 3 bars in a row before the next switch
    median_delay: float | None  # bars from a switch until it is named, over the named ones

    @classmethod
    def of(cls, found: Score, bars: int) -> Accuracy:
        return cls(
            bars=bars,
            read=found.read,
            accuracy=found.accuracy,
            confusion=found.confusion,
            switches=len(found.delays) + found.missed,
            missed=found.missed,
            median_delay=found.median_delay,
        )


class Detection(msgspec.Struct, kw_only=True, omit_defaults=True):
    """What the bars did in a replay: how many, and where the signals' regimes came from."""

    source: str  # [regimes] source
    bars: int  # bars fed to the book (those closing after the last event are not)
    series: int  # symbol × bar size
    signals_detected: int  # counted under a detected regime
    signals_no_reading: int  # the detected regime counts and there was no reading yet
    signals_bot: int  # counted under the bot's label
    signals_none: int  # the bot's label counts and the row has none
    accuracy: Accuracy | None = None  # with the bars' true regimes
    # With them and --hmm: the hidden Markov model on the same bars (it counts no signal).
    hmm_accuracy: Accuracy | None = None


def _check_bar(row: BarRow, line: int, seen: dict[Any, int]) -> str:
    problem = after_last_day("ts_ms", row.ts_ms) or bar_problem(_bar(row), None)
    if problem:
        return problem
    known = row.true_regime is not None
    other = seen.get(("true_regime", not known))
    if other is not None:
        given, empty = (line, other) if known else (other, line)
        return (
            f"`true_regime` is given on line {given} and empty on line {empty}:"
            " give it on every bar or on none"
        )
    seen.setdefault(("true_regime", known), line)
    first = seen.setdefault((row.symbol, row.bar_size, row.ts_ms), line)
    if first != line:
        return f"bar of {row.symbol} {row.bar_size} at ts_ms {row.ts_ms} already on line {first}"
    return ""


BARS = Table(BarRow, ("volume", "true_regime"), "bars", _check_bar)


def read_bars(path: str | Path) -> list[BarRow]:
    """Every bar of a CSV or JSON-lines file, validated as the signals are (any order)."""
    return read_table(path, BARS)


def write_bars(rows: Sequence[BarRow], path: str | Path) -> int:
    """Write bars as CSV or JSON lines (by extension); returns how many."""
    return write_table(rows, path, BARS)


def _bar(row: BarRow) -> Bar:
    return Bar(row.ts_ms, row.open, row.high, row.low, row.close, row.volume)


class BarFeed:
    """The replay's bars through the daemon's book, and the regime of each signal."""

    def __init__(
        self,
        bars: Sequence[BarRow],
        config: RegimesConfig,
        n_signals: int,
        on_label: Callable[[str], None] | None = None,
    ) -> None:
        series = {(b.symbol, b.bar_size) for b in bars}
        if len(series) > config.max_series:
            raise InputError(
                f"{len(series)} series of bars (symbol × bar size), more than [regimes]"
                f" max_series {config.max_series}"
            )
        self.bars = bars
        self.series = len(series)
        self.config = config
        self.market = MarketRegimes(config, on_label=on_label)
        # The regime each signal counted under, by row (None: none).
        self.regimes: list[str | None] = [None] * n_signals
        self.sources = {"bot": 0, "detected": 0, "none": 0, "no_reading": 0}
        self.fed = 0
        # The rule set's reading after each bar fed, by bar (None: none yet).
        self.readings: dict[int, Reading | None] = {}

    def events(self, until_ms: int) -> list[tuple[int, int, int]]:
        """(close time, BAR, bar) of every bar closing by ``until_ms``: a later one can
        change nothing."""
        out = []
        for j, row in enumerate(self.bars):
            close = row.ts_ms + bar_ms(row.bar_size)
            if close <= until_ms:
                out.append((close, BAR, j))
        return out

    def take(self, j: int) -> None:
        """Bar ``j`` at its close: one ``market_bars`` of one bar."""
        row = self.bars[j]
        bar = MarketBar(
            ts_ms=row.ts_ms,
            open=row.open,
            high=row.high,
            low=row.low,
            close=row.close,
            volume=row.volume,
        )
        taken = self.market.add(MarketBars(symbol=row.symbol, bar_size=row.bar_size, bars=[bar]))
        self.fed += 1
        label = taken.regime if taken.regime_ts_ms == row.ts_ms else None
        self.readings[j] = (
            Reading(label, taken.confidence or 0.0, row.ts_ms) if label is not None else None
        )

    def signal(self, i: int, symbol: str, ts_ms: int, bot_regime: str | None) -> str | None:
        """The regime signal ``i`` counts under, as ``score_signal`` resolves it."""
        regime, source, _ = self.market.resolve(symbol, ts_ms, bot_regime)
        self.regimes[i] = regime
        if source is None:
            self.sources["none"] += 1
        elif source == "bot":
            self.sources["bot"] += 1
        elif regime is None:
            self.sources["no_reading"] += 1
        else:
            self.sources["detected"] += 1
        return regime

    def refused(self, i: int, symbol: str, ts_ms: int, bot_regime: str | None) -> None:
        """A signal the admission refused: its regime for the baseline's tables, with no
        label learnt, as the daemon never scores it."""
        source = self.market.source
        keeps_bot = source == "bot" or (source == "bot_else_detected" and bot_regime is not None)
        self.regimes[i] = bot_regime if keeps_bot else self.market.at(symbol, ts_ms)

    def trade(self, symbol: str, entry_ts_ms: int, bot_regime: str | None) -> str | None:
        """The regime a closing trade counts under, as ``record_trade`` resolves it (at its
        entry time, from the bars held when it closes)."""
        return self.market.resolve(symbol, entry_ts_ms, bot_regime)[0]

    def detection(self, *, hmm: bool = False) -> Detection:
        """What the bars did; with ``hmm``, the hidden Markov model scored beside them."""
        sources = self.sources
        return Detection(
            source=self.market.source,
            bars=self.fed,
            series=self.series,
            signals_detected=sources["detected"],
            signals_no_reading=sources["no_reading"],
            signals_bot=sources["bot"],
            signals_none=sources["none"],
            accuracy=self._scored(lambda fed: [self.readings[j] for j in fed]),
            hmm_accuracy=self._scored(self._hmm_readings) if hmm else None,
        )

    def _hmm_readings(self, fed: Sequence[int]) -> list[Reading | None]:
        """A fresh hidden Markov model over one series' bars, as the book would run it
        (its fit window within ``max_bars``)."""
        detector = HmmDetector(fit_window=self.config.max_bars - 1)
        return [detector.update(_bar(self.bars[j])) for j in fed]

    def _scored(self, read: Callable[[Sequence[int]], Sequence[Reading | None]]) -> Accuracy | None:
        """``read``'s readings of each series' bars fed against their true regimes,
        pooled; None when the bars carry none."""
        if not self.bars or self.bars[0].true_regime is None:
            return None
        series: dict[tuple[str, str], list[int]] = {}
        for j in self.readings:  # in the order fed: by close time, so by time in a series
            row = self.bars[j]
            series.setdefault((row.symbol, row.bar_size), []).append(j)
        scores = [
            score([self.bars[j].true_regime or "" for j in fed], read(fed))
            for fed in series.values()
        ]
        return Accuracy.of(pool(scores), len(self.readings))
