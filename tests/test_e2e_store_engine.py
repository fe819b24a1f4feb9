"""End to end: the store and the engine under small mailboxes, refused and conflicting
writes, a damaged newest snapshot and a corrupt database file."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import zmq

from protocol.codec import decode_reply, encode
from protocol.messages import Error, GetStatus, RecordTrade, StatusReply, TradeRecorded
from tests.daemon_process import DaemonProcess, RawClient

STALL_S = 20.0  # far beyond any group commit: no answer for this long is a stall


def closed_trade(trade_id: str, strategy: str = "ema", pnl: float = 1.0) -> RecordTrade:
    return RecordTrade(
        trade_id=trade_id,
        strategy=strategy,
        symbol="BTC",
        side="buy",
        pnl=pnl,
        entry_ts_ms=1,
        exit_ts_ms=2,
    )


def stream_trades(endpoint: str, count: int, window: int) -> int:
    """Send ``count`` trades with up to ``window`` unanswered at a time, resending the ones
    refused as overloaded; returns how many were recorded. Raises on a stall."""
    context = zmq.Context.instance()
    dealer = context.socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 0)
    dealer.connect(endpoint)
    waiting: list[str] = [f"t{i}" for i in range(count)]
    waiting.reverse()
    in_flight: set[str] = set()
    recorded = 0
    try:
        while waiting or in_flight:
            while waiting and len(in_flight) < window:
                trade_id = waiting.pop()
                in_flight.add(trade_id)
                request = closed_trade(trade_id)
                request.request_id = trade_id
                dealer.send_multipart([b"", encode(request)])
            if not dealer.poll(int(STALL_S * 1000)):
                raise AssertionError(
                    f"no answer for {STALL_S:.0f} s after {recorded} trades were recorded"
                )
            reply = decode_reply(dealer.recv_multipart()[-1])
            assert reply.request_id is not None
            in_flight.discard(reply.request_id)
            if isinstance(reply, TradeRecorded):
                recorded += 1
            else:
                assert isinstance(reply, Error) and reply.code == "overloaded", reply
                waiting.append(reply.request_id)
                time.sleep(0.001)
    finally:
        dealer.close(linger=0)
    return recorded


def newest_snapshot_seq(database: Path) -> int:
    with sqlite3.connect(database) as db:
        return int(db.execute("SELECT COALESCE(MAX(trade_seq), 0) FROM snapshots").fetchone()[0])


def wait_for(condition: Callable[[], bool], timeout_s: float = STALL_S) -> bool:
    """Whether ``condition`` came true before the time was up."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_small_mailboxes_and_frequent_snapshots_never_stall_the_trades(tmp_path: Path) -> None:
    # A snapshot every 100 trades while the engine's mailbox holds 64 messages: the store
    # must go on committing while the engine waits for its snapshot's commit.
    config = (
        "[daemon]\nmailbox_size = 64\nrequest_timeout_s = 60\n"
        "[store]\nsnapshot_every_trades = 100\n"
        "[engine]\nupdate_interval_s = 0\n"
    )
    daemon = DaemonProcess(tmp_path, config).start()
    try:
        assert stream_trades(daemon.rpc, 3000, window=48) == 3000
        client = RawClient(daemon.rpc)
        status = client.call(GetStatus())
        client.close()
        assert isinstance(status, StatusReply) and status.trades == 3000
        assert status.components["engine"] == "running"
        # The snapshots kept being taken meanwhile, not just skipped.
        assert wait_for(lambda: newest_snapshot_seq(daemon.database) >= 2900)
        assert "actor_crashed" not in daemon.log()
    finally:
        daemon.close()
