"""Every statistic of a group of trades, as defined in docs/metrics.md: the one module
in actors/ that computes them.

A window's figures come from the sums of its pnls and of their central moments, kept
trade by trade for the ``all`` window (``RunningStats``), or computed from the pnls of a
window given whole (``figures_of``: the ``recent`` windows, the lifecycle's and the
replay's); both end in the same arithmetic (``_assemble``). Here too are the figures
derived from a window's: its scale (``pnl_scale``), and what a short window borrows from
the other strategies' Sharpe ratios (``pooled_sharpe``, ``borrowed_psr``). Apart from
the performance model, which keeps the groups of trades, so that every reader of a
figure (the weights, the lifecycle, the scorer, the replay) has it from the same code.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from itertools import accumulate
from operator import mul
from typing import Any

import msgspec

# Below this fraction of the figures' scale a quantity is rounding noise, not a
# measurement: identical pnls must give "no Sharpe", not a huge number.
ROUNDING_FLOOR = 1e-12
_SQRT2 = math.sqrt(2.0)
MAX_PNL_SCALE = 1e15
# A per-trade Sharpe ratio beyond ±10 says no more than 10 does (and must not overflow
# the spread of a pool).
_SHARPE_CAP = 10.0


def sharpe_ratio(n: int, total: float, m2: float, mean_abs: float) -> float | None:
    """Mean / standard deviation (n − 1) of ``n`` pnls, from their sum ``total`` and the
    sum ``m2`` of their squared deviations from their mean.

    None for fewer than two pnls, or where the standard deviation is rounding noise at
    the pnls' scale ``mean_abs`` (their mean absolute value): pnls without spread.
    ``m2`` must be summed from deviations (centred, or combined from centred parts),
    never as the sum of squares minus the squared sum, which cancels to noise.
    """
    if n < 2:
        return None
    std = math.sqrt(max(m2, 0.0) / (n - 1))
    if not std > ROUNDING_FLOOR * mean_abs:
        return None
    return total / n / std


class Figures(msgspec.Struct, kw_only=True):
    """Every figure of one group over one window (None where the figure is undefined)."""

    trades: int = 0
    wins: int = 0
    losses: int = 0
    win_rate: float = 0.0
    expectancy: float = 0.0
    total_pnl: float = 0.0
    gross_profit: float = 0.0
    gross_loss: float = 0.0
    profit_factor: float | None = None
    profit_factor_infinite: bool = False
    avg_win: float | None = None
    avg_loss: float | None = None
    sharpe: float | None = None
    sortino: float | None = None
    sqn: float | None = None
    psr: float | None = None
    # The PSR the weights and the lifecycle judge by: the reported ``psr`` where skew and
    # kurtosis make the Sharpe ratio less certain than for normal returns, the normal
    # returns' PSR where they would make it more certain (one huge trade sets both the
    # Sharpe ratio and the skew); defined wherever the Sharpe ratio is, from 3 trades on (also
    # where a two-valued record leaves ``psr`` undefined). Never on the wire.
    judged_psr: float | None = None
    max_drawdown: float = 0.0
    current_drawdown: float = 0.0
    # Mean absolute pnl of the window: the scale that makes drawdowns comparable across
    # strategies that trade different sizes (drawdown / mean_abs_pnl is in "average trades").
    mean_abs_pnl: float = 0.0
    # Only in the windows the weights and the lifecycle judge (pnl per unit of size,
    # docs/optimization.md), never on the wire: how many trades the group has recorded in
    # all (the window's newest trade is number ``seen``), and the window's pnls, oldest
    # first, so that a rule can judge only its newest trades. 0 and () elsewhere.
    seen: int = 0
    pnls: tuple[float, ...] = ()
    # Only in the judged windows: the window's pnls as the bots reported them, at the
    # sizes traded, oldest first, whose drawdown an operator's absolute limits
    # (``[strategies.NAME] soft_drawdown``, ``hard_drawdown``) are held against
    # (``LifecycleModel.drawdown_limits``). () elsewhere.
    sized_pnls: tuple[float, ...] = ()
    # Only in a strategy's window as the cycle reads it: the pnls per unit of size of the
    # trades that left the window before the edge test read them, oldest first (the
    # newest of them is the trade just before the window's first). () elsewhere.
    unread: Sequence[float] = ()  # an array of doubles where there are any

    def as_row(self) -> dict[str, Any]:
        """The wire row's metric keys (``protocol.messages.METRIC_FIELDS``)."""
        row = msgspec.structs.asdict(self)
        del row["judged_psr"], row["mean_abs_pnl"], row["seen"], row["pnls"], row["unread"]
        del row["sized_pnls"]
        return row


