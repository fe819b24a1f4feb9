"""What may stand where the daemon makes a socket file: checked by `check-config` and
by the bind itself (ZeroMQ replaces whatever is at an ipc path when it binds)."""

from __future__ import annotations

import os
import stat


def ipc_path_problem(path: str) -> str:
    """Why a socket cannot be made at ``path``: binding replaces whatever is there, so
    anything but a socket (a stale one of an earlier run) is refused; "" if none."""
    if path.startswith("@"):
        return ""
    try:
        info = os.lstat(path)
    except OSError:
        return ""  # nothing there (or a directory that does not exist: bind says so)
    if stat.S_ISSOCK(info.st_mode):
        return ""
    return (
        f"{path} exists and is not a socket: binding would replace it (the database, "
        "a lock or any file); give the socket a path of its own"
    )
