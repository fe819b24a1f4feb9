"""End to end: a flood of connections does not kill the daemon at the soft limit on open
files. libzmq aborts the process when an accept finds no file descriptor left, so the
daemon raises its soft limit to the hard one at start (docs/operations.md)."""

from __future__ import annotations

import resource
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq

from alphad.protocol.codec import decode_reply, encode
from alphad.protocol.messages import GetStatus, StatusReply
from tests.daemon_process import DaemonProcess, RawClient

LOW_SOFT_LIMIT = 128
CONNECTIONS = 400


@pytest.fixture
def low_soft_limit() -> Iterator[None]:
    """Start the daemon with a soft limit of 128 open files (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 4 * CONNECTIONS:
        raise RuntimeError(f"the hard limit on open files ({hard}) is too low for this test")
    resource.setrlimit(resource.RLIMIT_NOFILE, (LOW_SOFT_LIMIT, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_more_connections_than_the_soft_limit_are_all_answered(
    tmp_path: Path, low_soft_limit: None
) -> None:
    daemon = DaemonProcess(tmp_path, "").start()
    # The test's own sockets need the room the daemon is meant to have.
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    context = zmq.Context()
    context.setsockopt(zmq.MAX_SOCKETS, 4 * CONNECTIONS)
    sockets = []
    try:
        limits = Path(f"/proc/{daemon.process.pid}/limits").read_text()  # type: ignore[union-attr]
        soft = next(line for line in limits.splitlines() if line.startswith("Max open files"))
        assert int(soft.split()[3]) > LOW_SOFT_LIMIT, soft
        for _ in range(CONNECTIONS):
            sock = context.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            sock.connect(daemon.rpc)
            sock.send_multipart([b"", encode(GetStatus())])
            sockets.append(sock)
        answered = 0
        deadline = time.monotonic() + 30
        for sock in sockets:
            if sock.poll(max(0, int((deadline - time.monotonic()) * 1000))):
                assert isinstance(decode_reply(sock.recv_multipart()[-1]), StatusReply)
                answered += 1
        assert daemon.process is not None and daemon.process.poll() is None, daemon.log()[-2000:]
        assert answered == CONNECTIONS
        assert isinstance(RawClient(daemon.rpc).call(GetStatus()), StatusReply)
    finally:
        for sock in sockets:
            sock.close()
        context.term()
        daemon.close()


def test_a_refused_setrlimit_is_served_at_the_soft_limit_it_has(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The unit's SystemCallFilter (~@resources) refuses setrlimit with EPERM; a seccomp
    # filter cannot be installed in the test's process, so the refusal is the call's.
    from structlog.testing import capture_logs

    from alphad.daemon.security import raise_open_files_limit

    def refused(*_: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(resource, "getrlimit", lambda _: (1024, 65536))
    monkeypatch.setattr(resource, "setrlimit", refused)
    with capture_logs() as logs:
        assert raise_open_files_limit() == (1024, 1024)
    [event] = [e for e in logs if e["event"] == "open_files_limit_not_raised"]
    assert (event["soft"], event["hard"]) == (1024, 65536)
    assert event["log_level"] == "warning"
