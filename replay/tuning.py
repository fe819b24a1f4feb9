"""``python -m replay --tune``: the tuning criteria of docs/replay.md over simulated
scenarios and seeds, as a Markdown table."""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from alphad.actors.weighting_tables import INACTIVE
from alphad.daemon.config import Config, load_config
from alphad.replay.results import Change, StatusEvent
from alphad.replay.runner import replay
from alphad.replay.simulate import simulate
from alphad.replay.text import _ratio, _signed_percent

TUNING_SCENARIOS = ("steady", "decay", "regime", "noise", "fat_tails", "mixed")
SHARPE_SCENARIOS = ("decay", "regime", "mixed")
DRAWDOWN_LIMIT = 0.05
SHARPE_SHARE = 0.90
STEADY_PNL_LIMIT = -0.10


@dataclass
class SeedOutcome:
    """One replay of one simulated scenario and seed, against its ground truth."""

    scenario: str
    seed: int
    change: Change
    # Decaying strategies: losing trades from the onset until suspension (None: never).
    losses_before_suspension: dict[str, int | None]
    # Decaying strategies already out of trading before their edge turned (a false alarm).
    out_before_onset: int
    # Strategies with a positive edge in every regime and no decay, and how many of them
    # alphad suspended or retired at some point.
    good: int
    good_suspended: int


def judge(scenario: str, seed: int, config: Config | None = None) -> SeedOutcome:
    """Simulate one scenario and seed, replay it, and measure it against the truth."""
    simulation = simulate(scenario, seed)
    replayed = replay(simulation.rows, config)
    changes = replayed.result.status_changes
    # A strategy suspended in a regime trades on elsewhere: its losses run on until its
    # own suspension; but a good strategy suspended anywhere counts as thrown away.
    own = [e for e in changes if e.regime is None]
    losses: dict[str, int | None] = {}
    early = 0
    for strategy, onset in simulation.decay_onsets.items():
        suspended_at = suspension_after(own, strategy, onset)
        early += suspended_at == onset
        losses[strategy] = (
            None
            if suspended_at is None
            else sum(
                1
                for row in simulation.rows
                if row.strategy == strategy
                and row.ts_ms >= onset
                and row.exit_ts_ms <= suspended_at
                and row.pnl < 0
            )
        )
    spec = simulation.scenario
    good = [
        s.name
        for s in spec.strategies
        if s.decayed_edge is None and all(s.true_edge(r) > 0 for r in spec.regimes)
    ]
    thrown = {e.strategy for e in changes if e.new in INACTIVE}
    return SeedOutcome(
        scenario,
        seed,
        replayed.result.change,
        losses,
        out_before_onset=early,
        good=len(good),
        good_suspended=sum(1 for name in good if name in thrown),
    )


def suspension_after(changes: Sequence[StatusEvent], strategy: str, ts_ms: int) -> int | None:
    """When the strategy was out of trading (suspended or retired) from ``ts_ms`` on: the
    time of its first suspension after ``ts_ms``, or ``ts_ms`` itself if it already was."""
    status = "active"
    for event in changes:
        if event.strategy != strategy:
            continue
        if event.ts_ms > ts_ms:
            if status in INACTIVE:
                return ts_ms
            if event.new in INACTIVE:
                return event.ts_ms
        status = event.new
    return ts_ms if status in INACTIVE else None


def tuning_table(
    seeds: Iterable[int] = range(1, 21),
    config: Config | None = None,
    scenarios: Sequence[str] = TUNING_SCENARIOS,
) -> str:
    """The tuning criteria (docs/replay.md) over the seeds of every scenario, as Markdown."""
    seeds = list(seeds)
    return table_of({s: [judge(s, seed, config) for seed in seeds] for s in scenarios})


