"""The input of ``alphad replay``: one signal per row that became a trade at base size
(docs/replay.md), as CSV or JSON lines, validated by the protocol's own rules."""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import re
import stat
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Generic, TypeVar

import msgspec

from alphad.protocol.codec import repeated_keys
from alphad.protocol.messages import (
    Amount,
    Confidence,
    Confluence,
    Identifier,
    Name,
    Side,
    TimestampMs,
)

SHOWN_PROBLEMS = 5
LAST_TS_MS = 253_402_300_799_999
"""9999-12-31 23:59:59.999 UTC, the last event time a calendar day can be named for: a
later one is most likely in microseconds, and no report could print its day."""


class InputError(Exception):
    """The input cannot be replayed (or an output not written); one line for the user."""


class SignalRow(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One signal that became a trade at base size, validated by the protocol's rules."""

    ts_ms: TimestampMs  # signal time
    exit_ts_ms: TimestampMs  # when the trade closed
    strategy: Name
    symbol: Name
    side: Side
    confidence: Confidence
    confluence: Confluence
    regime: Name | None = None
    pnl: Amount  # net pnl of the trade at size 1.0
    signal_id: Identifier | None = None


COLUMNS: tuple[str, ...] = SignalRow.__struct_fields__
OPTIONAL_COLUMNS = ("regime", "signal_id")
REQUIRED_COLUMNS = tuple(c for c in COLUMNS if c not in OPTIONAL_COLUMNS)

Row = TypeVar("Row", bound=msgspec.Struct)


@dataclass(frozen=True)
class Table(Generic[Row]):
    """A kind of input file: its rows' struct, the columns that may be empty, what the
    rows are called in messages, and the check of a row beyond its fields' own rules
    (given the row, its line and a dict the check keeps across rows; "" if fine)."""

    kind: type[Row]
    optional: tuple[str, ...]
    noun: str
    check: Callable[[Row, int, dict[Any, int]], str]

    @property
    def columns(self) -> tuple[str, ...]:
        return self.kind.__struct_fields__

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(c for c in self.columns if c not in self.optional)


_row_encoder = msgspec.json.Encoder()
_any_json = msgspec.json.Decoder()
_AT_FIELD = re.compile(r"^(?P<text>.*?)(?: - at `\$\.(?P<field>\w+)`)?$")
_MISSING = re.compile(r"^Object missing required field `(?P<field>\w+)`")
_UNKNOWN = re.compile(r"^Object contains unknown field `(?P<field>[^`]*)`")


def file_format(path: Path) -> str:
    """``csv`` or ``jsonl``, from the file's extension."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    raise InputError(f"{path}: unknown file type {suffix or '(none)'!r}; use .csv or .jsonl")


class _Problems:
    """Bad rows, each with its line number; the first few are kept for the message."""

    def __init__(self) -> None:
        self.count = 0
        self.shown: list[str] = []

    def add(self, line: int, message: str) -> None:
        self.count += 1
        if len(self.shown) < SHOWN_PROBLEMS:
            self.shown.append(f"line {line}: {message}")

    def raise_if_any(self, path: Path) -> None:
        if not self.count:
            return
        more = self.count - len(self.shown)
        tail = f"; and {more} more" if more else ""
        rows = "row" if self.count == 1 else "rows"
        raise InputError(
            f"{path}: {self.count} bad {rows}, nothing replayed: {'; '.join(self.shown)}{tail}"
        )


def after_last_day(name: str, ts_ms: int) -> str:
    """Why an event time past ``LAST_TS_MS`` is refused; "" for one before it."""
    if ts_ms <= LAST_TS_MS:
        return ""
    return f"`{name}` {ts_ms} is after the year 9999: are the timestamps in milliseconds?"


def _check_signal(row: SignalRow, line: int, seen: dict[Any, int]) -> str:
    late = after_last_day("ts_ms", row.ts_ms) or after_last_day("exit_ts_ms", row.exit_ts_ms)
    if late:
        return late
    if row.exit_ts_ms < row.ts_ms:
        return f"exit_ts_ms {row.exit_ts_ms} is before ts_ms {row.ts_ms}"
    if row.signal_id is not None:
        first = seen.setdefault(row.signal_id, line)
        if first != line:
            return f"signal_id {row.signal_id!r} already on line {first}"
    return ""


SIGNALS = Table(SignalRow, OPTIONAL_COLUMNS, "signals", _check_signal)


def read_signals(path: str | Path) -> list[SignalRow]:
    """Every row of a CSV or JSON-lines file, validated; raises ``InputError`` listing the
    first bad rows by line number (a file with any bad row is refused as a whole)."""
    return read_table(path, SIGNALS)


def read_table(path: str | Path, table: Table[Row]) -> list[Row]:
    """Every row of a CSV or JSON-lines file of ``table``'s kind, validated (as
    ``read_signals``)."""
    file = Path(path)
    kind = file_format(file)
    try:
        # utf-8-sig: a byte order mark (as some spreadsheets write) is not part of the
        # first column's name.
        handle = file.open(encoding="utf-8-sig", newline="")
    except FileNotFoundError:
        raise InputError(f"{file}: no such file") from None
    except OSError as exc:
        raise InputError(f"{file}: cannot read ({exc.strerror})") from None
    problems = _Problems()
    try:
        with handle:
            if kind == "csv":
                rows = _read_csv(file, handle, table, problems)
            else:
                rows = _read_jsonl(handle, table, problems)
    except UnicodeDecodeError:
        raise InputError(f"{file}: {_where_not_utf8(file)}not UTF-8 text") from None
    except csv.Error as exc:
        raise InputError(f"{file}: not valid CSV ({exc})") from None
    problems.raise_if_any(file)
    if not rows:
        raise InputError(f"{file}: no {table.noun}")
    return rows


def _where_not_utf8(file: Path) -> str:
    """"line N: " of the file's first byte that is not UTF-8 (a reader's error says only
    that one is somewhere); "" if the file cannot be read again."""
    try:
        if not stat.S_ISREG(os.stat(file).st_mode):
            return ""  # a pipe: read once already, and opening it again would wait
        data = file.read_bytes()
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        return f"line {line}: "
    except (OSError, MemoryError):
        pass
    return ""


def _quote_left_open(lines: list[str]) -> bool:
    """Whether a row's lines end inside a quoted field: a quote left open in the last row
    runs into the end of the file, not over lines, and csv reads what follows it as the
    field. Only a row whose quotes are odd can (a quote inside a quoted field is written
    twice); a quote inside a field that is not quoted (``s"1``) is the field's own."""
    if sum(text.count('"') for text in lines) % 2 == 0:
        return False
    try:
        for _ in csv.reader(lines, strict=True):
            pass
    except csv.Error as exc:
        return "unexpected end of data" in str(exc)
    return False


def _read_csv(file: Path, handle: IO[str], table: Table[Row], problems: _Problems) -> list[Row]:
    read: list[str] = []  # the lines of the row last read

    def lines() -> Iterator[str]:
        for text in handle:
            read.append(text)
            yield text

    reader = csv.reader(lines())
    header = next(reader, None)
    columns = table.columns
    if header is None:
        raise InputError(f"{file}: empty file (expected a header: {','.join(columns)})")
    names = [name.strip() for name in header]
    unknown = [n for n in names if n not in columns]
    missing = [c for c in table.required if c not in names]
    twice = sorted({n for n in names if names.count(n) > 1})
    if unknown or missing or twice:
        said = [f"unknown column `{n}`" for n in unknown]
        said += [f"missing column `{n}`" for n in missing]
        said += [f"column `{n}` twice" for n in twice]
        raise InputError(f"{file}: line 1: {', '.join(said)}; columns are {','.join(columns)}")
    rows: list[Row] = []
    seen: dict[Any, int] = {}
    last = reader.line_num
    read.clear()
    for values in reader:
        first, line = last + 1, reader.line_num
        last = line
        unclosed = _quote_left_open(read)
        read.clear()
        if line > first:
            # A quote left open takes the next lines into its field, where they would
            # pass unseen as one row: a row is one line.
            problems.add(first, f"a field runs over lines {first} – {line} (a quote not closed?)")
            continue
        if unclosed:
            problems.add(first, "a quote is not closed (it runs to the end of the file)")
            continue
        if not values or values == [""]:
            continue
        if len(values) != len(names):
            problems.add(line, f"{len(values)} fields where the header has {len(names)}")
            continue
        record: dict[str, str] = {}
        empty = None
        for name, value in zip(names, values, strict=True):
            if value == "":
                if name not in table.optional:
                    empty = name
                continue
            record[name] = value
        if empty is not None:
            problems.add(line, f"`{empty}` is empty")
            continue
        _take(record, line, False, table, rows, seen, problems)
    return rows


def _read_jsonl(handle: IO[str], table: Table[Row], problems: _Problems) -> list[Row]:
    rows: list[Row] = []
    seen: dict[Any, int] = {}
    for line, text in enumerate(handle, start=1):
        if not text.strip():
            continue
        try:
            record = _any_json.decode(text)
        except msgspec.DecodeError as exc:
            problems.add(line, f"not JSON ({exc})")
            continue
        except RecursionError:
            problems.add(line, "not a row: JSON nested too deeply")
            continue
        if not isinstance(record, dict):
            problems.add(line, "not a JSON object")
            continue
        if len(_KEY.findall(text)) > len(record):  # a key given twice, or a colon in a string
            twice = _repeated_key(text)
            if twice is not None:
                problems.add(line, f"key `{twice}` twice")
                continue
        for name in table.optional:
            # An empty regime means "no regime", as an empty CSV cell does.
            if record.get(name) == "":
                del record[name]
        _take(record, line, True, table, rows, seen, problems)
    return rows


_KEY = re.compile(r'"\s*:')


def _repeated_key(text: str) -> str | None:
    """The first key an object of the JSON ``text`` gives twice, or None. A decoder keeps
    the last one only, so a row whose ``pnl`` is given twice would count the second."""
    repeated: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        repeated.extend(repeated_keys(items))
        return dict(items)

    with contextlib.suppress(ValueError, RecursionError):  # what msgspec read, nested deeper
        json.loads(text, object_pairs_hook=pairs)
    return repeated[0] if repeated else None


def _take(
    record: dict[str, Any],
    line: int,
    strict: bool,
    table: Table[Row],
    rows: list[Row],
    seen: dict[Any, int],
    problems: _Problems,
) -> None:
    """Validate one record and keep it, or report why not."""
    try:
        # CSV cells are text: strict=False lets msgspec parse "0.75" and "3" by the field's
        # type, with the same bounds as the wire.
        row = msgspec.convert(record, table.kind, strict=strict)
    except msgspec.ValidationError as exc:
        problems.add(line, _not_finite(record, str(exc)) or _describe(str(exc)))
        return
    problem = table.check(row, line, seen)
    if problem:
        problems.add(line, problem)
        return
    rows.append(row)


def _not_finite(record: dict[str, Any], error: str) -> str | None:
    """"`pnl`: nan is not a number" where the field refused holds NaN or an infinity,
    which msgspec's bound alone ("expected `float` >= -1e15") would misname; else None."""
    if "`float`" not in error and "`int`" not in error:
        return None  # not a number's field (a side of "nan" is not one of the sides)
    match = _AT_FIELD.match(error)
    field = match.group("field") if match else None
    value = record.get(field) if field else None
    if isinstance(value, bool) or not isinstance(value, (str, float)):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    if math.isnan(number):
        return f"`{field}`: {value} is not a number"
    if math.isinf(number):
        return f"`{field}`: {value} is not a finite number"
    return None


def _describe(error: str) -> str:
    """msgspec's message, naming the column first."""
    missing = _MISSING.match(error)
    if missing:
        return f"`{missing.group('field')}` is missing"
    unknown = _UNKNOWN.match(error)
    if unknown:
        return f"unknown field `{unknown.group('field')}`"
    match = _AT_FIELD.match(error)
    if match and match.group("field"):
        text = match.group("text")
        return f"`{match.group('field')}`: {text[:1].lower()}{text[1:]}"
    return error


def write_signals(rows: Iterable[SignalRow], path: str | Path) -> int:
    """Write rows as CSV or JSON lines (by extension); returns how many. Floats are
    written in their shortest exact form, so reading the file back gives equal rows."""
    return write_table(rows, path, SIGNALS)


def write_table(rows: Iterable[Row], path: str | Path, table: Table[Row]) -> int:
    """Write rows of ``table``'s kind as ``write_signals`` does."""
    return write_tables([(rows, path, table)])[0]


def write_tables(files: Sequence[tuple[Iterable[Any], str | Path, Table[Any]]]) -> list[int]:
    """Write each (rows, path, table) as ``write_table`` does, all or none: each regular
    file is written beside itself first and renamed into place only once every one is
    written, so that one that cannot be written replaces none of the others (a rename
    that fails after others were done is the one way left to replace some)."""
    staged = [_Staged(path) for _, path, _ in files]
    try:
        counts = [
            stage.write(rows, table) for stage, (rows, _, table) in zip(staged, files, strict=True)
        ]
        for stage in staged:
            stage.commit()
        return counts
    finally:
        for stage in staged:
            stage.discard()


def write_whole(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` as ``write_tables`` writes a table: a regular file beside
    itself, renamed into place once whole (a report, a page); ``InputError`` when it
    cannot be written, with the old file, if any, left as it was."""
    stage = _Staged(path)
    try:
        stage.write_text(text)
        stage.commit()
    finally:
        stage.discard()


class _Staged:
    """One file of ``write_tables`` (or ``write_whole``). A regular file is written beside
    itself and renamed into place, so that an interrupted write leaves the old file or
    none, never half a history that a later replay would take for a whole one; the new
    file keeps the old one's permission bits (a private report stays private). A device
    or a pipe, and an existing file in a folder the user may not write to, are written
    to directly."""

    def __init__(self, path: str | Path) -> None:
        self.file = file = Path(path)
        self.real = _resolved(file)  # through a symbolic link, to the file it names
        self.in_place = file.exists() and (
            not file.is_file() or not os.access(self.real.parent, os.W_OK | os.X_OK)
        )
        partial = f".{self.real.name}.{os.getpid()}.partial"
        self.target = file if self.in_place else self.real.with_name(partial)
        self.written = False

    def write(self, rows: Iterable[Any], table: Table[Any]) -> int:
        count = 0
        kind = file_format(self.file)
        try:
            with self.target.open("w", encoding="utf-8", newline="") as out:
                self.written = True
                if kind == "csv":
                    writer = csv.writer(out, lineterminator="\n")
                    writer.writerow(table.columns)
                    for row in rows:
                        writer.writerow([_cell(v) for v in msgspec.structs.astuple(row)])
                        count += 1
                else:
                    for row in rows:
                        out.write(_row_encoder.encode(row).decode())
                        out.write("\n")
                        count += 1
        except OSError as exc:
            raise InputError(f"{self.file}: cannot write ({exc.strerror})") from None
        return count

    def write_text(self, text: str) -> None:
        try:
            with self.target.open("w", encoding="utf-8") as out:
                self.written = True
                out.write(text)
        except OSError as exc:
            raise InputError(f"{self.file}: cannot write ({exc.strerror})") from None

    def commit(self) -> None:
        if self.in_place:
            return
        try:
            with contextlib.suppress(FileNotFoundError):  # a new file: the umask's mode
                os.chmod(self.target, stat.S_IMODE(self.real.stat().st_mode))
            os.replace(self.target, self.real)
        except OSError as exc:
            raise InputError(f"{self.file}: cannot write ({exc.strerror})") from None
        self.written = False

    def discard(self) -> None:
        if self.written and not self.in_place:
            with contextlib.suppress(OSError):
                self.target.unlink()


def _resolved(file: Path) -> Path:
    """``file`` through its symbolic links; a loop of them is a one-line error."""
    try:
        return file.resolve()
    except (OSError, RuntimeError):  # RuntimeError: a loop, before Python 3.13
        raise InputError(f"{file}: cannot write (Too many levels of symbolic links)") from None


def check_output(path: str | Path) -> None:
    """Refuse, before anything is written, a path that ``write_table`` could not write:
    an unknown extension, a directory, or a folder that is missing or not writable (so
    that a command refused for one of its files replaces none of the others)."""
    file_format(Path(path))
    check_writable(path)


def check_writable(path: str | Path) -> None:
    """Refuse, before the work that makes it, a file ``write_whole`` could not write: a
    directory, or a folder that is missing or not writable."""
    file = Path(path)
    real = _resolved(file)
    if file.is_dir():
        raise InputError(f"{file}: cannot write (Is a directory)")
    if file.exists() and not file.is_file():
        return  # a device or a pipe, written to directly
    folder = file.parent  # as given: "gone/../x.csv" names no file
    if not folder.is_dir():
        raise InputError(f"{file}: cannot write (No such file or directory)")
    if not os.access(real.parent, os.W_OK | os.X_OK) and not (
        file.exists() and os.access(real, os.W_OK)  # then written in place
    ):
        raise InputError(f"{file}: cannot write (Permission denied)")


def same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one file (the same path, or one file by two names)."""
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and a.samefile(b))
    except (OSError, RuntimeError):  # RuntimeError: a loop of symbolic links
        return False


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)
