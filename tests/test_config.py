"""Configuration: defaults without a file, typed keys, and errors that name the key and file."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest

from alphad.daemon.config import Config, ConfigError, load_config, read_config, resolve_paths
from alphad.protocol.codec import encode
from alphad.protocol.messages import (
    MIN_MESSAGE_SIZE,
    NAME_PATTERN,
    TEXT_PATTERN,
    AnyRequest,
    MarketBar,
    MarketBars,
)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "alphad.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_no_file_gives_the_defaults() -> None:
    config = load_config(None)
    assert config == Config()
    assert config.store.synchronous == "FULL"
    assert config.scorer.max_size_multiplier == 2.0


def test_example_config_in_systemd_dir_is_valid() -> None:
    config = load_config(Path(__file__).parent.parent / "systemd" / "alphad.toml")
    assert config.strategies["rsi_reversion"].base_weight == 0.8


def test_values_are_read_and_typed(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            "[engine]\nupdate_interval_s = 0\n[strategies.ema]\nbase_weight = 1.5\n"
            "[scorer.regime_factors]\nvolatile = 0.8\n",
        )
    )
    assert config.engine.update_interval_s == 0
    assert config.strategies["ema"].base_weight == 1.5
    assert config.scorer.regime_factors == {"volatile": 0.8}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[daemon]\nmax_mesage_size = 10\n", "unknown key `daemon.max_mesage_size`"),
        ("[deamon]\n", "unknown key `deamon`"),
        ('[store]\nsynchronous = "OFF"\n', "key `store.synchronous`"),
        ("[daemon]\nrequest_timeout_s = -1\n", "key `daemon.request_timeout_s`"),
        ('[strategies.ema]\nbase_weight = "big"\n', "key `strategies.ema.base_weight`"),
        ("[daemon\n", "not valid TOML"),
        # A final newline must not pass the name pattern (a `$` alone would let it).
        ('[strategies."ema_trend\\n"]\nbase_weight = 1.0\n', "not a valid strategy name"),
        ("[regimes]\nmax_batch = 2000\n", "max_batch 2000 is above max_bars 1000"),
        ("[regimes]\nmax_series = 0\n", "key `regimes.max_series`"),
    ],
)
def test_bad_config_names_the_key_and_the_file(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(str(path))
    assert expected in message
    assert "\n" not in message


RULE = (
    "a regime is 1 – 64 of `A-Z a-z 0-9 _ . : / @ + -`, not starting with a symbol, as bots"
    " send it or as detected (trending_up, trending_down, ranging, volatile)"
)


def test_a_rule_between_keys_is_reported_beside_a_bad_key_of_its_section(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path,
        '[lifecycle]\nsoft_drawdown = 70\nhard_drawdown = 60\nmin_trades = "x"\n'
        "[regimes]\nmax_batch = 900\nmax_bars = 800\nbar_size = 5\n",
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    problems = info.value.problems
    assert f"{path}: key `lifecycle`: soft_drawdown 70 is over hard_drawdown 60" in problems
    assert any("`lifecycle.min_trades`" in p for p in problems)
    assert any("`regimes.bar_size`" in p for p in problems)
    assert any(p.startswith(f"{path}: key `regimes`:") and "max_batch" in p for p in problems)
    assert len(problems) == 4


def test_a_bad_regime_key_is_one_line_naming_the_strategy_the_key_and_the_rule(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path,
        "[lifecycle]\nper_regime = true\n"
        '[strategies.breakout.regimes."ranging low"]\nwin_rate_floor = 0.35\n'
        "[strategies.breakout.regimes.volatile]\nmin_trades = 40\n"
        '[strategies.carry.regimes."-dip"]\nmin_trades = 40\n'
        "[strategies.carry.regimes.unknown]\nmin_trades = 40\n"
        "[strategies.carry.regimes.ranging]\nwin_rate_flor = 0.4\n"
        "[strategies.carry.regimes.volatile]\nsoft_drawdown = 9.0\nhard_drawdown = 3.0\n",
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.problems == [
        f'{path}: key `strategies.breakout.regimes."ranging low"`: "ranging low" is not a'
        f" regime name (strategy `breakout`); {RULE}",
        f'{path}: key `strategies.carry.regimes."-dip"`: "-dip" is not a regime name'
        f" (strategy `carry`); {RULE}",
        f'{path}: key `strategies.carry.regimes."unknown"`: `unknown` is the regime of trades'
        " without one, never judged on its own (strategy `carry`); name a regime it trades in",
        # A bad key or value inside one regime's table names that regime too.
        f"{path}: unknown key `strategies.carry.regimes.ranging.win_rate_flor`",
        f"{path}: key `strategies.carry.regimes.volatile`: soft_drawdown 9 is over hard_drawdown 3",
    ]
    # The good regimes of the file are still read, and with them the rest of it is checked.
    config, _ = read_config(path)
    assert config.strategies["breakout"].regimes["volatile"].min_trades == 40
    assert config.strategies["carry"].regimes == {}


def check_config(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "alphad.daemon.cli", "check-config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_check_config_names_a_bad_regime_key_in_one_line(tmp_path: Path) -> None:
    path = write(tmp_path, '[strategies.breakout.regimes."trending up"]\nmin_trades = 40\n')
    result = check_config(path)
    assert result.returncode == 1
    assert result.stderr == (
        f'alphad: {path}: key `strategies.breakout.regimes."trending up"`: "trending up" is'
        f" not a regime name (strategy `breakout`); {RULE}\n"
    )


def test_command_line_beats_config_beats_systemd_directories(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/alphad")
    monkeypatch.setenv("RUNTIME_DIRECTORY", "/run/alphad:/run/other")
    from_systemd = resolve_paths(Config(), None, None)
    assert str(from_systemd.database) == "/var/lib/alphad/alphad.db"
    assert from_systemd.rpc == "ipc:///run/alphad/rpc.sock"
    config = load_config(write(tmp_path, '[daemon]\nstate_dir = "/srv/a"\n'))
    assert str(resolve_paths(config, None, None).state_dir) == "/srv/a"
    assert str(resolve_paths(config, "/cli", None).state_dir) == "/cli"


def test_check_config_cli_prints_one_line_and_fails(tmp_path: Path) -> None:
    path = write(tmp_path, "[daemon]\nbogus = 1\n")
    result = check_config(path)
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0
    assert "unknown key `daemon.bogus`" in result.stderr
    assert "Traceback" not in result.stderr
    ok = check_config(Path(__file__).parent.parent / "systemd" / "alphad.toml")
    assert ok.returncode == 0 and "ok" in ok.stdout


def test_schema_lists_every_message() -> None:
    import json

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "alphad.daemon.cli",
            "schema",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0
    document = json.loads(result.stdout)
    names = set(document["$defs"])
    for name in ("ScoreSignal", "SignalScore", "RecordTrade", "TradeRecorded", "Error", "Alert"):
        assert name in names
    tags = {
        d["properties"]["type"]["enum"][0]
        for d in document["$defs"].values()
        if "type" in d.get("properties", {}) and "enum" in d["properties"]["type"]
    }
    assert {"score_signal", "record_trade", "get_report", "force_status", "error"} <= tags


def test_check_config_warns_when_a_full_batch_of_bars_does_not_fit_a_message(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, "[regimes]\nmax_batch = 1000\n")
    result = check_config(path)
    assert result.returncode == 0, result.stderr
    (line,) = result.stderr.splitlines()
    found = re.fullmatch(
        r"alphad: warning: \[regimes\] max_batch 1000: a full batch of bars is about "
        r"([\d,]+) bytes in msgpack \(([\d,]+) in JSON\), over \[daemon\] max_message_size "
        r"65,536, so it is refused whole: send at most about (\d+) bars a request, or raise "
        r"max_message_size",
        line,
    )
    assert found is not None, line

    # The sizes, encoded here: a batch of that many bars at full precision.
    def size(n: int) -> int:
        bar = MarketBar(
            ts_ms=1_767_225_600_123,
            open=98_765.43210987654,
            high=98_765.43210987654,
            low=98_765.43210987654,
            close=98_765.43210987654,
            volume=9_876_543.210987654,
        )
        request = MarketBars(symbol="BTC/USDT:USDT-PERP", bar_size="15m", bars=[bar] * n)
        return len(encode(request))  # as the client library sends it

    assert size(1000) > 65_536
    assert abs(int(found[1].replace(",", "")) - size(1000)) <= 1000 * 2
    assert size(int(found[3])) <= 65_536
    # The default batch fits: no warning.
    quiet = check_config(write(tmp_path, "[regimes]\nmax_batch = 500\n"))
    assert quiet.returncode == 0 and quiet.stderr == ""


ALPHAD = (sys.executable, "-m", "alphad.daemon.cli")


def run_command(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "alphad.daemon.cli", "run", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_state_directory_that_is_the_runtime_directory_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "alphad"
    path = write(tmp_path, f'[daemon]\nstate_dir = "{shared}"\nruntime_dir = "{shared}/./"\n')
    expected = (
        f"alphad: state directory {shared} is the runtime directory too: the "
        "database's directory is alphad's alone and the sockets' is the bots' group's, "
        "so each needs its own\n"
    )
    checked = check_config(path)
    assert (checked.returncode, checked.stderr) == (1, expected)
    started = run_command(path)  # refused before it touches either directory
    assert (started.returncode, started.stderr) == (1, expected)
    assert not shared.exists()


def test_check_config_warns_when_a_rule_needs_more_trades_than_a_window_holds(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path,
        "[performance]\nwindow_trades = 30\n[lifecycle]\nper_regime = true\n"
        "[strategies.breakout.regimes.trending]\nmin_trades = 31\n"
        "[strategies.carry.regimes.trending]\nmin_trades = 30\n",
    )
    result = check_config(path)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        f"alphad: warning: {key} = {needs} is above [performance] window_trades 30: a "
        f"window never holds that many trades, so {rule} never acts"
        for key, needs, rule in (
            (
                "[lifecycle] min_trades",
                "50 (the default)",
                "the lifecycle's judgement of a strategy",
            ),
            (
                "[strategies.breakout.regimes.trending] min_trades",
                31,
                "the lifecycle's judgement of this strategy in this regime",
            ),
        )
    ]
    # At the defaults (a window of 100) every rule can act: no warning.
    quiet = check_config(write(tmp_path, "[lifecycle]\nregime_min_trades = 100\n"))
    assert quiet.returncode == 0 and quiet.stderr == ""


def test_check_config_warns_when_a_locked_database_outlasts_a_request(tmp_path: Path) -> None:
    result = check_config(write(tmp_path, "[store]\nbusy_timeout_ms = 5000\n"))
    assert result.returncode == 0, result.stderr
    assert result.stderr == (
        "alphad: warning: [store] busy_timeout_ms 5000 is not below [daemon] "
        "request_timeout_s 5 (5000 ms): a write that waits on a locked database outlasts "
        "its request, so the bot is answered `timeout` while its trade may still be "
        "recorded (a resend is then a `duplicate`)\n"
    )
    quiet = check_config(write(tmp_path, "[store]\nbusy_timeout_ms = 4999\n"))
    assert quiet.returncode == 0 and quiet.stderr == ""


def test_check_config_warns_of_the_hour_clock_of_probation(tmp_path: Path) -> None:
    # Set beside probation_after_trades = 0 ("no clock"), it silently ended suspensions
    # after 72 h.
    text = "[lifecycle]\nprobation_after_trades = 0\nprobation_after_hours = 72\n"
    result = check_config(write(tmp_path, text))
    assert result.returncode == 0, result.stderr
    assert result.stderr == (
        "alphad: warning: [lifecycle] probation_after_hours = 72 is deprecated and replaces"
        " probation_after_trades (0): an automatic suspension ends after that many hours on"
        " every time frame; remove it for the trade clock\n"
    )
    quiet = check_config(write(tmp_path, "[lifecycle]\nprobation_after_trades = 0\n"))
    assert quiet.returncode == 0 and quiet.stderr == ""


@pytest.mark.parametrize(
    ("endpoints", "expected"),
    [
        (
            'rpc_endpoint = "tcp://127.0.0.1:7411"\nalerts_endpoint = "tcp://localhost:7411"\n',
            "key `daemon.alerts_endpoint`: tcp://localhost:7411 takes port 7411 on an "
            "address the rpc socket (tcp://127.0.0.1:7411) binds too; each needs its own port",
        ),
        (
            'rpc_endpoint = "tcp://0.0.0.0:7411"\nalerts_endpoint = "tcp://127.0.0.1:7411"\n',
            "key `daemon.alerts_endpoint`: tcp://127.0.0.1:7411 takes port 7411 on an "
            "address the rpc socket (tcp://0.0.0.0:7411) binds too; each needs its own port",
        ),
        (
            'rpc_endpoint = "tcp://*:9464"\n',
            "key `metrics.port`: 9464 on 127.0.0.1 is a port the rpc socket (tcp://*:9464) "
            "binds too; each needs its own port",
        ),
        (
            # An IPv4 address mapped into IPv6 binds the IPv4 address.
            'rpc_endpoint = "tcp://127.0.0.1:9464"\n[metrics]\naddress = "::ffff:127.0.0.1"\n',
            "key `metrics.port`: 9464 on ::ffff:127.0.0.1 is a port the rpc socket "
            "(tcp://127.0.0.1:9464) binds too; each needs its own port",
        ),
        (
            'rpc_endpoint = "tcp://no-such-host.invalid:7411"\n',
            "key `daemon.rpc_endpoint`: tcp://no-such-host.invalid:7411: no-such-host.invalid"
            " is neither an address nor a name this host resolves",
        ),
        (
            # ZeroMQ binds a network interface by its IPv4 address: lo's is 127.0.0.1.
            'rpc_endpoint = "tcp://lo:9464"\n',
            "key `metrics.port`: 9464 on 127.0.0.1 is a port the rpc socket (tcp://lo:9464) "
            "binds too; each needs its own port",
        ),
        (
            # One curve_clients_dir lets keys into every tcp socket: a bot's key reached
            # set_component and force_status.
            'rpc_endpoint = "tcp://127.0.0.1:7411"\nadmin_endpoint = "tcp://lo:7412"\n',
            "key `daemon.admin_endpoint`: tcp://lo:7412: admin is served on a socket file only"
            " (over tcp every bot key in curve_clients_dir would reach the operator's requests);"
            " an operator on another host runs the commands there, over ssh",
        ),
        (
            # "0" resolves to 0.0.0.0: every address.
            'rpc_endpoint = "tcp://0:7411"\nalerts_endpoint = "tcp://127.0.0.1:7411"\n',
            "key `daemon.alerts_endpoint`: tcp://127.0.0.1:7411 takes port 7411 on an "
            "address the rpc socket (tcp://0:7411) binds too; each needs its own port",
        ),
        (
            'rpc_endpoint = "tcp://127.0.0.1:²"\n',
            "key `daemon.rpc_endpoint`: tcp://127.0.0.1:² is not tcp://HOST:PORT with a port "
            "from 1 to 65535",
        ),
        (
            'rpc_endpoint = "tcp://[::1]:7411"\n',
            "key `daemon.rpc_endpoint`: tcp://[::1]:7411: [::1] is an IPv6 address, which alphad's "
            "sockets do not bind: give an IPv4 address or a name",
        ),
    ],
)
def test_check_config_refuses_tcp_endpoints_that_cannot_all_bind(
    tmp_path: Path, endpoints: str, expected: str
) -> None:
    path = write(tmp_path, f"[daemon]\n{endpoints}")
    result = check_config(path)
    assert result.returncode == 1
    assert f"alphad: {path}: {expected}\n" in result.stderr, result.stderr


def test_check_config_takes_the_tcp_hosts_zeromq_binds(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    subprocess.run(
        [sys.executable, "-m", "alphad.daemon.cli", "keygen", str(keys), "server"],
        capture_output=True,
        check=True,
        timeout=60,
    )
    (tmp_path / "clients").mkdir(mode=0o700)
    security = (
        f'[security]\ncurve_server_secret = "{keys}/server.key_secret"\n'
        f'curve_clients_dir = "{tmp_path}/clients"\n'
    )
    for endpoints in (
        # A bracketed IPv4 address; one port on two loopback addresses; the metrics off.
        'rpc_endpoint = "tcp://[127.0.0.1]:7411"\nalerts_endpoint = "tcp://127.0.0.2:7411"\n',
        'rpc_endpoint = "tcp://localhost:7411"\nalerts_endpoint = "tcp://127.0.0.1:7412"\n',
        'rpc_endpoint = "tcp://*:9464"\n[metrics]\nenabled = false\n',
    ):
        result = check_config(write(tmp_path, f"{security}[daemon]\n{endpoints}"))
        assert result.returncode == 0, (endpoints, result.stderr)


def test_per_regime_rules_are_not_warned_of_while_the_per_regime_lifecycle_is_off(
    tmp_path: Path,
) -> None:
    text = (
        "[lifecycle]\nregime_min_trades = 150\n"
        "[strategies.alpha.regimes.trending]\nmin_trades = 120\n"
    )
    assert check_config(write(tmp_path, text)).stderr == ""
    on = check_config(
        write(tmp_path, text.replace("[lifecycle]\n", "[lifecycle]\nper_regime = true\n"))
    )
    assert len(on.stderr.splitlines()) == 2, on.stderr


def test_the_busy_timeout_warning_is_not_missed_by_rounding(tmp_path: Path) -> None:
    text = "[daemon]\nrequest_timeout_s = 2.007\n[store]\nbusy_timeout_ms = 2007\n"
    assert "busy_timeout_ms 2007 is not below" in check_config(write(tmp_path, text)).stderr


def test_a_request_timeout_or_a_grace_too_short_to_be_met_is_warned_of(tmp_path: Path) -> None:
    # Within their bounds, and each defeats its purpose: every request that waits on a
    # component answered `timeout`; every stop without its final snapshot.
    text = "[daemon]\nrequest_timeout_s = 0.000001\nshutdown_grace_s = 0.000001\n"
    text += "[store]\nbusy_timeout_ms = 0\n"
    said = check_config(write(tmp_path, text)).stderr
    assert "request_timeout_s 1e-06 is below 0.1 s" in said, said
    assert "shutdown_grace_s 1e-06 is below 1 s" in said, said
    at_floor = "[daemon]\nrequest_timeout_s = 0.1\nshutdown_grace_s = 1\n"
    at_floor += "[store]\nbusy_timeout_ms = 50\n"
    assert check_config(write(tmp_path, at_floor)).stderr == ""


def test_a_database_linked_into_the_runtime_directory_is_refused(tmp_path: Path) -> None:
    state, runtime = tmp_path / "state", tmp_path / "run"
    state.mkdir(mode=0o700)
    runtime.mkdir(mode=0o700)
    (state / "alphad.db").symlink_to(runtime / "alphad.db")
    started = subprocess.run(
        [*ALPHAD, "run", "--state-dir", str(state), "--runtime-dir", str(runtime)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (started.returncode, started.stderr) == (
        1,
        f"alphad: database directory {runtime} is the runtime directory too: the "
        "database's directory is alphad's alone and the sockets' is the bots' group's, so "
        "each needs its own\n",
    )


def _largest(kind: Any) -> Any:
    """A value of the msgspec type ``kind`` that takes the most bytes on the wire: the
    longest string its rules allow, of a character beyond the Basic Multilingual Plane
    where the rules take any (four bytes in UTF-8, twelve as a JSON escape of its two
    surrogates), the longest number, every item of a list."""
    if isinstance(kind, msgspec.inspect.UnionType):
        return _largest(next(t for t in kind.types if not isinstance(t, msgspec.inspect.NoneType)))
    if isinstance(kind, msgspec.inspect.StrType):
        if kind.pattern == NAME_PATTERN:
            return "A" * kind.max_length
        assert kind.pattern in (TEXT_PATTERN, None), kind
        return "\U0010ffff" * kind.max_length
    if isinstance(kind, msgspec.inspect.IntType):
        low = -(2**63) if kind.ge is None else kind.ge
        high = 2**64 - 1 if kind.le is None else kind.le
        return max((low, high), key=lambda v: len(str(v)))
    if isinstance(kind, msgspec.inspect.FloatType):
        candidates = [
            sign * 1.2345678901234567 * 10.0**e
            for e in (-300, -99, -9, -1, 2, 14)
            for sign in (-1, 1)
        ]
        allowed = [
            v
            for v in candidates
            if (kind.ge is None or v >= kind.ge) and (kind.le is None or v <= kind.le)
        ]
        return max(allowed, key=lambda v: len(repr(v)))
    if isinstance(kind, msgspec.inspect.LiteralType):
        return max(kind.values, key=lambda v: len(str(v)))
    if isinstance(kind, msgspec.inspect.BoolType):
        return False
    if isinstance(kind, msgspec.inspect.ListType):
        return [_largest(kind.item_type)] * kind.max_length
    raise AssertionError(f"no largest value for {kind}")


def test_every_request_but_a_batch_of_bars_fits_the_smallest_message_size() -> None:
    sizes = {}
    for request in AnyRequest.__args__:
        if request is MarketBars:
            continue
        info = msgspec.inspect.type_info(request)
        document = {"type": info.tag, **{f.name: _largest(f.type) for f in info.fields}}
        built = msgspec.convert(document, request)  # within every bound of the protocol
        # In msgpack, in msgspec's JSON, and in JSON that escapes every character beyond
        # ASCII (Python's json.dumps, compact).
        escaped = json.dumps(msgspec.to_builtins(built), separators=(",", ":")).encode()
        sizes[info.tag] = max(len(encode(built)), len(encode(built, as_json=True)), len(escaped))
    assert len(sizes) == len(AnyRequest.__args__) - 1
    # The largest is an operator's request with a reason of 1 024 such characters.
    assert 12 * 1024 < max(sizes.values()) <= MIN_MESSAGE_SIZE, sizes


@pytest.mark.parametrize(
    ("size", "refused"), [(MIN_MESSAGE_SIZE - 1, True), (MIN_MESSAGE_SIZE, False)]
)
def test_a_message_size_below_the_largest_request_is_refused(
    tmp_path: Path, size: int, refused: bool
) -> None:
    path = write(tmp_path, f"[daemon]\nmax_message_size = {size}\n")
    if not refused:
        assert load_config(path).daemon.max_message_size == size
        return
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert f">= {MIN_MESSAGE_SIZE}" in str(info.value)
    assert "key `daemon.max_message_size`" in str(info.value)
