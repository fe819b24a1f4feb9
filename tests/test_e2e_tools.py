"""End to end: the example bot, `alphad watch`, and the systemd watchdog pings."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

from alphad.protocol.client import Client, Subscriber
from tests.daemon_process import DaemonProcess

ROOT = Path(__file__).parent.parent
T0 = 1_732_000_000_000  # a trade time in milliseconds, as bots send them


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


def test_dev_example_runs_the_bot_against_a_daemon_of_its_own(tmp_path: Path) -> None:
    # As a user types it from a fresh clone: no daemon running, nothing set in the env.
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALPHAD_")}
    env["ALPHAD_VENV"] = sys.prefix
    env["XDG_RUNTIME_DIR"] = str(tmp_path)  # a daemon the user runs would be here: none is
    result = subprocess.run(
        [str(ROOT / "dev"), "example", "--trades", "120"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "alphad started for this run" in result.stdout
    assert "cycle 2:" in result.stdout and "pnl without alphad" in result.stdout
    started = result.stdout.split("(pid ")[1].split(",")[0]
    assert not Path(f"/proc/{started}").exists()  # the example's daemon was stopped


def watch(daemon: DaemonProcess, topic: str) -> subprocess.Popen[str]:
    """``alphad watch TOPIC`` on this daemon, its output piped."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "alphad.daemon.cli",
            "watch",
            topic,
            "--runtime-dir",
            str(daemon.runtime_dir),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_watch_prints_alerts_as_they_come(daemon: DaemonProcess) -> None:
    watcher = watch(daemon, "status.suspended")
    try:
        assert watcher.stdout is not None
        out = _Lines(watcher.stdout)
        with Client(daemon.rpc) as rpc, Client(daemon.admin) as admin:
            rpc.score_signal("ema", "BTC", "buy", 0.6)
            # The watcher's subscription reaches the daemon some time after it starts:
            # suspend (and lift, which it does not watch) until it prints.
            for _attempt in range(60):
                admin.force_status("ema", "suspended", "manual stop", "alice")
                line = out.next(0.5)
                if line:
                    break
                admin.force_status("ema", "active", "probe", "alice")
            else:
                raise AssertionError("the watcher printed no alert")
        assert "status.suspended ema: active -> suspended (manual stop) by alice" in line
    finally:
        watcher.terminate()
        watcher.wait(10)


def test_watch_names_the_component_an_operator_switched(daemon: DaemonProcess) -> None:
    watcher = watch(daemon, "component")
    try:
        assert watcher.stdout is not None
        out = _Lines(watcher.stdout)
        with Client(daemon.admin) as admin:
            for _attempt in range(60):
                admin.set_component("scorer", False, "bad fills", "alice")
                line = out.next(0.5)
                admin.set_component("scorer", True, "fills fixed", "alice")
                if line:
                    break
            else:
                raise AssertionError("the watcher printed no alert")
        # The first alert heard is the switch off or, when the subscription landed
        # between the two, the switch back on.
        assert line.split(" ", 1)[1] in (
            "component scorer: on -> off (bad fills) by alice\n",
            "component scorer: off -> on (fills fixed) by alice\n",
        )
    finally:
        watcher.terminate()
        watcher.wait(10)


def test_watch_without_a_daemon_says_it_waits_then_prints_alerts_once_it_is_up(
    tmp_path: Path,
) -> None:
    daemon = DaemonProcess(tmp_path)
    watcher = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "alphad.daemon.cli",
            "watch",
            "--runtime-dir",
            str(daemon.runtime_dir),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert watcher.stderr is not None and watcher.stdout is not None
        out, err = _Lines(watcher.stdout), _Lines(watcher.stderr)
        waiting = err.next(30.0)
        assert "no answer at" in waiting and "waiting for alerts" in waiting
        daemon.start()
        with Client(daemon.rpc) as rpc, Client(daemon.admin) as admin:
            # The watcher's subscription reaches the daemon some time after it binds:
            # publish until the watcher shows it is subscribed.
            for attempt in range(60):
                admin.set_component("scorer", attempt % 2 == 1, "probe", "t")
                if out.next(0.5) and attempt % 2 == 1:
                    break
            else:
                raise AssertionError("the watcher printed no alert")
        with Client(daemon.rpc) as rpc:
            for i in range(25):
                rpc.record_trade(
                    f"w{i}", "ema", "BTC", "buy", -1.0, T0 + i, T0 + i + 1, regime="trending"
                )
            rpc.update_optimization("trending")
        lines: list[str] = []
        while not any("[trending]" in line for line in lines):
            line = out.next(30.0)
            assert line, f"no per-regime weight alert after {lines}"
            if " component" not in line:  # a late probe alert
                lines.append(line)
        assert all(line.split()[1] == "weights" for line in lines)
        assert any(" ema [trending]: 1.0 -> " in line for line in lines)  # names its regime
    finally:
        watcher.terminate()
        watcher.wait(10)
        daemon.stop()


class _Lines:
    """A process's output lines as they come, each awaited with a time limit, so that a
    silent process fails the test instead of hanging it (a thread reads the pipe: select
    cannot see lines already in the reader's buffer)."""

    def __init__(self, stream: IO[str]) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.put(line)

    def next(self, timeout_s: float) -> str:
        """The next line, or "" if none comes within ``timeout_s``."""
        try:
            return self.lines.get(timeout=timeout_s)
        except queue.Empty:
            return ""


def test_watchdog_is_pinged_from_the_event_loop(tmp_path: Path) -> None:
    daemon = DaemonProcess(tmp_path, "").start(extra_env={"WATCHDOG_USEC": "200000"})
    try:
        time.sleep(0.6)
        pings = daemon.drain_notifications().count("WATCHDOG=1")
        assert pings >= 3
    finally:
        daemon.close()


def test_component_switch_takes_effect_is_journaled_and_survives_restart(
    daemon: DaemonProcess,
) -> None:
    from alphad.protocol.errors import AlphadError

    alerts = Subscriber(daemon.alerts, ["component"])
    time.sleep(0.3)
    with Client(daemon.rpc) as rpc, Client(daemon.admin) as admin:
        before = rpc.score_signal("ema", "BTC", "buy", 0.7, confluence=0)
        assert before.quality < 0.7
        try:
            rpc.set_component("scorer", False, "x", "alice")
        except AlphadError as exc:
            assert exc.code == "forbidden"
        else:
            raise AssertionError("set_component must be refused on the rpc socket")
        switched = admin.set_component("scorer", False, "scores look wrong", "alice")
        assert switched.changed and switched.components["scorer"] is False
        after = rpc.score_signal("ema", "BTC", "buy", 0.7, confluence=0)
        assert after.quality == 0.7 and after.execute and after.size_multiplier == 1.0
        admin.force_status("ema", "suspended", "risk review", "alice")
        assert not rpc.score_signal("ema", "BTC", "buy", 0.9).execute
        entry = rpc.get_audit(since_seq=switched.seq - 1, limit=1).entries[0]
        assert (entry.kind, entry.old, entry.new, entry.actor) == (
            "component",
            True,
            False,
            "alice",
        )
    (topic, alert), *_ = alerts.receive(5.0)
    alerts.close()
    assert topic == "component" and alert.seq == switched.seq
    daemon.kill9()
    daemon.start()
    with Client(daemon.rpc) as rpc:
        assert rpc.get_status().enabled == {"scorer": False, "weighting": True, "lifecycle": True}
        assert rpc.score_signal("rsi", "BTC", "buy", 0.6, confluence=0).quality == 0.6
