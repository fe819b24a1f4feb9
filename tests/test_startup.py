"""Starting safely: the daemon's directories are its own, one daemon per directory, no
socket without access control, a private database, and every refusal in one line.

Runs as root, as CI does (see tests/startup_helpers.py): a second local user plays the
one who squats a directory, and the one the daemon runs as where root would write anyway.
"""

from __future__ import annotations

import os
import pwd
import signal
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from alphad.protocol.client import Client
from alphad.protocol.endpoints import default_endpoint, default_runtime_dir
from tests.daemon_process import DaemonProcess
from tests.startup_helpers import ROOT, alphad, one_line_refusal, other_user

NO_METRICS = "[metrics]\nenabled = false\n"


@pytest.fixture
def other() -> pwd.struct_passwd:
    return other_user()


def run_args(root: Path, state: Path | None = None, runtime: Path | None = None) -> list[str]:
    config = root / "alphad.toml"
    if not config.exists():
        config.write_text(NO_METRICS)
        config.chmod(0o644)
    return [
        "run",
        "--config",
        str(config),
        "--state-dir",
        str(state or root / "state"),
        "--runtime-dir",
        str(runtime or root / "run"),
    ]


def make_dir(path: Path, mode: int, owner: pwd.struct_passwd | None = None) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    if owner is not None:
        os.chown(path, owner.pw_uid, owner.pw_gid)
    path.chmod(mode)
    return path


# ------------------------------------------------------------------ 1. default locations


def test_default_runtime_dir_without_xdg_is_in_no_world_writable_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    runtime = default_runtime_dir()
    # The first directory on its way that exists is the user's own and only theirs to write.
    existing = next(p for p in (runtime, *runtime.parents) if p.exists())
    info = existing.stat()
    assert (info.st_uid, info.st_mode & 0o022) == (os.getuid(), 0), (runtime, existing)