def fingerprint(figures: Figures) -> tuple[float, float, float, float]:
    """What identifies a recent window: it changes with every new trade in it.

    Models use it so that a cycle without a new trade is not counted as new evidence,
    beside the group's trade count (``seen``): two windows of a full window's length
    with the same total and drawdowns are different trades (a bot with a fixed
    take-profit and stop-loss makes them often), and were taken for the same evidence,
    so a strategy losing the same amount on every trade was judged no more.
    """
    values = (figures.total_pnl, figures.max_drawdown, figures.current_drawdown)
    # Non-finite figures (never sent by the performance model) would not survive a
    # snapshot's round trip; they get one stand-in value.
    total, worst, current = (v if math.isfinite(v) else -1.0 for v in values)
    return (float(figures.trades), total, worst, current)


def pnl_scale(figures: Figures) -> float:
    """The window's average trade size, mean |pnl|; 0.0 when every trade broke even.

    Figures from the performance actor always carry ``mean_abs_pnl``. The fallbacks are
    lower bounds of it, so figures built without it still get a scale rather than
    letting a drawdown or an expectancy pass unscaled.
    """
    candidates = [figures.mean_abs_pnl, abs(figures.expectancy)]
    if figures.trades > 0:
        candidates.append((figures.gross_profit + figures.gross_loss) / figures.trades)
    scale = max((c for c in candidates if math.isfinite(c) and c > 0.0), default=0.0)
    # The wire refuses |pnl| above 1e15; the cap keeps limits derived from it finite.
    return min(scale, MAX_PNL_SCALE)


class RunningStats:
    """The ``all`` window of one group, updated in constant time per trade.

    ``mean``, ``m2``, ``m3`` and ``m4`` are the running mean and central moment sums of
    ``pnl - shift``, where ``shift`` is the group's first pnl: central moments do not
    change under a shift, and keeping what is accumulated near zero stops a large
    average pnl from eating the digits of a small spread. ``pnl``, ``profit`` and
    ``loss`` (the running pnl C_t, gross profit and gross loss) each carry the
    rounding error of their sum in a ``*_error`` twin.
    """

    __slots__ = (
        "loss",
        "loss_error",
        "loss_squares",
        "losses",
        "m2",
        "m3",
        "m4",
        "max_drawdown",
        "mean",
        "n",
        "peak",
        "pnl",
        "pnl_error",
        "profit",
        "profit_error",
        "shift",
        "wins",
    )

    # The layout of ``to_state``; fixed here so that reordering the slots cannot
    # silently change the meaning of a stored snapshot.
    STATE_FIELDS: tuple[str, ...] = (
        "n",
        "wins",
        "losses",
        "shift",
        "mean",
        "m2",
        "m3",
        "m4",
        "pnl",
        "pnl_error",
        "profit",
        "profit_error",
        "loss",
        "loss_error",
        "loss_squares",
        "peak",
        "max_drawdown",
    )
    _COUNTS = frozenset(("n", "wins", "losses"))

    def __init__(self) -> None:
        self.n = 0
        self.wins = 0
        self.losses = 0
        self.shift = 0.0
        self.mean = 0.0
        self.m2 = 0.0
        self.m3 = 0.0
        self.m4 = 0.0
        self.pnl = 0.0
        self.pnl_error = 0.0
        self.profit = 0.0
        self.profit_error = 0.0
        self.loss = 0.0
        self.loss_error = 0.0
        self.loss_squares = 0.0
        self.peak = 0.0
        self.max_drawdown = 0.0

    def add(self, pnl: float) -> None:
        """Count one more trade.

        Each sum of money is Neumaier's compensated addition, written out (this runs seven
        times per trade): ``total + error`` keeps the digits ``total`` drops. Without it
        every addition to a large running pnl rounds off the low digits of the trade, and a
        long record drifts away from the sum of its trades.
        """
        n1 = self.n
        if n1 == 0:
            self.shift = pnl
        n = n1 + 1
        # Terriberry's one-pass update of the central moment sums, each from the old
        # lower moments (so M4 before M3 before M2).
        delta = (pnl - self.shift) - self.mean
        delta_n = delta / n
        delta_n2 = delta_n * delta_n
        term1 = delta * delta_n * n1
        m2 = self.m2
        m3 = self.m3
        self.mean += delta_n
        self.m4 += term1 * delta_n2 * (n * n - 3 * n + 3) + 6 * delta_n2 * m2 - 4 * delta_n * m3
        self.m3 = m3 + (term1 * delta_n * (n - 2) - 3 * delta_n * m2)
        self.m2 = m2 + term1
        self.n = n

        if pnl > 0:
            self.wins += 1
            total = self.profit
            new = total + pnl
            self.profit_error += (total - new) + pnl if abs(total) >= pnl else (pnl - new) + total
            self.profit = new
        elif pnl < 0:
            self.losses += 1
            loss = -pnl
            total = self.loss
            new = total + loss
            self.loss_error += (total - new) + loss if abs(total) >= loss else (loss - new) + total
            self.loss = new
            self.loss_squares += pnl * pnl

        total = self.pnl
        new = total + pnl
        self.pnl_error += (total - new) + pnl if abs(total) >= abs(pnl) else (pnl - new) + total
        self.pnl = new
        running = new + self.pnl_error
        peak = self.peak
        if running > peak:
            self.peak = peak = running
        drawdown = peak - running
        if drawdown > self.max_drawdown:
            self.max_drawdown = drawdown

    def figures(self) -> Figures:
        """Every figure of the trades counted so far."""
        if self.n == 0:
            return Figures()
        total = self.pnl + self.pnl_error
        return _assemble(
            n=self.n,
            wins=self.wins,
            losses=self.losses,
            total=total,
            gross_profit=self.profit + self.profit_error,
            gross_loss=self.loss + self.loss_error,
            loss_squares=self.loss_squares,
            m2=self.m2,
            m3=self.m3,
            m4=self.m4,
            max_drawdown=self.max_drawdown,
            current_drawdown=self.peak - total,
        )

    def to_state(self) -> list[int | float]:
        """The fields, in ``STATE_FIELDS`` order."""
        return [getattr(self, name) for name in self.STATE_FIELDS]

    @classmethod
    def from_state(cls, values: Sequence[int | float]) -> RunningStats:
        """Rebuild from ``to_state``."""
        if len(values) != len(cls.STATE_FIELDS):
            raise ValueError(f"running stats need {len(cls.STATE_FIELDS)} values")
        stats = cls()
        for name, value in zip(cls.STATE_FIELDS, values, strict=True):
            setattr(stats, name, int(value) if name in cls._COUNTS else float(value))
        return stats


