"""Bad input from a hostile or buggy bot: every request gets an error, the daemon stays up."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alphad.protocol.messages import (
    AnyReply,
    GetStatus,
    RecordTrade,
    ScoreSignal,
    SignalScore,
    StatusReply,
)
from tests.atheris_target import one_input
from tests.daemon_process import DaemonProcess, RawClient

REPLY_TAGS = {reply.__struct_config__.tag for reply in AnyReply.__args__}
KNOWN_TYPES = [
    "score_signal",
    "record_trade",
    "record_signal_outcome",
    "get_performance",
    "get_audit",
    "force_status",
    "get_weights",
    "update_optimization",
]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=80),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=20,
)
bad_messages = st.fixed_dictionaries(
    {"type": st.sampled_from(KNOWN_TYPES) | st.text(max_size=20)},
    optional={
        "strategy": json_values | st.text(max_size=300),
        "symbol": json_values,
        "side": st.sampled_from(["buy", "sell", "hold", ""]) | json_values,
        "confidence": st.floats(allow_nan=True, allow_infinity=True) | json_values,
        "confluence": st.integers(-(2**70), 2**70) | json_values,
        "pnl": st.floats(allow_nan=True, allow_infinity=True),
        "trade_id": json_values,
        "group_by": json_values,
        "limit": st.integers(-(2**40), 2**40),
        "request_id": st.text(max_size=200) | json_values,
    },
)


@pytest.fixture(scope="module")
def fuzz_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    root: Path = tmp_path_factory.mktemp("fuzz")
    daemon = DaemonProcess(root, "[engine]\nupdate_interval_s = 0\n").start()
    yield daemon
    daemon.close()


@pytest.fixture(scope="module")
def fuzz_client(fuzz_daemon: DaemonProcess) -> Iterator[RawClient]:
    client = RawClient(fuzz_daemon.rpc)
    yield client
    client.close()


def decode_any(reply: bytes) -> dict[str, object]:
    decoded = msgspec.json.decode(reply) if reply[:1] == b"{" else msgspec.msgpack.decode(reply)
    assert isinstance(decoded, dict)
    return decoded


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.binary(max_size=2000))
def test_random_bytes_get_an_error_reply(fuzz_client: RawClient, payload: bytes) -> None:
    reply = decode_any(fuzz_client.raw(payload))
    # Random bytes can spell a valid request; then it gets its reply, else an error.
    assert reply["type"] in REPLY_TAGS
    if reply["type"] == "error":
        assert reply["code"] in ("bad_request", "unknown_type", "forbidden")


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(bad_messages, st.booleans())
def test_wrong_types_and_values_get_an_error_reply(
    fuzz_client: RawClient, message: dict[str, object], as_json: bool
) -> None:
    try:
        payload = msgspec.json.encode(message) if as_json else msgspec.msgpack.encode(message)
    except (OverflowError, TypeError, msgspec.EncodeError):
        return  # not encodable by a sender either
    reply = decode_any(fuzz_client.raw(payload))
    # Whatever decodes as a valid request gets its reply; anything else an error.
    assert reply["type"] in REPLY_TAGS
    if reply["type"] == "signal_score":
        confidence = message.get("confidence")
        assert isinstance(confidence, float) and 0.0 <= confidence <= 1.0
        assert reply["quality"] <= confidence  # type: ignore[operator]


def test_deep_nesting_huge_strings_and_truncation(fuzz_client: RawClient) -> None:
    # {"type": "score_signal", "strategy": [[[ ... 5000 levels ... "x"]]]}, written by hand
    # because no well-behaved encoder would produce it.
    deep = b"\x82\xa4type\xacscore_signal\xa8strategy" + b"\x91" * 5000 + b"\xa1x"
    nasty = [
        deep,
        b"[" * 60_000,
        msgspec.msgpack.encode({"type": "score_signal", "strategy": "a" * 60_000}),
        msgspec.msgpack.encode(ScoreSignal(strategy="a", symbol="b", side="buy", confidence=0.5))[
            :-3
        ],
        b"\xdf\xff\xff\xff\xff",  # a map claiming 4 billion entries
        b"\xdb\xff\xff\xff\xf0abc",  # a string claiming 4 GB
    ]
    for payload in nasty:
        reply = decode_any(fuzz_client.raw(payload))
        assert reply["type"] == "error" and reply["code"] == "bad_request", reply


def test_daemon_survives_with_bounded_memory_and_answers_correctly(
    fuzz_daemon: DaemonProcess, fuzz_client: RawClient
) -> None:
    assert fuzz_daemon.process is not None
    before = rss_kib(fuzz_daemon.process.pid)
    for i in range(3000):
        fuzz_client.raw(
            msgspec.msgpack.encode(
                {"type": "score_signal", "strategy": f"s{i}", "symbol": "X" * 64, "side": "up"}
            )
        )
    after = rss_kib(fuzz_daemon.process.pid)
    assert after - before < 32 * 1024, (before, after)
    assert fuzz_daemon.process.poll() is None
    reply = fuzz_client.call(
        ScoreSignal(strategy="ok", symbol="BTC", side="buy", confidence=0.7, confluence=3)
    )
    assert isinstance(reply, SignalScore) and reply.quality <= 0.7
    assert isinstance(fuzz_client.call(GetStatus()), StatusReply)


def test_names_beyond_the_configured_caps_get_limit(tmp_path: Path) -> None:
    config = "[limits]\nmax_symbols = 3\nmax_strategies = 2\nmax_regimes = 1\n"
    daemon = DaemonProcess(tmp_path, config).start()
    client = RawClient(daemon.rpc)

    def trade(name: str, strategy: str, symbol: str, regime: str | None = None) -> str:
        reply = client.call(
            RecordTrade(
                trade_id=name, strategy=strategy, symbol=symbol, side="buy", pnl=1.0,
                entry_ts_ms=1_732_000_000_001, exit_ts_ms=1_732_000_000_002, regime=regime,
            )
        )  # fmt: skip
        return getattr(reply, "code", "ok")

    try:
        # Names only scored are served and count against no cap: a scanning bot must not
        # make the daemon refuse trades on names a restart would then take.
        for i in range(5):
            reply = client.call(
                ScoreSignal(
                    strategy="s", symbol=f"SCAN{i}", side="buy", confidence=0.5, regime=f"r{i}"
                )
            )
            assert isinstance(reply, SignalScore)
        # Trades count: three symbols fit, the fourth not; one regime, the second not.
        codes = [trade(f"t{i}", "s2", f"SYM{i}") for i in range(4)]
        assert codes == ["ok", "ok", "ok", "limit"]
        assert [trade("u0", "s2", "SYM0", "calm"), trade("u1", "s2", "SYM0", "wild")] == [
            "ok",
            "limit",
        ]
        # Strategies count once they trade ("s" was only scored): two fit, the third not.
        assert [trade(name, name, "SYM0") for name in ("s3", "s4")] == ["ok", "limit"]
        scored = client.call(ScoreSignal(strategy="s5", symbol="SYM9", side="buy", confidence=0.5))
        assert isinstance(scored, SignalScore), "scoring a new name never uses up the cap"
    finally:
        client.close()
        daemon.close()


def _payload(message: dict[str, object], as_json: bool) -> bytes:
    try:
        return msgspec.json.encode(message) if as_json else msgspec.msgpack.encode(message)
    except (OverflowError, TypeError, msgspec.EncodeError):
        return b""


valid_signals = st.builds(
    ScoreSignal,
    strategy=st.sampled_from(["trend", "carry", "grid"]),
    symbol=st.sampled_from(["BTC", "ETH"]),
    side=st.sampled_from(["buy", "sell"]),
    confidence=st.floats(0.0, 1.0),
    confluence=st.integers(0, 10),
    regime=st.none() | st.sampled_from(["trending", "ranging"]),
).map(msgspec.msgpack.encode)


@settings(max_examples=500, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.binary(max_size=600) | st.builds(_payload, bad_messages, st.booleans()) | valid_signals)
def test_in_process_target_finds_no_broken_promise(payload: bytes) -> None:
    # The atheris target's own check, on the inputs of this suite.
    one_input(payload)
