"""``alphad simulate``: signal histories with known ground truth (docs/replay.md).

Every scenario is a set of strategies whose true edge is known: constant, turning
negative mid-way, or depending on a market regime that switches. Each signal's pnl is
``scale × (edge + κ·u + √(1 − κ²)·ε)`` with ε a unit-variance Student-t draw (fat
tails), optionally a rare large loss, and u a latent "how good is this setup" that also
nudges the bot's confidence and confluence: both correlate weakly with the outcome, as
real indicators do. The same scenario and seed always give the same rows, byte for byte:
each strategy and the regime path draw from their own ``random.Random`` seeded with a
string, which CPython hashes with SHA-512 whatever ``PYTHONHASHSEED`` is.

``simulate_bars`` adds hourly bars per symbol from the same regime path, drawn with
``actors.regimes_sim``'s price shapes (a trending spell up or down), each bar with its
true regime: the market the detector is scored on. They draw from their own
``random.Random`` too, so the signal rows do not change.
"""

from __future__ import annotations

import argparse
import math
import random
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, cast

from alphad.actors.regimes import TRENDING_DOWN, TRENDING_UP
from alphad.actors.regimes_sim import SimSettings, draw_bar
from alphad.protocol.messages import Side
from alphad.replay.bars import BARS, BarRow, TrueRegime
from alphad.replay.signals import (
    SIGNALS,
    InputError,
    SignalRow,
    Table,
    check_output,
    same_file,
    write_tables,
)

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
START_MS = 1_704_067_200_000  # 2024-01-01 00:00 UTC
DAYS = 90

# Correlation of the latent setup quality u with the pnl, and of u with the confidence:
# together about 0.06 between confidence and pnl, weak as in real signals.
KAPPA = 0.10
RHO = 0.60
INDICATORS = 4  # confluence counts how many of the bot's 4 indicators agree
BAR_SIZE = "1h"  # a regime spell of 4 days is 96 bars, about regimes_sim's 120


@dataclass(frozen=True)
class StrategySpec:
    """One simulated strategy; edges are expected pnl per trade in units of ``scale``."""

    name: str
    symbols: tuple[str, ...]
    per_day: float  # mean signals per day (Poisson arrivals)
    hold_hours: float  # mean holding time (exponential)
    scale: float  # pnl of one standard deviation at size 1.0, in account currency
    edge: float = 0.0
    # Edge by regime, replacing ``edge`` in the regimes it names.
    regime_edge: Mapping[str, float] = field(default_factory=dict)
    # From the decay point on (a fraction of the span), the edge is this instead.
    decayed_edge: float | None = None
    decay_at: float = 0.5
    # A rare large loss added to the trade: probability and size in units of ``scale``.
    tail_prob: float = 0.0
    tail_loss: float = 0.0
    dof: float = 3.0  # Student-t degrees of freedom of the noise (> 2)

    def body_edge(self, regime: str | None = None, decayed: bool = False) -> float:
        """Expected pnl per trade in units of ``scale``, before the tail losses."""
        if decayed and self.decayed_edge is not None:
            return self.decayed_edge
        return self.regime_edge.get(regime, self.edge) if regime is not None else self.edge

    def true_edge(self, regime: str | None = None, decayed: bool = False) -> float:
        """Expected pnl per trade in units of ``scale``, net of the tail losses."""
        return self.body_edge(regime, decayed) - self.tail_prob * self.tail_loss


@dataclass(frozen=True)
class Scenario:
    """A named set of strategies over one market whose regime switches now and then."""

    name: str
    summary: str
    strategies: tuple[StrategySpec, ...]
    regimes: tuple[str, ...] = ("trending", "ranging", "volatile")
    regime_days: float = 4.0  # mean length of a regime spell
    days: int = DAYS


@dataclass(frozen=True)
class Simulation:
    """Simulated rows (in time order) and the ground truth a replay is judged against."""

    scenario: Scenario
    seed: int
    rows: list[SignalRow]
    # strategy -> event time at which its edge turned (decaying strategies only)
    decay_onsets: dict[str, int]
    regime_path: list[tuple[int, str]]  # (start_ms, regime) spells


