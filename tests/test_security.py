"""tcp:// only with CURVE: allowed bots are served, others get nothing, no keys no start."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import zmq
import zmq.auth

from protocol.codec import decode_reply, encode
from protocol.messages import GetStatus, StatusReply
from tests.daemon_process import DaemonProcess


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def keygen(directory: Path, name: str) -> tuple[Path, Path]:
    result = subprocess.run(
        [sys.executable, "-m", "daemon.cli", "keygen", str(directory), name],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return directory / f"{name}.key", directory / f"{name}.key_secret"


def curve_client(endpoint: str, mine: Path, server_public: Path) -> zmq.Socket[Any]:
    public, secret = zmq.auth.load_certificate(mine)
    server, _ = zmq.auth.load_certificate(server_public)
    sock = zmq.Context.instance().socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.curve_publickey = public
    sock.curve_secretkey = secret
    sock.curve_serverkey = server
    sock.connect(endpoint)
    return sock


def test_tcp_endpoint_serves_allowed_keys_only(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    allowed = tmp_path / "clients"
    _, server_secret = keygen(keys, "server")
    bot_public, bot_secret = keygen(keys, "bot")
    _, stranger_secret = keygen(tmp_path / "elsewhere", "stranger")
    allowed.mkdir()
    (allowed / "bot.key").write_bytes(bot_public.read_bytes())
    assert oct(bot_secret.stat().st_mode & 0o777) == "0o600"
    port = free_port()
    config = (
        f'[daemon]\nrpc_endpoint = "tcp://127.0.0.1:{port}"\n'
        f'[security]\ncurve_server_secret = "{server_secret}"\ncurve_clients_dir = "{allowed}"\n'
    )
    (tmp_path / "d").mkdir()
    daemon = DaemonProcess(tmp_path / "d", config).start()
    try:
        endpoint = f"tcp://127.0.0.1:{port}"
        bot = curve_client(endpoint, bot_secret, keys / "server.key")
        bot.send(encode(GetStatus()))
        assert bot.poll(5000), "an allowed bot must be answered"
        assert isinstance(decode_reply(bot.recv()), StatusReply)
        stranger = curve_client(endpoint, stranger_secret, keys / "server.key")
        stranger.send(encode(GetStatus()))
        assert stranger.poll(1500) == 0, "an unknown key must get nothing"
        plain = zmq.Context.instance().socket(zmq.REQ)
        plain.setsockopt(zmq.LINGER, 0)
        plain.connect(endpoint)
        plain.send(encode(GetStatus()))
        assert plain.poll(1500) == 0, "a client without CURVE must get nothing"
        for sock in (bot, stranger, plain):
            sock.close(linger=0)
    finally:
        daemon.close()


def test_tcp_endpoint_without_keys_refuses_to_start(tmp_path: Path) -> None:
    config = tmp_path / "alphad.toml"
    config.write_text(
        f'[daemon]\nrpc_endpoint = "tcp://127.0.0.1:{free_port()}"\n[metrics]\nenabled = false\n'
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "daemon.cli",
            "run",
            "--config",
            str(config),
            "--state-dir",
            str(tmp_path / "s"),
            "--runtime-dir",
            str(tmp_path / "r"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "needs [security] curve_server_secret" in result.stderr
    assert "Traceback" not in result.stderr
