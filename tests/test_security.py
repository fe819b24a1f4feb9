"""tcp:// only with CURVE: allowed bots are served, others get nothing, no keys no start;
the clients and the command line take keys, and say CURVE when the handshake fails."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import zmq
import zmq.auth

from alphad.daemon.top import TopView
from alphad.protocol.client import AsyncClient, Client, Subscriber
from alphad.protocol.codec import decode_reply, encode
from alphad.protocol.curve import CurveKeys, CurveRefused, HandshakeWatch
from alphad.protocol.messages import GetStatus, StatusReply
from tests.daemon_process import DaemonProcess


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def keygen(directory: Path, name: str) -> tuple[Path, Path]:
    result = subprocess.run(
        [sys.executable, "-m", "alphad.daemon.cli", "keygen", str(directory), name],
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
            "alphad.daemon.cli",
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


def test_a_server_secret_others_may_read_or_a_clients_dir_anyone_may_write_is_refused(
    tmp_path: Path,
) -> None:
    # Who reads the secret can pose as the daemon; who writes the directory lets any
    # key in. check-config and run say so in the same line, and nothing starts.
    keys = tmp_path / "keys"
    _, server_secret = keygen(keys, "server")
    config = tmp_path / "alphad.toml"
    config.write_text(
        f'[daemon]\nrpc_endpoint = "tcp://127.0.0.1:{free_port()}"\n[metrics]\nenabled = false\n'
        f'[security]\ncurve_server_secret = "{server_secret}"\ncurve_clients_dir = "{keys}"\n'
    )
    location = ["--state-dir", str(tmp_path / "s"), "--runtime-dir", str(tmp_path / "r")]
    for path, mode, words in (
        (server_secret, 0o644, "is readable by other users, who could pose as this daemon"),
        (keys, 0o777, "may be written by every user, who could let any client in"),
    ):
        before = path.stat().st_mode
        path.chmod(mode)
        for command in (["check-config", str(config)], ["run", "--config", str(config), *location]):
            result = subprocess.run(
                [sys.executable, "-m", "alphad.daemon.cli", *command],
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert result.returncode == 1, (command, result.stderr)
            assert words in result.stderr, result.stderr
            assert "Traceback" not in result.stderr
        path.chmod(before)
    checked = subprocess.run(
        [sys.executable, "-m", "alphad.daemon.cli", "check-config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stderr


# ----------------------------------------------------------------- clients of a CURVE daemon


class CurveDaemon:
    """A daemon serving rpc and alerts on tcp with CURVE; admin stays on ipc for the tests."""

    def __init__(self, root: Path) -> None:
        self.keys = root / "keys"
        allowed = root / "clients"
        _, server_secret = keygen(self.keys, "server")
        bot_public, self.bot_secret = keygen(self.keys, "bot")
        _, self.stranger_secret = keygen(root / "elsewhere", "stranger")
        allowed.mkdir()
        (allowed / "bot.key").write_bytes(bot_public.read_bytes())
        self.server_key = self.keys / "server.key"
        self.rpc = f"tcp://127.0.0.1:{free_port()}"
        self.alerts = f"tcp://127.0.0.1:{free_port()}"
        self.endpoints = f'rpc_endpoint = "{self.rpc}"\nalerts_endpoint = "{self.alerts}"\n'
        config = (
            f"[daemon]\n{self.endpoints}"
            f'[security]\ncurve_server_secret = "{server_secret}"\n'
            f'curve_clients_dir = "{allowed}"\n'
            + "".join(f"[strategies.s{i}]\n" for i in range(40))
        )
        (root / "d").mkdir()
        self.process = DaemonProcess(root / "d", config).start()

    def bot_keys(self) -> CurveKeys:
        return CurveKeys.from_files(self.server_key, self.bot_secret)

    def command(self, *args: str) -> list[str]:
        """``alphad ARGS`` pointed at this daemon's endpoints by its own config file."""
        return [
            sys.executable,
            "-m",
            "alphad.daemon.cli",
            *args,
            "--config",
            str(self.process.config_path),
        ]

    def cli(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run ``alphad ARGS`` to its end."""
        return subprocess.run(
            self.command(*args),
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, **(env or {})},
        )

    def key_flags(self, secret: Path | None = None) -> list[str]:
        return [
            "--server-key",
            str(self.server_key),
            "--client-key",
            str(secret or self.bot_secret),
        ]


@pytest.fixture(scope="module")
def curve_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CurveDaemon]:
    served = CurveDaemon(tmp_path_factory.mktemp("curve"))
    try:
        yield served
    finally:
        served.process.close()


def test_client_with_its_keys_is_answered_over_tcp(curve_daemon: CurveDaemon) -> None:
    with Client(curve_daemon.rpc, curve=curve_daemon.bot_keys()) as client:
        assert isinstance(client.get_status(), StatusReply)
        score = client.score_signal("s0", "BTC", "buy", 0.7)
        assert score.signal_id


async def test_async_client_with_its_keys_is_answered_over_tcp(curve_daemon: CurveDaemon) -> None:
    async with AsyncClient(curve_daemon.rpc, curve=curve_daemon.bot_keys()) as client:
        assert isinstance(await client.get_status(), StatusReply)


def test_subscriber_with_its_keys_receives_alerts_over_tcp(curve_daemon: CurveDaemon) -> None:
    keys = curve_daemon.bot_keys()
    with (
        Client(curve_daemon.process.admin) as admin,
        Subscriber(curve_daemon.alerts, ["status."], curve=keys) as sub,
    ):
        received: list[str] = []
        pings = 0
        # A SUB socket misses what is published before it is connected: ping until one lands.
        while not received and pings < 40:
            admin.force_status(f"s{pings}", "degraded", "ping", "alice")
            pings += 1
            received = [a.strategy or "" for _, a in sub.receive(0.5)]
    assert received[0].startswith("s")


@pytest.mark.parametrize(
    ("keys", "why"),
    [
        ("none", "the daemon serves this endpoint with CURVE and this client has no keys"),
        ("stranger", "the daemon refused this client's CURVE key"),
        ("wrong_server", "check that the server key is this daemon's server.key"),
    ],
)
def test_client_with_missing_or_wrong_keys_is_told_why_curve_failed(
    curve_daemon: CurveDaemon, keys: str, why: str
) -> None:
    curve = {
        "none": None,
        "stranger": CurveKeys.from_files(curve_daemon.server_key, curve_daemon.stranger_secret),
        "wrong_server": CurveKeys.from_files(
            curve_daemon.keys / "bot.key", curve_daemon.bot_secret
        ),
    }[keys]
    with (
        Client(curve_daemon.rpc, timeout_s=0.5, retries=5, curve=curve) as client,
        pytest.raises(CurveRefused) as refused,
    ):
        client.get_status()
    assert refused.value.code == "timeout"
    assert why in refused.value.message and curve_daemon.rpc in refused.value.message


async def test_async_client_without_keys_is_told_curve_failed(curve_daemon: CurveDaemon) -> None:
    async with AsyncClient(curve_daemon.rpc, timeout_s=0.5) as client:
        with pytest.raises(CurveRefused, match="CURVE"):
            await client.get_status()


def test_subscriber_without_keys_is_told_curve_failed(curve_daemon: CurveDaemon) -> None:
    with Subscriber(curve_daemon.alerts) as sub, pytest.raises(CurveRefused, match="CURVE"):
        sub.receive(0.5)
    # Iterating too: a refusal is no backfill to wait for (its code is `timeout`, which
    # an unanswered backfill has too; retried, the subscriber waited in silence).
    stop = threading.Event()
    threading.Timer(20, stop.set).start()
    with Subscriber(curve_daemon.alerts) as sub, pytest.raises(CurveRefused, match="CURVE"):
        for _ in sub.iter(0.5, stop):
            pass
    assert not stop.is_set()
    stop.set()


def test_status_command_with_keys_from_flags_environment_or_config(
    curve_daemon: CurveDaemon, tmp_path: Path
) -> None:
    by_flags = curve_daemon.cli("status", *curve_daemon.key_flags())
    by_env = curve_daemon.cli(
        "status",
        env={
            "ALPHAD_SERVER_KEY": str(curve_daemon.server_key),
            "ALPHAD_CLIENT_KEY": str(curve_daemon.bot_secret),
        },
    )
    config = tmp_path / "ops.toml"
    config.write_text(
        f"[daemon]\n{curve_daemon.endpoints}[security]\n"
        f'curve_server_key = "{curve_daemon.server_key}"\n'
        f'curve_client_secret = "{curve_daemon.bot_secret}"\n'
    )
    by_config = subprocess.run(
        [sys.executable, "-m", "alphad.daemon.cli", "status", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    for result in (by_flags, by_env, by_config):
        assert result.returncode == 0, result.stderr
        assert f"at {curve_daemon.rpc}" in result.stdout and "strategies" in result.stdout


def test_report_command_with_keys_is_answered(curve_daemon: CurveDaemon) -> None:
    result = curve_daemon.cli("report", "--format", "json", *curve_daemon.key_flags())
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["type"] == "report"


def test_status_command_without_or_with_unknown_keys_names_curve(
    curve_daemon: CurveDaemon,
) -> None:
    without = curve_daemon.cli("status", "--timeout", "1")
    stranger = curve_daemon.cli(
        "status", "--timeout", "1", *curve_daemon.key_flags(curve_daemon.stranger_secret)
    )
    for result in (without, stranger):
        assert result.returncode == 1
        assert "CURVE" in result.stderr and "--server-key" in result.stderr
        assert "is alphad running?" not in result.stderr
        assert len(result.stderr.splitlines()) == 1, result.stderr
    assert "refused this client's CURVE key" in stranger.stderr


def test_client_commands_refuse_half_a_key_pair_or_an_unreadable_key(
    curve_daemon: CurveDaemon, tmp_path: Path
) -> None:
    half = curve_daemon.cli("status", "--server-key", str(curve_daemon.server_key))
    public_only = curve_daemon.cli(
        "status",
        "--server-key",
        str(curve_daemon.server_key),
        "--client-key",
        str(curve_daemon.keys / "bot.key"),
    )
    missing = curve_daemon.cli(
        "report",
        "--server-key",
        str(tmp_path / "nope.key"),
        "--client-key",
        str(curve_daemon.bot_secret),
    )
    assert [r.returncode for r in (half, public_only, missing)] == [1, 1, 1]
    assert "CURVE needs both keys" in half.stderr
    assert "holds no secret key" in public_only.stderr
    assert f"cannot read CURVE key file {tmp_path / 'nope.key'}" in missing.stderr
    assert all(len(r.stderr.splitlines()) == 1 for r in (half, public_only, missing))


def test_watch_command_with_keys_prints_alerts_and_without_keys_names_curve(
    curve_daemon: CurveDaemon,
) -> None:
    without = curve_daemon.cli("watch")
    assert without.returncode == 1
    assert "CURVE" in without.stderr and "waiting for alerts" not in without.stderr
    lines, stderr = watched_status_lines(
        curve_daemon.command("watch", "status.", *curve_daemon.key_flags()),
        curve_daemon.process.admin,
        strategies=40,
    )
    assert lines and " status." in lines[0], stderr


def watched_status_lines(
    command: list[str], admin_endpoint: str, strategies: int, env: dict[str, str] | None = None
) -> tuple[list[str], str]:
    """The lines ``alphad watch`` (``command``) printed while its strategies s0, s1, …
    were suspended and lifted in turn until one came, and its stderr."""
    watcher = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    assert watcher.stdout is not None and watcher.stderr is not None
    output = watcher.stdout
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(output.readline, "")))
    reader.start()
    try:
        with Client(admin_endpoint) as admin:
            pings = 0
            while not lines and watcher.poll() is None and pings < 60:
                admin.force_status(
                    f"s{pings % strategies}",
                    "suspended" if pings % 2 else "active",
                    "ping",
                    "alice",
                )
                pings += 1
                reader.join(0.5)
    finally:
        watcher.terminate()
        watcher.wait(30)
        reader.join(30)
    return lines, watcher.stderr.read()


def test_top_view_says_curve_refused_and_shows_the_daemon_with_keys(
    curve_daemon: CurveDaemon,
) -> None:
    refused, served = TopView(curve_daemon.rpc), TopView(curve_daemon.rpc)
    with Client(curve_daemon.rpc, timeout_s=1.0, retries=0) as plain:
        refused.refresh(plain)
    with Client(curve_daemon.rpc, curve=curve_daemon.bot_keys()) as client:
        served.refresh(client)
    assert refused.error is not None and "CURVE" in refused.error and refused.status is None
    assert served.error is None and served.status is not None


# ----------------------------------------------------------------------------------- keygen


def test_keygen_keeps_an_existing_key_pair_unless_forced(tmp_path: Path) -> None:
    public, secret = keygen(tmp_path, "bot1")
    before = secret.read_bytes()
    again = subprocess.run(
        [sys.executable, "-m", "alphad.daemon.cli", "keygen", str(tmp_path), "bot1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert again.returncode == 1
    assert len(again.stderr.splitlines()) == 1 and "--force" in again.stderr
    assert secret.read_bytes() == before
    forced = subprocess.run(
        [sys.executable, "-m", "alphad.daemon.cli", "keygen", str(tmp_path), "bot1", "--force"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert forced.returncode == 0, forced.stderr
    assert secret.read_bytes() != before
    assert f"public key: {public}" in forced.stdout


def _z85_key(path: Path) -> str:
    """The public key a key file holds, as its text writes it."""
    return zmq.auth.load_certificate(str(path))[0].decode()


def _limit_file_size(limit: int) -> None:
    # In the child: a write past ``limit`` bytes fails with EFBIG instead of killing it.
    import resource
    import signal

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def test_keygen_that_cannot_write_a_key_whole_leaves_no_key_behind(tmp_path: Path) -> None:
    # A disk that fills while the keys are written (here: a file-size limit between the
    # public key's size and the secret key's) left the public key and half a secret one:
    # a retry then said "exists, pass --force" and the daemon read a broken key.
    failed = subprocess.run(
        [sys.executable, "-m", "alphad.daemon.cli", "keygen", str(tmp_path), "bot1"],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=partial(_limit_file_size, 200),
    )
    assert failed.returncode == 1
    assert len(failed.stderr.splitlines()) == 1 and "File too large" in failed.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    public, secret = keygen(tmp_path, "bot1")
    assert zmq.auth.load_certificate(secret)[1] is not None
    assert zmq.auth.load_certificate(public)[0] == zmq.auth.load_certificate(secret)[0]
    assert (secret.stat().st_mode & 0o777, sorted(p.name for p in tmp_path.iterdir())) == (
        0o600,
        ["bot1.key", "bot1.key_secret"],
    )


def test_curve_keys_refuse_what_is_not_a_key() -> None:
    with pytest.raises(ValueError, match="server_public"):
        CurveKeys(server_public=b"short", public=b"x" * 40, secret=b"y" * 40)


def test_handshake_watches_opened_back_to_back_do_not_collide() -> None:
    # Each tcp client socket is watched for its CURVE handshake. A new socket reuses the
    # last one's file descriptor while ZeroMQ still tears that one's watch down: named
    # after the descriptor, the watch was refused "Address already in use" (25 of 300
    # here, and `top` failed with it on a loaded machine).
    context = zmq.Context()
    refused = 0
    for _ in range(300):
        sock = context.socket(zmq.REQ)
        sock.connect("tcp://127.0.0.1:9")
        try:
            HandshakeWatch(sock, has_keys=False).close()
        except zmq.ZMQError:
            refused += 1
        sock.close(linger=0)
    context.destroy(linger=0)
    assert refused == 0


def test_keys_for_a_tcp_socket_are_not_applied_to_the_ipc_ones(tmp_path: Path) -> None:
    # rpc on tcp with CURVE, alerts and admin on ipc (the defaults): an operator gives the
    # CLI the keys the tcp socket needs, and they must not be put on the ipc sockets,
    # which the daemon serves without CURVE (a CURVE client there is never answered).
    keys, allowed = tmp_path / "keys", tmp_path / "clients"
    _, server_secret = keygen(keys, "server")
    bot_public, bot_secret = keygen(keys, "bot")
    allowed.mkdir()
    (allowed / "bot.key").write_bytes(bot_public.read_bytes())
    rpc = f"tcp://127.0.0.1:{free_port()}"
    (tmp_path / "d").mkdir()
    daemon = DaemonProcess(
        tmp_path / "d",
        f'[daemon]\nrpc_endpoint = "{rpc}"\n[security]\n'
        f'curve_server_secret = "{server_secret}"\ncurve_clients_dir = "{allowed}"\n'
        "[strategies.s0]\n",
    ).start()
    curve = CurveKeys.from_files(keys / "server.key", bot_secret)
    env = {
        **os.environ,
        "ALPHAD_SERVER_KEY": str(keys / "server.key"),
        "ALPHAD_CLIENT_KEY": str(bot_secret),
    }
    try:
        with Client(daemon.admin, timeout_s=2.0, retries=0, curve=curve) as admin:
            assert isinstance(admin.get_status(), StatusReply)
        # `status` asks the rpc endpoint its config names: here an ipc one (the admin
        # socket, which answers a status too), with the keys in the environment.
        on_ipc = tmp_path / "ops.toml"
        on_ipc.write_text(f'[daemon]\nrpc_endpoint = "{daemon.admin}"\n')
        status = subprocess.run(
            [sys.executable, "-m", "alphad.daemon.cli", "status", "--config", str(on_ipc)],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
        assert status.returncode == 0, status.stderr
        assert f"at {daemon.admin}" in status.stdout
        lines, stderr = watched_status_lines(
            [
                sys.executable,
                "-m",
                "alphad.daemon.cli",
                "watch",
                "status.",
                "--config",
                str(daemon.config_path),
                "--runtime-dir",
                str(daemon.runtime_dir),
            ],
            daemon.admin,
            strategies=1,
            env=env,
        )
        assert lines and " status." in lines[0], stderr
    finally:
        daemon.close()


def test_a_bad_key_file_among_the_clients_is_refused_and_keys_are_taken_again_live(
    tmp_path: Path,
) -> None:
    # ZeroMQ's loader logged a bad *.key file and let nobody in: every listed bot was
    # refused as unknown. And the directory was read once: a key removed still worked.
    keys, allowed = tmp_path / "keys", tmp_path / "clients"
    _, server_secret = keygen(keys, "server")
    bot_public, bot_secret = keygen(keys, "bot")
    other_public, other_secret = keygen(keys, "other")
    allowed.mkdir()
    (allowed / "bot.key").write_bytes(bot_public.read_bytes())
    port = free_port()
    config_text = (
        f'[daemon]\nrpc_endpoint = "tcp://127.0.0.1:{port}"\n'
        f'[security]\ncurve_server_secret = "{server_secret}"\ncurve_clients_dir = "{allowed}"\n'
    )
    config = tmp_path / "alphad.toml"
    config.write_text(config_text + "[metrics]\nenabled = false\n")
    location = ["--state-dir", str(tmp_path / "s"), "--runtime-dir", str(tmp_path / "r")]
    text = bot_public.read_text()
    at = text.index("public-key")
    # Copies that failed: empty, cut after the name (ZeroMQ's reader raised IndexError),
    # cut inside the key (read as a shorter key that no bot holds).
    for junk in ("", text[: at + len("public-key")], text[: at + len('public-key = "o&=It')]):
        (allowed / "junk.key").write_text(junk)
        for command in (
            ["check-config", str(config)],
            ["run", "--config", str(config), *location],
        ):
            result = subprocess.run(
                [sys.executable, "-m", "alphad.daemon.cli", *command],
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert result.returncode == 1, (command, junk, result.stdout, result.stderr)
            assert "junk.key is not a CURVE key file" in result.stderr, result.stderr
            assert len(result.stderr.splitlines()) == 1, result.stderr
    (allowed / "junk.key").unlink()
    (tmp_path / "d").mkdir()
    daemon = DaemonProcess(tmp_path / "d", config_text).start()
    endpoint = f"tcp://127.0.0.1:{port}"

    def answered(secret: Path, wait_ms: int) -> bool:
        sock = curve_client(endpoint, secret, keys / "server.key")
        try:
            sock.send(encode(GetStatus()))
            return bool(sock.poll(wait_ms))
        finally:
            sock.close(linger=0)

    try:
        assert answered(bot_secret, 5000) and not answered(other_secret, 1000)
        # The bot's key revoked, another's added, while alphad runs.
        (allowed / "bot.key").unlink()
        (allowed / "other.key").write_bytes(other_public.read_bytes())
        deadline = time.monotonic() + 20
        while not answered(other_secret, 1000) and time.monotonic() < deadline:
            pass
        assert answered(other_secret, 5000) and not answered(bot_secret, 1000)
        # The key replaced in place by one of the same size with its times set back
        # (`cp -p`, `touch -r`): the kernel's change time still shows it.
        held = allowed / "other.key"
        before = held.stat()
        swapped = held.read_text().replace(_z85_key(other_public), _z85_key(bot_public))
        assert len(swapped) == before.st_size
        held.write_text(swapped)
        os.utime(held, ns=(before.st_atime_ns, before.st_mtime_ns))
        deadline = time.monotonic() + 20
        while not answered(bot_secret, 1000) and time.monotonic() < deadline:
            pass
        assert answered(bot_secret, 5000) and not answered(other_secret, 1000)
        held.write_text(held.read_text().replace(_z85_key(bot_public), _z85_key(other_public)))
        deadline = time.monotonic() + 20
        while not answered(other_secret, 1000) and time.monotonic() < deadline:
            pass
        assert answered(other_secret, 5000)
        # A bad file added later keeps the keys as they were, says so, and the directory
        # is still read afterwards (an IndexError from a cut-off file ended the re-read).
        (allowed / "junk.key").write_text(text[: at + len("public-key")])
        deadline = time.monotonic() + 20
        while "curve_clients_not_reloaded" not in daemon.log() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "curve_clients_not_reloaded" in daemon.log()
        assert answered(other_secret, 5000)
        (allowed / "junk.key").unlink()
        (allowed / "other.key").unlink()
        deadline = time.monotonic() + 20
        while answered(other_secret, 1000) and time.monotonic() < deadline:
            pass
        assert not answered(other_secret, 1000)
    finally:
        daemon.close()
