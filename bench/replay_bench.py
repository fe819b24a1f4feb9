"""Replay speed against its floor: a bare loop over the same rows summing their pnl.

    python -m bench.replay_bench [--quick]

Two histories of the ``mixed`` scenario (seed 1), 7 strategies on 5 symbols over 90 days
with an optimization cycle every hour of event time, as a real replay would run them:

- ``sparse``: the scenario as it is, about 4 400 signals, so one cycle for every two
  signals: the cost of the cycles dominates;
- ``dense``: every strategy signalling 20 times as often (5 in the quick run), about
  90 000 signals (22 000), forty per cycle: the cost per signal dominates.

Neither side reads a file: both loop over rows in memory. Both are timed in CPU time of
the process (``time.process_time``): one core's work, which other processes on a busy
machine slow down less than they do the wall clock.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial

from alphad.replay.runner import replay
from alphad.replay.signals import SignalRow
from alphad.replay.simulate import SCENARIOS, simulate_spec


def _bare_loop(rows: list[SignalRow]) -> float:
    total = 0.0
    for row in rows:
        total += row.pnl
    return total


def history(density: float) -> list[SignalRow]:
    """``mixed``, seed 1, with every strategy's signal rate multiplied by ``density``."""
    mixed = SCENARIOS["mixed"]
    strategies = tuple(replace(s, per_day=s.per_day * density) for s in mixed.strategies)
    return simulate_spec(replace(mixed, strategies=strategies), 1).rows


def replay_speed(quick: bool) -> dict[str, tuple[int, float, float]]:
    """history -> (signals, signals per second of replay, signals per second of a bare
    loop summing pnl), each the best of a few runs on one core."""
    speeds: dict[str, tuple[int, float, float]] = {}
    for name, density in (("sparse", 1.0), ("dense", 5.0 if quick else 20.0)):
        rows = history(density)
        runs = 1 if quick else 3
        best_replay = min(_timed(partial(replay, rows)) for _ in range(runs))
        # The floor takes microseconds: repeat it so the clock's resolution does not matter.
        best_floor = min(_timed(partial(_bare_loop, rows)) for _ in range(20)) or 1e-9
        speeds[name] = (len(rows), len(rows) / best_replay, len(rows) / best_floor)
    return speeds


def _timed(action: Callable[[], object]) -> float:
    started = time.process_time()
    action()
    return time.process_time() - started


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    for name, (signals, replayed, floor) in replay_speed(parser.parse_args().quick).items():
        print(
            f"{name}: {signals:,} signals, replay {replayed:,.0f} signals/s, "
            f"bare loop {floor:,.0f} signals/s"
        )
