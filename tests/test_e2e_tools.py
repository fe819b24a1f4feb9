"""End to end: the example bot, `alphad watch`, and the systemd watchdog pings."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from protocol.client import Client
from tests.daemon_process import DaemonProcess

ROOT = Path(__file__).parent.parent


def test_example_bot_runs_against_a_live_daemon(daemon: DaemonProcess) -> None:
    env = {**os.environ, "ALPHAD_RPC": daemon.rpc, "ALPHAD_ALERTS": daemon.alerts}
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "bot.py"), "--trades", "300"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert "pnl without alphad" in result.stdout
    assert "ALERT #" in result.stdout and "cycle 6:" in result.stdout
    with Client(daemon.rpc) as client:
        assert client.get_status().cycle == 6


def test_watch_prints_alerts_as_they_come(daemon: DaemonProcess) -> None:
    watcher = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "daemon.cli",
            "watch",
            "status.",
            "--runtime-dir",
            str(daemon.runtime_dir),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(1.5)
        with Client(daemon.admin) as admin:
            admin.force_status("ema", "suspended", "manual stop", "alice")
        assert watcher.stdout is not None
        line = watcher.stdout.readline()
        assert "status.suspended ema: active -> suspended (manual stop)" in line
    finally:
        watcher.terminate()
        watcher.wait(10)


def test_watchdog_is_pinged_from_the_event_loop(tmp_path: Path) -> None:
    daemon = DaemonProcess(tmp_path, "").start(extra_env={"WATCHDOG_USEC": "200000"})
    try:
        time.sleep(0.6)
        pings = daemon.drain_notifications().count("WATCHDOG=1")
        assert pings >= 3
    finally:
        daemon.close()
