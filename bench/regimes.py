"""``python -m bench.regimes``: the regime detectors on known and on real regimes.

    python -m bench.regimes                          # simulated bars, then every history
    python -m bench.regimes --split calibration      # choose on this half
    python -m bench.regimes --split evaluation       # and report on this one
    python -m bench.regimes --simulated-only --seeds 20

First, bars with known regime switches (actors/regimes_sim.py): per detector the
confusion matrix, the accuracy and the delay until a switch is named, and the cost per
bar. Then the real-market corpus of bench.markets: both detectors read every history bar
by bar, each trade of the textbook strategies is labelled with the regimes read at the
close of the bar its entry was decided on (the bar before its fill), and per strategy
the per-regime expectancy is shown with a permutation test of whether the regimes
separate its pnl (pooled over the split's histories, and per history). docs/regimes.md
has the results.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alphad.actors.regimes import REGIMES, Bar, Reading
from alphad.actors.regimes_hmm import HmmDetector
from alphad.actors.regimes_rules import RuleDetector
from alphad.actors.regimes_sim import Score, pool, score, simulate
from bench.markets.corpus import (
    MANIFEST,
    SPLITS,
    CorpusError,
    cache_dir,
    load_history,
    load_manifest,
    select,
    split_of,
)
from bench.markets.strategies import STRATEGIES, trades_of

DETECTORS: dict[str, Callable[[], RuleDetector | HmmDetector]] = {
    "rules": RuleDetector,
    "hmm": HmmDetector,
}
SIM_BARS = 3000
SIGNIFICANCE = 0.05


# ----------------------------------------------------------------------------- simulated


@dataclass
class SimResult:
    """One detector over every simulated seed."""

    detector: str
    seeds: int
    bars: int
    accuracy_mean: float
    accuracy_min: float
    accuracy_max: float
    confusion: dict[str, dict[str, int]]
    switches: int
    missed: int
    median_delay: float | None
    us_per_bar: float


def simulated(seeds: int, bars: int = SIM_BARS) -> list[SimResult]:
    out: list[SimResult] = []
    for name, make in DETECTORS.items():
        scores: list[Score] = []
        cpu = 0.0
        for seed in range(1, seeds + 1):
            history, truth = simulate(bars, seed)
            detector = make()
            started = time.process_time()
            readings = [detector.update(b) for b in history]
            cpu += time.process_time() - started
            scores.append(score(truth, readings))
        pooled = pool(scores)
        accuracies = [s.accuracy for s in scores]
        out.append(
            SimResult(
                detector=name,
                seeds=seeds,
                bars=bars,
                accuracy_mean=sum(accuracies) / len(accuracies),
                accuracy_min=min(accuracies),
                accuracy_max=max(accuracies),
                confusion=pooled.confusion,
                switches=len(pooled.delays) + pooled.missed,
                missed=pooled.missed,
                median_delay=pooled.median_delay,
                us_per_bar=cpu / (seeds * bars) * 1e6,
            )
        )
    return out


# ----------------------------------------------------------------------------- real prices


@dataclass
class Separation:
    """One strategy's trades split by one detector's regime at entry."""

    detector: str
    strategy: str
    trades: int
    by_regime: dict[str, tuple[int, float]]  # regime → (trades, expectancy in % of notional)
    p_value: float | None  # permutation test; None with fewer than two regimes traded
    kruskal_p: float | None  # Kruskal–Wallis


@dataclass
class HistoryRegimes:
    name: str
    split: str
    bars: int
    share: dict[str, dict[str, float]]  # detector → regime → share of the read bars
    us_per_bar: dict[str, float]
    separations: list[Separation] = field(default_factory=list)


def read_history(
    bars: Sequence[Bar],
) -> tuple[dict[str, list[Reading | None]], dict[str, float]]:
    """Each detector's reading after every bar, and its CPU cost per bar."""
    readings: dict[str, list[Reading | None]] = {}
    cost: dict[str, float] = {}
    for name, make in DETECTORS.items():
        detector = make()
        started = time.process_time()
        readings[name] = [detector.update(b) for b in bars]
        cost[name] = (time.process_time() - started) / len(bars) * 1e6
    return readings, cost


