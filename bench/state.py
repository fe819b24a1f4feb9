"""Benchmarks of the state: cycle time against history, memory and recovery with many trades.

Each row compares alphad with itself on a small history (the floor), so the ratio shows
how cost grows with the number of recorded trades.
"""

from __future__ import annotations

import math
import random
import sqlite3
import statistics
import threading
import time
from pathlib import Path

from alphad.actors.events import ClosedTrade
from alphad.actors.lifecycle import LifecycleModel
from alphad.actors.lifecycle_shapes import LifecycleConfig
from alphad.actors.optimizer import Optimizer
from alphad.actors.performance import PerformanceConfig, PerformanceModel
from alphad.actors.weighting import WeightingModel
from alphad.actors.weighting_config import WeightingConfig
from alphad.protocol.messages import UpdateOptimization
from tests.daemon_process import DaemonProcess, RawClient

REGIMES = ("trending", "ranging", "volatile", "calm")


def synthetic_trades(count: int, strategies: int, symbols: int, seed: int = 7) -> list[ClosedTrade]:
    """A reproducible history: every strategy on every symbol in every regime."""
    rng = random.Random(seed)
    trades = []
    for seq in range(1, count + 1):
        s = rng.randrange(strategies)
        trades.append(
            ClosedTrade(
                seq=seq,
                trade_id=f"t{seq}",
                strategy=f"strategy_{s:04d}",
                symbol=f"SYM{rng.randrange(symbols):03d}",
                side="buy",
                pnl=round(rng.gauss(0.05 * math.sin(s), 1.0) * 100, 2),
                entry_ts_ms=seq * 1000,
                exit_ts_ms=seq * 1000 + 500,
                regime=REGIMES[rng.randrange(len(REGIMES))],
            )
        )
    return trades


def cycle_seconds(strategies: int, trades: int, reps: int) -> float:
    """Median time of one optimization cycle (the engine's ``Optimizer.cycle`` and the
    allocation it pushes)."""
    performance = PerformanceModel(PerformanceConfig())
    for trade in synthetic_trades(trades, strategies, 20):
        performance.record(trade)
    optimizer = Optimizer(
        WeightingModel(WeightingConfig(), {}), LifecycleModel(LifecycleConfig(), {})
    )
    for name in performance.strategies():
        optimizer.register(name, 0)
    times = []
    for rep in range(reps):
        # A new trade per strategy between cycles, as in a live daemon: no stale caches.
        for i, name in enumerate(performance.strategies()):
            performance.record(
                ClosedTrade(
                    seq=trades + 1 + rep * strategies + i,
                    trade_id="x",
                    strategy=name,
                    symbol="SYM000",
                    side="buy",
                    pnl=1.0,
                    entry_ts_ms=0,
                    exit_ts_ms=0,
                    regime="trending",
                )
            )
        started = time.perf_counter()
        recent = performance.recent_by_strategy(optimizer.edge_read())
        by_regime = performance.recent_by_regime()
        optimizer.cycle(recent, by_regime, rep)
        optimizer.allocation()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def fill_database(path: Path, trades: int, strategies: int, symbols: int) -> None:
    """Write a history straight into a daemon's database (as if recorded earlier)."""
    DaemonProcess(path.parent.parent, "").start().stop()  # creates the schema
    with sqlite3.connect(path) as db:
        db.executemany(
            "INSERT INTO trades (seq, trade_id, strategy, symbol, side, pnl, entry_ts_ms,"
            " exit_ts_ms, regime, size, signal_id, recorded_ms) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                (
                    t.seq,
                    t.trade_id,
                    t.strategy,
                    t.symbol,
                    t.side,
                    t.pnl,
                    t.entry_ts_ms,
                    t.exit_ts_ms,
                    t.regime,
                    None,
                    None,
                    0,
                )
                for t in synthetic_trades(trades, strategies, symbols)
            ),
        )
        db.execute("DELETE FROM snapshots")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def latency_during_cycles(daemon: DaemonProcess, payload: bytes, seconds: float) -> float:
    """p99.9 in µs of one bot's round trips while an operator asks for an optimization
    cycle (each with its snapshot of the whole state) every half second."""
    stop = threading.Event()

    def cycles() -> None:
        admin = RawClient(daemon.admin, timeout_ms=60_000)
        while not stop.wait(0.5):
            admin.call(UpdateOptimization())
        admin.close()

    operator = threading.Thread(target=cycles)
    operator.start()
    bot = RawClient(daemon.rpc)
    samples: list[float] = []
    clock = time.perf_counter_ns
    deadline = time.perf_counter() + seconds
    try:
        while time.perf_counter() < deadline:
            started = clock()
            bot.raw(payload)
            samples.append((clock() - started) / 1000)
    finally:
        stop.set()
        operator.join()
        bot.close()
    samples.sort()
    return samples[min(len(samples) - 1, round(0.999 * (len(samples) - 1)))]


def memory_and_recovery(
    root: Path, trades: int, payload: bytes, seconds: float
) -> tuple[float, float, float]:
    """(RSS in MiB with the state of ``trades`` trades, seconds from start to READY,
    p99.9 of ``score_signal`` in µs during cycles).

    The first start replays the whole history and writes a snapshot at shutdown; the
    measured second start is what a restart costs: the snapshot plus an empty tail.
    """
    daemon_root = root / f"state-{trades}"
    daemon_root.mkdir()
    daemon = DaemonProcess(daemon_root, "")
    fill_database(daemon.database, trades, 100, 20)
    daemon.start()
    daemon.stop(timeout_s=600)
    started = time.perf_counter()
    daemon.start()
    ready = time.perf_counter() - started
    assert daemon.process is not None
    rss = rss_mib(daemon.process.pid)
    tail = latency_during_cycles(daemon, payload, seconds)
    daemon.stop()
    daemon.close()
    return rss, ready, tail
