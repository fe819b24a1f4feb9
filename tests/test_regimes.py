"""Regime detection (actors/regimes*.py): the checks on bars, the bounded window, no
look-ahead in either detector, and their accuracy and delay on bars with known regimes
(actors/regimes_sim.py). Every bar is made here."""

from __future__ import annotations

import dataclasses
import math
import random
from collections import Counter
from statistics import median

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from alphad.actors.market import Readings
from alphad.actors.regimes import REGIMES, Bar, BarsRefused, Reading
from alphad.actors.regimes_book import BarWindow, RegimeBook, Series
from alphad.actors.regimes_hmm import HmmDetector, HmmSettings
from alphad.actors.regimes_rules import RuleDetector, RuleSettings
from alphad.actors.regimes_sim import score, simulate
from bench.markets.corpus import Bar as MarketBar
from bench.markets.strategies import adx, atr
from bench.regimes import chi_square_survival, kruskal_wallis, permutation_p

DAY = 86_400_000
T0 = 1_577_836_800_000
# Small enough to fit often in a short history: the causality of the fitting schedule
# is what is tested, not the fit's quality.
QUICK_HMM = HmmSettings(fit_window=80, min_returns=40, refit_every=15, max_iterations=5)
QUICK_RULES = RuleSettings(vol_window=60, vol_min_values=20)


def bar(i: int, close: float = 100.0, **changes: float) -> Bar:
    base = Bar(T0 + i * DAY, close, close * 1.01, close * 0.99, close)
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def book() -> RegimeBook:
    return RegimeBook(max_bars=50, max_series=2, rules=QUICK_RULES, hmm=QUICK_HMM)


# ----------------------------------------------------------------------------- checks


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"close": math.nan}, "close nan is not a positive finite price"),
        ({"open": math.inf, "high": math.inf}, "open inf is not a positive finite price"),
        ({"low": 0.0}, "low 0.0 is not a positive finite price"),
        ({"low": -1.0}, "low -1.0 is not a positive finite price"),
        ({"high": 98.0}, "high 98.0 is below low 99.0"),
        ({"open": 101.5}, "open 101.5 or close 100.0 is outside low 99.0 – high 101.0"),
        ({"close": 98.5}, "open 100.0 or close 98.5 is outside low 99.0 – high 101.0"),
        ({"ts_ms": T0 + 2 * DAY}, f"time {T0 + 2 * DAY} repeats the previous bar's {T0 + 2 * DAY}"),
        ({"ts_ms": T0 + DAY}, f"time {T0 + DAY} is before the previous bar's {T0 + 2 * DAY}"),
        ({"ts_ms": -5}, "time -5 is not a non-negative integer of milliseconds"),
    ],
)
def test_a_bad_bar_refuses_its_whole_batch_and_nothing_held_is_lost(
    changes: dict[str, float], problem: str
) -> None:
    regimes = book()
    regimes.add_bars("BTC/USDT", "1d", [bar(0), bar(1)])
    before = regimes.bars("BTC/USDT", "1d")
    good, bad = bar(2), dataclasses.replace(bar(3), **changes)  # type: ignore[arg-type]
    if "ts_ms" in changes:
        bad = dataclasses.replace(bar(3), ts_ms=int(changes["ts_ms"]))
    with pytest.raises(BarsRefused) as refused:
        regimes.add_bars("BTC/USDT", "1d", [good, bad])
    assert str(refused.value) == f"BTC/USDT 1d: bar 1 (ts_ms {bad.ts_ms}): {problem}"
    assert regimes.bars("BTC/USDT", "1d") == before  # the good bar 2 was not taken either
    regimes.add_bars("BTC/USDT", "1d", [good])
    assert regimes.bars("BTC/USDT", "1d") == [*before, good]


def test_a_refused_first_batch_creates_no_series() -> None:
    regimes = RegimeBook(max_bars=50, max_series=1, rules=QUICK_RULES, hmm=QUICK_HMM)
    with pytest.raises(BarsRefused, match=r"bar 0 .*high 1\.0 is below low 2\.0"):
        regimes.add_bars("ETH/USDT", "1h", [Bar(T0, 1.5, 1.0, 2.0, 1.5)])
    assert regimes.detected("ETH/USDT", "1h") is None
    regimes.add_bars("SOL/USDT", "1h", [bar(0)])  # the only series slot is still free


