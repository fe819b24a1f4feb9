"""End to end: [regimes] source decides which regime signals and trades count under; the
reply says which and whence, the journal keeps both labels, and a kill -9 changes neither."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from alphad.actors.regimes import Bar
from alphad.actors.regimes_rules import RuleDetector
from alphad.actors.regimes_sim import simulate
from alphad.protocol.client import Client
from alphad.protocol.messages import MarketBar
from tests.daemon_process import DaemonProcess

DAY = 86_400_000
BARS, _ = simulate(300, seed=21)


def closes_and_labels(bars: list[Bar]) -> list[tuple[int, str]]:
    """Each reading of the rule set, fed bar by bar here, by the time its bar closed."""
    detector = RuleDetector()
    found = []
    for bar in bars:
        reading = detector.update(bar)
        if reading is not None:
            found.append((bar.ts_ms + DAY, reading.label))
    return found


READINGS = closes_and_labels(BARS)


def expected_at(ts_ms: int) -> str | None:
    """The last reading whose bar had closed by ``ts_ms``, by a plain scan."""
    label = None
    for close, found in READINGS:
        if close <= ts_ms:
            label = found
    return label


def send_bars(client: Client) -> None:
    for start in range(0, len(BARS), 100):
        batch = [
            MarketBar(ts_ms=b.ts_ms, open=b.open, high=b.high, low=b.low, close=b.close)
            for b in BARS[start : start + 100]
        ]
        client.market_bars("BTC/USDT", "1d", batch)


def config(source: str) -> str:
    return f'[engine]\nupdate_interval_s = 0\n[regimes]\nsource = "{source}"\n'


def journal(daemon: DaemonProcess, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(daemon.database) as db:
        return db.execute(sql).fetchall()


def by_regime(client: Client) -> dict[str, int]:
    rows = client.get_performance(group_by=["regime"]).rows
    return {row["regime"]: row["trades"] for row in rows}


def trade(client: Client, trade_id: str, entry_ts_ms: int, regime: str | None = None) -> bool:
    return client.record_trade(
        trade_id=trade_id,
        strategy="ema",
        symbol="BTC/USDT",
        side="buy",
        pnl=1.0,
        entry_ts_ms=entry_ts_ms,
        exit_ts_ms=entry_ts_ms + 3_600_000,
        regime=regime,
    ).duplicate


def test_detected_regimes_count_for_signals_and_trades_and_survive_a_kill(
    tmp_path: Path,
) -> None:
    daemon = DaemonProcess(tmp_path, config("detected")).start()
    try:
        client = Client(daemon.rpc, retries=0)
        first_close = READINGS[0][0]
        before = client.score_signal(
            "ema", "BTC/USDT", "buy", 0.8, regime="calm", ts_ms=first_close
        )
        assert (before.regime, before.regime_source) == (None, "detected")  # no bar yet
        send_bars(client)
        times = [
            first_close - 1,  # before the first reading: none
            first_close,  # the first reading, from the moment its bar closed
            READINGS[100][0] + DAY // 2,  # between two closes: the earlier one
            READINGS[-1][0] + 10 * DAY,  # after the last bar
        ]
        labels = [expected_at(ts) for ts in times]
        assert labels[0] is None and None not in labels[1:]
        for i, (ts, label) in enumerate(zip(times, labels, strict=True)):
            scored = client.score_signal(
                "ema", "BTC/USDT", "buy", 0.8, regime="calm", signal_id=f"s{i}", ts_ms=ts
            )
            assert (scored.regime, scored.regime_source) == (label, "detected"), i
        now = client.score_signal("ema", "BTC/USDT", "sell", 0.8)  # the daemon's clock
        assert (now.regime, now.regime_source) == (READINGS[-1][1], "detected")
        other = client.score_signal("ema", "ETH/USDT", "buy", 0.8, regime="calm")
        assert (other.regime, other.regime_source) == (None, "detected")  # no bars for it

        trades = {"t0": times[1], "t1": times[2], "t2": times[3], "t3": times[0]}
        for trade_id, entry in trades.items():
            assert not trade(client, trade_id, entry, regime="calm")
        expected: dict[str, int] = {}
        for label in [*labels[1:], "unknown"]:
            expected[label or "unknown"] = expected.get(label or "unknown", 0) + 1
        assert by_regime(client) == expected
        assert journal(
            daemon, "SELECT regime, detected_regime, regime_source FROM trades ORDER BY seq"
        ) == [
            ("calm", labels[1], "detected"),
            ("calm", labels[2], "detected"),
            ("calm", labels[3], "detected"),
            ("calm", None, "detected"),
        ]
        time.sleep(1.5)  # scored signals reach the journal within about a second
        signals = client.get_signals(symbol="BTC/USDT").signals
        assert [(s.regime, s.detected_regime, s.regime_source) for s in signals][1:5] == [
            ("calm", label, "detected") for label in labels
        ]

        daemon.kill9()
        daemon.start()
        client.close()
        client = Client(daemon.rpc, retries=0)
        assert by_regime(client) == expected  # replayed from the journal, as counted
        # Resent after a kill -9 before any snapshot held the bars, so with none to
        # detect from: the same trade.
        assert trade(client, "t1", trades["t1"], regime="calm")
        assert by_regime(client) == expected
        client.close()
    finally:
        daemon.close()


@pytest.mark.parametrize("source", ["bot", "bot_else_detected"])
def test_the_bots_label_counts_where_the_source_says_and_the_reading_is_journaled(
    tmp_path: Path, source: str
) -> None:
    daemon = DaemonProcess(tmp_path, config(source)).start()
    try:
        client = Client(daemon.rpc, retries=0)
        last = READINGS[-1][0]
        unsent = client.score_signal("ema", "BTC/USDT", "buy", 0.8, regime="calm", ts_ms=last)
        assert (unsent.regime, unsent.regime_source) == ("calm", "bot")
        send_bars(client)
        labelled = client.score_signal("ema", "BTC/USDT", "buy", 0.8, regime="calm", ts_ms=last)
        assert (labelled.regime, labelled.regime_source) == ("calm", "bot")
        bare = client.score_signal("ema", "BTC/USDT", "buy", 0.8, ts_ms=last)
        detected = READINGS[-1][1]
        if source == "bot":
            assert (bare.regime, bare.regime_source) == (None, None)
        else:
            assert (bare.regime, bare.regime_source) == (detected, "detected")
        assert not trade(client, "labelled", last, regime="calm")
        assert not trade(client, "bare", last)
        bare_counts = "unknown" if source == "bot" else detected
        assert by_regime(client) == {"calm": 1, bare_counts: 1}
        bare_source = None if source == "bot" else "detected"
        assert journal(
            daemon, "SELECT regime, detected_regime, regime_source FROM trades ORDER BY seq"
        ) == [("calm", detected, "bot"), ("unknown", detected, bare_source)]
        time.sleep(1.5)
        signals = client.get_signals().signals
        assert [(s.regime, s.detected_regime, s.regime_source) for s in signals] == [
            ("calm", None, "bot"),
            ("calm", detected, "bot"),
            (None, detected, bare_source),
        ]
        client.close()
    finally:
        daemon.close()


def test_a_label_the_detected_source_ignores_uses_up_no_regime_cap(tmp_path: Path) -> None:
    # One regime at most. With source = "detected" a trade counts under the reading, so
    # the bot's own label, ignored, must not be refused as a second regime: the replay
    # records that trade, and a refusal would lose the record.
    daemon = DaemonProcess(tmp_path, config("detected") + "[limits]\nmax_regimes = 1\n").start()
    try:
        client = Client(daemon.rpc, retries=0)
        send_bars(client)
        last = READINGS[-1][0]
        assert not trade(client, "first", last, regime="mine")
        assert not trade(client, "second", last, regime="other")
        assert by_regime(client) == {READINGS[-1][1]: 2}
        client.close()
    finally:
        daemon.close()
