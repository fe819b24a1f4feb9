"""sd_notify: what a real AF_UNIX datagram socket bound as $NOTIFY_SOCKET receives."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from alphad.daemon import sdnotify

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
