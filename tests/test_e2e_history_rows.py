"""End to end: history rows are stored compactly (what changed since the row before, a
keyframe now and then), yet every ``get_history`` entry is the full state of its cycle,
checked against ``get_weights`` and ``get_health`` read right after each cycle, across
pruning, a kill -9 and a database written before rows were compact."""

from __future__ import annotations

import gzip
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import msgspec
import zmq

from alphad.actors.history_rows import KEYFRAME_EVERY
from alphad.protocol.codec import decode_reply, encode
from alphad.protocol.messages import (
    ForceStatus,
    GetHealth,
    GetHistory,
    GetWeights,
    Health,
    History,
    OptimizationState,
    RecordTrade,
    TradeRecorded,
    UpdateOptimization,
    Weights,
)
from tests.daemon_process import DaemonProcess, RawClient

STRATEGIES = 300
KEEP = 30
CYCLES = KEYFRAME_EVERY + KEEP
# min_trades 1: a strategy's weight moves with each trade it records.
# Weights that move on little evidence: a cycle after a strategy's trade moves its weight.
MOVING = """
[performance]
window_trades = 4
[weighting]
min_trades = 2
significance = 0.5
step_share = 0.25
"""
CONFIG = f"{MOVING}[store]\nhistory_keep = {KEEP}\n"
OLD_DB = Path(__file__).parent / "data" / "history_v3.db.gz"


def name(s: int) -> str:
    return f"strategy_{s:04d}"


class Bots:
    """Trades, cycles and the reads that show each cycle's state on its own."""

    def __init__(self, daemon: DaemonProcess) -> None:
        self.rpc = RawClient(daemon.rpc, timeout_ms=30_000)
        self.admin = RawClient(daemon.admin, timeout_ms=30_000)
        self.trades = 0

    def trade(self, s: int | str, pnl: float) -> None:
        self.trades += 1
        reply = self.rpc.call(
            RecordTrade(
                trade_id=f"t{self.trades}",
                strategy=s if isinstance(s, str) else name(s),
                symbol="BTC",
                side="buy",
                pnl=pnl,
                entry_ts_ms=1_732_000_000_000 + self.trades,
                exit_ts_ms=1_732_000_000_100 + self.trades,
            )
        )
        assert isinstance(reply, TradeRecorded)

    def cycle(self) -> OptimizationState:
        """A cycle, its reply checked against the weights and statuses read after it."""
        state = self.admin.call(UpdateOptimization())
        assert isinstance(state, OptimizationState)
        weights, health = self.rpc.call(GetWeights()), self.rpc.call(GetHealth())
        assert isinstance(weights, Weights) and isinstance(health, Health)
        assert state.weights == weights.adaptive
        assert state.statuses == {row.strategy: row.status for row in health.rows}
        return state

    def history(self) -> list[OptimizationState]:
        """Every page of get_history, newest first."""
        states: list[OptimizationState] = []
        before: int | None = None
        while True:
            page = self.rpc.call(GetHistory(limit=20, before_cycle=before))
            assert isinstance(page, History)
            states += page.states
            if page.next is None:
                return states
            before = page.next

    def close(self) -> None:
        self.rpc.close()
        self.admin.close()


def load(daemon: DaemonProcess) -> None:
    """Three trades for each strategy, pipelined 40 at a time."""
    dealer = zmq.Context.instance().socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 0)
    dealer.setsockopt(zmq.RCVTIMEO, 30_000)
    dealer.connect(daemon.rpc)
    total = 3 * STRATEGIES
    for i in range(total):
        s = i % STRATEGIES
        trade = RecordTrade(
            trade_id=f"first{i}",
            strategy=name(s),
            symbol="BTC",
            side="buy",
            pnl=float((s + i) % 5 - 2) + 0.25,
            entry_ts_ms=1_731_000_000_000 + i,
            exit_ts_ms=1_731_000_000_100 + i,
        )
        dealer.send_multipart([b"", encode(trade)])
        if i % 40 == 39 or i == total - 1:
            for _ in range(i % 40 + 1):
                assert isinstance(decode_reply(dealer.recv_multipart()[-1]), TradeRecorded)
    dealer.close()


