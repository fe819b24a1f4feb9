"""End to end: the store and the engine under small mailboxes, refused and conflicting
writes, a damaged newest snapshot and a corrupt database file."""

from __future__ import annotations

import math
import resource
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest
import zmq

from alphad.protocol.codec import decode_reply, encode
from alphad.protocol.messages import (
    Error,
    ForceStatus,
    ForgetStrategy,
    GetAudit,
    GetHealth,
    GetPerformance,
    GetReport,
    GetStatus,
    GetWeights,
    Health,
    Ok,
    OptimizationState,
    RecordSignalOutcome,
    RecordTrade,
    Report,
    ResetWeights,
    RollbackWeights,
    ScoreSignal,
    SetComponent,
    SignalScore,
    StatusReply,
    TradeRecorded,
    UpdateOptimization,
    Weights,
)
from tests.daemon_process import DaemonProcess, RawClient, damage_newest_snapshot
from tests.test_e2e_faults import scrape_until
from tests.test_metrics import free_port, value

STALL_S = 20.0  # far beyond any group commit: no answer for this long is a stall


def closed_trade(trade_id: str, strategy: str = "ema", pnl: float = 1.0) -> RecordTrade:
    return RecordTrade(
        trade_id=trade_id,
        strategy=strategy,
        symbol="BTC",
        side="buy",
        pnl=pnl,
        entry_ts_ms=1_732_000_000_001,
        exit_ts_ms=1_732_000_000_002,
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


def figures_an_operator_sees(rpc: RawClient) -> dict[str, Any]:
    """Everything a refused change must leave as it was, in comparable form."""
    status = rpc.call(GetStatus())
    assert isinstance(status, StatusReply)
    scored = rpc.call(
        ScoreSignal(strategy="ema", symbol="BTC", side="buy", confidence=0.8, confluence=3)
    )
    assert isinstance(scored, SignalScore)
    return {
        "health": msgspec.to_builtins(rpc.call(GetHealth()).rows),
        "weights": msgspec.to_builtins(rpc.call(GetWeights())),
        "cycle": status.cycle,
        "enabled": status.enabled,
        "audit": msgspec.to_builtins(rpc.call(GetAudit(limit=1000)).entries),
        "scored": (scored.status, scored.weight, scored.size_multiplier),
        "performance": rpc.call(GetPerformance()).rows,
        "strategies": status.strategies,
    }


def test_changes_refused_on_a_full_disk_take_no_effect_before_or_after_a_restart(
    tmp_path: Path,
) -> None:
    # The edge test off: it would suspend this losing strategy in the first cycle, and the
    # test needs one that an operator suspends by hand.
    config = "[engine]\nupdate_interval_s = 0\n[lifecycle]\nedge_loss = 0\n"
    daemon = DaemonProcess(tmp_path, config).start()
    assert daemon.process is not None
    pid = daemon.process.pid
    rpc, admin = RawClient(daemon.rpc), RawClient(daemon.admin)
    wal = daemon.database.with_name(daemon.database.name + "-wal")
    soft, hard = resource.prlimit(pid, resource.RLIMIT_FSIZE)
    try:
        # A losing strategy, so that the first cycle moves its weight off base.
        for i in range(60):
            recorded = rpc.call(closed_trade(f"t{i}", pnl=-1.0 if i % 4 else 0.5))
            assert isinstance(recorded, TradeRecorded)
        cycle = admin.call(UpdateOptimization())
        assert isinstance(cycle, OptimizationState) and cycle.cycle == 1
        assert cycle.weight_changes, "the cycle must move a weight for reset to undo"
        before = figures_an_operator_sees(rpc)
        assert before["health"][0]["status"] != "suspended"

        resource.prlimit(pid, resource.RLIMIT_FSIZE, (wal.stat().st_size, hard))
        for i in range(200):  # until the write-ahead log has no room left
            if isinstance(rpc.call(closed_trade(f"fill-{i}")), Error):
                break
        else:
            raise AssertionError("no write reached the file size limit")
        refused = [
            admin.call(ForceStatus(strategy="ema", status="suspended", reason="x", operator="op")),
            admin.call(UpdateOptimization()),
            admin.call(ResetWeights(reason="x")),
            admin.call(RollbackWeights(reason="x")),
            admin.call(SetComponent(name="weighting", enabled=False, reason="x", operator="op")),
            admin.call(ForgetStrategy(strategy="ema", reason="x", operator="op")),
        ]
        for reply in refused:
            assert isinstance(reply, Error) and reply.code == "storage_unavailable", reply
        during = figures_an_operator_sees(rpc)
        assert during == before

        resource.prlimit(pid, resource.RLIMIT_FSIZE, (soft, hard))
        after_space = figures_an_operator_sees(rpc)
        assert after_space == before
        rpc.close()
        admin.close()
        assert daemon.stop() == 0
        daemon.start()
        rpc, admin = RawClient(daemon.rpc), RawClient(daemon.admin)
        assert figures_an_operator_sees(rpc) == before
        # The next cycle is the next number: none was used up by the refused one.
        next_cycle = admin.call(UpdateOptimization())
        assert isinstance(next_cycle, OptimizationState) and next_cycle.cycle == 2
    finally:
        rpc.close()
        admin.close()
        daemon.close()


def test_a_resend_that_differs_from_the_record_is_refused_as_a_conflict_and_counted(
    tmp_path: Path,
) -> None:
    port = free_port()
    daemon = DaemonProcess(tmp_path, f"[metrics]\nport = {port}\n").start()
    rpc = RawClient(daemon.rpc)
    try:
        first = rpc.call(closed_trade("T-1", strategy="ema", pnl=12.5))
        same = rpc.call(closed_trade("T-1", strategy="ema", pnl=12.5))
        assert isinstance(first, TradeRecorded) and isinstance(same, TradeRecorded)
        assert (first.duplicate, same.duplicate, same.seq) == (False, True, first.seq)
        other = msgspec.structs.replace(closed_trade("T-1", strategy="rsi", pnl=-3.0), side="sell")
        refused = rpc.call(other)
        assert isinstance(refused, Error) and refused.code == "conflict", refused
        for named in ("strategy", "side", "pnl"):
            assert named in refused.message
        scored = rpc.call(
            ScoreSignal(strategy="ema", symbol="BTC", side="buy", confidence=0.8, confluence=3)
        )
        assert isinstance(scored, SignalScore) and scored.signal_id is not None
        outcome = RecordSignalOutcome(signal_id=scored.signal_id, success=True)
        assert isinstance(rpc.call(outcome), Ok) and isinstance(rpc.call(outcome), Ok)
        opposite = rpc.call(RecordSignalOutcome(signal_id=scored.signal_id, success=False))
        assert isinstance(opposite, Error) and opposite.code == "conflict", opposite
        status = rpc.call(GetStatus())
        assert isinstance(status, StatusReply) and status.trades == 1
        samples = scrape_until(port, lambda m: value(m, "alphad_conflicts_total") > 0)
        assert value(samples, "alphad_conflicts_total") == 2
    finally:
        rpc.close()
        daemon.close()
    with sqlite3.connect(daemon.database) as db:
        assert db.execute("SELECT trade_id, strategy, side, pnl FROM trades").fetchall() == [
            ("T-1", "ema", "buy", 12.5)
        ]
        assert db.execute("SELECT success FROM signal_outcomes").fetchall() == [(1,)]


def state_a_bot_and_an_operator_see(rpc: RawClient) -> dict[str, Any]:
    """The figures a restart must bring back as they were."""
    status = rpc.call(GetStatus())
    assert isinstance(status, StatusReply)
    performance = rpc.call(GetPerformance(group_by=["strategy", "symbol"], window="recent"))
    return {
        "performance": msgspec.to_builtins(performance.rows),
        "totals": msgspec.to_builtins(rpc.call(GetPerformance(group_by=["strategy"])).rows),
        "operator": figures_an_operator_sees(rpc) | {"trades": status.trades},
    }


@pytest.mark.parametrize("damage", ["state", "trade_seq"])
def test_a_damaged_newest_snapshot_falls_back_to_the_one_before(
    tmp_path: Path, damage: str
) -> None:
    # A flipped piece of the state, or of the row's trade number (which decides the
    # trades replayed after it: 8 too many and 8 trades were in no figure): the same.
    config = "[store]\nsnapshot_every_trades = 100\n[engine]\nupdate_interval_s = 0\n"
    daemon = DaemonProcess(tmp_path, config).start()
    rpc, admin = RawClient(daemon.rpc), RawClient(daemon.admin)
    try:
        for i in range(150):
            pnl = round(math.sin(i) * 10, 6)
            strategy = "ema" if i % 3 else "rsi"
            assert isinstance(rpc.call(closed_trade(f"a{i}", strategy, pnl)), TradeRecorded)
        assert isinstance(admin.call(UpdateOptimization()), OptimizationState)
        suspended = admin.call(
            ForceStatus(strategy="rsi", status="suspended", reason="review", operator="op")
        )
        assert not isinstance(suspended, Error), suspended
        for i in range(40):  # a tail after the newest snapshot
            assert isinstance(
                rpc.call(closed_trade(f"b{i}", "ema", float(i % 5 - 2))), TradeRecorded
            )
        before = state_a_bot_and_an_operator_see(rpc)
        assert before["operator"]["scored"][0] == "active"
        rpc.close()
        admin.close()
        daemon.kill9()  # no final snapshot: the newest is the one of force_status

        with sqlite3.connect(daemon.database) as db:
            kept = db.execute("SELECT id, state FROM snapshots ORDER BY id DESC").fetchall()
            assert len(kept) >= 2
            newest_id, blob = kept[0]
            if damage == "state":
                middle = len(blob) // 2
                damaged = blob[:middle] + bytes(b ^ 0x5A for b in blob[middle : middle + 8])
                damaged += blob[middle + 8 :]
                db.execute("UPDATE snapshots SET state = ? WHERE id = ?", (damaged, newest_id))
            else:
                db.execute(
                    "UPDATE snapshots SET trade_seq = trade_seq + 8 WHERE id = ?", (newest_id,)
                )

        daemon.start()
        rpc, admin = RawClient(daemon.rpc), RawClient(daemon.admin)
        assert state_a_bot_and_an_operator_see(rpc) == before
        warnings = [line for line in daemon.log().splitlines() if "older_snapshot" in line]
        assert len(warnings) == 1, daemon.log()
        health = {row["strategy"]: row["status"] for row in before["operator"]["health"]}
        assert health["rsi"] == "suspended"

        # The snapshot passed over is deleted with the next one, so it does not hold a
        # place among the three kept: two later damages still find one that restores.
        for status in ("degraded", "active"):
            changed = admin.call(
                ForceStatus(strategy="rsi", status=status, reason="review", operator="op")
            )
            assert not isinstance(changed, Error), changed
        rpc.close()
        admin.close()
        daemon.kill9()
        with sqlite3.connect(daemon.database) as db:
            ids = [row[0] for row in db.execute("SELECT id FROM snapshots ORDER BY id DESC")]
        assert newest_id not in ids and len(ids) == 3
        damage_newest_snapshot(daemon.database, count=2)
        daemon.start()
        rpc, admin = RawClient(daemon.rpc), RawClient(daemon.admin)
        health = {
            row["strategy"]: row["status"]
            for row in state_a_bot_and_an_operator_see(rpc)["operator"]["health"]
        }
        assert health["rsi"] == "active", daemon.log()
    finally:
        rpc.close()
        admin.close()
        daemon.close()


def test_a_database_whose_snapshots_were_lost_keeps_the_journaled_changes(
    tmp_path: Path,
) -> None:
    # Every journaled change commits a snapshot with it; their rows lost, the state is
    # rebuilt from the trades and the journal: an operator's suspension and switch hold.
    config = "[engine]\nupdate_interval_s = 0\n"
    daemon = DaemonProcess(tmp_path, config).start()
    rpc, admin = RawClient(daemon.rpc), RawClient(daemon.admin)
    try:
        for i in range(30):
            assert isinstance(rpc.call(closed_trade(f"a{i}", "ema", 1.0)), TradeRecorded)
        forced = admin.call(
            ForceStatus(strategy="ema", status="suspended", reason="x", operator="op")
        )
        assert not isinstance(forced, Error), forced
        switched = admin.call(
            SetComponent(name="lifecycle", enabled=False, reason="x", operator="op")
        )
        assert not isinstance(switched, Error), switched
        before = figures_an_operator_sees(rpc)
        assert before["scored"][0] == "suspended" and before["enabled"]["lifecycle"] is False
        rpc.close()
        admin.close()
        assert daemon.stop() == 0
        with sqlite3.connect(daemon.database) as db:
            db.execute("DELETE FROM snapshots")
        daemon.start()
        rpc, admin = RawClient(daemon.rpc), RawClient(daemon.admin)
        assert figures_an_operator_sees(rpc) == before
        assert "restored_without_snapshot" in daemon.log()
    finally:
        rpc.close()
        admin.close()
        daemon.close()


def test_a_rebuild_without_snapshots_keeps_the_weights_and_forgets_of_the_journal(
    tmp_path: Path,
) -> None:
    # Strategies that are not configured take their journaled weights (they were skipped
    # as not registered yet); one forgotten after a suspension and traded since comes
    # back as it is live, active, not with the suspension from before the forget.
    config = "[engine]\nupdate_interval_s = 0\n[lifecycle]\nedge_loss = 0\n"
    daemon = DaemonProcess(tmp_path, config).start()
    rpc, admin = RawClient(daemon.rpc), RawClient(daemon.admin)
    try:
        for i in range(40):
            rpc.call(closed_trade(f"a{i}", "ema", 1.0 if i % 3 else -0.5))
            rpc.call(closed_trade(f"b{i}", "rsi", -1.0 if i % 3 else 0.5))
        for _ in range(3):
            assert isinstance(admin.call(UpdateOptimization()), OptimizationState)
        rpc.call(closed_trade("c0", "scalper", 1.0))
        admin.call(ForceStatus(strategy="scalper", status="suspended", reason="x", operator="op"))
        forgot = admin.call(ForgetStrategy(strategy="scalper", reason="x", operator="op"))
        assert not isinstance(forgot, Error), forgot
        rpc.call(closed_trade("c1", "scalper", 1.0))
        before = figures_an_operator_sees(rpc)
        weights = before["weights"]["adaptive"]
        assert weights["rsi"] < 1.0 and weights["ema"] == 1.0, weights
        health = {row["strategy"]: row["status"] for row in before["health"]}
        assert health["scalper"] == "active"
        rpc.close()
        admin.close()
        assert daemon.stop() == 0
        with sqlite3.connect(daemon.database) as db:
            db.execute("DELETE FROM snapshots")
        daemon.start()
        rpc, admin = RawClient(daemon.rpc), RawClient(daemon.admin)
        after = figures_an_operator_sees(rpc)
        assert after["weights"] == before["weights"]
        assert {row["strategy"]: row["status"] for row in after["health"]} == health
    finally:
        rpc.close()
        admin.close()
        daemon.close()


def test_a_rebuild_reads_only_what_decides_the_state_from_a_long_journal(
    tmp_path: Path,
) -> None:
    # A journal of years is millions of rows: a rebuild keeps each strategy's statuses,
    # its last weight per table, each component's last switch and the last cycle.
    from alphad.actors.store_reads import journal_to_rebuild

    database = tmp_path / "journal.db"
    with sqlite3.connect(database) as db:
        db.execute(
            "CREATE TABLE audit (seq INTEGER PRIMARY KEY, ts_ms INTEGER, kind TEXT,"
            " strategy TEXT, old TEXT, new TEXT, reason TEXT, actor TEXT, data TEXT)"
        )
        rows: list[tuple[Any, ...]] = []
        for cycle in range(1, 2001):
            for name in ("ema", "rsi"):
                rows.append(
                    (None, cycle, "weight", name, "1.0", str(1.0 - cycle / 1e4), "", "system", "{}")
                )
            rows.append(
                (None, cycle, "cycle", None, str(cycle - 1), str(cycle), "", "system", "{}")
            )
        rows.append((None, 3000, "status", "rsi", '"active"', '"suspended"', "x", "op", "{}"))
        rows.append(
            (None, 3001, "component", None, "true", "false", "x", "op", '{"component": "scorer"}')
        )
        rows.append((None, 3002, "status", "old", '"active"', '"suspended"', "x", "op", "{}"))
        rows.append(
            (None, 3003, "forget", "old", '"suspended"', "null", "x", "op", '{"trade_seq": 5}')
        )
        db.executemany("INSERT INTO audit VALUES (?,?,?,?,?,?,?,?,?)", rows)
        kept = journal_to_rebuild(db)
    assert [(e.kind, e.strategy, e.ts_ms) for e in kept] == [
        ("weight", "ema", 2000),
        ("weight", "rsi", 2000),
        ("cycle", None, 2000),
        ("status", "rsi", 3000),
        ("component", None, 3001),
        ("forget", "old", 3003),
    ]


def alphad(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "alphad.daemon.cli",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )


def damage_a_table_page(database: Path, table: str) -> None:
    """Overwrite bytes in the middle of the cells of the table's b-tree root page."""
    with sqlite3.connect(database) as db:
        root = db.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,))
        page = int(root.fetchone()[0])
        size = int(db.execute("PRAGMA page_size").fetchone()[0])
    start = (page - 1) * size
    with open(database, "r+b") as file:
        file.seek(start)
        header = file.read(8)
        cells_from = int.from_bytes(header[5:7], "big") or size
        file.seek(start + (cells_from + size) // 2)
        file.write(b"\xff" * 64)


def test_a_corrupt_database_is_refused_at_start_and_reported_by_check_db(tmp_path: Path) -> None:
    (tmp_path / "live").mkdir()
    (tmp_path / "damaged").mkdir()
    daemon = DaemonProcess(tmp_path / "live", "").start()
    rpc = RawClient(daemon.rpc)
    try:
        for i in range(400):
            assert isinstance(rpc.call(closed_trade(f"t{i}", pnl=float(i))), TradeRecorded)
            scored = ScoreSignal(
                strategy="ema", symbol="BTC", side="buy", confidence=0.7, signal_id=f"s{i}"
            )
            assert isinstance(rpc.call(scored), SignalScore)
        # The full check reads a running daemon's database without disturbing it.
        running = alphad("check-db", "--state-dir", str(daemon.state_dir))
        assert running.returncode == 0, running.stderr
        assert running.stdout.strip() == f"{daemon.database}: ok (integrity_check)"
        assert isinstance(rpc.call(closed_trade("after-check")), TradeRecorded)
    finally:
        rpc.close()
    assert daemon.stop() == 0
    daemon.close()

    damaged = DaemonProcess(tmp_path / "damaged", "")
    damaged.state_dir.mkdir(parents=True, mode=0o700)
    shutil.copy(daemon.database, damaged.database)
    # The journal of scored signals: a table the start itself never reads.
    damage_a_table_page(damaged.database, "signals")
    as_damaged = damaged.database.read_bytes()

    checked = alphad("check-db", "--database", str(damaged.database))
    assert checked.returncode == 1
    assert checked.stdout == "" and len(checked.stderr.splitlines()) == 1, checked.stderr
    assert str(damaged.database) in checked.stderr and "corrupt" in checked.stderr

    refused = alphad(
        "run",
        "--config",
        str(damaged.config_path),
        "--state-dir",
        str(damaged.state_dir),
        "--runtime-dir",
        str(damaged.runtime_dir),
    )
    assert refused.returncode == 1
    line = refused.stderr.strip().splitlines()[-1]
    assert line.startswith("alphad: ") and str(damaged.database) in line, refused.stderr
    assert "quick_check" in line and "Traceback" not in refused.stderr
    assert damaged.database.read_bytes() == as_damaged, "nothing may be written into it"
    damaged.close()


def test_a_backup_copied_over_a_crashed_database_is_refused_and_left_as_it_was(
    tmp_path: Path,
) -> None:
    # A kill -9 leaves the log beside the file; a backup copied over the file is read
    # through that log, found damaged and refused. The refusal once closed the only
    # connection, which copied the stale log into the backup and deleted the log (the
    # latest acknowledged trades with it).
    daemon = DaemonProcess(tmp_path, "").start()
    rpc = RawClient(daemon.rpc)
    backup = tmp_path / "nightly.db"
    try:
        for i in range(300):
            assert isinstance(rpc.call(closed_trade(f"a{i}", pnl=float(i % 7 - 3))), TradeRecorded)
        with sqlite3.connect(daemon.database) as live, sqlite3.connect(backup) as copy:
            live.backup(copy)
        for i in range(300):
            assert isinstance(rpc.call(closed_trade(f"b{i}", pnl=float(i % 5 - 2))), TradeRecorded)
    finally:
        rpc.close()
    daemon.kill9()
    log = daemon.database.with_name(daemon.database.name + "-wal")
    shutil.copyfile(backup, daemon.database)
    as_restored, as_logged = daemon.database.read_bytes(), log.read_bytes()
    assert as_logged, "the crash leaves the log"

    checked = alphad("check-db", "--database", str(daemon.database))
    assert checked.returncode == 1 and log.name in checked.stderr, checked.stderr
    with pytest.raises(RuntimeError) as refused:
        daemon.start()
    assert "quick_check" in str(refused.value) and log.name in str(refused.value)
    assert daemon.database.read_bytes() == as_restored, "nothing may be written into it"
    assert log.read_bytes() == as_logged, "the log is kept"

    # The log and its index moved away, as the refusal says: the backup starts.
    log.rename(tmp_path / "old.db-wal")
    daemon.database.with_name(daemon.database.name + "-shm").unlink()
    daemon.start()
    rpc = RawClient(daemon.rpc)
    try:
        status = rpc.call(GetStatus())
        assert isinstance(status, StatusReply) and status.trades == 300
    finally:
        rpc.close()
        daemon.close()


def test_names_that_were_only_scored_do_not_use_up_max_strategies(tmp_path: Path) -> None:
    daemon = DaemonProcess(tmp_path, "[limits]\nmax_strategies = 5\n").start()
    rpc = RawClient(daemon.rpc)
    try:
        for i in range(20):
            scored = rpc.call(
                ScoreSignal(strategy=f"passing-{i}", symbol="BTC", side="buy", confidence=0.6)
            )
            assert isinstance(scored, SignalScore), scored
        # Scored lately (the last 5 names), never traded: active, untracked.
        health = rpc.call(GetHealth(strategy="passing-19"))
        assert isinstance(health, Health), health
        assert (health.rows[0].status, health.rows[0].reason) == (
            "active",
            "no trade recorded yet",
        )
        every = rpc.call(GetHealth())
        assert isinstance(every, Health) and every.rows == []
        rpc.close()
        assert daemon.stop() == 0
        daemon.start()
        rpc = RawClient(daemon.rpc)
        for i in range(5):
            recorded = rpc.call(closed_trade(f"real-{i}", strategy=f"real-{i}"))
            assert isinstance(recorded, TradeRecorded), recorded
        over = rpc.call(closed_trade("one-too-many", strategy="real-5"))
        assert isinstance(over, Error) and over.code == "limit", over
        weights = rpc.call(GetWeights())  # each registered before its trade's reply
        assert sorted(weights.base) == [f"real-{i}" for i in range(5)]
    finally:
        rpc.close()
        daemon.close()


def test_check_db_refuses_an_empty_file_and_a_directory_in_one_line(tmp_path: Path) -> None:
    # SQLite takes an empty file for an empty database, whole: "ok" would pass a backup
    # that lost everything. A directory is not "no such file".
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    for path, expected in ((empty, "not an alphad database"), (tmp_path, "is a directory")):
        checked = alphad("check-db", "--database", str(path))
        assert checked.returncode == 1 and checked.stdout == "", checked
        lines = checked.stderr.splitlines()
        assert len(lines) == 1 and expected in lines[0] and str(path) in lines[0], lines


def test_a_strategy_is_in_the_weights_and_health_as_soon_as_its_first_trade_is_answered(
    tmp_path: Path,
) -> None:
    # The engine is kept busy by cycles an operator queued (more than its mailbox holds):
    # the strategy a trade brings must be listed by the reads the bot sends next, and not
    # be lost when the engine's mailbox is full.
    config = (
        "[daemon]\nmailbox_size = 64\nrequest_timeout_s = 60\n"
        "[engine]\nupdate_interval_s = 0\n"
        "[limits]\noptimization_interval_s = 0\n"
    )
    daemon = DaemonProcess(tmp_path, config).start()
    dealer = zmq.Context.instance().socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 0)
    dealer.connect(daemon.admin)
    client = RawClient(daemon.rpc)
    try:
        assert isinstance(client.call(closed_trade("warm", strategy="first")), TradeRecorded)
        for i in range(300):
            dealer.send_multipart([b"", encode(UpdateOptimization(request_id=f"c{i}"))])
        replies: list[Any] = []
        while len(replies) < 10 and dealer.poll(int(STALL_S * 1000)):
            replies.append(decode_reply(dealer.recv_multipart()[-1]))  # the engine is at work
        assert isinstance(client.call(closed_trade("new", strategy="newcomer")), TradeRecorded)
        weights = client.call(GetWeights())
        health = client.call(GetHealth(strategy="newcomer"))
        while len(replies) < 300 and dealer.poll(int(STALL_S * 1000)):
            replies.append(decode_reply(dealer.recv_multipart()[-1]))
        assert len(replies) == 300
        # Some cycles were refused for a full mailbox, the rest ran.
        assert {type(r).__name__ for r in replies} <= {"OptimizationState", "Error"}
        assert any(isinstance(r, Error) and r.code == "overloaded" for r in replies)
        assert isinstance(weights, Weights), weights
        assert weights.base == {"first": 1.0, "newcomer": 1.0}
        assert isinstance(health, Health), health
        assert health.rows[0].reason == "new strategy", health.rows[0]  # registered
        assert health.rows[0].since_ms > 0
        after = client.call(GetWeights())
        assert isinstance(after, Weights) and set(after.base) == {"first", "newcomer"}
    finally:
        client.close()
        dealer.close(linger=0)
        daemon.close()


