"""End to end: forgetting a strategy, refusals where nothing was recorded, weight rollbacks,
switched-off components and the reads of signals and top strategies."""

from __future__ import annotations

import csv
import io
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import zmq

from alphad.daemon.report import utc_time
from alphad.protocol.client import Client
from alphad.protocol.codec import decode_alert
from alphad.protocol.errors import AlphadError
from alphad.protocol.messages import TradeRecorded
from tests.daemon_process import DaemonProcess, damage_newest_snapshot

BASE_MS = 1_732_000_000_000


def subscribe(endpoint: str, prefix: bytes) -> zmq.Socket[Any]:
    sock = zmq.Context.instance().socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SUBSCRIBE, prefix)
    sock.connect(endpoint)
    return sock


def trade(
    client: Client, strategy: str, i: int, pnl: float = 1.0, regime: str = "trend"
) -> TradeRecorded:
    return client.record_trade(
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


def test_a_resent_trade_does_not_bring_back_a_forgotten_strategy(tmp_path: Path) -> None:
    # A lost reply's retry resends a trade already recorded: it records nothing, so it
    # must not take the forgotten strategy on again, before a restart or after one.
    daemon = DaemonProcess(tmp_path, FORGET_CONFIG.replace("max_strategies = 3", "")).start()
    try:
        rpc, admin = Client(daemon.rpc, retries=0), Client(daemon.admin, retries=0)
        trade(rpc, "gone", 0)
        trade(rpc, "kept", 1)
        admin.forget_strategy("gone", reason="retired", operator="ops")

        def known() -> tuple[set[str], set[str], int]:
            return (
                {row.strategy for row in rpc.get_health().rows},
                set(rpc.get_weights().base),
                rpc.get_status().strategies,
            )

        before = known()
        assert before == ({"core", "kept"}, {"core", "kept"}, 2)
        assert trade(rpc, "gone", 0).duplicate  # the same trade, sent again
        assert known() == before
        rpc.close()
        admin.close()
        daemon.kill9()
        daemon.start()
        rpc = Client(daemon.rpc, retries=0)
        assert trade(rpc, "gone", 0).duplicate
        assert known() == before
        # A new trade takes the strategy on afresh. It reaches the engine through its
        # mailbox; a report, answered from that mailbox, comes after it (health and
        # weights are answered at once, on the receive path, and on a loaded machine
        # could come first).
        trade(rpc, "gone", 2)
        rpc.get_report()
        assert known() == ({"core", "gone", "kept"}, {"core", "gone", "kept"}, 3)
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
        assert "cycle 5 has not run yet: the last cycle is 3" in too_far.value.message
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
        [sys.executable, "-m", "alphad.daemon.cli", *args, *location],
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
        assert f"weighting=off since {utc_time(switched)} UTC (" in report
        assert "s ago)" in report.split("weighting=off since", 1)[1].splitlines()[0]
        admin.close()

        daemon.kill9()
        daemon.start()
        with Client(daemon.rpc, retries=0) as rpc:
            assert rpc.get_status().switched_ms == {"weighting": switched}
    finally:
        daemon.close()


def test_the_config_switches_components_at_every_start_unless_an_operator_switched_them(
    tmp_path: Path,
) -> None:
    # A snapshot keeps every switch; only an operator's may outlive a change of the config.
    daemon = DaemonProcess(tmp_path, "[components]\nlifecycle = false\n").start()
    try:
        with Client(daemon.rpc, retries=0) as rpc:
            assert rpc.get_status().enabled["lifecycle"] is False
        with Client(daemon.admin, retries=0) as admin:
            admin.set_component("weighting", False, "weights swing", "ops")
        daemon.stop()
        daemon.config_path.write_text(
            "[metrics]\nenabled = false\n[components]\nscorer = false\n", encoding="utf-8"
        )
        daemon.start()
        with Client(daemon.rpc, retries=0) as rpc:
            status = rpc.get_status()
        # The config's lifecycle is on again and its scorer off; the operator's weighting
        # switch stays off.
        assert status.enabled == {"scorer": False, "weighting": False, "lifecycle": True}
        assert set(status.switched_ms) == {"weighting"}
        daemon.kill9()
        daemon.config_path.write_text("[metrics]\nenabled = false\n", encoding="utf-8")
        daemon.start()
        with Client(daemon.rpc, retries=0) as rpc:
            status = rpc.get_status()
        assert status.enabled == {"scorer": True, "weighting": False, "lifecycle": True}
    finally:
        daemon.close()


def test_top_strategies_by_any_figure_leave_out_those_with_few_trades(tmp_path: Path) -> None:
    daemon = DaemonProcess(tmp_path, FORGET_CONFIG.replace("max_strategies = 3", "")).start()
    try:
        rpc = Client(daemon.rpc, retries=0)
        trade(rpc, "lucky", 0, pnl=100.0)
        for i in range(25):
            trade(rpc, "steady", 100 + i, pnl=1.0 + 0.1 * (i % 2))
            trade(rpc, "swinger", 200 + i, pnl=3.0 if i % 3 else -2.0)
            trade(rpc, "loser", 300 + i, pnl=-1.0)

        def names(rows: list[dict[str, Any]]) -> list[str]:
            return [row["strategy"] for row in rows]

        top = rpc.get_top()
        assert (top.metric, top.window, top.min_trades) == ("expectancy", "recent", 20)
        assert names(top.rows) == ["swinger", "steady", "loser"]
        assert names(rpc.get_top(min_trades=0).rows)[0] == "lucky"
        assert names(rpc.get_top("win_rate", n=2).rows) == ["steady", "swinger"]
        assert names(rpc.get_top("max_drawdown", n=1, ascending=True).rows) == ["steady"]
        with pytest.raises(AlphadError) as unknown_metric:
            rpc.get_top("luck")  # type: ignore[arg-type]
        assert unknown_metric.value.code == "bad_request"

        report = rpc.get_report()
        assert names(report.top_strategies) == ["swinger", "steady", "loser"]
        assert (report.top_metric, report.top_min_trades) == ("expectancy", 20)
        text = alphad(daemon, "report", "--top", "win_rate")
        section = text.split("TOP STRATEGIES")[1].splitlines()
        assert section[1].split()[:2] == ["strategy", "win_rate"]
        assert [line.split()[0] for line in section[3:5]] == ["steady", "swinger"]
        # The best by a drawdown or a loss are the lowest: steady never fell.
        for figure in ("max_drawdown", "losses"):
            text = alphad(daemon, "report", "--top", figure)
            section = text.split("TOP STRATEGIES")[1].splitlines()
            assert [line.split()[0] for line in section[3:6]] == ["steady", "swinger", "loser"]
        everyone = alphad(daemon, "report", "--min-trades", "0", "--format", "csv")
        tops = [
            r for r in csv.DictReader(io.StringIO(everyone)) if r["section"] == "top_strategies"
        ]
        assert tops[0]["strategy"] == "lucky"
        rpc.close()
    finally:
        daemon.close()


def test_scored_signals_are_read_back_in_pages_with_their_outcomes(tmp_path: Path) -> None:
    daemon = DaemonProcess(tmp_path, FORGET_CONFIG).start()
    try:
        rpc = Client(daemon.rpc, retries=0)
        ids = []
        for i in range(5):
            strategy = "scalper" if i % 2 else "old_trend"
            scored = rpc.score_signal(
                strategy, "BTC/USDT", "buy", 0.9, confluence=3, signal_id=f"sig-{i}",
                ts_ms=BASE_MS + i * 60_000,
            )  # fmt: skip
            ids.append(scored.signal_id)
        rpc.record_signal_outcome("sig-1", True)
        # A trade that carries a signal_id is its signal's outcome (pnl > 0) where no
        # record_signal_outcome gave one: sig-1 keeps the outcome it was given first.
        for i, pnl in ((1, -1.0), (2, -1.0), (4, 2.0)):
            strategy = "scalper" if i % 2 else "old_trend"
            rpc.record_trade(
                f"t-sig-{i}", strategy, "BTC/USDT", "buy", pnl, BASE_MS + i * 60_000,
                BASE_MS + i * 60_000 + 1_000, signal_id=f"sig-{i}",
            )  # fmt: skip
        deadline = time.monotonic() + 30
        while len(rpc.get_signals().signals) < 5:  # the scorer hands them over each second
            assert time.monotonic() < deadline, "the scored signals never reached the journal"
            time.sleep(0.05)

        page = rpc.get_signals(limit=2)
        assert [s.signal_id for s in page.signals] == ["sig-0", "sig-1"] and page.next is not None
        rest = rpc.get_signals(limit=10, after=page.next)
        assert [s.signal_id for s in rest.signals] == ["sig-2", "sig-3", "sig-4"]
        assert rest.next is None
        assert [s.success for s in rest.signals] == [False, None, True]
        first = page.signals[0]
        assert (first.strategy, first.symbol, first.confidence, first.ts_ms) == (
            "old_trend",
            "BTC/USDT",
            0.9,
            BASE_MS,
        )
        assert (first.success, page.signals[1].success) == (None, True)
        scalper = rpc.get_signals(strategy="scalper")
        assert [s.signal_id for s in scalper.signals] == ["sig-1", "sig-3"]
        recent = rpc.get_signals(since_ms=BASE_MS + 3 * 60_000, symbol="BTC/USDT")
        assert [s.signal_id for s in recent.signals] == ["sig-3", "sig-4"]
        assert rpc.get_signals(symbol="ETH/USDT").signals == []
        rpc.close()
    finally:
        daemon.close()


def test_every_number_of_a_performance_row_can_rank_strategies() -> None:
    from typing import get_args

    from alphad.protocol.messages import METRIC_FIELDS, RankedMetric

    assert set(get_args(RankedMetric)) == set(METRIC_FIELDS) - {"profit_factor_infinite"}


def test_a_forget_holds_after_a_restart_from_the_snapshot_before_it(tmp_path: Path) -> None:
    daemon = DaemonProcess(tmp_path, FORGET_CONFIG).start()
    try:
        rpc, admin = Client(daemon.rpc, retries=0), Client(daemon.admin, retries=0)
        trade(rpc, "old_trend", 0)
        trade(rpc, "scalper", 1)
        admin.update_optimization()  # a snapshot that still has old_trend
        admin.forget_strategy("old_trend", reason="retired", operator="ops")
        rpc.close()
        admin.close()
        daemon.kill9()
        damage_newest_snapshot(daemon.database)

        daemon.start()
        assert "restored_from_older_snapshot" in daemon.log()
        with Client(daemon.rpc, retries=0) as rpc:
            assert {row.strategy for row in rpc.get_health().rows} == {"core", "scalper"}
            assert set(rpc.get_weights().base) == {"core", "scalper"}
            assert [row["strategy"] for row in rpc.get_performance().rows] == ["scalper"]
            assert rpc.get_status().strategies == 2
            trade(rpc, "newcomer", 2)  # the place old_trend held is free
    finally:
        daemon.close()


@pytest.mark.parametrize("snapshots", ["older", "none"])
def test_a_rollback_after_a_start_that_applied_weight_changes_again_is_refused_saying_why(
    tmp_path: Path, snapshots: str
) -> None:
    # From the snapshot of cycle 1 with cycle 2's weights applied again, the rollback
    # history was cycle 1's: a rollback set the weights back to base (cycle 0's),
    # skipping cycle 1's, as if it undid the last change.
    daemon = DaemonProcess(tmp_path, ROLLBACK_CONFIG).start()
    try:
        admin = Client(daemon.admin, retries=0)
        next_id = losing_trades(admin, 0, 20)
        assert admin.update_optimization().weight_changes
        losing_trades(admin, next_id, 20)
        assert admin.update_optimization().weight_changes
        after_2 = admin.get_weights().adaptive
        admin.close()
        daemon.kill9()
        if snapshots == "none":
            with sqlite3.connect(daemon.database) as db:
                db.execute("DELETE FROM snapshots")
        else:
            damage_newest_snapshot(daemon.database)
        daemon.start()
        assert "weights_rollback_history_dropped" in daemon.log()
        admin = Client(daemon.admin, retries=0)
        assert admin.get_weights().adaptive == after_2
        with pytest.raises(AlphadError) as refused:
            admin.rollback_weights("undo cycle 2", "ops")
        assert refused.value.code == "not_found"
        assert "the changes before that start cannot be undone" in refused.value.message
        assert admin.get_weights().adaptive == after_2
        # Changes made after the start are undone as before.
        flat = admin.reset_weights("flatten", "ops")
        assert flat.adaptive != after_2
        assert admin.rollback_weights("undo the reset", "ops").adaptive == after_2
        admin.close()
    finally:
        daemon.close()


@pytest.mark.parametrize("snapshots", ["older", "none"])
def test_a_forgotten_strategy_that_trades_again_has_its_new_trades_only_after_a_fallback(
    tmp_path: Path, snapshots: str
) -> None:
    # A start from a snapshot before the forget (or from none) replayed its old losses
    # too: 36 trades instead of 5, and the next cycle suspended it.
    daemon = DaemonProcess(tmp_path, FORGET_CONFIG).start()
    try:
        rpc, admin = Client(daemon.rpc, retries=0), Client(daemon.admin, retries=0)
        trade(rpc, "old_trend", 0)
        admin.update_optimization()  # a snapshot before the forget
        for i in range(1, 31):
            trade(rpc, "old_trend", i, pnl=-10.0)
        admin.forget_strategy("old_trend", reason="retired", operator="ops")
        for i in range(31, 36):
            trade(rpc, "old_trend", i, pnl=2.0)

        def seen() -> tuple[Any, ...]:
            rows = {r["strategy"]: r for r in rpc.get_performance().rows}
            figures = rows["old_trend"]
            health = {r.strategy: r.status for r in rpc.get_health().rows}
            return figures["trades"], figures["total_pnl"], health["old_trend"]

        live = seen()
        assert live == (5, 10.0, "active")
        rpc.close()
        admin.close()
        daemon.kill9()
        if snapshots == "none":
            with sqlite3.connect(daemon.database) as db:
                db.execute("DELETE FROM snapshots")
        else:
            damage_newest_snapshot(daemon.database)
        daemon.start()
        rpc, admin = Client(daemon.rpc, retries=0), Client(daemon.admin, retries=0)
        assert seen() == live
        admin.update_optimization()
        assert seen() == live
        rpc.close()
        admin.close()
    finally:
        daemon.close()


@pytest.mark.parametrize("traded_after", [False, True])
def test_the_scorers_records_of_a_forgotten_strategy_are_as_live_after_a_fallback(
    tmp_path: Path, traded_after: bool
) -> None:
    # A start from a snapshot before the forget learned its old signals' outcomes again
    # (traded after it: its old losses back) or dropped what it learned after the forget
    # (only scored after it).
    daemon = DaemonProcess(tmp_path, FORGET_CONFIG).start()
    try:
        rpc, admin = Client(daemon.rpc, retries=0), Client(daemon.admin, retries=0)
        trade(rpc, "y", 0)
        admin.update_optimization()  # a snapshot before the forget
        for _ in range(15):  # losing signals on BTC, before the forget
            lost = rpc.score_signal("y", "BTC/USDT", "buy", 0.9, confluence=3)
            assert lost.signal_id is not None
            rpc.record_signal_outcome(lost.signal_id, False)
        admin.forget_strategy("y", reason="retired", operator="ops")
        if traded_after:
            trade(rpc, "y", 1)
        for symbol, won in (("ETH/USDT", False), ("SOL/USDT", True)):
            for _ in range(15):  # after the forget: losing on ETH, winning elsewhere
                scored = rpc.score_signal("y", symbol, "buy", 0.9, confluence=3)
                assert scored.signal_id is not None
                rpc.record_signal_outcome(scored.signal_id, won)

        def readings() -> list[tuple[float, list[str]]]:
            return [
                (s.quality, s.reasons)
                for s in (
                    rpc.score_signal("y", symbol, "buy", 0.9, confluence=3)
                    for symbol in ("BTC/USDT", "ETH/USDT")
                )
            ]

        live = readings()
        assert live[0][1] == [] and live[1][1] != []  # the old losses forgotten, new kept
        time.sleep(1.5)  # the signals reach the journal
        rpc.close()
        admin.close()
        daemon.kill9()
        damage_newest_snapshot(daemon.database)
        daemon.start()
        assert "restored_from_older_snapshot" in daemon.log()
        rpc = Client(daemon.rpc, retries=0)
        assert readings() == live
        rpc.close()
    finally:
        daemon.close()


def test_a_strategy_an_operator_brings_back_is_not_suspended_again_on_no_new_trade(
    tmp_path: Path,
) -> None:
    # A bot that went on trading a suspended strategy reported its losses; brought back
    # by an operator before the next cycle, the strategy was suspended again at that
    # cycle, with no trade since its return (its edge test read them as new), and again
    # after a kill -9 and a start from an older snapshot.
    config = (
        "[engine]\nupdate_interval_s = 0\n[limits]\noptimization_interval_s = 0\n"
        "[lifecycle]\nprobation_after_trades = 0\n"  # no return on the clock
    )
    daemon = DaemonProcess(tmp_path, config).start()
    try:
        admin = Client(daemon.admin, retries=0)
        wins = [1.0, -1.0] * 5
        losses = [0.5, -1.5] * 60
        for i, pnl in enumerate(wins + losses):
            trade(admin, "fader", i, pnl=pnl)
            if i >= 10 and i % 10 == 0:
                admin.update_optimization()
        assert admin.get_health("fader").rows[0].status == "suspended"
        for i in range(130, 190):  # still traded while suspended, still losing
            trade(admin, "fader", i, pnl=-1.5 if i % 2 else 0.5)
        admin.force_status("fader", "active", "reviewed", "ops")
        admin.update_optimization()
        assert admin.get_health("fader").rows[0].status == "active"
        admin.close()
        daemon.kill9()
        # Every commit carries a snapshot: the force's own is the newest but one. Both
        # damaged, the start applies the force again from the journal, with its count.
        damage_newest_snapshot(daemon.database, count=2)
        daemon.start()
        assert "restored_from_older_snapshot" in daemon.log()
        admin = Client(daemon.admin, retries=0)
        admin.update_optimization()
        assert admin.get_health("fader").rows[0].status == "active"
        admin.close()
    finally:
        daemon.close()