def test_daemon_and_client_find_the_same_default_sockets_without_xdg_runtime_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "h"  # the socket paths below it stay under the 107 bytes they may have
    home.mkdir()
    for name in ("XDG_RUNTIME_DIR", "XDG_STATE_HOME", "STATE_DIRECTORY", "RUNTIME_DIRECTORY"):
        monkeypatch.delenv(name, raising=False)
    for name in ("ALPHAD_RPC", "ALPHAD_ADMIN", "ALPHAD_ALERTS", "ALPHAD_ALERTS_JSON"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(home))
    config = tmp_path / "alphad.toml"
    config.write_text(NO_METRICS)
    daemon = subprocess.Popen(
        [sys.executable, "-m", "alphad.daemon.cli", "run", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=dict(os.environ),
    )
    try:
        with Client(timeout_s=30.0, retries=0) as client:  # the bots' default endpoint
            assert client.get_status().trades == 0
        runtime = default_runtime_dir()
        assert default_endpoint("rpc") == f"ipc://{runtime / 'rpc.sock'}"
        assert stat.S_IMODE(runtime.stat().st_mode) == 0o700
    finally:
        daemon.terminate()
        assert daemon.wait(30) == 0, daemon.stderr.read() if daemon.stderr else ""


# ------------------------------------------------------------------ 1. squatted directories


@pytest.mark.parametrize(
    ("which", "mode", "by_other", "expected"),
    [
        ("runtime", 0o777, True, "is owned by uid"),
        ("runtime", 0o700, True, "is owned by uid"),
        ("runtime", 0o777, False, "writable by other users"),
        ("runtime", 0o770, False, "writable by other users"),
        ("state", 0o750, True, "is owned by uid"),
        ("state", 0o755, False, "readable by other users"),
        ("state", 0o770, False, "writable by other users"),
    ],
)
def test_directory_another_user_made_or_may_write_to_is_refused(
    shared: Path,
    other: pwd.struct_passwd,
    which: str,
    mode: int,
    by_other: bool,
    expected: str,
) -> None:
    # As /tmp: anyone may create a name first, no one may rename another's.
    sticky = make_dir(shared / "tmp", 0o1777)
    squatted = make_dir(sticky / f"alphad-{which}", mode, other if by_other else None)
    state = squatted if which == "state" else shared / "state"
    runtime = squatted if which == "runtime" else shared / "run"
    line = one_line_refusal(alphad(*run_args(shared, state, runtime)))
    assert f"{which} directory {squatted} " in line and expected in line, line
    assert not (runtime / "rpc.sock").exists() and not (shared / "state" / "alphad.db").exists()


def test_directory_in_a_parent_others_may_write_to_is_refused(shared: Path) -> None:
    open_parent = make_dir(shared / "open", 0o777)  # not sticky: anyone may rename in it
    line = one_line_refusal(alphad(*run_args(shared, runtime=open_parent / "run")))
    assert "which other users may write to" in line, line


def test_directories_the_daemon_creates_are_private_and_group_readable_ones_are_accepted(
    tmp_path: Path,
) -> None:
    fresh = DaemonProcess(make_dir(tmp_path / "fresh", 0o700)).start()
    try:
        assert stat.S_IMODE(fresh.state_dir.stat().st_mode) == 0o700
        assert stat.S_IMODE(fresh.runtime_dir.stat().st_mode) == 0o700
    finally:
        fresh.close()
    # systemd's RuntimeDirectoryMode=0750 and StateDirectoryMode up to 0750 are fine.
    root = make_dir(tmp_path / "systemd", 0o700)
    make_dir(root / "state", 0o750)
    make_dir(root / "run", 0o750)
    daemon = DaemonProcess(root).start()
    try:
        with Client(daemon.rpc, timeout_s=5.0) as client:
            assert client.get_status().trades == 0
    finally:
        daemon.close()


# ------------------------------------------------------------------ 2. one daemon per directory


def test_second_daemon_on_the_same_runtime_dir_is_refused_and_the_first_keeps_serving(
    tmp_path: Path,
) -> None:
    first = DaemonProcess(tmp_path).start()
    try:
        assert first.process is not None
        line = one_line_refusal(
            alphad(*run_args(tmp_path, state=tmp_path / "other-state", runtime=first.runtime_dir))
        )
        assert line.endswith(
            f"another alphad is running with runtime directory {first.runtime_dir} "
            f"(pid {first.process.pid})"
        ), line
        line = one_line_refusal(
            alphad(*run_args(tmp_path, state=first.state_dir, runtime=tmp_path / "other-run"))
        )
        assert "is running with state directory" in line, line
        assert not (tmp_path / "other-state" / "alphad.db").exists()
        with Client(first.rpc, timeout_s=5.0, retries=0) as client:
            client.record_trade(
                "t1", "ema", "BTC", "buy", 1.0, 1_732_000_000_001, 1_732_000_000_002
            )
            assert client.get_status().trades == 1
    finally:
        first.close()


def test_a_second_daemon_on_a_link_to_the_first_ones_database_is_refused(
    tmp_path: Path,
) -> None:
    # Another state directory whose alphad.db is a link to the running daemon's file:
    # the lock of the directory that holds the file refuses it, before it writes.
    (tmp_path / "a").mkdir()
    first = DaemonProcess(tmp_path / "a").start()
    try:
        assert first.process is not None
        state = tmp_path / "b-state"
        state.mkdir(mode=0o700)
        (state / "alphad.db").symlink_to(first.database)
        line = one_line_refusal(alphad(*run_args(tmp_path, state=state, runtime=tmp_path / "b")))
        assert line.endswith(
            f"another alphad is running with database directory {first.state_dir.resolve()} "
            f"(pid {first.process.pid})"
        ), line
        with Client(first.rpc, timeout_s=5.0, retries=0) as client:
            client.record_trade(
                "t1", "ema", "BTC", "buy", 1.0, 1_732_000_000_001, 1_732_000_000_002
            )
            assert client.get_status().trades == 1
    finally:
        first.close()


# ------------------------------------------------------------------ 3. abstract sockets


@pytest.mark.parametrize(
    ("key", "allow", "expected"),
    [
        ("admin_endpoint", False, "any local user would get admin"),
        ("admin_endpoint", True, "any local user would get admin"),
        ("rpc_endpoint", False, "allow_abstract_rpc = true"),
        ("alerts_endpoint", False, "allow_abstract_rpc = true"),
    ],
)
@pytest.mark.parametrize("command", ["run", "check-config"])
def test_abstract_socket_without_access_control_is_refused(
    tmp_path: Path, command: str, key: str, allow: bool, expected: str
) -> None:
    config = tmp_path / "alphad.toml"
    config.write_text(
        f'[daemon]\n{key} = "ipc://@alphad-test-{os.getpid()}"\n'
        f"allow_abstract_rpc = {str(allow).lower()}\n{NO_METRICS}"
    )
    args = run_args(tmp_path) if command == "run" else ["check-config", str(config)]
    line = one_line_refusal(alphad(*args))
    assert f"key `daemon.{key}`" in line and expected in line, line
    assert not (tmp_path / "state").exists()


def test_abstract_rpc_socket_is_served_when_explicitly_allowed(tmp_path: Path) -> None:
    endpoint = f"ipc://@alphad-test-rpc-{os.getpid()}"
    daemon = DaemonProcess(
        tmp_path, f'[daemon]\nrpc_endpoint = "{endpoint}"\nallow_abstract_rpc = true\n'
    ).start()
    try:
        with Client(endpoint, timeout_s=5.0) as client:
            assert client.get_status().trades == 0
    finally:
        daemon.close()


# ------------------------------------------------------------------ 4. a private database


def test_database_wal_and_shm_are_private_under_a_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        daemon = DaemonProcess(tmp_path).start()
    finally:
        os.umask(old)
    try:
        with Client(daemon.rpc, timeout_s=5.0) as client:
            client.record_trade(
                "t1", "ema", "BTC", "buy", 1.0, 1_732_000_000_001, 1_732_000_000_002
            )
        files = {
            path.name: stat.S_IMODE(path.stat().st_mode)
            for path in (
                daemon.database,
                Path(f"{daemon.database}-wal"),
                Path(f"{daemon.database}-shm"),
                daemon.state_dir / "alphad.lock",
                daemon.runtime_dir / "alphad.lock",
            )
        }
        assert files == {
            "alphad.db": 0o600,
            "alphad.db-wal": 0o600,
            "alphad.db-shm": 0o600,
            "alphad.lock": 0o600,
        }
        assert stat.S_IMODE((daemon.runtime_dir / "alphad.lock").stat().st_mode) == 0o600
        sockets = {
            name: stat.S_IMODE((daemon.runtime_dir / f"{name}.sock").stat().st_mode)
            for name in ("rpc", "admin", "alerts")
        }
        assert sockets == {"rpc": 0o660, "admin": 0o600, "alerts": 0o660}
    finally:
        daemon.close()


@pytest.mark.parametrize("suffix", ["", "-wal", "-shm"])
def test_database_file_readable_by_others_is_refused(tmp_path: Path, suffix: str) -> None:
    state = make_dir(tmp_path / "state", 0o700)
    leaked = state / f"alphad.db{suffix}"
    leaked.write_bytes(b"")
    leaked.chmod(0o644)
    line = one_line_refusal(alphad(*run_args(tmp_path)))
    assert f"database file {leaked} is open to other users (mode 0644): chmod 600" in line, line


def test_a_database_file_the_daemons_user_cannot_write_is_refused(shared: Path) -> None:
    # It once started, said "storage ok" and refused every trade.
    user = other_user()
    root = make_dir(shared / "home", 0o700, user)
    state = make_dir(root / "state", 0o700, user)
    database = state / "alphad.db"
    # A database a daemon made and left (its schema in place), then made read-only.
    made = DaemonProcess(make_dir(shared / "made", 0o700)).start()
    made.stop()
    for name in ("alphad.db", "alphad.db-wal", "alphad.db-shm"):
        if (made.database.parent / name).exists():
            (state / name).write_bytes((made.database.parent / name).read_bytes())
            os.chown(state / name, user.pw_uid, user.pw_gid)
            (state / name).chmod(0o600)
    database.chmod(0o400)
    line = one_line_refusal(alphad(*run_args(root), user=user))
    assert f"cannot open database {database}: the file cannot be written" in line, line


def test_a_database_another_process_holds_locked_is_refused_as_locked(tmp_path: Path) -> None:
    # A sqlite3 shell left inside a transaction: the start said "give the daemon's user
    # write access", which sent the operator to the file's permissions.
    made = DaemonProcess(make_dir(tmp_path / "made", 0o700)).start()
    made.stop()
    holder = sqlite3.connect(made.database, isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        line = one_line_refusal(alphad(*run_args(tmp_path, state=made.state_dir)))
    finally:
        holder.close()
    assert f"cannot open database {made.database}: the file is locked by another process" in line
    assert "write access" not in line, line


def test_a_hangup_stops_the_daemon_as_sigterm_does(tmp_path: Path) -> None:
    daemon = DaemonProcess(tmp_path).start()
    try:
        Client(daemon.rpc).get_status()
        assert daemon.process is not None
        daemon.process.send_signal(signal.SIGHUP)
        assert daemon.process.wait(timeout=30) == 0
        assert "alphad_stopped" in daemon.log()
    finally:
        daemon.close()


def test_what_survives_a_collection_is_frozen_and_garbage_is_not() -> None:
    # Run apart: freezing the test process's own objects would outlive this test.
    code = """
import gc, weakref
from alphad.daemon.app import freeze_survivors

class Node:
    pass

kept = Node(); kept.me = kept          # a live cycle: survives, and is frozen
dropped = Node(); dropped.me = dropped  # a dead cycle: collected, not frozen
gone = weakref.ref(dropped)
del dropped
before = gc.get_freeze_count()
freeze_survivors()
assert gone() is None, "garbage was frozen"
assert gc.get_freeze_count() > before
assert not any(obj is kept for obj in gc.get_objects()), "a survivor is still collected"
print("ok")
"""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert (done.returncode, done.stdout.strip()) == (0, "ok"), done.stderr
