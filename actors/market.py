"""Detected regimes in the daemon: the bars bots send, the rule set's readings, and the
regime a signal or a trade counts under (docs/regimes.md).

The book runs the rule set alone: a bar costs it a few µs, so ``market_bars`` is answered
on the gateway's receive path like ``score_signal``, and the scorer, which owns the
book, reads it with no message and no await. The hidden Markov model stays offline
(``python -m bench.regimes``): one fit takes tens of milliseconds. Bars are not the
audit trail: they are checked, not journaled; the book goes into the engine's snapshots
(``state_series``) and a restart holds it again (``restore``), so a kill -9 loses only
the bars taken after the last snapshot.
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_right
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from alphad.actors.errors import BadInput, LimitReached
from alphad.actors.regimes import REGIMES, Bar, BarsRefused, Reading, bar_problem
from alphad.actors.regimes_book import RegimeBook, leave_oldest
from alphad.actors.regimes_rules import RuleState
from alphad.protocol.messages import BarSize, BarsTaken, MarketBars, Name

Source = Literal["bot", "detected", "bot_else_detected"]
_UNIT_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_encoder = msgspec.msgpack.Encoder()
_LABEL_INDEX = {label: i for i, label in enumerate(REGIMES)}
BAR_AHEAD_MS = 300_000
"""How far after the daemon's clock a bar may open (clocks a few minutes apart): a bar
sent once closed opened before it. A bar stamped later, a year ahead say, would make
every real bar after it "before the previous bar" for good, so it is refused."""


class RegimesConfig(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """``[regimes]``: which regime signals and trades count under, and the bars' bounds."""

    # "bot": the label the bot sends (none: none); "detected": alphad's reading at the
    # signal's or trade's time, whatever the bot sends; "bot_else_detected": the bot's
    # label when it sends one, else the reading.
    source: Source = "bot"
    # The series whose readings are a symbol's regime; unset: the longest bar size held
    # for the symbol that has a reading at the time.
    bar_size: BarSize | None = None
    # Bars held per series (symbol × bar size), and series held: about 0.21 KiB a bar
    # held, so at most max_bars × max_series × 0.21 KiB (42 MiB at the defaults).
    max_bars: Annotated[int, Meta(ge=2, le=100_000)] = 1_000
    max_series: Annotated[int, Meta(ge=1, le=1_000_000)] = 200
    # Bars in one market_bars request: each holds the event loop a few µs.
    max_batch: Annotated[int, Meta(ge=1, le=10_000)] = 500

    def __post_init__(self) -> None:
        if self.max_batch > self.max_bars:
            raise ValueError(
                f"max_batch {self.max_batch} is above max_bars {self.max_bars}: a batch must"
                " fit in the window"
            )


def bar_ms(bar_size: str) -> int:
    """The length of a bar of ``bar_size`` ("15m", "4h", "1d") in milliseconds."""
    return int(bar_size[:-1]) * _UNIT_MS[bar_size[-1]]


class Readings:
    """One series' rule-set readings by the time their bar closed, as many as its bars,
    oldest first, in packed arrays (the label by its place in ``REGIMES``); the oldest
    are dropped ``max_bars`` at a time, as the bars' (``BarWindow``)."""

    __slots__ = ("bar_ms", "bar_size", "closes", "codes", "confidences", "max_bars", "start")

    def __init__(self, bar_size: str, max_bars: int) -> None:
        self.bar_size = bar_size
        self.bar_ms = bar_ms(bar_size)
        self.max_bars = max_bars
        self.start = 0
        self.closes = array("q")
        self.codes = bytearray()
        self.confidences = array("d")

    def add(self, close_ms: int, label: str, confidence: float) -> None:
        """One more reading; the oldest goes past ``max_bars``."""
        if len(self.closes) - self.start >= self.max_bars:  # full: the oldest goes
            columns = (self.closes, self.codes, self.confidences)
            self.start = leave_oldest(self.start, self.max_bars, columns)
        self.closes.append(close_ms)
        self.codes.append(_LABEL_INDEX[label])
        self.confidences.append(confidence)

    def __len__(self) -> int:
        return len(self.closes) - self.start

    def label(self, i: int) -> str:
        """The label of the ``i``-th reading held (negative: from the newest)."""
        return REGIMES[self.codes[self.start + i if i >= 0 else i]]

    def columns(self) -> tuple[list[int], list[int], list[float]]:
        """The readings held, column by column: close times, label places, confidences."""
        start = self.start
        return (
            self.closes[start:].tolist(),
            list(self.codes[start:]),
            self.confidences[start:].tolist(),
        )

    def at(self, ts_ms: int) -> int | None:
        """The index of the last reading at or before ``ts_ms``; None if there is none."""
        closes, start = self.closes, self.start
        if len(closes) == start or ts_ms < closes[start]:
            return None
        if ts_ms >= closes[-1]:  # the common case: a signal after the last bar
            return len(closes) - 1 - start
        return bisect_right(closes, ts_ms, lo=start) - 1 - start


