"""``alphad replay``: a history of signals through the daemon's own models, offline.

Each row of the input is a signal that became a trade at base size, with the trade's
pnl (docs/replay.md). The replay runs the rows in event time through the same model
classes as the daemon: at ``ts_ms`` the scorer scores the signal with the state of that
moment; at ``exit_ts_ms`` an executed trade closes at ``pnl × size_multiplier``, is
recorded in the performance model and teaches the scorer its outcome; every
``[engine] update_interval_s`` of event time an optimization cycle runs exactly as the
live engine's. The baseline executes every signal at size 1.0. Nothing reads the wall
clock and every tie is broken by the row's position, so the same input and config give
byte-identical output.
"""

from __future__ import annotations

import argparse
import csv
import math
import re
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import accumulate
from pathlib import Path
from typing import IO, Any

import msgspec

from actors.events import UNKNOWN_REGIME, ClosedTrade
from actors.figures import Figures
from actors.lifecycle import LifecycleModel
from actors.performance import PerformanceModel, figures_of
from actors.scorer import EXECUTABLE, ScorerModel
from actors.weighting import INACTIVE, WeightingActor, WeightingModel
from daemon.admission import Admission
from daemon.bootstrap import RESAMPLES, Luck, bootstrap, daily_sharpe
from daemon.config import Config, load_config
from daemon.report import _format_table
from protocol.errors import AlphadError
from protocol.messages import (
    Amount,
    Confidence,
    Confluence,
    Identifier,
    Name,
    ScoreSignal,
    Side,
    TimestampMs,
)

DAY_MS = 86_400_000
# A config with cycles only on request still needs cycles in a replay: hourly, as the
# default of the live daemon.
FALLBACK_INTERVAL_S = 3600.0
# Far more than any real history needs (a year of one-minute cycles is 525 600), and a
# clear error instead of an endless run for a file whose timestamps are off by 1000×.
MAX_CYCLES = 2_000_000
SHOWN_PROBLEMS = 5

# Event kinds, in the order they run at the same millisecond: a trade closing then is
# known to the cycle of that instant, and the cycle's allocation scores the signals of
# that instant. A trade that closes at the very millisecond of its own signal closes
# after it.
CLOSE, CYCLE, SIGNAL, CLOSE_AT_SIGNAL = 0, 1, 2, 3


class InputError(Exception):
    """The input cannot be replayed (or an output not written); one line for the user."""


# ----------------------------------------------------------------------------- the format


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


def read_signals(path: str | Path) -> list[SignalRow]:
    """Every row of a CSV or JSON-lines file, validated; raises ``InputError`` listing the
    first bad rows by line number (a file with any bad row is refused as a whole)."""
    file = Path(path)
    kind = file_format(file)
    try:
        handle = file.open(encoding="utf-8", newline="")
    except FileNotFoundError:
        raise InputError(f"{file}: no such file") from None
    except OSError as exc:
        raise InputError(f"{file}: cannot read ({exc.strerror})") from None
    problems = _Problems()
    try:
        with handle:
            if kind == "csv":
                rows = _read_csv(file, handle, problems)
            else:
                rows = _read_jsonl(handle, problems)
    except UnicodeDecodeError:
        raise InputError(f"{file}: not UTF-8 text") from None
    except csv.Error as exc:
        raise InputError(f"{file}: not valid CSV ({exc})") from None
    problems.raise_if_any(file)
    if not rows:
        raise InputError(f"{file}: no signals")
    return rows


def _read_csv(file: Path, handle: IO[str], problems: _Problems) -> list[SignalRow]:
    reader = csv.reader(handle)
    header = next(reader, None)
    if header is None:
        raise InputError(f"{file}: empty file (expected a header: {','.join(COLUMNS)})")
    names = [name.strip() for name in header]
    unknown = [n for n in names if n not in COLUMNS]
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    twice = sorted({n for n in names if names.count(n) > 1})
    if unknown or missing or twice:
        said = [f"unknown column `{n}`" for n in unknown]
        said += [f"missing column `{n}`" for n in missing]
        said += [f"column `{n}` twice" for n in twice]
        raise InputError(f"{file}: line 1: {', '.join(said)}; columns are {','.join(COLUMNS)}")
    rows: list[SignalRow] = []
    seen: dict[str, int] = {}
    for values in reader:
        line = reader.line_num
        if not values or values == [""]:
            continue
        if len(values) != len(names):
            problems.add(line, f"{len(values)} fields where the header has {len(names)}")
            continue
        record: dict[str, str] = {}
        empty = None
        for name, value in zip(names, values, strict=True):
            if value == "":
                if name not in OPTIONAL_COLUMNS:
                    empty = name
                continue
            record[name] = value
        if empty is not None:
            problems.add(line, f"`{empty}` is empty")
            continue
        _take(record, line, False, rows, seen, problems)
    return rows


def _read_jsonl(handle: IO[str], problems: _Problems) -> list[SignalRow]:
    rows: list[SignalRow] = []
    seen: dict[str, int] = {}
    for line, text in enumerate(handle, start=1):
        if not text.strip():
            continue
        try:
            record = _any_json.decode(text)
        except msgspec.DecodeError as exc:
            problems.add(line, f"not JSON ({exc})")
            continue
        if not isinstance(record, dict):
            problems.add(line, "not a JSON object")
            continue
        for name in OPTIONAL_COLUMNS:
            # An empty regime means "no regime", as an empty CSV cell does.
            if record.get(name) == "":
                del record[name]
        _take(record, line, True, rows, seen, problems)
    return rows


