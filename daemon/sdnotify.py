"""sd_notify without libsystemd: datagrams to $NOTIFY_SOCKET (see sd_notify(3))."""

from __future__ import annotations

import os
import socket

_socket: socket.socket | None = None


def _address() -> str | None:
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return None
    # An address starting with "@" is in the abstract namespace.
    return "\0" + address[1:] if address.startswith("@") else address


def notify(*lines: str) -> bool:
    """Send ``lines`` as one notification; False when not run by systemd or on failure."""
    global _socket
    address = _address()
    if address is None:
        return False
    try:
        if _socket is None:
            _socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        _socket.sendto("\n".join(lines).encode(), address)
    except OSError:
        return False
    return True


def watchdog_interval_s() -> float | None:
    """Half of WATCHDOG_USEC in seconds, if the watchdog is on and meant for this process."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid.isdigit() and int(pid) != os.getpid()):
        return None
    try:
        value = int(usec)
    except ValueError:
        return None
    return value / 2_000_000 if value > 0 else None


def ready(status: str = "") -> bool:
    """READY=1, with a STATUS= line."""
    return notify("READY=1", f"STATUS={status}") if status else notify("READY=1")


def status(text: str) -> bool:
    """STATUS=text."""
    return notify(f"STATUS={text}")


def stopping() -> bool:
    """STOPPING=1."""
    return notify("STOPPING=1", "STATUS=stopping")


def watchdog() -> bool:
    """WATCHDOG=1."""
    return notify("WATCHDOG=1")
