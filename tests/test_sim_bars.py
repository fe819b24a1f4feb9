"""Simulated bars with known regimes: ``alphad simulate --bars`` writes them from the
scenario's own regime path without changing the signals, and ``alphad replay --bars``
scores the daemon's readings against their true regimes (checked here against counts
made directly, on a made-up sequence and on a fresh rule set over the simulated bars)."""

from __future__ import annotations

import json
import re
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from alphad.actors.regimes import REGIMES, Bar, Reading
from alphad.actors.regimes_hmm import HmmDetector
from alphad.actors.regimes_rules import RuleDetector
from alphad.actors.regimes_sim import pool, score
from alphad.daemon.cli import main
from alphad.replay.bars import Accuracy, BarRow, read_bars, write_bars
from alphad.replay.html import render_html
from alphad.replay.runner import replay
from alphad.replay.signals import InputError
from alphad.replay.simulate import (
    HOUR_MS,
    START_MS,
    Scenario,
    StrategySpec,
    simulate_bars,
    simulate_spec,
)
from tests.test_regimes import first_named

UP, DOWN, RANGE, VOL = REGIMES

SMALL = Scenario(
    "small",
    "two symbols over 20 days",
    (
        StrategySpec("trend", ("BTC/USDT", "ETH/USDT"), 6, 6, 10.0, edge=0.1),
        StrategySpec("carry", ("ETH/USDT",), 4, 8, 5.0),
    ),
    regime_days=2.0,
    days=20,
)


def readings(labels: list[str | None]) -> list[Reading | None]:
    return [None if x is None else Reading(x, 0.5, k) for k, x in enumerate(labels)]


def test_the_pooled_score_is_the_direct_count_of_a_made_up_sequence() -> None:
    truth_a = [UP] * 6 + [RANGE] * 6
    read_a: list[str | None] = [None, None, UP, DOWN, UP, UP, UP, RANGE, RANGE, RANGE, UP, RANGE]
    truth_b = [VOL] * 4 + [DOWN] * 5 + [VOL] * 3
    read_b: list[str | None] = [VOL, VOL, VOL, VOL, VOL, DOWN, DOWN, DOWN, DOWN, VOL, RANGE, VOL]
    found = Accuracy.of(
        pool([score(truth_a, readings(read_a)), score(truth_b, readings(read_b))]), 24
    )
    # By hand: a reads 10 bars, 7 right (UP 3 of 4, RANGE 4 of 6, one UP as DOWN, two
    # RANGE as UP); its switch at 6 is named at 7 (7, 8, 9 ranging): delay 1. b reads 12,
    # 10 right; its switch to DOWN at 4 is named at 5 (delay 1), the one back to VOL at 9
    # never has 3 VOL in a row before the end: missed.
    assert found.read == 22
    assert found.accuracy == pytest.approx(17 / 22)
    assert found.confusion[UP] == {UP: 3, DOWN: 1, RANGE: 0, VOL: 0}
    assert found.confusion[RANGE] == {UP: 2, DOWN: 0, RANGE: 4, VOL: 0}
    assert found.confusion[VOL] == {UP: 0, DOWN: 0, RANGE: 1, VOL: 6}
    assert found.confusion[DOWN] == {UP: 0, DOWN: 4, RANGE: 0, VOL: 1}
    assert (found.switches, found.missed, found.median_delay, found.bars) == (3, 1, 1, 24)
    assert first_named(truth_a, read_a, 3) + first_named(truth_b, read_b, 3) == [1, 1, None]


def test_simulated_bars_follow_the_scenario_s_regime_path() -> None:
    simulation = simulate_spec(SMALL, 5)
    bars = simulate_bars(simulation)
    assert bars == simulate_bars(simulate_spec(SMALL, 5))
    starts = [s for s, _ in simulation.regime_path]
    hours = 20 * 24
    for symbol in ("BTC/USDT", "ETH/USDT"):
        mine = [b for b in bars if b.symbol == symbol]
        assert [b.ts_ms for b in mine] == [START_MS + k * HOUR_MS for k in range(hours)]
        for b in mine:
            regime = simulation.regime_path[bisect_right(starts, b.ts_ms) - 1][1]
            assert b.true_regime == regime or (regime == "trending" and b.true_regime in (UP, DOWN))
    # Both symbols share the market's regimes (a trend's direction too), not their prices.
    btc = [(b.ts_ms, b.true_regime) for b in bars if b.symbol == "BTC/USDT"]
    eth = [(b.ts_ms, b.true_regime) for b in bars if b.symbol == "ETH/USDT"]
    assert btc == eth
    assert [b.close for b in bars[:hours]] != [b.close for b in bars[hours:]]
    # Volatile bars move about three times as much as the others (σ 3 % against 1 %).
    moves: dict[bool, list[float]] = {True: [], False: []}
    for b in bars:
        moves[b.true_regime == VOL].append(abs(b.close / b.open - 1))
    assert len(moves[True]) > 24
    assert sum(moves[True]) / len(moves[True]) > 2 * sum(moves[False]) / len(moves[False])


def test_the_replay_scores_the_rule_set_against_the_true_regimes() -> None:
    simulation = simulate_spec(SMALL, 7)
    bars = simulate_bars(simulation)
    found = replay(simulation.rows, bars=bars).detection
    assert found is not None and found.accuracy is not None
    last = max(max(r.exit_ts_ms, r.ts_ms) for r in simulation.rows)
    fed = [b for b in bars if b.ts_ms + HOUR_MS <= last]
    # Directly: a fresh rule set per symbol over the bars fed, counted here.
    assert_scored_directly(found.accuracy, fed, RuleDetector)
    assert found.accuracy.switches >= 5


