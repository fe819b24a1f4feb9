"""The bot-side clients against the real daemon: typed calls, errors, restarts, alert gaps."""

from __future__ import annotations

import asyncio
import csv
import inspect
import io
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import zmq

from alphad.daemon.config import Config, resolve_paths
from alphad.protocol import endpoints
from alphad.protocol.client import AsyncClient, AsyncSubscriber, Client, Subscriber
from alphad.protocol.codec import encode
from alphad.protocol.endpoints import alert_topic, default_endpoint, default_runtime_dir
from alphad.protocol.errors import AlphadError
from alphad.protocol.messages import (
    AnyRequest,
    Audit,
    GetStatus,
    Health,
    History,
    Ok,
    OptimizationState,
    Performance,
    Report,
    SignalScore,
    StatusReply,
    TradeRecorded,
    Weights,
)
from alphad.protocol.requests import Requests
from tests.daemon_process import DaemonProcess

# Operators may only force the status of strategies the daemon knows: these tests
# configure the names they force (c0..c59 are the pings of the restart test).
FORCED = ["ema", "a", "b", "probe", *(f"c{i}" for i in range(60))]


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[DaemonProcess]:
    config = "[engine]\nupdate_interval_s = 0\n" + "".join(
        f"[strategies.{name}]\n" for name in FORCED
    )
    process = DaemonProcess(tmp_path, config).start()
    try:
        yield process
    finally:
        process.close()


ROOT = Path(__file__).parent.parent

# ---------------------------------------------------------------------------- endpoints


