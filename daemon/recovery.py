"""Recovery: every model rebuilt from the database at a start.

The newest snapshot that restores (an unreadable one passed over for the one before it),
the journaled changes after it applied again, the trades and outcomes committed after it
fed as the live daemon would have, the scorer's book of bars held again, and the scorer
serving the recovered weights and statuses. Apart from the Daemon (daemon/app.py), whose
start opens the store and hands it here, because how the state comes back, and what
refuses a start on the way, is a subject of its own. ``StartupError``, which every phase
of the start raises, is here because recovery, where most refusals come from, raises it
without importing the Daemon.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import structlog

from alphad.actors.base import Handle
from alphad.actors.engine import wall_clock_ms
from alphad.actors.engine_snapshot import decode_snapshot
from alphad.actors.market import MarketRegimes
from alphad.actors.optimizer import Optimizer, set_allocation
from alphad.actors.performance import PerformanceModel
from alphad.actors.scorer import ScorerActor
from alphad.actors.scorer_model import PlacedOutcome, ScoredRestore, ScorerModel
from alphad.actors.store import Recovery, StoreActor
from alphad.daemon.config import Config, Models, build_models

log = structlog.get_logger("alphad")


class StartupError(Exception):
    """The daemon cannot start; the message is one line for the operator."""


class Restored(msgspec.Struct, kw_only=True):
    """The models rebuilt from one snapshot."""

    state: dict[str, Any]
    models: Models


class Recovered(msgspec.Struct, kw_only=True):
    """What the database gave back: the store, the models and the scorer over them."""

    store: StoreActor
    performance: PerformanceModel
    scorer: ScorerActor
    optimizer: Optimizer
    last_cycle_ms: int


async def recover(
    store: StoreActor, config: Config, database: Path, on_label: Callable[[str], None]
) -> Recovered:
    """Open the database and rebuild every model from its snapshot and committed tail;
    ``on_label`` learns each regime label the restored book of bars detects."""
    try:
        await store.on_start()
        cycle = await store.latest_cycle()
        snapshot_ids = await store.snapshot_ids()
    except Exception as exc:
        raise StartupError(f"cannot open database {database}: {exc}") from exc
    started_recovery = time.perf_counter()
    recovery, restored = await _restore(store, snapshot_ids, config, database)
    state = restored.state
    performance_model = restored.models.performance
    scorer_model = restored.models.scorer
    optimizer = restored.models.optimizer
    scorer_state = state.get("scorer")
    optimizer.cycles = max(cycle, optimizer.cycles)
    scorer = ScorerActor(
        scorer_model,
        Handle(store),
        last_trade_seq=scorer_state["last_trade_seq"] if scorer_state else 0,
        last_outcome_seq=scorer_state["last_outcome_seq"] if scorer_state else 0,
        mailbox_size=config.daemon.mailbox_size,
        market=_market(config, scorer_state, database, on_label),
    )
    # The signals scored after the snapshot are pending again before the outcomes
    # committed after it are learned: those are theirs as often as the snapshot's. They
    # were scored under the recovered statuses, so the scorer serves those first (a
    # suspension's paper record exists before its paper trades are counted).
    _serve(optimizer, scorer_model)
    pending_again = await _restore_scorer(scorer, store, recovery, database)
    _replay(recovery, performance_model, scorer, optimizer)
    _serve(optimizer, scorer_model)
    if recovery.snapshot is None or any(entry.kind == "cycle" for entry in recovery.audit):
        # Cycles ran after the snapshot (an older one restored) or there is none: their
        # fits are not kept, so they are learned again from the figures as they stand.
        # Otherwise the snapshot's are those its cycle served, until the next cycle.
        scorer_model.set_regime_fit(
            performance_model.recent_by_strategy(), performance_model.recent_by_regime()
        )
    log.info(
        "state_recovered",
        snapshot_trade_seq=recovery.snapshot.trade_seq if recovery.snapshot else None,
        replayed_trades=len(recovery.trades),
        replayed_outcomes=len(recovery.outcomes),
        signals_pending_again=pending_again,
        bars_held=scorer.market.bars_restored,
        trades=store.trades_committed,
        duration_ms=round((time.perf_counter() - started_recovery) * 1000, 1),
    )
    return Recovered(
        store=store,
        performance=performance_model,
        scorer=scorer,
        optimizer=optimizer,
        last_cycle_ms=int(state.get("engine", {}).get("last_cycle_ms", 0)),
    )


def _serve(optimizer: Optimizer, scorer: ScorerModel) -> None:
    """The scorer serving the optimizer's weights and statuses."""
    served = set_allocation(optimizer.allocation())
    scorer.set_allocation(
        served.statuses,
        served.weights,
        served.multipliers,
        served.regime_multipliers,
        served.regime_statuses,
    )


