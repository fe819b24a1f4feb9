"""End to end: the regimes an operator and a bot may name. A status forced in a regime
alphad never saw is refused, as for a strategy; a trade without a regime and one in
``unknown`` are the same, neither counted against ``max_regimes``, before and after a
restart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from alphad.protocol.client import Client
from alphad.protocol.errors import AlphadError
from alphad.protocol.messages import TradeRecorded
from tests.daemon_process import DaemonProcess

T0 = 1_732_000_000_000


def trade(client: Client, trade_id: str, regime: str | None) -> TradeRecorded:
    return client.record_trade(
        trade_id=trade_id,
        strategy="swing",
        symbol="BTC/USDT",
        side="buy",
        pnl=1.0,
        entry_ts_ms=T0,
        exit_ts_ms=T0 + 500,
        regime=regime,
    )


def refused(call: Any) -> str:
    with pytest.raises(AlphadError) as error:
        call()
    return error.value.code


def test_a_status_in_a_regime_never_seen_is_refused_and_nothing_recorded(
    tmp_path: Path,
) -> None:
    config = (
        "[engine]\nupdate_interval_s = 0\n[lifecycle]\nper_regime = true\n"
        "[strategies.swing.regimes.quiet]\nmin_trades = 5\n"
    )
    daemon = DaemonProcess(tmp_path, config).start()
    try:
        with Client(daemon.rpc, retries=0) as rpc, Client(daemon.admin, retries=0) as admin:
            trade(rpc, "t1", "chop")
            code = refused(lambda: admin.force_status("swing", "suspended", "x", "ops", "chpo"))
            assert code == "not_found"
            assert admin.get_audit(limit=100).entries == []
            assert [r.regime for r in rpc.get_health("swing").rows[0].regimes] == []
            # A detector's label, or a regime the config names, may be set before any
            # trade or signal named it.
            assert admin.force_status("swing", "degraded", "x", "ops", "volatile").new == "degraded"
            assert admin.force_status("swing", "degraded", "x", "ops", "quiet").new == "degraded"
            changed = admin.force_status("swing", "suspended", "x", "ops", "chop")
            assert (changed.regime, changed.new) == ("chop", "suspended")
            # A regime seen only in a scored signal; after a restart, which forgets the
            # scored names, it is known from its journaled status.
            rpc.score_signal("swing", "BTC/USDT", "buy", 0.8, regime="calm")
            admin.force_status("swing", "suspended", "x", "ops", "calm")
            daemon.stop()
            daemon.start()
        with Client(daemon.admin, retries=0) as admin:
            assert admin.force_status("swing", "active", "y", "ops", "calm").old == "suspended"
            code = refused(lambda: admin.force_status("swing", "suspended", "x", "ops", "chpo"))
            assert code == "not_found"
    finally:
        daemon.close()


def test_a_trade_without_a_regime_and_one_in_unknown_are_one_regime_never_counted(
    tmp_path: Path,
) -> None:
    daemon = DaemonProcess(tmp_path, "[limits]\nmax_regimes = 2\n").start()
    try:
        with Client(daemon.rpc, retries=0) as rpc:
            trade(rpc, "r0", "r0")
            trade(rpc, "none", None)
            trade(rpc, "r1", "r1")
            assert not trade(rpc, "unknown", "unknown").duplicate
            assert trade(rpc, "none", "unknown").duplicate  # the same trade as recorded
            assert refused(lambda: trade(rpc, "r2", "r2")) == "limit"
        daemon.stop()
        daemon.start()  # "unknown" is now among the regimes the recovered state holds
        with Client(daemon.rpc, retries=0) as rpc:
            assert not trade(rpc, "unknown-2", "unknown").duplicate
            assert refused(lambda: trade(rpc, "r2", "r2")) == "limit"
            rows = {
                r["regime"]: r["trades"] for r in rpc.get_performance(group_by=("regime",)).rows
            }
            assert rows == {"r0": 1, "r1": 1, "unknown": 3}
    finally:
        daemon.close()


def test_a_refused_trade_uses_up_no_place_under_the_caps(tmp_path: Path) -> None:
    # A resend of a recorded trade_id under new names is a conflict: its names held their
    # places until a restart, and real trades were then refused with limit.
    daemon = DaemonProcess(tmp_path, "[limits]\nmax_regimes = 2\nmax_symbols = 2\n").start()
    try:
        with Client(daemon.rpc, retries=0) as rpc:
            trade(rpc, "t1", "trend")
            for i in range(4):
                resent = lambda i=i: rpc.record_trade(  # noqa: E731
                    trade_id="t1",
                    strategy="swing",
                    symbol=f"JUNK{i}",
                    side="buy",
                    pnl=1.0,
                    entry_ts_ms=T0,
                    exit_ts_ms=T0 + 500,
                    regime=f"junk{i}",
                )
                assert refused(resent) == "conflict"
            assert not trade(rpc, "t2", "range").duplicate
            eth = rpc.record_trade(
                trade_id="t3",
                strategy="swing",
                symbol="ETH/USDT",
                side="buy",
                pnl=1.0,
                entry_ts_ms=T0,
                exit_ts_ms=T0 + 500,
                regime="trend",
            )
            assert not eth.duplicate
            assert refused(lambda: trade(rpc, "t4", "third")) == "limit"
    finally:
        daemon.close()
