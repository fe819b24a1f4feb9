"""The daemon's book of bars through a snapshot: restored, it reads every time as the
original did and answers every later bar as the original does (actors/market.py)."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from typing import Any

import msgspec
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from alphad.actors.base import encode_in_slices, msgpack_pieces
from alphad.actors.market import MarketRegimes, RegimesConfig, bar_ms
from alphad.actors.regimes import Bar
from alphad.actors.regimes_sim import simulate
from alphad.protocol.messages import BarsTaken, MarketBar, MarketBars

START = 1_700_006_400_000
SERIES = (("BTC/USDT", "1h"), ("BTC/USDT", "4h"), ("ETH/USDT", "1d"))


Moves = list[tuple[int, int]] | tuple[int, int]


def bars_of(moves: Moves, bar_size: str) -> list[Bar]:
    """Simulated daily bars for (count, seed); else bars in cents from (close change,
    half range) moves, where repeats, flat runs and ties come up as often as hypothesis
    draws them."""
    if isinstance(moves, tuple):
        return simulate(moves[0], seed=moves[1])[0] if moves[0] else []
    width, close, out = bar_ms(bar_size), 10_000, []
    for i, (change, spread) in enumerate(moves):
        opened, close = close, max(100, close + change)
        high, low = max(opened, close) + spread, max(50, min(opened, close) - spread)
        ts_ms = START + i * width
        out.append(Bar(ts_ms, opened / 100, high / 100, low / 100, close / 100, float(i % 7)))
    return out


def request(symbol: str, bar_size: str, bars: list[Bar]) -> MarketBars:
    wire = [
        MarketBar(
            ts_ms=b.ts_ms, open=b.open, high=b.high, low=b.low, close=b.close, volume=b.volume
        )
        for b in bars
    ]
    return MarketBars(symbol=symbol, bar_size=bar_size, bars=wire)


def feed(
    market: MarketRegimes, history: dict[tuple[str, str], list[Bar]], rng: random.Random
) -> list[BarsTaken]:
    """Every series' bars in random batches, the series interleaved at random."""
    left = {key: list(bars) for key, bars in history.items() if bars}
    replies = []
    while left:
        key = rng.choice(sorted(left))
        size = rng.randint(1, market.config.max_batch)
        batch, left[key] = left[key][:size], left[key][size:]
        replies.append(market.add(request(*key, batch)))
        if not left[key]:
            del left[key]
    return replies


def through_a_snapshot(market: MarketRegimes, config: RegimesConfig) -> MarketRegimes:
    """What a restart holds: the series as the engine's snapshot encodes them, decoded
    with the daemon's own decoder and restored into a fresh book."""
    pieces = asyncio.run(encode_in_slices(market.state_series(), every=1))
    encoded = b"".join(msgpack_pieces({"scorer": {"market": pieces}}))
    saved = msgspec.msgpack.Decoder(dict[str, Any]).decode(encoded)["scorer"]["market"]
    restored = MarketRegimes(config)
    restored.restore(saved)
    return restored


def readings(market: MarketRegimes) -> dict[tuple[str, str], tuple[Any, ...]]:
    return {
        key: (
            market.book.bars(*key),
            r.columns()[0],
            [r.label(i) for i in range(len(r))],
            r.columns()[2],
            market.book.detected(*key),
        )
        for key, r in market.series.items()
    }


def regimes_at(market: MarketRegimes, times: list[int]) -> list[tuple[str | None, ...]]:
    return [
        tuple(market.at(symbol, ts) for symbol in ("BTC/USDT", "ETH/USDT", "SOL/USDT"))
        for ts in times
    ]


def probe_times(market: MarketRegimes) -> list[int]:
    """Each reading's close, a millisecond either side, and far beyond the last."""
    times = {START - 1, START + 10**12}
    for r in market.series.values():
        for close in r.closes:
            times.update((close - 1, close, close + 1))
    return sorted(times)


