"""Textbook strategies with textbook parameters, each closed trade one replay row.

Every strategy reads a bar's indicators at its close and decides; the order fills at
the next bar's open. A trade's row has ``ts_ms`` = the open time of its entry bar (when
the bot asks alphad) and ``exit_ts_ms`` = the open time of its exit bar, and its pnl is
the return at size 1.0 on a notional of 100 (so a pnl of 1.0 is 1 %), net of ``cost``
per side (5 bps by default). A position still open at the end of the history is left
out, so cutting a history at any bar leaves every earlier row as it was.

One position per strategy at a time, long or short:

- `sma_cross`: SMA(20) crosses SMA(50), long above, short below; the opposite cross
  leaves and reverses.
- `macd`: MACD(12, 26) crosses its signal line EMA(9); the same.
- `momentum_roc`: ROC(12) crosses 0; the same.
- `rsi_reversion`: flat and RSI(14) < 30: long, > 70: short; leaves when RSI is back
  to 50.
- `bollinger_reversion`: flat and the close below the lower Bollinger band (20, 2σ):
  long, above the upper: short; leaves when the close is back to the middle band.
- `donchian_breakout`: flat and the close above the highest high of the last 20 bars:
  long, below their lowest low: short; leaves on a close beyond the 10-bar channel the
  other way (the turtles' system 1).
- `random_entry`: flat, with probability 0.05 a bar, side and confidence at random
  (seeded by the history and the strategy); leaves after 10 bars. No edge.

**confidence** = 0.5 + 0.5 × tanh(d), d ≥ 0 the distance of the entry's indicator past
its threshold in its natural unit: |SMA(20) − SMA(50)|, |MACD − signal| and the
breakout beyond the channel in ATR(14); |ROC| in ATR(14) / close; RSI's distance past
30 or 70 in units of 10; the close beyond the band in σ. A signal exactly at its
threshold says 0.5; the random strategy's is 0.5 + 0.5 × a uniform draw.

**confluence** = how many of six indicator readings agree with the side, the
strategy's own left out: SMA(20) > SMA(50), MACD > signal, RSI(14) > 50, close >
SMA(20), close above the middle of the 20-bar Donchian channel, ROC(12) > 0 (each says
buy when true, sell when false).

**regime** = `trending` when ADX(14) > 25, else `ranging`, then `_high_vol` when
at least half of the last 100 values of ATR(14) / close (this bar's included) are at
or below this bar's, that is at or above their lower median, else `_low_vol`. Every
indicator uses bars up to the signal bar only.

Indicators start after ``WARMUP`` bars. EMAs, RSI, ATR and ADX are seeded with the
simple mean of their first window (Wilder's smoothing for RSI, ATR and ADX).
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise

from alphad.replay.signals import SignalRow
from bench.markets.corpus import Bar

WARMUP = 60  # bars before the first signal: every indicator is defined by then
NOTIONAL = 100.0  # pnl is in percent of the position's notional
DEFAULT_COST_BPS = 5.0
RANDOM_ENTRY_CHANCE = 0.05
RANDOM_HOLD_BARS = 10
VOL_WINDOW = 100
STRATEGIES = (
    "sma_cross",
    "macd",
    "rsi_reversion",
    "bollinger_reversion",
    "donchian_breakout",
    "momentum_roc",
    "random_entry",
)
# The reading of each indicator that counts towards confluence, by the strategy it belongs to.
READINGS = (
    "sma_cross",
    "macd",
    "rsi_reversion",
    "bollinger_reversion",
    "donchian_breakout",
    "momentum_roc",
)

Series = list[float | None]


@dataclass(frozen=True, slots=True)
class Trade:
    """One closed trade: its replay row and the bars it was entered and left on."""

    row: SignalRow
    entry_bar: int
    exit_bar: int


@dataclass(frozen=True)
class Indicators:
    """Every indicator of a history, bar by bar (None before it is defined)."""

    close: list[float]
    sma20: Series
    sma50: Series
    macd: Series
    macd_signal: Series
    rsi: Series
    bb_sigma: Series
    high20: Series  # highest high of the 20 bars before this one
    low20: Series
    high10: Series
    low10: Series
    roc: Series
    atr: Series
    adx: Series
    vol_rank: Series  # share of the last VOL_WINDOW ATR/close values at or below this one


def indicators(bars: Sequence[Bar]) -> Indicators:
    """The indicators of ``bars``; each value uses bars up to its own only."""
    close = [b.close for b in bars]
    high = [b.high for b in bars]
    low = [b.low for b in bars]
    macd_line = _difference(ema(close, 12), ema(close, 26))
    atr_values = atr(bars, 14)
    atr_share: Series = [
        a / c if a is not None else None for a, c in zip(atr_values, close, strict=True)
    ]
    return Indicators(
        close=close,
        sma20=sma(close, 20),
        sma50=sma(close, 50),
        macd=macd_line,
        macd_signal=ema(macd_line, 9),
        rsi=rsi(close, 14),
        bb_sigma=stdev(close, 20),
        high20=_before(high, 20, max),
        low20=_before(low, 20, min),
        high10=_before(high, 10, max),
        low10=_before(low, 10, min),
        roc=[close[i] / close[i - 12] - 1.0 if i >= 12 else None for i in range(len(close))],
        atr=atr_values,
        adx=adx(bars, 14),
        vol_rank=_rank(atr_share, VOL_WINDOW),
    )


def sma(values: Sequence[float], n: int) -> Series:
    out: Series = [None] * len(values)
    total = 0.0
    for i, v in enumerate(values):
        total += v
        if i >= n:
            total -= values[i - n]
        if i >= n - 1:
            out[i] = total / n
    return out


def stdev(values: Sequence[float], n: int) -> Series:
    """Population standard deviation of the last ``n`` values (Bollinger's σ)."""
    out: Series = [None] * len(values)
    for i in range(n - 1, len(values)):
        window = values[i - n + 1 : i + 1]
        mean = math.fsum(window) / n
        out[i] = math.sqrt(math.fsum((v - mean) ** 2 for v in window) / n)
    return out


def ema(values: Sequence[float | None], n: int) -> Series:
    """EMA with α = 2 / (n + 1), seeded with the mean of the first ``n`` defined values."""
    alpha = 2.0 / (n + 1)
    return _seeded(values, n, lambda current, v: alpha * v + (1.0 - alpha) * current)


def _wilder(values: Sequence[float | None], n: int) -> Series:
    """Wilder's smoothing: the mean of the first ``n`` defined values, then
    (previous × (n − 1) + value) / n."""
    return _seeded(values, n, lambda current, v: (current * (n - 1) + v) / n)


def _seeded(
    values: Sequence[float | None], n: int, step: Callable[[float, float], float]
) -> Series:
    """A recursive average: None until ``n`` defined values, their mean, then ``step``
    from the previous value and the next defined one (None values are passed over)."""
    out: Series = [None] * len(values)
    seen: list[float] = []
    current: float | None = None
    for i, v in enumerate(values):
        if v is None:
            continue
        if current is None:
            seen.append(v)
            if len(seen) == n:
                current = math.fsum(seen) / n
                out[i] = current
            continue
        current = step(current, v)
        out[i] = current
    return out


def rsi(close: Sequence[float], n: int) -> Series:
    gains: Series = [None] + [max(close[i] - close[i - 1], 0.0) for i in range(1, len(close))]
    losses: Series = [None] + [max(close[i - 1] - close[i], 0.0) for i in range(1, len(close))]
    out: Series = []
    for g, lo in zip(_wilder(gains, n), _wilder(losses, n), strict=True):
        if g is None or lo is None:
            out.append(None)
        elif lo == 0.0:
            out.append(100.0 if g > 0.0 else 50.0)
        else:
            out.append(100.0 - 100.0 / (1.0 + g / lo))
    return out


def _true_range(bars: Sequence[Bar]) -> Series:
    out: Series = [None]
    for prev, bar in pairwise(bars):
        out.append(max(bar.high - bar.low, abs(bar.high - prev.close), abs(bar.low - prev.close)))
    return out


def atr(bars: Sequence[Bar], n: int) -> Series:
    return _wilder(_true_range(bars), n)


def adx(bars: Sequence[Bar], n: int) -> Series:
    plus: Series = [None]
    minus: Series = [None]
    for prev, bar in pairwise(bars):
        up, down = bar.high - prev.high, prev.low - bar.low
        plus.append(up if up > down and up > 0 else 0.0)
        minus.append(down if down > up and down > 0 else 0.0)
    tr, dm_plus, dm_minus = _wilder(_true_range(bars), n), _wilder(plus, n), _wilder(minus, n)
    dx: Series = []
    for t, p, m in zip(tr, dm_plus, dm_minus, strict=True):
        if t is None or p is None or m is None:
            dx.append(None)
            continue
        di_plus, di_minus = (100.0 * p / t, 100.0 * m / t) if t > 0 else (0.0, 0.0)
        total = di_plus + di_minus
        dx.append(100.0 * abs(di_plus - di_minus) / total if total > 0 else 0.0)
    return _wilder(dx, n)


def _before(values: Sequence[float], n: int, pick: Callable[[Sequence[float]], float]) -> Series:
    return [pick(values[i - n : i]) if i >= n else None for i in range(len(values))]


def _difference(a: Series, b: Series) -> Series:
    return [x - y if x is not None and y is not None else None for x, y in zip(a, b, strict=True)]


def _rank(values: Series, window: int) -> Series:
    out: Series = [None] * len(values)
    for i, v in enumerate(values):
        if v is None:
            continue
        recent = [x for x in values[max(0, i - window + 1) : i + 1] if x is not None]
        out[i] = sum(1 for x in recent if x <= v) / len(recent)
    return out


# ----------------------------------------------------------------------------- signals


def readings(ind: Indicators, i: int) -> dict[str, bool]:
    """Each indicator's reading at bar ``i``: True says buy."""
    close = ind.close[i]
    sma20, sma50, macd, signal = ind.sma20[i], ind.sma50[i], ind.macd[i], ind.macd_signal[i]
    rsi_value, high20, low20, roc = ind.rsi[i], ind.high20[i], ind.low20[i], ind.roc[i]
    assert None not in (sma20, sma50, macd, signal, rsi_value, high20, low20, roc)
    return {
        "sma_cross": sma20 > sma50,  # type: ignore[operator]
        "macd": macd > signal,  # type: ignore[operator]
        "rsi_reversion": rsi_value > 50.0,  # type: ignore[operator]
        "bollinger_reversion": close > sma20,  # type: ignore[operator]
        "donchian_breakout": close > (high20 + low20) / 2.0,  # type: ignore[operator]
        "momentum_roc": roc > 0.0,  # type: ignore[operator]
    }


def regime(ind: Indicators, i: int) -> str:
    trend = "trending" if (ind.adx[i] or 0.0) > 25.0 else "ranging"
    vol = "high_vol" if (ind.vol_rank[i] or 0.0) >= 0.5 else "low_vol"
    return f"{trend}_{vol}"


def confidence_of(distance: float) -> float:
    return 0.5 + 0.5 * math.tanh(max(distance, 0.0))


# A rule sees the indicators, the bar and the open position (+1 long, -1 short, 0 flat,
# with the bar it was entered on) and answers (leave, enter side, distance past the
# threshold): leave closes the open position; enter opens one (after leaving, if both).
Decision = tuple[bool, int, float]


def _cross(a: Series, b: Series, i: int) -> int:
    """+1 when ``a`` crosses above ``b`` at bar i, -1 below, else 0."""
    a0, a1, b0, b1 = a[i - 1], a[i], b[i - 1], b[i]
    if a0 is None or a1 is None or b0 is None or b1 is None:
        return 0
    if a1 > b1 and a0 <= b0:
        return 1
    if a1 < b1 and a0 >= b0:
        return -1
    return 0


def _atr(ind: Indicators, i: int) -> float:
    return ind.atr[i] or math.inf


def sma_cross(ind: Indicators, i: int, side: int, _entered: int) -> Decision:
    cross = _cross(ind.sma20, ind.sma50, i)
    distance = abs(ind.sma20[i] - ind.sma50[i]) / _atr(ind, i)  # type: ignore[operator]
    return (cross != 0 and cross != side and side != 0, cross if cross != side else 0, distance)


def macd(ind: Indicators, i: int, side: int, _entered: int) -> Decision:
    cross = _cross(ind.macd, ind.macd_signal, i)
    distance = abs(ind.macd[i] - ind.macd_signal[i]) / _atr(ind, i)  # type: ignore[operator]
    return (cross != 0 and cross != side and side != 0, cross if cross != side else 0, distance)


def momentum_roc(ind: Indicators, i: int, side: int, _entered: int) -> Decision:
    before, now = ind.roc[i - 1], ind.roc[i]
    assert before is not None and now is not None
    cross = 1 if now > 0.0 >= before else -1 if now < 0.0 <= before else 0
    scale = _atr(ind, i) / ind.close[i]
    distance = abs(now) / scale
    return (cross != 0 and cross != side and side != 0, cross if cross != side else 0, distance)


def rsi_reversion(ind: Indicators, i: int, side: int, _entered: int) -> Decision:
    value = ind.rsi[i]
    assert value is not None
    if side > 0:
        return (value >= 50.0, 0, 0.0)
    if side < 0:
        return (value <= 50.0, 0, 0.0)
    if value < 30.0:
        return (False, 1, (30.0 - value) / 10.0)
    if value > 70.0:
        return (False, -1, (value - 70.0) / 10.0)
    return (False, 0, 0.0)


def bollinger_reversion(ind: Indicators, i: int, side: int, _entered: int) -> Decision:
    close, middle, sigma = ind.close[i], ind.sma20[i], ind.bb_sigma[i]
    assert middle is not None and sigma is not None
    if side > 0:
        return (close >= middle, 0, 0.0)
    if side < 0:
        return (close <= middle, 0, 0.0)
    spread = sigma or math.inf
    lower, upper = middle - 2.0 * sigma, middle + 2.0 * sigma
    if close < lower:
        return (False, 1, (lower - close) / spread)
    if close > upper:
        return (False, -1, (close - upper) / spread)
    return (False, 0, 0.0)


def donchian_breakout(ind: Indicators, i: int, side: int, _entered: int) -> Decision:
    close = ind.close[i]
    high20, low20, high10, low10 = ind.high20[i], ind.low20[i], ind.high10[i], ind.low10[i]
    assert high20 is not None and low20 is not None and high10 is not None and low10 is not None
    if side > 0:
        return (close < low10, 0, 0.0)
    if side < 0:
        return (close > high10, 0, 0.0)
    if close > high20:
        return (False, 1, (close - high20) / _atr(ind, i))
    if close < low20:
        return (False, -1, (low20 - close) / _atr(ind, i))
    return (False, 0, 0.0)


RULES: dict[str, Callable[[Indicators, int, int, int], Decision]] = {
    "sma_cross": sma_cross,
    "macd": macd,
    "rsi_reversion": rsi_reversion,
    "bollinger_reversion": bollinger_reversion,
    "donchian_breakout": donchian_breakout,
    "momentum_roc": momentum_roc,
}


def trades_of(
    bars: Sequence[Bar],
    history: str,
    symbol: str,
    *,
    cost_bps: float = DEFAULT_COST_BPS,
    strategies: Sequence[str] = STRATEGIES,
) -> list[Trade]:
    """Every closed trade of every strategy on one history, in order of entry."""
    if not 0.0 <= cost_bps <= 100.0:
        raise ValueError(f"cost per side must be 0 – 100 bps, not {cost_bps}")
    ind = indicators(bars)
    cost = cost_bps / 10_000.0
    trades: list[Trade] = []
    for strategy in strategies:
        trades += _run(strategy, bars, ind, history, symbol, cost)
    trades.sort(key=lambda t: (t.entry_bar, STRATEGIES.index(t.row.strategy)))
    return trades


def _run(
    strategy: str, bars: Sequence[Bar], ind: Indicators, history: str, symbol: str, cost: float
) -> list[Trade]:
    rule = RULES.get(strategy)
    if rule is None and strategy != "random_entry":
        raise ValueError(f"unknown strategy {strategy!r}")
    seed = int.from_bytes(hashlib.sha256(f"{history}:{strategy}".encode()).digest()[:8], "big")
    draw = random.Random(seed)
    out: list[Trade] = []
    side, entered = 0, -1
    entry_row: tuple[int, float, int, str] | None = None  # bar, confidence, confluence, regime
    last = len(bars) - 1
    for i in range(WARMUP, last):  # a decision at bar i fills at bar i + 1's open
        confidence = 0.5
        if rule is None:
            chance = draw.random()  # one draw every bar, whatever the position: prefix-stable
            leave = side != 0 and i - entered >= RANDOM_HOLD_BARS
            enter = 0
            distance = 0.0
            if side == 0 and chance < RANDOM_ENTRY_CHANCE:
                enter = 1 if draw.random() < 0.5 else -1
                confidence = 0.5 + 0.5 * draw.random()
        else:
            leave, enter, distance = rule(ind, i, side, entered)
            confidence = confidence_of(distance)
        if leave and entry_row is not None:
            out.append(_trade(strategy, symbol, side, entry_row, i + 1, bars, cost))
            side, entry_row = 0, None
        if enter and side == 0:
            agree = readings(ind, i)
            confluence = sum(
                1 for name, bullish in agree.items() if name != strategy and bullish == (enter > 0)
            )
            side, entered = enter, i
            entry_row = (i + 1, confidence, confluence, regime(ind, i))
    return out


def _trade(
    strategy: str,
    symbol: str,
    side: int,
    entry: tuple[int, float, int, str],
    exit_bar: int,
    bars: Sequence[Bar],
    cost: float,
) -> Trade:
    entry_bar, confidence, confluence, regime_name = entry
    entry_price, exit_price = bars[entry_bar].open, bars[exit_bar].open
    gross = (exit_price - entry_price) / entry_price * side
    row = SignalRow(
        ts_ms=bars[entry_bar].ts_ms,
        exit_ts_ms=bars[exit_bar].ts_ms,
        strategy=strategy,
        symbol=symbol,
        side="buy" if side > 0 else "sell",
        confidence=round(confidence, 6),
        confluence=confluence,
        regime=regime_name,
        pnl=round(NOTIONAL * (gross - 2.0 * cost), 10),
        signal_id=f"{strategy}-{entry_bar}",
    )
    return Trade(row=row, entry_bar=entry_bar, exit_bar=exit_bar)
