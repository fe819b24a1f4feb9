"""What ``python -m bench.markets`` measures: alphad and its peers on real price histories.

    python -m bench.markets [--histories GLOB] [--split calibration|evaluation|holdout|all]
        [--format text|json] [--out FILE] [--cost-bps 5] [--config FILE]
        [--regimes bot|detected]

For each history of the corpus (bench/markets/corpus.py) the textbook strategies
(bench/markets/strategies.py) make one replay row per closed trade. The same rows go
to the baseline (every signal at size 1), to each peer (bench/markets/peers.py) and to
alphad (``replay.runner.replay`` with the config, the defaults without one). Every side
is measured with the replay's own figures (``side_stats``) over the replay's calendar
days, and against the baseline raw and cut to the side's exposure (``change_of``).

With ``--regimes detected`` one more side, ``alphad_detected``: alphad with the same config
but ``[regimes] source = "detected"``, the history's bars fed to the replay
(``replay(bars=...)``, as ``market_bars`` feeds the daemon), so that every signal and
trade counts under the regime the daemon's rule set reads, not under the strategies'
own label; ``alphad`` stays the one with the bots' labels, in the same table.

Pooled: all histories as one book, every strategy of every history at once on a
notional of 100 each: every side's trades of all histories in close order, over the
calendar days from the first signal to the last exit.

Verdicts: (a) the share of histories in which alphad raises daily Sharpe over the
baseline and its max drawdown is at most 5 % above the baseline's cut to alphad's
exposure (target ≥ 80 %); (b) pooled, whether alphad beats every peer on daily Sharpe
and on total pnl / max drawdown (a ratio a uniform cut leaves as it is, so it compares
sides at equal exposure).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import msgspec

from alphad.daemon.config import Config
from alphad.replay.bars import BarRow, Detection
from alphad.replay.results import (
    DAY_MS,
    Change,
    Replay,
    Sides,
    SignalCounts,
    Stats,
    change_of,
    side_stats,
)
from alphad.replay.runner import replay
from alphad.replay.signals import SignalRow
from bench.markets.corpus import (
    MANIFEST,
    CorpusError,
    History,
    cache_dir,
    load_history,
    load_manifest,
    select,
    split_of,
)
from bench.markets.luck import Luck, pooled_luck
from bench.markets.peers import peer_factories, taken_by
from bench.markets.strategies import DEFAULT_COST_BPS, STRATEGIES, trades_of

DRAWDOWN_LIMIT = 0.05  # verdict (a): alphad's drawdown at most 5 % above the cut baseline's
SHARE_TARGET = 0.80
PERIODS_PER_YEAR = 365.0  # calendar days, as the replay counts them
BASELINE, ALPHAD, DETECTED = "baseline", "alphad", "alphad_detected"
# The daemon's bar sizes have no month: a month's bar is declared 28 days long, so it has
# closed by every next month's open, where the strategies' signals are (none falls
# inside a month, where a 28-day bar would be read before its end).
BAR_SIZES = {"1mo": "28d"}


class Side(msgspec.Struct, kw_only=True):
    """One way of trading the rows: its figures and its change against the baseline."""

    name: str
    stats: Stats
    exposure: float  # Σ size / the baseline's trades
    pnl_to_drawdown: float | None  # total pnl / max drawdown; None without a drawdown
    change: Change | None = None  # None for the baseline itself
    # Daily Sharpe raised and max drawdown at most 5 % above the baseline cut to this
    # side's exposure: verdict (a)'s reading, for every side.
    better: bool | None = None


class StrategyCount(msgspec.Struct, kw_only=True):
    """One strategy's trades on a history: all of them and alphad's."""

    strategy: str
    trades: int
    alphad_trades: int
    baseline_pnl: float
    alphad_pnl: float


class HistoryResult(msgspec.Struct, kw_only=True):
    name: str
    asset_class: str
    bar: str
    split: str
    package: str
    version: str
    file: str
    bars: int
    first_day: str
    last_day: str
    signals: int
    # The replay's span: its first signal and its last exit (event times, ms).
    first_ts_ms: int
    last_ts_ms: int
    sides: list[Side]
    decisions: SignalCounts  # alphad's
    status_changes: int
    suspensions: int
    by_strategy: list[StrategyCount]
    # With --regimes detected: alphad_detected's decisions and where its regimes came from.
    detected_decisions: SignalCounts | None = None
    detection: Detection | None = None


class Verdicts(msgspec.Struct, kw_only=True):
    histories: int
    alphad_better: int  # histories meeting (a)
    share: float | None
    share_target: float
    share_met: bool
    # (b), pooled: per peer, does alphad beat it on daily Sharpe and on pnl / max drawdown
    beats_on_sharpe: dict[str, bool]
    beats_on_pnl_to_drawdown: dict[str, bool]
    beats_every_peer: bool
    # With --regimes detected: histories where alphad_detected's daily Sharpe is above
    # alphad's (with the bots' labels), and where it meets (a).
    detected_above: int | None = None
    detected_better: int | None = None


class MarketsReport(msgspec.Struct, kw_only=True):
    command: str
    date: str
    cost_bps: float
    split: str
    packages: list[str]
    histories: list[HistoryResult]
    pooled: list[Side]
    verdicts: Verdicts
    # alphad − each other side on the pooled book, with bootstrap ranges (luck.py)
    luck: list[Luck] = []


# A side's trades of one history: the rows' indices and pnls, in close order.
Taken = tuple[list[int], list[float]]


def evaluate(
    history: History,
    split: str,
    config: Config,
    cost_bps: float = DEFAULT_COST_BPS,
    shadow_outcomes: bool = False,
    detected: bool = False,
) -> tuple[HistoryResult, dict[str, list[tuple[int, float]]]]:
    """One history: every side's figures, and every side's trades as (exit ts, pnl) in
    close order for the pooled book. ``shadow_outcomes``: alphad's bots paper-trade the
    signals it refuses and report how they went (``replay(shadow_outcomes=True)``).
    ``detected``: also the side ``alphad_detected`` (module docstring)."""
    source = history.source
    trades = trades_of(history.bars, history.name, source.symbol, cost_bps=cost_bps)
    if not trades:
        raise CorpusError(f"{history.name}: no strategy closed a trade")
    rows = [t.row for t in trades]
    replayed = replay(
        rows, config, periods_per_year=PERIODS_PER_YEAR, shadow_outcomes=shadow_outcomes
    )
    result = replayed.result
    day0 = result.first_ts_ms // DAY_MS
    exit_day = [row.exit_ts_ms // DAY_MS - day0 for row in rows]
    close_order = sorted(range(len(rows)), key=lambda i: (rows[i].exit_ts_ms, i))

    def stats(taken: Taken) -> Stats:
        indices, pnls = taken
        return side_stats(pnls, [exit_day[i] for i in indices], result.days, PERIODS_PER_YEAR)

    everything: Taken = (close_order, [rows[i].pnl for i in close_order])
    base = stats(everything)
    sides = [_side(BASELINE, base, base, 1.0)]
    book = {BASELINE: [(rows[i].exit_ts_ms, rows[i].pnl) for i in close_order]}

    sides.append(_replayed(ALPHAD, replayed, rows, base, book))
    with_bars = None
    if detected:
        with_bars = replay(
            rows,
            detected_config(config),
            periods_per_year=PERIODS_PER_YEAR,
            shadow_outcomes=shadow_outcomes,
            bars=bar_rows(history),
        )
        sides.append(_replayed(DETECTED, with_bars, rows, base, book))

    for name, make in peer_factories(source.bar_minutes).items():
        mask = taken_by(trades, make)
        indices = [i for i in close_order if mask[i]]
        taken: Taken = (indices, [rows[i].pnl for i in indices])
        sides.append(_side(name, base, stats(taken), len(indices) / len(rows)))
        book[name] = [(rows[i].exit_ts_ms, rows[i].pnl) for i in indices]

    by_strategy = [
        StrategyCount(
            strategy=s,
            trades=result.by_strategy[s].baseline.trades,
            alphad_trades=result.by_strategy[s].alphad.trades,
            baseline_pnl=result.by_strategy[s].baseline.total_pnl,
            alphad_pnl=result.by_strategy[s].alphad.total_pnl,
        )
        for s in STRATEGIES
        if s in result.by_strategy
    ]
    return (
        HistoryResult(
            name=history.name,
            asset_class=source.asset_class,
            bar=source.bar,
            split=split,
            package=source.package,
            version=source.version,
            file=source.file + (f"!{source.member.rsplit('/', 1)[-1]}" if source.member else ""),
            bars=len(history.bars),
            first_day=_day(history.bars[0].ts_ms),
            last_day=_day(history.bars[-1].ts_ms),
            signals=len(rows),
            first_ts_ms=result.first_ts_ms,
            last_ts_ms=result.last_ts_ms,
            sides=sides,
            decisions=result.decisions,
            status_changes=len(result.status_changes),
            suspensions=sum(1 for c in result.status_changes if c.new == "suspended"),
            by_strategy=by_strategy,
            detected_decisions=with_bars.result.decisions if with_bars else None,
            detection=with_bars.detection if with_bars else None,
        ),
        book,
    )


def _replayed(
    name: str,
    replayed: Replay,
    rows: Sequence[SignalRow],
    base: Stats,
    book: dict[str, list[tuple[int, float]]],
) -> Side:
    """A replay's alphad as a side; its trades go to ``book``: the replay's curve holds
    them in close order as cumulative pnl."""
    curve = replayed.alphad
    pnls = [b - a for a, b in zip([0.0, *curve.equity], curve.equity, strict=False)]
    book[name] = [(rows[i].exit_ts_ms, p) for i, p in zip(curve.rows, pnls, strict=True)]
    result = replayed.result
    return _side(name, base, result.total.alphad, result.change.exposure or 0.0)


def bar_rows(history: History) -> list[BarRow]:
    """The history's bars as the replay takes them (and a feeder would send them)."""
    source = history.source
    size = BAR_SIZES.get(source.bar, source.bar)
    return [
        BarRow(
            symbol=source.symbol,
            bar_size=size,
            ts_ms=b.ts_ms,
            open=b.open,
            high=b.high,
            low=b.low,
            close=b.close,
        )
        for b in history.bars
    ]


