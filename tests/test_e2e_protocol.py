"""End to end: the real daemon, a plain REQ socket, msgpack and JSON, good and bad input."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import msgspec
import zmq

from alphad.protocol.messages import (
    Error,
    ForceStatus,
    GetAudit,
    GetStatus,
    Ok,
    RecordSignalOutcome,
    RecordTrade,
    ResetWeights,
    ScoreSignal,
    SignalScore,
    StatusChanged,
    StatusReply,
    TradeRecorded,
    Weights,
)
from tests.daemon_process import DaemonProcess, RawClient

SIGNAL = ScoreSignal(
    strategy="ema_trend",
    symbol="BTC/USDT",
    side="buy",
    confidence=0.75,
    confluence=3,
    regime="trending",
    request_id="r-1",
)


def json_call(client: RawClient, document: object) -> dict[str, object]:
    reply = json.loads(client.raw(json.dumps(document).encode()))
    assert isinstance(reply, dict)
    return reply


def test_a_field_given_twice_is_refused_and_nothing_recorded(rpc: RawClient) -> None:
    # A decoder keeps the last value: this trade would be recorded with a pnl of -500.
    fields = '"type":"record_trade","trade_id":"twice","strategy":"x","symbol":"y",'
    fields += '"side":"buy","entry_ts_ms":1732000000000,"exit_ts_ms":1732000001000'
    for document in (
        "{" + fields + ',"pnl":0.09,"pnl":-500}',
        "{" + fields + ',"pnl":0.09, "pnl" :-500}',
        # An unknown field the request's decoder skips but a plain decoder refuses.
        "{" + fields + ',"pnl":0.09,"zz":1e999,"pnl":-500}',
    ):
        reply = json.loads(rpc.raw(document.encode()))
        assert (reply["type"], reply["code"]) == ("error", "bad_request"), reply
        assert reply["message"] == "`pnl` given twice in one request"
    # msgpack: a map of 9 entries, the last repeating "pnl".
    body = msgspec.msgpack.encode(json.loads("{" + fields + ',"pnl":0.09}'))
    assert body[0] == 0x88
    again = msgspec.msgpack.encode("pnl") + msgspec.msgpack.encode(-500.0)
    twice = bytes([0x89]) + body[1:] + again
    # The same behind a timestamp no plain decoder reads (ext -1 of 3 bytes).
    bad_time = msgspec.msgpack.encode("zz") + b"\xc7\x03\xff\x00\x00\x00"
    hidden = bytes([0x8A]) + body[1:] + bad_time + again
    for payload in (twice, hidden):
        reply = msgspec.msgpack.decode(rpc.raw(payload))
        assert (reply["type"], reply["code"]) == ("error", "bad_request"), reply
        assert reply["message"] == "a field given twice in one request"
    # Nothing was recorded: the same trade sent once, rightly, is new.
    once = json.loads(rpc.raw(("{" + fields + ',"pnl":0.09}').encode()))
    assert once["type"] == "trade_recorded" and once.get("duplicate") in (None, False), once
    # A colon after a quote inside a string is no second key.
    quoted = json.loads(rpc.raw(b'{"type":"get_health","strategy":"a\\":b"}'))
    assert "given twice" not in quoted.get("message", ""), quoted


def test_score_signal_over_msgpack_echoes_request_id_and_never_raises_confidence(
    rpc: RawClient,
) -> None:
    reply = rpc.call(SIGNAL)
    assert isinstance(reply, SignalScore)
    assert reply.request_id == "r-1"
    assert 0.0 <= reply.quality <= SIGNAL.confidence
    assert 0.0 <= reply.size_multiplier <= 2.0
    assert reply.status == "active"
    assert reply.signal_id


def test_json_request_gets_json_reply(rpc: RawClient) -> None:
    reply = json_call(
        rpc,
        {
            "type": "score_signal",
            "strategy": "rsi",
            "symbol": "ETH/USDT",
            "side": "sell",
            "confidence": 0.6,
            "request_id": "j-1",
            "some_future_field": [1, 2],
        },
    )
    assert reply["type"] == "signal_score"
    assert reply["request_id"] == "j-1"
    assert isinstance(reply["quality"], float) and reply["quality"] <= 0.6


def test_record_trade_is_idempotent_on_trade_id(rpc: RawClient, daemon: DaemonProcess) -> None:
    trade = RecordTrade(
        trade_id="T-1",
        strategy="ema_trend",
        symbol="BTC/USDT",
        side="buy",
        pnl=12.5,
        entry_ts_ms=1_700_000_000_000,
        exit_ts_ms=1_700_000_060_000,
        regime="trending",
    )
    first = rpc.call(trade)
    again = rpc.call(trade)
    assert isinstance(first, TradeRecorded) and isinstance(again, TradeRecorded)
    assert (first.duplicate, again.duplicate) == (False, True)
    assert first.seq == again.seq
    status = rpc.call(GetStatus())
    assert isinstance(status, StatusReply) and status.trades == 1


def test_bad_input_gets_error_codes_and_daemon_keeps_serving(rpc: RawClient) -> None:
    cases: list[tuple[bytes, str]] = [
        (b"\xc1\xff\x00garbage", "bad_request"),
        (b"", "bad_request"),
        (b"{not json", "bad_request"),
        (json.dumps({"type": "launch_rockets"}).encode(), "unknown_type"),
        (json.dumps({"strategy": "x"}).encode(), "bad_request"),
        (
            json.dumps(
                {
                    "type": "score_signal",
                    "strategy": "x",
                    "symbol": "y",
                    "side": "buy",
                    "confidence": 1.5,
                }
            ).encode(),
            "bad_request",
        ),
        (
            json.dumps(
                {
                    "type": "score_signal",
                    "strategy": "x",
                    "symbol": "y",
                    "side": "hold",
                    "confidence": 0.5,
                }
            ).encode(),
            "bad_request",
        ),
        (
            json.dumps(
                {
                    "type": "score_signal",
                    "strategy": "x" * 65,
                    "symbol": "y",
                    "side": "buy",
                    "confidence": 0.5,
                }
            ).encode(),
            "bad_request",
        ),
        (
            json.dumps(
                {
                    "type": "score_signal",
                    "strategy": "has space",
                    "symbol": "y",
                    "side": "buy",
                    "confidence": 0.5,
                }
            ).encode(),
            "bad_request",
        ),
        (
            msgspec.msgpack.encode(
                {
                    "type": "score_signal",
                    "strategy": "x",
                    "symbol": "y",
                    "side": "buy",
                    "confidence": float("nan"),
                }
            ),
            "bad_request",
        ),
        (
            msgspec.msgpack.encode(
                {
                    "type": "record_trade",
                    "trade_id": "t",
                    "strategy": "x",
                    "symbol": "y",
                    "side": "buy",
                    "pnl": float("inf"),
                    "entry_ts_ms": 1,
                    "exit_ts_ms": 2,
                }
            ),
            "bad_request",
        ),
        (
            msgspec.msgpack.encode(
                {
                    "type": "score_signal",
                    "strategy": "x",
                    "symbol": "y",
                    "side": "buy",
                    "confidence": "high",
                }
            ),
            "bad_request",
        ),
        (msgspec.msgpack.encode([1, 2, 3]), "bad_request"),
        (b"\x91" * 10_000, "bad_request"),
        (b"x" * 70_000, "bad_request"),
    ]
    for payload, code in cases:
        reply = rpc.raw(payload)
        decoded = msgspec.json.decode(reply) if reply[:1] == b"{" else msgspec.msgpack.decode(reply)
        assert decoded["type"] == "error", (payload[:40], decoded)
        assert decoded["code"] == code, (payload[:40], decoded)
        assert decoded["message"]
    assert isinstance(rpc.call(SIGNAL), SignalScore)


def test_request_id_is_echoed_even_when_validation_fails(rpc: RawClient) -> None:
    reply = json_call(rpc, {"type": "score_signal", "request_id": "bad-1", "confidence": 7})
    assert reply["type"] == "error" and reply["code"] == "bad_request"
    assert reply["request_id"] == "bad-1"


def test_multipart_request_gets_an_error_not_silence(daemon: DaemonProcess) -> None:
    context = zmq.Context.instance()
    sock = context.socket(zmq.REQ)
    sock.setsockopt(zmq.RCVTIMEO, 5000)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(daemon.rpc)
    sock.send_multipart([b"part-1", b"part-2"])
    reply = msgspec.msgpack.decode(sock.recv())
    assert reply["type"] == "error" and reply["code"] == "bad_request"
    sock.close()


def test_admin_requests_are_forbidden_on_rpc_and_served_on_admin(
    rpc: RawClient, admin: RawClient
) -> None:
    force = ForceStatus(
        strategy="ema_trend", status="suspended", reason="manual review", operator="alice"
    )
    refused = rpc.call(force)
    assert isinstance(refused, Error) and refused.code == "forbidden"
    refused_reset = rpc.call(ResetWeights(reason="x"))
    assert isinstance(refused_reset, Error) and refused_reset.code == "forbidden"
    audit_before = rpc.call(GetAudit())
    assert audit_before.entries == []
    unknown = admin.call(force)
    assert isinstance(unknown, Error) and unknown.code == "not_found"  # never seen yet
    assert rpc.call(SIGNAL).execute  # now the daemon knows ema_trend
    changed = admin.call(force)
    assert isinstance(changed, StatusChanged)
    assert changed.new == "suspended" and changed.old == "active"
    score = rpc.call(SIGNAL)
    assert isinstance(score, SignalScore)
    assert score.execute is False and score.size_multiplier == 0.0
    assert score.status == "suspended"
    audit = rpc.call(GetAudit())
    assert [(e.kind, e.strategy, e.new, e.actor) for e in audit.entries] == [
        ("status", "ema_trend", "suspended", "alice")
    ]


def test_no_operator_may_act_as_system_alphads_name_for_its_own_decisions(
    rpc: RawClient, admin: RawClient
) -> None:
    # A status forced as "system" read as an automatic one, and paper trades ended an
    # operator's suspension made under it.
    assert rpc.call(SIGNAL).execute
    requests = [
        {"type": "force_status", "strategy": "ema_trend", "status": "suspended", "reason": "x"},
        {"type": "reset_weights"},
        {"type": "rollback_weights"},
        {"type": "set_component", "name": "lifecycle", "enabled": False, "reason": "x"},
        {"type": "forget_strategy", "strategy": "ema_trend", "reason": "x"},
    ]
    for request in requests:
        for name in ("system", "System"):
            reply = msgspec.msgpack.decode(
                admin.raw(msgspec.msgpack.encode({**request, "operator": name}))
            )
            assert reply["type"] == "error" and reply["code"] == "bad_request", request
            assert "reserved" in reply["message"], reply
    assert rpc.call(GetAudit()).entries == []
    assert rpc.call(SIGNAL).status == "active"


def test_a_reason_with_a_control_character_is_refused_and_nothing_journaled(
    rpc: RawClient, admin: RawClient
) -> None:
    # A reason is journaled and printed by watch, health and top: a newline would forge
    # a second alert line, an escape drive the operator's terminal.
    assert rpc.call(SIGNAL).execute
    forged = "review\n#99 status.active ema_trend: suspended -> active"
    # C0 and C1 controls (NEL, CSI), Unicode line and paragraph separators, bidi controls.
    others = (
        "\x1b[2Jok",
        "x\t",
        "a\x85b",
        "\x9b31mred",
        "a\u2028b",
        "a\u2029b",
        "\u202eevil",
        "\u2066x",
    )
    for reason in (forged, *others):
        force = ForceStatus(strategy="ema_trend", status="suspended", reason=reason, operator="a")
        refused = admin.call(force)
        assert isinstance(refused, Error) and refused.code == "bad_request", reason
        assert "$.reason" in refused.message
    assert isinstance(admin.call(ResetWeights(reason="one line, ünïcode ✓")), Weights)
    assert [e.kind for e in rpc.call(GetAudit()).entries if e.kind == "status"] == []
    assert rpc.call(SIGNAL).execute


def test_sockets_are_created_with_their_modes(daemon: DaemonProcess) -> None:
    modes = {
        name: stat.S_IMODE(os.stat(daemon.runtime_dir / f"{name}.sock").st_mode)
        for name in ("rpc", "admin", "alerts")
    }
    assert modes == {"rpc": 0o660, "admin": 0o600, "alerts": 0o660}


def test_sigterm_stops_gracefully_and_notifies_systemd(daemon: DaemonProcess) -> None:
    assert "READY=1" in daemon.notifications
    assert daemon.stop() == 0
    notes = daemon.drain_notifications()
    assert "STOPPING=1" in notes
    assert "alphad_stopped" in daemon.log()


def test_second_daemon_on_the_same_state_dir_refuses_to_start(
    daemon: DaemonProcess, tmp_path: Path
) -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "alphad.daemon.cli",
            "run",
            "--state-dir",
            str(daemon.state_dir),
            "--runtime-dir",
            str(tmp_path / "other-run"),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert "another alphad is running" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_trade_naming_another_strategys_signal_is_recorded_but_not_its_outcome(
    daemon: DaemonProcess, rpc: RawClient
) -> None:
    # It was learned as that signal's outcome: strategy A's setups taught B's losses.
    # Refusing it lost the trade record (and a resend of a recorded trade after its id
    # was scored again): it is recorded, and the signal keeps waiting for its own.
    def scored() -> SignalScore:
        reply = rpc.call(SIGNAL)
        assert isinstance(reply, SignalScore) and reply.signal_id is not None
        return reply

    def trade(trade_id: str, strategy: str, signal_id: str | None, pnl: float) -> object:
        return rpc.call(
            RecordTrade(
                trade_id=trade_id,
                strategy=strategy,
                symbol="BTC/USDT",
                side="buy",
                pnl=pnl,
                entry_ts_ms=1_732_000_000_000,
                exit_ts_ms=1_732_000_060_000,
                signal_id=signal_id,
            )
        )

    # The strategy wins elsewhere (its own base rate is high) ...
    elsewhere = msgspec.structs.replace(SIGNAL, symbol="ETH/USDT")
    for _ in range(30):
        won = rpc.call(elsewhere)
        assert isinstance(won, SignalScore) and won.signal_id is not None
        assert isinstance(
            rpc.call(RecordSignalOutcome(signal_id=won.signal_id, success=True)), Ok
        )
    # ... and another strategy's losing trades name its signals on BTC/USDT.
    signals = [scored() for _ in range(20)]
    before = scored()
    for i, signal in enumerate(signals):
        recorded = trade(f"b-{i}", "other", signal.signal_id, -1.0)
        assert isinstance(recorded, TradeRecorded) and not recorded.duplicate
    # Nothing learned from the other's losses (they read "similar setups won 0% of 20").
    after = scored()
    assert (after.quality, after.reasons) == (before.quality, before.reasons)
    assert daemon.log().count("trade_names_another_signal") == 1
    status = rpc.call(GetStatus())
    assert isinstance(status, StatusReply) and status.trades == 20
    # A start learns the trades again the same way.
    daemon.kill9()
    daemon.start()
    rpc.socket = rpc._open()
    restarted = scored()
    assert (restarted.quality, restarted.reasons) == (before.quality, before.reasons)
