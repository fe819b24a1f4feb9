"""Every reason not to start is one line on stderr and a non-zero exit, and `check-config`
refuses what `run` would refuse, before anything touches the database.

Runs as root, as CI does (see tests/startup_helpers.py): the directory cases that root's
privileges would hide run the daemon as a second local user.
"""

from __future__ import annotations

import os
import pwd
import resource
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from alphad.protocol.messages import RecordTrade, TradeRecorded
from tests.daemon_process import DaemonProcess, RawClient
from tests.startup_helpers import alphad, one_line_refusal, other_user

NO_METRICS = "[metrics]\nenabled = false\n"
LONG = "d" * 100  # a directory name that makes any socket path in it too long

# Config files `check-config` and `run` must both refuse, each for one reason.
BAD_CONFIGS = {
    "binary file": (b"\x00\xff\xfe\x89PNG\r\n", "not a TOML file (not UTF-8 text)"),
    "inproc endpoint": (
        b'[daemon]\nrpc_endpoint = "inproc://alphad"\n',
        "lives inside the daemon, where no bot can reach it",
    ),
    "unknown transport": (
        b'[daemon]\nrpc_endpoint = "udp://127.0.0.1:9"\n',
        "serves ipc:// (a socket file) and tcp:// (with CURVE) only",
    ),
    "metrics port 70000": (b"[metrics]\nport = 70000\n", "key `metrics.port`"),
    "metrics port 0": (b"[metrics]\nport = 0\n", "key `metrics.port`"),
    "metrics address": (b'[metrics]\naddress = "everywhere"\n', "is not an IP address"),
    "tcp without CURVE": (
        b'[daemon]\nrpc_endpoint = "tcp://127.0.0.1:7411"\n',
        "needs [security] curve_server_secret and curve_clients_dir",
    ),
    "tcp without a port": (
        b'[daemon]\nrpc_endpoint = "tcp://127.0.0.1"\n',
        "is not tcp://HOST:PORT",
    ),
    "rpc is admin": (
        b'[daemon]\nrpc_endpoint = "ipc://{run}/a.sock"\nadmin_endpoint = "ipc://{run}//a.sock"\n',
        "is the rpc socket too",
    ),
    "rpc is the admin socket of the runtime dir": (
        b'[daemon]\nruntime_dir = "{run}"\nrpc_endpoint = "ipc://{run}/admin.sock"\n',
        "is the admin socket too",
    ),
    "relative state dir": (b'[daemon]\nstate_dir = "state"\n', "key `daemon.state_dir`"),
    "relative ipc path": (b'[daemon]\nrpc_endpoint = "ipc://rpc.sock"\n', "path is relative"),
    # Read from the daemon's working directory (systemd's /), not the config's.
    "relative token file": (
        b'[metrics]\nenabled = true\ntoken_file = "metrics.token"\n',
        "key `metrics.token_file`: 'metrics.token' is relative",
    ),
    "relative CURVE key": (
        b'[security]\ncurve_server_secret = "server.key_secret"\n',
        "key `security.curve_server_secret`: 'server.key_secret' is relative",
    ),
    "long ipc path": (
        f'[daemon]\nrpc_endpoint = "ipc:///run/{LONG}/rpc.sock"\n'.encode(),
        "over the 107 a unix socket path may have",
    ),
    "restart window inf": (
        b"[daemon]\nrestart_window_s = inf\n",
        "key `daemon.restart_window_s`",
    ),
    "timeout nan": (b"[daemon]\nrequest_timeout_s = nan\n", "key `daemon.request_timeout_s`"),
    "regime factor": (
        b"[scorer.regime_factors]\nvolatile = -1\n",
        "key `scorer.regime_factors`",
    ),
    "arrays nested 500 deep": (b"a = " + b"[" * 500 + b"]" * 500 + b"\n", "nested too deeply"),
}


