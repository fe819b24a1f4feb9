"""The real ``alphad`` command line in a subprocess, as root or as another local user.

These tests run as root, as CI does: they create a second local user (the one who
attacks, or the one the daemon runs as) and mount small read-only file systems. Not
being root is a failure, not a skip: the guarantees they check would go unchecked.
"""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
OTHER_USER = "alphad-other"
REFUSE_TIMEOUT_S = 60.0

# The interpreter lives where only root may read (/root/.pyenv here): import what the
# command line needs while still root, then become the other user and run it.
_AS_USER = """
import os, sys
import alphad.daemon.app, alphad.daemon.cli, alphad.daemon.logs, uvloop
os.setgroups([])
os.setgid({gid})
os.setuid({uid})
sys.exit(alphad.daemon.cli.main(sys.argv[1:]))
"""


def require_root() -> None:
    assert os.geteuid() == 0, (
        "this test needs root (CI runs as root): it creates a local user and mounts file systems"
    )


def other_user() -> pwd.struct_passwd:
    """A second local user, created once (and left for the next run)."""
    require_root()
    try:
        return pwd.getpwnam(OTHER_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", OTHER_USER],
            check=True,
            capture_output=True,
            timeout=60,
        )
        return pwd.getpwnam(OTHER_USER)


def alphad(
    *args: str | Path, user: pwd.struct_passwd | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m daemon.cli ARGS`` to its end; a daemon that serves instead of refusing
    to start is killed and fails the test."""
    argv = [str(a) for a in args]
    if user is None:
        command = [sys.executable, "-m", "alphad.daemon.cli", *argv]
    else:
        code = _AS_USER.format(uid=user.pw_uid, gid=user.pw_gid)
        command = [sys.executable, "-c", code, *argv]
    try:
        return subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=REFUSE_TIMEOUT_S,
            cwd=ROOT,
            env={**os.environ, **(env or {})},
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"`alphad {' '.join(argv)}` kept running instead of refusing")


def one_line_refusal(result: subprocess.CompletedProcess[str]) -> str:
    """The single stderr line of a refused command, checked for its shape."""
    lines = result.stderr.splitlines()
    assert result.returncode != 0, (result.stdout, result.stderr)
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert line.startswith("alphad: "), line
    assert not line.rstrip().endswith(("- at", "-")), line
    return line
