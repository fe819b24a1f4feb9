"""`alphad top` in a real pseudo-terminal of 80×24, against a live daemon and a dead one."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

from alphad.daemon.top import TopView
from alphad.protocol.client import Client
from tests.daemon_process import DaemonProcess

ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\x1b[=>]")


class Terminal:
    """A child process on an 80×24 pseudo-terminal; what it drew, without escapes."""

    def __init__(self, args: list[str]) -> None:
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
        env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "80", "LINES": "24"}
        self.process = subprocess.Popen(
            args, stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True
        )
        os.close(slave)
        self.screen = ""

    def read_until(self, needle: str, timeout_s: float = 15.0) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if select.select([self.master], [], [], 0.2)[0]:
                try:
                    chunk = os.read(self.master, 65536).decode(errors="replace")
                except OSError:
                    break
                self.screen += ANSI.sub("", chunk)
                if needle in self.screen:
                    return self.screen
        raise AssertionError(f"{needle!r} never drawn; screen:\n{self.screen[-2000:]}")

    def press(self, key: str) -> None:
        os.write(self.master, key.encode())

    def close(self) -> int:
        try:
            return self.process.wait(10)
        finally:
            os.close(self.master)


def top(daemon: DaemonProcess) -> list[str]:
    return [
        sys.executable,
        "-m",
        "alphad.daemon.cli",
        "top",
        "--runtime-dir",
        str(daemon.runtime_dir),
    ]


def test_top_draws_strategies_alerts_and_quits_on_q(daemon: DaemonProcess) -> None:
    with Client(daemon.rpc) as client:
        for i in range(60):  # past lifecycle.min_trades, so mean_rev gets assessed
            client.record_trade(
                f"t{i}",
                "ema_trend",
                "BTC",
                "buy",
                float(i % 3),
                1_732_000_000_001,
                1_732_000_000_002,
            )
            client.record_trade(
                f"u{i}", "mean_rev", "ETH", "sell", -1.0, 1_732_000_000_001, 1_732_000_000_002
            )
        client.update_optimization()
    terminal = Terminal(top(daemon))
    try:
        screen = terminal.read_until("mean_rev")
        assert "ema_trend" in screen and "trades 120" in screen
        assert "suspended" in screen or "degraded" in screen
        with Client(daemon.admin) as admin:
            admin.force_status("ema_trend", "retired", "end of life", "alice")
        terminal.read_until("status.retired")
        with Client(daemon.admin) as admin:
            admin.set_component("scorer", False, "bad fills", "alice")
        # The component switched, as an operator reads it: on and off, not True and False.
        terminal.read_until("scorer on->off bad fills")
        terminal.press("s")
        terminal.read_until("sort: status")
        terminal.press("q")
        assert terminal.close() == 0
    finally:
        if terminal.process.poll() is None:
            terminal.process.kill()


def test_top_says_when_the_daemon_is_down_and_keeps_trying(tmp_path: Path) -> None:
    args = [sys.executable, "-m", "alphad.daemon.cli", "top", "--runtime-dir", str(tmp_path)]
    terminal = Terminal(args)
    try:
        terminal.read_until("is not answering")
        assert terminal.process.poll() is None
        terminal.press("q")
        assert terminal.close() == 0
    finally:
        if terminal.process.poll() is None:
            terminal.process.kill()


def test_tops_request_rate_leaves_out_every_page_of_its_own_report(
    daemon: DaemonProcess,
) -> None:
    # 600 strategies: their rows take more than one page of PAGE_ROWS rows.
    with Client(daemon.rpc) as client:
        for i in range(600):
            client.record_trade(
                f"t{i}", f"s{i}", "BTC", "buy", 1.0, 1_732_000_000_001, 1_732_000_000_002
            )
        first = client.get_report()
        assert first.next is not None and client.get_report(after=first.next).next is None
        view = TopView(daemon.rpc)
        view.refresh(client)
        assert view.report is not None and len(view.report.strategies) == 600
        time.sleep(0.2)
        view.refresh(client)  # nothing else asked meanwhile
        assert view.error is None and view.rate == 0.0
        assert view.previous is not None
        before = view.previous[0]
        for _ in range(40):
            client.get_status()
        view.refresh(client)
        assert view.previous is not None and view.rate is not None
        assert round(view.rate * (view.previous[0] - before)) == 40
    # A refresh that fails, then one after the daemon is back: no rate is known, none of
    # the busy minute before is shown.
    daemon.stop()
    with Client(daemon.rpc, retries=0) as down:
        view.refresh(down)
        assert view.error is not None
    daemon.start()
    with Client(daemon.rpc, retries=0) as back:
        view.refresh(back)
        assert view.error is None and view.rate is None
        time.sleep(0.1)
        view.refresh(back)
        assert view.rate == 0.0
