"""End to end: forgetting a strategy, refusals where nothing was recorded, weight rollbacks,
switched-off components and the reads of signals and top strategies."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import zmq

from daemon.report import utc_time
from protocol.client import Client
from protocol.codec import decode_alert
from protocol.errors import AlphadError
from tests.daemon_process import DaemonProcess

BASE_MS = 1_732_000_000_000


def subscribe(endpoint: str, prefix: bytes) -> zmq.Socket[Any]:
    sock = zmq.Context.instance().socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SUBSCRIBE, prefix)
    sock.connect(endpoint)
    return sock


def trade(client: Client, strategy: str, i: int, pnl: float = 1.0, regime: str = "trend") -> None:
    client.record_trade(
        trade_id=f"{strategy}-{i}",
        strategy=strategy,
        symbol="BTC/USDT",
        side="buy",
        pnl=pnl,
        entry_ts_ms=BASE_MS + i * 1000,
        exit_ts_ms=BASE_MS + i * 1000 + 500,
        regime=regime,
    )


FORGET_CONFIG = """
[engine]
update_interval_s = 0
[limits]
max_strategies = 3
optimization_interval_s = 0
[strategies.core]
base_weight = 1.0
"""


def test_forgotten_strategy_frees_its_place_under_the_cap_and_stays_forgotten(
    tmp_path: Path,
) -> None:
    daemon = DaemonProcess(tmp_path, FORGET_CONFIG).start()
    try:
        rpc, admin = Client(daemon.rpc, retries=0), Client(daemon.admin, retries=0)
        alerts = subscribe(daemon.alerts, b"forget")
        time.sleep(0.3)  # a SUB joins asynchronously
        trade(rpc, "old_trend", 0)
        trade(rpc, "scalper", 1)
        with pytest.raises(AlphadError) as full:
            trade(rpc, "newcomer", 2)
        assert full.value.code == "limit"

        with pytest.raises(AlphadError) as configured:
            admin.forget_strategy("core", reason="gone", operator="ops")
        assert configured.value.code == "bad_request"
        assert "[strategies.core]" in str(configured.value)
        with pytest.raises(AlphadError) as unknown:
            admin.forget_strategy("old_trnd", reason="typo", operator="ops")
        assert unknown.value.code == "not_found"
        with pytest.raises(AlphadError) as not_admin:
            rpc.forget_strategy("old_trend", reason="x", operator="ops")
        assert not_admin.value.code == "forbidden"

        forgotten = admin.forget_strategy("old_trend", reason="retired for good", operator="ops")
        assert forgotten.strategy == "old_trend" and forgotten.status == "active"
        trade(rpc, "newcomer", 2)

        assert alerts.poll(5000), "no forget alert"
        topic, payload = alerts.recv_multipart()
        alert = decode_alert(payload)
        assert topic == b"forget" and alert.strategy == "old_trend"
        assert alert.seq == forgotten.seq and alert.actor == "ops"
        entry = rpc.get_audit(since_seq=forgotten.seq - 1, limit=1).entries[0]
        assert (entry.kind, entry.strategy, entry.reason) == (
            "forget",
            "old_trend",
            "retired for good",
        )

        served = {"core", "scalper", "newcomer"}

        def shown() -> tuple[set[str], set[str], set[str], int]:
            return (
                {row.strategy for row in rpc.get_health().rows},
                set(rpc.get_weights().base),
                {row["strategy"] for row in rpc.get_performance().rows},
                rpc.get_status().strategies,
            )

        assert shown() == (served, served, {"scalper", "newcomer"}, 3)
        rpc.close()
        admin.close()
        alerts.close()

        daemon.kill9()
        daemon.start()
        rpc = Client(daemon.rpc, retries=0)
        assert shown() == (served, served, {"scalper", "newcomer"}, 3)
        with pytest.raises(AlphadError) as still_full:
            trade(rpc, "old_trend", 3)
        assert still_full.value.code == "limit"
        rpc.close()
    finally:
        daemon.close()


def test_outcomes_and_health_of_names_never_seen_are_not_found(tmp_path: Path) -> None:
    daemon = DaemonProcess(tmp_path, FORGET_CONFIG).start()
    try:
        rpc = Client(daemon.rpc, retries=0)
        with pytest.raises(AlphadError) as invented:
            rpc.record_signal_outcome("never-scored-1", True)
        assert invented.value.code == "not_found"

        scored = rpc.score_signal("scalper", "BTC/USDT", "buy", 0.8, confluence=3, regime="trend")
        assert scored.signal_id is not None
        # The trade consumes the pending signal; the outcome sent as well is still known.
        rpc.record_trade(
            trade_id="s-1", strategy="scalper", symbol="BTC/USDT", side="buy", pnl=1.0,
            entry_ts_ms=BASE_MS, exit_ts_ms=BASE_MS + 1, signal_id=scored.signal_id,
        )  # fmt: skip
        rpc.record_signal_outcome(scored.signal_id, True)
        rpc.record_signal_outcome(scored.signal_id, True)  # a resend, once journaled
        with pytest.raises(AlphadError) as conflict:
            rpc.record_signal_outcome(scored.signal_id, False)
        assert conflict.value.code == "conflict"

        assert [row.strategy for row in rpc.get_health("scalper").rows] == ["scalper"]
        assert [row.strategy for row in rpc.get_health("core").rows] == ["core"]
        with pytest.raises(AlphadError) as misspelt:
            rpc.get_health("scalpr")
        assert misspelt.value.code == "not_found"

        assert rpc.get_weights("trend").notes == []
        unseen = rpc.get_weights("trnd")
        assert unseen.notes and "'trnd'" in unseen.notes[0]
        assert rpc.update_optimization("trnd").notes
        assert rpc.update_optimization(None).notes == []
        rpc.close()
        daemon.kill9()
        daemon.start()
        rpc = Client(daemon.rpc, retries=0)
        # After a restart the journal still knows the signal; the invented one is still unknown.
        rpc.record_signal_outcome(scored.signal_id, True)
        with pytest.raises(AlphadError) as still_invented:
            rpc.record_signal_outcome("never-scored-2", False)
        assert still_invented.value.code == "not_found"
        rpc.close()
    finally:
        daemon.close()


ROLLBACK_CONFIG = """
[engine]
update_interval_s = 0
[limits]
optimization_interval_s = 0
[performance]
window_trades = 20
[weighting]
min_trades = 10
"""


def losing_trades(client: Client, start: int, n: int) -> int:
    for i in range(start, start + n):
        trade(client, "fader", i, pnl=-1.0 + 0.01 * (i % 3))
    return start + n


def test_rollback_undoes_the_last_change_then_the_one_before_and_says_which(
    tmp_path: Path,
) -> None:
    daemon = DaemonProcess(tmp_path, ROLLBACK_CONFIG).start()
    try:
        admin = Client(daemon.admin, retries=0)
        with pytest.raises(AlphadError) as nothing_yet:
            admin.rollback_weights("nothing to undo")
        assert nothing_yet.value.code == "not_found"
        next_id = losing_trades(admin, 0, 20)
        base = admin.get_weights().adaptive
        assert base == {"fader": 1.0}
        assert admin.update_optimization().weight_changes
        after_1 = admin.get_weights().adaptive
        losing_trades(admin, next_id, 20)
        assert admin.update_optimization().weight_changes
        after_2 = admin.get_weights().adaptive
        assert not admin.update_optimization().weight_changes  # cycle 3 moves nothing
        assert base != after_1 != after_2

        reset = admin.reset_weights("flatten", "ops")
        assert reset.adaptive == base
        undone = admin.rollback_weights("undo the reset", "ops")
        assert (undone.adaptive, undone.restored_cycle) == (after_2, 2)
        admin.close()

        daemon.kill9()
        daemon.start()
        admin = Client(daemon.admin, retries=0)
        # Not the no-op cycle 3: the last change, cycle 2's.
        back = admin.rollback_weights("cycle 2 went too far", "ops")
        assert (back.adaptive, back.restored_cycle) == (after_1, 1)
        assert admin.get_weights().adaptive == after_1
        with pytest.raises(AlphadError) as too_far:
            admin.rollback_weights("x", to_cycle=5)
        assert too_far.value.code == "not_found"
        to_start = admin.rollback_weights("from scratch", "ops", to_cycle=0)
        assert (to_start.adaptive, to_start.restored_cycle) == (base, 0)
        with pytest.raises(AlphadError) as empty:
            admin.rollback_weights("again")
        assert empty.value.code == "not_found"
        kinds = [e.kind for e in admin.get_audit(limit=1000).entries if e.actor == "ops"]
        assert kinds and set(kinds) == {"weight"}
        admin.close()
    finally:
        daemon.close()


def alphad(daemon: DaemonProcess, *args: str) -> str:
    location = ["--state-dir", str(daemon.state_dir), "--runtime-dir", str(daemon.runtime_dir)]
    done = subprocess.run(
        [sys.executable, "-m", "daemon.cli", *args, *location],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


def test_status_and_report_show_a_switched_off_component_as_off_since_its_switch(
    tmp_path: Path,
) -> None:
    daemon = DaemonProcess(tmp_path, "[components]\nlifecycle = false\n").start()
    try:
        admin = Client(daemon.admin, retries=0)
        before_ms = time.time_ns() // 1_000_000
        admin.set_component("weighting", False, "weights swing", "ops")
        status = admin.get_status()
        assert status.enabled["weighting"] is False
        switched = status.switched_ms["weighting"]
        assert before_ms <= switched <= time.time_ns() // 1_000_000
        assert "lifecycle" not in status.switched_ms  # off by the config, never switched

        def line_of(text: str, name: str) -> str:
            return next(line for line in text.splitlines() if line.strip().startswith(name))

        shown = alphad(daemon, "status")
        assert f"off since {utc_time(switched)} UTC" in line_of(shown, "weighting")
        assert "off" in line_of(shown, "lifecycle") and "config" in line_of(shown, "lifecycle")
        assert line_of(shown, "scorer").split() == ["scorer", "running"]
        report = alphad(daemon, "report")
        assert f"weighting=off since {utc_time(switched)} UTC" in report
        admin.close()

        daemon.kill9()
        daemon.start()
        with Client(daemon.rpc, retries=0) as rpc:
            assert rpc.get_status().switched_ms == {"weighting": switched}
    finally:
        daemon.close()
