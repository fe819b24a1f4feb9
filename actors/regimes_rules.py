"""The rule set: ADX / +DI / −DI and the rank of ATR / close, one closed bar at a time.

Apart from the hidden Markov model because the daemon runs it alone, on its event loop
(docs/regimes.md, In the daemon), and keeps its state in the snapshots: the Wilder sums
carry history beyond the window of bars, so a restart restores ``RuleState`` rather
than reading the window again.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right, insort
from collections import deque
from dataclasses import dataclass

from alphad.actors.regimes import (
    RANGING,
    TRENDING_DOWN,
    TRENDING_UP,
    VOLATILE,
    Bar,
    Reading,
    require,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class RuleSettings:
    """The rule set's parameters (docs/regimes.md has the reasons for each default)."""

    period: int = 14  # ADX and ATR, Wilder's
    trend_adx: float = 25.0  # ADX at or above: trending
    vol_window: int = 500  # trailing ATR / close values the rank is taken over
    vol_min_values: int = 50  # values the rank needs before it is read
    volatile_rank: float = 0.8  # rank at or above: volatile, whatever the trend

    def __post_init__(self) -> None:
        require(self.period >= 2, f"period must be at least 2, not {self.period}")
        require(
            0.0 < self.trend_adx < 100.0, f"trend_adx must be in (0, 100), not {self.trend_adx}"
        )
        require(
            2 <= self.vol_min_values <= self.vol_window,
            f"vol_min_values must be 2 – vol_window ({self.vol_window}), not {self.vol_min_values}",
        )
        require(
            0.0 < self.volatile_rank < 1.0,
            f"volatile_rank must be in (0, 1), not {self.volatile_rank}",
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class RuleState:
    """``RuleDetector.to_state``: the Wilder seeds and sums (true range, +DM, −DM), the DX
    seed, ADX and the trailing ATR / close values, oldest first."""

    seed: list[tuple[float, float, float]]
    sums: tuple[float, float, float]
    dx_seed: list[float]
    adx: float | None
    shares: list[float]


class RuleDetector:
    """ADX / +DI / −DI and the rank of ATR / close, one bar at a time.

    volatile when the rank is at or above ``volatile_rank``; else trending (up if
    +DI > −DI) when ADX is at or above ``trend_adx``; else ranging. The confidence is
    0.5 at the deciding threshold and rises linearly to 1 (at rank 1, or 25 ADX points
    past it).
    """

    def __init__(self, settings: RuleSettings | None = None) -> None:
        self.settings = settings or RuleSettings()
        self._previous: Bar | None = None
        # Wilder sums of true range, +DM and −DM, and of DX: seeded with the mean of the
        # first ``period`` values, as Wilder did (bench/markets/strategies.py does the same).
        self._seed: list[tuple[float, float, float]] = []
        self._tr = self._plus = self._minus = 0.0
        self._dx_seed: list[float] = []
        self._adx: float | None = None
        self._shares: deque[float] = deque()
        self._sorted: list[float] = []

    @property
    def adx(self) -> float | None:
        """ADX after the last bar (None until defined)."""
        return self._adx

    @property
    def atr(self) -> float | None:
        """ATR after the last bar (None until defined)."""
        return self._tr if len(self._seed) == self.settings.period else None

    def update(self, bar: Bar) -> Reading | None:
        """Take one closed bar; the reading after it (None while warming up)."""
        previous, self._previous = self._previous, bar
        if previous is None:
            return None
        n = self.settings.period
        true_range = max(
            bar.high - bar.low, abs(bar.high - previous.close), abs(bar.low - previous.close)
        )
        up, down = bar.high - previous.high, previous.low - bar.low
        plus = up if up > down and up > 0.0 else 0.0
        minus = down if down > up and down > 0.0 else 0.0
        if len(self._seed) < n:
            self._seed.append((true_range, plus, minus))
            if len(self._seed) < n:
                return None
            self._tr = math.fsum(v[0] for v in self._seed) / n
            self._plus = math.fsum(v[1] for v in self._seed) / n
            self._minus = math.fsum(v[2] for v in self._seed) / n
        else:
            self._tr = (self._tr * (n - 1) + true_range) / n
            self._plus = (self._plus * (n - 1) + plus) / n
            self._minus = (self._minus * (n - 1) + minus) / n
        di_plus, di_minus = (
            (self._plus / self._tr, self._minus / self._tr) if self._tr > 0 else (0.0, 0.0)
        )
        total = di_plus + di_minus
        dx = 100.0 * abs(di_plus - di_minus) / total if total > 0 else 0.0
        if self._adx is None:
            self._dx_seed.append(dx)
            if len(self._dx_seed) == n:
                self._adx = math.fsum(self._dx_seed) / n
        else:
            self._adx = (self._adx * (n - 1) + dx) / n
        rank = self._rank(self._tr / bar.close)
        if self._adx is None or rank is None:
            return None
        return Reading(*self._label(self._adx, di_plus > di_minus, rank), bar.ts_ms)

    def to_state(self) -> RuleState:
        """What the detector carries from bar to bar, but the last bar (the window's last):
        ``from_state`` over the same last bar answers every later bar as this one would."""
        return RuleState(
            seed=list(self._seed),
            sums=(self._tr, self._plus, self._minus),
            dx_seed=list(self._dx_seed),
            adx=self._adx,
            shares=list(self._shares),
        )

    @classmethod
    def from_state(cls, settings: RuleSettings, last: Bar | None, state: RuleState) -> RuleDetector:
        """A detector that has read bars up to ``last`` and was then in ``state``."""
        detector = cls(settings)
        detector._previous = last
        detector._seed = [(tr, plus, minus) for tr, plus, minus in state.seed]
        detector._tr, detector._plus, detector._minus = state.sums
        detector._dx_seed = list(state.dx_seed)
        detector._adx = state.adx
        detector._shares = deque(state.shares)
        detector._sorted = sorted(state.shares)  # the window kept sorted: the same values
        return detector

    def _rank(self, share: float) -> float | None:
        """The share of the trailing values (this one included) below ``share``, ties
        counted half: on flat prices every value ties and the rank is 0.5, not 1."""
        s = self.settings
        self._shares.append(share)
        insort(self._sorted, share)
        if len(self._shares) > s.vol_window:
            old = self._shares.popleft()
            del self._sorted[bisect_right(self._sorted, old) - 1]
        if len(self._shares) < s.vol_min_values:
            return None
        below, upto = bisect_left(self._sorted, share), bisect_right(self._sorted, share)
        return (below + upto) / 2.0 / len(self._sorted)

    def _label(self, adx: float, up: bool, rank: float) -> tuple[str, float]:
        s = self.settings
        if rank >= s.volatile_rank:
            return VOLATILE, 0.5 + 0.5 * (rank - s.volatile_rank) / (1.0 - s.volatile_rank)
        if adx >= s.trend_adx:
            return (TRENDING_UP if up else TRENDING_DOWN), 0.5 + 0.5 * min(
                1.0, (adx - s.trend_adx) / 25.0
            )
        return RANGING, 0.5 + 0.5 * min(1.0, (s.trend_adx - adx) / s.trend_adx)
