"""End to end: the daemon stops within its deadline whatever its stdout and its database do.

``proc.wait(timeout=...)`` below is a hang detector: the bounds are far above what a
healthy stop takes, and far below what the stuck stop they guard against would take.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import zmq

from alphad.protocol.client import Client
from alphad.protocol.codec import encode
from alphad.protocol.messages import RecordTrade
from tests.daemon_process import DaemonProcess
from tests.test_metrics import free_port, scrape, value

CONFIG = "[engine]\nupdate_interval_s = 0\n"
# The database stays locked by the test for as long as the busy timeout (150 s), and the
# graceful stop would wait for it within the grace period.
LOCKED_CONFIG = """
[engine]
update_interval_s = 0
[store]
busy_timeout_ms = 150000
[daemon]
request_timeout_s = 200
shutdown_grace_s = {grace}
"""


def record(client: Client, first: int, count: int) -> None:
    for i in range(first, first + count):
        reply = client.record_trade(
            f"t{i}", "ema", "BTC/USDT", "buy", 1.0 + i, 1_732_000_001_000, 1_732_000_002_000
        )
        assert not reply.duplicate


def trades_after_restart(daemon: DaemonProcess) -> int:
    """Start a new daemon on the same state directory (its lock must be free) and count."""
    daemon.start()
    with Client(daemon.rpc) as client:
        trades = client.get_status().trades
    assert daemon.stop() == 0
    return trades


def test_a_daemon_whose_log_reader_went_away_stops_on_sigint_and_frees_its_state(
    tmp_path: Path,
) -> None:
    # `alphad run | tee log`, then Ctrl-C: tee dies with the daemon, the next log line
    # meets a closed pipe.
    daemon = DaemonProcess(tmp_path, CONFIG).start(stdout=subprocess.PIPE)
    try:
        with Client(daemon.rpc) as client:
            record(client, 0, 25)
        assert daemon.process is not None and daemon.process.stdout is not None
        daemon.process.stdout.close()
        daemon.process.send_signal(signal.SIGINT)
        assert daemon.wait(30.0) == 0
        assert "Traceback" not in daemon.log()
        assert trades_after_restart(daemon) == 25
    finally:
        daemon.close()


def test_a_daemon_whose_log_reader_went_away_stops_on_sigterm_and_frees_its_state(
    tmp_path: Path,
) -> None:
    daemon = DaemonProcess(tmp_path, CONFIG).start(stdout=subprocess.PIPE)
    try:
        with Client(daemon.rpc) as client:
            record(client, 0, 10)
        assert daemon.process is not None and daemon.process.stdout is not None
        daemon.process.stdout.close()
        assert daemon.stop(timeout_s=30.0) == 0
        assert trades_after_restart(daemon) == 10
    finally:
        daemon.close()


def test_a_log_reader_gone_at_start_costs_lines_not_the_daemon(tmp_path: Path) -> None:
    # `alphad run | head -2`: head leaves after two lines.
    port = free_port()
    head = subprocess.Popen(["head", "-n", "2"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    assert head.stdin is not None
    daemon = DaemonProcess(tmp_path, f"[metrics]\nport = {port}\n{CONFIG}")
    try:
        daemon.start(stdout=head.stdin)
        head.stdin.close()
        assert head.wait(30.0) == 0
        with Client(daemon.rpc) as client, Client(daemon.admin) as admin:
            record(client, 0, 5)
            # Each cycle logs a line, into the pipe nobody reads any more (the admin
            # socket: cycles on rpc are paced).
            assert admin.update_optimization().cycle == 1
            assert admin.update_optimization().cycle == 2
            assert client.get_status().components["engine"] == "running"
        deadline = time.monotonic() + 30.0
        while value(scrape(port), "alphad_log_lines_dropped_total") < 1:
            assert time.monotonic() < deadline, "no dropped log line counted"
            time.sleep(0.2)
        assert daemon.stop(timeout_s=30.0) == 0
        assert "Traceback" not in daemon.log()
        assert trades_after_restart(daemon) == 5
    finally:
        daemon.close()
        head.kill()
        head.wait()


class LockedDatabase:
    """Another process's write transaction on the daemon's database: its commits wait."""

    def __init__(self, path: Path) -> None:
        self.connection = sqlite3.connect(path, isolation_level=None, timeout=30.0)
        self.connection.execute("BEGIN IMMEDIATE")

    def release(self) -> None:
        self.connection.execute("ROLLBACK")
        self.connection.close()


def stall_the_store(daemon: DaemonProcess) -> list[zmq.Socket[Any]]:
    """Trades the store cannot commit, until one waits in its mailbox behind the stuck one."""
    context = zmq.Context.instance()
    sockets: list[zmq.Socket[Any]] = []
    with Client(daemon.rpc) as client:
        for i in range(50):
            sock = context.socket(zmq.REQ)
            sock.setsockopt(zmq.LINGER, 0)
            sock.connect(daemon.rpc)
            trade = RecordTrade(
                trade_id=f"stalled{i}", strategy="ema", symbol="BTC/USDT", side="buy",
                pnl=1.0, entry_ts_ms=1_732_000_000_001, exit_ts_ms=1_732_000_000_002,
            )  # fmt: skip
            sock.send(encode(trade))
            sockets.append(sock)
            if client.get_status().mailboxes.get("store", 0) >= 1:
                return sockets
    raise AssertionError("the store never stalled")


def wait_stopping(daemon: DaemonProcess) -> None:
    deadline = time.monotonic() + 30.0
    while "STOPPING=1" not in daemon.drain_notifications():
        assert time.monotonic() < deadline, "the stop never began"
        time.sleep(0.05)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_second_stop_signal_ends_a_stuck_stop_at_once(tmp_path: Path, signum: int) -> None:
    daemon = DaemonProcess(tmp_path, LOCKED_CONFIG.format(grace=120)).start()
    try:
        with Client(daemon.rpc) as client:
            record(client, 0, 7)
        lock = LockedDatabase(daemon.database)
        stalled = stall_the_store(daemon)
        assert daemon.process is not None
        daemon.process.send_signal(signum)
        wait_stopping(daemon)  # waiting for the stalled trades, up to 120 s
        daemon.process.send_signal(signum)
        assert daemon.wait(20.0) == 128 + signum
        assert "alphad_forced_exit" in daemon.log()
        assert f"second {signal.Signals(signum).name}" in daemon.log()
        for sock in stalled:
            sock.close(linger=0)
        lock.release()
        # Every acknowledged trade is there; the stalled ones were never acknowledged.
        assert trades_after_restart(daemon) == 7
    finally:
        daemon.close()


def test_a_stop_that_overruns_its_deadline_is_ended_with_its_reason(tmp_path: Path) -> None:
    daemon = DaemonProcess(tmp_path, LOCKED_CONFIG.format(grace=1)).start()
    try:
        with Client(daemon.rpc) as client:
            record(client, 0, 4)
        lock = LockedDatabase(daemon.database)
        stalled = stall_the_store(daemon)
        assert daemon.process is not None
        daemon.process.send_signal(signal.SIGTERM)
        assert daemon.wait(30.0) == 1
        assert "alphad_forced_exit" in daemon.log()
        assert "overran its deadline" in daemon.log()
        for sock in stalled:
            sock.close(linger=0)
        lock.release()
        assert trades_after_restart(daemon) == 4
    finally:
        daemon.close()