def max_drawdown_of(pnls: Sequence[float]) -> float:
    """The largest fall of the running pnl from 0.0 below its peak (``max_drawdown``)."""
    return _drawdowns(pnls)[0]


def _drawdowns(pnls: Sequence[float]) -> tuple[float, float]:
    """The largest fall of the running pnl from 0.0 below its peak, and its fall at the
    end (``max_drawdown``, ``current_drawdown``)."""
    peak = max_drawdown = running = 0.0
    # The running pnl from 0.0 (the additions of ``running += pnl``, made by accumulate).
    for running in accumulate(pnls, initial=0.0):
        if running > peak:
            peak = running
        elif peak - running > max_drawdown:
            max_drawdown = peak - running
    return max_drawdown, peak - running


def figures_of(pnls: Sequence[float], *, seen: int = 0, keep_pnls: bool = False) -> Figures:
    """Every figure of a window of pnls, computed directly in O(len(pnls)).

    ``seen`` and, with ``keep_pnls``, the pnls themselves are carried along for the rules
    that judge a window (``Figures.seen``, ``Figures.pnls``). An optimization cycle asks
    for hundreds of groups at once, so the passes lean on C-level builtins (``sorted``,
    ``sum``, ``map``) and tight comprehensions.
    """
    n = len(pnls)
    if n == 0:
        return Figures(seen=seen)
    ordered = sorted(pnls)
    losing = ordered[: bisect_left(ordered, 0.0)]
    winning = ordered[bisect_right(ordered, 0.0) :]
    # Money is summed exactly rounded; the moment sums below add terms that are
    # already centred (or all of one sign), where a plain sum loses nothing that shows.
    total = math.fsum(pnls)
    # Two passes: deviations from the exactly rounded mean, so no digits are lost to
    # the size of the mean (the flaw of summing powers of the raw pnls).
    mean = total / n
    deviations = [p - mean for p in pnls]
    squares = [d * d for d in deviations]
    max_drawdown, current_drawdown = _drawdowns(pnls)
    return _assemble(
        n=n,
        wins=len(winning),
        losses=len(losing),
        total=total,
        gross_profit=math.fsum(winning),
        gross_loss=0.0 - math.fsum(losing),  # 0.0, not -0.0, without a loss
        loss_squares=sum(map(mul, losing, losing)),
        m2=sum(squares),
        m3=sum(map(mul, squares, deviations)),
        m4=sum(map(mul, squares, squares)),
        max_drawdown=max_drawdown,
        current_drawdown=current_drawdown,
        seen=seen,
        pnls=tuple(pnls) if keep_pnls else (),
    )


