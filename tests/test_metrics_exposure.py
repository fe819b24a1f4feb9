"""The metrics endpoint shows every strategy's figures: loopback by default, a loud warning
elsewhere, and with ``[metrics] token_file`` only scrapes that carry the token are answered."""

from __future__ import annotations

import json
import secrets
import socket
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.daemon_process import DaemonProcess
from tests.startup_helpers import alphad, one_line_refusal


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def scrape(port: int, token: str | None) -> tuple[int, str]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_metrics_on_every_interface_are_warned_in_check_config_and_at_start(
    tmp_path: Path,
) -> None:
    config = tmp_path / "alphad.toml"
    config.write_text(f'[metrics]\naddress = "0.0.0.0"\nport = {free_port()}\n')
    checked = alphad("check-config", config)
    assert checked.returncode == 0 and "ok" in checked.stdout
    assert checked.stderr.splitlines() == [
        "alphad: warning: [metrics] address 0.0.0.0 is not loopback: anyone who reaches it "
        "sees every strategy's status, weights and recent results; set [metrics] token_file "
        "or keep 127.0.0.1"
    ]
    daemon = DaemonProcess(tmp_path, config.read_text()).start()
    try:
        warnings = [
            json.loads(line)
            for line in daemon.log().splitlines()
            if line.startswith("{") and '"config_warning"' in line
        ]
        assert [w["level"] for w in warnings] == ["warning"]
        assert "0.0.0.0 is not loopback" in warnings[0]["warning"]
    finally:
        daemon.close()
    # Loopback mapped into IPv6 is loopback; another IPv4 address mapped is not.
    config.write_text(f'[metrics]\naddress = "::ffff:127.0.0.1"\nport = {free_port()}\n')
    mapped = alphad("check-config", config)
    assert mapped.returncode == 0 and mapped.stderr == ""
    config.write_text(f'[metrics]\naddress = "::ffff:10.1.2.3"\nport = {free_port()}\n')
    assert "::ffff:10.1.2.3 is not loopback" in alphad("check-config", config).stderr


def test_metrics_with_a_token_file_answer_only_scrapes_that_carry_the_token(
    tmp_path: Path,
) -> None:
    token = secrets.token_urlsafe(32)
    token_file = tmp_path / "metrics.token"
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
    port = free_port()
    daemon = DaemonProcess(
        tmp_path, f'[metrics]\nport = {port}\ntoken_file = "{token_file}"\n'
    ).start()
    try:
        assert scrape(port, None)[0] == 401
        assert scrape(port, "not-" + token)[0] == 401
        status, text = scrape(port, token)
        assert status == 200 and "alphad_trades_recorded_total" in text
    finally:
        daemon.close()


@pytest.mark.parametrize(
    ("mode", "content", "expected"),
    [
        (0o644, "a-long-enough-secret-token", "is readable by other users: chmod 600"),
        (0o600, "short", "must hold one token of at least 16 characters"),
    ],
)
@pytest.mark.parametrize("command", ["check-config", "run"])
def test_unusable_token_file_is_refused_in_one_line(
    tmp_path: Path, command: str, mode: int, content: str, expected: str
) -> None:
    token_file = tmp_path / "metrics.token"
    token_file.write_text(content)
    token_file.chmod(mode)
    config = tmp_path / "alphad.toml"
    config.write_text(f'[metrics]\nport = {free_port()}\ntoken_file = "{token_file}"\n')
    args = ["check-config", config] if command == "check-config" else [
        "run", "--config", config, "--state-dir", tmp_path / "s", "--runtime-dir", tmp_path / "r",
    ]  # fmt: skip
    line = one_line_refusal(alphad(*args))
    assert "key `metrics.token_file`" in line and expected in line, line
    assert not (tmp_path / "s").exists()