def test_the_window_and_the_series_are_bounded() -> None:
    regimes = book()
    for start in range(0, 120, 40):
        regimes.add_bars("A", "1d", [bar(i, 100.0 + i) for i in range(start, start + 40)])
    held = regimes.bars("A", "1d")
    assert len(held) == 50 and held[-1].ts_ms == T0 + 119 * DAY and held[0].ts_ms == T0 + 70 * DAY
    detected = regimes.detected("A", "1d")
    assert detected is not None and detected.bars == 50
    with pytest.raises(BarsRefused, match="51 bars in one batch, at most 50"):
        regimes.add_bars("A", "1d", [bar(i) for i in range(200, 251)])
    with pytest.raises(BarsRefused, match="no bars"):
        regimes.add_bars("A", "1d", [])
    regimes.add_bars("A", "1h", [bar(0)])
    with pytest.raises(BarsRefused, match="already 2 series"):
        regimes.add_bars("B", "1d", [bar(0)])
    with pytest.raises(ValueError, match="max_bars must be above the HMM's min_returns"):
        RegimeBook(max_bars=100)


def test_flat_prices_are_ranging_for_both_detectors() -> None:
    regimes = RegimeBook(max_bars=200, rules=QUICK_RULES, hmm=QUICK_HMM)
    flat = [Bar(T0 + i * DAY, 50.0, 50.0, 50.0, 50.0) for i in range(120)]
    last = regimes.add_bars("X", "1d", flat)[-1]
    assert last.rules == Reading("ranging", 1.0, flat[-1].ts_ms)
    assert last.hmm == Reading("ranging", 1.0, flat[-1].ts_ms)


def test_the_rule_set_reads_the_textbook_adx_and_atr_of_the_markets_bench() -> None:
    bars, _ = simulate(300, 5)
    market = [MarketBar(b.ts_ms, b.open, b.high, b.low, b.close) for b in bars]
    textbook_adx, textbook_atr = adx(market, 14), atr(market, 14)
    rules = RuleDetector()
    for i, b in enumerate(bars):
        rules.update(b)
        for mine, theirs in ((rules.adx, textbook_adx[i]), (rules.atr, textbook_atr[i])):
            assert (mine is None) == (theirs is None), i
            assert mine is None or theirs is None or math.isclose(mine, theirs, rel_tol=1e-9), i
    assert textbook_adx[-1] is not None


# ----------------------------------------------------------------------------- no look-ahead


def feed(bars: list[Bar], chunks: random.Random | None = None) -> list[tuple[Reading | None, ...]]:
    """Every bar's readings (rules, hmm), feeding the book in random batches."""
    regimes = RegimeBook(max_bars=100, rules=QUICK_RULES, hmm=QUICK_HMM)
    out: list[tuple[Reading | None, ...]] = []
    i = 0
    while i < len(bars):
        size = chunks.randint(1, 30) if chunks else 1
        for d in regimes.add_bars("S", "1d", bars[i : i + size]):
            out.append((d.rules, d.hmm))
        i += size
    return out


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2**32), cut=st.integers(45, 239), chunking=st.integers(0, 2**32))
@example(seed=3, cut=45, chunking=1)  # the first fit is at the cut
@example(seed=3, cut=56, chunking=2)  # a refit at the cut
def test_the_readings_at_a_bar_do_not_depend_on_the_bars_after_it(
    seed: int, cut: int, chunking: int
) -> None:
    bars, _ = simulate(240, seed)
    whole = feed(bars)
    other_future, _ = simulate(240, seed + 1)
    shift = bars[cut - 1].close / other_future[cut - 1].close
    future = [
        Bar(
            bars[cut - 1].ts_ms + (i + 1) * DAY,
            b.open * shift,
            b.high * shift,
            b.low * shift,
            b.close * shift,
        )
        for i, b in enumerate(other_future[cut:])
    ]
    prefix = feed(bars[:cut], random.Random(chunking))
    rewritten = feed(bars[:cut] + future, random.Random(chunking + 1))
    assert prefix == whole[:cut]
    assert rewritten[:cut] == whole[:cut]
    assert rewritten[cut:] != whole[cut:]  # the other future did reach the detectors
    assert all(r is not None for r in whole[cut - 1])  # both answered at the cut


def test_every_cut_point_gives_the_reading_the_whole_history_gave() -> None:
    bars, _ = simulate(160, 99)
    rules, hmm = RuleDetector(QUICK_RULES), HmmDetector(QUICK_HMM)
    whole = [(rules.update(b), hmm.update(b)) for b in bars]
    for cut in range(1, len(bars) + 1, 7):
        rules, hmm = RuleDetector(QUICK_RULES), HmmDetector(QUICK_HMM)
        at_cut = [(rules.update(b), hmm.update(b)) for b in bars[:cut]][-1]
        assert at_cut == whole[cut - 1], cut


