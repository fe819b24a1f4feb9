"""Exact small-sample statistics: the binomial tail through the regularised incomplete
beta function, so that a test on a handful of outcomes says what a handful can say
(docs/scoring.md). No scipy: the continued fraction of Numerical Recipes (§6.4)."""

from __future__ import annotations

import math

_TINY = 1e-300
_EPSILON = 1e-12
_ITERATIONS = 300


def _beta_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of I_x(a, b) (modified Lentz), converging for x < (a+1)/(a+b+2)."""
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > _TINY else _TINY)
    h = d
    for m in range(1, _ITERATIONS + 1):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > _TINY else _TINY)
        c = 1.0 + aa / c
        c = c if abs(c) > _TINY else _TINY
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > _TINY else _TINY)
        c = 1.0 + aa / c
        c = c if abs(c) > _TINY else _TINY
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < _EPSILON:
            break
    return h


def regularized_beta(x: float, a: float, b: float) -> float:
    """I_x(a, b), the Beta(a, b) distribution function at x, for a, b > 0."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _beta_fraction(a, b, x) / a
    return 1.0 - front * _beta_fraction(b, a, 1.0 - x) / b


def binomial_at_most(successes: float, outcomes: float, p: float) -> float:
    """P(X ≤ successes) for X ~ Binomial(outcomes, p): the one-sided p-value of a record
    that fell short of the rate p. Counts may be fractional (records that fade keep
    fractions); the tail is then the same Beta expression, I_{1−p}(n − s, s + 1)."""
    if successes >= outcomes:
        return 1.0
    if p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 0.0
    return regularized_beta(1.0 - p, outcomes - successes, successes + 1.0)


def binomial_at_least(successes: float, outcomes: float, p: float) -> float:
    """P(X ≥ successes) for X ~ Binomial(outcomes, p): the one-sided p-value of a record
    that exceeded the rate p, I_p(s, n − s + 1) (fractional counts as in
    ``binomial_at_most``)."""
    if successes <= 0.0:
        return 1.0
    if successes > outcomes:
        return 0.0
    if p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    return regularized_beta(p, successes, outcomes - successes + 1.0)


def student_t_above(t: float, df: float) -> float:
    """P(T ≥ t) for T ~ Student's t with ``df`` degrees of freedom: the one-sided p-value
    of a mean ``t`` standard errors above its hypothesis, estimated from df + 1 values.
    For t ≥ 0 it is I_{df/(df+t²)}(df/2, 1/2) / 2 (Abramowitz and Stegun 26.7.1)."""
    if math.isnan(t) or df <= 0.0:
        return 1.0
    if math.isinf(t):
        return 0.0 if t > 0 else 1.0
    tail = 0.5 * regularized_beta(df / (df + t * t), df / 2.0, 0.5)
    return tail if t >= 0.0 else 1.0 - tail
