"""End to end: with [lifecycle] per_regime, each strategy's state in each regime is on
the Prometheus endpoint (bounded series) and in ``alphad health``; a bad name or a regime
no strategy has a state in is one line on stderr and exit 1, into a closed pipe too."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from alphad.protocol.client import Client
from alphad.protocol.messages import ForceStatus, StatusChanged
from tests.daemon_process import DaemonProcess
from tests.test_cli_pipes import READER_GONE, run_into_closed_pipe
from tests.test_metrics import free_port, scrape

ROOT = Path(__file__).parent.parent
T0 = 1_732_000_000_000
# (strategy, regime, status forced there) after a trade of each strategy in each regime.
FORCED = (
    ("breakout", "trending_high_vol", "suspended"),
    ("carry", "trending_high_vol", "degraded"),
    ("carry", "ranging_low_vol", "suspended"),
)


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DaemonProcess, int]]:
    port = free_port()
    config = (
        "[engine]\nupdate_interval_s = 0\n[limits]\noptimization_interval_s = 0\n"
        f"[lifecycle]\nper_regime = true\n[metrics]\nport = {port}\nstrategy_refresh_s = 1\n"
    )
    process = DaemonProcess(tmp_path_factory.mktemp("daemon"), config).start()
    try:
        with Client(process.rpc) as client, Client(process.admin) as admin:
            n = 0
            for strategy in ("breakout", "carry", "mean_revert"):
                for regime in ("trending_high_vol", "ranging_low_vol"):
                    n += 1
                    client.record_trade(
                        f"t{n}", strategy, "BTC/USDT", "buy", 1.0, T0 + n, T0 + n + 1, regime=regime
                    )
            client.update_optimization()  # every strategy enters each regime's lifecycle
            for strategy, regime, status in FORCED:
                admin.call(
                    ForceStatus(
                        strategy=strategy,
                        status=status,  # type: ignore[arg-type]
                        reason=f"drill {status}",
                        operator="alice",
                        regime=regime,
                    ),
                    StatusChanged,
                )
        yield process, port
    finally:
        process.close()


def location(process: DaemonProcess) -> list[str]:
    return ["--state-dir", str(process.state_dir), "--runtime-dir", str(process.runtime_dir)]


def health(process: DaemonProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "alphad.daemon.cli", "health", *args, *location(process)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


def test_prometheus_counts_each_regime_s_statuses_and_names_who_is_not_active(
    daemon: tuple[DaemonProcess, int],
) -> None:
    _, port = daemon
    deadline = time.monotonic() + 30.0
    while True:
        samples = scrape(port)
        if samples.get("alphad_strategy_regime_status") or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    counts = {
        (labels["regime"], labels["status"]): value
        for labels, value in samples["alphad_regime_strategies"]
    }
    assert counts == {
        ("ranging_low_vol", "active"): 2,
        ("ranging_low_vol", "degraded"): 0,
        ("ranging_low_vol", "suspended"): 1,
        ("trending_high_vol", "active"): 1,
        ("trending_high_vol", "degraded"): 1,
        ("trending_high_vol", "suspended"): 1,
    }
    off = [
        ((labels["strategy"], labels["regime"], labels["status"]), value)
        for labels, value in samples["alphad_strategy_regime_status"]
    ]
    # Only the strategies not active in a regime, the suspended ones first.
    assert off == [
        (("carry", "ranging_low_vol", "suspended"), 1),
        (("breakout", "trending_high_vol", "suspended"), 1),
        (("carry", "trending_high_vol", "degraded"), 1),
    ]
    assert samples["alphad_strategy_regime_status_omitted"] == [({}, 0)]
    # The strategies' own statuses are untouched by their states in a regime.
    own = {
        labels["strategy"]: labels["status"]
        for labels, value in samples["alphad_strategy_status"]
        if value == 1
    }
    assert own == {"breakout": "active", "carry": "active", "mean_revert": "active"}


def test_health_shows_each_strategy_s_state_in_each_regime(
    daemon: tuple[DaemonProcess, int],
) -> None:
    process, _ = daemon
    result = health(process)
    assert (result.returncode, result.stderr) == (0, "")
    lines = result.stdout.splitlines()
    assert lines[0] == "HEALTH"
    regime_part = lines[lines.index("REGIME HEALTH") + 3 :]
    rows = [line.split()[:3] for line in regime_part]
    assert rows == [
        ["breakout", "ranging_low_vol", "active"],
        ["breakout", "trending_high_vol", "suspended"],
        ["carry", "ranging_low_vol", "suspended"],
        ["carry", "trending_high_vol", "degraded"],
        ["mean_revert", "ranging_low_vol", "active"],
        ["mean_revert", "trending_high_vol", "active"],
    ]
    assert regime_part[1].endswith("drill suspended")

    one = health(process, "carry", "--regime", "trending_high_vol")
    assert one.returncode == 0
    assert one.stdout.splitlines()[0] == "REGIME HEALTH"
    assert [line.split()[:3] for line in one.stdout.splitlines()[3:]] == [
        ["carry", "trending_high_vol", "degraded"]
    ]
    as_json = json.loads(health(process, "--regime", "ranging_low_vol", "--json").stdout)
    assert [
        (row["strategy"], row["status"], [(r["regime"], r["status"]) for r in row["regimes"]])
        for row in as_json["rows"]
    ] == [
        ("breakout", "active", [("ranging_low_vol", "active")]),
        ("carry", "active", [("ranging_low_vol", "suspended")]),
        ("mean_revert", "active", [("ranging_low_vol", "active")]),
    ]


BAD_INPUT = [
    (
        ["bad name"],
        "'bad name' is not a strategy name: a strategy is 1 – 64 of"
        " `A-Z a-z 0-9 _ . : / @ + -`, not starting with a symbol",
    ),
    (["no_such"], "not_found: strategy 'no_such' is neither configured nor seen"),
    (
        ["--regime=-trending"],
        "'-trending' is not a regime name: a regime is 1 – 64 of"
        " `A-Z a-z 0-9 _ . : / @ + -`, not starting with a symbol",
    ),
    (
        ["--regime", "trending_hi_vol"],
        "no strategy has a state in regime 'trending_hi_vol' (the regimes with states:"
        " ranging_low_vol, trending_high_vol)",
    ),
]


@pytest.mark.parametrize(("args", "message"), BAD_INPUT)
def test_bad_input_is_one_line_and_exit_1_into_a_terminal_or_a_closed_pipe(
    daemon: tuple[DaemonProcess, int], args: list[str], message: str
) -> None:
    process, _ = daemon
    result = health(process, *args)
    assert (result.returncode, result.stdout, result.stderr) == (1, "", f"alphad: {message}\n")
    assert run_into_closed_pipe("health", *args, *location(process)) == (
        1,
        f"alphad: {message}\n",
    )
    # With no standard output at all (``>&-``) the line is the same.
    closed = subprocess.run(
        [sys.executable, "-m", "alphad.daemon.cli", "health", *args, *location(process)],
        stdout=None,
        stderr=subprocess.PIPE,
        text=True,
        timeout=60,
        cwd=ROOT,
        preexec_fn=lambda: os.close(1),
    )
    assert (closed.returncode, closed.stderr) == (1, f"alphad: {message}\n")


def test_health_into_a_closed_pipe_exits_quietly(daemon: tuple[DaemonProcess, int]) -> None:
    process, _ = daemon
    for args in ([], ["--json"], ["--regime", "ranging_low_vol"]):
        assert run_into_closed_pipe("health", *args, *location(process)) == (READER_GONE, "")


def test_a_strategy_with_no_state_in_the_regime_asked_is_named(tmp_path: Path) -> None:
    # per_regime off: no strategy has a state in any regime, and the line says why.
    process = DaemonProcess(tmp_path, "[engine]\nupdate_interval_s = 0\n").start()
    try:
        with Client(process.rpc) as client:
            client.record_trade("t1", "ema", "BTC", "buy", 1.0, T0, T0 + 1, regime="ranging")
        result = health(process, "ema", "--regime", "ranging")
        assert (result.returncode, result.stdout) == (1, "")
        assert result.stderr == (
            "alphad: 'ema' has no state in regime 'ranging' (it has none anywhere:"
            " [lifecycle] per_regime is off, or nothing has been judged in a regime yet)\n"
        )
    finally:
        process.close()