@pytest.fixture(autouse=True)
def no_system_daemon(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No daemon of the shipped unit on this machine, whatever runs here."""
    monkeypatch.setattr(endpoints, "SYSTEM_RUNTIME_DIR", tmp_path / "no-system-daemon")


def test_default_endpoints_live_in_xdg_runtime_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/1000")
    for name in ("rpc", "admin", "alerts"):
        monkeypatch.delenv(f"ALPHAD_{name.upper()}", raising=False)
        assert default_endpoint(name) == f"ipc:///run/user/1000/alphad/{name}.sock"


def test_default_endpoints_fall_back_to_the_users_own_state_dir_not_tmp(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.delenv("ALPHAD_RPC", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    if not Path(f"/run/user/{os.getuid()}").is_dir():
        assert default_runtime_dir() == tmp_path / "alphad" / "run"
    assert default_endpoint("rpc") == f"ipc://{default_runtime_dir() / 'rpc.sock'}"
    assert not str(default_runtime_dir()).startswith("/tmp/alphad-")


def test_a_client_finds_the_shipped_units_daemon_when_the_user_has_none(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # A bot of another user in the alphad group found no daemon under the shipped unit:
    # the daemon's sockets are in /run/alphad ($RUNTIME_DIRECTORY), which a bot's
    # environment does not name, and Client() looked in the bot's own directories only.
    for folder in ("system", "own"):
        (tmp_path / folder).mkdir()
    system = DaemonProcess(tmp_path / "system").start()
    monkeypatch.setattr(endpoints, "SYSTEM_RUNTIME_DIR", system.runtime_dir)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "user"))
    for name in ("rpc", "admin", "alerts"):
        monkeypatch.delenv(f"ALPHAD_{name.upper()}", raising=False)
    try:
        assert default_endpoint("rpc") == system.rpc
        assert default_endpoint("alerts") == system.alerts
        with Client(timeout_s=5) as bot:
            assert bot.get_status().version
        paths = resolve_paths(Config(), None, None, client=True)
        assert paths.runtime_dir == system.runtime_dir  # what `alphad status` asks
        # The daemon's own start never takes another daemon's directory for its own.
        assert resolve_paths(Config(), None, None).runtime_dir == tmp_path / "user" / "alphad"
        # The user's own daemon, once it runs, comes first.
        own = DaemonProcess(tmp_path / "own")
        own.runtime_dir = tmp_path / "user" / "alphad"
        own.start()
        try:
            assert default_endpoint("rpc") == own.rpc
        finally:
            own.close()
    finally:
        system.close()


def test_environment_overrides_each_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALPHAD_RPC", "tcp://127.0.0.1:7100")
    monkeypatch.setenv("ALPHAD_ADMIN", "ipc:///srv/admin.sock")
    monkeypatch.setenv("ALPHAD_ALERTS", "ipc:///srv/alerts.sock")
    assert default_endpoint("rpc") == "tcp://127.0.0.1:7100"
    assert default_endpoint("admin") == "ipc:///srv/admin.sock"
    assert default_endpoint("alerts") == "ipc:///srv/alerts.sock"
    with pytest.raises(ValueError, match="unknown socket"):
        default_endpoint("metrics")


def test_alert_topic_of_each_audit_kind() -> None:
    assert alert_topic("status", "suspended") == "status.suspended"
    assert alert_topic("weight", 1.15) == "weights"
    assert alert_topic("cycle", 7) == "cycle"
    assert alert_topic("component", "running") == "component"


def test_client_refuses_bad_settings() -> None:
    with pytest.raises(ValueError, match="encoding"):
        Client("ipc:///nowhere", encoding="xml")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="retries"):
        Client("ipc:///nowhere", retries=-1)
    with pytest.raises(ValueError, match="timeout_s"):
        AsyncClient("ipc:///nowhere", timeout_s=0)
    # ZeroMQ's own errors came at the first call and named neither the endpoint nor the fix.
    for endpoint in ("/run/alphad/rpc.sock", "unix:///run/alphad/rpc.sock", "ipc://"):
        for make in (Client, AsyncClient, Subscriber):
            with pytest.raises(ValueError, match=r"ipc:///path/to/rpc\.sock") as refused:
                make(endpoint)
            assert repr(endpoint) in str(refused.value)


# ---------------------------------------------------------------------------- requests


def test_both_clients_show_each_request_method_with_its_signature_and_docstring() -> None:
    blocking, awaited = Client("ipc:///nowhere"), AsyncClient("ipc:///nowhere")
    names = [name for name in vars(Requests) if not name.startswith("_")]
    assert (
        "score_signal" in names
        and "set_component" in names
        and len(names) == len(AnyRequest.__args__)
    )
    for name in names:
        method, coroutine = getattr(blocking, name), getattr(awaited, name)
        signature = inspect.signature(method)
        assert "timeout_s" in signature.parameters and "self" not in signature.parameters
        assert signature == inspect.signature(coroutine)
        assert method.__doc__ and method.__doc__ == coroutine.__doc__
        assert inspect.iscoroutinefunction(coroutine) and not inspect.iscoroutinefunction(method)


async def test_an_async_request_is_built_when_awaited() -> None:
    client = AsyncClient("ipc:///nowhere")
    pending = client.record_trade(
        "t", "ema", "BTC", "buy", 1.0, 1_732_000_000_002, 1_732_000_000_001
    )
    # Refused as the daemon refuses it (bad_request), not with a bare ValueError a bot
    # catching AlphadError would die of.
    with pytest.raises(AlphadError, match=r"bad_request: .*before entry_ts_ms"):
        await pending
    client.close()


def test_what_cannot_be_sent_as_it_is_is_refused_as_bad_request_before_it_is_sent() -> None:
    client = Client("ipc:///nowhere/rpc.sock", timeout_s=0.1, retries=0)
    as_json = Client("ipc:///nowhere/rpc.sock", timeout_s=0.1, retries=0, encoding="json")
    trade = {
        "trade_id": "t1",
        "strategy": "ema",
        "symbol": "BTC",
        "side": "buy",
        "pnl": 1.0,
        "entry_ts_ms": 1_732_000_000_000,
        "exit_ts_ms": 1_732_000_000_001,
    }
    refused = {
        # JSON writes NaN as null, which the optional size took for "no size".
        "size is nan": lambda: as_json.record_trade(**trade, size=math.nan),
        "size is inf": lambda: client.record_trade(**trade, size=math.inf),
        "pnl is -inf": lambda: as_json.record_trade(**{**trade, "pnl": -math.inf}),
        "before entry_ts_ms": lambda: client.record_trade(
            **{**trade, "exit_ts_ms": 1_731_000_000_000}
        ),
        # OverflowError and UnicodeEncodeError out of the encoder, before.
        "cannot be sent": lambda: client.score_signal("ema", "BTC", "buy", 0.7, confluence=10**20),
        "cannot be sent: ": lambda: as_json.record_trade(**{**trade, "trade_id": "\ud800"}),
    }
    for words, call in refused.items():
        with pytest.raises(AlphadError) as error:
            call()
        assert error.value.code == "bad_request" and words in error.value.message, words
    # A per-call timeout that is not a wait: -1 waited for ever (ZeroMQ's poll of -1),
    # 0 and 0.0004 gave up at once on a healthy daemon after sending the request.
    for timeout_s in (-1.0, 0.0, 0.0004, math.nan, math.inf):
        with pytest.raises(ValueError, match="timeout_s"):
            client.get_status(timeout_s=timeout_s)
        with pytest.raises(ValueError, match="timeout_s"):  # the generic call too
            client.call(GetStatus(), StatusReply, timeout_s=timeout_s)
    with pytest.raises(ValueError, match="timeout_s"):
        Client("ipc:///nowhere", timeout_s=math.nan)
    client.close()
    as_json.close()


def test_typed_round_trips(daemon: DaemonProcess) -> None:
    with Client(daemon.rpc) as client:
        score = client.score_signal("ema", "BTC/USDT", "buy", 0.8, confluence=3)
        assert isinstance(score, SignalScore) and score.quality <= 0.8
        recorded = client.record_trade(
            "t-1",
            "ema",
            "BTC/USDT",
            "buy",
            5.0,
            1_732_000_000_001,
            1_732_000_000_002,
            signal_id=score.signal_id,
        )
        assert isinstance(recorded, TradeRecorded)
        assert (recorded.duplicate, recorded.seq) == (False, 1)
        assert isinstance(client.record_signal_outcome(score.signal_id or "", True), Ok)
        status = client.get_status()
        assert isinstance(status, StatusReply) and status.trades == 1
        performance = client.get_performance(group_by=["strategy", "symbol"])
        assert isinstance(performance, Performance)
        assert performance.rows[0]["symbol"] == "BTC/USDT"
        assert performance.rows[0]["total_pnl"] == 5.0
        health = client.get_health("ema")
        assert isinstance(health, Health) and health.rows[0].status == "active"
        assert "ema" in client.get_weights().base
        state = client.update_optimization()
        assert isinstance(state, OptimizationState)
        history = client.get_history(limit=5)
        assert isinstance(history, History) and history.states[0].cycle == state.cycle
        audit = client.get_audit(since_seq=0)
        assert isinstance(audit, Audit) and audit.entries[-1].kind == "cycle"
        report = client.get_report()
        assert isinstance(report, Report) and report.status.trades == 1


def test_a_resent_trade_is_answered_as_a_duplicate(daemon: DaemonProcess) -> None:
    with Client(daemon.rpc) as client:
        first = client.record_trade(
            "dup-1", "ema", "BTC", "sell", -2.0, 1_732_000_000_010, 1_732_000_000_020
        )
        again = client.record_trade(
            "dup-1", "ema", "BTC", "sell", -2.0, 1_732_000_000_010, 1_732_000_000_020
        )
        assert (first.duplicate, again.duplicate) == (False, True)
        assert client.get_status().trades == 1


def test_json_encoding_gives_the_same_replies(daemon: DaemonProcess) -> None:
    with Client(daemon.rpc, encoding="json") as as_json, Client(daemon.rpc) as as_msgpack:
        from_json = as_json.score_signal("ema", "BTC", "buy", 0.7, signal_id="s-json")
        from_msgpack = as_msgpack.score_signal("ema", "BTC", "buy", 0.7, signal_id="s-mp")
        assert (from_json.quality, from_json.execute) == (
            from_msgpack.quality,
            from_msgpack.execute,
        )
        assert from_json.signal_id == "s-json"


def test_error_reply_raises_alphad_error_with_its_code(daemon: DaemonProcess) -> None:
    with Client(daemon.rpc) as client:
        with pytest.raises(AlphadError) as out_of_range:
            client.score_signal("ema", "BTC", "buy", 1.5)
        with pytest.raises(AlphadError) as forbidden:
            client.force_status("ema", "suspended", "not from a bot", "alice")
        # The client is still usable after error replies.
        assert client.get_status().version
    assert out_of_range.value.code == "bad_request"
    assert "confidence" in out_of_range.value.message
    assert forbidden.value.code == "forbidden"


def test_admin_requests_work_on_the_admin_socket(daemon: DaemonProcess) -> None:
    with Client(daemon.admin) as admin:
        changed = admin.force_status("ema", "suspended", "drawdown review", "alice")
        assert (changed.new, changed.operator) == ("suspended", "alice")
        assert isinstance(admin.reset_weights("fresh start", "alice"), Weights)
        with pytest.raises(AlphadError) as nothing_to_undo:  # the reset moved no weight
            admin.rollback_weights("undo", "alice")
        assert nothing_to_undo.value.code == "not_found"
        assert admin.get_health("ema").rows[0].status == "suspended"
        off = admin.set_component("weighting", False, "weights swing", "alice")
        assert (off.components["weighting"], off.changed) == (False, True)
        assert admin.get_status().enabled["weighting"] is False


# ---------------------------------------------------------------------------- timeouts


def test_timeout_when_nobody_answers(tmp_path: Path) -> None:
    with Client(f"ipc://{tmp_path}/nobody.sock", timeout_s=0.1, retries=2) as client:
        started = time.monotonic()
        with pytest.raises(AlphadError) as info:
            client.get_status()
        elapsed = time.monotonic() - started
    assert info.value.code == "timeout"
    assert "3 attempt(s)" in info.value.message
    assert 0.3 <= elapsed < 2.0


def test_a_cycle_is_sent_once_because_a_lost_reply_may_hide_a_cycle_that_ran(
    daemon: DaemonProcess,
) -> None:
    assert daemon.process is not None
    with Client(daemon.rpc, timeout_s=0.3, retries=3) as client:
        client.get_status()  # connected, so the next request reaches the daemon's socket
        os.kill(daemon.process.pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            with pytest.raises(AlphadError) as once:
                client.update_optimization()
            once_s = time.monotonic() - started
            started = time.monotonic()
            with pytest.raises(AlphadError) as resent:
                client.get_status()
            resent_s = time.monotonic() - started
            with pytest.raises(AlphadError) as write:
                client.record_trade(
                    trade_id="late",
                    strategy="ema",
                    symbol="BTC",
                    side="buy",
                    pnl=1.0,
                    entry_ts_ms=1,
                    exit_ts_ms=2,
                )
        finally:
            os.kill(daemon.process.pid, signal.SIGCONT)
        # A trade is resent (its id makes it once), and the bot told what to do after.
        assert "4 attempt(s)" in write.value.message
        assert "may still be recorded: resend it with the same trade_id" in write.value.message
        assert once.value.code == resent.value.code == "timeout"
        assert "1 attempt(s)" in once.value.message and "not resent" in once.value.message
        assert "(get_audit shows whether it took effect)" in once.value.message
        assert "get_audit" not in resent.value.message
        assert "4 attempt(s)" in resent.value.message
        assert once_s < 1.0 <= resent_s
        # The daemon read the request before it was paused: the cycle ran although the
        # caller saw a timeout. This is why it is never sent twice.
        # (The cycle's number shows in get_status a moment before its history row is
        # committed; wait for the row itself.)
        deadline = time.monotonic() + 10
        while not client.get_history().states and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [s.cycle for s in client.get_history().states] == [1]


def test_bot_rides_out_a_daemon_restart(daemon: DaemonProcess) -> None:
    errors: list[Exception] = []
    answered = 0
    stop = threading.Event()

    def bot() -> None:
        nonlocal answered
        with Client(daemon.rpc, timeout_s=1.0, retries=20) as client:
            i = 0
            while not stop.is_set():
                try:
                    client.score_signal("ema", "BTC", "buy", 0.7)
                    client.record_trade(
                        f"r-{i}", "ema", "BTC", "buy", 1.0, 1_732_000_000_001, 1_732_000_000_002
                    )
                    answered += 1
                    i += 1
                except Exception as exc:
                    errors.append(exc)
                    return

    thread = threading.Thread(target=bot)
    thread.start()
    time.sleep(0.5)
    daemon.restart()
    time.sleep(0.5)
    before = answered
    time.sleep(0.5)
    stop.set()
    thread.join(60)
    assert errors == []
    assert answered > before > 0


def test_every_acknowledged_trade_survives_kill_9_exactly_once(daemon: DaemonProcess) -> None:
    acknowledged: list[str] = []
    errors: list[Exception] = []
    stop = threading.Event()

    def bot() -> None:
        with Client(daemon.rpc, timeout_s=1.0, retries=30) as client:
            i = 0
            while not stop.is_set():
                try:
                    reply = client.record_trade(
                        f"k-{i}", "ema", "BTC", "buy", 1.0, 1_732_000_000_001, 1_732_000_000_002
                    )
                except Exception as exc:
                    errors.append(exc)
                    return
                acknowledged.append(reply.trade_id)
                i += 1

    thread = threading.Thread(target=bot)
    thread.start()
    time.sleep(0.5)
    daemon.kill9()
    daemon.start()
    time.sleep(0.5)
    stop.set()
    thread.join(60)
    assert errors == []
    with Client(daemon.rpc) as client:
        trades = client.get_status().trades
        performance = client.get_performance().rows[0]["trades"]
    # A trade sent just before the kill may be committed without its reply arriving; the
    # resend then gets duplicate=true and the bot counts it once.
    assert len(acknowledged) == len(set(acknowledged)) == trades == performance


# ---------------------------------------------------------------------------- async


async def test_async_client_typed_round_trips(daemon: DaemonProcess) -> None:
    async with AsyncClient(daemon.rpc) as client:
        score = await client.score_signal("ema", "BTC", "sell", 0.6, regime="trend")
        assert isinstance(score, SignalScore) and score.quality <= 0.6
        recorded = await client.record_trade(
            "a-1", "ema", "BTC", "sell", 3.0, 1_732_000_000_001, 1_732_000_000_002
        )
        assert isinstance(recorded, TradeRecorded) and not recorded.duplicate
        assert isinstance(await client.record_signal_outcome(score.signal_id or "", False), Ok)
        assert (await client.get_status()).trades == 1
        assert (await client.get_performance(window="recent")).rows[0]["trades"] == 1
        assert (await client.get_health("ema")).rows[0].strategy == "ema"
        assert "ema" in (await client.get_weights()).effective
        assert (await client.update_optimization()).cycle == 1
        assert (await client.get_history()).states[0].cycle == 1
        assert (await client.get_audit()).entries[-1].kind == "cycle"
        assert (await client.get_report()).status.cycle == 1
        with pytest.raises(AlphadError) as forbidden:
            await client.reset_weights("not from a bot")
        assert forbidden.value.code == "forbidden"
    async with AsyncClient(daemon.admin) as admin:
        changed = await admin.force_status("ema", "degraded", "watch it", "alice")
        assert changed.new == "degraded"
        with pytest.raises(AlphadError) as nothing_to_undo:
            await admin.rollback_weights()
        assert nothing_to_undo.value.code == "not_found"
        again = await admin.set_component("scorer", True, "already on", "alice")
        assert (again.components["scorer"], again.changed) == (True, False)


async def test_async_client_serializes_concurrent_calls(daemon: DaemonProcess) -> None:
    async with AsyncClient(daemon.rpc) as client:
        scores = await asyncio.gather(
            *(client.score_signal("ema", "BTC", "buy", 0.5 + i / 100) for i in range(20))
        )
    assert [s.quality <= 0.5 + i / 100 for i, s in enumerate(scores)] == [True] * 20


async def test_async_client_times_out_and_recovers(daemon: DaemonProcess) -> None:
    assert daemon.process is not None
    async with AsyncClient(daemon.rpc, timeout_s=0.2, retries=1) as client:
        await client.get_status()
        os.kill(daemon.process.pid, signal.SIGSTOP)
        try:
            with pytest.raises(AlphadError) as info:
                await client.get_status()
        finally:
            os.kill(daemon.process.pid, signal.SIGCONT)
        assert info.value.code == "timeout" and "2 attempt(s)" in info.value.message
        assert (await client.get_status(timeout_s=5.0)).version


async def test_async_client_is_usable_after_a_cancelled_call(daemon: DaemonProcess) -> None:
    assert daemon.process is not None
    async with AsyncClient(daemon.rpc, timeout_s=5.0) as client:
        await client.get_status()
        os.kill(daemon.process.pid, signal.SIGSTOP)
        try:
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(client.get_status(), 0.2)
        finally:
            os.kill(daemon.process.pid, signal.SIGCONT)
        # The REQ socket of the cancelled call still waits for its reply; a reused one
        # would refuse to send. The client must have replaced it.
        assert (await client.get_status()).version


# ---------------------------------------------------------------------------- alerts


def test_subscriber_yields_alerts_of_its_topics_only(daemon: DaemonProcess) -> None:
    with Client(daemon.admin) as admin, Subscriber(daemon.alerts, ["status.suspended"]) as sub:
        time.sleep(0.3)  # a SUB socket misses what is published before it is connected
        admin.force_status("a", "degraded", "watch it", "alice")
        admin.force_status("a", "suspended", "stop it", "alice")
        received = sub.receive(5.0)
    assert [(t, a.strategy, a.old, a.new) for t, a in received] == [
        ("status.suspended", "a", "degraded", "suspended")
    ]


def test_subscriber_backfills_a_gap_from_the_audit_log(daemon: DaemonProcess) -> None:
    with Client(daemon.rpc) as rpc, Client(daemon.admin) as admin:
        with Subscriber(daemon.alerts, ["status."], client=rpc) as first:
            time.sleep(0.3)
            admin.force_status("a", "degraded", "watch it", "alice")
            ((topic, alert),) = first.receive(5.0)
            assert topic == "status.degraded" and alert.strategy == "a"
            resume_at = first.last_seq
        # While no subscriber listens: three changes, one of them on another topic.
        admin.force_status("a", "suspended", "stop it", "alice")
        admin.reset_weights("noise", "alice")
        admin.force_status("b", "retired", "old", "alice")
        with Subscriber(
            daemon.alerts, ["status."], client=daemon.rpc, last_seq=resume_at
        ) as second:
            time.sleep(0.3)
            admin.force_status("a", "active", "back", "alice")
            received = second.receive(5.0)
            # A SUB that joined late (a loaded machine) misses the live alert; the next
            # one it hears shows the gap, and the backfill brings the missed alert.
            for status in ["degraded", "active"] * 10:
                if any(a.strategy == "a" and a.new == "active" for _, a in received):
                    break
                admin.force_status("probe", status, "is anyone listening", "alice")
                received += second.receive(2.0)
            received = [(t, a) for t, a in received if a.strategy != "probe"]
    assert [(t, a.strategy, a.new) for t, a in received] == [
        ("status.suspended", "a", "suspended"),
        ("status.retired", "b", "retired"),
        ("status.active", "a", "active"),
    ]
    assert second.gaps == 1
    seqs = [a.seq for _, a in received]
    assert seqs == sorted(seqs) and second.last_seq == seqs[-1]


def published_probe(daemon: DaemonProcess, topic: bytes) -> zmq.Socket[bytes]:
    """A SUB connected from the start: alerts leave through the alert sockets' own
    thread, so only a subscriber that was there shows when an alert is out."""
    probe = zmq.Context.instance().socket(zmq.SUB)
    probe.setsockopt(zmq.LINGER, 0)
    probe.setsockopt(zmq.SUBSCRIBE, topic)
    probe.connect(daemon.alerts)
    time.sleep(0.3)
    return probe


def wait_published(probe: zmq.Socket[bytes]) -> None:
    """Until the probe's alert is out: a subscriber connecting after can only backfill it."""
    try:
        assert probe.poll(5000), "the alert was never published"
    finally:
        probe.close()


def test_subscriber_keeps_an_alert_whose_backfill_failed_and_retries_it(
    daemon: DaemonProcess, tmp_path: Path
) -> None:
    probe = published_probe(daemon, b"status.suspended")
    with Client(daemon.admin) as admin:
        admin.force_status("a", "degraded", "watch it", "alice")
        resume_at = admin.get_audit().entries[-1].seq
        admin.force_status("a", "suspended", "stop it", "alice")
        wait_published(probe)
        unreachable = Client(f"ipc://{tmp_path}/down.sock", timeout_s=0.1, retries=0)
        with Subscriber(daemon.alerts, [""], client=unreachable, last_seq=resume_at) as sub:
            time.sleep(0.3)
            admin.force_status("a", "retired", "gone", "alice")
            with pytest.raises(AlphadError) as failed:
                sub.receive(5.0)
            assert failed.value.code == "timeout" and sub.last_seq == resume_at
            sub.client = Client(daemon.rpc)
            received = sub.receive(0.1)  # the held alert: nothing new is read
            sub.client.close()
        unreachable.close()
    assert [a.new for _, a in received] == ["suspended", "retired"]


def test_receive_without_a_timeout_asks_for_what_was_missed_after_a_quiet_spell(
    daemon: DaemonProcess,
) -> None:
    # receive() with no timeout polled forever, so the catch-up never ran: a bot written
    # as `while True: sub.receive()` missed a suspension until some later alert came.
    probe = published_probe(daemon, b"status.suspended")
    with Client(daemon.admin) as admin:
        admin.force_status("a", "degraded", "watch it", "alice")
        resume_at = admin.get_audit().entries[-1].seq
        admin.force_status("a", "suspended", "stop it", "alice")
        wait_published(probe)
    got: list[list[tuple[str, Any]]] = []
    with Subscriber(
        daemon.alerts, ["status."], client=daemon.rpc, last_seq=resume_at, catch_up_s=0.3
    ) as sub:
        reader = threading.Thread(target=lambda: got.append(sub.receive()), daemon=True)
        reader.start()
        reader.join(10)
        assert not reader.is_alive(), "receive() waited for an alert that already came"
    assert [(t, a.new) for t, a in got[0]] == [("status.suspended", "suspended")]


async def test_receive_without_a_timeout_leaves_the_loop_free_at_any_catch_up(
    daemon: DaemonProcess,
) -> None:
    # With catch_up_s 0 it polled without waiting and never let the loop run: a bot's
    # wait_for around it never fired.
    async with AsyncSubscriber(daemon.alerts, ["status."], catch_up_s=0.0) as sub:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(sub.receive(), 0.3)

        async def first() -> object:
            async for item in sub:
                return item
            return None

        with pytest.raises(TimeoutError):  # async for too
            await asyncio.wait_for(first(), 0.3)


def test_iter_rides_out_a_backfill_the_daemon_does_not_answer(
    daemon: DaemonProcess, tmp_path: Path
) -> None:
    # A backfill that timed out ended iter() with AlphadError: a bot's alert thread (and
    # `alphad watch`) died with the daemon's restart and heard nothing after it.
    probe = published_probe(daemon, b"status.suspended")
    with Client(daemon.admin) as admin:
        admin.force_status("a", "degraded", "watch it", "alice")
        resume_at = admin.get_audit().entries[-1].seq
        admin.force_status("a", "suspended", "stop it", "alice")
        wait_published(probe)
        unreachable = Client(f"ipc://{tmp_path}/down.sock", timeout_s=0.1, retries=0)
        stop = threading.Event()
        seen: list[str] = []
        with Subscriber(daemon.alerts, [""], client=unreachable, last_seq=resume_at) as sub:

            def read() -> None:
                for _, alert in sub.iter(0.1, stop):
                    seen.append(alert.new)
                    if len(seen) == 2:
                        stop.set()

            reader = threading.Thread(target=read, daemon=True)
            reader.start()
            time.sleep(0.3)
            admin.force_status("a", "retired", "gone", "alice")  # a gap: the backfill fails
            time.sleep(0.5)
            assert reader.is_alive() and seen == []
            sub.client = Client(daemon.rpc)  # the daemon answers again
            reader.join(10)
            sub.client.close()
        unreachable.close()
    assert not reader.is_alive() and seen == ["suspended", "retired"]


def test_subscriber_rides_out_a_daemon_restart_and_backfills_what_it_missed(
    daemon: DaemonProcess,
) -> None:
    # A long reconnect interval guarantees that the changes made right after the restart
    # are published while this subscriber is not connected, so they can only be backfilled.
    context = zmq.Context()
    context.setsockopt(zmq.RECONNECT_IVL, 3000)
    try:
        with (
            Client(daemon.admin) as admin,
            Subscriber(daemon.alerts, [""], client=daemon.rpc, context=context) as sub,
        ):
            time.sleep(0.3)
            admin.force_status("a", "degraded", "watch it", "alice")
            assert [a.new for _, a in sub.receive(5.0)] == ["degraded"]
            daemon.restart()
            admin.force_status("a", "suspended", "stop it", "alice")
            admin.force_status("b", "retired", "old", "alice")
            received: list[str] = []
            deadline = time.monotonic() + 30
            pings = 0
            while not received and time.monotonic() < deadline:
                admin.force_status(f"c{pings}", "degraded", "ping", "alice")
                pings += 1
                received = [f"{a.strategy}:{a.new}" for _, a in sub.receive(0.5)]
            gaps = sub.gaps
    finally:
        context.destroy(linger=0)
    assert received[:3] == ["a:suspended", "b:retired", "c0:degraded"]
    assert gaps == 1


def test_alerts_published_while_reconnecting_come_with_no_later_alert(
    daemon: DaemonProcess,
) -> None:
    # The changes right after a restart are published before this subscriber is back,
    # and nothing follows them: a gap showed only at the next alert, which may be an
    # hour away. After a quiet spell the subscriber asks the audit log what it missed.
    context = zmq.Context()
    context.setsockopt(zmq.RECONNECT_IVL, 3000)
    try:
        with (
            Client(daemon.admin) as admin,
            Subscriber(
                daemon.alerts, ["status."], client=daemon.rpc, context=context, catch_up_s=0.5
            ) as sub,
        ):
            time.sleep(0.3)
            admin.force_status("a", "degraded", "watch it", "alice")
            assert [a.new for _, a in sub.receive(5.0)] == ["degraded"]
            daemon.restart()
            admin.force_status("a", "suspended", "stop it", "alice")
            admin.reset_weights("noise", "alice")  # another topic: not yielded
            admin.force_status("b", "retired", "old", "alice")
            received: list[tuple[str, str | None, Any]] = []
            deadline = time.monotonic() + 10
            while len(received) < 2 and time.monotonic() < deadline:
                received += [(t, a.strategy, a.new) for t, a in sub.receive(0.2)]
            last_seq = sub.last_seq
        with Client(daemon.rpc) as rpc:
            audit = rpc.get_audit().entries
    finally:
        context.destroy(linger=0)
    assert received == [("status.suspended", "a", "suspended"), ("status.retired", "b", "retired")]
    assert last_seq == audit[-1].seq


async def test_async_subscriber_backfills_a_gap(daemon: DaemonProcess) -> None:
    probe = published_probe(daemon, b"status.suspended")
    with Client(daemon.admin) as admin:
        admin.force_status("a", "degraded", "watch it", "alice")
        resume_at = admin.get_audit().entries[-1].seq
        admin.force_status("a", "suspended", "stop it", "alice")
        wait_published(probe)
        async with AsyncSubscriber(
            daemon.alerts, ["status."], client=daemon.rpc, last_seq=resume_at
        ) as sub:
            await asyncio.sleep(0.3)
            admin.force_status("a", "retired", "gone", "alice")
            received = await sub.receive(5.0)
            gaps = sub.gaps
    assert [(t, a.new) for t, a in received] == [
        ("status.suspended", "suspended"),
        ("status.retired", "retired"),
    ]
    assert gaps == 1


# ---------------------------------------------------------------------------- report


def test_report_frames_without_pandas_names_the_extra(daemon: DaemonProcess) -> None:
    # sys.modules[name] = None is how Python itself marks a module as not importable.
    script = (
        "import sys; sys.modules['pandas'] = None\n"
        "from protocol.client import Client\n"
        f"client = Client({daemon.rpc!r})\n"
        "try:\n"
        "    client.report_frames()\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert out.returncode == 0, out.stderr
    assert "alphad[pandas]" in out.stdout


# ---------------------------------------------------------------------------- command line


def test_status_command_reports_a_running_daemon_and_a_missing_one(
    daemon: DaemonProcess,
) -> None:
    ok = subprocess.run(
        [
            sys.executable,
            "-m",
            "alphad.daemon.cli",
            "status",
            "--runtime-dir",
            str(daemon.runtime_dir),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ok.returncode == 0, ok.stderr
    assert "trades 0" in ok.stdout
    daemon.stop()
    down = subprocess.run(
        [
            sys.executable,
            "-m",
            "alphad.daemon.cli",
            "status",
            "--timeout",
            "0.2",
            "--runtime-dir",
            str(daemon.runtime_dir),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert down.returncode == 1
    assert "is alphad running?" in down.stderr and "Traceback" not in down.stderr


def test_report_command_shows_a_profit_factor_without_a_loss_as_infinite(
    daemon: DaemonProcess,
) -> None:
    # No losing trade: gains over no loss is infinite (profit_factor_infinite), which the
    # tables must not show as "-", the mark of a figure that is undefined (no gain either).
    with Client(daemon.rpc) as client:
        for i in range(25):
            for strategy, pnl in (("allwins", 1.0 + i % 3), ("allflat", 0.0)):
                client.record_trade(
                    f"pf-{strategy}-{i}",
                    strategy,
                    "BTC",
                    "buy",
                    pnl,
                    1_732_000_000_001,
                    1_732_000_000_002,
                    regime="trend",
                )
        client.update_optimization()
    base = [sys.executable, "-m", "alphad.daemon.cli", "report", "--runtime-dir"]
    base += [str(daemon.runtime_dir), "--min-trades", "0"]
    as_csv = subprocess.run([*base, "--format", "csv"], capture_output=True, text=True, timeout=60)
    assert as_csv.returncode == 0, as_csv.stderr
    records = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    shown = {
        (r["section"], r["strategy"]): r["profit_factor"]
        for r in records
        if r["strategy"] in ("allwins", "allflat")
        and r["section"] != "allocation"
        and r["section"] != "health"
    }
    sections = ("strategies_all", "strategies_recent", "regime_effectiveness")
    assert {k: v for k, v in shown.items() if k[0] in sections} == {
        **{(section, "allwins"): "inf" for section in sections},
        **{(section, "allflat"): "" for section in sections},
    }
    assert shown[("top_strategies", "allwins")] == "inf"
    assert float(shown[("top_strategies", "allwins")]) == math.inf  # as a CSV reader takes it
    text = subprocess.run(base, capture_output=True, text=True, timeout=60)
    assert text.returncode == 0, text.stderr
    table = text.stdout.split("STRATEGIES ALL\n")[1].split("\n\n")[0].splitlines()
    column = table[0].split().index("profit_factor")
    cells = {line.split()[0]: line.split()[column] for line in table[1:]}
    assert (cells["allwins"], cells["allflat"]) == ("inf", "-")


def test_report_command_prints_tables_json_and_csv(daemon: DaemonProcess) -> None:
    with Client(daemon.rpc) as client:
        for i in range(25):
            client.record_trade(
                f"rep{i}",
                "swing",
                "BTC",
                "buy",
                float(i % 4 - 1),
                1_732_000_000_001,
                1_732_000_000_002,
                regime="trend",
            )
        client.update_optimization()
    base = [
        sys.executable,
        "-m",
        "alphad.daemon.cli",
        "report",
        "--runtime-dir",
        str(daemon.runtime_dir),
    ]
    text = subprocess.run(base, capture_output=True, text=True, timeout=60)
    assert text.returncode == 0, text.stderr
    assert "STRATEGIES RECENT" in text.stdout and "swing" in text.stdout
    as_json = subprocess.run(
        [*base, "--format", "json"], capture_output=True, text=True, timeout=60
    )
    document = json.loads(as_json.stdout)
    assert document["type"] == "report"
    assert document["strategies"][0]["all"]["trades"] == 25
    assert msgspec.convert(document, Report).status.trades == 25
    as_csv = subprocess.run([*base, "--format", "csv"], capture_output=True, text=True, timeout=60)
    # One tidy table that any CSV reader takes in one call: a section column, then
    # every table's columns; each row fills its own table's.
    table = list(csv.reader(io.StringIO(as_csv.stdout)))
    header, rows = table[0], table[1:]
    assert header[0] == "section" and len(set(header)) == len(header)
    assert all(len(row) == len(header) for row in rows)
    records = [dict(zip(header, row, strict=True)) for row in rows]
    allocation = [r for r in records if r["section"] == "allocation"]
    (swing,) = [r for r in allocation if r["strategy"] == "swing"]
    assert swing["base"] == "1.0"
    assert swing["trades"] == ""  # a column of another table stays empty
    (all_time,) = [
        r for r in records if r["section"] == "strategies_all" and r["strategy"] == "swing"
    ]
    assert all_time["trades"] == "25"
    health_lines = text.stdout.split("HEALTH\n")[1].split("\n\n")[0].splitlines()
    assert health_lines[0].split()[:4] == ["strategy", "status", "since", "(UTC)"]
    year = time.strftime("%Y", time.gmtime())
    (swing_health,) = [line.split() for line in health_lines if line.startswith("swing ")]
    assert swing_health[2].startswith(year)  # a date, not epoch milliseconds


def test_a_catch_up_with_the_daemon_down_waits_no_longer_than_the_receive(
    tmp_path: Path,
) -> None:
    # The question after a quiet spell once took every retry of the client (4.5 s for a
    # receive of 0.5 s): a bot polling in its loop stalled.
    context = zmq.Context()
    try:
        down = Client(f"ipc://{tmp_path}/down.sock", timeout_s=2.0, retries=3, context=context)
        with Subscriber(
            f"ipc://{tmp_path}/alerts.sock", [""], client=down, last_seq=5, catch_up_s=0.0,
            context=context,
        ) as sub:  # fmt: skip
            started = time.monotonic()
            assert sub.receive(0.3) == []
            assert time.monotonic() - started < 1.5
            assert down.retries == 3 and sub.last_seq == 5
        down.close()
    finally:
        context.destroy(linger=0)


FORKED_BOT = """
import asyncio, os, signal, sys
from alphad.protocol.client import AsyncClient, Client, Subscriber
rpc, alerts = sys.argv[1], sys.argv[2]
client = Client(rpc, timeout_s=0.5, retries=1)
async_client = AsyncClient(rpc, timeout_s=0.5, retries=1)
subscriber = Subscriber(alerts, [""], client=rpc)
client.score_signal("ema", "BTC", "buy", 0.7, signal_id="parent-1")
asyncio.run(async_client.get_status())
subscriber.receive(0.1)
child = os.fork()
if child == 0:
    signal.alarm(20)  # a child that spins (as it did) ends, not an orphan for ever
    answers = [client.score_signal("ema", "BTC", "buy", 0.7, signal_id="child-1").signal_id]
    answers.append(str(asyncio.run(async_client.get_status()).protocol))
    subscriber.receive(0.1)
    print(" ".join(answers), flush=True)
    os._exit(0)
_, status = os.waitpid(child, 0)
print(client.score_signal("ema", "BTC", "buy", 0.7, signal_id="parent-2").signal_id, status)
"""


def test_a_client_made_before_a_fork_answers_in_the_child(daemon: DaemonProcess) -> None:
    # A worker forked from a bot (multiprocessing's fork) once spun for ever in its
    # first call: ZeroMQ's context and sockets cannot cross a fork.
    bot = subprocess.run(
        [sys.executable, "-c", FORKED_BOT, daemon.rpc, daemon.alerts],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert bot.returncode == 0, bot.stderr
    assert bot.stdout.splitlines() == ["child-1 1", "parent-2 0"], bot.stdout


async def test_a_subscriber_sharing_the_bots_async_client_leaves_its_retries_alone(
    daemon: DaemonProcess,
) -> None:
    # The subscriber's catch-up is asked once; it once did so by setting the shared
    # client's retries to 0, so a bot's trade sent meanwhile was not resent.
    assert daemon.process is not None
    pid = daemon.process.pid
    async with AsyncClient(daemon.rpc, timeout_s=0.5, retries=6) as bot:
        sub = AsyncSubscriber(daemon.alerts, client=bot, last_seq=0, catch_up_s=0.1)
        try:
            await asyncio.sleep(0.3)
            os.kill(pid, signal.SIGSTOP)
            asyncio.get_running_loop().call_later(1.5, os.kill, pid, signal.SIGCONT)
            try:
                catching_up = asyncio.create_task(sub.receive(0.3))
                await asyncio.sleep(0.4)  # the catch-up's get_audit waits on the daemon
                recorded = await bot.record_trade(
                    "shared-1", "ema", "BTC", "buy", 1.0, 1_732_000_000_010, 1_732_000_000_020
                )
            finally:
                os.kill(pid, signal.SIGCONT)
            await catching_up
        finally:
            sub.close()
    assert isinstance(recorded, TradeRecorded)


def test_a_new_subscriber_gets_an_alert_published_while_it_reconnected(
    daemon: DaemonProcess,
) -> None:
    # One that had not yielded an alert yet did not know what to ask for: the change
    # published while it reconnected to a restarted daemon was lost, even when a later
    # alert came. It starts at where the journal stood (get_status.audit_seq).
    context = zmq.Context()
    context.setsockopt(zmq.RECONNECT_IVL, 3000)
    try:
        with (
            Client(daemon.admin) as admin,
            Subscriber(
                daemon.alerts, [""], client=daemon.rpc, context=context, catch_up_s=0.5
            ) as sub,
        ):
            assert sub.receive(0.5) == []  # quiet: it learns where the journal stands
            daemon.restart()
            admin.force_status("a", "suspended", "stop it", "alice")
            received: list[str | None] = []
            deadline = time.monotonic() + 10
            while not received and time.monotonic() < deadline:
                received += [a.reason for _, a in sub.receive(0.2)]
        with Client(daemon.rpc) as rpc:
            audit_seq, newest = rpc.get_status().audit_seq, rpc.get_audit().entries[-1].seq
    finally:
        context.destroy(linger=0)
    assert received == ["stop it"]
    assert audit_seq == newest == 1


def test_one_async_client_serves_one_event_loop_after_another(daemon: DaemonProcess) -> None:
    # Its lock was made in the first loop that used it: calls that waited on it in a
    # later loop (asyncio.run after asyncio.run) raised "bound to a different event loop".
    client = AsyncClient(daemon.rpc)

    async def together(prefix: str) -> list[str]:
        scores = await asyncio.gather(
            *(
                client.score_signal("ema", "BTC", "buy", 0.7, signal_id=f"{prefix}-{k}")
                for k in range(3)
            )
        )
        return [score.signal_id for score in scores]

    try:
        assert asyncio.run(together("first")) == ["first-0", "first-1", "first-2"]
        assert asyncio.run(together("second")) == ["second-0", "second-1", "second-2"]
    finally:
        client.close()


class FakeDaemon(threading.Thread):
    """An rpc socket that counts the requests by type and answers ``get_status`` as a
    daemon from before ``audit_seq`` (``answer``), or never."""

    def __init__(self, endpoint: str, answer: bool) -> None:
        super().__init__(daemon=True)
        self.context = zmq.Context()
        self.socket = self.context.socket(zmq.ROUTER)
        self.socket.bind(endpoint)
        self.answer, self.asked, self.stop = answer, [], threading.Event()

    def run(self) -> None:
        reply = StatusReply(
            version="0", uptime_s=1.0, trades=0, strategies=0, cycle=0, components={}, audit_seq=7
        )
        status = msgspec.msgpack.decode(encode(reply))
        del status["audit_seq"]
        while not self.stop.is_set():
            if not self.socket.poll(50):
                continue
            peer, empty, payload = self.socket.recv_multipart()
            kind = msgspec.msgpack.decode(payload)["type"]
            self.asked.append(kind)
            if self.answer and kind == "get_status":
                self.socket.send_multipart([peer, empty, msgspec.msgpack.encode(status)])

    def close(self) -> None:
        self.stop.set()
        self.join(5)
        self.socket.close(linger=0)
        self.context.term()


@pytest.mark.parametrize("answer", [True, False])
def test_a_new_subscriber_asks_where_the_journal_stands_once_a_quiet_spell(
    tmp_path: Path, answer: bool
) -> None:
    # A daemon from before audit_seq answers get_status without it: taken as 0, every
    # entry of the journal was backfilled as a new alert. A daemon that does not answer
    # was asked at every quiet poll, each receive then waiting twice as long.
    fake = FakeDaemon(f"ipc://{tmp_path}/rpc.sock", answer)
    fake.start()
    try:
        with Subscriber(
            f"ipc://{tmp_path}/alerts.sock", [""], client=f"ipc://{tmp_path}/rpc.sock",
            catch_up_s=0.2 if answer else 60.0,  # quiet spells to catch up after
        ) as sub:  # fmt: skip
            for _ in range(8):
                assert sub.receive(0.1) == []
            assert sub.last_seq is None
    finally:
        fake.close()
    assert fake.asked == ["get_status"]


def test_an_operators_command_finds_the_shipped_units_database_when_the_user_has_none(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # `alphad check-db --config /etc/alphad/alphad.toml` (whose state_dir is unset, as the
    # unit gives it $STATE_DIRECTORY) checked a per-user file, or said there was none.
    system = tmp_path / "var-lib-alphad"
    system.mkdir()
    (system / "alphad.db").write_bytes(b"")
    monkeypatch.setattr(endpoints, "SYSTEM_STATE_DIR", system)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "user"))
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    assert resolve_paths(Config(), None, None, client=True).database == system / "alphad.db"
    own = tmp_path / "user" / "alphad"
    assert resolve_paths(Config(), None, None).state_dir == own  # the daemon's own start
    own.mkdir(parents=True)
    (own / "alphad.db").write_bytes(b"")
    assert resolve_paths(Config(), None, None, client=True).state_dir == own
