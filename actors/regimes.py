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
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right, insort
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

TRENDING_UP = "trending_up"
TRENDING_DOWN = "trending_down"
RANGING = "ranging"
VOLATILE = "volatile"
# Every label a detector answers; the order is the order of reports and of ties.
REGIMES: tuple[str, ...] = (TRENDING_UP, TRENDING_DOWN, RANGING, VOLATILE)
DEFAULT_MAX_BARS = 1_000
DEFAULT_MAX_SERIES = 10_000


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


@dataclass(frozen=True, slots=True, kw_only=True)
class RuleSettings:
    """The rule set's parameters (docs/regimes.md has the reasons for each default)."""

    period: int = 14  # ADX and ATR, Wilder's
    trend_adx: float = 25.0  # ADX at or above: trending
    vol_window: int = 500  # trailing ATR / close values the rank is taken over
    vol_min_values: int = 50  # values the rank needs before it is read
    volatile_rank: float = 0.8  # rank at or above: volatile, whatever the trend

    def __post_init__(self) -> None:
        _require(self.period >= 2, f"period must be at least 2, not {self.period}")
        _require(
            0.0 < self.trend_adx < 100.0, f"trend_adx must be in (0, 100), not {self.trend_adx}"
        )
        _require(
            2 <= self.vol_min_values <= self.vol_window,
            f"vol_min_values must be 2 – vol_window ({self.vol_window}), not {self.vol_min_values}",
        )
        _require(
            0.0 < self.volatile_rank < 1.0,
            f"volatile_rank must be in (0, 1), not {self.volatile_rank}",
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class HmmSettings:
    """The hidden Markov model's parameters (docs/regimes.md)."""

    states: int = 3
    fit_window: int = 500  # most recent log returns a fit uses
    min_returns: int = 100  # returns before the first fit
    refit_every: int = 50  # bars between fits
    max_iterations: int = 10  # Baum–Welch iterations per fit (warm-started)
    tolerance: float = 1e-5  # a fit stops when the log-likelihood per return gains less
    variance_floor: float = 0.05  # no state's variance below this share of the window's
    sticky: float = 0.02  # prior bars of staying put per state, as a share of the window
    min_share: float = 0.05  # a state holding less of the window does not set the calm σ
    stay: float = 0.95  # the first fit's start: chance a state lasts one more bar
    volatile_ratio: float = 1.75  # a state this many times the calmest one's σ: volatile
    trend_drift: float = 0.1  # a state's mean / σ at or beyond ±this: trending

    def __post_init__(self) -> None:
        _require(2 <= self.states <= 4, f"states must be 2 – 4, not {self.states}")
        _require(
            20 <= self.min_returns <= self.fit_window,
            f"min_returns must be 20 – fit_window ({self.fit_window}), not {self.min_returns}",
        )
        _require(self.refit_every >= 1, f"refit_every must be at least 1, not {self.refit_every}")
        _require(self.max_iterations >= 1, "max_iterations must be at least 1")
        _require(0.5 <= self.stay < 1.0, f"stay must be in [0.5, 1), not {self.stay}")
        _require(self.volatile_ratio > 1.0, "volatile_ratio must be above 1")
        _require(self.trend_drift > 0.0, "trend_drift must be above 0")


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


# ----------------------------------------------------------------------------- rule set


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


# ----------------------------------------------------------------------------- hidden Markov model


class GaussianHmm:
    """A hidden Markov model with one Gaussian per state, on a single series."""

    def __init__(
        self,
        start: list[float],
        transition: list[list[float]],
        mean: list[float],
        variance: list[float],
    ) -> None:
        self.start = start
        self.transition = transition  # transition[i][j]: from state i to j
        self.mean = mean
        self.variance = variance
        self.occupancy = [1.0 / len(mean)] * len(mean)  # share of the last fit's returns
        self._prepare()

    def _prepare(self) -> None:
        self._norm = [-0.5 * math.log(2.0 * math.pi * v) for v in self.variance]
        self._half_precision = [0.5 / v for v in self.variance]
        self._states = list(zip(self.mean, self._norm, self._half_precision, strict=True))

    def relative_densities(self, x: float) -> tuple[list[float], float]:
        """Each state's density of ``x`` divided by the largest, and the log of the
        largest: in that form no density underflows, however far out ``x`` is."""
        logs = [c - (x - m) * (x - m) * h for m, c, h in self._states]
        top = max(logs)
        return [math.exp(v - top) for v in logs], top

    def step(self, filtered: Sequence[float], x: float) -> tuple[list[float], float]:
        """The forward algorithm's step: the state probabilities given one more
        observation, from the filtered ones before it, and the log-likelihood of ``x``."""
        k = len(self.mean)
        a = self.transition
        densities, top = self.relative_densities(x)
        joint = [sum(filtered[i] * a[i][j] for i in range(k)) * densities[j] for j in range(k)]
        scale = sum(joint)
        return [v / scale for v in joint], math.log(scale) + top

    def filtered(self, xs: Sequence[float]) -> list[float]:
        """P(state at the last observation | every observation up to it)."""
        probabilities = list(self.start)
        first = True
        for x in xs:
            if first:  # the start distribution is the first observation's prior
                densities, _ = self.relative_densities(x)
                joint = [p * d for p, d in zip(probabilities, densities, strict=True)]
                total = sum(joint)
                probabilities = [v / total for v in joint]
                first = False
            else:
                probabilities, _ = self.step(probabilities, x)
        return probabilities

    def fit(
        self, xs: Sequence[float], iterations: int, tolerance: float, floor: float, sticky: float
    ) -> int:
        """Baum–Welch (scaled forward–backward) from the current parameters, in place;
        the iterations it took. Variances are kept at or above ``floor`` so that no
        state collapses onto a few outlying returns, and ``sticky`` bars of prior
        evidence per state that it stays put keep a state from living one bar."""
        previous = -math.inf
        for done in range(1, iterations + 1):
            loglik = self._reestimate(xs, floor, sticky)
            if loglik - previous < tolerance * len(xs):
                return done
            previous = loglik
        return iterations

    def _reestimate(self, xs: Sequence[float], floor: float, sticky: float) -> float:
        k, t_max = len(self.mean), len(xs)
        a = self.transition
        emissions = [self.relative_densities(x) for x in xs]
        alphas: list[list[float]] = []
        scales: list[float] = []
        loglik = 0.0
        current = list(self.start)
        for t, (densities, top) in enumerate(emissions):
            if t == 0:
                joint = [current[j] * densities[j] for j in range(k)]
            else:
                joint = [
                    sum(current[i] * a[i][j] for i in range(k)) * densities[j] for j in range(k)
                ]
            scale = sum(joint)
            current = [v / scale for v in joint]
            alphas.append(current)
            scales.append(scale)
            loglik += math.log(scale) + top
        beta = [1.0] * k
        gamma_sum = [0.0] * k  # over t < T - 1, the denominators of the transitions
        weighted = [0.0] * k
        xi_sum = [[0.0] * k for _ in range(k)]
        gammas: list[list[float]] = [[]] * t_max
        for t in range(t_max - 1, -1, -1):
            alpha = alphas[t]
            gamma = [alpha[i] * beta[i] for i in range(k)]
            total = sum(gamma)
            gamma = [g / total for g in gamma]
            gammas[t] = gamma
            if t < t_max - 1:
                for i in range(k):
                    gamma_sum[i] += gamma[i]
            if t > 0:
                densities = emissions[t][0]
                carried = [densities[j] * beta[j] / scales[t] for j in range(k)]
                before = alphas[t - 1]
                for i in range(k):
                    row, xi_row = a[i], xi_sum[i]
                    for j in range(k):
                        xi_row[j] += before[i] * row[j] * carried[j]
                beta = [sum(a[i][j] * carried[j] for j in range(k)) for i in range(k)]
        for t, x in enumerate(xs):
            for i in range(k):
                weighted[i] += gammas[t][i] * x
        occupancy = [math.fsum(g[i] for g in gammas) for i in range(k)]
        for i in range(k):
            # A state the data no longer visits keeps its parameters rather than dividing by 0.
            if occupancy[i] < 1e-9:
                continue
            mean = weighted[i] / occupancy[i]
            spread = math.fsum(g[i] * (x - mean) ** 2 for g, x in zip(gammas, xs, strict=True))
            self.mean[i] = mean
            self.variance[i] = max(spread / occupancy[i], floor)
            if gamma_sum[i] > 1e-9:
                counts = [v + 1e-9 + (sticky if j == i else 0.0) for j, v in enumerate(xi_sum[i])]
                row_total = sum(counts)
                self.transition[i] = [v / row_total for v in counts]
        self.start = list(gammas[0])
        self.occupancy = [v / t_max for v in occupancy]
        self._prepare()
        return loglik


class HmmDetector:
    """A Gaussian HMM on log returns, fitted on the symbol's own recent returns.

    Each state is named by its own parameters: ``volatile`` if its σ is at least
    ``volatile_ratio`` times the calmest state's, else ``trending_up`` / ``trending_down``
    if its mean is at least ``trend_drift`` σ above / below zero, else ``ranging``. The
    label is the one whose states hold the most filtered probability, and that sum is
    the confidence. A series whose returns are all zero is ``ranging`` with confidence 1.
    """

    def __init__(
        self, settings: HmmSettings | None = None, *, fit_window: int | None = None
    ) -> None:
        self.settings = settings or HmmSettings()
        window = min(self.settings.fit_window, fit_window or self.settings.fit_window)
        self._returns: deque[float] = deque(maxlen=max(window, self.settings.min_returns))
        self._last_close: float | None = None
        self._since_fit = 0
        self.model: GaussianHmm | None = None
        self._filtered: list[float] = []
        self._labels: list[str] = []
        self.fits = 0

    def update(self, bar: Bar) -> Reading | None:
        """Take one closed bar; the reading after it (None while warming up)."""
        last, self._last_close = self._last_close, bar.close
        if last is None:
            return None
        x = math.log(bar.close / last)
        self._returns.append(x)
        s = self.settings
        self._since_fit += 1
        if self.model is None and len(self._returns) < s.min_returns:
            return None
        if self.model is None or self._since_fit >= s.refit_every:
            self._refit()
        elif self._labels:
            self._filtered, _ = self.model.step(self._filtered, x)
        if not self._labels:
            return Reading(RANGING, 1.0, bar.ts_ms)
        return Reading(*self._reading(), bar.ts_ms)

    def _refit(self) -> None:
        s = self.settings
        self._since_fit = 0
        xs = list(self._returns)
        n = len(xs)
        mean = math.fsum(xs) / n
        variance = math.fsum((x - mean) ** 2 for x in xs) / n
        if not variance > 1e-18:
            self.model = GaussianHmm([1.0], [[1.0]], [0.0], [1.0])
            self._labels, self._filtered = [], []
            return
        if self.model is None or len(self.model.mean) != s.states:
            self.model = _first_guess(s, mean, variance)
        self.model.fit(
            xs,
            s.max_iterations,
            s.tolerance,
            floor=s.variance_floor * variance,
            sticky=s.sticky * n,
        )
        self._labels = self._names(self.model)
        self._filtered = self.model.filtered(xs)
        self.fits += 1

    def _names(self, model: GaussianHmm) -> list[str]:
        s = self.settings
        sigmas = [math.sqrt(v) for v in model.variance]
        # A state that holds almost none of the returns does not set the calm level.
        held = [sg for sg, o in zip(sigmas, model.occupancy, strict=True) if o >= s.min_share]
        calmest = min(held or sigmas)
        names = []
        for mean, sigma in zip(model.mean, sigmas, strict=True):
            if sigma >= s.volatile_ratio * calmest:
                names.append(VOLATILE)
            elif mean >= s.trend_drift * sigma:
                names.append(TRENDING_UP)
            elif mean <= -s.trend_drift * sigma:
                names.append(TRENDING_DOWN)
            else:
                names.append(RANGING)
        return names

    def _reading(self) -> tuple[str, float]:
        held = dict.fromkeys(REGIMES, 0.0)
        for name, p in zip(self._labels, self._filtered, strict=True):
            held[name] += p
        label = max(REGIMES, key=lambda r: held[r])
        return label, min(1.0, max(0.0, held[label]))


def _first_guess(s: HmmSettings, mean: float, variance: float) -> GaussianHmm:
    """Where the first fit starts, from the returns' own mean and variance: calm states
    drifting up and down (and a flat one with four states), and one wide state."""
    k = s.states
    sigma = math.sqrt(variance)
    calm = [mean + sigma * d for d in ((0.2, -0.2, 0.0)[: k - 1])]
    means = [*calm, mean]
    variances = [0.6 * variance] * (k - 1) + [3.0 * variance]
    off = (1.0 - s.stay) / (k - 1)
    transition = [[s.stay if i == j else off for j in range(k)] for i in range(k)]
    return GaussianHmm([1.0 / k] * k, transition, means, variances)


# ----------------------------------------------------------------------------- the book


@dataclass(frozen=True, slots=True)
class Detected:
    """Both detectors' readings after a series' last bar (None: still warming up)."""

    rules: Reading | None
    hmm: Reading | None
    bars: int  # bars of the series held in its window


class Series:
    """One (symbol, bar size): its bounded window of bars and its detectors (the hidden
    Markov model only when the book runs it)."""

    def __init__(self, max_bars: int, rules: RuleSettings, hmm: HmmSettings | None) -> None:
        self.bars: deque[Bar] = deque(maxlen=max_bars)
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
        bars = self.bars
        i = bisect_left(bars, ts_ms, key=_bar_time)
        return bars[i] if i < len(bars) and bars[i].ts_ms == ts_ms else None


def _bar_time(bar: Bar) -> int:
    return bar.ts_ms


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
        _require(max_bars >= 2, f"max_bars must be at least 2, not {max_bars}")
        _require(max_series >= 1, f"max_series must be at least 1, not {max_series}")
        self.max_bars = max_bars
        self.max_series = max_series
        self.rules = rules or RuleSettings()
        self.hmm = (hmm or HmmSettings()) if with_hmm else None
        # The model is fitted on the window's returns: it must hold enough for a first fit.
        if self.hmm is not None:
            _require(
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
        _require(self.hmm is None, "a book with the hidden Markov model restores no series")
        _require(len(bars) > 0, f"{symbol} {bar_size}: no bars to restore")
        series = self._series[(symbol, bar_size)] = Series(self.max_bars, self.rules, None)
        series.bars.extend(bars)
        series.rules = RuleDetector.from_state(self.rules, bars[-1], rules)
        series.last = Detected(last, None, len(series.bars))


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
