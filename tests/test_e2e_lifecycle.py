"""End to end: a decaying strategy is suspended, subscribers hear it, and it survives a restart."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import msgspec
import zmq

from alphad.protocol.codec import decode_alert
from alphad.protocol.messages import (
    GetAudit,
    GetHealth,
    GetWeights,
    OptimizationState,
    RecordTrade,
    ScoreSignal,
    SignalScore,
    UpdateOptimization,
    Weights,
)
from tests.daemon_process import DaemonProcess, RawClient

# Cycles as fast as the test asks for them, on the rpc socket as a bot would.
CONFIG = "[engine]\nupdate_interval_s = 0\n[limits]\noptimization_interval_s = 0\n"


def subscribe(endpoint: str, prefix: bytes) -> zmq.Socket[Any]:
    sock = zmq.Context.instance().socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SUBSCRIBE, prefix)
    sock.connect(endpoint)
    return sock


def record(client: RawClient, strategy: str, n: int, pnl: float, start: int) -> int:
    for i in range(start, start + n):
        client.call(
            RecordTrade(
                trade_id=f"{strategy}-{i}",
                strategy=strategy,
                symbol="BTC/USDT",
                side="buy",
                pnl=pnl + (0.01 * (i % 3)),
                entry_ts_ms=1_732_000_000_000 + i * 1000,
                exit_ts_ms=1_732_000_000_500 + i * 1000,
                regime="trending",
            )
        )
    return start + n


def test_decaying_strategy_is_suspended_alerted_and_stays_suspended_after_restart(
    tmp_path: Path,
) -> None:
    daemon = DaemonProcess(tmp_path, CONFIG).start()
    try:
        rpc = RawClient(daemon.rpc)
        suspended = subscribe(daemon.alerts, b"status.suspended")
        everything = subscribe(daemon.alerts, b"")
        time.sleep(0.3)  # a SUB joins asynchronously; alerts before that are missed by design

        next_id = record(rpc, "decayer", 40, 1.0, 0)
        next_id = record(rpc, "steady", 40, 1.0, 0)
        state = rpc.call(UpdateOptimization())
        assert isinstance(state, OptimizationState)
        assert state.statuses["decayer"] == "active"

        topic = payload = None
        decayer_next = 40
        for _ in range(20):
            decayer_next = record(rpc, "decayer", 5, -1.5, decayer_next)
            rpc.call(UpdateOptimization(regime="trending"))
            if suspended.poll(200):
                topic, payload = suspended.recv_multipart()
                break
        assert topic == b"status.suspended", "no suspension alert reached the subscriber"
        assert payload is not None
        alert = decode_alert(payload)
        assert alert.strategy == "decayer" and alert.new == "suspended"
        assert alert.old in ("active", "degraded")

        # The alert's seq is the audit entry's: a subscriber can backfill from it.
        audit = rpc.call(GetAudit(since_seq=alert.seq - 1, limit=1))
        assert audit.entries[0].seq == alert.seq
        assert audit.entries[0].kind == "status" and audit.entries[0].new == "suspended"

        # Every alert seen by the catch-all subscriber is numbered without gaps.
        seqs = []
        while everything.poll(100):
            seqs.append(decode_alert(everything.recv_multipart()[1]).seq)
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))

        refused = rpc.call(
            ScoreSignal(strategy="decayer", symbol="BTC/USDT", side="buy", confidence=0.9,
                        confluence=3)
        )  # fmt: skip
        assert isinstance(refused, SignalScore)
        assert not refused.execute and refused.size_multiplier == 0.0
        assert any("suspended" in reason for reason in refused.reasons)
        weights = rpc.call(GetWeights())
        assert isinstance(weights, Weights)
        assert weights.effective["decayer"] == 0.0 and weights.effective["steady"] > 0
        assert abs(sum(weights.normalized.values()) - 1.0) < 1e-9
        health_before = msgspec.to_builtins(rpc.call(GetHealth()).rows)
        weights_before = msgspec.to_builtins(weights)
        rpc.close()
        suspended.close()
        everything.close()

        daemon.kill9()
        daemon.start()
        rpc = RawClient(daemon.rpc)
        assert msgspec.to_builtins(rpc.call(GetHealth()).rows) == health_before
        assert msgspec.to_builtins(rpc.call(GetWeights())) == weights_before
        again = rpc.call(
            ScoreSignal(strategy="decayer", symbol="BTC/USDT", side="buy", confidence=0.9,
                        confluence=3)
        )  # fmt: skip
        assert not again.execute
        assert next_id == 40
        rpc.close()
    finally:
        daemon.close()
