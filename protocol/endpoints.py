"""Where the daemon's sockets are by default, and the topic of each alert kind."""

from __future__ import annotations

import os
from pathlib import Path

SOCKET_NAMES = ("rpc", "admin", "alerts")


def default_runtime_dir() -> Path:
    """``$XDG_RUNTIME_DIR/alphad``, else ``/tmp/alphad-<uid>``."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return Path(runtime) / "alphad"
    return Path(f"/tmp/alphad-{os.getuid()}")


def default_endpoint(name: str) -> str:
    """The endpoint of socket ``name`` (rpc, admin, alerts); ``ALPHAD_<NAME>`` overrides it."""
    if name not in SOCKET_NAMES:
        raise ValueError(f"unknown socket {name!r}; one of {', '.join(SOCKET_NAMES)}")
    override = os.environ.get(f"ALPHAD_{name.upper()}")
    if override:
        return override
    return f"ipc://{default_runtime_dir() / (name + '.sock')}"


def alert_topic(kind: str, new: object) -> str:
    """The PUB topic of an audit entry: ``status.<new>``, ``weights``, ``cycle``, or the kind."""
    if kind == "status":
        return f"status.{new}"
    if kind == "weight":
        return "weights"
    return kind
