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

import math
from collections.abc import Sequence

from alphad.actors.errors import Refused
from alphad.actors.events import UNKNOWN_REGIME, ClosedTrade
from alphad.actors.figures import Figures
from alphad.actors.optimizer import CycleResult, set_allocation
from alphad.actors.scorer_model import EXECUTABLE
from alphad.daemon.config import Config, build_admission, build_models
from alphad.protocol.messages import ScoreSignal
from alphad.replay.bars import BAR, BarFeed, BarRow
from alphad.replay.results import (
    DAY_MS,
    Replay,
    ReplayResult,
    Sides,
    SignalCounts,
    Stats,
    StatusEvent,
    _curve,
    change_of,
    daily_pnl,
    side_stats,
)
from alphad.replay.signals import InputError, SignalRow

# A config with cycles only on request still needs cycles in a replay: hourly, as the
# default of the live daemon.
FALLBACK_INTERVAL_S = 3600.0
# Far more than any real history needs (a year of one-minute cycles is 525 600), and a
# clear error instead of an endless run for a file whose timestamps are off by 1000×.
MAX_CYCLES = 2_000_000
MAX_DAYS = 100_000
"""The longest history a replay takes, in calendar days (about 274 years): each day is a
figure of every side's daily pnl and of the bootstrap's resamples."""

# Event kinds, in the order they run at the same millisecond: a trade closing then is
# known to the cycle of that instant, and the cycle's allocation scores the signals of
# that instant. A trade that closes at the very millisecond of its own signal closes
# after it.
CLOSE, CYCLE, SIGNAL, CLOSE_AT_SIGNAL = 0, 1, 2, 3