class SeriesState(msgspec.Struct, array_like=True, forbid_unknown_fields=True):
    """One series in a snapshot: its window column by column, oldest first, the readings
    kept with it (the time each bar closed, the label's place in ``REGIMES``, the
    confidence) and the rule set after its last bar."""

    symbol: Name
    bar_size: BarSize
    ts_ms: list[int]
    open: list[float]
    high: list[float]
    low: list[float]
    close: list[float]
    volume: list[float]
    closes: list[int]
    labels: list[Annotated[int, Meta(ge=0, lt=len(REGIMES))]]
    confidences: list[float]
    rules: RuleState

    def bars(self) -> list[Bar]:
        """The window's bars; ``ValueError`` unless they are as the wire would take them."""
        columns = (self.open, self.high, self.low, self.close, self.volume)
        if not self.ts_ms or any(len(c) != len(self.ts_ms) for c in columns):
            raise ValueError(f"{self.symbol} {self.bar_size}: the bars' columns differ in length")
        bars = [Bar(*values) for values in zip(self.ts_ms, *columns, strict=True)]
        previous = None
        for i, bar in enumerate(bars):
            problem = bar_problem(bar, previous)
            if problem:
                raise ValueError(f"{self.symbol} {self.bar_size}: bar {i}: {problem}")
            previous = bar.ts_ms
        n = len(self.closes)
        if not (n == len(self.labels) == len(self.confidences) and n <= len(bars)):
            raise ValueError(f"{self.symbol} {self.bar_size}: the readings do not fit the bars")
        return bars