def _market(
    config: Config,
    scorer_state: dict[str, Any] | None,
    database: Path,
    on_label: Callable[[str], None],
) -> MarketRegimes:
    """The book of bars, holding again what the snapshot kept of it. A book that does
    not restore starts empty, said so in one line: bars are not the record, and a
    feeder sends them again (weights and statuses, which are, refuse the start)."""
    market = MarketRegimes(config.regimes, on_label=on_label, clock=wall_clock_ms)
    try:
        market.restore((scorer_state or {}).get("market", []))
    except ValueError as exc:
        log.warning("bars_not_restored", database=str(database), error=str(exc))
    return market


async def _restore(
    store: StoreActor, snapshot_ids: list[int], config: Config, database: Path
) -> tuple[Recovery, Restored]:
    """The models from the newest snapshot that restores, and what came after it.

    An unreadable snapshot is passed over for the one before it (the store keeps
    ``snapshots_keep``), with a longer replay of the committed tail and the journaled
    changes after it applied again; said so in one line. Only when none restores is
    the start refused: starting from defaults would silently drop weights and statuses.
    """
    failures: list[str] = []
    first_failure: Exception | None = None
    unrestorable: list[int] = []
    for skipped, snapshot_id in enumerate(snapshot_ids or [None]):
        try:
            recovery = await store.load_recovery(snapshot_id)
        except Exception as exc:
            raise StartupError(f"cannot open database {database}: {exc}") from exc
        try:
            restored = _models_from(recovery, config)
        except Exception as exc:
            first_failure = first_failure or exc
            failures.append(f"snapshot {snapshot_id}: {exc}")
            if snapshot_id is not None:
                unrestorable.append(snapshot_id)
            continue
        if recovery.snapshot is None and recovery.audit:
            # A database with journaled changes has snapshots (each change commits one):
            # they were lost. The state is rebuilt from the trades and the journal.
            log.warning(
                "restored_without_snapshot",
                database=str(database),
                replayed_trades=len(recovery.trades),
                reapplied_changes=len(recovery.audit),
            )
        if skipped:
            assert recovery.snapshot is not None
            log.warning(
                "restored_from_older_snapshot",
                database=str(database),
                unreadable="; ".join(failures),
                snapshot_trade_seq=recovery.snapshot.trade_seq,
                replayed_trades=len(recovery.trades),
                reapplied_changes=len(recovery.audit),
            )
        # Newer than the one restored, they would be passed over at every start while
        # holding places among the kept snapshots: deleted with the next snapshot, so
        # that a later damage still finds ``snapshots_keep`` that restore.
        store.unrestorable_snapshots = unrestorable
        return recovery, restored
    # Never start with a half-restored state: weights and statuses (a suspended
    # strategy!) would silently fall back to their defaults.
    raise StartupError(
        f"cannot restore the state snapshot in {database}: {first_failure}"
    ) from first_failure


def _models_from(recovery: Recovery, config: Config) -> Restored:
    """Every model from a snapshot (defaults without one), with the journaled changes
    after it applied again; raises on a snapshot that does not restore."""
    state = decode_snapshot(recovery.snapshot) if recovery.snapshot else {}
    engine_state = state.setdefault("engine", {})
    for entry in recovery.audit:
        if entry.kind == "component" and isinstance(entry.new, bool):
            engine_state.setdefault("switches", {})[entry.data.get("component")] = entry.new
            engine_state.setdefault("switched_ms", {})[entry.data.get("component")] = entry.ts_ms
    models = build_models(config, state, id_prefix=f"{wall_clock_ms():x}")
    optimizer = models.optimizer
    for entry in recovery.audit:
        name = entry.strategy
        if name is None:
            continue
        if entry.kind == "forget":
            optimizer.forget(name)  # what came before it is gone, as it was live
        elif entry.kind in ("weight", "status"):
            if not optimizer.knows(name) or name not in optimizer.weighting.base:
                # A strategy first seen after the snapshot (or, without one, any that was
                # not configured) takes its journaled weights only once registered.
                with contextlib.suppress(Exception):  # auto_register since switched off
                    optimizer.register(name, entry.ts_ms)
            optimizer.apply_journaled(entry)
    changed = [e for e in recovery.audit if e.kind == "weight" and e.strategy is not None]
    if changed:
        # Every change is committed with a snapshot, so only a start from an older one
        # (the newest unreadable) or from none applies weight changes again.
        how = "from an older snapshot" if recovery.snapshot else "without a snapshot"
        when = datetime.fromtimestamp(changed[-1].ts_ms / 1000, UTC).isoformat(timespec="seconds")
        optimizer.weighting.drop_history(
            f"alphad started {how} and applied the journaled weight changes again, the"
            f" last of {when}: the changes before that start cannot be undone"
        )
        log.warning("weights_rollback_history_dropped", reapplied_weights=len(changed))
    return Restored(state=state, models=models)


