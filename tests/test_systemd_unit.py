"""The systemd unit verifies and keeps its hardening (where systemd-analyze exists)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).parent.parent / "systemd" / "alphad.service"
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")


def installed_unit(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at this environment's alphad, as a package would."""
    alphad = Path(sys.executable).parent / "alphad"
    assert alphad.exists(), "alphad console script is not installed"
    text = UNIT.read_text().replace("/usr/bin/alphad", str(alphad))
    unit = tmp_path / "alphad.service"
    unit.write_text(text)
    return unit


def test_unit_declares_notify_watchdog_and_directories() -> None:
    text = UNIT.read_text()
    for line in (
        "Type=notify",
        "NotifyAccess=main",
        "Restart=on-failure",
        "StateDirectory=alphad",
        "RuntimeDirectory=alphad",
        "RuntimeDirectoryPreserve=yes",
        "User=alphad",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "CapabilityBoundingSet=\n",
        "SystemCallFilter=@system-service",
    ):
        assert line in text, line
    assert re.search(r"^WatchdogSec=\d+", text, re.M)


@needs_analyze
def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    result = subprocess.run(
        [ANALYZE or "", "verify", str(installed_unit(tmp_path))],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "alphad.service" not in result.stderr, result.stderr


@needs_analyze
def test_security_exposure_is_ok_or_better(tmp_path: Path) -> None:
    result = subprocess.run(
        [ANALYZE or "", "security", "--offline=yes", str(installed_unit(tmp_path))],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    match = re.search(r"Overall exposure level for alphad.service: ([\d.]+) (\w+)", result.stdout)
    assert match is not None, result.stdout[-500:]
    assert float(match.group(1)) <= 2.0 and match.group(2) in ("SAFE", "OK")
