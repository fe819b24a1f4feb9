"""The finer performance groups are capped by ``[limits] max_groups``; the groups by
strategy and the judged windows are always kept, exact, and restored after a restart."""

from __future__ import annotations

import math
from pathlib import Path

from alphad.actors.events import ClosedTrade
from alphad.actors.figures import figures_of
from alphad.actors.performance import CAPPED, PerformanceConfig, PerformanceModel
from alphad.protocol.client import Client
from tests.daemon_process import DaemonProcess

T0 = 1_732_000_000_000


def trades(count: int) -> list[ClosedTrade]:
    """Each trade on a new symbol: a new combination, so three new finer groups each."""
    return [
        ClosedTrade(
            seq=i + 1,
            trade_id=f"t{i}",
            strategy=f"s{i % 3}",
            symbol=f"SYM{i}",
            side="buy",
            pnl=round(math.sin(i) * 10, 2),
            entry_ts_ms=T0 + i,
            exit_ts_ms=T0 + i + 1,
            regime=("trending", "ranging")[i % 2],
        )
        for i in range(count)
    ]


def test_beyond_max_groups_new_combinations_keep_only_strategy_and_judged_groups() -> None:
    history = trades(40)
    model = PerformanceModel(PerformanceConfig(window_trades=10), max_groups=25)
    for trade in history:
        model.record(trade)

    assert sum(len(model.groups[grouping]) for grouping in CAPPED) == 25
    assert model.groups_not_kept == 3 * 40 - 25
    assert len(model.groups[("strategy", "regime")]) == 6  # judged: always kept
    assert len(model.groups[("symbol",)]) == 40
    for name in ("s0", "s1", "s2"):
        pnls = [t.pnl for t in history if t.strategy == name]
        everything = model.strategy_figures(name, "all")
        assert everything is not None and everything.trades == len(pnls)
        assert everything.total_pnl == math.fsum(pnls)
        assert model.strategy_figures(name, "recent") == figures_of(pnls[-10:])

    restored = PerformanceModel.from_state(
        PerformanceConfig(window_trades=10), model.to_state(), max_groups=25
    )
    assert restored.to_state() == model.to_state()
    restored.record(
        ClosedTrade(
            seq=41, trade_id="t40", strategy="s0", symbol="NEW", side="buy", pnl=1.0,
            entry_ts_ms=T0, exit_ts_ms=T0 + 1, regime="trending",
        )
    )  # fmt: skip
    assert sum(len(restored.groups[grouping]) for grouping in CAPPED) == 25


def test_daemon_keeps_max_groups_finer_groups_and_restores_them(tmp_path: Path) -> None:
    history = trades(40)
    daemon = DaemonProcess(tmp_path, "[limits]\nmax_groups = 25\n").start()
    try:
        with Client(daemon.rpc) as rpc:
            for t in history:
                rpc.record_trade(
                    t.trade_id, t.strategy, t.symbol, t.side, t.pnl, t.entry_ts_ms,
                    t.exit_ts_ms, regime=t.regime,
                )  # fmt: skip
            before = _tables(rpc)
        assert sum(len(before[grouping]) for grouping in CAPPED) == 25
        for row in before[("strategy",)]:
            pnls = [t.pnl for t in history if t.strategy == row["strategy"]]
            assert row["trades"] == len(pnls) and row["total_pnl"] == math.fsum(pnls)
        assert "performance_groups_not_kept" in daemon.log()

        daemon.restart()
        with Client(daemon.rpc) as rpc:
            assert _tables(rpc) == before
    finally:
        daemon.close()


def _tables(rpc: Client) -> dict[tuple[str, ...], list[dict[str, object]]]:
    groupings = [("strategy",), ("strategy", "regime"), *CAPPED]
    return {g: rpc.get_performance(group_by=list(g)).rows for g in groupings}
