"""End to end faults: storage going away and coming back (a locked database, a full disk),
SIGTERM under load, overload."""

from __future__ import annotations

import json
import resource
import signal
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import zmq

from alphad.protocol.client import Client
from alphad.protocol.codec import decode_reply, encode
from alphad.protocol.errors import AlphadError
from alphad.protocol.messages import (
    Error,
    ForceStatus,
    GetAudit,
    GetStatus,
    RecordSignalOutcome,
    RecordTrade,
    ScoreSignal,
    SignalScore,
    StatusChanged,
    TradeRecorded,
)
from tests.daemon_process import DaemonProcess, RawClient
from tests.test_metrics import free_port, scrape, value

Samples = dict[str, list[tuple[dict[str, str], float]]]


def fields_of(request: RecordTrade) -> dict[str, object]:
    return {f: getattr(request, f) for f in request.__struct_fields__ if f != "request_id"}


def trade(trade_id: str) -> RecordTrade:
    return RecordTrade(
        trade_id=trade_id,
        strategy="ema",
        symbol="BTC",
        side="buy",
        pnl=1.0,
        entry_ts_ms=1_732_000_001_000,
        exit_ts_ms=1_732_000_002_000,
    )


def test_locked_database_answers_storage_unavailable_and_recovers(tmp_path: Path) -> None:
    daemon = DaemonProcess(tmp_path, "[store]\nbusy_timeout_ms = 200\n").start()
    client = RawClient(daemon.rpc)
    try:
        assert isinstance(client.call(trade("before")), TradeRecorded)
        blocker = sqlite3.connect(daemon.database, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        refused = client.call(trade("during"))
        assert isinstance(refused, Error) and refused.code == "storage_unavailable"
        scored = client.call(
            ScoreSignal(strategy="ema", symbol="BTC", side="buy", confidence=0.8, confluence=3)
        )
        assert isinstance(scored, SignalScore), "scoring must not depend on storage"
        blocker.execute("ROLLBACK")
        blocker.close()
        accepted = client.call(trade("during"))
        assert isinstance(accepted, TradeRecorded) and not accepted.duplicate
        with sqlite3.connect(daemon.database) as db:
            ids = [r[0] for r in db.execute("SELECT trade_id FROM trades ORDER BY seq")]
        assert ids == ["before", "during"]
    finally:
        client.close()
        daemon.close()


def scrape_until(port: int, done: Callable[[Samples], bool], timeout_s: float = 10.0) -> Samples:
    """Scrape until ``done`` holds or the time is up (the metrics are folded once a second)."""
    deadline = time.monotonic() + timeout_s
    while True:
        samples = scrape(port)
        if done(samples) or time.monotonic() > deadline:
            return samples
        time.sleep(0.2)


def test_full_disk_answers_storage_unavailable_loses_nothing_and_recovers(
    tmp_path: Path,
) -> None:
    # The kernel's file size limit, set on the running daemon, fails every write that
    # would grow a file past it (EFBIG), as a full disk fails it (ENOSPC): SQLite reports
    # an I/O error for the one and "database or disk is full" for the other, and the store
    # answers both alike. The log file stays far below the limit.
    port = free_port()
    daemon = DaemonProcess(tmp_path, f"[metrics]\nport = {port}\n").start()
    assert daemon.process is not None
    pid = daemon.process.pid
    client = RawClient(daemon.rpc)
    wal = daemon.database.with_name(daemon.database.name + "-wal")
    soft, hard = resource.prlimit(pid, resource.RLIMIT_FSIZE)
    acknowledged: list[str] = []
    refused: list[str] = []
    try:
        for i in range(60):
            assert isinstance(client.call(trade(f"before-{i}")), TradeRecorded)
            acknowledged.append(f"before-{i}")
        assert daemon.log_path.stat().st_size < wal.stat().st_size // 4
        resource.prlimit(pid, resource.RLIMIT_FSIZE, (wal.stat().st_size, hard))
        for i in range(40):
            reply = client.call(trade(f"full-{i}"))
            if isinstance(reply, TradeRecorded):
                acknowledged.append(reply.trade_id)
            else:
                assert isinstance(reply, Error) and reply.code == "storage_unavailable", reply
                refused.append(f"full-{i}")
        assert refused, "no write reached the limit"
        scored = client.call(
            ScoreSignal(strategy="ema", symbol="BTC", side="buy", confidence=0.8, confluence=3)
        )
        assert isinstance(scored, SignalScore), "scoring must not depend on storage"
        failing = scrape_until(port, lambda m: value(m, "alphad_storage_healthy") == 0)
        assert value(failing, "alphad_storage_healthy") == 0
        assert value(failing, "alphad_store_failed_commits_total") >= len(refused)
        resource.prlimit(pid, resource.RLIMIT_FSIZE, (soft, hard))
        # Space is back: the bots' retries of what was refused are recorded, once each.
        for trade_id in refused:
            reply = client.call(trade(trade_id))
            assert isinstance(reply, TradeRecorded) and not reply.duplicate, reply
        assert daemon.process.poll() is None
        healthy = scrape_until(port, lambda m: value(m, "alphad_storage_healthy") == 1)
        assert value(healthy, "alphad_storage_healthy") == 1
    finally:
        client.close()
        daemon.close()
    with sqlite3.connect(daemon.database) as db:
        recorded = [r[0] for r in db.execute("SELECT trade_id FROM trades ORDER BY seq")]
    assert sorted(recorded) == sorted(acknowledged + refused)
    assert len(recorded) == len(set(recorded))


def test_sigterm_under_load_answers_in_flight_requests_and_exits_zero(tmp_path: Path) -> None:
    daemon = DaemonProcess(tmp_path, "").start()
    acknowledged: list[str] = []
    failures: list[str] = []

    def bot(n: int) -> None:
        with Client(daemon.rpc, timeout_s=3.0, retries=0) as client:
            for i in range(100_000):
                try:
                    reply = client.record_trade(
                        f"b{n}-{i}", "ema", "BTC", "buy", 1.0, 1_732_000_000_001, 1_732_000_000_002
                    )
                except AlphadError as exc:
                    failures.append(exc.code)
                    return
                acknowledged.append(reply.trade_id)

    bots = [threading.Thread(target=bot, args=(n,)) for n in range(4)]
    for b in bots:
        b.start()
    time.sleep(1.0)
    assert daemon.stop(timeout_s=20) == 0
    for b in bots:
        b.join(30)
    assert "alphad_stopped" in daemon.log()
    with sqlite3.connect(daemon.database) as db:
        stored = {r[0] for r in db.execute("SELECT trade_id FROM trades")}
        snapshot_seq = db.execute("SELECT MAX(trade_seq) FROM snapshots").fetchone()[0]
        last_seq = db.execute("SELECT MAX(seq) FROM trades").fetchone()[0]
    assert set(acknowledged) <= stored, "an acknowledged trade is missing"
    assert snapshot_seq == last_seq, "the final snapshot covers every committed trade"
    # Bots stop on a timeout (the daemon is gone) or on a refusal while it shuts down.
    assert set(failures) <= {"timeout", "overloaded"}


def test_a_request_that_comes_during_the_stop_is_answered_overloaded(tmp_path: Path) -> None:
    # While the stop waited for an in-flight trade (here on a locked database), a new
    # request got no answer at all: the bot waited out its timeout.
    daemon = DaemonProcess(tmp_path, "[store]\nbusy_timeout_ms = 4000\n").start()
    blocker = sqlite3.connect(daemon.database, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    codes: list[str] = []

    def waits() -> None:
        with Client(daemon.rpc, timeout_s=10.0, retries=0) as client:
            try:
                client.record_trade(**fields_of(trade("in-flight")))
                codes.append("ok")
            except AlphadError as refused:
                codes.append(refused.code)

    in_flight = threading.Thread(target=waits)
    try:
        in_flight.start()
        time.sleep(0.5)  # the trade waits on the lock
        assert daemon.process is not None
        daemon.process.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        with (
            Client(daemon.rpc, timeout_s=3.0, retries=0) as late,
            pytest.raises(AlphadError) as refused,
        ):
            late.score_signal("ema", "BTC", "buy", 0.8, confluence=3)
        assert refused.value.code == "overloaded", refused.value
        assert "shutting down" in str(refused.value)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
        in_flight.join(15)
        assert daemon.wait(30) == 0
        daemon.close()
    assert codes in (["ok"], ["storage_unavailable"]), codes  # the one in flight: answered


def test_with_the_defaults_a_locked_database_is_answered_storage_unavailable(
    tmp_path: Path,
) -> None:
    # The store waited 2 s for the lock, as long as the client's default attempt: the bot
    # usually gave up first and saw "timeout" instead of the documented code.
    daemon = DaemonProcess(tmp_path).start()
    try:
        with Client(daemon.rpc, retries=0) as client:
            blocker = sqlite3.connect(daemon.database, isolation_level=None)
            blocker.execute("BEGIN EXCLUSIVE")
            try:
                with pytest.raises(AlphadError) as refused:
                    client.record_trade(**fields_of(trade("locked")))
            finally:
                blocker.execute("ROLLBACK")
                blocker.close()
            assert refused.value.code == "storage_unavailable", refused.value
            assert client.record_trade(**fields_of(trade("locked"))).duplicate is False
    finally:
        daemon.close()


def test_a_locked_database_is_answered_storage_unavailable_while_bots_score_and_cycles_run(
    tmp_path: Path,
) -> None:
    # Each write waited the whole busy timeout: a trade that came while the store waited
    # in the scored signals' write (every second) or a cycle's was refused after two or
    # three times as long, past the client's 2 s attempt (5 of 10 saw "timeout").
    daemon = DaemonProcess(tmp_path, "[engine]\nupdate_interval_s = 1\n").start()
    stop = threading.Event()

    def score() -> None:
        with Client(daemon.rpc) as bot:
            while not stop.is_set():
                bot.score_signal("ema", "BTC", "buy", 0.8, confluence=3)
                time.sleep(0.002)

    scorer = threading.Thread(target=score)
    scorer.start()
    codes = []
    try:
        with Client(daemon.rpc, retries=0) as client:
            client.record_trade(**fields_of(trade("before")))  # a strategy for the cycles
            blocker = sqlite3.connect(daemon.database, isolation_level=None)
            blocker.execute("BEGIN EXCLUSIVE")
            try:
                for i in range(8):
                    time.sleep(0.37)  # at different points of the signals' writes
                    try:
                        client.record_trade(**fields_of(trade(f"locked-{i}")))
                        codes.append("ok")
                    except AlphadError as refused:
                        codes.append(refused.code)
            finally:
                blocker.execute("ROLLBACK")
                blocker.close()
        assert codes == ["storage_unavailable"] * 8, codes
    finally:
        stop.set()
        scorer.join(10)
        daemon.close()


def test_refused_writes_log_one_line_a_second_not_one_each(tmp_path: Path) -> None:
    # A bot retrying against a failing database logged a line per refused write: 2 000
    # lines for 2 000 retries, enough to trip journald's rate limit and hide the rest.
    daemon = DaemonProcess(tmp_path, "[store]\nbusy_timeout_ms = 0\n").start()
    try:
        with Client(daemon.rpc, retries=0) as client:
            blocker = sqlite3.connect(daemon.database, isolation_level=None)
            blocker.execute("BEGIN EXCLUSIVE")
            try:
                for burst in range(3):  # 50 refusals in well under a second, 1.2 s apart
                    time.sleep(1.2 if burst else 0.0)
                    for i in range(50):
                        with pytest.raises(AlphadError) as refused:
                            client.record_trade(**fields_of(trade(f"refused-{burst}-{i}")))
                        assert refused.value.code == "storage_unavailable"
            finally:
                blocker.execute("ROLLBACK")
                blocker.close()
            client.record_trade(**fields_of(trade("after")))
        assert daemon.stop() == 0
        lines = [line for line in daemon.log().splitlines() if "storage_write_failed" in line]
        # The first of each burst, with the count of those held back since the last line;
        # the last burst's come with the line that says the writes go through again (they
        # were only told with a next failure, which may never come).
        assert [json.loads(line)["lines_held_back"] for line in lines] == [0, 49, 49], lines
        log = daemon.log().splitlines()
        (recovered,) = [json.loads(line) for line in log if "storage_write_recovered" in line]
        assert (recovered["lines_held_back"], recovered["failed_batches"]) == (49, 150)
    finally:
        daemon.close()


def test_a_timed_out_trade_is_told_to_resend_and_a_timed_out_read_is_not(
    tmp_path: Path,
) -> None:
    config = "[daemon]\nrequest_timeout_s = 0.5\n[store]\nbusy_timeout_ms = 3000\n"
    daemon = DaemonProcess(tmp_path, config).start()
    client = RawClient(daemon.rpc, timeout_ms=10_000)
    try:
        assert isinstance(client.call(trade("before")), TradeRecorded)
        blocker = sqlite3.connect(daemon.database, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        try:
            written = client.call(trade("waits"))
            read = client.call(GetAudit())
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert isinstance(written, Error) and written.code == "timeout", written
        assert "resend it with the same trade_id" in written.message
        assert isinstance(read, Error) and read.code == "timeout", read
        assert read.message == "the daemon did not answer in time"
    finally:
        client.close()
        daemon.close()


def test_a_write_waiting_on_a_lock_shows_in_the_status_as_stalled(tmp_path: Path) -> None:
    # Another program holds the database locked: nothing is acknowledged while the write
    # waits, and the status said storage "ok" until the wait ended in a refusal.
    daemon = DaemonProcess(tmp_path, "[store]\nbusy_timeout_ms = 8000\n").start()
    client, status = RawClient(daemon.rpc, timeout_ms=10_000), RawClient(daemon.rpc)
    try:
        assert isinstance(client.call(trade("before")), TradeRecorded)
        blocker = sqlite3.connect(daemon.database, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        waiting = threading.Thread(target=lambda: client.call(trade("waits")))
        waiting.start()
        deadline = time.monotonic() + 6.0
        stalled = status.call(GetStatus()).components["storage"]
        while stalled == "ok" and time.monotonic() < deadline:
            time.sleep(0.1)
            stalled = status.call(GetStatus()).components["storage"]
        blocker.execute("ROLLBACK")
        blocker.close()
        waiting.join(timeout=10)
        assert stalled.startswith("stalled: a write has waited "), stalled
        assert status.call(GetStatus()).components["storage"] == "ok"
    finally:
        client.close()
        status.close()
        daemon.close()


def test_signals_scored_while_a_write_hangs_wait_in_the_scorer_not_in_the_stores_mailbox(
    tmp_path: Path,
) -> None:
    # A write that hangs (a frozen or stalled disk; here a lock held for seconds) let the
    # scorer's rows pile up in the store's mailbox, a message a second or every 1 024
    # signals, unbounded in practice (about 6 GB); they wait in the scorer, bounded.
    daemon = DaemonProcess(tmp_path, "[store]\nbusy_timeout_ms = 15000\n").start()
    scorer, status = RawClient(daemon.rpc), RawClient(daemon.rpc)
    signal = ScoreSignal(strategy="ema", symbol="BTC", side="buy", confidence=0.8, confluence=3)
    try:
        assert isinstance(scorer.call(trade("before")), TradeRecorded)
        blocker = sqlite3.connect(daemon.database, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        try:
            scorer.call(signal)  # its row starts a write within a second, which waits
            deadline = time.monotonic() + 10.0
            while status.call(GetStatus()).components["storage"] == "ok":
                assert time.monotonic() < deadline, "no write waited on the lock"
                time.sleep(0.05)
            for _ in range(8 * 1024):
                assert isinstance(scorer.call(signal), SignalScore)
            depth = status.call(GetStatus()).mailboxes["store"]
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert depth <= 3, depth  # eight messages of rows and more before
        deadline = time.monotonic() + 20.0
        journaled = 0
        while journaled < 8 * 1024 + 1 and time.monotonic() < deadline:
            time.sleep(0.2)
            with sqlite3.connect(daemon.database) as db:
                journaled = db.execute("SELECT count(*) FROM signals").fetchone()[0]
        assert journaled == 8 * 1024 + 1  # every row reaches the journal once it can
    finally:
        scorer.close()
        status.close()
        daemon.close()


def test_an_outcome_is_never_committed_before_its_signal_while_signals_wait(
    tmp_path: Path,
) -> None:
    # While the store had not taken the scorer's last rows (a write waiting on a lock),
    # the signal of an outcome stayed in the scorer and the outcome went ahead: committed,
    # acknowledged, and after a kill -9 the journal held it without its signal.
    daemon = DaemonProcess(tmp_path, "[store]\nbusy_timeout_ms = 15000\n").start()
    bot, status = RawClient(daemon.rpc), RawClient(daemon.rpc)
    reporter = RawClient(daemon.rpc, timeout_ms=20_000)
    signal = ScoreSignal(strategy="ema", symbol="BTC", side="buy", confidence=0.8, confluence=3)
    answers: list[object] = []
    try:
        assert isinstance(bot.call(trade("before")), TradeRecorded)
        blocker = sqlite3.connect(daemon.database, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        try:
            bot.call(signal)  # its row starts a write, which waits on the lock
            deadline = time.monotonic() + 10.0
            while status.call(GetStatus()).components["storage"] == "ok":
                assert time.monotonic() < deadline, "no write waited on the lock"
                time.sleep(0.05)
            bot.call(signal)
            time.sleep(1.5)  # handed to the store, not yet taken
            last = bot.call(signal)  # in the scorer
            assert isinstance(last, SignalScore)
            outcome = RecordSignalOutcome(signal_id=last.signal_id, success=True)
            reporting = threading.Thread(target=lambda: answers.append(reporter.call(outcome)))
            reporting.start()
            time.sleep(0.3)
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        reporting.join(30)
        assert answers and not isinstance(answers[0], Error), answers
        daemon.kill9()
        with sqlite3.connect(daemon.database) as db:
            signals = db.execute(
                "SELECT count(*) FROM signals WHERE signal_id = ?", (last.signal_id,)
            ).fetchone()[0]
            outcomes = db.execute(
                "SELECT count(*) FROM signal_outcomes WHERE signal_id = ?", (last.signal_id,)
            ).fetchone()[0]
        assert (signals, outcomes) == (1, 1)
    finally:
        bot.close()
        status.close()
        reporter.close()
        daemon.close()


def test_an_outcome_waits_on_a_short_lock_as_a_trade_does(tmp_path: Path) -> None:
    # The outcome's send time was given the scorer's count by position: it looked sent
    # long ago, tried once and was refused while a trade under the same lock waited.
    daemon = DaemonProcess(tmp_path, "[store]\nbusy_timeout_ms = 3000\n").start()
    bot = RawClient(daemon.rpc, timeout_ms=10_000)
    signal = ScoreSignal(strategy="ema", symbol="BTC", side="buy", confidence=0.8, confluence=3)
    answers: list[object] = []
    try:
        scored = bot.call(signal)
        assert isinstance(scored, SignalScore)
        assert isinstance(bot.call(trade("flushes-the-signal")), TradeRecorded)
        blocker = sqlite3.connect(daemon.database, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        outcome = RecordSignalOutcome(signal_id=scored.signal_id, success=True)
        try:
            reporting = threading.Thread(target=lambda: answers.append(bot.call(outcome)))
            reporting.start()
            time.sleep(0.5)
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        reporting.join(10)
        assert answers and not isinstance(answers[0], Error), answers
    finally:
        bot.close()
        daemon.close()


def test_more_requests_than_the_mailbox_holds_get_overloaded_promptly(tmp_path: Path) -> None:
    daemon = DaemonProcess(tmp_path, "[daemon]\nmailbox_size = 16\n").start()
    try:
        context = zmq.Context.instance()
        dealer = context.socket(zmq.DEALER)
        dealer.setsockopt(zmq.LINGER, 0)
        dealer.connect(daemon.rpc)
        for i in range(2000):
            dealer.send_multipart([b"", encode(trade(f"o{i}"))])
        codes: dict[str, int] = {}
        started = time.monotonic()
        for _ in range(2000):
            assert dealer.poll(10_000), "a request went unanswered"
            reply = decode_reply(dealer.recv_multipart()[-1])
            kind = reply.code if isinstance(reply, Error) else "recorded"
            codes[kind] = codes.get(kind, 0) + 1
        assert codes.get("overloaded", 0) > 0 and codes.get("recorded", 0) > 0
        assert set(codes) <= {"overloaded", "recorded"}
        assert time.monotonic() - started < 30
        dealer.close()
        with Client(daemon.rpc) as client:
            assert client.get_status().trades == codes["recorded"]
    finally:
        daemon.close()


def test_a_database_deleted_while_running_is_refused_not_acknowledged(tmp_path: Path) -> None:
    # A trade committed into a file its path no longer names is gone at the next start:
    # the daemon must refuse it rather than answer "recorded", and the next start must
    # not begin an empty database beside the write-ahead log of the deleted one.
    daemon = DaemonProcess(tmp_path).start()
    client = RawClient(daemon.rpc)
    try:
        assert isinstance(client.call(trade("before")), TradeRecorded)
        daemon.database.unlink()
        refused = client.call(trade("after"))
        assert isinstance(refused, Error) and refused.code == "storage_unavailable", refused
        assert "deleted or replaced" in refused.message
        status = client.call(GetStatus())
        assert status.components["storage"] != "ok", status.components
        client.close()
        daemon.stop()
        with pytest.raises(RuntimeError, match="write-ahead log"):
            daemon.start()
        assert not daemon.database.exists()
    finally:
        client.close()
        daemon.close()


def test_a_write_ahead_log_deleted_while_running_loses_no_acknowledged_trade(
    tmp_path: Path,
) -> None:
    # A cleanup of `*-wal` files while alphad runs: the commits since the last checkpoint
    # were then only in the open, unlinked log, every later one too, all acknowledged and
    # all gone after a kill -9. Now the next write is refused, what the log held is copied
    # into the database file at once, and a restart has every acknowledged trade.
    daemon = DaemonProcess(tmp_path).start()
    client = RawClient(daemon.rpc)
    log_file = daemon.database.with_name("alphad.db-wal")
    try:
        for i in range(5):
            assert isinstance(client.call(trade(f"kept-{i}")), TradeRecorded)
        log_file.unlink()
        refused = client.call(trade("after"))
        assert isinstance(refused, Error) and refused.code == "storage_unavailable", refused
        assert "write-ahead log" in refused.message and "restarted" in refused.message
        status = client.call(GetStatus())
        assert status.components["storage"] == "failing", status.components
        client.close()
        daemon.kill9()
        with sqlite3.connect(daemon.database) as db:
            on_disk = {row[0] for row in db.execute("SELECT trade_id FROM trades")}
        assert on_disk == {f"kept-{i}" for i in range(5)}
        daemon.start()
        client = RawClient(daemon.rpc)
        assert client.call(GetStatus()).trades == 5
        assert isinstance(client.call(trade("after")), TradeRecorded)
    finally:
        client.close()
        daemon.close()


def test_a_write_ahead_log_deleted_while_nothing_is_written_is_found_within_seconds(
    tmp_path: Path,
) -> None:
    # With no trade, outcome or signal coming in, nothing found the deleted log: storage
    # read "ok", and a kill -9 lost everything it held (here the whole database: the
    # file itself had never been checkpointed).
    daemon = DaemonProcess(tmp_path).start()
    client = RawClient(daemon.rpc)
    try:
        for i in range(5):
            assert isinstance(client.call(trade(f"kept-{i}")), TradeRecorded)
        daemon.database.with_name("alphad.db-wal").unlink()
        deadline = time.monotonic() + 10.0
        storage = client.call(GetStatus()).components["storage"]
        while storage == "ok" and time.monotonic() < deadline:
            time.sleep(0.2)
            storage = client.call(GetStatus()).components["storage"]
        assert storage == "failing", storage
        client.close()
        daemon.kill9()
        with sqlite3.connect(daemon.database) as db:
            on_disk = {row[0] for row in db.execute("SELECT trade_id FROM trades")}
        assert on_disk == {f"kept-{i}" for i in range(5)}
    finally:
        client.close()
        daemon.close()


def test_a_write_refused_for_a_moved_database_is_not_in_it_when_it_comes_back(
    tmp_path: Path,
) -> None:
    # Refused means nothing was recorded: when the operator puts the file back (while
    # alphad runs, or before starting it again) the refused trade and the refused
    # suspension are not there, and the writes after go on from the same sequences.
    daemon = DaemonProcess(tmp_path).start()
    rpc, admin = RawClient(daemon.rpc), RawClient(daemon.admin)
    moved = daemon.database.with_name("moved.db")
    try:
        assert isinstance(rpc.call(trade("before")), TradeRecorded)
        daemon.database.rename(moved)
        for client, request in (
            (rpc, trade("refused")),
            (admin, ForceStatus(strategy="ema", status="suspended", reason="x", operator="al")),
        ):
            refused = client.call(request)
            assert isinstance(refused, Error) and refused.code == "storage_unavailable", refused
        moved.rename(daemon.database)
        assert isinstance(rpc.call(trade("after")), TradeRecorded)
        forced = admin.call(
            ForceStatus(strategy="ema", status="degraded", reason="y", operator="al")
        )
        assert isinstance(forced, StatusChanged), forced
        rpc.close()
        admin.close()
        daemon.stop()
        daemon.start()
        rpc = RawClient(daemon.rpc)
        assert rpc.call(GetStatus()).trades == 2
        audit = rpc.call(GetAudit(strategy="ema"))
        assert [(e.new, e.reason) for e in audit.entries if e.kind == "status"] == [
            ("degraded", "y")
        ]
        assert rpc.call(trade("refused")).duplicate is False
    finally:
        rpc.close()
        admin.close()
        daemon.close()


def test_a_database_replaced_while_running_is_refused(tmp_path: Path) -> None:
    daemon = DaemonProcess(tmp_path).start()
    client = RawClient(daemon.rpc)
    try:
        assert isinstance(client.call(trade("before")), TradeRecorded)
        other = tmp_path / "other.db"
        sqlite3.connect(other).close()
        other.replace(daemon.database)
        refused = client.call(trade("after"))
        assert isinstance(refused, Error) and refused.code == "storage_unavailable", refused
    finally:
        client.close()
        daemon.close()