moves = st.one_of(
    st.lists(st.tuples(st.integers(-300, 300), st.integers(0, 200)), max_size=260),
    st.tuples(st.integers(0, 400), st.integers(0, 1000)),
)
STEADY = [(25, 40)] * 180  # a long rise: trending readings from bar ~28 on
FLAT = [(0, 0)] * 120  # every volatility value ties: ranging


@settings(max_examples=60, deadline=None)
@given(
    history=st.tuples(moves, moves, moves),
    max_bars=st.integers(2, 150),
    cut=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**32),
)
@example(history=((400, 1), FLAT, []), max_bars=150, cut=0.5, seed=1)
@example(history=(STEADY, (300, 2), (90, 3)), max_bars=60, cut=0.3, seed=5)
@example(history=(STEADY, STEADY[:70], FLAT), max_bars=40, cut=0.9, seed=2)  # windows wrap
@example(history=(FLAT + STEADY, [], [(5, 0)] * 3), max_bars=2, cut=1.0, seed=3)
@example(history=([], [], []), max_bars=10, cut=0.5, seed=4)  # nothing held
def test_a_restored_book_reads_and_goes_on_as_the_original(
    history: tuple[Moves, ...], max_bars: int, cut: float, seed: int
) -> None:
    config = RegimesConfig(max_bars=max_bars, max_batch=min(max_bars, 60), source="detected")
    bars = {key: bars_of(m, key[1]) for key, m in zip(SERIES, history, strict=True)}
    before = {key: b[: round(len(b) * cut)] for key, b in bars.items()}
    after = {key: b[round(len(b) * cut) :] for key, b in bars.items()}
    original = MarketRegimes(config)
    feed(original, before, random.Random(seed))
    restored = through_a_snapshot(original, config)

    assert readings(restored) == readings(original)
    times = probe_times(original)
    assert regimes_at(restored, times) == regimes_at(original, times)
    # Resent after the restart (a lost reply): repeated, not refused, as before it.
    for key, held in before.items():
        if held:
            tail = held[-min(len(held), config.max_batch, max_bars) :]
            assert restored.add(request(*key, tail)) == original.add(request(*key, tail))
    # The bars after the snapshot: every reply and reading as the original's.
    assert feed(restored, after, random.Random(seed)) == feed(original, after, random.Random(seed))
    assert readings(restored) == readings(original)
    # The detector is causal: a fresh book fed the whole history in other batches, with
    # no snapshot, reads the same.
    fresh = MarketRegimes(config)
    feed(fresh, bars, random.Random(seed + 1))
    assert readings(fresh) == readings(original)
    times = probe_times(original)
    assert regimes_at(fresh, times) == regimes_at(original, times)


def test_a_restore_keeps_within_the_configs_caps_the_newest_bars_and_series() -> None:
    bars, _ = simulate(400, seed=5)
    wide = RegimesConfig(max_bars=300, max_series=3, max_batch=100)
    original = MarketRegimes(wide)
    for symbol in ("A", "B", "C"):
        for start in range(0, 400, 100):
            original.add(request(symbol, "1d", bars[start : start + 100]))
    narrow = RegimesConfig(max_bars=120, max_series=2, max_batch=100)
    restored = through_a_snapshot(original, narrow)
    assert list(restored.series) == [("B", "1d"), ("C", "1d")]  # the newest series
    assert restored.bars_restored == 240
    # As a book that always had the narrow window: the same bars, readings and replies.
    always = MarketRegimes(narrow)
    for symbol in ("B", "C"):
        for start in range(0, 400, 100):
            always.add(request(symbol, "1d", bars[start : start + 100]))
    assert readings(restored) == readings(always)
    assert len(restored.book.bars("C", "1d")) == 120
    more, _ = simulate(450, seed=5)
    assert restored.add(request("C", "1d", more[400:])) == always.add(
        request("C", "1d", more[400:])
    )


