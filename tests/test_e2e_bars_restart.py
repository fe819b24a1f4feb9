"""End to end: the bars held and the regimes detected from them survive a restart (the
engine's snapshots carry the book); a kill -9 loses only the bars after the last one."""

from __future__ import annotations

import sqlite3
import time
import zlib
from pathlib import Path
from typing import Any

import msgspec

from alphad.actors.regimes import Bar
from alphad.actors.regimes_rules import RuleDetector
from alphad.actors.regimes_sim import simulate
from alphad.protocol.client import Client
from alphad.protocol.messages import MarketBar
from tests.daemon_process import DaemonProcess

DAY = 86_400_000
BARS, _ = simulate(400, seed=31)
# No cycle on a timer; a snapshot on the timer only where a test asks for one.
CONFIG = (
    '[engine]\nupdate_interval_s = 0\n[regimes]\nsource = "{source}"\n'
    "[store]\nsnapshot_interval_s = {interval}\n"
)


def readings_by_close(bars: list[Bar]) -> list[tuple[int, str]]:
    """The rule set's readings over ``bars``, fed bar by bar here, by their bar's close."""
    detector = RuleDetector()
    found = []
    for bar in bars:
        reading = detector.update(bar)
        if reading is not None:
            found.append((bar.ts_ms + DAY, reading.label))
    return found


def expected_at(bars: list[Bar], ts_ms: int) -> str | None:
    label = None
    for close, found in readings_by_close(bars):
        if close <= ts_ms:
            label = found
    return label


def send(client: Client, bars: list[Bar], symbol: str = "BTC/USDT") -> Any:
    reply = None
    for start in range(0, len(bars), 100):
        batch = [
            MarketBar(ts_ms=b.ts_ms, open=b.open, high=b.high, low=b.low, close=b.close)
            for b in bars[start : start + 100]
        ]
        reply = client.market_bars(symbol, "1d", batch)
    return reply


def regimes(client: Client, times: list[int], regime: str | None = None) -> list[tuple[Any, ...]]:
    """(regime, regime_source) of a score_signal at each time."""
    found = []
    for ts in times:
        scored = client.score_signal("ema", "BTC/USDT", "buy", 0.8, regime=regime, ts_ms=ts)
        found.append((scored.regime, scored.regime_source))
    return found


