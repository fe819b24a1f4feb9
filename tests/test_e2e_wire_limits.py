"""End to end: what the wire refuses, how replies are bounded, and how one peer is kept
from hurting the others, through the real daemon."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import msgspec
import pytest
import zmq

from alphad.protocol.codec import decode_reply, encode
from alphad.protocol.messages import (
    PAGE_BYTES,
    PAGE_ROWS,
    Audit,
    Error,
    GetAudit,
    GetHealth,
    GetHistory,
    GetPerformance,
    GetReport,
    GetStatus,
    GetWeights,
    Health,
    History,
    OptimizationState,
    Performance,
    RecordTrade,
    StatusReply,
    TradeRecorded,
    UpdateOptimization,
    Weights,
)
from tests.daemon_process import DaemonProcess, RawClient

NOW_MS = 1_732_000_000_000


def trade_document(**changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "type": "record_trade",
        "trade_id": "t-1",
        "strategy": "ema_trend",
        "symbol": "BTC/USDT",
        "side": "buy",
        "pnl": 1.5,
        "entry_ts_ms": NOW_MS,
        "exit_ts_ms": NOW_MS + 60_000,
    }
    document.update(changes)
    return document


def send(client: RawClient, document: dict[str, Any]) -> Any:
    return msgspec.msgpack.decode(client.raw(msgspec.msgpack.encode(document)))


@pytest.mark.parametrize(
    "changes",
    [
        {"size": 1e-300},
        {"size": 0.0},
        {"size": -1.0},
        {"size": 1e13},
        {"exit_ts_ms": NOW_MS - 1},
        {"entry_ts_ms": 1_732_000_000, "exit_ts_ms": 1_732_000_060},  # seconds, not ms
        {"entry_ts_ms": 4_102_444_800_001, "exit_ts_ms": 4_102_444_800_002},
        {"strategy": "ema_trend\n"},
        {"symbol": "BTC/USDT\n"},
        {"regime": "trending\n"},
    ],
)
def test_record_trade_refuses_what_would_corrupt_judgement(
    rpc: RawClient, changes: dict[str, Any]
) -> None:
    reply = send(rpc, trade_document(**changes))
    assert reply["type"] == "error" and reply["code"] == "bad_request", reply
    status = rpc.call(GetStatus())
    assert isinstance(status, StatusReply)
    assert (status.trades, status.strategies) == (0, 0)


def test_score_signal_refuses_a_time_in_seconds_and_a_name_with_a_newline(
    rpc: RawClient,
) -> None:
    signal = {"type": "score_signal", "symbol": "BTC/USDT", "side": "buy", "confidence": 0.7}
    for changes in ({"strategy": "ema_trend", "ts_ms": 1_732_000_000}, {"strategy": "ema\n"}):
        reply = send(rpc, signal | changes)
        assert reply["type"] == "error" and reply["code"] == "bad_request", reply
    status = rpc.call(GetStatus())
    assert isinstance(status, StatusReply) and status.strategies == 0


@pytest.mark.parametrize(
    "document",
    [
        {"type": "get_audit", "since_seq": 2**63},
        {"type": "get_history", "before_cycle": 2**63},
        {"type": "get_signals", "after": 2**64 - 1},
    ],
)
def test_a_sequence_number_past_what_the_store_holds_is_a_bad_request(
    rpc: RawClient, document: dict[str, Any]
) -> None:
    # Once an overflow inside the store: an `internal` error and a traceback in the log.
    reply = send(rpc, document | {"request_id": "big"})
    assert (reply["type"], reply["code"], reply["request_id"]) == ("error", "bad_request", "big")
    assert "9223372036854775807" in reply["message"]
    edge = send(rpc, {**document, next(k for k in document if k != "type"): 2**63 - 1})
    assert edge["type"] != "error", edge


def test_the_request_id_of_a_map_with_a_key_that_is_not_a_string_is_echoed(
    rpc: RawClient,
) -> None:
    reply = send(rpc, {1: 2, "type": "get_status", "request_id": "R6"})
    assert (reply["type"], reply["code"], reply["request_id"]) == ("error", "bad_request", "R6")


def test_the_bounds_themselves_are_accepted(rpc: RawClient) -> None:
    for i, changes in enumerate(
        [
            {"size": 1e-9},
            {"size": 1e12},
            {"entry_ts_ms": 946_684_800_000, "exit_ts_ms": 946_684_800_000},
            {"entry_ts_ms": 4_102_444_800_000, "exit_ts_ms": 4_102_444_800_000},
        ]
    ):
        reply = send(rpc, trade_document(trade_id=f"t-{i}", **changes))
        assert reply["type"] == "trade_recorded", reply


def test_twins_with_one_tiny_sized_trade_are_judged_alike(daemon: DaemonProcess) -> None:
    # The same losing record twice; one twin reports a single winning trade at the
    # smallest size the wire takes. Counted at that size alone it made 2e9 per unit
    # and kept its strategy active at full weight while the other was degraded.
    rng = random.Random(7)
    pnls = [round(rng.gauss(-0.5, 1.5), 2) for _ in range(60)]
    pnls[30] = 2.0
    client = RawClient(daemon.rpc)
    try:
        for i, pnl in enumerate(pnls):
            for strategy in ("twin", "tiny"):
                size = 1e-9 if strategy == "tiny" and i == 30 else 1.0
                reply = client.call(
                    RecordTrade(
                        trade_id=f"{strategy}-{i}",
                        strategy=strategy,
                        symbol="BTC/USDT",
                        side="buy",
                        pnl=pnl,
                        entry_ts_ms=NOW_MS + i * 60_000,
                        exit_ts_ms=NOW_MS + i * 60_000 + 30_000,
                        size=size,
                    )
                )
                assert isinstance(reply, TradeRecorded)
        client.call(UpdateOptimization())
        health = client.call(GetHealth())
        weights = client.call(GetWeights())
    finally:
        client.close()
    assert isinstance(health, Health) and isinstance(weights, Weights)
    statuses = {row.strategy: row.status for row in health.rows}
    assert statuses["twin"] != "active"  # a losing record is not left alone
    assert statuses["tiny"] == statuses["twin"]
    assert weights.adaptive["tiny"] == pytest.approx(weights.adaptive["twin"], abs=0.02)


def test_json_with_leading_whitespace_or_a_bom_is_answered_in_json(rpc: RawClient) -> None:
    for prefix in (b" ", b"\n", b"\r\n\t ", b"\xef\xbb\xbf", b"\xef\xbb\xbf  "):
        reply = json.loads(rpc.raw(prefix + b'{"type": "get_status", "request_id": "w"}'))
        assert reply["type"] == "status" and reply["request_id"] == "w", prefix


def error_of(reply: Any) -> Error:
    assert isinstance(reply, Error), reply
    return reply


def test_deep_nesting_is_a_bad_request_and_leaves_no_trace_in_the_log(
    daemon: DaemonProcess, rpc: RawClient
) -> None:
    # An unknown field the decoder skips, nested far below the recursion limit.
    deep_json = b'{"type": "get_status", "x": ' + b"[" * 3000 + b"]" * 3000 + b"}"
    deep_msgpack = b"\x82\xa4type\xaaget_status\xa1x" + b"\x91" * 30_000 + b"\x90"
    for payload in (deep_json, deep_msgpack) * 20:
        reply = msgspec.json.decode(rpc.raw(payload)) if payload[:1] == b"{" else None
        if reply is None:
            reply = msgspec.msgpack.decode(rpc.raw(payload))
        assert reply["type"] == "error" and reply["code"] == "bad_request", reply
        assert "nested too deeply" in reply["message"]
    status = rpc.call(GetStatus())
    assert isinstance(status, StatusReply)
    log = daemon.log()
    assert "request_failed" not in log and "[[[[" not in log


def test_update_optimization_is_paced_on_rpc_and_not_on_admin(
    rpc: RawClient, admin: RawClient
) -> None:
    assert isinstance(rpc.call(UpdateOptimization()), OptimizationState)
    refused = error_of(rpc.call(UpdateOptimization(request_id="again")))
    assert refused.code == "overloaded" and refused.request_id == "again"
    assert "at most once every 1 s" in refused.message and "admin" in refused.message
    for _ in range(3):
        assert isinstance(admin.call(UpdateOptimization()), OptimizationState)


def test_history_comes_in_pages_of_bounded_bytes(
    daemon: DaemonProcess, rpc: RawClient, admin: RawClient
) -> None:
    # 400 strategies (each counts once it trades): every history row carries 400 weights
    # and statuses (~20 KB).
    for i in range(400):
        reply = rpc.call(
            RecordTrade(
                trade_id=f"history-{i}", strategy=f"strategy_{i:04d}", symbol="BTC",
                side="buy", pnl=1.0, entry_ts_ms=1_732_000_000_000 + i,
                exit_ts_ms=1_732_000_000_001 + i,
            )
        )  # fmt: skip
        assert isinstance(reply, TradeRecorded)
    cycles = 120
    for _ in range(cycles):
        assert isinstance(admin.call(UpdateOptimization()), OptimizationState)
    seen: list[int] = []
    before: int | None = None
    pages = 0
    while True:
        raw = rpc.raw(encode(GetHistory(limit=10_000, before_cycle=before)))
        assert len(raw) <= PAGE_BYTES + 64 * 1024
        page = decode_reply(raw)
        assert isinstance(page, History)
        pages += 1
        seen += [state.cycle for state in page.states]
        if page.next is None:
            break
        assert page.next == page.states[-1].cycle
        before = page.next
    assert seen == list(range(cycles, 0, -1))
    assert pages >= 2
    assert len(rpc.call(GetHistory(limit=5)).states) == 5


def test_audit_comes_in_pages_that_say_where_the_next_starts(admin: RawClient) -> None:
    for _ in range(30):
        assert isinstance(admin.call(UpdateOptimization()), OptimizationState)
    seqs: list[int] = []
    since = 0
    while True:
        page = admin.call(GetAudit(since_seq=since, limit=7))
        assert isinstance(page, Audit) and len(page.entries) <= 7
        seqs += [entry.seq for entry in page.entries]
        if page.next is None:
            break
        since = page.next
    assert seqs == list(range(1, 31))


def test_performance_rows_come_in_pages_of_at_most_a_thousand(rpc: RawClient) -> None:
    symbols = [f"SYM{i:05d}" for i in range(1_050)]
    for i, symbol in enumerate(symbols):
        reply = send(rpc, trade_document(trade_id=f"p-{i}", symbol=symbol, pnl=float(i % 5 - 2)))
        assert reply["type"] == "trade_recorded", reply
    first = rpc.call(GetPerformance(group_by=["symbol"]))
    assert isinstance(first, Performance)
    assert len(first.rows) == PAGE_ROWS and first.next == [symbols[PAGE_ROWS - 1]]
    second = rpc.call(GetPerformance(group_by=["symbol"], after=first.next))
    assert isinstance(second, Performance) and second.next is None
    assert [row["symbol"] for row in first.rows + second.rows] == symbols


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_a_peer_that_pipelines_without_reading_is_refused_and_bounded(
    daemon: DaemonProcess, rpc: RawClient
) -> None:
    assert daemon.process is not None
    before = rss_kib(daemon.process.pid)
    context = zmq.Context.instance()
    greedy = context.socket(zmq.DEALER)
    greedy.setsockopt(zmq.LINGER, 0)
    greedy.setsockopt(zmq.RCVHWM, 1)  # it holds nothing for itself: the daemon must
    greedy.setsockopt(zmq.SNDHWM, 0)
    greedy.connect(daemon.rpc)
    sent = 5_000
    payload = encode(GetReport())
    for _ in range(sent):
        greedy.send_multipart([b"", payload])
    # The daemon has read and answered (or given up) every one of them once get_status,
    # behind them in no queue of theirs, counts them all.
    while True:
        status = rpc.call(GetStatus())
        assert isinstance(status, StatusReply)
        if status.requests >= sent + 1:
            break
    during = rss_kib(daemon.process.pid)
    kinds: dict[str, int] = {}
    messages: set[str] = set()
    while greedy.poll(500):
        reply = decode_reply(greedy.recv_multipart()[-1])
        kinds[type(reply).__name__] = kinds.get(type(reply).__name__, 0) + 1
        if isinstance(reply, Error):
            messages.add(reply.code)
    greedy.close(linger=0)
    received = sum(kinds.values())
    # Most were refused at once as overloaded, and what the peer did not read was given
    # up rather than kept: far fewer replies reached it than it asked for.
    assert messages == {"overloaded"}, kinds
    assert received < sent, kinds
    assert during - before < 200 * 1024, (before, during)
    assert isinstance(rpc.call(GetStatus()), StatusReply)


def peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_a_message_of_many_frames_is_refused_without_being_held_whole(
    daemon: DaemonProcess,
) -> None:
    # Every frame under the size ceiling, but 500 of them: the daemon kept every frame in a
    # list before it counted them (twice the message's size at its peak).
    assert daemon.process is not None
    frames, size = 500, 200_000
    context = zmq.Context.instance()
    dealer = context.socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 0)
    dealer.connect(daemon.rpc)
    before = peak_rss_kib(daemon.process.pid)
    chunk = b"x" * size
    dealer.send_multipart([chunk] * frames)
    assert dealer.poll(30_000)
    reply = decode_reply(dealer.recv_multipart()[-1])
    dealer.close(linger=0)
    assert isinstance(reply, Error) and reply.code == "bad_request"
    assert reply.message == f"expected 1 payload frame, got {frames}"
    # ZeroMQ itself holds the message until its last frame (about 1 × its size).
    grown = peak_rss_kib(daemon.process.pid) - before
    assert grown < 1.5 * frames * size / 1024, (grown, frames * size / 1024)
