"""End to end: market_bars on the rpc socket of a real daemon: batches checked whole,
bounded, answered with the rule set's reading, and refused without losing a held bar."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest

from alphad.actors.regimes import Bar
from alphad.actors.regimes_rules import RuleDetector
from alphad.actors.regimes_sim import simulate
from alphad.protocol.client import Client
from alphad.protocol.errors import AlphadError
from alphad.protocol.messages import BarsTaken, Error, MarketBar, MarketBars
from tests.daemon_process import DaemonProcess, RawClient

DAY = 86_400_000
CONFIG = """
[engine]
update_interval_s = 0
[regimes]
max_bars = 300
max_batch = 200
max_series = 2
"""


def wire(bar: Bar, volume: float = 1.0) -> MarketBar:
    return MarketBar(
        ts_ms=bar.ts_ms, open=bar.open, high=bar.high, low=bar.low, close=bar.close, volume=volume
    )


def last_reading(bars: list[Bar]) -> tuple[str, float, int] | None:
    """The rule set's reading after the last of ``bars``, fed one by one in this process."""
    detector = RuleDetector()
    reading = None
    for bar in bars:
        reading = detector.update(bar)
    return None if reading is None else (reading.label, reading.confidence, reading.ts_ms)


@pytest.fixture
def bars_daemon(tmp_path: Path) -> Iterator[DaemonProcess]:
    daemon = DaemonProcess(tmp_path, CONFIG).start()
    try:
        yield daemon
    finally:
        daemon.close()


def test_batches_are_taken_and_answered_with_the_rule_sets_reading(
    bars_daemon: DaemonProcess,
) -> None:
    history, _ = simulate(500, seed=3)
    client = Client(bars_daemon.rpc, retries=0)
    try:
        first = client.market_bars("BTC/USDT", "1d", [wire(b) for b in history[:50]])
        assert (first.taken, first.repeated, first.held) == (50, 0, 50)
        assert first.regime is None  # warming up: about 64 bars before the first reading
        for start in range(50, 500, 150):
            reply = client.market_bars(
                "BTC/USDT", "1d", [wire(b) for b in history[start : start + 150]]
            )
            assert reply.taken == 150
            expected = last_reading(history[: start + 150])
            assert expected is not None
            assert (reply.regime, reply.confidence, reply.regime_ts_ms) == expected
        assert reply.held == 300  # [regimes] max_bars: the window keeps the last 300
        # A resend (a lost reply) is taken as held already; the new bar after it is taken.
        later = Bar(history[-1].ts_ms + DAY, 100.0, 101.0, 99.0, 100.5)
        again = client.market_bars(
            "BTC/USDT", "1d", [*(wire(b) for b in history[-3:]), wire(later)]
        )
        assert (again.taken, again.repeated, again.held) == (1, 3, 300)
        assert again.regime_ts_ms == later.ts_ms
        # Maps work as well as MarketBar structs, and JSON as well as msgpack.
        rpc = RawClient(bars_daemon.rpc)
        document = {
            "type": "market_bars",
            "symbol": "ETH/USDT",
            "bar_size": "4h",
            "bars": [{"ts_ms": history[0].ts_ms, "open": 10, "high": 11, "low": 9, "close": 10}],
            "request_id": "b-1",
        }
        answer = json.loads(rpc.raw(json.dumps(document).encode()))
        assert answer == {
            "type": "bars_taken",
            "symbol": "ETH/USDT",
            "bar_size": "4h",
            "taken": 1,
            "repeated": 0,
            "held": 1,
            "regime": None,
            "confidence": None,
            "regime_ts_ms": None,
            "request_id": "b-1",
        }
        rpc.close()
    finally:
        client.close()