def probe_times(bars: list[Bar]) -> list[int]:
    closes = [close for close, _ in readings_by_close(bars)]
    return [closes[0] - 1, closes[0], closes[len(closes) // 2] + DAY // 2, closes[-1] + 5 * DAY]


def test_a_stop_and_a_kill_after_a_snapshot_keep_the_bars_and_their_regimes(
    tmp_path: Path,
) -> None:
    daemon = DaemonProcess(tmp_path, CONFIG.format(source="detected", interval=3600)).start()
    held, lost = BARS[:300], BARS[300:]
    try:
        client = Client(daemon.rpc, retries=0)
        send(client, held)
        times = probe_times(held)
        before = regimes(client, times)
        assert before == [(expected_at(held, ts), "detected") for ts in times]
        assert before[0] == (None, "detected") and None not in [r for r, _ in before[1:]]
        client.close()

        daemon.stop()  # SIGTERM: the final snapshot holds every bar
        daemon.start()
        client = Client(daemon.rpc, retries=0)
        assert regimes(client, times) == before  # no bar sent since the start
        resent = send(client, held[-100:])  # a lost reply's batch: repeated, not refused
        assert (resent.taken, resent.repeated, resent.held) == (0, 100, 300)
        assert resent.regime == readings_by_close(held)[-1][1]

        client.update_optimization()  # a journaled change commits a snapshot with it
        send(client, lost)
        later = probe_times(BARS)
        assert regimes(client, later[-1:]) == [(expected_at(BARS, later[-1]), "detected")]
        client.close()

        daemon.kill9()  # the bars after the snapshot are lost, the ones before it kept
        daemon.start()
        client = Client(daemon.rpc, retries=0)
        assert regimes(client, times) == before
        assert regimes(client, later[-1:]) == [(readings_by_close(held)[-1][1], "detected")]
        again = send(client, lost)
        assert (again.taken, again.repeated, again.held) == (100, 0, 400)
        assert regimes(client, later) == [(expected_at(BARS, ts), "detected") for ts in later]
        client.close()
    finally:
        daemon.close()


def test_the_bot_else_detected_source_counts_the_restored_reading(tmp_path: Path) -> None:
    daemon = DaemonProcess(
        tmp_path, CONFIG.format(source="bot_else_detected", interval=3600)
    ).start()
    try:
        client = Client(daemon.rpc, retries=0)
        send(client, BARS)
        times = probe_times(BARS)
        before = regimes(client, times) + regimes(client, times, regime="calm")
        client.close()
        daemon.restart()
        client = Client(daemon.rpc, retries=0)
        after = regimes(client, times) + regimes(client, times, regime="calm")
        assert after == before
        assert after[1] == (expected_at(BARS, times[1]), "detected")
        assert after[-1] == ("calm", "bot")
        client.close()
    finally:
        daemon.close()


def snapshot_markets(daemon: DaemonProcess) -> list[Any]:
    """The book in each snapshot of the database, oldest first."""
    with sqlite3.connect(daemon.database) as db:
        rows = db.execute("SELECT state FROM snapshots ORDER BY id").fetchall()
    return [msgspec.msgpack.decode(bytes(r[0]))["scorer"].get("market") for r in rows]


def test_bars_alone_make_the_timers_snapshot_due(tmp_path: Path) -> None:
    daemon = DaemonProcess(tmp_path, CONFIG.format(source="detected", interval=1)).start()
    try:
        client = Client(daemon.rpc, retries=0)
        send(client, BARS[:200])
        deadline = time.monotonic() + 30
        while not any(snapshot_markets(daemon)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert [len(m[0][2]) for m in snapshot_markets(daemon) if m] == [200]
        daemon.kill9()
        daemon.start()
        client.close()
        client = Client(daemon.rpc, retries=0)
        resent = send(client, BARS[100:200])
        assert (resent.taken, resent.repeated, resent.held) == (0, 100, 200)
        client.close()
    finally:
        daemon.close()


def newest_snapshot(daemon: DaemonProcess) -> tuple[int, dict[str, Any]]:
    with sqlite3.connect(daemon.database) as db:
        snapshot_id, blob = db.execute(
            "SELECT id, state FROM snapshots ORDER BY id DESC LIMIT 1"
        ).fetchone()
    return snapshot_id, msgspec.msgpack.decode(bytes(blob))


def write_snapshot(daemon: DaemonProcess, snapshot_id: int, state: dict[str, Any]) -> None:
    blob = msgspec.msgpack.encode(state)
    with sqlite3.connect(daemon.database) as db:
        db.execute(
            "UPDATE snapshots SET state = ?, checksum = ? WHERE id = ?",
            (blob, zlib.crc32(blob), snapshot_id),
        )


def test_a_snapshot_without_the_book_or_with_a_bad_one_starts_with_none(tmp_path: Path) -> None:
    daemon = DaemonProcess(tmp_path, CONFIG.format(source="detected", interval=3600)).start()
    try:
        client = Client(daemon.rpc, retries=0)
        send(client, BARS)
        client.record_trade(
            trade_id="t1",
            strategy="ema",
            symbol="BTC/USDT",
            side="buy",
            pnl=1.0,
            entry_ts_ms=BARS[-1].ts_ms,
            exit_ts_ms=BARS[-1].ts_ms + DAY,
        )
        client.close()
        daemon.stop()
        _, saved = newest_snapshot(daemon)
        assert len(saved["scorer"]["market"]) == 1
        last = probe_times(BARS)[-1:]
        for damage, warnings in (
            (lambda scorer: scorer.pop("market"), 0),  # written before the book was kept
            (lambda scorer: scorer["market"][0][9].__setitem__(0, 7), 1),  # a label unknown
        ):
            snapshot_id, _ = newest_snapshot(daemon)
            state = msgspec.msgpack.decode(msgspec.msgpack.encode(saved))
            damage(state["scorer"])
            write_snapshot(daemon, snapshot_id, state)
            daemon.start()
            client = Client(daemon.rpc, retries=0)
            assert regimes(client, last) == [(None, "detected")]  # no bar held
            rows = client.get_performance(group_by=["strategy"]).rows
            assert [(row["strategy"], row["trades"]) for row in rows] == [("ema", 1)]
            client.close()
            daemon.stop()
            assert daemon.log().count("bars_not_restored") == warnings
    finally:
        daemon.close()