def _take(
    record: dict[str, Any],
    line: int,
    strict: bool,
    rows: list[SignalRow],
    seen: dict[str, int],
    problems: _Problems,
) -> None:
    """Validate one record and keep it, or report why not."""
    try:
        # CSV cells are text: strict=False lets msgspec parse "0.75" and "3" by the field's
        # type, with the same bounds as the wire.
        row = msgspec.convert(record, SignalRow, strict=strict)
    except msgspec.ValidationError as exc:
        problems.add(line, _describe(str(exc)))
        return
    if row.exit_ts_ms < row.ts_ms:
        problems.add(line, f"exit_ts_ms {row.exit_ts_ms} is before ts_ms {row.ts_ms}")
        return
    if row.signal_id is not None:
        first = seen.setdefault(row.signal_id, line)
        if first != line:
            problems.add(line, f"signal_id {row.signal_id!r} already on line {first}")
            return
    rows.append(row)


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
    file = Path(path)
    kind = file_format(file)
    count = 0
    try:
        with file.open("w", encoding="utf-8", newline="") as out:
            if kind == "csv":
                writer = csv.writer(out, lineterminator="\n")
                writer.writerow(COLUMNS)
                for row in rows:
                    writer.writerow([_cell(v) for v in msgspec.structs.astuple(row)])
                    count += 1
            else:
                for row in rows:
                    out.write(_row_encoder.encode(row).decode())
                    out.write("\n")
                    count += 1
    except OSError as exc:
        raise InputError(f"{file}: cannot write ({exc.strerror})") from None
    return count


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)


# ----------------------------------------------------------------------------- results


class Stats(msgspec.Struct, kw_only=True):
    """How one side (baseline or alphad) did over a set of trades (docs/replay.md)."""

    trades: int
    total_pnl: float
    expectancy: float | None
    win_rate: float | None
    profit_factor: float | None  # None without a losing trade
    sharpe: float | None  # per trade, not annualized
    daily_sharpe: float | None  # calendar days of exit time, annualized
    max_drawdown: float
    drawdown_to_pnl: float | None  # max drawdown / total pnl; None unless pnl > 0
    worst_day: float


class Sides(msgspec.Struct, kw_only=True):
    """The same trades without and with alphad."""

    baseline: Stats
    alphad: Stats


class Change(msgspec.Struct, kw_only=True):
    """alphad against the baseline: relative changes and Sharpe differences."""

    total_pnl: float | None  # (alphad − baseline) / |baseline|
    max_drawdown: float | None  # alphad / baseline − 1
    sharpe: float | None  # alphad − baseline
    daily_sharpe: float | None  # alphad − baseline
    # alphad's exposure as a share of the baseline's: Σ size / the baseline's trades.
    exposure: float | None = None
    # Against the baseline cut to that exposure, every trade at size ``exposure``: its pnl
    # and its max drawdown are the baseline's × exposure. What alphad gains by choosing
    # trades, beyond trading less.
    total_pnl_same_exposure: float | None = None  # (alphad − cut) / |cut|
    max_drawdown_same_exposure: float | None = None  # alphad / cut − 1


class SignalCounts(msgspec.Struct, kw_only=True):
    """What the scorer did with the signals."""

    scored: int
    executed: int
    refused_status: int  # the strategy was suspended or retired
    refused_quality: int  # quality below min_quality
    not_admitted: int  # refused by the daemon's admission (auto_register off, limits)
    mean_size: float | None  # of executed signals
    max_size: float | None
    outcomes_learned: int  # outcomes the scorer counted (shadow ones included)


class StatusEvent(msgspec.Struct, kw_only=True):
    """One lifecycle transition, at the event time of the cycle that made it."""

    ts_ms: int
    cycle: int
    strategy: str
    old: str
    new: str
    reason: str


class ReplayResult(msgspec.Struct, kw_only=True):
    """Everything ``--format json`` prints."""

    signals: int
    strategies: list[str]
    first_ts_ms: int
    last_ts_ms: int
    days: int
    cycles: int
    update_interval_s: float
    shadow_outcomes: bool
    periods_per_year: float
    decisions: SignalCounts
    total: Sides
    change: Change
    by_strategy: dict[str, Sides]
    by_regime: dict[str, Sides]  # by the regime of the signal ("unknown" without one)
    status_changes: list[StatusEvent]
    # strategy -> [ts_ms, adaptive weight, effective weight] at start and at each change
    weights: dict[str, list[tuple[int, float, float]]]
    # regime -> strategy -> adaptive weight at the end, for regimes with their own table
    final_regime_weights: dict[str, dict[str, float]]
    # Could the difference be luck: the paired block bootstrap over days (None: not run).
    luck: Luck | None = None


@dataclass
class Curve:
    """A side's trades in close order: the input row, the exit time, and the cumulative
    pnl after it."""

    rows: list[int] = field(default_factory=list)
    ts_ms: list[int] = field(default_factory=list)
    equity: list[float] = field(default_factory=list)