@pytest.mark.parametrize("command", ["check-config", "run"])
@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_bad_config_is_one_line_and_nothing_is_touched(
    tmp_path: Path, command: str, case: str
) -> None:
    text, expected = BAD_CONFIGS[case]
    config = tmp_path / "alphad.toml"
    state, runtime = tmp_path / "state", tmp_path / "run"
    text = text.replace(b"{run}", os.fsencode(runtime))
    config.write_bytes(text if b"[metrics]" in text else text + NO_METRICS.encode())
    args = (
        ["check-config", str(config)]
        if command == "check-config"
        else [
            "run",
            "--config",
            str(config),
            "--state-dir",
            str(state),
            "--runtime-dir",
            str(runtime),
        ]
    )
    line = one_line_refusal(alphad(*args))
    assert expected in line and str(config) in line, line
    assert not state.exists() and not runtime.exists()


@pytest.mark.parametrize("command", ["check-config", "run"])
def test_every_problem_in_a_file_is_reported_one_line_each(tmp_path: Path, command: str) -> None:
    config = tmp_path / "alphad.toml"
    config.write_text(
        '[daemon]\nbogus = 1\nrequest_timeout_s = "soon"\n'
        'admin_endpoint = "ipc://@alphad-admin"\n'
        "[store]\nbatch_max = 0\n[metrics]\nport = 70000\n[strategies.ema]\nbase_weight = -1\n"
    )
    args = ["check-config", str(config)] if command == "check-config" else [
        "run", "--config", str(config), "--state-dir", str(tmp_path / "s"),
        "--runtime-dir", str(tmp_path / "r"),
    ]  # fmt: skip
    result = alphad(*args)
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    for expected in (
        "unknown key `daemon.bogus`",
        "key `daemon.request_timeout_s`",
        "key `store.batch_max`",
        "key `metrics.port`",
        "key `strategies.ema.base_weight`",
        "key `daemon.admin_endpoint`",
    ):
        assert sum(expected in line for line in lines) == 1, (expected, lines)
    assert len(lines) == 6 and all(line.startswith(f"alphad: {config}: ") for line in lines)
    assert not (tmp_path / "s").exists()


# ------------------------------------------------------------------ directories


@pytest.fixture
def read_only(shared: Path) -> Iterator[Path]:
    """An empty read-only file system, root's own, mode 0700."""
    mount = shared / "ro"
    mount.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=64k,mode=0700", "tmpfs", str(mount)],
        check=True,
        timeout=60,
    )
    yield mount
    subprocess.run(["umount", str(mount)], check=True, timeout=60)


def owned(path: Path, user: pwd.struct_passwd, mode: int) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    os.chown(path, user.pw_uid, user.pw_gid)
    path.chmod(mode)
    return path


# Each returns (state dir, runtime dir, run as the other user?, expected words).
Setup = Callable[[Path, pwd.struct_passwd], tuple[Path, Path, bool, str]]
DIRECTORY_CASES: dict[str, Setup] = {
    "state dir not writable": lambda root, user: (
        owned(root / "state", user, 0o500),
        root / "run",
        True,
        "is not writable by the daemon's user",
    ),
    "runtime dir not writable": lambda root, user: (
        owned(root / "state", user, 0o700),
        owned(root / "run", user, 0o500),
        True,
        "is not writable by the daemon's user",
    ),
    "state dir missing and not creatable": lambda root, user: (
        root / "missing" / "state",
        root / "run",
        True,
        "cannot create state directory",
    ),
    "runtime dir on a read-only file system": lambda root, user: (
        root / "state",
        root / "ro",
        False,
        "is on a read-only file system",
    ),
    "state dir missing on a read-only file system": lambda root, user: (
        root / "ro" / "state",
        root / "run",
        False,
        "is on a read-only file system",
    ),
    "state dir is a file": lambda root, user: (
        _file(root / "state"),
        root / "run",
        False,
        "is not a directory",
    ),
    "runtime dir is a file": lambda root, user: (
        root / "state",
        _file(root / "run"),
        False,
        "is not a directory",
    ),
    "socket path too long": lambda root, user: (
        root / "state",
        root / LONG,
        False,
        "over the 107 a unix socket path may have",
    ),
}


def _file(path: Path) -> Path:
    path.write_text("not a directory\n")
    return path


