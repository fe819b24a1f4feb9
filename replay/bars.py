"""Bars in a replay: the market the signals were taken in, so that detection is replayed
as live (docs/replay.md, "Bars and detected regimes").

``alphad replay FILE --bars BARS`` reads one bar per row and feeds each to the daemon's
own book of bars (``actors.market.MarketRegimes``, the code behind ``market_bars``) at
its close, one request a bar, as a feeder sends them live. Signals and trades then take
the regime ``[regimes] source`` says, read from that book at their time, exactly as
``score_signal`` and ``record_trade`` do in the daemon.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import msgspec

from actors.market import MarketRegimes, RegimesConfig, bar_ms
from actors.regimes import Bar, bar_problem
from protocol.messages import BarSize, MarketBar, MarketBars, Name, Price, TimestampMs, Volume
from replay.signals import InputError, Table, read_table, write_table

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


class Detection(msgspec.Struct, kw_only=True):
    """What the bars did in a replay: how many, and where the signals' regimes came from."""

    source: str  # [regimes] source
    bars: int  # bars fed to the book (those closing after the last event are not)
    series: int  # symbol × bar size
    signals_detected: int  # counted under a detected regime
    signals_no_reading: int  # the detected regime counts and there was no reading yet
    signals_bot: int  # counted under the bot's label
    signals_none: int  # the bot's label counts and the row has none


def _check_bar(row: BarRow, line: int, seen: dict[Any, int]) -> str:
    problem = bar_problem(_bar(row), None)
    if problem:
        return problem
    first = seen.setdefault((row.symbol, row.bar_size, row.ts_ms), line)
    if first != line:
        return f"bar of {row.symbol} {row.bar_size} at ts_ms {row.ts_ms} already on line {first}"
    return ""


BARS = Table(BarRow, ("volume",), "bars", _check_bar)


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
        self.market = MarketRegimes(config, on_label=on_label)
        # The regime each signal counted under, by row (None: none).
        self.regimes: list[str | None] = [None] * n_signals
        self.sources = {"bot": 0, "detected": 0, "none": 0, "no_reading": 0}
        self.fed = 0

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
        self.market.add(MarketBars(symbol=row.symbol, bar_size=row.bar_size, bars=[bar]))
        self.fed += 1

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

    def detection(self) -> Detection:
        sources = self.sources
        return Detection(
            source=self.market.source,
            bars=self.fed,
            series=self.series,
            signals_detected=sources["detected"],
            signals_no_reading=sources["no_reading"],
            signals_bot=sources["bot"],
            signals_none=sources["none"],
        )
