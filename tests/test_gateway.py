"""The gateway on real sockets in one process: how failures are logged and counted."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import msgspec
import structlog
import zmq
import zmq.asyncio
from structlog.testing import capture_logs

from alphad.actors.log_throttle import LogThrottle
from alphad.daemon.gateway import Gateway, Route
from alphad.protocol.codec import decode_reply, encode
from alphad.protocol.messages import Error, GetStatus, Ok, Reply, Request, ScoreSignal

SECRET = "sender-data-7f3a"


def failing_status(request: Any) -> Reply:
    raise RuntimeError("the status broke")


async def ask_many(endpoint: str, payloads: list[bytes]) -> list[Any]:
    context = zmq.asyncio.Context.instance()
    sock = context.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    try:
        for payload in payloads:
            await sock.send_multipart([b"", payload])
        replies = []
        for _ in payloads:
            frames = await asyncio.wait_for(sock.recv_multipart(), 10.0)
            replies.append(decode_reply(frames[-1]))
        return replies
    finally:
        sock.close(linger=0)


async def serve(tmp_path: Path, routes: dict[type[Request], Route]) -> tuple[Gateway, str]:
    gateway = Gateway(zmq.Context.instance(), routes, max_message_size=65536, request_timeout_s=5.0)
    endpoint = f"ipc://{tmp_path / 'rpc.sock'}"
    gateway.bind(endpoint, admin=False, mode=0o600)
    return gateway, endpoint


async def test_an_internal_failure_is_logged_once_a_second_without_the_request(
    tmp_path: Path,
) -> None:
    structlog.reset_defaults()
    gateway, endpoint = await serve(tmp_path, {GetStatus: Route(inline=failing_status)})
    try:
        with capture_logs() as logs:
            replies = await ask_many(
                endpoint, [encode(GetStatus(request_id=f"{SECRET}-{i}")) for i in range(50)]
            )
    finally:
        await gateway.close(1.0)
    assert all(isinstance(r, Error) and r.code == "internal" for r in replies)
    failures = [entry for entry in logs if entry["event"] == "request_failed"]
    # Fifty failures within well under a second of each other: the first is logged.
    assert 1 <= len(failures) < 50
    for entry in failures:
        assert "exc_info" not in entry
        assert SECRET not in repr(entry)
        assert entry["kind"] == "RuntimeError" and entry["where"]
    assert gateway.stats.outcomes[(GetStatus, "internal")] == 50


def test_the_log_throttle_counts_the_lines_it_held_back() -> None:
    now = [100.0]
    throttle = LogThrottle(every_s=1.0, clock=lambda: now[0])
    assert throttle.admit("RuntimeError") == 0
    assert [throttle.admit("RuntimeError") for _ in range(3)] == [None, None, None]
    assert throttle.admit("KeyError") == 0  # another kind has its own second
    now[0] += 1.0
    assert throttle.admit("RuntimeError") == 3
    assert throttle.admit("RuntimeError") is None


async def test_a_request_that_fails_validation_is_counted_under_its_type(
    tmp_path: Path,
) -> None:
    def score(request: Any) -> Reply:
        raise AssertionError("never reached")

    gateway, endpoint = await serve(tmp_path, {ScoreSignal: Route(inline=score)})
    bad = msgspec.msgpack.encode(
        {"type": "score_signal", "strategy": "ema", "symbol": "BTC", "side": "hold"}
    )
    garbage = b"\xc1\xc1"
    unknown = msgspec.msgpack.encode({"type": "launch_rockets"})
    try:
        replies = await ask_many(endpoint, [bad, bad, garbage, unknown])
    finally:
        await gateway.close(1.0)
    assert [r.code for r in replies] == ["bad_request"] * 3 + ["unknown_type"]
    outcomes = gateway.stats.outcomes
    assert outcomes[(ScoreSignal, "bad_request")] == 2
    assert outcomes[(None, "bad_request")] == 1
    assert outcomes[(None, "unknown_type")] == 1


async def test_a_flood_of_queued_requests_lets_the_loop_run_between_budgets(
    tmp_path: Path,
) -> None:
    # A reader that took every queued message in one wake-up held the loop for as long as
    # a flood lasted: the store's answers and the timers waited, and bots' writes timed out.
    import time

    from alphad.daemon.gateway import DRAIN_BUDGET, PEER_SNDHWM

    loop = asyncio.get_running_loop()
    events: list[str] = []

    def status(request: Any) -> Reply:
        if not events:
            loop.call_soon(events.append, "loop ran")
        events.append("request")
        return Ok()

    gateway, endpoint = await serve(tmp_path, {GetStatus: Route(inline=status)})
    # Three budgets: within the replies the daemon queues for one peer (PEER_SNDHWM).
    queued = 3 * DRAIN_BUDGET
    assert queued < PEER_SNDHWM
    sender = zmq.Context.instance().socket(zmq.DEALER)
    sender.setsockopt(zmq.LINGER, 0)
    sender.connect(endpoint)
    try:
        for _ in range(queued):
            sender.send_multipart([b"", encode(GetStatus())])
        time.sleep(0.5)  # the loop does not run: every request is queued at the socket

        def receive() -> None:
            for _ in range(queued):
                assert sender.poll(10_000)
                sender.recv_multipart()

        await asyncio.to_thread(receive)
    finally:
        sender.close(linger=0)
        await gateway.close(1.0)
    assert events.count("request") == queued
    # The socket's reader and a drain scheduled after a spent budget may both run in one
    # turn of the loop: at most two budgets between turns.
    assert 0 < events.index("loop ran") <= 2 * DRAIN_BUDGET