def between_regimes(labels: Sequence[str], pnls: Sequence[float]) -> float:
    """Σ n_g (mean_g − mean)²: how far apart the regimes' mean pnls are, by trade."""
    grand = math.fsum(pnls) / len(pnls)
    total: dict[str, float] = {}
    count: dict[str, int] = {}
    for label, pnl in zip(labels, pnls, strict=True):
        total[label] = total.get(label, 0.0) + pnl
        count[label] = count.get(label, 0) + 1
    return math.fsum(count[g] * (total[g] / count[g] - grand) ** 2 for g in total)


def permutation_p(
    labels: Sequence[str], pnls: Sequence[float], permutations: int, seed: str
) -> float | None:
    """The share of random relabellings (keeping each regime's trade count) whose
    between-regime spread is at least the observed one, (1 + k) / (1 + permutations)."""
    if len(set(labels)) < 2:
        return None
    order = sorted(range(len(labels)), key=lambda i: labels[i])
    ordered = [pnls[i] for i in order]
    sizes: list[int] = []
    for i in order:
        if sizes and labels[i] == labels[order[sum(sizes) - 1]]:
            sizes[-1] += 1
        else:
            sizes.append(1)
    grand = math.fsum(ordered) / len(ordered)

    def spread(values: list[float]) -> float:
        out, start = 0.0, 0
        for n in sizes:
            out += n * (sum(values[start : start + n]) / n - grand) ** 2
            start += n
        return out

    observed = spread(ordered) * (1.0 - 1e-12)  # the observed labelling counts as extreme
    draw = random.Random(int.from_bytes(hashlib.sha256(seed.encode()).digest()[:8], "big"))
    shuffled = list(ordered)
    extreme = 0
    for _ in range(permutations):
        draw.shuffle(shuffled)
        extreme += spread(shuffled) >= observed
    return (1 + extreme) / (1 + permutations)


