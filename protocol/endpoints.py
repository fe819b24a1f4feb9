"""Where the daemon's sockets are by default, and the topic of each alert kind.

The daemon and its clients compute the same defaults here, so a bot finds a daemon that
was started without any directory set. Every default is a directory only its user can
write to: never a predictable name in a world-writable place such as /tmp, where another
user could create it first and serve forged replies on the daemon's socket paths.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

SOCKET_NAMES = ("rpc", "admin", "alerts", "alerts_json")
TRANSPORTS = ("ipc", "tcp", "inproc")  # the ZeroMQ transports a daemon's sockets are on


class EndpointError(ValueError):
    """An endpoint no daemon serves (``checked_endpoint``)."""


def checked_endpoint(endpoint: str) -> str:
    """``endpoint``, or ``EndpointError`` saying how to write one: ZeroMQ's own error for a
    bare path (``Invalid argument``) or ``unix://`` (``Protocol not supported``) named
    neither the endpoint nor the fix."""
    scheme, sep, rest = endpoint.partition("://")
    if not sep or scheme not in TRANSPORTS or not rest:
        raise EndpointError(
            f"endpoint {endpoint!r} is not one a daemon serves: write ipc:///path/to/rpc.sock"
            " (a socket file) or tcp://host:port"
        )
    return endpoint


def default_state_dir() -> Path:
    """``$XDG_STATE_HOME/alphad``, else ``~/.local/state/alphad``: the daemon's database."""
    base = os.environ.get("XDG_STATE_HOME")
    # The XDG spec says to ignore a relative value.
    home = Path(base) if base and os.path.isabs(base) else Path.home() / ".local" / "state"
    return home / "alphad"


def default_runtime_dir() -> Path:
    """``$XDG_RUNTIME_DIR/alphad``, else ``/run/user/<uid>/alphad`` when that directory is
    the user's own, else ``run`` in the default state directory."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return Path(runtime) / "alphad"
    user_run = Path(f"/run/user/{os.getuid()}")
    if _is_private_dir(user_run):
        return user_run / "alphad"
    return default_state_dir() / "run"


SYSTEM_RUNTIME_DIR = Path("/run/alphad")
"""The shipped systemd unit's runtime directory (``RuntimeDirectory=alphad``), made by
the service manager: no other user can have made it first."""


SYSTEM_STATE_DIR = Path("/var/lib/alphad")
"""The shipped systemd unit's state directory (``StateDirectory=alphad``)."""


def client_state_dir() -> Path:
    """Where an operator's command looks for the database: ``default_state_dir`` when a
    database is there, else the shipped unit's ``/var/lib/alphad`` when one is there
    (``check-db --config /etc/alphad/alphad.toml`` checked a per-user file, or none),
    else ``default_state_dir``."""
    return _own_else_system(default_state_dir(), SYSTEM_STATE_DIR, "alphad.db")


def client_runtime_dir() -> Path:
    """Where a client looks for the daemon's sockets: ``default_runtime_dir`` when a
    daemon's rpc socket is there, else the shipped unit's ``/run/alphad`` when one is
    there (a bot of another user in the ``alphad`` group found no daemon at all: the
    daemon's ``$RUNTIME_DIRECTORY`` is not in the bot's environment), else
    ``default_runtime_dir``."""
    return _own_else_system(default_runtime_dir(), SYSTEM_RUNTIME_DIR, "rpc.sock")


def _own_else_system(own: Path, system: Path, name: str) -> Path:
    """``own``, unless ``name`` is missing there and is in the shipped unit's ``system``."""
    if not (own / name).exists() and (system / name).exists():
        return system
    return own


def _is_private_dir(path: Path) -> bool:
    try:
        info = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() and not info.st_mode & 0o077


def default_endpoint(name: str) -> str:
    """The endpoint of socket ``name`` (rpc, admin, alerts, alerts_json) in
    ``client_runtime_dir``; ``ALPHAD_<NAME>`` overrides it."""
    if name not in SOCKET_NAMES:
        raise ValueError(f"unknown socket {name!r}; one of {', '.join(SOCKET_NAMES)}")
    override = os.environ.get(f"ALPHAD_{name.upper()}")
    if override:
        return override
    return f"ipc://{client_runtime_dir() / (name + '.sock')}"


def alert_topic(kind: str, new: object) -> str:
    """The PUB topic of an audit entry: ``status.<new>``, ``weights``, or the kind
    (``cycle``, ``component``, ``forget``)."""
    if kind == "status":
        return f"status.{new}"
    if kind == "weight":
        return "weights"
    return kind