class Replayer:
    """The daemon's models (performance, scorer, and the optimizer) on event time.

    Built by the daemon's own ``build_models`` with the config's component switches; each
    cycle is the ``Optimizer``'s, as the live engine runs it, without the journal and the
    alerts.
    """

    def __init__(
        self,
        config: Config,
        *,
        shadow_outcomes: bool = False,
        bars: Sequence[BarRow] | None = None,
        hmm: bool = False,
    ) -> None:
        if bars is None and config.regimes.source == "detected":
            raise InputError(
                '[regimes] source = "detected" counts signals under the regime read from'
                " bars: give the bars (--bars FILE, docs/replay.md)"
            )
        if hmm and (not bars or bars[0].true_regime is None):
            raise InputError(
                "--hmm scores the hidden Markov model against the bars' true regimes: give"
                " bars that carry them (--bars FILE with `true_regime`, as alphad simulate"
                " --bars writes it)"
            )
        self.hmm = hmm
        self.config = config
        self.shadow_outcomes = shadow_outcomes
        self.bars = bars
        interval_s = config.engine.update_interval_s or FALLBACK_INTERVAL_S
        self.interval_ms = max(1, round(interval_s * 1000))
        models = build_models(config, id_prefix="replay", judging_only=True)
        self.performance = models.performance
        self.scorer = models.scorer
        self.optimizer = models.optimizer
        self.admission = build_admission(config, on_new_strategy=self._register)
        self.now_ms = 0
        self.recorded_since_cycle = 0
        # The recent figures of the last cycle: without a trade since, they are the same.
        self._recent: tuple[dict[str, Figures], dict[str, dict[str, Figures]]] | None = None
        # A strategy registered since the allocation was last pushed to the scorer.
        self._registered = False
        self.status_changes: list[StatusEvent] = []
        self.weights: dict[str, list[tuple[int, float, float]]] = {}

    @property
    def cycle(self) -> int:
        """The number of the last optimization cycle."""
        return self.optimizer.cycles

    def _register(self, strategy: str) -> None:
        """A strategy's first recorded trade, as the engine takes it on (its ``register``)."""
        self.optimizer.register(strategy, self.now_ms)
        base = self.optimizer.weighting.base[strategy]
        self.weights[strategy] = [(self.now_ms, round(base, 6), round(base, 6))]
        self._registered = True

    def _push_allocation(self) -> None:
        """Statuses and weights to the scorer, and each weight that moved to its path."""
        self._registered = False
        allocation = self.optimizer.allocation()
        served = set_allocation(allocation)
        self.scorer.set_allocation(
            served.statuses,
            served.weights,
            served.multipliers,
            served.regime_multipliers,
            served.regime_statuses,
        )
        table = allocation.global_table
        for strategy, adaptive in table.adaptive.items():
            point = (self.now_ms, round(adaptive, 6), round(table.effective[strategy], 6))
            path = self.weights.setdefault(strategy, [])
            if not path or path[-1][1:] != point[1:]:
                path.append(point)

    def run_cycle(self, now_ms: int) -> CycleResult:
        """One scheduled optimization cycle at event time ``now_ms`` (every regime's table).

        The allocation is pushed to the scorer only when a weight or a status moved or a
        strategy was registered since the last push: otherwise the scorer already has it.
        """
        self.now_ms = now_ms
        if self.recorded_since_cycle or self._recent is None:
            self.recorded_since_cycle = 0
            performance = self.performance
            self._recent = (
                performance.recent_by_strategy(self.optimizer.edge_read()),
                performance.recent_by_regime(self.optimizer.regime_edge_read()),
            )
        by_strategy, by_regime = self._recent
        optimizer = self.optimizer
        result = optimizer.cycle(
            by_strategy,
            by_regime,
            now_ms,
            paper=self.scorer.paper_record(),
            regime_paper=self.scorer.regime_paper_record() if optimizer.regimes.on else None,
        )
        for move in result.transitions:
            self.status_changes.append(
                StatusEvent(
                    ts_ms=now_ms,
                    cycle=result.cycle,
                    strategy=move.strategy,
                    old=move.old,
                    new=move.new,
                    reason=move.reason,
                    regime=move.regime,
                )
            )
        self.scorer.set_regime_fit(by_strategy, by_regime)
        if result.updates or result.transitions or self._registered:
            self._push_allocation()
        return result

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
        span_days = last_ts // DAY_MS - first_ts // DAY_MS + 1
        if span_days > MAX_DAYS:
            raise InputError(
                f"the history spans {span_days:,} days (more than {MAX_DAYS:,}): are the "
                "timestamps in milliseconds?"
            )
        feed = self._feed(len(rows))
        if feed is not None:  # replay/bars.py: each bar at its close, before the rest
            events += feed.events(last_ts)
            events.sort()
        self.now_ms = first_ts
        self._push_allocation()

        n = len(rows)
        sizes = [0.0] * n  # size_multiplier of executed signals; 0.0 = not executed
        scored = bytearray(n)
        closed: list[int] = []  # every row, in close order
        taken: list[int] = []  # executed rows, in close order
        taken_pnl: list[float] = []
        refused_status = refused_quality = not_admitted = not_recorded = learned = 0
        seq = 0
        # As live: a signal's strategy is served without being taken on; its first
        # recorded trade takes it on (counted under the caps, registered).
        admit_scored = self.admission.admit_scored
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
            if kind == BAR:
                assert feed is not None
                feed.take(i)
                continue
            row = rows[i]
            if kind == SIGNAL:
                self.now_ms = ts
                regime = row.regime
                try:
                    admit_scored(row.strategy, row.symbol, regime)
                except Refused:
                    not_admitted += 1
                    if feed is not None:
                        feed.refused(i, row.symbol, ts, regime)
                    continue
                if feed is not None:
                    regime = feed.signal(i, row.symbol, ts, regime)
                scored[i] = 1
                reply = score(
                    ScoreSignal(
                        strategy=row.strategy,
                        symbol=row.symbol,
                        side=row.side,
                        confidence=row.confidence,
                        confluence=row.confluence,
                        regime=regime,
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
            # Executed signals only: the scorer never executes below the wire's smallest
            # size, and a refused signal, of which no bot reports a trade, teaches nothing.
            if size > 0.0:
                pnl = row.pnl * size
                regime = row.regime
                if feed is not None:
                    regime = feed.trade(row.symbol, row.ts_ms, regime)
                taken.append(i)
                taken_pnl.append(pnl)
                self.now_ms = ts
                try:
                    admit(row.strategy, row.symbol, regime)
                except Refused:
                    # The daemon refuses the trade (limit): the bot traded, nothing learns.
                    not_recorded += 1
                    continue
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
                        regime=regime or UNKNOWN_REGIME,
                        size=size,
                        signal_id=signal_id,
                    )
                )
                self.recorded_since_cycle += 1
                learned += learn(signal_id, pnl > 0.0)
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
            trades_not_recorded=not_recorded,
            mean_size=math.fsum(executed_sizes) / len(taken) if taken else None,
            max_size=max(executed_sizes) if taken else None,
            outcomes_learned=learned,
        )
        exposure = math.fsum(executed_sizes) / len(closed) if closed else None
        regimes = [row.regime for row in rows] if feed is None else feed.regimes
        replayed = self._result(
            rows, closed, taken, taken_pnl, decisions, periods_per_year, exposure, regimes
        )
        if feed is not None:
            replayed.detection = feed.detection(hmm=self.hmm)
        return replayed

    def _feed(self, signals: int) -> BarFeed | None:
        """The bars' feed into the daemon's book of bars, whose readings the signals and
        trades count under as ``[regimes] source`` says; None without bars."""
        if self.bars is None:
            return None
        return BarFeed(
            self.bars,
            self.config.regimes,
            signals,
            # A detected label counts as a regime seen, as in the daemon.
            on_label=lambda label: self.admission.learn((), (), (label,)),
        )

    def _result(
        self,
        rows: Sequence[SignalRow],
        closed: list[int],
        taken: list[int],
        taken_pnl: list[float],
        decisions: SignalCounts,
        periods_per_year: float,
        exposure: float | None,
        regimes: Sequence[str | None],
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
        # The regime the signal counted under (the bot's, or the detected one with bars);
        # a row without one counts as the daemon counts it live.
        by_regime = by([regime or UNKNOWN_REGIME for regime in regimes])
        model = self.optimizer.weighting
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
    bars: Sequence[BarRow] | None = None,
    hmm: bool = False,
) -> Replay:
    """Replay rows through fresh models built from ``config`` (the defaults if None), with
    the market's ``bars`` if given (replay/bars.py), the hidden Markov model scored on
    them beside the rule set with ``hmm``."""
    replayer = Replayer(config or Config(), shadow_outcomes=shadow_outcomes, bars=bars, hmm=hmm)
    return replayer.run(rows, periods_per_year)
