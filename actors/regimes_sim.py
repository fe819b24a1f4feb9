"""Bars with known regimes, and how well a detector finds them (docs/regimes.md).

``simulate`` draws a regime path from a small Markov chain over ``REGIMES`` and prices
from it: a drift and a volatility per regime, and in ``ranging`` a pull back to the
price the range started at. ``score`` compares a detector's labels with the truth: the
confusion matrix, the accuracy, and the delay after each switch until the detector first
names the new regime for a few bars in a row (a switch it never names so before the
next one is missed).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from statistics import median

from alphad.actors.regimes import (
    RANGING,
    REGIMES,
    TRENDING_DOWN,
    TRENDING_UP,
    VOLATILE,
    Bar,
    Reading,
)

DAY_MS = 86_400_000
START_MS = 1_577_836_800_000  # 2020-01-01 UTC


@dataclass(frozen=True, slots=True)
class RegimeShape:
    """How prices move in one regime: per bar, log drift, σ and pull to the range's price."""

    drift: float
    sigma: float
    pull: float = 0.0


@dataclass(frozen=True, kw_only=True)
class SimSettings:
    """The regime chain and the prices of each regime."""

    shapes: dict[str, RegimeShape] = field(
        default_factory=lambda: {
            TRENDING_UP: RegimeShape(0.002, 0.01),
            TRENDING_DOWN: RegimeShape(-0.002, 0.01),
            RANGING: RegimeShape(0.0, 0.01, pull=0.05),
            VOLATILE: RegimeShape(0.0, 0.03),
        }
    )
    mean_bars: int = 120  # a regime lasts this many bars on average (geometric)
    # How often the chain moves into each regime when it leaves one (volatile is rarer).
    weights: dict[str, float] = field(
        default_factory=lambda: {TRENDING_UP: 1.0, TRENDING_DOWN: 1.0, RANGING: 1.0, VOLATILE: 0.5}
    )


def simulate(
    bars: int, seed: int, settings: SimSettings | None = None
) -> tuple[list[Bar], list[str]]:
    """``bars`` daily bars from 2020-01-01 and the true regime of each, from ``seed``."""
    s = settings or SimSettings()
    draw = random.Random(seed)
    regime = draw.choice(REGIMES)
    price = anchor = 100.0
    out: list[Bar] = []
    truth: list[str] = []
    for i in range(bars):
        if i and draw.random() < 1.0 / s.mean_bars:
            others = [r for r in REGIMES if r != regime]
            regime = draw.choices(others, weights=[s.weights[r] for r in others])[0]
            anchor = price
        bar = draw_bar(draw, s.shapes[regime], START_MS + i * DAY_MS, price, anchor)
        out.append(bar)
        truth.append(regime)
        price = bar.close
    return out, truth


def draw_bar(
    draw: random.Random, shape: RegimeShape, ts_ms: int, price: float, anchor: float
) -> Bar:
    """One bar of ``shape`` after a close at ``price``, pulled towards ``anchor`` (the
    range's first price): the open near ``price``, the close a step of the regime from
    it, high and low around both."""
    open_ = price * math.exp(draw.gauss(0.0, 0.1 * shape.sigma))
    move = shape.drift + shape.sigma * draw.gauss(0.0, 1.0) - shape.pull * math.log(open_ / anchor)
    close = open_ * math.exp(move)
    high = max(open_, close) * math.exp(abs(draw.gauss(0.0, 0.5 * shape.sigma)))
    low = min(open_, close) * math.exp(-abs(draw.gauss(0.0, 0.5 * shape.sigma)))
    return Bar(ts_ms, open_, high, low, close)


@dataclass(frozen=True, kw_only=True)
class Score:
    """A detector against the truth, on the bars where it answered."""

    confusion: dict[str, dict[str, int]]  # true regime → detected label → bars
    read: int  # bars with a reading
    accuracy: float  # share of read bars whose label is the true regime
    delays: list[int]  # per named switch: bars from the switch until it is named
    missed: int  # switches never named before the next switch
    median_delay: float | None


def score(truth: Sequence[str], readings: Sequence[Reading | None], *, hold: int = 3) -> Score:
    """Compare the readings bar by bar with the truth (both one per bar). A switch is
    named at the first bar of ``hold`` bars in a row labelled the new regime, all
    before the next switch: one stray right label in a flickering detector does not
    count as finding it."""
    if len(truth) != len(readings):
        raise ValueError(f"{len(truth)} true regimes for {len(readings)} readings")
    confusion = {t: dict.fromkeys(REGIMES, 0) for t in REGIMES}
    right = read = 0
    for t, reading in zip(truth, readings, strict=True):
        if reading is None:
            continue
        read += 1
        confusion[t][reading.label] += 1
        right += reading.label == t
    delays: list[int] = []
    missed = 0
    starts = [i for i in range(1, len(truth)) if truth[i] != truth[i - 1]]
    for n, start in enumerate(starts):
        if readings[start - 1] is None:
            continue  # the detector was still warming up: not a switch it could see
        end = starts[n + 1] if n + 1 < len(starts) else len(truth)
        new = truth[start]
        hit = next(
            (
                i - start
                for i in range(start, end - hold + 1)
                if all(_label(readings[j]) == new for j in range(i, i + hold))
            ),
            None,
        )
        if hit is None:
            missed += 1
        else:
            delays.append(hit)
    return Score(
        confusion=confusion,
        read=read,
        accuracy=right / read if read else 0.0,
        delays=delays,
        missed=missed,
        median_delay=median(delays) if delays else None,
    )


def pool(scores: Sequence[Score]) -> Score:
    """Several series' scores as one: confusions and misses summed, the accuracy over
    all read bars, the median over all delays."""
    confusion = {t: dict.fromkeys(REGIMES, 0) for t in REGIMES}
    for s in scores:
        for t in REGIMES:
            for label in REGIMES:
                confusion[t][label] += s.confusion[t][label]
    read = sum(s.read for s in scores)
    delays = [d for s in scores for d in s.delays]
    return Score(
        confusion=confusion,
        read=read,
        accuracy=sum(confusion[t][t] for t in REGIMES) / read if read else 0.0,
        delays=delays,
        missed=sum(s.missed for s in scores),
        median_delay=median(delays) if delays else None,
    )


def _label(reading: Reading | None) -> str | None:
    return reading.label if reading is not None else None