def test_a_bad_bar_refuses_the_request_whole_and_names_the_bar(
    bars_daemon: DaemonProcess,
) -> None:
    history, _ = simulate(120, seed=4)
    rpc = RawClient(bars_daemon.rpc)
    held = rpc.call(
        MarketBars(symbol="SOL/USDT", bar_size="1d", bars=[wire(b) for b in history[:100]])
    )
    assert isinstance(held, BarsTaken) and held.held == 100
    good = [wire(b) for b in history[100:103]]
    next_ts = history[103].ts_ms
    bad_bars = {
        "repeats": msgspec.structs.replace(wire(history[103]), ts_ms=history[102].ts_ms),
        "before": msgspec.structs.replace(wire(history[103]), ts_ms=history[50].ts_ms),
        "below low": MarketBar(ts_ms=next_ts, open=100.0, high=98.0, low=99.0, close=99.0),
        "outside": MarketBar(ts_ms=next_ts, open=102.0, high=101.0, low=99.0, close=100.0),
    }
    problems = {
        "repeats": f"time {history[102].ts_ms} repeats the previous bar's {history[102].ts_ms}",
        "before": f"time {history[50].ts_ms} is before the previous bar's {history[102].ts_ms},"
        " and the bar held for that time differs",
        "below low": "high 98.0 is below low 99.0",
        "outside": "open 102.0 or close 100.0 is outside low 99.0 – high 101.0",
    }
    for name, bad in bad_bars.items():
        reply = rpc.call(MarketBars(symbol="SOL/USDT", bar_size="1d", bars=[*good, bad]))
        assert isinstance(reply, Error) and reply.code == "bad_request", name
        assert reply.message == (
            f"SOL/USDT 1d: bar 3 (ts_ms {bad.ts_ms}): {problems[name]};"
            " no bar of this request was taken"
        )
    # A bar stamped a year ahead of the daemon's clock: taken, it would make every real
    # bar after it "before the previous bar" for good.
    ahead = int(time.time() * 1000) + 365 * DAY
    reply = rpc.call(
        MarketBars(
            symbol="SOL/USDT",
            bar_size="1d",
            bars=[*good, msgspec.structs.replace(wire(history[103]), ts_ms=ahead)],
        )
    )
    assert isinstance(reply, Error) and reply.code == "bad_request"
    stamp = datetime.fromtimestamp(ahead / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    assert reply.message.startswith(
        f"SOL/USDT 1d: bar 3 (ts_ms {ahead}): opens at {stamp}, more than 5 min after the"
        " daemon's clock ("
    ), reply.message
    assert reply.message.endswith("no bar of this request was taken")
    # Decoded values out of range: refused with the path of the bar's field.
    for field, value in (("high", math.nan), ("low", -1.0), ("close", math.inf), ("volume", -2.0)):
        bad = msgspec.structs.replace(wire(history[103]), **{field: value})
        reply = rpc.call(MarketBars(symbol="SOL/USDT", bar_size="1d", bars=[*good, bad]))
        assert isinstance(reply, Error) and reply.code == "bad_request", field
        assert f"$.bars[3].{field}" in reply.message, reply.message
    reply = rpc.call(MarketBars(symbol="SOL/USDT", bar_size="1 day", bars=good))
    assert isinstance(reply, Error) and reply.code == "bad_request"
    assert "$.bar_size" in reply.message
    # Nothing held was lost and nothing of a refused batch was taken: the good bars
    # follow the 100 held ones.
    taken = rpc.call(MarketBars(symbol="SOL/USDT", bar_size="1d", bars=good))
    assert isinstance(taken, BarsTaken) and (taken.taken, taken.held) == (3, 103)
    assert (taken.regime, taken.confidence, taken.regime_ts_ms) == last_reading(history[:103])
    rpc.close()


def test_batches_and_series_are_bounded_by_the_config(bars_daemon: DaemonProcess) -> None:
    history, _ = simulate(201, seed=5)
    client = Client(bars_daemon.rpc, retries=0)
    try:
        with pytest.raises(AlphadError) as too_many:
            client.market_bars("A", "1h", [wire(b) for b in history])
        assert too_many.value.code == "bad_request"
        assert "201 bars in one request, at most 200 ([regimes] max_batch)" in str(too_many.value)
        client.market_bars("A", "1h", [wire(history[0])])
        client.market_bars("A", "1d", [wire(history[0])])
        with pytest.raises(AlphadError) as third:
            client.market_bars("B", "1h", [wire(history[0])])
        assert third.value.code == "limit"
        assert "2 series of bars already held ([regimes] max_series)" in str(third.value)
        assert client.market_bars("A", "1h", [wire(history[1])]).held == 2
    finally:
        client.close()


def test_a_field_given_twice_in_a_bar_is_refused_and_nothing_taken(
    bars_daemon: DaemonProcess,
) -> None:
    # A bar whose close came twice was taken at the second (the check read the request's
    # own map only): its prices set the regimes, and with them sizes and suspensions.
    history, _ = simulate(30, seed=5)
    rpc = RawClient(bars_daemon.rpc)
    bars = [msgspec.to_builtins(wire(b)) for b in history[:20]]
    text = json.dumps({"type": "market_bars", "symbol": "ADA", "bar_size": "1d", "bars": bars})
    twice = text.replace('"close": ', '"close": 1.0, "close": ', 1)
    reply = json.loads(rpc.raw(twice.encode()))
    assert (reply["type"], reply["code"]) == ("error", "bad_request"), reply
    assert reply["message"] == "`close` of bars[0] given twice in one request"
    # msgpack: the third bar a map of 7 entries, its last repeating "close".
    body = msgspec.msgpack.encode(
        {"type": "market_bars", "symbol": "ADA", "bar_size": "1d", "bars": bars[:2]}
    )
    third = msgspec.msgpack.encode(bars[2])
    assert third[0] == 0x86
    again = msgspec.msgpack.encode("close") + msgspec.msgpack.encode(1.0)
    lists = msgspec.msgpack.encode(bars[:2])
    assert lists[0] == 0x92 and body.endswith(lists[1:])
    payload = body[: -len(lists)] + bytes([0x93]) + lists[1:] + bytes([0x87]) + third[1:] + again
    reply = msgspec.msgpack.decode(rpc.raw(payload))
    assert (reply["type"], reply["code"]) == ("error", "bad_request"), reply
    assert reply["message"] == "a field of bars[2] given twice in one request"
    # Nothing was taken: the same bars, sent once rightly, are all new.
    taken = rpc.call(MarketBars(symbol="ADA", bar_size="1d", bars=[wire(b) for b in history[:20]]))
    assert isinstance(taken, BarsTaken) and (taken.taken, taken.held) == (20, 20)
    rpc.close()