_MAJORS = ("BTC/USDT", "ETH/USDT")
_ALL = ("BTC/USDT", "ETH/USDT", "SOL/USDT", "BNB/USDT", "XRP/USDT")

# The regime-dependent pair: a trend follower and a mean reverter that lose where the
# other wins, and about break even on average over the three regimes.
_TREND = {"trending": 0.25, "ranging": -0.15, "volatile": 0.0}
_REVERT = {"trending": -0.15, "ranging": 0.25, "volatile": 0.0}
# Sells volatility: wins most days, and one trade in 50 loses 12 standard deviations,
# which costs 0.24 per trade against an edge of 0.20 before the tail.
_SHORT_VOL = StrategySpec(
    "short_vol", _MAJORS, 10, 8, 10.0, edge=0.20, tail_prob=0.02, tail_loss=12.0, dof=2.5
)

SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "steady",
            "three strategies with stable edges and one without edge",
            (
                StrategySpec("trend", _MAJORS, 10, 6, 40.0, edge=0.10),
                StrategySpec("breakout", ("ETH/USDT",), 8, 3, 15.0, edge=0.12),
                StrategySpec("carry", ("BTC/USDT",), 12, 8, 5.0, edge=0.08),
                StrategySpec("coin_flip", _MAJORS, 10, 4, 25.0, edge=0.0),
            ),
        ),
        Scenario(
            "decay",
            "mean_revert's edge turns negative half-way; three stable strategies",
            (
                StrategySpec("trend", _MAJORS, 10, 6, 40.0, edge=0.10),
                StrategySpec("breakout", ("ETH/USDT",), 8, 3, 15.0, edge=0.12),
                StrategySpec("carry", ("BTC/USDT",), 12, 8, 5.0, edge=0.08),
                StrategySpec("mean_revert", _MAJORS, 10, 4, 20.0, edge=0.15, decayed_edge=-0.20),
            ),
        ),
        Scenario(
            "regime",
            "edges that depend on a regime switching every 4 days on average",
            (
                StrategySpec("trend_follow", _MAJORS, 10, 6, 30.0, regime_edge=_TREND),
                StrategySpec("mean_revert", _MAJORS, 10, 3, 20.0, regime_edge=_REVERT),
                StrategySpec(
                    "vol_breakout",
                    ("ETH/USDT",),
                    8,
                    2,
                    15.0,
                    regime_edge={"trending": -0.05, "ranging": -0.05, "volatile": 0.25},
                ),
                StrategySpec("carry", ("BTC/USDT",), 12, 8, 5.0, edge=0.08),
            ),
        ),
        Scenario(
            "noise",
            "no strategy has an edge",
            (
                StrategySpec("trend", _MAJORS, 10, 6, 40.0),
                StrategySpec("breakout", ("ETH/USDT",), 8, 3, 15.0),
                StrategySpec("carry", ("BTC/USDT",), 12, 8, 5.0),
                StrategySpec("coin_flip", _MAJORS, 10, 4, 25.0),
            ),
        ),
        Scenario(
            "fat_tails",
            "rare large losses: short_vol looks good until its tail costs more than its edge",
            (
                _SHORT_VOL,
                StrategySpec(
                    "momentum",
                    _MAJORS,
                    8,
                    6,
                    30.0,
                    edge=0.10,
                    tail_prob=0.005,
                    tail_loss=6.0,
                    dof=2.5,
                ),
                StrategySpec(
                    "arb",
                    ("BTC/USDT",),
                    12,
                    1,
                    5.0,
                    edge=0.15,
                    tail_prob=0.01,
                    tail_loss=10.0,
                    dof=2.5,
                ),
                StrategySpec("trend", ("ETH/USDT",), 8, 6, 40.0, edge=0.10, dof=2.5),
            ),
        ),
        Scenario(
            "mixed",
            "all of it on five symbols: stable, no edge, decaying, regime-bound, fat-tailed",
            (
                StrategySpec("trend_follow", _ALL[:3], 7, 6, 30.0, regime_edge=_TREND),
                StrategySpec("mean_revert", _ALL[1:4], 7, 3, 20.0, regime_edge=_REVERT),
                StrategySpec("breakout", ("BTC/USDT", "BNB/USDT"), 7, 3, 15.0, edge=0.12),
                StrategySpec("carry", _ALL, 8, 8, 5.0, edge=0.08),
                StrategySpec(
                    "grid", ("SOL/USDT", "BNB/USDT"), 7, 4, 20.0, edge=0.15, decayed_edge=-0.20
                ),
                StrategySpec("coin_flip", ("XRP/USDT", "BTC/USDT"), 7, 4, 25.0),
                replace(_SHORT_VOL, per_day=7),
            ),
        ),
    )
}


