"""A real ``alphad run`` in a subprocess, in temporary directories, for end-to-end tests."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import zmq

from alphad.protocol.codec import decode_reply, encode
from alphad.protocol.messages import Request

START_TIMEOUT_S = 30.0


class DaemonProcess:
    """Starts, stops, kills and restarts one daemon; waits for READY=1 like systemd does."""

    def __init__(self, root: Path, config_text: str = "") -> None:
        self.root = root
        self.state_dir = root / "state"
        self.runtime_dir = root / "run"
        self.config_path = root / "alphad.toml"
        if "[metrics]" not in config_text:
            # Tests run many daemons; only the ones about metrics serve them.
            config_text = "[metrics]\nenabled = false\n" + config_text
        self.config_path.write_text(config_text, encoding="utf-8")
        self.log_path = root / "alphad.log"
        self.notify_path = root / "notify.sock"
        self.process: subprocess.Popen[bytes] | None = None
        self.notifications: list[str] = []
        self._notify: socket.socket | None = None
        self._log: Any = None

    @property
    def rpc(self) -> str:
        return f"ipc://{self.runtime_dir / 'rpc.sock'}"

    @property
    def admin(self) -> str:
        return f"ipc://{self.runtime_dir / 'admin.sock'}"

    @property
    def alerts(self) -> str:
        return f"ipc://{self.runtime_dir / 'alerts.sock'}"

    @property
    def alerts_json(self) -> str:
        return f"ipc://{self.runtime_dir / 'alerts_json.sock'}"

    @property
    def database(self) -> Path:
        return self.state_dir / "alphad.db"

    def start(
        self, extra_env: dict[str, str] | None = None, *, stdout: Any = None
    ) -> DaemonProcess:
        """Start and wait for READY=1. Output goes to ``log_path``; with ``stdout`` (a
        pipe, a file), only stderr does."""
        assert self.process is None or self.process.poll() is not None
        if self._notify is None:
            self.notify_path.unlink(missing_ok=True)
            self._notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._notify.bind(str(self.notify_path))
        env = {**os.environ, "NOTIFY_SOCKET": str(self.notify_path), **(extra_env or {})}
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in wait()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "alphad.daemon.cli",
                "run",
                "--config",
                str(self.config_path),
                "--state-dir",
                str(self.state_dir),
                "--runtime-dir",
                str(self.runtime_dir),
            ],
            stdout=self._log if stdout is None else stdout,
            stderr=subprocess.STDOUT if stdout is None else self._log,
            env=env,
        )
        self.wait_ready()
        return self

    def wait_ready(self, timeout_s: float = START_TIMEOUT_S) -> None:
        assert self._notify is not None and self.process is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"alphad exited with {self.process.returncode}:\n{self.log()}")
            self._notify.settimeout(0.1)
            try:
                data = self._notify.recv(65536).decode()
            except TimeoutError:
                continue
            self.notifications.extend(data.splitlines())
            if "READY=1" in data.splitlines():
                return
        raise RuntimeError(f"alphad not ready after {timeout_s}s:\n{self.log()}")

    def drain_notifications(self) -> list[str]:
        assert self._notify is not None
        self._notify.settimeout(0)
        while True:
            try:
                self.notifications.extend(self._notify.recv(65536).decode().splitlines())
            except (BlockingIOError, TimeoutError):
                return self.notifications

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout_s: float = 30.0) -> int:
        """SIGTERM and wait; returns the exit code."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.wait(timeout_s)

    def kill9(self) -> None:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.kill()
        self.wait(10.0)

    def wait(self, timeout_s: float) -> int:
        assert self.process is not None
        code = self.process.wait(timeout_s)
        if self._log is not None:
            self._log.close()
            self._log = None
        return code

    def restart(self) -> DaemonProcess:
        self.stop()
        return self.start()

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.wait(10.0)
        if self._notify is not None:
            self._notify.close()
            self._notify = None


class RawClient:
    """A plain REQ socket: what any bot in any language would use."""

    def __init__(self, endpoint: str, timeout_ms: int = 5000) -> None:
        self.context = zmq.Context.instance()
        self.endpoint = endpoint
        self.timeout_ms = timeout_ms
        self.socket = self._open()

    def _open(self) -> zmq.Socket[Any]:
        sock = self.context.socket(zmq.REQ)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RCVTIMEO, self.timeout_ms)
        sock.setsockopt(zmq.SNDTIMEO, self.timeout_ms)
        sock.connect(self.endpoint)
        return sock

    def raw(self, payload: bytes) -> bytes:
        self.socket.send(payload)
        return bytes(self.socket.recv())

    def call(self, request: Request, as_json: bool = False) -> Any:
        return decode_reply(self.raw(encode(request, as_json)))

    def close(self) -> None:
        self.socket.close(linger=0)


def damage_newest_snapshot(database: Path, count: int = 1) -> None:
    """Flip bytes of the newest snapshot's state (of the ``count`` newest): a start falls
    back to the one before."""
    with sqlite3.connect(database) as db:
        newest = db.execute("SELECT id, state FROM snapshots ORDER BY id DESC").fetchmany(count)
        for row_id, state in newest:
            damaged = bytes(b ^ 0x5A for b in state[:64]) + state[64:]
            db.execute("UPDATE snapshots SET state = ? WHERE id = ?", (damaged, row_id))