@dataclass
class Replay:
    """A finished replay: the figures, and the curves the HTML report draws."""

    result: ReplayResult
    baseline: Curve
    alphad: Curve
    # Each side's pnl per calendar day, over the result's days.
    baseline_daily: list[float] = field(default_factory=list)
    alphad_daily: list[float] = field(default_factory=list)

    def bootstrap_luck(self, resamples: int = RESAMPLES) -> Luck:
        """Run the bootstrap of docs/replay.md on the daily pnl and keep it in the result."""
        self.result.luck = bootstrap(
            self.baseline_daily,
            self.alphad_daily,
            self.result.periods_per_year,
            resamples=resamples,
        )
        return self.result.luck


# ----------------------------------------------------------------------------- the replay


class Replayer:
    """The daemon's models (performance, weighting, lifecycle, scorer) on event time.

    Built like the daemon builds them at start, with the config's component switches;
    the cycle below is ``EngineActor.run_cycle`` without the journal and the alerts.
    """

    def __init__(self, config: Config, *, shadow_outcomes: bool = False) -> None:
        self.config = config
        self.shadow_outcomes = shadow_outcomes
        interval_s = config.engine.update_interval_s or FALLBACK_INTERVAL_S
        self.interval_ms = max(1, round(interval_s * 1000))
        self.performance = PerformanceModel(config.performance, judging_only=True)
        weighting_model = WeightingModel(config.weighting, config.strategies)
        weighting_model.frozen = not config.components.weighting
        # The actor is never started: it is the one place that turns weights and
        # statuses into the scorer's allocation, as at the daemon's start.
        self.weighting = WeightingActor(weighting_model)
        self.lifecycle = LifecycleModel(config.lifecycle, config.strategies)
        self.lifecycle.enabled = config.components.lifecycle
        self.scorer = ScorerModel(config.scorer, "replay")
        self.scorer.enabled = config.components.scorer
        self.admission = Admission(
            configured=config.strategies.keys(),
            auto_register=config.weighting.auto_register,
            max_strategies=config.limits.max_strategies,
            max_symbols=config.limits.max_symbols,
            max_regimes=config.limits.max_regimes,
            on_new_strategy=self._register,
        )
        self.now_ms = 0
        self.cycle = 0
        self.recorded_since_cycle = 0
        self._last_recent: dict[str, Figures] | None = None
        # A strategy registered since the allocation was last pushed to the scorer.
        self._registered = False
        self.status_changes: list[StatusEvent] = []
        self.weights: dict[str, list[tuple[int, float, float]]] = {}

    def _register(self, strategy: str) -> None:
        """A strategy's first signal, as the engine handles ``StrategySeen``."""
        model = self.weighting.model
        model.ensure_registered(strategy)
        self.lifecycle.register(strategy, self.now_ms)
        base = model.base[strategy]
        self.weights[strategy] = [(self.now_ms, round(base, 6), round(base, 6))]
        self._registered = True

    def _push_allocation(self) -> None:
        """Statuses and weights to the scorer, and each weight that moved to its path."""
        self._registered = False
        statuses = self.lifecycle.statuses()
        weighting = self.weighting
        weighting.statuses = statuses
        allocation = weighting.allocation()
        table = allocation.global_table
        self.scorer.set_allocation(
            statuses, table.effective, allocation.multipliers, allocation.regime_multipliers
        )
        for strategy, adaptive in table.adaptive.items():
            point = (self.now_ms, round(adaptive, 6), round(table.effective[strategy], 6))
            path = self.weights.setdefault(strategy, [])
            if not path or path[-1][1:] != point[1:]:
                path.append(point)

    def run_cycle(self, now_ms: int) -> None:
        """One scheduled optimization cycle at event time ``now_ms`` (every regime's table).

        With no trade recorded since the last cycle, the figures are the same: weights and
        assessments need new evidence, so only the lifecycle's clock (probation) can move
        anything, and the cycle is cut to that, with the same result as a full one. The
        allocation is pushed to the scorer only when a weight or a status moved or a
        strategy was registered since the last push: otherwise the scorer already has it.
        """
        self.now_ms = now_ms
        self.cycle += 1
        if not self.recorded_since_cycle and self._last_recent is not None:
            moves = self.lifecycle.assess(self._last_recent, now_ms)
            self._note_moves(moves, now_ms)
            if moves:
                self._push_allocation()
            return
        self.recorded_since_cycle = 0
        by_strategy = self.performance.recent_by_strategy()
        by_regime = self.performance.recent_by_regime()
        self._last_recent = by_strategy
        updates = self.weighting.model.update(by_strategy, by_regime, f"cycle {self.cycle}")
        moves = self.lifecycle.assess(by_strategy, now_ms)
        self._note_moves(moves, now_ms)
        self.scorer.set_regime_fit(by_strategy, by_regime)
        if updates or moves or self._registered:
            self._push_allocation()

    def _note_moves(self, moves: Sequence[Any], now_ms: int) -> None:
        for move in moves:
            self.status_changes.append(
                StatusEvent(
                    ts_ms=now_ms,
                    cycle=self.cycle,
                    strategy=move.strategy,
                    old=move.old,
                    new=move.new,
                    reason=move.reason,
                )
            )

    def run(self, rows: Sequence[SignalRow], periods_per_year: float = 365.0) -> Replay:
        """Replay the rows (any order; events are sorted by time, then by row)."""
        if not rows:
            raise InputError("no signals to replay")
        if not (periods_per_year > 0 and math.isfinite(periods_per_year)):
            raise InputError(f"periods per year must be a positive number, not {periods_per_year}")
        events: list[tuple[int, int, int]] = []
        for i, row in enumerate(rows):
            events.append((row.ts_ms, SIGNAL, i))
            events.append(
                (row.exit_ts_ms, CLOSE if row.exit_ts_ms > row.ts_ms else CLOSE_AT_SIGNAL, i)
            )
        events.sort()
        first_ts, last_ts = events[0][0], events[-1][0]
        interval = self.interval_ms
        if (last_ts - first_ts) // interval > MAX_CYCLES:
            raise InputError(
                f"the history spans {(last_ts - first_ts) // interval:,} optimization cycles "
                f"of {interval / 1000:g} s (more than {MAX_CYCLES:,}): are the timestamps in "
                "milliseconds? A longer [engine] update_interval_s shortens the replay"
            )
        self.now_ms = first_ts
        self._push_allocation()

        n = len(rows)
        sizes = [0.0] * n  # size_multiplier of executed signals; 0.0 = not executed
        scored = bytearray(n)
        closed: list[int] = []  # every row, in close order
        taken: list[int] = []  # executed rows, in close order
        taken_pnl: list[float] = []
        refused_status = refused_quality = not_admitted = learned = 0
        seq = 0
        admit = self.admission.admit
        score = self.scorer.score
        learn = self.scorer.record_outcome
        record = self.performance.record
        shadow = self.shadow_outcomes
        next_cycle = first_ts + interval
        for ts, kind, i in events:
            # Cycles due before this event; at the same instant after closes, before signals.
            while next_cycle < ts or (next_cycle == ts and kind > CLOSE):
                self.run_cycle(next_cycle)
                next_cycle += interval
            row = rows[i]
            if kind == SIGNAL:
                self.now_ms = ts
                try:
                    admit(row.strategy, row.symbol, row.regime)
                except AlphadError:
                    not_admitted += 1
                    continue
                scored[i] = 1
                reply = score(
                    ScoreSignal(
                        strategy=row.strategy,
                        symbol=row.symbol,
                        side=row.side,
                        confidence=row.confidence,
                        confluence=row.confluence,
                        regime=row.regime,
                        signal_id=str(i),
                        ts_ms=ts,
                    )
                )
                if reply.execute:
                    sizes[i] = reply.size_multiplier
                elif reply.status in EXECUTABLE:
                    refused_quality += 1
                else:
                    refused_status += 1
                continue
            closed.append(i)
            size = sizes[i]
            # An execute at size 0 (only possible with size_at_min_quality = 0) places no
            # order, so the bot has nothing to report: like a refusal, it teaches nothing.
            if size > 0.0:
                pnl = row.pnl * size
                seq += 1
                signal_id = str(i)
                record(
                    ClosedTrade(
                        seq=seq,
                        trade_id=signal_id,
                        strategy=row.strategy,
                        symbol=row.symbol,
                        side=row.side,
                        pnl=pnl,
                        entry_ts_ms=row.ts_ms,
                        exit_ts_ms=row.exit_ts_ms,
                        regime=row.regime or UNKNOWN_REGIME,
                        size=size,
                        signal_id=signal_id,
                    )
                )
                self.recorded_since_cycle += 1
                learned += learn(signal_id, pnl > 0.0)
                taken.append(i)
                taken_pnl.append(pnl)
            elif shadow and scored[i]:
                # A bot that paper-trades refused signals reports how they would have gone.
                learned += learn(str(i), row.pnl > 0.0)

        executed_sizes = [sizes[i] for i in taken]
        decisions = SignalCounts(
            scored=sum(scored),
            executed=len(taken),
            refused_status=refused_status,
            refused_quality=refused_quality,
            not_admitted=not_admitted,
            mean_size=math.fsum(executed_sizes) / len(taken) if taken else None,
            max_size=max(executed_sizes) if taken else None,
            outcomes_learned=learned,
        )
        exposure = math.fsum(executed_sizes) / len(closed) if closed else None
        return self._result(rows, closed, taken, taken_pnl, decisions, periods_per_year, exposure)

    def _result(
        self,
        rows: Sequence[SignalRow],
        closed: list[int],
        taken: list[int],
        taken_pnl: list[float],
        decisions: SignalCounts,
        periods_per_year: float,
        exposure: float | None,
    ) -> Replay:
        first_ts = min(row.ts_ms for row in rows)
        last_ts = max(row.exit_ts_ms for row in rows)
        day0 = first_ts // DAY_MS
        days = last_ts // DAY_MS - day0 + 1
        exit_day = [row.exit_ts_ms // DAY_MS - day0 for row in rows]

        def stats(indices: list[int], pnls: list[float]) -> Stats:
            return side_stats(pnls, [exit_day[i] for i in indices], days, periods_per_year)

        base_pnl = [rows[i].pnl for i in closed]
        total = Sides(baseline=stats(closed, base_pnl), alphad=stats(taken, taken_pnl))
        strategies = sorted({row.strategy for row in rows})

        def by(key: list[str]) -> dict[str, Sides]:
            """Both sides of each group (``key[i]``: row i's group), in one pass over each."""
            groups = sorted(set(key))
            base_of: dict[str, tuple[list[int], list[float]]] = {g: ([], []) for g in groups}
            mine_of: dict[str, tuple[list[int], list[float]]] = {g: ([], []) for g in groups}
            for i, p in zip(closed, base_pnl, strict=True):
                indices, pnls = base_of[key[i]]
                indices.append(i)
                pnls.append(p)
            for i, p in zip(taken, taken_pnl, strict=True):
                indices, pnls = mine_of[key[i]]
                indices.append(i)
                pnls.append(p)
            return {
                g: Sides(baseline=stats(*base_of[g]), alphad=stats(*mine_of[g])) for g in groups
            }

        by_strategy = by([row.strategy for row in rows])
        # The regime the bot saw at the signal; a row without one counts as the daemon
        # counts it live.
        by_regime = by([row.regime or UNKNOWN_REGIME for row in rows])
        model = self.weighting.model
        result = ReplayResult(
            signals=len(rows),
            strategies=strategies,
            first_ts_ms=first_ts,
            last_ts_ms=last_ts,
            days=days,
            cycles=self.cycle,
            update_interval_s=self.interval_ms / 1000,
            shadow_outcomes=self.shadow_outcomes,
            periods_per_year=periods_per_year,
            decisions=decisions,
            total=total,
            change=change_of(total, exposure),
            by_strategy=by_strategy,
            by_regime=by_regime,
            status_changes=self.status_changes,
            weights={name: self.weights[name] for name in sorted(self.weights)},
            final_regime_weights={
                regime: {s: round(w, 6) for s, w in sorted(model.regime_adaptive[regime].items())}
                for regime in model.regimes()
            },
        )
        return Replay(
            result=result,
            baseline=_curve(rows, closed, base_pnl),
            alphad=_curve(rows, taken, taken_pnl),
            baseline_daily=daily_pnl(base_pnl, [exit_day[i] for i in closed], days),
            alphad_daily=daily_pnl(taken_pnl, [exit_day[i] for i in taken], days),
        )


def replay(
    rows: Sequence[SignalRow],
    config: Config | None = None,
    *,
    shadow_outcomes: bool = False,
    periods_per_year: float = 365.0,
) -> Replay:
    """Replay rows through fresh models built from ``config`` (the defaults if None)."""
    replayer = Replayer(config or Config(), shadow_outcomes=shadow_outcomes)
    return replayer.run(rows, periods_per_year)


def side_stats(
    pnls: Sequence[float], days_of: Sequence[int], days: int, periods_per_year: float
) -> Stats:
    """The figures of one side: ``pnls`` in close order, ``days_of`` each trade's exit day
    (0 = the replay's first calendar day, of ``days``; days without a trade count as 0)."""
    figures = figures_of(pnls)
    daily = daily_pnl(pnls, days_of, days)
    n = figures.trades
    total = figures.total_pnl
    return Stats(
        trades=n,
        total_pnl=total,
        expectancy=figures.expectancy if n else None,
        win_rate=figures.win_rate if n else None,
        profit_factor=figures.profit_factor,
        sharpe=figures.sharpe,
        daily_sharpe=daily_sharpe(daily, periods_per_year),
        max_drawdown=figures.max_drawdown,
        drawdown_to_pnl=figures.max_drawdown / total if total > 0 else None,
        worst_day=min(daily) if daily else 0.0,
    )


def daily_pnl(pnls: Sequence[float], days_of: Sequence[int], days: int) -> list[float]:
    """The pnl of each calendar day (0 for a day without a trade)."""
    daily = [0.0] * days
    for pnl, day in zip(pnls, days_of, strict=True):
        daily[day] += pnl
    return daily


def change_of(sides: Sides, exposure: float | None = None) -> Change:
    """alphad against the baseline, and against the baseline cut to alphad's
    ``exposure`` (Σ of alphad's sizes / the baseline's trades) when it is given."""
    base, mine = sides.baseline, sides.alphad

    def difference(a: float | None, b: float | None) -> float | None:
        return a - b if a is not None and b is not None else None

    def relative(a: float, b: float) -> float | None:
        return (a - b) / abs(b) if b else None

    def drawdown(a: float, b: float) -> float | None:
        return a / b - 1.0 if b > 0 else None

    cut = exposure if exposure else None
    return Change(
        total_pnl=relative(mine.total_pnl, base.total_pnl),
        max_drawdown=drawdown(mine.max_drawdown, base.max_drawdown),
        sharpe=difference(mine.sharpe, base.sharpe),
        daily_sharpe=difference(mine.daily_sharpe, base.daily_sharpe),
        exposure=exposure,
        total_pnl_same_exposure=relative(mine.total_pnl, base.total_pnl * cut) if cut else None,
        max_drawdown_same_exposure=(
            drawdown(mine.max_drawdown, base.max_drawdown * cut) if cut else None
        ),
    )


def _curve(rows: Sequence[SignalRow], indices: list[int], pnls: list[float]) -> Curve:
    # The running sum from 0.0, as ``equity += pnl`` trade by trade.
    equity = list(accumulate(pnls, initial=0.0))
    del equity[0]
    return Curve(rows=list(indices), ts_ms=[rows[i].exit_ts_ms for i in indices], equity=equity)


# ----------------------------------------------------------------------------- rendering


def render_json(replayed: Replay) -> str:
    """The result as indented JSON (keys in a fixed order)."""
    return msgspec.json.format(msgspec.json.encode(replayed.result), indent=2).decode()


def utc_day(ts_ms: int) -> str:
    """The UTC calendar day of an event time, as YYYY-MM-DD."""
    return datetime.fromtimestamp(ts_ms / 1000, UTC).strftime("%Y-%m-%d")


def utc_minute(ts_ms: int) -> str:
    """An event time to the minute, UTC."""
    return datetime.fromtimestamp(ts_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M")


def _money(value: float | None) -> str:
    return "-" if value is None else f"{value:,.2f}"


def _ratio(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _signed_percent(value: float | None) -> str:
    return "-" if value is None else f"{value:+.1%}"


def _signed(value: float | None) -> str:
    return "-" if value is None else f"{value:+.3f}"


STAT_LINES: tuple[tuple[str, str, Callable[[Any], str]], ...] = (
    ("trades taken", "trades", lambda v: f"{v:,}"),
    ("total pnl", "total_pnl", _money),
    ("expectancy", "expectancy", _money),
    ("win rate", "win_rate", _percent),
    ("profit factor", "profit_factor", _ratio),
    ("sharpe per trade", "sharpe", _ratio),
    ("daily sharpe (annualized)", "daily_sharpe", lambda v: _ratio(v, 2)),
    ("max drawdown", "max_drawdown", _money),
    ("max drawdown / total pnl", "drawdown_to_pnl", _ratio),
    ("worst day", "worst_day", _money),
)


def render_text(replayed: Replay, source: str = "") -> str:
    """Terminal tables: totals, per strategy, status changes and weights."""
    r = replayed.result
    d = r.decisions
    out = [
        f"alphad replay{f' of {source}' if source else ''}: {r.signals:,} signals, "
        f"{len(r.strategies)} strategies, {utc_day(r.first_ts_ms)} to {utc_day(r.last_ts_ms)} "
        f"({r.days} days), {r.cycles:,} optimization cycles every {r.update_interval_s:g} s"
        + (", shadow outcomes" if r.shadow_outcomes else ""),
        f"alphad executed {d.executed:,} of {r.signals:,} signals (refused: "
        f"{d.refused_quality:,} on quality, {d.refused_status:,} suspended or retired"
        + (f", {d.not_admitted:,} not admitted" if d.not_admitted else "")
        + f"), mean size {_ratio(d.mean_size, 2)}, largest {_ratio(d.max_size, 2)}",
        "",
        "ALL STRATEGIES",
    ]
    change = r.change
    changes = {
        "total_pnl": _signed_percent(change.total_pnl),
        "max_drawdown": _signed_percent(change.max_drawdown),
        "sharpe": _signed(change.sharpe),
        "daily_sharpe": _signed(change.daily_sharpe),
    }
    lines = []
    for label, key, show in STAT_LINES:
        base = getattr(r.total.baseline, key)
        mine = getattr(r.total.alphad, key)
        lines.append([label, show(base), show(mine), changes.get(key, "")])
    out.append(_format_table(["", "baseline", "alphad", "change"], lines))
    if change.exposure is not None:
        out += ["", exposure_line(change)]
    if r.luck is not None:
        out += ["", *luck_lines(r.luck)]
    out += ["", "BY STRATEGY"]
    out.append(_sides_table("strategy", r.by_strategy))
    out += ["", "BY REGIME (of the signal)"]
    out.append(_sides_table("regime", r.by_regime))
    out += ["", "STATUS CHANGES (UTC, cycle, strategy, change: reason)"]
    out += _status_lines(r.status_changes) or ["(none)"]
    out += ["", "WEIGHTS (global adaptive weight; (s) = suspended or retired, effective 0)"]
    out.append(_weights_table(r))
    return "\n".join(out)


def exposure_line(change: Change) -> str:
    """Is alphad only trading less? Its change against the baseline cut to its exposure."""
    return (
        f"alphad's exposure is {_ratio(change.exposure, 2)} of the baseline's (sum of sizes / "
        f"trades). Against the baseline cut to that size on every trade: total pnl "
        f"{_signed_percent(change.total_pnl_same_exposure)}, max drawdown "
        f"{_signed_percent(change.max_drawdown_same_exposure)}."
    )


def _sides_table(what: str, groups: dict[str, Sides]) -> str:
    """Both sides of every group, a row each."""
    header = [what, "side", "trades", "total pnl", "expect.", "win", "PF", "sh/trade", "sh/day"]
    header += ["max dd", "dd/pnl", "worst day"]
    table = []
    for name, sides in groups.items():
        for label, s in (("baseline", sides.baseline), ("alphad", sides.alphad)):
            table.append(
                [
                    name if label == "baseline" else "",
                    label,
                    f"{s.trades:,}",
                    _money(s.total_pnl),
                    _money(s.expectancy),
                    _percent(s.win_rate),
                    _ratio(s.profit_factor, 2),
                    _ratio(s.sharpe),
                    _ratio(s.daily_sharpe, 2),
                    _money(s.max_drawdown),
                    _ratio(s.drawdown_to_pnl, 2),
                    _money(s.worst_day),
                ]
            )
    return _format_table(header, table)


def luck_rows(luck: Luck) -> list[list[str]]:
    """The bootstrap's table (docs/replay.md): figure, alphad − baseline on the history,
    the middle 90 % of the resamples, the share of resamples with alphad ahead."""
    rows = []
    for label, interval, show in (
        ("daily sharpe", luck.daily_sharpe, _signed),
        ("total pnl", luck.total_pnl, _signed_money),
    ):
        span = (
            f"{show(interval.low)} to {show(interval.high)}"
            if interval.low is not None and interval.high is not None
            else "-"
        )
        ahead = f"{_percent(interval.ahead)} of resamples" if interval.ahead is not None else "-"
        rows.append([label, show(interval.observed), span, ahead])
    return rows


LUCK_HEADER = ["", "alphad - baseline", "90% of resamples", "alphad ahead in"]


def luck_lines(luck: Luck) -> list[str]:
    """The bootstrap as a heading and a table."""
    return [
        f"COULD IT BE LUCK? {luck.resamples:,} resamples of the history's days in blocks of "
        f"{luck.block_days}, the same days for both sides",
        _format_table(LUCK_HEADER, luck_rows(luck)),
    ]


def _signed_money(value: float | None) -> str:
    return "-" if value is None else f"{value:+,.2f}"


def _status_lines(changes: Sequence[StatusEvent]) -> list[str]:
    """One line per transition; the reason last, left-aligned, as long as it is."""
    width = max((len(e.strategy) for e in changes), default=0)
    cycles = max((len(f"{e.cycle:,}") for e in changes), default=0)
    return [
        f"{utc_minute(e.ts_ms)}  {e.cycle:>{cycles},}  {e.strategy:<{width}}  "
        f"{e.old + ' -> ' + e.new:<21}  {e.reason}"
        for e in changes
    ]


def _weights_table(r: ReplayResult, columns: int = 7) -> str:
    """Each strategy's weight at evenly spaced times, start to end."""
    span = r.last_ts_ms - r.first_ts_ms
    times = [r.first_ts_ms + span * k // (columns - 1) for k in range(columns)]
    rows = []
    for name, path in r.weights.items():
        cells = [name]
        for t in times:
            point = _at(path, t)
            if point is None:
                cells.append("")
            else:
                suspended = point[2] == 0.0
                cells.append(f"{point[1]:.2f}{' (s)' if suspended else ''}")
        rows.append(cells)
    return _format_table(["strategy", *(utc_day(t) for t in times)], rows)


def _at(path: list[tuple[int, float, float]], ts_ms: int) -> tuple[int, float, float] | None:
    """The last point of a weight path at or before ``ts_ms``."""
    found = None
    for point in path:
        if point[0] > ts_ms:
            break
        found = point
    return found


# ----------------------------------------------------------------------------- the commands


def replay_command(args: argparse.Namespace) -> int:
    """``alphad replay FILE``: print the comparison, optionally write the HTML report."""
    config = load_config(args.config)
    rows = read_signals(args.file)
    replayed = replay(
        rows,
        config,
        shadow_outcomes=args.shadow_outcomes,
        periods_per_year=args.periods_per_year,
    )
    if args.bootstrap < 0:
        raise InputError(f"--bootstrap needs a number of resamples >= 0, not {args.bootstrap}")
    if args.bootstrap:
        replayed.bootstrap_luck(args.bootstrap)
    if args.report:
        from daemon.replay_report import write_report

        write_report(replayed, args.report, title=Path(args.file).name)
    if args.format == "json":
        print(render_json(replayed))
    else:
        print(render_text(replayed, Path(args.file).name))
        if args.report:
            print(f"\nreport written to {args.report}")
    return 0


# ----------------------------------------------------------------------------- tuning

TUNING_SCENARIOS = ("steady", "decay", "regime", "noise", "fat_tails", "mixed")
SHARPE_SCENARIOS = ("decay", "regime", "mixed")
DRAWDOWN_LIMIT = 0.05
SHARPE_SHARE = 0.90
STEADY_PNL_LIMIT = -0.10


@dataclass
class SeedOutcome:
    """One replay of one simulated scenario and seed, against its ground truth."""

    scenario: str
    seed: int
    change: Change
    # Decaying strategies: losing trades from the onset until suspension (None: never).
    losses_before_suspension: dict[str, int | None]
    # Decaying strategies already out of trading before their edge turned (a false alarm).
    out_before_onset: int
    # Strategies with a positive edge in every regime and no decay, and how many of them
    # alphad suspended or retired at some point.
    good: int
    good_suspended: int


def judge(scenario: str, seed: int, config: Config | None = None) -> SeedOutcome:
    """Simulate one scenario and seed, replay it, and measure it against the truth."""
    from daemon.simulate import simulate

    simulation = simulate(scenario, seed)
    replayed = replay(simulation.rows, config)
    changes = replayed.result.status_changes
    losses: dict[str, int | None] = {}
    early = 0
    for strategy, onset in simulation.decay_onsets.items():
        suspended_at = suspension_after(changes, strategy, onset)
        early += suspended_at == onset
        losses[strategy] = (
            None
            if suspended_at is None
            else sum(
                1
                for row in simulation.rows
                if row.strategy == strategy
                and row.ts_ms >= onset
                and row.exit_ts_ms <= suspended_at
                and row.pnl < 0
            )
        )
    spec = simulation.scenario
    good = [
        s.name
        for s in spec.strategies
        if s.decayed_edge is None and all(s.true_edge(r) > 0 for r in spec.regimes)
    ]
    thrown = {e.strategy for e in changes if e.new in INACTIVE}
    return SeedOutcome(
        scenario,
        seed,
        replayed.result.change,
        losses,
        out_before_onset=early,
        good=len(good),
        good_suspended=sum(1 for name in good if name in thrown),
    )


def suspension_after(changes: Sequence[StatusEvent], strategy: str, ts_ms: int) -> int | None:
    """When the strategy was out of trading (suspended or retired) from ``ts_ms`` on: the
    time of its first suspension after ``ts_ms``, or ``ts_ms`` itself if it already was."""
    status = "active"
    for event in changes:
        if event.strategy != strategy:
            continue
        if event.ts_ms > ts_ms:
            if status in INACTIVE:
                return ts_ms
            if event.new in INACTIVE:
                return event.ts_ms
        status = event.new
    return ts_ms if status in INACTIVE else None


def tuning_table(
    seeds: Iterable[int] = range(1, 21),
    config: Config | None = None,
    scenarios: Sequence[str] = TUNING_SCENARIOS,
) -> str:
    """The tuning criteria (docs/replay.md) over the seeds of every scenario, as Markdown."""
    seeds = list(seeds)
    return table_of({s: [judge(s, seed, config) for seed in seeds] for s in scenarios})


def table_of(outcomes: dict[str, list[SeedOutcome]]) -> str:
    """The Markdown table of ``tuning_table`` from the outcomes of each scenario's seeds."""
    lines = [
        "| scenario | max drawdown vs baseline: median (worst) | seeds within +5 % "
        "| Sharpe per trade raised | total pnl vs baseline: median (worst) "
        "| losing trades before suspension: median (max) "
        "| good strategies ever suspended "
        "| exposure; against the baseline cut to it: max drawdown, total pnl (medians) "
        "| verdict, every seed | verdict, medians |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for scenario, runs in outcomes.items():
        dd = [o.change.max_drawdown for o in runs if o.change.max_drawdown is not None]
        within = sum(1 for v in dd if v <= DRAWDOWN_LIMIT)
        raised = sum(1 for o in runs if o.change.sharpe is not None and o.change.sharpe > 0)
        pnl = [o.change.total_pnl for o in runs if o.change.total_pnl is not None]
        losses = [n for o in runs for n in o.losses_before_suspension.values() if n is not None]
        never = sum(1 for o in runs for n in o.losses_before_suspension.values() if n is None)
        # Every seed: each seed's drawdown and steady pnl within the limits. Medians: the
        # median seed's. The Sharpe and suspension criteria count seeds either way.
        failed, failed_median = [], []
        if within < len(runs):
            failed.append("drawdown")
        if dd and statistics.median(dd) > DRAWDOWN_LIMIT:
            failed_median.append("drawdown")
        if scenario in SHARPE_SCENARIOS and raised < SHARPE_SHARE * len(runs):
            failed.append("Sharpe")
            failed_median.append("Sharpe")
        if scenario == "steady" and pnl and min(pnl) < STEADY_PNL_LIMIT:
            failed.append("pnl")
        if scenario == "steady" and pnl and statistics.median(pnl) < STEADY_PNL_LIMIT:
            failed_median.append("pnl")
        if scenario == "decay" and never:
            failed.append("suspension")
            failed_median.append("suspension")
        decay_cell = "-"
        if losses or never:
            decay_cell = (
                f"{statistics.median(losses):.0f} ({max(losses)})" if losses else "never"
            ) + (f", {never} never suspended" if never else "")
            early = sum(o.out_before_onset for o in runs)
            if early:
                decay_cell += f", {early} already out before the onset"
        good = sum(o.good for o in runs)
        thrown = sum(o.good_suspended for o in runs)
        good_cell = f"{thrown}/{good}" if good else "-"
        exposure = [o.change.exposure for o in runs if o.change.exposure is not None]
        cut_dd = [
            o.change.max_drawdown_same_exposure
            for o in runs
            if o.change.max_drawdown_same_exposure is not None
        ]
        cut_pnl = [
            o.change.total_pnl_same_exposure
            for o in runs
            if o.change.total_pnl_same_exposure is not None
        ]
        cut_cell = (
            f"{_ratio(_median(exposure), 2)}; {_signed_percent(_median(cut_dd))}, "
            f"{_signed_percent(_median(cut_pnl))}"
        )
        lines.append(
            f"| {scenario} | {_signed_percent(_median(dd))} ({_signed_percent(_max(dd))}) "
            f"| {within}/{len(runs)} "
            f"| {raised}/{len(runs)}{'' if scenario in SHARPE_SCENARIOS else ' (not required)'} "
            f"| {_signed_percent(_median(pnl))} ({_signed_percent(_min(pnl))}) "
            f"| {decay_cell} | {good_cell} | {cut_cell} "
            f"| {_verdict(failed)} | {_verdict(failed_median)} |"
        )
    return "\n".join(lines)


def _verdict(failed: list[str]) -> str:
    return "fails: " + ", ".join(failed) if failed else "passes"


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _max(values: list[float]) -> float | None:
    return max(values) if values else None


def _min(values: list[float]) -> float | None:
    return min(values) if values else None


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m daemon.replay --tune``: the tuning table of docs/replay.md."""
    parser = argparse.ArgumentParser(
        prog="python -m daemon.replay", description="Tune alphad's defaults on simulations."
    )
    parser.add_argument("--tune", action="store_true", required=True, help="print the table")
    parser.add_argument("--seeds", type=int, default=20, help="how many seeds (default 20)")
    parser.add_argument(
        "--first-seed", type=int, default=1, help="first seed (default 1; 41: held-out seeds)"
    )
    parser.add_argument("--config", help="TOML config to judge instead of the defaults")
    parser.add_argument("--scenario", action="append", choices=TUNING_SCENARIOS)
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
    except Exception as exc:
        print(f"replay: {exc}", file=sys.stderr)
        return 1
    started = time.perf_counter()
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    print(tuning_table(seeds, config, args.scenario or TUNING_SCENARIOS))
    print(f"\n({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