SIGNALS_PAGE = 10_000
"""Journaled signals read at a time at a start (a rebuild without a snapshot reads every
one the journal keeps)."""


async def _restore_scorer(
    scorer: ScorerActor, store: StoreActor, recovery: Recovery, database: Path
) -> int:
    """The signals scored after the snapshot pending again, and the outcomes committed
    after it (a trade's signal_id, then record_signal_outcome) learned at their place
    among them (``ScorerModel.restore_scored``, a page of signals at a time): forgotten
    and learned as live; the number of signals taken."""
    outcomes = [
        PlacedOutcome(
            t.signal_scored, t.signal_id, t.pnl > 0, t.signal_pending, (t.strategy, t.symbol)
        )
        for t in recovery.trades
        if t.signal_id is not None and t.seq > scorer.last_trade_seq
    ]
    outcomes += [
        PlacedOutcome(o.scored, o.signal_id, o.success, o.pending)
        for o in recovery.outcomes
        if o.seq > scorer.last_outcome_seq
    ]
    # A forget after the snapshot (an older one restored) is made again at its place
    # among them; one journaled without a place, before everything learned here.
    forgets = [(s if s is not None else -1, name) for _, name, s in _forgets(recovery)]
    restoring = ScoredRestore(scorer.model, outcomes, forgets)
    ordinal = scorer.model.scored
    while True:
        try:
            page = await store.signals_after(ordinal, SIGNALS_PAGE)
        except Exception as exc:
            raise StartupError(f"cannot open database {database}: {exc}") from exc
        restoring.take(page)
        if len(page) < SIGNALS_PAGE:
            break
        ordinal = page[-1].ordinal
    taken = restoring.finish()
    if recovery.trades:
        scorer.last_trade_seq = max(scorer.last_trade_seq, recovery.trades[-1].seq)
    if recovery.outcomes:
        scorer.last_outcome_seq = max(scorer.last_outcome_seq, recovery.outcomes[-1].seq)
    return taken


def _forgets(recovery: Recovery) -> list[tuple[int, str, int | None]]:
    """(the last trade's seq when it was made, the strategy, the scorer's count of
    signals then: None in an entry from before it was kept) of each ``forget_strategy``
    journaled after the snapshot, in the journal's order."""
    return [
        (
            int(entry.data.get("trade_seq", 0)),
            entry.strategy,
            int(entry.data["scored"]) if "scored" in entry.data else None,
        )
        for entry in recovery.audit
        if entry.kind == "forget" and entry.strategy is not None
    ]


def _replay(
    recovery: Recovery,
    performance: PerformanceModel,
    scorer: ScorerActor,
    optimizer: Optimizer,
) -> None:
    """Feed what was committed after the snapshot, as the live daemon would have (the
    scorer has its outcomes from ``_restore_scorer``)."""
    now = wall_clock_ms()
    # A restart from an older snapshot than a forget replays the forgotten strategy's
    # trades: each forget is made again where it came among them, so a strategy that
    # traded after it has the figures of those trades only, as live (and is otherwise
    # forgotten again).
    forgets = _forgets(recovery)
    at = 0
    for trade in recovery.trades:
        while at < len(forgets) and trade.seq > forgets[at][0]:
            performance.detach(forgets[at][1])
            at += 1
        performance.record(trade)
    for _, name, _ in forgets[at:]:
        performance.detach(name)
    last_trade = {trade.strategy: trade.seq for trade in recovery.trades}
    for trade_seq, name, scored in forgets:
        if last_trade.get(name, 0) <= trade_seq:
            if scored is None:  # no place kept: what was learned after it goes too
                scorer.model.detach(name)
            optimizer.forget(name)
    for strategy in performance.strategies():
        with contextlib.suppress(Exception):
            optimizer.register(strategy, now)