def assert_scored_directly(
    acc: Accuracy, fed: Sequence[BarRow], detector: Callable[[], RuleDetector | HmmDetector]
) -> None:
    """``acc`` is what a fresh ``detector()`` per symbol over the bars ``fed`` (in time
    order) gives, counted here bar by bar against their true regimes."""
    confusion: Counter[tuple[str, str]] = Counter()
    delays: list[int | None] = []
    for symbol in sorted({b.symbol for b in fed}):
        mine = sorted((b for b in fed if b.symbol == symbol), key=lambda b: b.ts_ms)
        model = detector()
        labels: list[str | None] = []
        for b in mine:
            reading = model.update(Bar(b.ts_ms, b.open, b.high, b.low, b.close, b.volume))
            labels.append(None if reading is None else reading.label)
        truth = [b.true_regime or "" for b in mine]
        confusion.update((t, x) for t, x in zip(truth, labels, strict=True) if x is not None)
        delays += first_named(truth, labels, 3)
    read = sum(confusion.values())
    right = sum(n for (t, x), n in confusion.items() if t == x)
    named = sorted(d for d in delays if d is not None)
    assert acc.bars == len(fed) and acc.read == read
    assert acc.accuracy == pytest.approx(right / read)
    assert {(t, x): n for t, row in acc.confusion.items() for x, n in row.items() if n} == dict(
        confusion
    )
    assert (acc.switches, acc.missed) == (len(delays), len(delays) - len(named))
    middle = len(named) // 2
    direct = named[middle] if len(named) % 2 else (named[middle - 1] + named[middle]) / 2
    assert acc.median_delay == direct


def test_simulate_writes_bars_and_the_same_signals_and_replay_reports_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plain, with_bars, bars = tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "bars.jsonl"
    assert main(["simulate", "--scenario", "regime", "--seed", "2", "--out", str(plain)]) == 0
    args = ["simulate", "--scenario", "regime", "--seed", "2", "--out", str(with_bars)]
    assert main([*args, "--bars", str(bars)]) == 0
    assert plain.read_bytes() == with_bars.read_bytes()
    assert "4,320 1h bars of 2 symbols" in capsys.readouterr().out
    assert {b.true_regime for b in read_bars(bars)} <= set(REGIMES)
    common = ["replay", str(plain), "--bootstrap", "0", "--bars", str(bars)]
    assert main([*common, "--format", "json"]) == 0
    found = json.loads(capsys.readouterr().out)["detection"]["accuracy"]
    assert found["bars"] == 4320 and 0.3 < found["accuracy"] <= 1
    assert main(common) == 0
    text = capsys.readouterr().out
    assert "DETECTED REGIMES AGAINST THE TRUE ONES" in text
    assert f"accuracy {found['accuracy']:.3f} over {found['read']:,} of 4,320 bars" in text


def test_the_html_report_shows_the_detection_and_its_confusion_matrix() -> None:
    simulation = simulate_spec(SMALL, 7)
    bars = simulate_bars(simulation)
    replayed = replay(simulation.rows, bars=bars)
    found = replayed.detection
    assert found is not None and found.accuracy is not None
    acc = found.accuracy
    page = render_html(replayed, "small.csv")
    start, end = page.index("<h2>Detected regimes</h2>"), page.index("<h2>Baseline and alphad")
    section = page[start:end]
    assert f"bars: {found.bars:,} in 2 series; [regimes] source bot: 0 signals" in section
    signals = len(simulation.rows)
    assert f"{signals:,} under the bot&#x27;s label" in section
    assert f"accuracy {acc.accuracy:.3f} over {acc.read:,} of {acc.bars:,} bars read" in section
    head = re.findall(r"<th>([a-z_]+)</th>", section)
    cells = re.findall(r"<tr><td>([a-z_]+)</td>((?:<td>[\d,]+</td>)+)</tr>", section)
    shown = {
        true: dict(
            zip(head, (int(n.replace(",", "")) for n in re.findall(r"[\d,]+", row)), strict=True)
        )
        for true, row in cells
    }
    assert shown == acc.confusion and set(shown) == set(REGIMES)
    assert sum(sum(row.values()) for row in shown.values()) == acc.read
    assert "counted under ([regimes] source bot)" in page
    plain = render_html(replay(simulation.rows), "small.csv")
    assert "Detected regimes" not in plain and "the regime the bot saw" in plain


def test_bars_without_a_true_regime_report_no_accuracy_and_a_mixed_file_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    simulation = simulate_spec(SMALL, 3)
    bars = simulate_bars(simulation)
    unknown = [BarRow(**{**_fields(b), "true_regime": None}) for b in bars]
    found = replay(simulation.rows, bars=unknown).detection
    assert found is not None and found.accuracy is None
    mixed = tmp_path / "mixed.csv"
    write_bars([*bars[:3], *unknown[3:]], mixed)
    with pytest.raises(InputError, match="line 5: `true_regime` is given on line 2 and empty"):
        read_bars(mixed)


def _fields(bar: BarRow) -> dict[str, object]:
    return {f: getattr(bar, f) for f in bar.__struct_fields__}
