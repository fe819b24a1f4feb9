"""End to end: kill -9 mid-stream loses no acknowledged trade, and state survives restarts."""

from __future__ import annotations

import math
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import msgspec
import zmq

from alphad.protocol.client import Client
from alphad.protocol.codec import decode_reply, encode
from alphad.protocol.messages import (
    GetPerformance,
    Performance,
    RecordTrade,
    ScoreSignal,
    TradeRecorded,
)
from tests.daemon_process import DaemonProcess, RawClient


class StreamingBot(threading.Thread):
    """Sends record_trade for its own trade ids, resending on timeout until acknowledged."""

    def __init__(self, endpoint: str, bot: int, count: int) -> None:
        super().__init__(daemon=True)
        self.endpoint = endpoint
        self.bot = bot
        self.count = count
        self.acknowledged: dict[str, int] = {}
        self.sent: set[str] = set()
        self.duplicates = 0
        self.failure: str | None = None
        self.stop_by = time.monotonic() + 120

    def _socket(self, context: zmq.Context[Any]) -> zmq.Socket[Any]:
        sock = context.socket(zmq.REQ)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RCVTIMEO, 1000)
        sock.connect(self.endpoint)
        return sock

    def run(self) -> None:
        context = zmq.Context.instance()
        sock = self._socket(context)
        for i in range(self.count):
            trade = RecordTrade(
                trade_id=f"b{self.bot}-{i}",
                strategy=f"s{i % 3}",
                symbol=f"SYM{self.bot}",
                side="buy",
                pnl=round(math.sin(i + self.bot) * 10, 6),
                entry_ts_ms=1_732_000_001_000 + i,
                exit_ts_ms=1_732_000_002_000 + i,
                regime="trending" if i % 2 else None,
            )
            payload = encode(trade)
            while True:
                if time.monotonic() > self.stop_by:
                    self.failure = "gave up"
                    return
                self.sent.add(trade.trade_id)
                sock.send(payload)
                try:
                    reply = decode_reply(sock.recv())
                except zmq.Again:
                    sock.close(linger=0)  # Lazy Pirate: a fresh socket, then resend
                    sock = self._socket(context)
                    continue
                if isinstance(reply, TradeRecorded):
                    self.acknowledged[trade.trade_id] = reply.seq
                    self.duplicates += reply.duplicate
                    break
                time.sleep(0.05)  # overloaded or shutting down: resend shortly
        sock.close(linger=0)


def stored_trades(database: Path) -> list[tuple[str, str, float]]:
    with sqlite3.connect(database) as db:
        return db.execute("SELECT trade_id, strategy, pnl FROM trades ORDER BY seq").fetchall()


def test_kill9_storm_loses_no_acknowledged_trade(tmp_path: Path) -> None:
    daemon = DaemonProcess(tmp_path, "[engine]\nupdate_interval_s = 0\n").start()
    try:
        per_bot = 1500
        bots = [StreamingBot(daemon.rpc, b, per_bot) for b in range(8)]
        for bot in bots:
            bot.start()
        total = per_bot * len(bots)
        kills_mid_stream = 0
        for fraction in (0.15, 0.4, 0.65):
            while sum(len(b.acknowledged) for b in bots) < fraction * total:
                time.sleep(0.005)
            daemon.kill9()
            kills_mid_stream += any(b.is_alive() for b in bots)
            daemon.start()
        for bot in bots:
            bot.join(timeout=150)
        assert kills_mid_stream == 3, "the daemon must be killed while the bots stream"
        assert all(bot.failure is None and not bot.is_alive() for bot in bots)

        rows = stored_trades(daemon.database)
        ids = [r[0] for r in rows]
        assert len(ids) == len(set(ids)), "a trade was stored twice"
        acknowledged = {tid for bot in bots for tid in bot.acknowledged}
        sent = {tid for bot in bots for tid in bot.sent}
        expected = {f"b{b}-{i}" for b in range(8) for i in range(per_bot)}
        assert set(ids) == expected, "every acknowledged trade is stored exactly once"
        assert acknowledged == expected
        assert sent <= expected, "nothing unsent is reported as recorded"

        # The daemon's figures equal a recomputation from the database.
        client = RawClient(daemon.rpc)
        reply = client.call(GetPerformance(group_by=["strategy"]))
        client.close()
        assert isinstance(reply, Performance)
        by_strategy: dict[str, list[float]] = {}
        for _, strategy, pnl in rows:
            by_strategy.setdefault(strategy, []).append(pnl)
        got = {row["strategy"]: row for row in reply.rows}
        assert set(got) == set(by_strategy)
        for strategy, pnls in by_strategy.items():
            assert got[strategy]["trades"] == len(pnls)
            assert math.isclose(got[strategy]["total_pnl"], math.fsum(pnls), abs_tol=1e-6)
            assert got[strategy]["wins"] == sum(p > 0 for p in pnls)
    finally:
        daemon.close()


def test_state_survives_a_graceful_restart(tmp_path: Path) -> None:
    daemon = DaemonProcess(tmp_path, "[engine]\nupdate_interval_s = 0\n").start()
    try:
        client = RawClient(daemon.rpc)
        for i in range(30):
            client.call(
                RecordTrade(
                    trade_id=f"t{i}",
                    strategy="ema",
                    symbol="BTC",
                    side="buy",
                    pnl=float(i % 7 - 3),
                    entry_ts_ms=1_732_000_000_000 + i,
                    exit_ts_ms=1_732_000_000_001 + i,
                )
            )
        before = client.call(GetPerformance(group_by=["strategy", "symbol"], window="recent"))
        client.close()
        assert daemon.stop() == 0
        daemon.start()
        client = RawClient(daemon.rpc)
        after = client.call(GetPerformance(group_by=["strategy", "symbol"], window="recent"))
        client.close()
        assert msgspec.to_builtins(after.rows) == msgspec.to_builtins(before.rows)
    finally:
        daemon.close()