def simulate(scenario: str, seed: int) -> Simulation:
    """The rows of one scenario and seed; raises ``KeyError`` for an unknown scenario."""
    return simulate_spec(SCENARIOS[scenario], seed)


def simulate_spec(spec: Scenario, seed: int) -> Simulation:
    """The rows of any scenario spec and seed (``simulate`` names one of ``SCENARIOS``)."""
    end_ms = START_MS + spec.days * DAY_MS
    path = _regime_path(spec, random.Random(f"{spec.name}:{seed}:regimes"), end_ms)
    starts = [start for start, _ in path]
    draws: list[tuple[int, int, StrategySpec, str, Side, float, int, str, float]] = []
    onsets: dict[str, int] = {}
    for strategy in spec.strategies:
        rng = random.Random(f"{spec.name}:{seed}:{strategy.name}")
        onset = None
        if strategy.decayed_edge is not None:
            onset = START_MS + round(strategy.decay_at * spec.days * DAY_MS)
            onsets[strategy.name] = onset
        noise_scale = math.sqrt((strategy.dof - 2.0) / strategy.dof)
        mean_gap_ms = DAY_MS / strategy.per_day
        mean_hold_ms = strategy.hold_hours * HOUR_MS
        ts = START_MS
        while True:
            ts += max(1, round(rng.expovariate(1.0) * mean_gap_ms))
            if ts >= end_ms:
                break
            hold = max(60_000, round(rng.expovariate(1.0) * mean_hold_ms))
            regime = path[bisect_right(starts, ts) - 1][1]
            decayed = onset is not None and ts >= onset
            edge = strategy.body_edge(regime, decayed)
            u = rng.gauss(0.0, 1.0)
            chi2 = rng.gammavariate(strategy.dof / 2.0, 2.0)
            noise = rng.gauss(0.0, 1.0) / math.sqrt(chi2 / strategy.dof) * noise_scale
            body = edge + KAPPA * u + math.sqrt(1.0 - KAPPA * KAPPA) * noise
            if strategy.tail_prob and rng.random() < strategy.tail_prob:
                body -= strategy.tail_loss
            confidence = 0.70 + 0.10 * (RHO * u + math.sqrt(1.0 - RHO * RHO) * rng.gauss(0, 1))
            agree = min(0.95, max(0.05, 0.55 + 0.10 * u))
            confluence = sum(rng.random() < agree for _ in range(INDICATORS))
            side: Side = "buy" if rng.random() < 0.5 else "sell"
            draws.append(
                (
                    ts,
                    ts + hold,
                    strategy,
                    rng.choice(strategy.symbols),
                    side,
                    round(min(0.99, max(0.30, confidence)), 3),
                    confluence,
                    regime,
                    round(strategy.scale * body, 2),
                )
            )
    # Stable sort: ties in time keep the order of the strategies in the scenario.
    draws.sort(key=lambda d: d[0])
    rows = [
        SignalRow(
            ts_ms=ts,
            exit_ts_ms=exit_ts,
            strategy=strategy.name,
            symbol=symbol,
            side=side,
            confidence=confidence,
            confluence=confluence,
            regime=regime,
            pnl=pnl,
            signal_id=f"sig-{k:06d}",
        )
        for k, (ts, exit_ts, strategy, symbol, side, confidence, confluence, regime, pnl) in (
            enumerate(draws, start=1)
        )
    ]
    return Simulation(scenario=spec, seed=seed, rows=rows, decay_onsets=onsets, regime_path=path)