def table_of(outcomes: dict[str, list[SeedOutcome]]) -> str:
    """The Markdown table of ``tuning_table`` from the outcomes of each scenario's seeds."""
    lines = [
        "| scenario | max drawdown vs baseline: median (worst) | seeds within +5 % "
        "| Sharpe per trade raised | total pnl vs baseline: median (worst) "
        "| losing trades before suspension: median (max) "
        "| good strategies ever suspended "
        "| exposure; against the baseline cut to it: max drawdown, total pnl (medians) "
        "| verdict, every seed | verdict, medians |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for scenario, runs in outcomes.items():
        dd = [o.change.max_drawdown for o in runs if o.change.max_drawdown is not None]
        within = sum(1 for v in dd if v <= DRAWDOWN_LIMIT)
        raised = sum(1 for o in runs if o.change.sharpe is not None and o.change.sharpe > 0)
        pnl = [o.change.total_pnl for o in runs if o.change.total_pnl is not None]
        losses = [n for o in runs for n in o.losses_before_suspension.values() if n is not None]
        never = sum(1 for o in runs for n in o.losses_before_suspension.values() if n is None)
        # Every seed: each seed's drawdown and steady pnl within the limits. Medians: the
        # median seed's. The Sharpe and suspension criteria count seeds either way.
        failed, failed_median = [], []
        if within < len(runs):
            failed.append("drawdown")
        if dd and statistics.median(dd) > DRAWDOWN_LIMIT:
            failed_median.append("drawdown")
        if scenario in SHARPE_SCENARIOS and raised < SHARPE_SHARE * len(runs):
            failed.append("Sharpe")
            failed_median.append("Sharpe")
        if scenario == "steady" and pnl and min(pnl) < STEADY_PNL_LIMIT:
            failed.append("pnl")
        if scenario == "steady" and pnl and statistics.median(pnl) < STEADY_PNL_LIMIT:
            failed_median.append("pnl")
        if scenario == "decay" and never:
            failed.append("suspension")
            failed_median.append("suspension")
        decay_cell = "-"
        if losses or never:
            decay_cell = (
                f"{statistics.median(losses):.0f} ({max(losses)})" if losses else "never"
            ) + (f", {never} never suspended" if never else "")
            early = sum(o.out_before_onset for o in runs)
            if early:
                decay_cell += f", {early} already out before the onset"
        good = sum(o.good for o in runs)
        thrown = sum(o.good_suspended for o in runs)
        good_cell = f"{thrown}/{good}" if good else "-"
        exposure = [o.change.exposure for o in runs if o.change.exposure is not None]
        cut_dd = [
            o.change.max_drawdown_same_exposure
            for o in runs
            if o.change.max_drawdown_same_exposure is not None
        ]
        cut_pnl = [
            o.change.total_pnl_same_exposure
            for o in runs
            if o.change.total_pnl_same_exposure is not None
        ]
        cut_cell = (
            f"{_ratio(_median(exposure), 2)}; {_signed_percent(_median(cut_dd))}, "
            f"{_signed_percent(_median(cut_pnl))}"
        )
        lines.append(
            f"| {scenario} | {_signed_percent(_median(dd))} ({_signed_percent(_max(dd))}) "
            f"| {within}/{len(runs)} "
            f"| {raised}/{len(runs)}{'' if scenario in SHARPE_SCENARIOS else ' (not required)'} "
            f"| {_signed_percent(_median(pnl))} ({_signed_percent(_min(pnl))}) "
            f"| {decay_cell} | {good_cell} | {cut_cell} "
            f"| {_verdict(failed)} | {_verdict(failed_median)} |"
        )
    return "\n".join(lines)


def _verdict(failed: list[str]) -> str:
    return "fails: " + ", ".join(failed) if failed else "passes"


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _max(values: list[float]) -> float | None:
    return max(values) if values else None


def _min(values: list[float]) -> float | None:
    return min(values) if values else None


def _seed_count(text: str) -> int:
    """``--seeds``: a whole number of at least 1 (none would print an empty table)."""
    try:
        count = int(text)
    except ValueError:
        count = 0
    if not 1 <= count <= 100_000:
        raise argparse.ArgumentTypeError(
            f"expected a number of seeds from 1 to 100000, not {text!r}"
        )
    return count


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m replay --tune``: the tuning table of docs/replay.md."""
    parser = argparse.ArgumentParser(
        prog="python -m replay", description="Tune alphad's defaults on simulations."
    )
    parser.add_argument("--tune", action="store_true", required=True, help="print the table")
    parser.add_argument("--seeds", type=_seed_count, default=20, help="how many seeds (default 20)")
    parser.add_argument(
        "--first-seed", type=int, default=1, help="first seed (default 1; 41: held-out seeds)"
    )
    parser.add_argument("--config", help="TOML config to judge instead of the defaults")
    parser.add_argument("--scenario", action="append", choices=TUNING_SCENARIOS)
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
    except Exception as exc:
        print(f"replay: {exc}", file=sys.stderr)
        return 1
    started = time.perf_counter()
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    print(tuning_table(seeds, config, args.scenario or TUNING_SCENARIOS))
    print(f"\n({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
