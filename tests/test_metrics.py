"""Prometheus: a running daemon's endpoint, scraped and parsed with prometheus-client."""

from __future__ import annotations

import json
import re
import resource
import socket
import time
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from alphad.protocol.client import Client
from tests.daemon_process import DaemonProcess

ROOT = Path(__file__).parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def scrape(port: int) -> dict[str, list[tuple[dict[str, str], float]]]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return samples


def value(
    samples: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str
) -> float:
    for got, number in samples.get(name, []):
        if all(got.get(k) == v for k, v in labels.items()):
            return number
    raise AssertionError(f"{name} {labels} not exposed; have {sorted(samples)}")


def test_metrics_endpoint_reports_requests_trades_mailboxes_and_strategies(
    tmp_path: Path,
) -> None:
    port = free_port()
    config = f"[metrics]\nport = {port}\nstrategy_refresh_s = 1\n[engine]\nupdate_interval_s = 0\n"
    daemon = DaemonProcess(tmp_path, config).start()
    try:
        with Client(daemon.rpc) as client, Client(daemon.admin) as admin:
            # One request in 8 is timed at random: 200 make an untimed type all but impossible.
            for _ in range(200):
                client.score_signal("ema", "BTC", "buy", 0.8, confluence=3)
            for i in range(40):
                client.record_trade(
                    f"t{i}",
                    "ema",
                    "BTC",
                    "buy",
                    float(i % 5 - 1),
                    1_732_000_000_001,
                    1_732_000_000_002,
                )
            # Gains and no loss: a profit factor that is infinite, not undefined.
            for i in range(3):
                client.record_trade(
                    f"w{i}", "winner", "BTC", "buy", 2.0, 1_732_000_000_001, 1_732_000_000_002
                )
            # Only pnls of 0: no gain and no loss, an undefined profit factor.
            client.record_trade(
                "z0", "flat", "BTC", "buy", 0.0, 1_732_000_000_001, 1_732_000_000_002
            )
            for _ in range(3):
                try:
                    client.score_signal("ema", "BTC", "buy", 1.7)
                except Exception:
                    pass
            client.update_optimization()
            admin.force_status("ema", "degraded", "watch", "alice")
        time.sleep(2.5)
        samples = scrape(port)
        assert value(samples, "alphad_requests_total", type="score_signal", outcome="ok") == 200
        assert value(samples, "alphad_requests_total", type="record_trade", outcome="ok") == 44
        assert value(samples, "alphad_errors_total", code="bad_request") == 3
        assert value(samples, "alphad_trades_recorded_total") == 44
        assert value(samples, "alphad_request_latency_seconds_count", type="score_signal") >= 1
        assert value(samples, "alphad_store_batch_trades_sum") == 44
        assert value(samples, "alphad_mailbox_depth", actor="store") >= 0
        assert value(samples, "alphad_cycle") == 1
        assert value(samples, "alphad_cycle_duration_seconds_count") == 1
        assert value(samples, "alphad_strategy_status", strategy="ema", status="degraded") == 1
        assert value(samples, "alphad_strategy_status", strategy="ema", status="active") == 0
        assert value(samples, "alphad_strategy_weight", strategy="ema", kind="base") == 1.0
        expected = sum(float(i % 5 - 1) for i in range(40)) / 40
        assert (
            abs(value(samples, "alphad_strategy_recent_expectancy", strategy="ema") - expected)
            < 1e-9
        )
        losses = -sum(float(i % 5 - 1) for i in range(40) if i % 5 == 0)
        gains = sum(float(i % 5 - 1) for i in range(40) if i % 5 > 1)
        profit_factor = value(samples, "alphad_strategy_recent_profit_factor", strategy="ema")
        assert abs(profit_factor - gains / losses) < 1e-12
        infinite = value(samples, "alphad_strategy_recent_profit_factor", strategy="winner")
        assert infinite == float("inf")
        assert not [
            labels
            for labels, _ in samples["alphad_strategy_recent_profit_factor"]
            if labels["strategy"] == "flat"
        ]
        assert value(samples, "alphad_component_enabled", component="scorer") == 1
        assert value(samples, "alphad_storage_healthy") == 1
        assert value(samples, "alphad_store_failed_commits_total") == 0
        assert value(samples, "alphad_signals_not_journaled_total") == 0
        assert value(samples, "alphad_signals_pruned_total") == 0
        # The example Grafana dashboard only queries series this daemon exposes.
        dashboard = json.loads((ROOT / "docs" / "grafana-dashboard.json").read_text())
        exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
        used = {name for e in exprs for name in re.findall(r"alphad_[a-z_]+", e)}
        assert used and used <= set(samples), used - set(samples)
    finally:
        daemon.close()