@pytest.mark.parametrize("case", sorted(DIRECTORY_CASES))
def test_directory_problem_is_one_line(shared: Path, read_only: Path, case: str) -> None:
    user = other_user()
    state, runtime, as_other, expected = DIRECTORY_CASES[case](shared, user)
    config = shared / "alphad.toml"
    config.write_text(NO_METRICS)
    config.chmod(0o644)
    result = alphad(
        "run", "--config", config, "--state-dir", state, "--runtime-dir", runtime,
        user=user if as_other else None,
    )  # fmt: skip
    line = one_line_refusal(result)
    assert expected in line, line
    assert "Traceback" not in result.stderr


def test_a_full_disk_at_the_first_start_is_named_in_the_one_line(tmp_path: Path) -> None:
    # A file size limit of 2 KiB fails the schema's first transaction as a full disk
    # does; the line must say so, not that a rollback SQLite had already done failed.
    config = tmp_path / "alphad.toml"
    config.write_text(NO_METRICS)

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (2048, 2048))

    result = subprocess.run(
        [
            sys.executable, "-m", "alphad.daemon.cli", "run", "--config", str(config),
            "--state-dir", str(tmp_path / "s"), "--runtime-dir", str(tmp_path / "r"),
        ],
        capture_output=True, text=True, timeout=60, preexec_fn=limit,
    )  # fmt: skip
    line = one_line_refusal(result)
    assert "cannot open database" in line and "rollback" not in line, line
    assert "disk" in line or "full" in line, line


@pytest.mark.parametrize("endpoint", ["alerts_json_endpoint", "rpc_endpoint"])
def test_a_socket_path_on_an_existing_file_is_refused_and_the_file_kept(
    tmp_path: Path, endpoint: str
) -> None:
    # Binding an ipc socket replaces whatever is at its path: a socket named after the
    # database would have turned it into a socket, every acknowledged trade gone.
    daemon = DaemonProcess(tmp_path)
    daemon.start()
    try:
        client = RawClient(daemon.rpc)
        reply = client.call(
            RecordTrade(
                trade_id="kept",
                strategy="ema",
                symbol="BTC",
                side="buy",
                pnl=1.5,
                entry_ts_ms=1_732_000_000_000,
                exit_ts_ms=1_732_000_001_000,
            )
        )
        assert isinstance(reply, TradeRecorded)
        client.close()
    finally:
        assert daemon.stop() == 0
    database = daemon.database
    daemon.config_path.write_text(
        f'{NO_METRICS}[daemon]\n{endpoint} = "ipc://{database}"\n', encoding="utf-8"
    )
    expected = f"{database} exists and is not a socket: binding would replace it"
    checked = one_line_refusal(alphad("check-config", daemon.config_path))
    assert expected in checked, checked
    ran = alphad(
        "run",
        "--config",
        daemon.config_path,
        "--state-dir",
        daemon.state_dir,
        "--runtime-dir",
        daemon.runtime_dir,
    )
    assert expected in one_line_refusal(ran)
    assert database.is_file()
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
        assert db.execute("SELECT trade_id FROM trades").fetchall() == [("kept",)]


def test_names_that_are_not_utf8_are_one_line_each(tmp_path: Path) -> None:
    # Legal on Linux, but ZeroMQ endpoints are UTF-8 text: a traceback before.
    odd = os.fsdecode(b"r\xff")
    config = tmp_path / "alphad.toml"
    config.write_text(NO_METRICS)
    for command in ("status", "run"):
        args = [command, "--config", config, "--runtime-dir", tmp_path / odd]
        if command == "run":
            args += ["--state-dir", tmp_path / "state"]
        line = one_line_refusal(alphad(*args))
        assert "the runtime directory's name is not UTF-8 text" in line, line
    assert not (tmp_path / "state").exists()
    line = one_line_refusal(alphad("watch", "--config", config, f"status{odd}"))
    assert "is not UTF-8 text" in line
    # A database file may have any name: check-db reads it.
    folder = tmp_path / odd
    folder.mkdir()
    (folder / "alphad.db").write_bytes(b"")
    line = one_line_refusal(alphad("check-db", "--database", folder / "alphad.db"))
    assert "not an alphad database" in line, line