# ----------------------------------------------------------------------------- accuracy


def first_named(truth: list[str], labels: list[str | None], hold: int) -> list[int | None]:
    """Per switch after warm-up, bars until ``hold`` right labels in a row (None: missed)."""
    out: list[int | None] = []
    switches = [i for i in range(1, len(truth)) if truth[i] != truth[i - 1]]
    for n, start in enumerate(switches):
        if labels[start - 1] is None:
            continue
        end = switches[n + 1] if n + 1 < len(switches) else len(truth)
        delay = None
        run = 0
        for i in range(start, end):
            run = run + 1 if labels[i] == truth[start] else 0
            if run == hold:
                delay = i - hold + 1 - start
                break
        out.append(delay)
    return out


@pytest.mark.parametrize("detector", ["rules", "hmm"])
def test_both_detectors_find_known_regimes_well_above_chance(detector: str) -> None:
    read: list[tuple[str, str]] = []
    delays: list[int | None] = []
    for seed in (11, 12):
        bars, truth = simulate(2000, seed)
        model = RuleDetector() if detector == "rules" else HmmDetector()
        readings = [model.update(b) for b in bars]
        labels = [r.label if r is not None else None for r in readings]
        read += [(t, lab) for t, lab in zip(truth, labels, strict=True) if lab is not None]
        mine = first_named(truth, labels, hold=3)
        report = score(truth, readings, hold=3)
        assert report.delays == [d for d in mine if d is not None]
        assert report.missed == mine.count(None)
        right_here = sum(t == lab for t, lab in zip(truth, labels, strict=True) if lab is not None)
        assert sum(report.confusion[r][r] for r in REGIMES) == right_here
        assert math.isclose(report.accuracy, right_here / report.read)
        delays += mine
    right = sum(t == lab for t, lab in read) / len(read)
    # Chance: always the commonest true regime, or labels drawn at the detector's own
    # frequencies independently of the truth. The bound: 15 points above the better one.
    true_share = {r: c / len(read) for r, c in Counter(t for t, _ in read).items()}
    told_share = {r: c / len(read) for r, c in Counter(lab for _, lab in read).items()}
    agreement = sum(true_share[r] * told_share.get(r, 0.0) for r in true_share)
    chance = max(max(true_share.values()), agreement)
    assert right >= chance + 0.15, (right, chance)
    assert set(told_share) <= set(REGIMES)
    named = [d for d in delays if d is not None]
    assert len(named) >= len(delays) / 2  # most switches are found before the next one
    assert median(named) <= 30


# ----------------------------------------------------------------------------- the bench's tests


def test_kruskal_wallis_gives_the_textbook_h_and_p() -> None:
    # Two groups of three without ties: H = 12 / 42 × (6² / 3 + 15² / 3) − 21 = 27 / 7,
    # and with one degree of freedom p = erfc(√(H / 2)).
    assert math.isclose(
        kruskal_wallis(list("aaabbb"), [1, 2, 3, 4, 5, 6]), math.erfc(math.sqrt(27 / 14))
    )
    # The 5 % critical values of χ² with 1, 2 and 3 degrees of freedom.
    for x, degrees in ((3.841459, 1), (5.991465, 2), (7.814728, 3)):
        assert math.isclose(chi_square_survival(x, degrees), 0.05, rel_tol=1e-5)
    # Ties: ranks 1.5, 1.5, 3, 4.5, 4.5, 6 and a correction of 1 − 12 / 210.
    ranks = {"a": 1.5 + 1.5 + 3.0, "b": 4.5 + 4.5 + 6.0}
    h = (12 / 42 * sum(r * r / 3 for r in ranks.values()) - 21) / (1 - 12 / 210)
    assert math.isclose(
        kruskal_wallis(list("aaabbb"), [1, 1, 2, 3, 3, 4]), math.erfc(math.sqrt(h / 2))
    )
    assert kruskal_wallis(list("aaa"), [1, 2, 3]) is None


def test_the_permutation_test_tells_separated_regimes_from_mixed_ones() -> None:
    draw = random.Random(1)
    labels = ["ranging"] * 30 + ["volatile"] * 30
    apart = [draw.gauss(0, 1) for _ in range(30)] + [draw.gauss(3, 1) for _ in range(30)]
    mixed = [draw.gauss(0, 1) for _ in range(60)]
    assert permutation_p(labels, apart, 199, "x") == 1 / 200  # no relabelling is as far apart
    assert permutation_p(labels, mixed, 199, "x") > 0.05  # type: ignore[operator]
    assert permutation_p(labels, [1.0] * 60, 199, "x") == 1.0
    assert permutation_p(["ranging"] * 60, apart, 199, "x") is None