def _assemble(
    *,
    n: int,
    wins: int,
    losses: int,
    total: float,
    gross_profit: float,
    gross_loss: float,
    loss_squares: float,
    m2: float,
    m3: float,
    m4: float,
    max_drawdown: float,
    current_drawdown: float,
    seen: int = 0,
    pnls: tuple[float, ...] = (),
) -> Figures:
    """The figures from the sums both windows keep (m2…m4: central moment sums)."""
    mean = total / n
    mean_abs = (gross_profit + gross_loss) / n
    sharpe = sharpe_ratio(n, total, m2, mean_abs)
    psr, judged_psr = _psr(n, sharpe, m2, m3, m4) if sharpe is not None and n >= 3 else (None, None)
    # Tiny losses whose squares underflow leave no downside deviation to divide by.
    sortino = mean / math.sqrt(loss_squares / n) if losses and loss_squares > 0 else None
    return Figures(
        trades=n,
        wins=wins,
        losses=losses,
        win_rate=wins / n,
        expectancy=mean,
        total_pnl=total,
        gross_profit=gross_profit,
        gross_loss=gross_loss,
        profit_factor=gross_profit / gross_loss if gross_loss > 0 else None,
        profit_factor_infinite=gross_loss == 0 and gross_profit > 0,
        avg_win=gross_profit / wins if wins else None,
        avg_loss=gross_loss / losses if losses else None,
        sharpe=sharpe,
        sortino=sortino,
        sqn=math.sqrt(n) * sharpe if sharpe is not None else None,
        psr=psr,
        judged_psr=judged_psr,
        max_drawdown=max_drawdown,
        current_drawdown=current_drawdown,
        mean_abs_pnl=mean_abs,
        seen=seen,
        pnls=pnls,
    )


def _psr(n: int, sharpe: float, m2: float, m3: float, m4: float) -> tuple[float | None, float]:
    """Probabilistic Sharpe ratio against 0 (None where it is undefined), and the PSR the
    weights and the lifecycle judge by: never more certain than for normal returns.

    The reported PSR divides by √(1 − γ₃·SR + (γ₄ − 1)/4·SR²), the standard error of the
    Sharpe ratio for returns of that skew and kurtosis. Measured on a window, γ₃ and γ₄
    come from the very trades that make the Sharpe ratio: one huge loss makes the mean,
    the Sharpe ratio and the skew negative together, γ₃·SR turns large and positive, and
    the window looks more certain of a negative Sharpe ratio than normal returns would,
    not less. The judged PSR keeps the expression at or above its value for normal
    returns, 1 + SR²/2: fat tails and skew may widen the doubt, never narrow it. Where
    the reported PSR is undefined (a two-valued record, or moments that underflow), the
    judged one is that of normal returns.
    """
    normal = 1.0 + 0.5 * sharpe * sharpe
    scaled = sharpe * math.sqrt(n - 1)
    variance = m2 / n
    sd_cubed = variance * math.sqrt(variance)
    variance_squared = variance * variance
    if sd_cubed == 0 or variance_squared == 0:  # pnls so tiny that their powers underflow
        return None, _phi(scaled / math.sqrt(normal))
    skew = (m3 / n) / sd_cubed
    kurtosis = (m4 / n) / variance_squared
    spread = skew * sharpe
    tail = (kurtosis - 1.0) / 4.0 * sharpe * sharpe
    # Never negative in exact arithmetic (kurtosis >= 1 + skew²); 0 only for a
    # two-valued record, where the Sharpe ratio's uncertainty vanishes and psr is
    # undefined. Within rounding of 0 counts as 0.
    under = 1.0 - spread + tail
    judged = _phi(scaled / math.sqrt(max(under, normal)))
    if under <= ROUNDING_FLOOR * (1.0 + abs(spread) + tail):
        return None, judged
    return _phi(scaled / math.sqrt(under)), judged


def _phi(z: float) -> float:
    """The standard normal distribution function.

    Φ(z) = (1 + erf(z/√2)) / 2 = erfc(−z/√2) / 2; erfc keeps the digits of a small
    probability that 1 + erf would round away.
    """
    return 0.5 * math.erfc(-z / _SQRT2)