def _regime_path(spec: Scenario, rng: random.Random, end_ms: int) -> list[tuple[int, str]]:
    """Regime spells of exponential length; each switch goes to one of the other regimes."""
    regime = rng.choice(spec.regimes)
    ts = START_MS
    path = [(ts, regime)]
    while True:
        ts += max(HOUR_MS, round(rng.expovariate(1.0) * spec.regime_days * DAY_MS))
        if ts >= end_ms:
            return path
        regime = rng.choice([r for r in spec.regimes if r != regime])
        path.append((ts, regime))


def simulate_bars(simulation: Simulation) -> list[BarRow]:
    """Hourly bars of every symbol of the scenario over its span, each with its true
    regime: the regime of the path at the bar's open, a trending spell drawn up or down
    (the same for every symbol), prices from ``actors.regimes_sim``'s shape of it."""
    spec, seed = simulation.scenario, simulation.seed
    shapes = SimSettings().shapes
    turns = random.Random(f"{spec.name}:{seed}:directions")
    labels = [
        turns.choice((TRENDING_UP, TRENDING_DOWN)) if regime == "trending" else regime
        for _, regime in simulation.regime_path
    ]
    if unknown := sorted(set(labels) - set(shapes)):
        raise ValueError(f"no price shape for the regimes {unknown}")
    truths = cast(list[TrueRegime], labels)
    starts = [start for start, _ in simulation.regime_path]
    symbols = dict.fromkeys(s for strategy in spec.strategies for s in strategy.symbols)
    end_ms = START_MS + spec.days * DAY_MS
    out: list[BarRow] = []
    for symbol in symbols:
        draw = random.Random(f"{spec.name}:{seed}:bars:{symbol}")
        price = anchor = 100.0
        spell = 0
        for ts in range(START_MS, end_ms, HOUR_MS):
            now = bisect_right(starts, ts) - 1
            if now != spell:
                spell, anchor = now, price
            bar = draw_bar(draw, shapes[truths[spell]], ts, price, anchor)
            price = bar.close
            out.append(
                BarRow(
                    symbol=symbol,
                    bar_size=BAR_SIZE,
                    ts_ms=ts,
                    open=bar.open,
                    high=bar.high,
                    low=bar.low,
                    close=bar.close,
                    true_regime=truths[spell],
                )
            )
    return out


def simulate_command(args: argparse.Namespace) -> int:
    """``alphad simulate --scenario NAME --seed N --out FILE [--bars FILE]``."""
    if args.scenario not in SCENARIOS:
        raise InputError(f"unknown scenario {args.scenario!r}; one of {', '.join(SCENARIOS)}")
    if args.bars and same_file(Path(args.out), Path(args.bars)):
        raise InputError(f"--out and --bars are one file, {args.out}: give two")
    # Both files checked before either is written, and what was written said once both
    # are: a bad --bars replaces no signals file, a closed standard output skips no bars.
    for path in (args.out, *([args.bars] if args.bars else [])):
        check_output(path)
    simulation = simulate(args.scenario, args.seed)
    files: list[tuple[Sequence[Any], str, Table[Any]]] = [(simulation.rows, args.out, SIGNALS)]
    bars = simulate_bars(simulation) if args.bars else []
    if args.bars:
        files.append((bars, args.bars, BARS))
    counts = write_tables(files)  # both files or neither
    strategies = len(simulation.scenario.strategies)
    lines = [
        f"{args.out}: {counts[0]:,} signals of {strategies} strategies, scenario "
        f"{args.scenario} (seed {args.seed}): {simulation.scenario.summary}"
    ]
    if args.bars:
        series = len({b.symbol for b in bars})
        lines.append(
            f"{args.bars}: {counts[1]:,} {BAR_SIZE} bars of {series} symbols, with their true"
            " regime"
        )
    print("\n".join(lines))
    return 0
