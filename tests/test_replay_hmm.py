"""``alphad replay --bars FILE --hmm``: the hidden Markov model scored against the bars'
true regimes beside the rule set, in the text, JSON and HTML outputs, checked against a
fresh model run over the same bars and counted here; the signals still count under the
rule set, so nothing else of the replay moves."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from alphad.actors.market import RegimesConfig
from alphad.actors.regimes import REGIMES
from alphad.actors.regimes_hmm import HmmDetector
from alphad.daemon.cli import main
from alphad.daemon.config import Config
from alphad.replay.bars import BarRow, write_bars
from alphad.replay.html import render_html
from alphad.replay.runner import replay
from alphad.replay.signals import InputError, write_signals
from alphad.replay.simulate import HOUR_MS, simulate_bars, simulate_spec
from tests.test_sim_bars import SMALL, assert_scored_directly

ROOT = Path(__file__).parent.parent


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("small")
    simulation = simulate_spec(SMALL, 7)
    signals, bars = directory / "small.csv", directory / "small-bars.csv"
    write_signals(simulation.rows, signals)
    write_bars(simulate_bars(simulation), bars)
    return signals, bars


def test_the_hmm_is_scored_on_the_bars_fed_and_counts_no_signal() -> None:
    simulation = simulate_spec(SMALL, 7)
    bars = simulate_bars(simulation)
    both = replay(simulation.rows, bars=bars, hmm=True)
    rules_only = replay(simulation.rows, bars=bars)
    found = both.detection
    assert found is not None and found.hmm_accuracy is not None
    assert rules_only.detection is not None and rules_only.detection.hmm_accuracy is None
    # The signals count under the rule set as before: every figure but the new one holds.
    assert msgspec.to_builtins(both.result) == msgspec.to_builtins(rules_only.result)
    assert found.accuracy == rules_only.detection.accuracy
    # Directly: a fresh model per symbol over the bars fed (those closing by the last
    # event), in time order, counted here; it reads from each series' 101st bar on.
    last = max(max(r.exit_ts_ms, r.ts_ms) for r in simulation.rows)
    fed = [b for b in bars if b.ts_ms + HOUR_MS <= last]
    assert_scored_directly(found.hmm_accuracy, fed, HmmDetector)
    assert found.hmm_accuracy.read == len(fed) - 2 * 100
    # Not the rule set's figures under another name.
    assert found.hmm_accuracy.confusion != found.accuracy.confusion


def test_the_hmm_s_window_is_the_book_s_max_bars() -> None:
    simulation = simulate_spec(SMALL, 7)
    bars = simulate_bars(simulation)
    config = Config(regimes=RegimesConfig(max_bars=150, max_batch=150))
    narrow = replay(simulation.rows, config, bars=bars, hmm=True).detection
    wide = replay(simulation.rows, bars=bars, hmm=True).detection
    assert narrow is not None and wide is not None
    assert narrow.hmm_accuracy is not None and wide.hmm_accuracy is not None
    # Fits on the last 149 returns, not 500: other readings once a series passes 150 bars.
    assert narrow.hmm_accuracy.confusion != wide.hmm_accuracy.confusion


def test_json_text_and_html_show_both_detectors_side_by_side(
    simulated: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    signals, bars = simulated
    common = ["replay", str(signals), "--bars", str(bars), "--bootstrap", "0"]
    assert main([*common, "--format", "json", "--hmm"]) == 0
    detection = json.loads(capsys.readouterr().out)["detection"]
    assert list(detection)[-2:] == ["accuracy", "hmm_accuracy"]
    rules, hmm = detection["accuracy"], detection["hmm_accuracy"]
    simulation = simulate_spec(SMALL, 7)
    expected = replay(simulation.rows, bars=simulate_bars(simulation), hmm=True)
    assert expected.detection is not None and expected.detection.hmm_accuracy is not None
    assert hmm == msgspec.to_builtins(expected.detection.hmm_accuracy)
    assert main([*common, "--format", "json"]) == 0
    assert "hmm_accuracy" not in json.loads(capsys.readouterr().out)["detection"]

    page = tmp_path / "small.html"
    assert main([*common, "--hmm", "--report", str(page)]) == 0
    text = capsys.readouterr().out
    for name, acc in (("rule set", rules), ("hidden Markov model", hmm)):
        delay = "-" if acc["median_delay"] is None else f"{acc['median_delay']:g}"
        row = [f"{acc['bars']:,}", f"{acc['read']:,}", f"{acc['accuracy']:.3f}"]
        row += [f"{acc['switches']:,}", f"{acc['missed']:,}", delay]
        assert re.search(rf"^{name}\s+" + r"\s+".join(map(re.escape, row)) + "$", text, re.M)
    section = text[text.index("HIDDEN MARKOV MODEL") : text.index("ALL STRATEGIES")]
    for true in REGIMES:
        counts = [str(hmm["confusion"][true][x]) for x in REGIMES]
        assert re.search(rf"^{true}\s+" + r"\s+".join(counts) + "$", section, re.M), true

    html = page.read_text()
    start, end = html.index("<h2>Detected regimes</h2>"), html.index("<h2>Baseline and alphad")
    shown = html[start:end]
    line = (
        f"accuracy {hmm['accuracy']:.3f} over {hmm['read']:,} of {hmm['bars']:,} bars read; "
        f"{hmm['switches']:,} switches, {hmm['missed']:,} missed"
    )
    assert "By the hidden Markov model, run offline over the same bars" in shown
    assert line in shown
    assert shown.count('<th class="text">true</th>') == 2
    tables = re.findall(r"<table>.*?</table>", shown)
    cells = re.findall(r"<tr><td>([a-z_]+)</td>((?:<td>[\d,]+</td>)+)</tr>", tables[1])
    assert {t: [int(n.replace(",", "")) for n in re.findall(r"[\d,]+", r)] for t, r in cells} == {
        t: [hmm["confusion"][t][x] for x in REGIMES] for t in REGIMES
    }
    assert render_html(expected, "small.csv").count("hidden Markov model") == 1


@pytest.mark.parametrize("with_bars", [False, True])
def test_hmm_without_true_regimes_is_one_line_and_exit_1(
    simulated: tuple[Path, Path], tmp_path: Path, with_bars: bool
) -> None:
    signals = simulated[0]
    args = ["replay", str(signals), "--hmm", "--bootstrap", "0"]
    if with_bars:
        plain = tmp_path / "no-truth.csv"
        rows = [
            BarRow(**{**{f: getattr(b, f) for f in b.__struct_fields__}, "true_regime": None})
            for b in simulate_bars(simulate_spec(SMALL, 7))
        ]
        write_bars(rows, plain)
        args += ["--bars", str(plain)]
    result = subprocess.run(
        [sys.executable, "-m", "alphad.daemon.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        "alphad: --hmm scores the hidden Markov model against the bars' true regimes: give"
        " bars that carry them (--bars FILE with `true_regime`, as alphad simulate --bars"
        " writes it)\n"
    )
    with pytest.raises(InputError, match="--hmm scores the hidden Markov model"):
        replay(simulate_spec(SMALL, 7).rows, hmm=True)
