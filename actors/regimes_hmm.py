"""The hidden Markov model: Gaussian states (three by default) on log returns, fitted by
Baum–Welch and carried on bar by bar by the forward algorithm.

Apart from the rule set because it stays offline (a fit takes tens of milliseconds, too
long for the daemon's event loop: bench/regimes.py measures it), and because its
fitting is the longest part of detection and reads best on its own.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from alphad.actors.regimes import (
    RANGING,
    REGIMES,
    TRENDING_DOWN,
    TRENDING_UP,
    VOLATILE,
    Bar,
    Reading,
    require,
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
        require(2 <= self.states <= 4, f"states must be 2 – 4, not {self.states}")
        require(
            20 <= self.min_returns <= self.fit_window,
            f"min_returns must be 20 – fit_window ({self.fit_window}), not {self.min_returns}",
        )
        require(self.refit_every >= 1, f"refit_every must be at least 1, not {self.refit_every}")
        require(self.max_iterations >= 1, "max_iterations must be at least 1")
        require(0.5 <= self.stay < 1.0, f"stay must be in [0.5, 1), not {self.stay}")
        require(self.volatile_ratio > 1.0, "volatile_ratio must be above 1")
        require(self.trend_drift > 0.0, "trend_drift must be above 0")


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
