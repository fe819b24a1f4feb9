"""Replay speed against its floor: a bare loop over the same rows summing their pnl.

    python -m bench.replay_bench [--quick]

The rows are the ``mixed`` scenario (seed 1): about 4 400 signals of 7 strategies on 5
symbols over 90 days, so the replay includes its 2 000-odd hourly optimization cycles, as
a real replay would. Neither side reads the file: both loop over rows in memory.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from daemon.replay import SignalRow, replay
from daemon.simulate import simulate


def _bare_loop(rows: list[SignalRow]) -> float:
    total = 0.0
    for row in rows:
        total += row.pnl
    return total


def replay_speed(quick: bool) -> tuple[float, float]:
    """(signals per second of replay, signals per second of a bare loop summing pnl),
    each the best of a few runs on one core."""
    rows = simulate("mixed", 1).rows
    runs = 1 if quick else 3
    best_replay = min(_timed(lambda: replay(rows)) for _ in range(runs))
    # The floor takes microseconds: repeat it so the clock's resolution does not matter.
    repeats = 50
    best_floor = min(_timed(lambda: _bare_loop(rows)) for _ in range(repeats)) or 1e-9
    return len(rows) / best_replay, len(rows) / best_floor


def _timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    replayed, floor = replay_speed(parser.parse_args().quick)
    print(f"replay {replayed:,.0f} signals/s, bare loop {floor:,.0f} signals/s")
