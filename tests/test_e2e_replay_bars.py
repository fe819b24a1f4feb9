"""The live daemon and the replay read the same regimes from the same bars.

A replay with bars notes, in order, every bar it feeds, every signal it scores and every
trade it records, with the regime each counted under. The same requests then go to the
real daemon over its rpc socket (bars in batches of consecutive bars, as a feeder sends
them), and every score_signal reply and every journaled trade must name the regime the
replay used: the bars went through the same book (actors/market.py) by both paths.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import msgspec

from alphad.actors.events import ClosedTrade
from alphad.daemon.config import Config
from alphad.protocol.client import Client
from alphad.protocol.messages import MarketBar, ScoreSignal, SignalScore
from alphad.replay.bars import BarFeed, BarRow
from alphad.replay.runner import Replayer
from alphad.replay.signals import SignalRow
from tests.daemon_process import DaemonProcess
from tests.test_replay_bars import BARS, signals

SOURCE = "bot_else_detected"
REGIMES = {"source": SOURCE, "max_bars": 80, "max_batch": 80}


class Noting(Replayer):
    """A replay that notes each bar, signal and trade in the order it runs them."""

    def __init__(self, config: Config, bars: list[BarRow]) -> None:
        super().__init__(config, bars=bars)
        self.events: list[tuple[str, int, Any]] = []
        score, record = self.scorer.score, self.performance.record

        def score_and_note(request: ScoreSignal) -> SignalScore:
            self.events.append(("signal", int(request.signal_id or ""), request.regime))
            return score(request)

        def record_and_note(trade: ClosedTrade) -> None:
            self.events.append(("trade", int(trade.trade_id), trade))
            record(trade)

        self.scorer.score = score_and_note  # type: ignore[method-assign]
        self.performance.record = record_and_note  # type: ignore[method-assign]

    def _feed(self, signals: int) -> BarFeed | None:
        feed = super()._feed(signals)
        assert feed is not None
        take = feed.take

        def take_and_note(j: int) -> None:
            self.events.append(("bar", j, None))
            take(j)

        feed.take = take_and_note  # type: ignore[method-assign]
        return feed


def send(client: Client, batch: list[BarRow]) -> None:
    bars = [
        MarketBar(
            ts_ms=b.ts_ms, open=b.open, high=b.high, low=b.low, close=b.close, volume=b.volume
        )
        for b in batch
    ]
    client.market_bars(batch[0].symbol, batch[0].bar_size, bars)


def test_the_daemon_and_the_replay_count_the_same_regimes(tmp_path: Path) -> None:
    rows: list[SignalRow] = signals(count=200, seed=8, long_every=5)
    config = msgspec.convert({"regimes": REGIMES}, Config)
    replayer = Noting(config, BARS)
    replayer.run(rows)
    events = replayer.events
    scored = {i: regime for kind, i, regime in events if kind == "signal"}
    recorded: dict[int, ClosedTrade] = {i: t for kind, i, t in events if kind == "trade"}
    # The history exercises both sources, readings that left the window, and no reading.
    detected = [r for r in rows if r.regime is None]
    assert len(scored) == len(rows) and len(recorded) > 60
    assert {scored[i] for i, r in enumerate(rows) if r.regime is None} > {None}
    assert any(t.regime == "unknown" and rows[i].symbol != "SOL/USDT" for i, t in recorded.items())
    assert detected

    text = "[engine]\nupdate_interval_s = 0\n[regimes]\n" + "".join(
        f"{k} = {v!r}\n".replace("'", '"') for k, v in REGIMES.items()
    )
    daemon = DaemonProcess(tmp_path, text).start()
    live: dict[int, str | None] = {}
    try:
        client = Client(daemon.rpc, retries=0)
        batch: list[BarRow] = []
        for kind, i, item in events:
            if kind == "bar":
                bar = BARS[i]
                if batch and (batch[0].symbol != bar.symbol or len(batch) == 80):
                    send(client, batch)
                    batch = []
                batch.append(bar)
                continue
            if batch:
                send(client, batch)
                batch = []
            row = rows[i]
            if kind == "signal":
                reply = client.score_signal(
                    row.strategy,
                    row.symbol,
                    row.side,
                    row.confidence,
                    row.confluence,
                    regime=row.regime,
                    signal_id=str(i),
                    ts_ms=row.ts_ms,
                )
                live[i] = reply.regime
            else:
                trade: ClosedTrade = item
                assert not client.record_trade(
                    trade_id=trade.trade_id,
                    strategy=row.strategy,
                    symbol=row.symbol,
                    side=row.side,
                    pnl=trade.pnl,
                    entry_ts_ms=row.ts_ms,
                    exit_ts_ms=row.exit_ts_ms,
                    regime=row.regime,
                    size=trade.size,
                    signal_id=str(i),
                ).duplicate
        client.close()
    finally:
        daemon.close()
    assert live == scored
    with sqlite3.connect(daemon.database) as db:
        journaled = db.execute(
            "SELECT trade_id, regime, detected_regime, regime_source FROM trades"
        ).fetchall()
    counted = {
        int(trade_id): (found or "unknown") if source == "detected" else regime
        for trade_id, regime, found, source in journaled
    }
    assert counted == {i: t.regime for i, t in recorded.items()}