def kruskal_wallis(labels: Sequence[str], pnls: Sequence[float]) -> float | None:
    """Kruskal–Wallis' p that the regimes' pnls come from one distribution (ranks, ties
    averaged and corrected for, χ² with regimes − 1 degrees of freedom): unlike the
    spread of means, one outlying trade in a small regime cannot carry it."""
    groups = sorted(set(labels))
    n = len(pnls)
    if len(groups) < 2 or n < 3:
        return None
    order = sorted(range(n), key=lambda i: pnls[i])
    ranks = [0.0] * n
    ties = 0.0
    i = 0
    while i < n:
        j = i
        while j + 1 < n and pnls[order[j + 1]] == pnls[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2.0 + 1.0
        ties += (j - i + 1) ** 3 - (j - i + 1)
        i = j + 1
    correction = 1.0 - ties / (n**3 - n)
    if correction <= 0.0:
        return 1.0  # every pnl the same: nothing to separate
    total = dict.fromkeys(groups, 0.0)
    count = dict.fromkeys(groups, 0)
    for label, rank in zip(labels, ranks, strict=True):
        total[label] += rank
        count[label] += 1
    h = 12.0 / (n * (n + 1)) * sum(total[g] ** 2 / count[g] for g in groups) - 3.0 * (n + 1)
    return chi_square_survival(max(h, 0.0) / correction, len(groups) - 1)


def chi_square_survival(x: float, degrees: int) -> float:
    """P(χ² > x) for 1 – 3 degrees of freedom (the closed forms)."""
    if degrees == 1:
        return math.erfc(math.sqrt(x / 2.0))
    if degrees == 2:
        return math.exp(-x / 2.0)
    if degrees == 3:
        return math.erfc(math.sqrt(x / 2.0)) + math.sqrt(2.0 * x / math.pi) * math.exp(-x / 2.0)
    raise ValueError(f"1 – 3 degrees of freedom, not {degrees}")


def separation(
    detector: str, strategy: str, rows: Sequence[tuple[str, float]], permutations: int, seed: str
) -> Separation:
    by: dict[str, list[float]] = {}
    for label, pnl in rows:
        by.setdefault(label, []).append(pnl)
    labels = [label for label, _ in rows]
    pnls = [pnl for _, pnl in rows]
    return Separation(
        detector=detector,
        strategy=strategy,
        trades=len(rows),
        by_regime={r: (len(by[r]), math.fsum(by[r]) / len(by[r])) for r in REGIMES if r in by},
        p_value=permutation_p(labels, pnls, permutations, seed) if rows else None,
        kruskal_p=kruskal_wallis(labels, pnls),
    )


def real(
    histories: str, split: str, permutations: int, per_history_permutations: int
) -> tuple[list[HistoryRegimes], dict[str, list[Separation]]]:
    sources = load_manifest(MANIFEST)
    halves = split_of(sources)
    chosen = select(sources, histories, split)
    folder = cache_dir()
    results: list[HistoryRegimes] = []
    pooled_rows: dict[str, dict[tuple[str, str], list[tuple[str, float]]]] = {}
    for source in chosen:
        history = load_history(source, folder)
        readings, cost = read_history(history.bars)
        trades = trades_of(history.bars, history.name, source.symbol)
        result = HistoryRegimes(
            name=history.name,
            split=halves[source.name],
            bars=len(history.bars),
            share={d: _shares(r) for d, r in readings.items()},
            us_per_bar=cost,
        )
        for detector, read in readings.items():
            for strategy in STRATEGIES:
                rows = []
                for t in trades:
                    reading = read[t.entry_bar - 1]  # the close the entry was decided at
                    if t.row.strategy == strategy and reading is not None:
                        rows.append((reading.label, t.row.pnl))
                seed = f"{history.name}:{detector}:{strategy}"
                result.separations.append(
                    separation(detector, strategy, rows, per_history_permutations, seed)
                )
                for half in (result.split, "all"):
                    key = (detector, strategy)
                    pooled_rows.setdefault(half, {}).setdefault(key, []).extend(rows)
        results.append(result)
    pooled = {
        half: [
            separation(d, s, rows, permutations, f"{half}:{d}:{s}")
            for (d, s), rows in groups.items()
        ]
        for half, groups in pooled_rows.items()
        if half != "all" or split in ("all", "halves")
    }
    return results, pooled


def _shares(readings: Sequence[Reading | None]) -> dict[str, float]:
    read = [r.label for r in readings if r is not None]
    return {r: read.count(r) / len(read) if read else 0.0 for r in REGIMES}


# ----------------------------------------------------------------------------- text


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _p(p: float | None) -> str:
    return "-" if p is None else f"{p:.3f}"


def render_sim(results: Sequence[SimResult]) -> str:
    out = [
        f"## Simulated bars ({results[0].seeds} seeds × {results[0].bars} bars)",
        "",
    ]
    out.append(
        table(
            [
                "detector",
                "accuracy mean (min – max)",
                "switches",
                "missed",
                "median delay (bars)",
                "µs / bar",
            ],
            [
                [
                    r.detector,
                    f"{r.accuracy_mean:.3f} ({r.accuracy_min:.3f} – {r.accuracy_max:.3f})",
                    str(r.switches),
                    str(r.missed),
                    "-" if r.median_delay is None else f"{r.median_delay:g}",
                    f"{r.us_per_bar:.0f}",
                ]
                for r in results
            ],
        )
    )
    for r in results:
        out += ["", f"Confusion, {r.detector} (rows: true regime, columns: detected; bars)", ""]
        out.append(
            table(
                ["true \\ detected", *REGIMES],
                [[t, *(f"{r.confusion[t][d]:,}" for d in REGIMES)] for t in REGIMES],
            )
        )
    return "\n".join(out) + "\n"


def render_real(histories: Sequence[HistoryRegimes], pooled: dict[str, list[Separation]]) -> str:
    out = ["## Real prices (bench.markets corpus)", ""]
    rows = []
    for h in histories:
        rows.append(
            [
                h.name,
                h.split,
                str(h.bars),
                *(" / ".join(f"{h.share[d][r]:.2f}" for r in REGIMES) for d in DETECTORS),
                *(f"{h.us_per_bar[d]:.0f}" for d in DETECTORS),
            ]
        )
    shares = " / ".join(r.split("_")[-1] for r in REGIMES)
    out.append(
        table(
            [
                "history",
                "split",
                "bars",
                f"rules {shares}",
                f"hmm {shares}",
                "rules µs/bar",
                "hmm µs/bar",
            ],
            rows,
        )
    )
    for half, seps in pooled.items():
        out += ["", f"### Pooled, {half}: expectancy by regime at entry (trades, mean pnl %)", ""]
        body = []
        for s in seps:
            cells = [
                f"{s.by_regime[r][0]}: {s.by_regime[r][1]:+.3f}" if r in s.by_regime else "-"
                for r in REGIMES
            ]
            row = [s.strategy, s.detector, str(s.trades), *cells, _p(s.p_value), _p(s.kruskal_p)]
            body.append(row)
        header = [
            "strategy",
            "detector",
            "trades",
            *REGIMES,
            "p (permutation)",
            "p (Kruskal–Wallis)",
        ]
        out.append(table(header, body))
    for detector in DETECTORS:
        out += [
            "",
            f"### Per history, {detector}: p of regime separation (permutation / Kruskal–Wallis)",
            "",
        ]
        body = []
        low = dict.fromkeys(("permutation", "kruskal"), 0)
        total = 0
        for h in histories:
            mine = [s for s in h.separations if s.detector == detector]
            low["permutation"] += sum(
                1 for s in mine if s.p_value is not None and s.p_value < SIGNIFICANCE
            )
            low["kruskal"] += sum(
                1 for s in mine if s.kruskal_p is not None and s.kruskal_p < SIGNIFICANCE
            )
            total += sum(1 for s in mine if s.p_value is not None)
            body.append([h.name, h.split, *(f"{_p(s.p_value)} / {_p(s.kruskal_p)}" for s in mine)])
        out.append(table(["history", "split", *STRATEGIES], body))
        out += [
            "",
            f"p < {SIGNIFICANCE}: permutation {low['permutation']}, Kruskal–Wallis {low['kruskal']}"
            f" of {total} tests ({SIGNIFICANCE:.0%} expected by chance).",
        ]
    return "\n".join(out) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.regimes", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--histories", default="*", help="a glob on the histories' names")
    parser.add_argument("--split", choices=(*SPLITS, "halves", "all"), default="halves")
    parser.add_argument("--seeds", type=int, default=10, help="simulated histories (10)")
    parser.add_argument("--permutations", type=int, default=999, help="pooled tests (999)")
    parser.add_argument("--per-history-permutations", type=int, default=199)
    parser.add_argument("--simulated-only", action="store_true")
    parser.add_argument("--real-only", action="store_true")
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.add_argument("--out", type=Path, help="write here instead of standard output")
    args = parser.parse_args(argv)
    try:
        if args.seeds < 1 or args.permutations < 1 or args.per_history_permutations < 1:
            raise CorpusError("--seeds and the permutations must be at least 1")
        sim = [] if args.real_only else simulated(args.seeds)
        histories, pooled = (
            ([], {})
            if args.simulated_only
            else real(args.histories, args.split, args.permutations, args.per_history_permutations)
        )
        if args.format == "json":
            data: dict[str, Any] = {
                "simulated": [vars(r) for r in sim],
                "histories": [
                    {**vars(h), "separations": [vars(s) for s in h.separations]} for h in histories
                ],
                "pooled": {k: [vars(s) for s in v] for k, v in pooled.items()},
            }
            text = json.dumps(data, indent=2) + "\n"
        else:
            text = (render_sim(sim) if sim else "") + (
                "\n" + render_real(histories, pooled) if histories else ""
            )
        if args.out:
            args.out.write_text(text, encoding="utf-8")
        else:
            sys.stdout.write(text)
    except (CorpusError, OSError) as exc:
        print(f"bench.regimes: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
