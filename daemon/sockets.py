"""The daemon's sockets on disk: which endpoints it serves, the directories of its ipc
socket files, and the request sockets bound with their file modes.

Apart from the Daemon (daemon/app.py), whose start calls these, because together they
say who may reach which socket: a socket file is guarded by the mode of its directory
and its own, so both are set in one place (the alert sockets' mode is their thread's,
daemon/alert_outlet.py).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from alphad.daemon.config import Paths
from alphad.daemon.gateway import Gateway
from alphad.daemon.security import RUNTIME_DIR_FORBIDDEN, secure_directory


def endpoints(paths: Paths) -> list[str]:
    """Every endpoint the daemon binds: requests, admin, alerts and JSON alerts."""
    return [paths.rpc, paths.admin, paths.alerts, paths.alerts_json]


def socket_dir(endpoint: str) -> Path | None:
    """The directory of an ipc socket file; None for tcp and abstract sockets."""
    transport, _, address = endpoint.partition("://")
    if transport != "ipc" or address.startswith("@"):
        return None
    return Path(address).parent


def secure_socket_dirs(paths: Paths) -> None:
    """Make every socket directory outside the runtime directory the daemon's own, as the
    runtime directory is; raises ``SecurityError`` for one that cannot be."""
    for endpoint in endpoints(paths):
        directory = socket_dir(endpoint)
        if directory is not None and directory != paths.runtime_dir:
            secure_directory(directory, "socket directory", RUNTIME_DIR_FORBIDDEN)


def bind_requests(gateway: Gateway, paths: Paths, curve: Callable[[Any], None] | None) -> None:
    """Bind the request sockets: rpc for the bots (the group may write), admin for the
    operator alone; raises ``zmq.ZMQError``."""
    gateway.bind(paths.rpc, admin=False, mode=0o660, curve=curve)
    gateway.bind(paths.admin, admin=True, mode=0o600, curve=curve)