def test_regime_status_series_are_bounded_and_keep_the_most_severe() -> None:
    from alphad.daemon.metrics import regime_status_metrics
    from alphad.protocol.messages import HealthRow, RegimeHealthRow

    statuses = {  # strategy -> regime -> status there
        "a": {"ranging": "degraded", "volatile": "active"},
        "b": {"ranging": "suspended", "volatile": "degraded"},
        "c": {"ranging": "active", "volatile": "suspended"},
        "d": {"volatile": "degraded"},
    }
    rows = [
        HealthRow(
            strategy=name,
            status="active",
            since_ms=1,
            reason="",
            violations=0,
            regimes=[
                RegimeHealthRow(regime=r, status=s, since_ms=2, reason="x", violations=0)
                for r, s in sorted(there.items())
            ],
        )
        for name, there in statuses.items()
    ]
    counts, shown, omitted = regime_status_metrics(rows, most=3)
    assert {tuple(s.labels.values()): s.value for s in counts.samples} == {
        ("ranging", "active"): 1,
        ("ranging", "degraded"): 1,
        ("ranging", "suspended"): 1,
        ("volatile", "active"): 1,
        ("volatile", "degraded"): 2,
        ("volatile", "suspended"): 1,
    }
    # Five (strategy, regime) pairs are not active; the three series kept: both suspensions,
    # then the first degraded one by regime and name.
    assert [
        (s.labels["strategy"], s.labels["regime"], s.labels["status"]) for s in shown.samples
    ] == [
        ("b", "ranging", "suspended"),
        ("c", "volatile", "suspended"),
        ("a", "ranging", "degraded"),
    ]
    assert [s.value for s in omitted.samples] == [2]
    # per_regime off: no state in any regime, no series but the count of those left out.
    counts, shown, omitted = regime_status_metrics(
        [HealthRow(strategy="a", status="active", since_ms=1, reason="", violations=0)]
    )
    assert (counts.samples, shown.samples, [s.value for s in omitted.samples]) == ([], [], [0])


def test_every_strategy_has_its_series_beyond_the_reports_first_page(tmp_path: Path) -> None:
    # 250 strategies in three regimes fill more than one page of get_report (about 200
    # a page): the series once stopped at the first page.
    port = free_port()
    config = f"[metrics]\nport = {port}\nstrategy_refresh_s = 1\n[engine]\nupdate_interval_s = 0\n"
    daemon = DaemonProcess(tmp_path, config).start()
    try:
        with Client(daemon.rpc) as client:
            n = 0
            for i in range(250):
                for regime in ("trending", "ranging", "volatile"):
                    n += 1
                    client.record_trade(
                        f"t{n}",
                        f"s{i:03d}",
                        "BTC",
                        "buy",
                        float(i % 7 - 3),
                        1_732_000_000_000 + n,
                        1_732_000_000_001 + n,
                        regime=regime,
                    )
            first = client.get_report()
        assert first.next is not None and len(first.strategies) < 250
        deadline = time.monotonic() + 15
        while True:
            samples = scrape(port)
            shown = {labels["strategy"] for labels, _ in samples.get("alphad_strategy_status", [])}
            if len(shown) == 250 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert shown == {f"s{i:03d}" for i in range(250)}
        assert value(samples, "alphad_strategy_recent_expectancy", strategy="s249") == 249 % 7 - 3
        assert value(samples, "alphad_strategy_weight", strategy="s249", kind="base") == 1.0
    finally:
        daemon.close()


def test_idle_connections_to_the_endpoint_cannot_use_up_the_daemons_descriptors(
    tmp_path: Path,
) -> None:
    # Under a limit of 256 descriptors, 300 connections that never send a request: each
    # once held a thread and a descriptor for good, and the next bot to connect made
    # libzmq abort the daemon. Now a few are served at once, the rest closed, idle ones
    # time out, and bots and scrapes go on.
    port = free_port()
    daemon = DaemonProcess(tmp_path, f"[metrics]\nport = {port}\n").start()
    idle: list[socket.socket] = []
    try:
        assert daemon.process is not None
        resource.prlimit(daemon.process.pid, resource.RLIMIT_NOFILE, (256, 256))
        for _ in range(300):
            idle.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        time.sleep(0.5)
        for _ in range(20):  # new bots, each a new connection to rpc.sock
            with Client(daemon.rpc, retries=0) as client:
                assert client.score_signal("ema", "BTC", "buy", 0.8).quality <= 0.8
        assert daemon.process.poll() is None
        for sock in idle:
            sock.close()
        deadline = time.monotonic() + 15.0
        while True:
            try:
                assert "alphad_trades_recorded_total" in scrape(port)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
    finally:
        for sock in idle:
            sock.close()
        daemon.close()


def test_a_metrics_port_held_by_another_process_shows_in_the_status(tmp_path: Path) -> None:
    # The daemon serves bots without its metrics when their port is taken, as it should;
    # but the only trace was one log line: `alphad status` said every component was fine.
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        daemon = DaemonProcess(tmp_path, f"[metrics]\nport = {port}\n").start()
        try:
            with Client(daemon.rpc) as client:
                assert client.score_signal("ema", "BTC", "buy", 0.8).quality <= 0.8
                shown = client.get_status().components["metrics"]
            assert shown.startswith(f"not served: 127.0.0.1 port {port}: "), shown
            assert "in use" in shown, shown
        finally:
            daemon.close()
    (tmp_path / "free").mkdir()
    other = DaemonProcess(tmp_path / "free", f"[metrics]\nport = {free_port()}\n").start()
    try:
        with Client(other.rpc) as client:
            assert client.get_status().components["metrics"] == "ok"
    finally:
        other.close()


def test_an_idle_connection_closed_by_the_endpoint_prints_no_traceback(tmp_path: Path) -> None:
    # The close of a connection that sent nothing (or half a request) printed
    # socketserver's traceback on stderr, 15 lines that are not the daemon's JSON lines.
    port = free_port()
    daemon = DaemonProcess(tmp_path, f"[metrics]\nport = {port}\n").start()
    try:
        quiet = socket.create_connection(("127.0.0.1", port), timeout=30)
        half = socket.create_connection(("127.0.0.1", port), timeout=30)
        half.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")  # never ends its headers
        for sock in (quiet, half):
            assert sock.recv(1024) == b""  # closed by the endpoint, after its idle time
            sock.close()
        assert "alphad_trades_recorded_total" in scrape(port)
        assert daemon.stop() == 0
        log = daemon.log()
        assert "Traceback" not in log and "Exception occurred" not in log, log[-2000:]
    finally:
        daemon.close()
