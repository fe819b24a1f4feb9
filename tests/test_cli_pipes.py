"""End to end: a command whose reader goes away (``alphad report | head``) ends quietly.

Each command writes into a real pipe whose read end is closed before the command gets to
write, so its first write meets EPIPE: it must exit with 128 + SIGPIPE and nothing on
stderr (no traceback, neither from the command nor from the interpreter's exit).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from alphad.protocol.client import Client
from tests.daemon_process import DaemonProcess

ROOT = Path(__file__).parent.parent
READER_GONE = 128 + signal.SIGPIPE


def start_into_closed_pipe(*args: str) -> subprocess.Popen[bytes]:
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader left before the first line
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "alphad.daemon.cli", *args],
            stdout=write_end,
            stderr=subprocess.PIPE,
            cwd=ROOT,
        )
    finally:
        os.close(write_end)


def run_into_closed_pipe(*args: str) -> tuple[int, str]:
    process = start_into_closed_pipe(*args)
    _, err = process.communicate(timeout=120)
    return process.returncode, err.decode()


@pytest.fixture(scope="module")
def small_history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("history")
    full = directory / "mixed.csv"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "alphad.daemon.cli",
            "simulate",
            "--scenario",
            "mixed",
            "--out",
            str(full),
        ],
        check=True,
        capture_output=True,
        cwd=ROOT,
    )
    small = directory / "small.csv"
    small.write_text("".join(full.read_text().splitlines(keepends=True)[:400]))
    return small


def test_schema_into_a_closed_pipe_exits_quietly() -> None:
    assert run_into_closed_pipe("schema") == (READER_GONE, "")


@pytest.mark.parametrize("form", ["text", "json"])
def test_replay_into_a_closed_pipe_exits_quietly(small_history: Path, form: str) -> None:
    code, err = run_into_closed_pipe(
        "replay", str(small_history), "--bootstrap", "50", "--format", form
    )
    assert (code, err) == (READER_GONE, "")


def test_daemon_commands_into_a_closed_pipe_exit_quietly(daemon: DaemonProcess) -> None:
    location = ["--state-dir", str(daemon.state_dir), "--runtime-dir", str(daemon.runtime_dir)]
    with Client(daemon.rpc) as client:
        client.record_trade(
            "t1", "ema", "BTC/USDT", "buy", 12.5, 1_732_000_001_000, 1_732_000_002_000
        )
    for command in (["status"], ["status", "--json"], ["report"], ["report", "--format", "csv"]):
        assert run_into_closed_pipe(*command, *location) == (READER_GONE, ""), command


def test_watch_into_a_closed_pipe_exits_quietly_at_its_first_alert(daemon: DaemonProcess) -> None:
    location = ["--state-dir", str(daemon.state_dir), "--runtime-dir", str(daemon.runtime_dir)]
    watch = start_into_closed_pipe("watch", *location)
    try:
        deadline = time.monotonic() + 60.0
        with Client(daemon.admin) as admin:
            # Until the subscription is up, alerts pass unseen: keep publishing.
            while watch.poll() is None:
                assert time.monotonic() < deadline, "watch never wrote an alert"
                admin.set_component("scorer", enabled=False, reason="drill", operator="ops")
                admin.set_component("scorer", enabled=True, reason="drill", operator="ops")
                time.sleep(0.1)
        assert watch.stderr is not None
        assert (watch.returncode, watch.stderr.read().decode()) == (READER_GONE, "")
    finally:
        watch.kill()
        watch.wait()