def test_a_resent_batch_takes_only_the_bars_not_held_and_refuses_a_changed_one() -> None:
    regimes = book()
    regimes.add_bars("BTC/USDT", "1d", [bar(i) for i in range(5)])
    with pytest.raises(BarsRefused, match=r"bar 0 .*repeats the previous bar's"):
        regimes.add_bars("BTC/USDT", "1d", [bar(4), bar(5)])  # not a resend: refused
    taken = regimes.add_bars("BTC/USDT", "1d", [bar(3), bar(4), bar(5)], resent=True)
    assert len(taken) == 1 and regimes.bars("BTC/USDT", "1d") == [bar(i) for i in range(6)]
    assert regimes.add_bars("BTC/USDT", "1d", [bar(4), bar(5)], resent=True) == []
    changed = bar(5, close=100.5)
    with pytest.raises(BarsRefused) as refused:
        regimes.add_bars("BTC/USDT", "1d", [bar(4), changed, bar(6)], resent=True)
    assert str(refused.value) == (
        f"BTC/USDT 1d: bar 1 (ts_ms {changed.ts_ms}): time {changed.ts_ms} repeats the"
        f" previous bar's {changed.ts_ms}, and the bar held for that time differs"
    )
    with pytest.raises(BarsRefused, match=r"bar 1 .*is before the previous bar's \d+$"):
        regimes.add_bars("BTC/USDT", "1d", [bar(4), bar(4), bar(6)], resent=True)
    assert regimes.bars("BTC/USDT", "1d") == [bar(i) for i in range(6)]


def test_a_book_without_the_hmm_runs_the_rules_alone() -> None:
    regimes = RegimeBook(max_bars=50, rules=QUICK_RULES, with_hmm=False)  # below min_returns
    readings = regimes.add_bars("A", "1d", [bar(i, 100.0 + i % 7) for i in range(50)])
    assert all(r.hmm is None for r in readings) and readings[-1].rules is not None
    with pytest.raises(BarsRefused, match=r"volume -1\.0 is not a non-negative finite number"):
        regimes.add_bars("A", "1d", [dataclasses.replace(bar(60), volume=-1.0)])


def test_a_bar_window_gives_back_the_bars_it_took_exactly_and_keeps_the_newest() -> None:
    # Packed columns: every value back bit for bit, the oldest dropped past max_bars.
    draw = random.Random(9)
    bars = [
        Bar(1_700_000_000_000 + i * 60_000, *(draw.uniform(1, 1e6) for _ in range(4)),
            volume=draw.random() * 1e9)
        for i in range(25)
    ]  # fmt: skip
    window = BarWindow(10)
    window.extend(bars[:3])
    assert list(window) == bars[:3] and window[-1] == bars[2] and len(window) == 3
    window.extend(bars[3:])
    assert list(window) == bars[-10:] and len(window) == 10
    assert [window[i] for i in range(-10, 0)] == bars[-10:]
    series = Series(10, RuleSettings(), None)
    for bar in bars:
        series.add(bar)
    assert series.held(bars[-4].ts_ms) == bars[-4]
    assert series.held(bars[0].ts_ms) is None  # dropped
    assert series.held(bars[-1].ts_ms + 1) is None


def test_readings_keep_the_newest_and_find_the_last_one_at_a_time() -> None:
    readings = Readings("1h", 10)
    kept: list[tuple[int, str, float]] = []
    for i in range(37):  # past two compactions of the arrays
        reading = (1_000 + 100 * i, REGIMES[i % len(REGIMES)], i / 37)
        readings.add(*reading)
        kept = [*kept, reading][-10:]
        assert len(readings) == len(kept)
        assert readings.columns() == (
            [c for c, _, _ in kept],
            [REGIMES.index(label) for _, label, _ in kept],
            [x for _, _, x in kept],
        )
        for ts in (kept[0][0] - 1, kept[0][0], kept[-1][0] + 5, kept[len(kept) // 2][0] + 50):
            direct = max((k for k, (c, _, _) in enumerate(kept) if c <= ts), default=None)
            assert readings.at(ts) == direct
            if direct is not None:
                assert readings.label(direct) == kept[direct][1]
        assert readings.label(-1) == kept[-1][1]
