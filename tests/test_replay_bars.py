"""Bars in a replay: read and checked like the signals, fed to the daemon's book at their
close, and the regimes signals and trades count under are the ones the rule set read
from the bars closed by their time (computed here by a plain scan)."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import msgspec
import pytest

from alphad.actors.events import ClosedTrade
from alphad.actors.regimes import Bar
from alphad.actors.regimes_sim import simulate
from alphad.daemon.cli import main
from alphad.daemon.config import Config
from alphad.protocol.messages import ScoreSignal, SignalScore
from alphad.replay.bars import BarFeed, BarRow, read_bars, write_bars
from alphad.replay.runner import Replayer, replay
from alphad.replay.signals import InputError, SignalRow, write_signals
from tests.test_e2e_detected_regimes import closes_and_labels

DAY = 86_400_000


def bar_rows(symbol: str, bars: list[Bar]) -> list[BarRow]:
    return [
        BarRow(
            symbol=symbol,
            bar_size="1d",
            ts_ms=b.ts_ms,
            open=b.open,
            high=b.high,
            low=b.low,
            close=b.close,
            volume=float(k),
        )
        for k, b in enumerate(bars)
    ]


BTC, _ = simulate(320, seed=31)
ETH, _ = simulate(260, seed=32)
BARS = bar_rows("BTC/USDT", BTC) + bar_rows("ETH/USDT", ETH)


# (close time, label) of every reading of a fresh rule set, bar by bar.
READINGS = {"BTC/USDT": closes_and_labels(BTC), "ETH/USDT": closes_and_labels(ETH)}


def expected(symbol: str, ts_ms: int, seen_by: int | None = None, window: int = 1000) -> str | None:
    """The last reading closed by ``ts_ms``, if it is among the last ``window`` readings
    closed by ``seen_by`` (when the book is read: a trade's close)."""
    found = [(c, label) for c, label in READINGS.get(symbol, []) if c <= (seen_by or ts_ms)]
    held = found[-window:]
    before = [label for c, label in held if c <= ts_ms]
    if not before or (len(found) > window and held[0][0] > ts_ms):
        return None
    return before[-1]


def signals(count: int = 240, seed: int = 5, long_every: int = 0) -> list[SignalRow]:
    draw = random.Random(seed)
    start = BTC[0].ts_ms
    rows = []
    for k in range(count):
        ts = start + draw.randrange(0, 330) * DAY + draw.choice([0, 1, DAY // 2, DAY - 1])
        hold = 100 * DAY if long_every and k % long_every == 0 else draw.randrange(1, 6) * DAY
        rows.append(
            SignalRow(
                ts_ms=ts,
                exit_ts_ms=ts + hold,
                strategy=draw.choice(["ema", "rsi"]),
                symbol=draw.choice(["BTC/USDT", "ETH/USDT", "SOL/USDT"]),
                side=draw.choice(["buy", "sell"]),
                confidence=round(draw.uniform(0.5, 1.0), 3),
                confluence=draw.randrange(0, 4),
                regime=draw.choice(["calm", None]),
                pnl=round(draw.gauss(0.1, 1.0), 4),
            )
        )
    return rows


class Recording(Replayer):
    """A replay that notes the regime of every signal it scores and trade it records."""

    def __init__(self, config: Config, bars: list[BarRow]) -> None:
        super().__init__(config, bars=bars)
        self.scored: dict[int, str | None] = {}
        self.recorded: dict[int, str] = {}
        score, record = self.scorer.score, self.performance.record

        def score_and_note(request: ScoreSignal) -> SignalScore:
            self.scored[int(request.signal_id or "")] = request.regime
            return score(request)

        def record_and_note(trade: ClosedTrade) -> None:
            self.recorded[int(trade.trade_id)] = trade.regime
            record(trade)

        self.scorer.score = score_and_note  # type: ignore[method-assign]
        self.performance.record = record_and_note  # type: ignore[method-assign]


def config(source: str, **regimes: int) -> Config:
    return msgspec.convert({"regimes": {"source": source, **regimes}}, Config)


@pytest.mark.parametrize("source", ["detected", "bot_else_detected", "bot"])
def test_signals_and_trades_count_under_the_reading_at_their_time(source: str) -> None:
    rows = signals()
    replayer = Recording(config(source), BARS)
    replayed = replayer.run(rows)
    assert len(replayer.scored) == len(rows) and len(replayer.recorded) > 50

    def wanted(row: SignalRow, seen_by: int | None = None) -> str | None:
        if source == "bot" or (source == "bot_else_detected" and row.regime is not None):
            return row.regime
        return expected(row.symbol, row.ts_ms, seen_by)

    for i, row in enumerate(rows):
        assert replayer.scored[i] == wanted(row), i
    for i, regime in replayer.recorded.items():
        assert regime == (wanted(rows[i], rows[i].exit_ts_ms) or "unknown"), i
    counted = Counter(wanted(row) or "unknown" for row in rows)
    by_regime = replayed.result.by_regime
    assert {r: sides.baseline.trades for r, sides in by_regime.items()} == counted
    found = replayed.detection
    assert found is not None and (found.source, found.series) == (source, 2)
    labels = Counter("none" if r.regime is None and source != "detected" else "bot" for r in rows)
    if source == "bot":
        assert (found.signals_bot, found.signals_none) == (labels["bot"], labels["none"])
    else:
        detected = [wanted(r) for r in rows if source == "detected" or r.regime is None]
        assert found.signals_detected == sum(1 for d in detected if d is not None)
        assert found.signals_no_reading == sum(1 for d in detected if d is None)
    # Every bar closing by the last event is fed; none after it.
    last = max(r.exit_ts_ms for r in rows)
    assert found.bars == sum(1 for b in BARS if b.ts_ms + DAY <= last)
    assert "calm" in replayed.result.by_regime or source == "detected"


def test_a_trade_whose_reading_left_the_window_counts_as_unknown_as_live() -> None:
    rows = signals(count=120, seed=6, long_every=4)
    replayer = Recording(config("detected", max_bars=80, max_batch=80), BARS)
    replayer.run(rows)
    gone = 0
    for i, regime in replayer.recorded.items():
        row = rows[i]
        want = expected(row.symbol, row.ts_ms, row.exit_ts_ms, window=80)
        assert regime == (want or "unknown"), i
        gone += want is None and expected(row.symbol, row.ts_ms) is not None
    assert gone > 5  # the window mattered


def test_the_bots_labels_with_bars_replay_as_without_them() -> None:
    rows = signals(seed=7)
    plain = replay(rows)
    with_bars = replay(rows, bars=BARS)
    assert plain.detection is None and with_bars.detection is not None
    assert msgspec.json.encode(plain.result) == msgspec.json.encode(with_bars.result)


def test_the_detected_source_without_bars_is_refused() -> None:
    with pytest.raises(InputError, match=r"--bars FILE"):
        replay(signals(count=5), config("detected"))
    assert replay(signals(count=5), config("bot_else_detected")).detection is None
    with pytest.raises(InputError, match=r"2 series of bars .* max_series 1"):
        replay(signals(count=5), config("detected", max_series=1), bars=BARS)


def test_bars_round_trip_and_bad_ones_are_reported_by_line(tmp_path: Path) -> None:
    for name in ("bars.csv", "bars.jsonl"):
        assert write_bars(BARS, tmp_path / name) == len(BARS)
        assert read_bars(tmp_path / name) == BARS
    (tmp_path / "no_volume.csv").write_text(
        "symbol,bar_size,ts_ms,open,high,low,close\nBTC/USDT,1h,1000,10,11,9,10.5\n"
    )
    [bar] = read_bars(tmp_path / "no_volume.csv")
    assert bar.volume == 0.0 and bar.bar_size == "1h"
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "symbol,bar_size,ts_ms,open,high,low,close,volume\n"
        "BTC/USDT,1d,1000,10,11,9,10.5,1\n"  # line 2: fine
        "BTC/USDT,1d,2000,10,9,11,10,1\n"  # 3: high below low
        "BTC/USDT,1d,1000,10,11,9,10.5,1\n"  # 4: the bar of line 2 again
        "BTC/USDT,1month,3000,10,11,9,10,1\n"  # 5: not a bar size
        "BTC/USDT,1d,4000,12,11,9,10,1\n"  # 6: open above high
        "BTC/USDT,1d,5000,10,11,9,10,-1\n"  # 7: negative volume
    )
    with pytest.raises(InputError) as caught:
        read_bars(bad)
    message = str(caught.value)
    assert "5 bad rows, nothing replayed" in message
    assert "line 3: high 9.0 is below low 11.0" in message
    assert "line 4: bar of BTC/USDT 1d at ts_ms 1000 already on line 2" in message
    assert "line 5: `bar_size`" in message
    assert "line 6: open 12.0 or close 10.0 is outside low 9.0 – high 11.0" in message
    assert "line 7: `volume`" in message


def test_the_command_line_replays_with_bars(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_signals(signals(), tmp_path / "signals.csv")
    write_bars(BARS, tmp_path / "bars.jsonl")
    (tmp_path / "detected.toml").write_text('[regimes]\nsource = "detected"\n')
    common = [str(tmp_path / "signals.csv"), "--config", str(tmp_path / "detected.toml")]
    assert (
        main(["replay", *common, "--format", "json", "--bars", str(tmp_path / "bars.jsonl")]) == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out["detection"]["source"] == "detected" and "calm" not in out["by_regime"]
    assert list(out)[-1] == "detection"
    assert main(["replay", *common, "--bars", str(tmp_path / "bars.jsonl")]) == 0
    assert "bars: " in capsys.readouterr().out
    assert main(["replay", *common]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--bars FILE" in err


def test_a_bar_feed_feeds_each_bar_at_its_close() -> None:
    feed = BarFeed(BARS[:3], config("bot").regimes, 0)
    assert feed.events(BARS[1].ts_ms + DAY) == [
        (BARS[0].ts_ms + DAY, -1, 0),
        (BARS[1].ts_ms + DAY, -1, 1),
    ]


def test_bars_of_any_date_replay_the_same_way() -> None:
    # The daemon refuses a bar far ahead of its clock; a replay's bars are history, read
    # by their own times: shifted three years past today they replay as before.
    from alphad.replay.simulate import simulate as simulate_signals
    from alphad.replay.simulate import simulate_bars

    year = 365 * 86_400_000
    history = simulate_signals("mixed", 1)
    bars = simulate_bars(history)
    results = []
    for shift in (0, 3 * year):
        rows = [
            msgspec.structs.replace(r, ts_ms=r.ts_ms + shift, exit_ts_ms=r.exit_ts_ms + shift)
            for r in history.rows
        ]
        shifted = [msgspec.structs.replace(b, ts_ms=b.ts_ms + shift) for b in bars]
        replayed = replay(rows, bars=shifted)
        assert replayed.detection is not None
        results.append((replayed.detection.accuracy, replayed.alphad_daily))
    assert results[0] == results[1]
