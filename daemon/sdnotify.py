"""sd_notify without libsystemd: datagrams to ``$NOTIFY_SOCKET`` (see sd_notify(3)).

Every function returns False instead of raising: a daemon run outside systemd, or whose
notification socket went away, keeps serving. Nothing here logs, because ``watchdog()``
runs on the event loop's hot path. Nothing here waits either: the socket does not block,
so a service manager that does not read its queue (a stalled PID 1, a flooded socket) is
a lost notification, never a wedged event loop (a blocking send held every bot). A
``READY=1`` or ``STOPPING=1`` that met a full queue is held and sent again with the next
notification, or by ``resend_held``.
"""

from __future__ import annotations

import os
import socket

# One socket per process, opened on first use; a forked child opens its own.
_socket: socket.socket | None = None
_socket_pid = 0
# The state changes a full queue refused, to be sent before anything else.
HELD_STATES = ("READY=1", "STOPPING=1")
_held: list[str] = []


def _address() -> str | None:
    address = os.environ.get("NOTIFY_SOCKET")
    if not address or address[0] not in "/@":
        return None  # unset, or a vsock address (not used by a service manager on a host)
    # "@" stands for the leading NUL byte of an abstract-namespace address.
    return "\0" + address[1:] if address[0] == "@" else address


def notify(*lines: str) -> bool:
    """Send ``lines`` as one notification, after any held state change; False when not
    run by systemd or on failure (a full queue: at once, without waiting)."""
    global _socket, _socket_pid
    address = _address()
    if address is None or not lines:
        return False
    held = [line for line in _held if line not in lines]
    try:
        if _socket is None or _socket_pid != os.getpid():
            _socket = socket.socket(
                socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK
            )
            _socket_pid = os.getpid()
        _socket.sendto("\n".join([*held, *lines]).encode("utf-8", "replace"), address)
    except OSError as exc:
        # No listener, a full queue, a path too long: none is a reason to stop serving.
        if isinstance(exc, BlockingIOError):
            _held[:] = [*held, *(line for line in lines if line in HELD_STATES)]
        return False
    _held.clear()
    return True


def resend_held() -> bool:
    """Send a held ``READY=1`` or ``STOPPING=1`` again (a timer's: the queue may have room
    now); False when none is held or it still cannot be sent."""
    return bool(_held) and notify(*_held)


def watchdog_interval_s() -> float | None:
    """Half of ``WATCHDOG_USEC`` in seconds, when the watchdog is on and meant for us.

    ``WATCHDOG_PID``, when set, names the process the watchdog is for (as in
    sd_watchdog_enabled(3)); a value that is not our pid, or not a pid, disables it.
    """
    usec = os.environ.get("WATCHDOG_USEC", "")
    pid = os.environ.get("WATCHDOG_PID", "")
    if pid and (not pid.isdigit() or int(pid) != os.getpid()):
        return None
    if not usec.isdigit() or int(usec) == 0:
        return None
    return int(usec) / 2_000_000


def _one_line(text: str) -> str:
    # A newline would start another assignment: "x\nREADY=1" must stay a status text.
    return text.replace("\n", " ")


def ready(status: str = "") -> bool:
    """``READY=1``, with a ``STATUS=`` line when ``status`` is given."""
    return notify("READY=1", f"STATUS={_one_line(status)}") if status else notify("READY=1")


def status(text: str) -> bool:
    """``STATUS=text``: the line ``systemctl status`` shows."""
    return notify(f"STATUS={_one_line(text)}")


def stopping() -> bool:
    """``STOPPING=1``: the graceful shutdown has begun."""
    return notify("STOPPING=1", "STATUS=stopping")


def watchdog() -> bool:
    """``WATCHDOG=1``: the event loop is alive."""
    return notify("WATCHDOG=1")
