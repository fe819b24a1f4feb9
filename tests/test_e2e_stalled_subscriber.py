"""A subscriber that stops reading loses alerts to the PUB high-water mark, never the daemon:
scoring goes on, and the subscriber finds the gap by seq and backfills from the audit log.

What the stalled subscriber costs in latency is measured by ``python -m bench`` (the row
"latency p99, stalled alert subscriber vs none"), not here."""

from __future__ import annotations

import time
from pathlib import Path

import zmq

from alphad.protocol.client import Client, Subscriber
from tests.daemon_process import DaemonProcess


def test_stalled_subscriber_neither_slows_scoring_nor_loses_alerts_for_good(
    tmp_path: Path,
) -> None:
    daemon = DaemonProcess(tmp_path, "[daemon]\nalerts_hwm = 100\n").start()
    try:
        with Client(daemon.rpc, timeout_s=5.0) as rpc, Client(daemon.admin) as admin:
            rpc.score_signal("ema", "BTC", "buy", 0.6)
            stalled = Subscriber(daemon.alerts, [""], client=rpc, last_seq=0)
            stalled.socket.setsockopt(zmq.RCVHWM, 1)
            time.sleep(0.3)
            changes = 1500
            for i in range(changes):
                admin.force_status("ema", "degraded" if i % 2 == 0 else "active", "drill", "ops")
                if i % 50 == 0:
                    # Answered within the client's timeout, behind a subscriber that never reads.
                    assert rpc.score_signal("rsi", "BTC", "buy", 0.7).quality <= 0.7
            received = []
            while True:
                batch = stalled.receive(2.0)
                if not batch:
                    break
                received.extend(batch)
            # What was dropped at the end can only show as a gap once a newer alert comes;
            # the next change (or cycle) brings it, and the backfill fills everything.
            admin.force_status("ema", "suspended", "end of drill", "ops")
            received.extend(stalled.receive(5.0))
            stalled.close()
        seqs = [alert.seq for _, alert in received]
        assert seqs == list(range(1, changes + 2))
        assert stalled.gaps >= 1, "the burst should have overflowed the high-water mark"
    finally:
        daemon.close()
