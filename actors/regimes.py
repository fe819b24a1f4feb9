"""Market regime detection from a symbol's own bars (docs/regimes.md).

Per (symbol, bar size) the model keeps a bounded window of checked bars and two online
detectors, each of which answers, after every bar, one label of ``REGIMES`` and a
confidence in [0, 1], or nothing while it is still warming up:

- ``RuleDetector``: ADX(14) says whether the market trends and +DI / −DI which way;
  the rank of ATR(14) / close among its own trailing values says whether it is
  volatile. Wilder smoothing is updated one bar at a time, the rank over a bounded
  trailing window: the work per bar does not grow with history.
- ``HmmDetector``: a Gaussian hidden Markov model with three states on log returns,
  fitted by Baum–Welch on the symbol's recent returns and refitted every
  ``refit_every`` bars; between fits the forward algorithm carries the state
  probabilities one bar on. The probabilities are filtered (bars up to now only),
  never smoothed, and states are named by their own mean and volatility.

Both read a bar only when it has closed, and nothing they answered at a bar changes
with the bars that come after it (tests/test_regimes.py checks both on many cut points).
A refused batch changes nothing: every bar of it is checked before any is taken.

This module holds what every part of detection shares: the labels, the closed bar and
its checks, a detector's reading. The rule set is in actors/regimes_rules.py, the hidden
Markov model in actors/regimes_hmm.py, the book of every series in actors/regimes_book.py:
each reads on its own, and this module, imported by all of them, imports none.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

TRENDING_UP = "trending_up"
TRENDING_DOWN = "trending_down"
RANGING = "ranging"
VOLATILE = "volatile"
# Every label a detector answers; the order is the order of reports and of ties.
REGIMES: tuple[str, ...] = (TRENDING_UP, TRENDING_DOWN, RANGING, VOLATILE)


class BarsRefused(ValueError):
    """A batch of bars was refused; the message names the bar and the problem."""


@dataclass(frozen=True, slots=True)
class Bar:
    """One closed bar: its open time (ms since the epoch, UTC), its prices and volume."""

    ts_ms: int
    open: float
    high: float
    low: float
    close: float
    volume: float = 0.0  # kept with the bar; no detector reads it


@dataclass(frozen=True, slots=True)
class Reading:
    """What a detector says after one bar: a label of ``REGIMES`` and its confidence."""

    label: str
    confidence: float
    ts_ms: int  # the bar it was read at


def require(ok: bool, message: str) -> None:
    """Raise ``ValueError(message)`` unless ``ok``: the check of every setting."""
    if not ok:
        raise ValueError(message)


def bar_problem(bar: Bar, previous_ts_ms: int | None) -> str:
    """What is wrong with ``bar`` after a bar opened at ``previous_ts_ms``; "" if nothing."""
    ts_ms = bar.ts_ms
    if type(ts_ms) is not int or ts_ms < 0:
        return f"time {ts_ms!r} is not a non-negative integer of milliseconds"
    if previous_ts_ms is not None and ts_ms <= previous_ts_ms:
        what = "repeats" if ts_ms == previous_ts_ms else "is before"
        return f"time {ts_ms} {what} the previous bar's {previous_ts_ms}"
    low, volume = bar.low, bar.volume
    # The common case in one test (NaN fails every comparison); the slow one says why.
    if (
        type(bar.open) is type(bar.high) is type(low) is type(bar.close) is type(volume) is float
        and 0.0 < low <= bar.open <= bar.high < math.inf
        and low <= bar.close <= bar.high
        and 0.0 <= volume < math.inf
    ):
        return ""
    return _price_problem(bar)


def _price_problem(bar: Bar) -> str:
    for name in ("open", "high", "low", "close"):
        value = getattr(bar, name)
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not (math.isfinite(value) and value > 0)
        ):
            return f"{name} {value!r} is not a positive finite price"
    volume = bar.volume
    if (
        isinstance(volume, bool)
        or not isinstance(volume, (int, float))
        or not (math.isfinite(volume) and volume >= 0)
    ):
        return f"volume {volume!r} is not a non-negative finite number"
    if bar.high < bar.low:
        return f"high {bar.high} is below low {bar.low}"
    if not (bar.low <= bar.open <= bar.high and bar.low <= bar.close <= bar.high):
        return f"open {bar.open} or close {bar.close} is outside low {bar.low} – high {bar.high}"
    return ""
