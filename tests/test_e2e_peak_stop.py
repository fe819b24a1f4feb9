"""End to end: the peak stop ([lifecycle] peak_drawdown) suspends a strategy whose equity
falls that many σ below its peak, refuses its signals, survives a kill -9, and is not
ended by the probation clock that ends other first suspensions."""

from __future__ import annotations

import time
from pathlib import Path

from alphad.protocol.messages import (
    GetHealth,
    OptimizationState,
    RecordTrade,
    ScoreSignal,
    SignalScore,
    UpdateOptimization,
)
from tests.daemon_process import DaemonProcess, RawClient

# Cycles on request; the edge test off, so that the peak stop alone acts; probation after
# the time of 20 of the strategy's trades (the default), well under a second here.
CONFIG = (
    "[engine]\nupdate_interval_s = 0\n[limits]\noptimization_interval_s = 0\n"
    "[lifecycle]\nedge_loss = 0\npeak_drawdown = 8\n"
)
T0 = 1_732_000_000_000
# A loss of 1.0 and a gain of 0.5 in turn: σ is 0.94 (the larger of the standard
# deviation, 0.76, and the robust scale), the equity falls 0.5 every two trades, and no
# window rule acts before min_trades (50).
PATTERN = [-1.0, 0.5]


def record(client: RawClient, n: int, start: int) -> int:
    for i in range(start, start + n):
        client.call(
            RecordTrade(
                trade_id=f"t{i}",
                strategy="faller",
                symbol="ETH/USDT",
                side="buy",
                pnl=PATTERN[i % 2],
                entry_ts_ms=T0 + i * 1000,
                exit_ts_ms=T0 + i * 1000 + 500,
            )
        )
    return start + n


def health(client: RawClient) -> tuple[str, str]:
    row = next(r for r in client.call(GetHealth()).rows if r.strategy == "faller")
    return row.status, row.reason


def signal(client: RawClient) -> SignalScore:
    reply = client.call(
        ScoreSignal(strategy="faller", symbol="ETH/USDT", side="buy", confidence=0.9, confluence=3)
    )
    assert isinstance(reply, SignalScore)
    return reply


def test_the_peak_stop_suspends_refuses_outlasts_the_clock_and_survives_kill9(
    tmp_path: Path,
) -> None:
    daemon = DaemonProcess(tmp_path, CONFIG).start()
    try:
        rpc = RawClient(daemon.rpc)
        nxt = record(rpc, 10, 0)
        state = rpc.call(UpdateOptimization())
        assert isinstance(state, OptimizationState)
        assert state.statuses["faller"] == "active"
        # σ is the robust scale here, √(π/2) × 0.75 = 0.94: the equity falls 0.53 σ a
        # pair of trades, and a pair's loss takes it 1.06 σ down first, so it is 8 σ
        # below its peak first at trade 29 (0.53 × 14 + 1.06). Recorded a few at a time,
        # a cycle after each batch: the stop reads each trade, so the batch of trades 27
        # to 30 stops it.
        for _ in range(40):
            nxt = record(rpc, 4, nxt)
            rpc.call(UpdateOptimization())
            if health(rpc)[0] == "suspended":
                break
        status, reason = health(rpc)
        assert status == "suspended", reason
        assert "σ below its peak (stop at 8 σ)" in reason
        assert nxt == 30
        refused = signal(rpc)
        assert not refused.execute and refused.size_multiplier == 0.0
        assert any("suspended" in r for r in refused.reasons)

        # Long past the time its 20 trades took: a first suspension by any other rule
        # would be on probation now; this one stays.
        time.sleep(1.0)
        rpc.call(UpdateOptimization())
        assert health(rpc) == (status, reason)
        rpc.close()

        daemon.kill9()
        daemon.start()
        rpc = RawClient(daemon.rpc)
        rpc.call(UpdateOptimization())
        assert health(rpc) == (status, reason)
        assert not signal(rpc).execute
        rpc.close()
    finally:
        daemon.close()
