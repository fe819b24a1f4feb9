"""End to end: ``get_report`` comes in bounded pages, and the pages joined are the report
itself, checked against the reads that show each part alone and the trades sent."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
import zmq

from alphad.protocol.client import Client
from alphad.protocol.codec import decode_reply, encode
from alphad.protocol.messages import (
    PAGE_BYTES,
    PAGE_ROWS,
    GetHealth,
    GetPerformance,
    GetReport,
    GetTop,
    GetWeights,
    Health,
    HealthRow,
    Performance,
    RecordTrade,
    Report,
    StatusReply,
    Top,
    TradeRecorded,
    UpdateOptimization,
    Weights,
)
from alphad.protocol.pages import merge_report
from tests.daemon_process import DaemonProcess, RawClient

STRATEGIES = [f"strategy_{i:04d}" for i in range(600)]
REGIMES = [f"regime_{r:02d}" for r in range(12)]
# min_trades 1: every strategy gets a weight of its own in every regime's table.
CONFIG = "[limits]\nmax_groups = 100000\n[weighting]\nmin_trades = 1\n"


def pnl_of(s: int, r: int) -> float:
    return float((s * 7 + r * 3) % 11 - 5) / 4


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    """600 strategies, each with a trade in each of 12 regimes, and a cycle per regime."""
    daemon = DaemonProcess(tmp_path_factory.mktemp("pages"), CONFIG).start()
    dealer = zmq.Context.instance().socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 0)
    dealer.setsockopt(zmq.RCVTIMEO, 30_000)
    dealer.connect(daemon.rpc)
    sent = answered = 0
    try:
        for s, strategy in enumerate(STRATEGIES):
            for r, regime in enumerate(REGIMES):
                trade = RecordTrade(
                    trade_id=f"{strategy}-{regime}", strategy=strategy, symbol="BTC",
                    side="buy", pnl=pnl_of(s, r), entry_ts_ms=1_732_000_000_000 + r,
                    exit_ts_ms=1_732_000_000_100 + r, regime=regime,
                )  # fmt: skip
                dealer.send_multipart([b"", encode(trade)])
                sent += 1
                while sent - answered > 48:  # within the 64 a peer may have waiting
                    assert isinstance(decode_reply(dealer.recv_multipart()[1]), TradeRecorded)
                    answered += 1
        while answered < sent:
            dealer.recv_multipart()
            answered += 1
        admin = RawClient(daemon.admin, timeout_ms=30_000)
        for regime in [*REGIMES, None]:
            assert admin.call(UpdateOptimization(regime=regime)).cycle > 0
        admin.close()
        yield daemon
    finally:
        dealer.close()
        daemon.close()


def pages_of(client: RawClient, as_json: bool) -> list[Report]:
    pages: list[Report] = []
    after: list[str] | None = None
    while True:
        raw = client.raw(encode(GetReport(after=after), as_json))
        assert len(raw) <= PAGE_BYTES + 64 * 1024
        page = decode_reply(raw)
        assert isinstance(page, Report)
        rows = len(page.strategies) + len(page.health) + len(page.regime_effectiveness)
        assert 0 < rows <= PAGE_ROWS
        pages.append(page)
        if page.next is None:
            return pages
        assert page.next > (after or [])
        after = page.next


def performance_rows(client: RawClient, group_by: list[Any], window: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    after: list[str] | None = None
    while True:
        page = client.call(GetPerformance(group_by=group_by, window=window, after=after))
        assert isinstance(page, Performance)
        rows += page.rows
        if page.next is None:
            return rows
        after = page.next


def test_every_report_page_is_bounded_and_the_pages_are_the_whole_report(
    loaded: DaemonProcess,
) -> None:
    rpc = RawClient(loaded.rpc, timeout_ms=30_000)
    try:
        for as_json in (False, True):
            pages = pages_of(rpc, as_json)
            assert len(pages) >= 3
            report = merge_report(pages)
            # Figures by strategy, as get_performance gives them, and the pnls sent.
            assert [entry["strategy"] for entry in report.strategies] == STRATEGIES
            for window in ("all", "recent"):
                rows = performance_rows(rpc, ["strategy"], window)
                assert [entry[window] for entry in report.strategies] == [
                    {k: v for k, v in row.items() if k != "strategy"} for row in rows
                ]
            assert [entry["recent_pnls"] for entry in report.strategies] == [
                [pnl_of(s, r) for r in range(len(REGIMES))] for s in range(len(STRATEGIES))
            ]
            # The weights, globally and in each regime, as get_weights gives them.
            weights = rpc.call(GetWeights())
            assert isinstance(weights, Weights)
            for name in ("base", "adaptive", "effective", "normalized"):
                assert report.allocation[name] == getattr(weights, name)
            assert sorted(report.allocation["regimes"]) == REGIMES
            for regime in REGIMES:
                own = rpc.call(GetWeights(regime=regime))
                assert isinstance(own, Weights)
                assert report.allocation["regimes"][regime] == {
                    name: getattr(own, name) for name in ("adaptive", "effective", "normalized")
                }
            assert report.allocation["frozen"] is weights.frozen
            health = rpc.call(GetHealth())
            assert isinstance(health, Health) and report.health == health.rows
            # As before: the first PAGE_ROWS strategy x regime rows; the rest are
            # get_performance's pages.
            by_regime = performance_rows(rpc, ["strategy", "regime"], "recent")
            assert len(by_regime) == len(STRATEGIES) * len(REGIMES)
            assert report.regime_effectiveness == by_regime[:PAGE_ROWS]
            top = rpc.call(GetTop())
            assert isinstance(top, Top) and report.top_strategies == top.rows
            assert report.status.trades == len(STRATEGIES) * len(REGIMES)
    finally:
        rpc.close()


def test_a_reader_of_the_first_version_decodes_the_first_page(loaded: DaemonProcess) -> None:
    class FirstReport(msgspec.Struct, tag="report", tag_field="type"):
        status: StatusReply
        strategies: list[dict[str, Any]]
        allocation: dict[str, Any]
        health: list[HealthRow]

    rpc = RawClient(loaded.rpc, timeout_ms=30_000)
    try:
        first = msgspec.msgpack.decode(rpc.raw(encode(GetReport())), type=FirstReport)
    finally:
        rpc.close()
    assert first.strategies[0]["strategy"] == STRATEGIES[0]
    assert first.health[0].strategy == STRATEGIES[0]


def without_status(document: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in document.items() if k not in ("status", "request_id")}


def test_the_client_and_alphad_report_read_every_page(loaded: DaemonProcess) -> None:
    rpc = RawClient(loaded.rpc, timeout_ms=30_000)
    try:
        whole = msgspec.to_builtins(merge_report(pages_of(rpc, False)))
    finally:
        rpc.close()
    with Client(loaded.rpc, timeout_s=30.0) as client:
        assert without_status(msgspec.to_builtins(client.report())) == without_status(whole)
    command = [sys.executable, "-m", "alphad.daemon.cli", "report", "--runtime-dir"]
    command.append(str(loaded.runtime_dir))
    shown = {}
    for form in ("json", "csv", "text"):
        done = subprocess.run(
            [*command, "--format", form], capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        shown[form] = done.stdout
    assert without_status(json.loads(shown["json"])) == without_status(whole)
    records = list(csv.DictReader(io.StringIO(shown["csv"])))
    for section in ("strategies_all", "allocation", "health"):
        names = [r["strategy"] for r in records if r["section"] == section]
        assert names == STRATEGIES, section
    effectiveness = [r for r in records if r["section"] == "regime_effectiveness"]
    assert len(effectiveness) == PAGE_ROWS
    for name in (STRATEGIES[0], STRATEGIES[-1]):
        assert shown["text"].count(f"\n{name} ") >= 4  # strategies all, recent, allocation, health