def _utc(ts_ms: int) -> str:
    """A time for a refusal's words, ``2026-12-06 22:40:00 UTC``."""
    try:
        stamp = datetime.fromtimestamp(ts_ms / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return "out of range"
    return stamp.strftime("%Y-%m-%d %H:%M:%S UTC")


class MarketRegimes:
    """The daemon's book of bars and the regime each symbol was in, by time."""

    def __init__(
        self,
        config: RegimesConfig,
        on_label: Callable[[str], None] | None = None,
        clock: Callable[[], int] | None = None,
    ) -> None:
        self.config = config
        # The daemon's clock (ms since the epoch): no bar opens far after it. None for
        # history (a replay, a bench), whose bars are not checked against today.
        self.clock = clock
        self.source = config.source
        # Whether the bot's label counts when no bar was ever taken (the hot path's test).
        self.keeps_bot = config.source != "detected"
        self.book = RegimeBook(
            max_bars=config.max_bars, max_series=config.max_series, with_hmm=False
        )
        self.series: dict[tuple[str, str], Readings] = {}
        # symbol -> its series' readings, the longest bar size first; empty until a bar.
        self.symbols: dict[str, list[Readings]] = {}
        self.bars_taken = 0  # since the start, not counting the bars restored
        self.bars_restored = 0
        self._on_label = on_label
        self._labels_used: set[str] = set()

    # ------------------------------------------------------------------ bars in

    def add(self, request: MarketBars) -> BarsTaken:
        """Check a batch and take it whole, or refuse it whole (``bad_request``, ``limit``)."""
        symbol, bar_size = request.symbol, request.bar_size
        config = self.config
        wire_bars = request.bars
        if len(wire_bars) > config.max_batch:
            raise BadInput(
                f"{len(wire_bars)} bars in one request, at most {config.max_batch}"
                " ([regimes] max_batch): send them in batches",
            )
        key = (symbol, bar_size)
        readings = self.series.get(key)
        if readings is None and len(self.series) >= config.max_series:
            raise LimitReached(
                f"{config.max_series} series of bars already held ([regimes] max_series);"
                f" {symbol} {bar_size} would be one more",
            )
        newest = wire_bars[-1].ts_ms if wire_bars else 0
        if self.clock is not None and newest > (now := self.clock()) + BAR_AHEAD_MS:
            # Oldest first, so the newest is the last unless the batch is out of order
            # (refused below): one look here.
            raise BadInput(
                f"{symbol} {bar_size}: bar {len(wire_bars) - 1} (ts_ms {newest}): opens at "
                f"{_utc(newest)}, more than {BAR_AHEAD_MS // 60_000} min after the daemon's "
                f"clock ({_utc(now)}): send bars once closed, stamped with their open time; "
                "no bar of this request was taken"
            )
        bars = [Bar(b.ts_ms, b.open, b.high, b.low, b.close, b.volume) for b in wire_bars]
        try:
            detected = self.book.add_bars(symbol, bar_size, bars, resent=True)
        except BarsRefused as exc:
            raise BadInput(f"{exc}; no bar of this request was taken") from None
        if readings is None:
            readings = self._hold(symbol, bar_size)
        width = readings.bar_ms
        for found in detected:
            reading = found.rules
            if reading is not None:
                readings.add(reading.ts_ms + width, reading.label, reading.confidence)
        self.bars_taken += len(detected)
        last = self.book.detected(symbol, bar_size)
        rules = last.rules if last is not None else None
        return BarsTaken(
            symbol=symbol,
            bar_size=bar_size,
            taken=len(detected),
            repeated=len(bars) - len(detected),
            held=last.bars if last is not None else 0,
            regime=rules.label if rules is not None else None,
            confidence=rules.confidence if rules is not None else None,
            regime_ts_ms=rules.ts_ms if rules is not None else None,
        )

    def _hold(self, symbol: str, bar_size: str) -> Readings:
        readings = self.series[(symbol, bar_size)] = Readings(bar_size, self.config.max_bars)
        held = self.symbols.setdefault(symbol, [])
        held.append(readings)
        # Longest first; of two as long (60m and 1h), by name, not by which came first (a
        # replay's answer then hung on the order of its bars file's rows).
        held.sort(key=lambda r: (-r.bar_ms, r.bar_size))
        return readings

    # ------------------------------------------------------------------ snapshots

    def state_series(self) -> Iterator[msgspec.Raw]:
        """Every series for a snapshot, in the order they were first held, each encoded
        when asked (so at one instant of its own stream: the caller may let bars in
        between two series). A series held after the call began is left out."""
        for key in list(self.series):
            yield msgspec.Raw(_encoder.encode(self._state_of(key)))

    def _state_of(self, key: tuple[str, str]) -> SeriesState:
        symbol, bar_size = key
        bars = self.book.bars(symbol, bar_size)
        closes, labels, confidences = self.series[key].columns()
        return SeriesState(
            symbol=symbol,
            bar_size=bar_size,
            ts_ms=[b.ts_ms for b in bars],
            open=[b.open for b in bars],
            high=[b.high for b in bars],
            low=[b.low for b in bars],
            close=[b.close for b in bars],
            volume=[b.volume for b in bars],
            closes=closes,
            labels=labels,
            confidences=confidences,
            rules=self.book.rule_state(symbol, bar_size),
        )

    def restore(self, saved: Any) -> int:
        """Hold again the series a snapshot's ``state_series`` saved, into an empty book:
        the newest ``max_series`` of them, each with its newest ``max_bars`` bars and
        readings; returns the bars held. ``ValueError`` on a state it cannot read, having
        taken none of it."""
        if self.series:
            raise ValueError("market state: the book already holds bars")
        try:
            states = msgspec.convert(saved, list[SeriesState])
        except msgspec.ValidationError as exc:
            raise ValueError(f"market state: {exc}") from None
        if len({(state.symbol, state.bar_size) for state in states}) < len(states):
            raise ValueError("market state: a series is saved twice")
        settings = self.book.rules
        checked = []
        for state in _newest_series(states, self.config.max_series):
            rules = state.rules
            if max(len(rules.seed), len(rules.dx_seed)) > settings.period or (
                len(rules.shares) > settings.vol_window
            ):
                raise ValueError(f"market state: {state.symbol} {state.bar_size}: rule set")
            checked.append((state, state.bars()))
        for state, bars in checked:
            self._restore_series(state, bars)
        self.bars_restored = sum(min(len(bars), self.config.max_bars) for _, bars in checked)
        return self.bars_restored

    def _restore_series(self, state: SeriesState, bars: list[Bar]) -> None:
        symbol, bar_size = state.symbol, state.bar_size
        readings = self._hold(symbol, bar_size)
        for close_ms, code, confidence in zip(
            state.closes, state.labels, state.confidences, strict=True
        ):
            readings.add(close_ms, REGIMES[code], confidence)
        last = None
        if len(readings) and readings.closes[-1] == bars[-1].ts_ms + readings.bar_ms:
            last = Reading(readings.label(-1), readings.confidences[-1], bars[-1].ts_ms)
        self.book.restore(symbol, bar_size, bars, state.rules, last)

    # ------------------------------------------------------------------ regimes out

    def at(self, symbol: str, ts_ms: int) -> str | None:
        """The symbol's detected regime at ``ts_ms``: the last reading of a bar closed at
        or before it (of ``[regimes] bar_size``, else the longest bar size that has one)."""
        held = self.symbols.get(symbol)
        if held is None:
            return None
        wanted = self.config.bar_size
        for readings in held if wanted is None else self._sized(symbol, wanted):
            i = readings.at(ts_ms)
            if i is not None:
                return readings.label(i)
        return None

    def _sized(self, symbol: str, bar_size: str) -> list[Readings]:
        readings = self.series.get((symbol, bar_size))
        return [readings] if readings is not None else []

    def resolve(
        self, symbol: str, ts_ms: int, bot_regime: str | None
    ) -> tuple[str | None, str | None, str | None]:
        """(the regime to count under, its source, the detected regime) for a signal or a
        trade of ``symbol`` at ``ts_ms`` that the bot labelled ``bot_regime``.

        The source is "bot" when the bot's label counts, "detected" when the reading
        does (even when there is none: then the regime is None too), None when the bot's
        label counts and it sent none.
        """
        detected = self.at(symbol, ts_ms)
        source = self.source
        if source == "bot" or (source == "bot_else_detected" and bot_regime is not None):
            return bot_regime, ("bot" if bot_regime is not None else None), detected
        if detected is not None and detected not in self._labels_used:
            self._labels_used.add(detected)
            if self._on_label is not None:
                self._on_label(detected)
        return detected, "detected", detected


def _newest_series(states: list[SeriesState], most: int) -> list[SeriesState]:
    """Of the saved series, the ``most`` least behind, in their saved order: behind by how
    many of its own bars its last close is before the latest close of any series (a
    daily series fed until the stop is at most one bar behind, a minute series left idle
    for an hour sixty). Not those held last: a live series first held long ago was
    dropped for two left idle, and then refused ``limit`` for good."""
    if len(states) <= most:
        return states
    closes = [
        state.ts_ms[-1] + bar_ms(state.bar_size) if state.ts_ms else 0 for state in states
    ]
    latest = max(closes)

    def behind(i: int) -> tuple[float, int]:
        lag = (latest - closes[i]) / bar_ms(states[i].bar_size) if states[i].ts_ms else math.inf
        return -lag, i  # as far behind: the one held later, as before

    kept = sorted(range(len(states)), key=behind)[len(states) - most :]
    return [states[i] for i in sorted(kept)]