def test_a_rebuild_reads_the_journals_signals_in_pages_and_learns_them_all(
    tmp_path: Path,
) -> None:
    # A rebuild without snapshots holds pending again every signal the journal keeps; it
    # read them all at once (0.7 GB for a million). In pages of 10 000 now: more than a
    # page here, with outcomes in the first page, across the edge and in the last.
    daemon = DaemonProcess(tmp_path, "[engine]\nupdate_interval_s = 0\n").start()
    rpc = RawClient(daemon.rpc)
    try:
        for i in range(10_400):
            scored = ScoreSignal(
                strategy="ema",
                symbol=f"S{i % 7}",
                side="buy",
                confidence=0.7,
                confluence=i % 4,
                signal_id=f"s{i}",
            )
            assert isinstance(rpc.call(scored), SignalScore)
            if i % 50 == 0 or 9_990 <= i < 10_010:
                traded = closed_trade(f"t{i}", pnl=1.0 if i % 3 else -1.0)
                traded = msgspec.structs.replace(traded, symbol=f"S{i % 7}", signal_id=f"s{i}")
                assert isinstance(rpc.call(traded), TradeRecorded)
        report = rpc.call(GetReport())
        assert isinstance(report, Report)
        before = report.signal_quality
        assert before["scored"] == 10_400
    finally:
        rpc.close()
    assert daemon.stop() == 0
    with sqlite3.connect(daemon.database) as db:
        db.execute("DELETE FROM snapshots")
    daemon.start()
    rpc = RawClient(daemon.rpc)
    try:
        report = rpc.call(GetReport())
        assert isinstance(report, Report)
        assert report.signal_quality == before
        assert '"signals_pending_again": 10400' in daemon.log()
    finally:
        rpc.close()
        daemon.close()