def detected_config(config: Config) -> Config:
    """``config`` with ``[regimes] source = "detected"``."""
    regimes = msgspec.structs.replace(config.regimes, source="detected")
    return msgspec.structs.replace(config, regimes=regimes)


def _side(name: str, base: Stats, mine: Stats, exposure: float) -> Side:
    pnl_to_drawdown = mine.total_pnl / mine.max_drawdown if mine.max_drawdown > 0 else None
    if name == BASELINE:
        return Side(name=name, stats=mine, exposure=exposure, pnl_to_drawdown=pnl_to_drawdown)
    change = change_of(Sides(baseline=base, alphad=mine), exposure)
    better = (
        mine.daily_sharpe is not None
        and base.daily_sharpe is not None
        and mine.daily_sharpe > base.daily_sharpe
        and mine.max_drawdown <= (1.0 + DRAWDOWN_LIMIT) * base.max_drawdown * exposure
    )
    return Side(
        name=name,
        stats=mine,
        exposure=exposure,
        pnl_to_drawdown=pnl_to_drawdown,
        change=change,
        better=better,
    )


def pooled(
    results: Sequence[HistoryResult], books: Sequence[dict[str, list[tuple[int, float]]]]
) -> list[Side]:
    """All histories as one book (module docstring); a side's exposure is Σ over the
    histories of its exposure × their signals, over all signals."""
    if not books:
        return []
    day0, days = pooled_days(results)
    signals = sum(r.signals for r in results)

    def stats_of(name: str) -> Stats:
        trades = sorted(
            (ts, h, k, pnl)
            for h, book in enumerate(books)
            for k, (ts, pnl) in enumerate(book[name])
        )
        days_of = [ts // DAY_MS - day0 for ts, *_ in trades]
        return side_stats([t[3] for t in trades], days_of, days, PERIODS_PER_YEAR)

    base = stats_of(BASELINE)
    sides = [_side(BASELINE, base, base, 1.0)]
    for name in books[0]:
        if name != BASELINE:
            exposure = math.fsum(_named(r.sides, name).exposure * r.signals for r in results)
            sides.append(_side(name, base, stats_of(name), exposure / signals))
    return sides


def pooled_days(results: Sequence[HistoryResult]) -> tuple[int, int]:
    """The pooled book's first calendar day (days since 1970) and its number of days:
    from the first signal of any history to the last exit, as each history's own."""
    day0 = min(r.first_ts_ms for r in results) // DAY_MS
    return day0, max(r.last_ts_ms for r in results) // DAY_MS - day0 + 1


def verdicts(results: Sequence[HistoryResult], pool: Sequence[Side]) -> Verdicts:
    better = sum(1 for r in results if _named(r.sides, ALPHAD).better)
    share = better / len(results) if results else None
    mine = _named(pool, ALPHAD) if pool else None
    peers = [s for s in pool if s.name not in (BASELINE, ALPHAD, DETECTED)]
    on_sharpe: dict[str, bool] = {}
    on_ratio: dict[str, bool] = {}
    for peer in peers:
        assert mine is not None
        on_sharpe[peer.name] = _above(mine.stats.daily_sharpe, peer.stats.daily_sharpe)
        on_ratio[peer.name] = _ratio_of(mine) > _ratio_of(peer)
    return Verdicts(
        histories=len(results),
        alphad_better=better,
        share=share,
        share_target=SHARE_TARGET,
        share_met=share is not None and share >= SHARE_TARGET,
        beats_on_sharpe=on_sharpe,
        beats_on_pnl_to_drawdown=on_ratio,
        beats_every_peer=bool(peers) and all(on_sharpe.values()) and all(on_ratio.values()),
        **_detected_counts(results),
    )


def _detected_counts(results: Sequence[HistoryResult]) -> dict[str, int]:
    """``detected_above`` and ``detected_better`` of the verdicts; none without the side."""
    if not results or not any(s.name == DETECTED for s in results[0].sides):
        return {}
    above = better = 0
    for r in results:
        mine, bots = _named(r.sides, DETECTED), _named(r.sides, ALPHAD)
        above += _above(mine.stats.daily_sharpe, bots.stats.daily_sharpe)
        better += bool(mine.better)
    return {"detected_above": above, "detected_better": better}


def _ratio_of(side: Side) -> float:
    """pnl / max drawdown for comparing sides: without a drawdown, +inf for a side that
    made money (it never lost) and 0 for one that made none (it did not trade)."""
    if side.pnl_to_drawdown is not None:
        return side.pnl_to_drawdown
    return math.inf if side.stats.total_pnl > 0 else 0.0


def _above(a: float | None, b: float | None) -> bool:
    if a is None:
        return False
    return b is None or a > b


def _named(sides: Sequence[Side], name: str) -> Side:
    return next(s for s in sides if s.name == name)


def run(
    *,
    manifest: Path = MANIFEST,
    histories: str = "*",
    split: str = "halves",
    cost_bps: float = DEFAULT_COST_BPS,
    config: Config | None = None,
    cache: Path | None = None,
    command: str = "python -m bench.markets",
    shadow_outcomes: bool = False,
    regimes: str = "bot",
) -> MarketsReport:
    """Build the corpus (as selected) and measure every side on it."""
    sources = load_manifest(manifest)
    halves = split_of(sources)
    chosen = select(sources, histories, split)
    folder = cache or cache_dir()
    results: list[HistoryResult] = []
    books: list[dict[str, list[tuple[int, float]]]] = []
    for source in chosen:
        result, book = evaluate(
            load_history(source, folder),
            halves[source.name],
            config or Config(),
            cost_bps,
            shadow_outcomes,
            detected=regimes == "detected",
        )
        results.append(result)
        books.append(book)
    pool = pooled(results, books)
    others = [side.name for side in pool if side.name != ALPHAD]
    luck = (
        pooled_luck(books, ALPHAD, others, PERIODS_PER_YEAR, *pooled_days(results)) if books else []
    )
    return MarketsReport(
        command=command,
        date=datetime.now(UTC).strftime("%Y-%m-%d"),
        cost_bps=cost_bps,
        split=split,
        packages=sorted({f"{s.package}=={s.version}" for s in chosen}),
        histories=results,
        pooled=pool,
        verdicts=verdicts(results, pool),
        luck=luck,
    )


def _day(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, UTC).strftime("%Y-%m-%d")