def stored(database: Path) -> list[tuple[int, int, Any]]:
    """(cycle, stored bytes, keyframe) of every history row, oldest first."""
    with sqlite3.connect(database) as db:
        return list(db.execute("SELECT cycle, LENGTH(state), keyframe FROM history ORDER BY 1"))


def assert_kept(history: list[OptimizationState], expected: dict[int, OptimizationState]) -> None:
    """The newest cycles, at least KEEP (or all), none missing, each its full state."""
    last = max(expected)
    cycles = [s.cycle for s in history]
    assert cycles == list(range(last, last - len(cycles), -1))
    assert min(KEEP, last) <= len(cycles) < KEEP + KEYFRAME_EVERY
    assert history == [expected[k] for k in cycles]


def test_compact_rows_read_back_as_the_full_state_of_every_cycle(tmp_path: Path) -> None:
    daemon = DaemonProcess(tmp_path, CONFIG).start()
    bots = Bots(daemon)
    try:
        load(daemon)
        expected: dict[int, OptimizationState] = {}
        for c in range(CYCLES):
            # A few weights move a cycle; now and then an operator changes a status.
            for s in (c % STRATEGIES, (37 * c + 11) % STRATEGIES):
                bots.trade(s, 1.5 if c % 3 else -2.0)
            if c % 25 == 7:
                status = "suspended" if c % 2 else "active"
                bots.admin.call(
                    ForceStatus(strategy=name(c), status=status, reason="ops", operator="o")
                )
            state = bots.cycle()
            expected[state.cycle] = state
            if state.cycle in (1, 45, 90):
                assert_kept(bots.history(), expected)
        history = bots.history()
        assert_kept(history, expected)

        # Stored: mostly deltas, an order of magnitude below the full rows.
        rows = stored(daemon.database)
        full = sum(len(msgspec.msgpack.encode(s)) for s in history) / len(history)
        assert sum(size for _, size, _ in rows) / len(rows) < full / 10
        # Pruned by whole groups: the oldest row kept is a keyframe.
        assert rows[0][2] is None

        # kill -9 right after an acknowledged cycle loses nothing of it.
        bots.trade(1, 3.0)
        state = bots.cycle()
        expected[state.cycle] = state
        daemon.kill9()
        daemon.restart()
        assert bots.history()[0] == state
        # The first row after a start is a keyframe; the chain goes on from there.
        for _ in range(3):
            bots.trade(2, -1.0)
            state = bots.cycle()
            expected[state.cycle] = state
        assert_kept(bots.history(), expected)
        assert [k for _, _, k in stored(daemon.database)[-3:]] == [None, *[state.cycle - 2] * 2]
    finally:
        bots.close()
        daemon.close()


def test_a_database_with_rows_of_the_full_form_reads_the_same(tmp_path: Path) -> None:
    """tests/data/history_v3.db.gz was written by alphad with schema 3 (every history row
    a full state): 40 strategies, 30 cycles, a status forced before cycle 11."""
    daemon = DaemonProcess(tmp_path, MOVING)
    daemon.state_dir.mkdir(mode=0o700, parents=True)
    with gzip.open(OLD_DB) as src, open(daemon.database, "wb") as dst:
        shutil.copyfileobj(src, dst)
    daemon.database.chmod(0o600)
    with sqlite3.connect(daemon.database) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (3,)
        decoder = msgspec.msgpack.Decoder(OptimizationState)
        old = [decoder.decode(r[0]) for r in db.execute("SELECT state FROM history ORDER BY cycle")]
    assert [s.cycle for s in old] == list(range(1, 31))
    daemon.start()
    bots = Bots(daemon)
    try:
        assert bots.history() == old[::-1]
        new = []
        for c in range(5):
            bots.trade(f"strategy_{c:02d}", 2.0)
            new.append(bots.cycle())
        assert [s.cycle for s in new] == list(range(31, 36))
        assert bots.history() == (old + new)[::-1]
        rows = stored(daemon.database)
        # The old rows as they were; the new ones a keyframe and deltas against it.
        assert [k for _, _, k in rows] == [None] * 31 + [31] * 4
        assert max(size for _, size, _ in rows[31:]) < min(size for _, size, _ in rows[:31]) / 3
    finally:
        bots.close()
        daemon.close()