def _capped_sharpe(sharpe: float) -> float:
    cap = _SHARPE_CAP
    return -cap if sharpe < -cap else cap if sharpe > cap else sharpe


def pooled_sharpe(windows: Iterable[Figures], min_trades: int) -> tuple[float, float] | None:
    """The prior of a short history's per-trade Sharpe ratio, from the ``windows`` with
    at least ``min_trades`` trades: (their mean Sharpe ratio, weighted by trades; its
    worth in trades). The worth is 1 / τ², τ² the spread of the true Sharpe ratios
    between strategies (their observed variance less the sampling variance 1 / n of
    each), at most ``min_trades``: the pool never outweighs a full window of the
    strategy's own. None with fewer than two such windows."""
    judged = [
        (f.trades, _capped_sharpe(f.sharpe))
        for f in windows
        if f.trades >= min_trades and f.sharpe is not None and math.isfinite(f.sharpe)
    ]
    if len(judged) < 2:
        return None
    weight = sum(n for n, _ in judged)
    mean = sum(n * sr for n, sr in judged) / weight
    plain = sum(sr for _, sr in judged) / len(judged)
    spread = sum((sr - plain) ** 2 for _, sr in judged) / (len(judged) - 1)
    between = spread - sum(1.0 / n for n, _ in judged) / len(judged)
    worth = float(min_trades) if between <= 1.0 / min_trades else 1.0 / between
    return mean, worth


def borrowed_psr(figures: Figures, prior: tuple[float, float]) -> float | None:
    """P(true per-trade Sharpe > 0) for a short history under the pooled ``prior``
    (``pooled_sharpe``): Φ(posterior mean × √(n + worth)), the posterior of a normal
    prior and the window's Sharpe ratio with its sampling variance 1 / n."""
    sharpe = figures.sharpe
    n = figures.trades
    if sharpe is None or not math.isfinite(sharpe) or n < 3:
        return None
    sharpe = _capped_sharpe(sharpe)
    mean, worth = prior
    precision = n + worth
    posterior = (n * sharpe + worth * mean) / precision
    return _phi(posterior * math.sqrt(precision))


TINY_EXPONENT = -12
"""A figure above 0 below 10 ** TINY_EXPONENT shows in an exponent (``shown_below``)."""


def shown_below(value: float, limit: float, *, percent: bool = False) -> tuple[str, str]:
    """A figure below its limit and the limit, as a reason shows them: to two digits, or
    as many as the limit has (up to six), the figure rounded down and the limit up, so
    that the one shown is always below the other (a refused 0.497 never reads "0.50
    below minimum 0.50", nor 0.3049 "0.30 below minimum 0.30" against a minimum of
    0.305, nor a PSR of 0.0496 "0.05 < 0.05"); on their decimal digits, where 0.29 is
    0.29 (0.29 × 100 is 28.999… in binary, which floor would read 0.28). A figure above
    0 that would show as 0 shows its two significant digits, rounded down too (a PSR
    of 0.0014 read "0.00"; 0.00996 shows 0.0099, never "0.010 < 0.01"), in an exponent
    below 1e-12 (2.9e-7 is 0.00000029, 5e-324 is 5.0e-324). ``percent``:
    both in percent, to whole percents or the limit's digits ("24% < 25%", never
    "25% < 25%" for 24.6 %).
    """
    scale = 2 if percent else 0
    unit = "%" if percent else ""
    if not (math.isfinite(value) and math.isfinite(limit)) or max(abs(value), abs(limit)) > 1e12:
        # Far out (never a real figure): as it is, rather than a decimal's overflow.
        return f"{value * 10**scale:.6g}{unit}", f"{limit * 10**scale:.6g}{unit}"
    exact = Decimal(repr(limit)).scaleb(scale)
    least = 0 if percent else 2
    places = min(max(least, -int(exact.normalize().as_tuple().exponent)), 6)
    step = Decimal(1).scaleb(-places)
    figure = Decimal(repr(value)).scaleb(scale)
    shown = figure.quantize(step, rounding=ROUND_FLOOR)
    limit_shown = f"{exact.quantize(step, rounding=ROUND_CEILING):f}{unit}"
    if shown == 0 and figure > 0:  # two significant digits, rounded down too
        shown = figure.quantize(Decimal(1).scaleb(figure.adjusted() - 1), rounding=ROUND_FLOOR)
        if figure.adjusted() < TINY_EXPONENT:
            # Far below any real figure (a confidence of 5e-324 read as 330 characters).
            return f"{shown:.1e}{unit}", limit_shown
    return f"{shown:f}{unit}", limit_shown
