"""The bot-side clients against the real daemon: typed calls, errors, restarts, alert gaps."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time

import pytest

from protocol.client import AsyncClient, Client, Subscriber
from protocol.errors import AlphadError
from protocol.messages import Ok, SignalScore, StatusReply
from tests.daemon_process import DaemonProcess


def test_typed_round_trips(daemon: DaemonProcess) -> None:
    with Client(daemon.rpc) as client:
        score = client.score_signal("ema", "BTC/USDT", "buy", 0.8, confluence=3)
        assert isinstance(score, SignalScore) and score.quality <= 0.8
        recorded = client.record_trade(
            "t-1", "ema", "BTC/USDT", "buy", 5.0, 1, 2, signal_id=score.signal_id
        )
        assert (recorded.duplicate, recorded.seq) == (False, 1)
        assert isinstance(client.record_signal_outcome(score.signal_id or "", True), Ok)
        assert client.get_status().trades == 1
        assert client.get_performance().rows[0]["total_pnl"] == 5.0
        assert client.get_health().rows[0].strategy == "ema"
        state = client.update_optimization()
        assert client.get_history().states[0].cycle == state.cycle


def test_json_encoding_gives_the_same_replies(daemon: DaemonProcess) -> None:
    with Client(daemon.rpc, encoding="json") as client:
        assert client.get_status().version


def test_error_reply_raises_alphad_error_with_code(daemon: DaemonProcess) -> None:
    with Client(daemon.rpc) as client, pytest.raises(AlphadError) as info:
        client.score_signal("ema", "BTC", "buy", 1.5)
    assert info.value.code == "bad_request"
    with Client(daemon.rpc) as client, pytest.raises(AlphadError) as forbidden:
        client.force_status("ema", "suspended", "x", "alice")
    assert forbidden.value.code == "forbidden"


def test_timeout_when_nobody_answers(tmp_path: object) -> None:
    with Client("ipc:///tmp/alphad-nobody-here.sock", timeout_s=0.1, retries=2) as client:
        started = time.monotonic()
        with pytest.raises(AlphadError) as info:
            client.get_status()
    assert info.value.code == "timeout"
    assert time.monotonic() - started < 2.0


def test_bot_rides_out_a_daemon_restart(daemon: DaemonProcess) -> None:
    errors: list[Exception] = []
    answered = 0
    stop = threading.Event()

    def bot() -> None:
        nonlocal answered
        with Client(daemon.rpc, timeout_s=1.0, retries=20) as client:
            i = 0
            while not stop.is_set():
                try:
                    client.score_signal("ema", "BTC", "buy", 0.7)
                    client.record_trade(f"r-{i}", "ema", "BTC", "buy", 1.0, 1, 2)
                    answered += 1
                    i += 1
                except Exception as exc:
                    errors.append(exc)
                    return

    thread = threading.Thread(target=bot)
    thread.start()
    time.sleep(0.5)
    daemon.restart()
    time.sleep(0.5)
    before = answered
    time.sleep(0.5)
    stop.set()
    thread.join(30)
    assert errors == []
    assert answered > before > 0


def test_subscriber_backfills_a_gap_from_the_audit_log(daemon: DaemonProcess) -> None:
    with Client(daemon.rpc) as rpc, Client(daemon.admin) as admin:
        first = Subscriber(daemon.alerts, ["status."], client=rpc)
        time.sleep(0.3)
        admin.force_status("a", "degraded", "watch it", "alice")
        (topic, alert), *_ = first.receive(5.0)
        assert topic == "status.degraded" and alert.strategy == "a"
        resume_at = first.last_seq
        first.close()
        # While no subscriber listens: three more changes, one of them on another topic.
        admin.force_status("a", "suspended", "stop it", "alice")
        admin.reset_weights("noise", "alice")
        admin.force_status("b", "retired", "old", "alice")
        second = Subscriber(daemon.alerts, ["status."], client=rpc, last_seq=resume_at)
        time.sleep(0.3)
        admin.force_status("a", "active", "back", "alice")
        received = second.receive(5.0)
        second.close()
    assert [(t, a.strategy, a.new) for t, a in received] == [
        ("status.suspended", "a", "suspended"),
        ("status.retired", "b", "retired"),
        ("status.active", "a", "active"),
    ]
    assert second.gaps == 1
    seqs = [a.seq for _, a in received]
    assert seqs == sorted(seqs)


def test_async_client(daemon: DaemonProcess) -> None:
    async def main() -> StatusReply:
        client = AsyncClient(daemon.rpc)
        try:
            score = await client.score_signal(
                strategy="ema", symbol="BTC", side="sell", confidence=0.6
            )
            assert score.quality <= 0.6
            return await client.get_status()
        finally:
            client.close()

    assert asyncio.run(main()).version


def test_status_command_reports_a_running_daemon_and_a_missing_one(
    daemon: DaemonProcess,
) -> None:
    ok = subprocess.run(
        [sys.executable, "-m", "daemon.cli", "status", "--runtime-dir", str(daemon.runtime_dir)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ok.returncode == 0, ok.stderr
    assert "trades 0" in ok.stdout
    daemon.stop()
    down = subprocess.run(
        [
            sys.executable,
            "-m",
            "daemon.cli",
            "status",
            "--timeout",
            "0.2",
            "--runtime-dir",
            str(daemon.runtime_dir),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert down.returncode == 1
    assert "is alphad running?" in down.stderr and "Traceback" not in down.stderr


def test_report_command_prints_tables_json_and_csv(daemon: DaemonProcess) -> None:
    with Client(daemon.rpc) as client:
        for i in range(25):
            client.record_trade(
                f"r{i}", "ema", "BTC", "buy", float(i % 4 - 1), 1, 2, regime="trend"
            )
        client.update_optimization()
    base = [sys.executable, "-m", "daemon.cli", "report", "--runtime-dir", str(daemon.runtime_dir)]
    text = subprocess.run(base, capture_output=True, text=True, timeout=60)
    assert text.returncode == 0, text.stderr
    assert "STRATEGIES RECENT" in text.stdout and "ema" in text.stdout
    as_json = subprocess.run(
        [*base, "--format", "json"], capture_output=True, text=True, timeout=60
    )
    document = json.loads(as_json.stdout)
    assert document["type"] == "report"
    assert document["strategies"][0]["all"]["trades"] == 25
    as_csv = subprocess.run([*base, "--format", "csv"], capture_output=True, text=True, timeout=60)
    assert "# allocation\nstrategy,base,adaptive,effective,normalized\nema," in as_csv.stdout