def test_unreadable_snapshot_stops_the_start_with_one_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    daemon = DaemonProcess(tmp_path, "")
    daemon.start()
    assert daemon.stop() == 0
    with sqlite3.connect(daemon.database) as db:
        db.execute("UPDATE snapshots SET state = x'81a474797065a4626f6f6d'")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "alphad.daemon.cli",
            "run",
            "--config",
            str(daemon.config_path),
            "--state-dir",
            str(daemon.state_dir),
            "--runtime-dir",
            str(daemon.runtime_dir),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "cannot restore the state snapshot" in result.stderr
    assert "Traceback" not in result.stderr
    daemon.close()


def test_signals_older_than_the_configured_days_are_pruned_and_trades_kept(
    tmp_path: Path,
) -> None:
    daemon = DaemonProcess(tmp_path, "").start()
    now_ms = int(time.time() * 1000)
    client = RawClient(daemon.rpc)
    try:
        for signal_id, age_days in (("old", 3), ("recent", 0)):
            reply = client.call(
                ScoreSignal(
                    strategy="ema",
                    symbol="BTC",
                    side="buy",
                    confidence=0.7,
                    signal_id=signal_id,
                    ts_ms=now_ms - age_days * 86_400_000,
                )
            )
            assert reply.signal_id == signal_id
        client.call(
            RecordTrade(
                trade_id="t-old", strategy="ema", symbol="BTC", side="buy", pnl=1.0,
                entry_ts_ms=now_ms - 4 * 86_400_000, exit_ts_ms=now_ms - 3 * 86_400_000,
            )
        )  # fmt: skip
    finally:
        client.close()
    assert daemon.stop() == 0  # the journal rows are flushed at shutdown
    with sqlite3.connect(daemon.database) as db:
        assert db.execute("SELECT COUNT(*) FROM signals").fetchone() == (2,)
    # Restarted with a retention of one day: the prune runs at start.
    daemon.config_path.write_text(
        "[metrics]\nenabled = false\n[store]\nsignals_keep_days = 1\n", encoding="utf-8"
    )
    daemon.start()
    try:
        for _ in range(100):
            with sqlite3.connect(daemon.database) as db:
                left = db.execute("SELECT signal_id FROM signals ORDER BY id").fetchall()
            if left == [("recent",)]:
                break
            time.sleep(0.05)
        assert left == [("recent",)]
        with sqlite3.connect(daemon.database) as db:
            assert db.execute("SELECT trade_id FROM trades").fetchall() == [("t-old",)]
    finally:
        daemon.close()


def test_a_restart_serves_the_regime_fits_of_the_last_cycle(tmp_path: Path) -> None:
    # The fits are learned at each cycle; trades after it change none until the next.
    # A start once learned them again from every trade so far (a signal scored 0.80
    # before a restart and 0.67 after it, with no cycle between), and the cycle's own
    # snapshot held the fits of the cycle before.
    from alphad.protocol.client import Client

    daemon = DaemonProcess(tmp_path, "[engine]\nupdate_interval_s = 0\n").start()

    def trades(client: Client, regime: str, pnl: float, first: int) -> None:
        for i in range(first, first + 40):
            client.record_trade(
                f"{regime}-{i}", "ema", "BTC", "buy", pnl, 1_732_000_000_000 + i,
                1_732_000_000_500 + i, regime=regime,
            )  # fmt: skip

    def scored() -> tuple[float, list[str]]:
        with Client(daemon.rpc) as client:
            reply = client.score_signal("ema", "BTC", "buy", 0.8, 3, regime="down")
        return reply.quality, reply.reasons

    try:
        with Client(daemon.rpc) as rpc, Client(daemon.admin) as admin:
            trades(rpc, "up", 1.0, 0)
            trades(rpc, "down", -1.0, 100)
            admin.update_optimization()  # "down" fits poorly
            trades(rpc, "down", 1.0, 200)  # after the cycle: the fit waits for the next
        before = scored()
        assert before[0] < 0.8 and any("fits this strategy poorly" in r for r in before[1])
        daemon.kill9()  # from the cycle's own snapshot
        daemon.start()
        assert scored() == before
        assert daemon.stop() == 0  # from the final snapshot
        daemon.start()
        assert scored() == before
        with Client(daemon.admin) as admin:
            admin.update_optimization()  # the next cycle learns the wins
        assert scored()[0] > before[0]
    finally:
        daemon.close()


def test_scored_signals_alone_make_the_timers_snapshot_due(tmp_path: Path) -> None:
    # A bot that only scores gave the timer nothing to save: a kill's start read every
    # signal since the last cycle's snapshot (with cycles only on request, all of them).
    daemon = DaemonProcess(
        tmp_path, "[engine]\nupdate_interval_s = 0\n[store]\nsnapshot_interval_s = 1\n"
    ).start()
    try:

        def snapshots() -> int:
            with sqlite3.connect(daemon.database) as db:
                return int(db.execute("SELECT COUNT(*) FROM snapshots").fetchone()[0])

        before = snapshots()
        with Client(daemon.rpc, retries=0) as rpc:
            for _ in range(20):
                rpc.score_signal("ema", "BTC/USDT", "buy", 0.7)
        deadline = time.monotonic() + 20
        while snapshots() == before and time.monotonic() < deadline:
            time.sleep(0.2)
        assert snapshots() == before + 1
        time.sleep(2.5)  # nothing new since: no other snapshot
        assert snapshots() == before + 1
    finally:
        daemon.close()
