"""sd_notify: what a real AF_UNIX datagram socket bound as $NOTIFY_SOCKET receives."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from alphad.daemon import sdnotify
from alphad.protocol.client import Client
from tests.daemon_process import DaemonProcess

ROOT = Path(__file__).parent.parent


@pytest.fixture
def listener(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    """A datagram socket in a temporary directory, named by NOTIFY_SOCKET, as systemd does."""
    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(5)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    yield sock
    sock.close()


@pytest.fixture
def abstract_listener(monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    """A datagram socket in the abstract namespace, named ``@...`` in NOTIFY_SOCKET."""
    name = f"alphad-test-{os.getpid()}-{id(monkeypatch)}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(5)
    monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
    yield sock
    sock.close()


def test_ready_sends_ready_and_status_in_one_datagram(listener: socket.socket) -> None:
    assert sdnotify.ready("serving 12 trades, cycle 3")
    assert listener.recv(4096) == b"READY=1\nSTATUS=serving 12 trades, cycle 3"


def test_each_helper_sends_its_assignment(listener: socket.socket) -> None:
    assert sdnotify.ready()
    assert sdnotify.status("recovering state")
    assert sdnotify.watchdog()
    assert sdnotify.stopping()
    assert [listener.recv(4096) for _ in range(4)] == [
        b"READY=1",
        b"STATUS=recovering state",
        b"WATCHDOG=1",
        b"STOPPING=1\nSTATUS=stopping",
    ]


def test_a_newline_in_a_status_cannot_forge_another_assignment(listener: socket.socket) -> None:
    assert sdnotify.status("bad\nREADY=1")
    assert listener.recv(4096) == b"STATUS=bad READY=1"


def test_notify_reaches_an_abstract_socket(abstract_listener: socket.socket) -> None:
    assert sdnotify.notify("READY=1", "STATUS=abstract")
    assert abstract_listener.recv(4096) == b"READY=1\nSTATUS=abstract"


def test_notify_is_false_outside_systemd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert sdnotify.ready("nobody listens") is False
    assert sdnotify.watchdog() is False


def test_notify_is_false_and_silent_when_the_socket_is_gone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone"))
    assert sdnotify.watchdog() is False
    monkeypatch.setenv("NOTIFY_SOCKET", "vsock:2:9999")
    assert sdnotify.watchdog() is False


def test_one_socket_serves_every_notification(listener: socket.socket) -> None:
    sdnotify.watchdog()
    first = sdnotify._socket
    sdnotify.watchdog()
    assert first is not None and sdnotify._socket is first
    assert listener.recv(4096) == listener.recv(4096) == b"WATCHDOG=1"


def test_a_child_process_notifies_through_its_own_socket(listener: socket.socket) -> None:
    # The child inherits NOTIFY_SOCKET; a fresh interpreter proves no state is needed.
    code = "from daemon import sdnotify; raise SystemExit(0 if sdnotify.status('child') else 1)"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, timeout=60)
    assert done.returncode == 0
    assert listener.recv(4096) == b"STATUS=child"


@pytest.mark.parametrize(
    ("usec", "pid", "expected"),
    [
        ("30000000", None, 15.0),
        ("30000000", "self", 15.0),
        ("1000", None, 0.0005),
        ("30000000", "1", None),
        ("30000000", "not-a-pid", None),
        ("0", None, None),
        ("", None, None),
        ("-5", None, None),
        ("30s", None, None),
        (None, None, None),
    ],
)
def test_watchdog_interval_is_half_of_watchdog_usec_for_our_pid_only(
    monkeypatch: pytest.MonkeyPatch, usec: str | None, pid: str | None, expected: float | None
) -> None:
    for name, value in (("WATCHDOG_USEC", usec), ("WATCHDOG_PID", pid)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, str(os.getpid()) if value == "self" else value)
    assert sdnotify.watchdog_interval_s() == expected


def _fill(listener: socket.socket) -> int:
    """Send watchdog pings into a queue nobody reads until one is refused; how many went."""
    sent = 0
    while sdnotify.watchdog():
        sent += 1
        assert sent < 100_000, "the queue never filled"
    return sent


def test_a_queue_nobody_reads_loses_notifications_and_never_waits(
    listener: socket.socket,
) -> None:
    # A blocking send waited for room once the reader's queue was full (a stalled PID 1):
    # the watchdog ping ran on the event loop, and every bot went unanswered. Run in a
    # thread so that a send that blocks fails the test instead of hanging it.
    sdnotify._held.clear()
    outcome: list[int] = []
    sender = threading.Thread(target=lambda: outcome.append(_fill(listener)), daemon=True)
    sender.start()
    sender.join(30)
    assert not sender.is_alive(), "a notification waited for room in the queue"
    assert outcome and outcome[0] >= 1
    # READY=1 refused by the full queue is held, and sent once there is room again.
    assert sdnotify.ready("serving") is False
    assert sdnotify.resend_held() is False  # still full
    for _ in range(outcome[0]):
        assert listener.recv(4096) == b"WATCHDOG=1"
    assert sdnotify.resend_held() is True
    assert listener.recv(4096) == b"READY=1"
    assert sdnotify.resend_held() is False  # nothing held any more


def test_a_held_ready_goes_first_in_the_next_notification(listener: socket.socket) -> None:
    sdnotify._held.clear()
    sent = _fill(listener)
    assert sdnotify.ready() is False
    for _ in range(sent):
        listener.recv(4096)
    assert sdnotify.status("cycle 2") is True
    assert listener.recv(4096) == b"READY=1\nSTATUS=cycle 2"


def test_the_daemon_keeps_answering_while_its_notification_socket_is_not_read(
    tmp_path: Path,
) -> None:
    # The service manager reads READY=1 and then nothing more; the watchdog pings every
    # 0.1 s fill the queue within about a second, and the daemon must go on serving.
    daemon = DaemonProcess(tmp_path, "[engine]\nupdate_interval_s = 0\n")
    daemon.start({"WATCHDOG_USEC": "200000"})
    try:
        with Client(daemon.rpc, timeout_s=5, retries=0) as client:
            for _ in range(6):
                time.sleep(0.5)
                reply = client.score_signal("ema", "BTC", "buy", 0.8, confluence=3)
                assert reply.quality <= 0.8
        assert daemon.stop() == 0
    finally:
        daemon.close()


def test_the_status_line_follows_the_trades_and_the_cycles(tmp_path: Path) -> None:
    # STATUS= was sent once, at READY: `systemctl status` read "serving 0 trades, cycle 0"
    # after hours of trading.
    daemon = DaemonProcess(tmp_path, "[engine]\nupdate_interval_s = 0\n").start()
    try:
        assert "STATUS=serving 0 trades, cycle 0" in daemon.notifications
        with Client(daemon.rpc) as bot:
            for i in range(3):
                bot.record_trade(
                    f"t{i}", "ema", "BTC", "buy", 1.0, 1_732_000_000_001, 1_732_000_000_002
                )
            bot.update_optimization()
        deadline = time.monotonic() + 10.0
        while "STATUS=serving 3 trades, cycle 1" not in daemon.drain_notifications():
            assert time.monotonic() < deadline, daemon.notifications
            time.sleep(0.2)
        assert daemon.stop() == 0
    finally:
        daemon.close()
