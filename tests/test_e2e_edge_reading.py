"""End to end: more of a strategy's trades between two cycles than its window holds
(100) are each read by the edge test once, also across a kill -9 and a restart from a
snapshot taken while they were waiting for the next cycle."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from alphad.protocol.messages import GetHealth, OptimizationState, RecordTrade, UpdateOptimization
from tests.daemon_process import DaemonProcess, RawClient

# Cycles on request only; a snapshot every 100 trades (the least allowed), so that the
# restart starts from one taken after trades had left the window unread.
CONFIG = (
    "[engine]\nupdate_interval_s = 0\n[store]\nsnapshot_every_trades = 100\n"
    "[limits]\noptimization_interval_s = 0\n"
)
T0 = 1_732_000_000_000
# 10 trades without edge; 120 losing 0.5 a trade (σ about 1): the edge test's evidence
# for "losing 0.3 σ" passes 1000 to 1 during them; then 100 without edge, which fill the
# whole window and bring the statistic back under the alarm level by their end.
PNLS = [1.0, -1.0] * 5 + [0.5, -1.5] * 60 + [1.0, -1.0] * 50


def record(client: RawClient, first: int, last: int) -> None:
    for i in range(first, last):
        record_one(client, i, PNLS[i])


def record_one(client: RawClient, i: int, pnl: float, regime: str | None = None) -> None:
    """Trade ``i`` of the strategy, in ``regime`` if one is given."""
    client.call(
        RecordTrade(
            trade_id=f"t{i}" if regime is None else f"{regime}-{i}",
            strategy="fader",
            symbol="ETH/USDT",
            side="buy",
            pnl=pnl,
            entry_ts_ms=T0 + i * 1000,
            exit_ts_ms=T0 + i * 1000 + 500,
            regime=regime,
        )
    )


def newest_snapshot(database: Path) -> int:
    """The trade seq of the newest snapshot on disk (0 for none)."""
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
        return int(db.execute("SELECT coalesce(max(trade_seq), 0) FROM snapshots").fetchone()[0])


def health(client: RawClient) -> tuple[str, str]:
    row = next(r for r in client.call(GetHealth()).rows if r.strategy == "fader")
    return row.status, row.reason


def test_trades_beyond_the_window_between_two_cycles_are_read_after_a_kill9(
    tmp_path: Path,
) -> None:
    daemon = DaemonProcess(tmp_path, CONFIG).start()
    try:
        rpc = RawClient(daemon.rpc)
        record(rpc, 0, 10)
        state = rpc.call(UpdateOptimization())
        assert isinstance(state, OptimizationState) and state.statuses["fader"] == "active"
        record(rpc, 10, len(PNLS))
        rpc.close()
        # A snapshot taken after trade 200 holds a hundred trades or more that left the
        # window unread; the restart replays the few after it.
        deadline = time.monotonic() + 30.0
        while newest_snapshot(daemon.database) < 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert 200 <= newest_snapshot(daemon.database) < len(PNLS)
        daemon.kill9()
        daemon.start()
        rpc = RawClient(daemon.rpc)
        state = rpc.call(UpdateOptimization())
        assert isinstance(state, OptimizationState)
        status, reason = health(rpc)
        assert status == "suspended", reason
        assert reason.startswith("lost its edge: losing 0.3 σ a trade is "), reason
        rpc.close()
    finally:
        daemon.close()


def test_a_regimes_trades_beyond_its_window_between_two_cycles_are_read(
    tmp_path: Path,
) -> None:
    # With the per-regime lifecycle, the same 230 trades in one regime, each beside one
    # without edge in another (so the whole strategy does not lose its edge): the
    # regime's edge test reads all of its trades at the one cycle after them, not only
    # the 100 its window holds (which are without edge and would raise no alarm).
    daemon = DaemonProcess(tmp_path, CONFIG + "[lifecycle]\nper_regime = true\n").start()
    try:
        rpc = RawClient(daemon.rpc)

        def cycle() -> None:
            state = rpc.call(UpdateOptimization())
            assert isinstance(state, OptimizationState)

        for i in range(10):
            record_one(rpc, i, PNLS[i], "ranging")
            record_one(rpc, i, 1.0 if i % 2 else -1.0, "trending")
        cycle()
        for i in range(10, len(PNLS)):
            record_one(rpc, i, PNLS[i], "ranging")
            record_one(rpc, i, 1.0 if i % 2 else -1.0, "trending")
        cycle()
        row = next(r for r in rpc.call(GetHealth()).rows if r.strategy == "fader")
        assert row.status == "active", row.reason
        ranging = {r.regime: r for r in row.regimes}["ranging"]
        assert ranging.status == "suspended", ranging.reason
        assert ranging.reason.startswith("in regime ranging: lost its edge: losing 0.3 σ"), (
            ranging.reason
        )
        rpc.close()
    finally:
        daemon.close()