def test_a_restore_over_fewer_series_keeps_those_fed_last_not_those_held_last() -> None:
    # Of more series than max_series the ones held last were kept: a live series first
    # held long ago was dropped for two left idle, and then refused `limit` for good.
    bars, _ = simulate(300, seed=7)
    original = MarketRegimes(RegimesConfig(max_bars=300, max_series=3, max_batch=100))
    original.add(request("LIVE", "1d", bars[:100]))
    original.add(request("OLD1", "1d", bars[:100]))
    original.add(request("OLD2", "1d", bars[:100]))
    original.add(request("OLD2", "1d", bars[100:150]))
    original.add(request("LIVE", "1d", bars[100:200]))
    narrow = RegimesConfig(max_bars=300, max_series=2, max_batch=100)
    restored = through_a_snapshot(original, narrow)
    assert list(restored.series) == [("LIVE", "1d"), ("OLD2", "1d")]  # saved order
    assert restored.add(request("LIVE", "1d", bars[200:260])) == original.add(
        request("LIVE", "1d", bars[200:260])
    )
    # Behind in bars of its own size: a daily series fed until the stop, whose last bar
    # closed before the last bar of a minute series since left idle, is the one kept.
    book = MarketRegimes(RegimesConfig(max_bars=300, max_series=3, max_batch=100))
    days = bars_of([(25, 40)] * 100, "1d")
    minutes = bars_of([(1, 2)] * 100, "1m")
    offset = days[-1].ts_ms + 86_400_000 + 2 * 3_600_000  # 2 h after the last day closed
    shifted = [
        dataclasses.replace(b, ts_ms=b.ts_ms - minutes[0].ts_ms + offset) for b in minutes
    ]
    book.add(request("LIVE", "1d", days))
    book.add(request("IDLE", "1m", shifted[:50]))
    book.add(request("BUSY", "1m", shifted))
    kept = through_a_snapshot(book, RegimesConfig(max_bars=300, max_series=2, max_batch=100))
    assert list(kept.series) == [("LIVE", "1d"), ("BUSY", "1m")]


def test_two_bar_sizes_as_long_are_chosen_by_name_not_by_which_came_first() -> None:
    # 60m and 1h are as long: the one held first was read, so a replay's answers hung on
    # the order of its bars file's rows, and a live daemon's on which feeder came first.
    rises = bars_of([(25, 40)] * 120, "1h")  # trending readings
    flat = bars_of([(0, 0)] * 120, "60m")  # ranging readings
    answers = []
    for order in (("60m", "1h"), ("1h", "60m")):
        market = MarketRegimes(RegimesConfig(max_bars=200, max_batch=120))
        for size in order:
            market.add(request("BTC/USDT", size, flat if size == "60m" else rises))
        answers.append([market.at("BTC/USDT", b.ts_ms + 3_600_000) for b in rises])
    assert answers[0] == answers[1]
    assert "trending" in {str(a).split("_")[0] for a in answers[0]}  # the 1h series'


def saved_state() -> list:
    market = MarketRegimes(RegimesConfig())
    bars, _ = simulate(120, seed=6)
    market.add(request("A", "1d", bars[:100]))
    market.add(request("B", "1h", bars[:80]))
    return msgspec.msgpack.decode(msgspec.msgpack.encode(list(market.state_series())))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda s: s[1][4].pop(), "columns differ in length"),
        (lambda s: s[1][2].reverse(), r"B 1h: bar 1: time .* is before the previous bar's"),
        (lambda s: s[1][7].__setitem__(3, -1.0), "volume -1.0 is not a non-negative"),
        (lambda s: s[1][9].append(2), "the readings do not fit the bars"),
        (lambda s: s[1][9].__setitem__(0, 4), r"Expected `int` <= 3"),
        (lambda s: s[1][11]["shares"].extend([0.1] * 501), "B 1h: rule set"),
        (lambda s: s.append(s[0]), "a series is saved twice"),
        (lambda s: s[0].pop(), "Expected `array` of at least length 12"),
    ],
)
def test_a_damaged_state_is_refused_whole(damage, message: str) -> None:  # type: ignore[no-untyped-def]
    state = saved_state()
    damage(state)
    market = MarketRegimes(RegimesConfig())
    with pytest.raises(ValueError, match=message):
        market.restore(state)
    assert market.series == {} and market.symbols == {}  # none of it was taken
    market.restore(saved_state())
    with pytest.raises(ValueError, match="already holds bars"):
        market.restore(saved_state())
