"""The routes: where each request goes, and how an actor's answer becomes the reply.

One table from request type to an actor's mailbox or an inline read, with what each
route admits (the names a request brings), wraps (the message the actor gets) and
unwraps (the reply, a page with its ``next`` cursor for the paged reads). Apart from the
Daemon (daemon/app.py), which builds it once its actors run, because it is the request
side of the wire contract: every request type and its path through the daemon in one
place.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from alphad.actors.admission import Admission, Hold
from alphad.actors.base import Actor, Handle
from alphad.actors.engine import wall_clock_ms
from alphad.actors.engine_messages import EngineInline
from alphad.actors.scorer import ScorerInline
from alphad.actors.store import AppendOutcome, AppendTrade, QueryAudit, QueryHistory, QuerySignals
from alphad.daemon.gateway import Route
from alphad.protocol.messages import (
    PAGE_BYTES,
    PAGE_ROWS,
    Audit,
    AuditEntry,
    ForceStatus,
    ForgetStrategy,
    GetAudit,
    GetHealth,
    GetHistory,
    GetPerformance,
    GetReport,
    GetSignals,
    GetStatus,
    GetTop,
    GetWeights,
    History,
    MarketBars,
    Ok,
    OptimizationState,
    RecordSignalOutcome,
    RecordTrade,
    Request,
    ResetWeights,
    RollbackWeights,
    ScoreSignal,
    SetComponent,
    SignalRecord,
    Signals,
    StatusReply,
    TradeRecorded,
    UpdateOptimization,
)


def routes(
    *,
    store: Handle[Actor],
    performance: Handle[Actor],
    engine: Handle[Actor],
    scorer: ScorerInline,
    engine_reads: EngineInline,
    admission: Admission,
    status: Callable[[], StatusReply],
    optimization_interval_s: float,
) -> dict[type[Request], Route]:
    """Where each request goes: an actor's mailbox, or answered inline.

    Inline routes are read synchronously in the gateway's receive callback, with no
    task and no await: ``score_signal`` (the hot path) and ``market_bars`` from the
    scorer's inline interface, ``get_weights`` and ``get_health`` from the engine's,
    ``get_status`` from the daemon's counters. Safe because the daemon runs on one
    event loop and an actor's state changes only while it handles a message or in the
    synchronous calls it declares inline (the scorer's scores and bars, the engine's
    registration of a strategy at its first trade), so such a read sees it whole
    between two of them (``ScorerInline``, ``EngineInline``).
    """
    admit_trade, admit_scored = admission.admit_trade, admission.admit_scored
    resolve_regime, signal_mark = scorer.resolve_regime, scorer.signal_mark

    # The names each trade with the store holds places for, by the request's identity
    # (alive until it is settled).
    holds: dict[int, Hold] = {}

    def admit_names(request: RecordTrade) -> None:
        # Under the regime it will count in: with [regimes] source = "detected" the
        # bot's label is not counted, so it must not use up max_regimes either.
        counted, _, _ = resolve_regime(request.symbol, request.entry_ts_ms, request.regime)
        holds[id(request)] = admit_trade(request.strategy, request.symbol, counted)

    def settle_trade(request: RecordTrade, result: Any) -> None:
        # Taken on by a trade the store recorded as new (Admission), and by one whose
        # answer did not come in time: the store may still record it, as it did before.
        recorded = isinstance(result, TimeoutError) or (
            isinstance(result, tuple) and not result[0]
        )
        hold = holds.pop(id(request), None)
        if hold is not None:
            admission.settle_trade(hold, recorded)

    def admit_scored_names(request: ScoreSignal) -> None:
        admit_scored(request.strategy, request.symbol, request.regime)

    def append_trade(request: RecordTrade) -> AppendTrade:
        _, source, detected = resolve_regime(request.symbol, request.entry_ts_ms, request.regime)
        mark = signal_mark(request.signal_id) if request.signal_id is not None else None
        return AppendTrade(request, detected, source == "detected", mark)

    return {
        ScoreSignal: Route(inline=scorer.score, admit=admit_scored_names),
        MarketBars: Route(inline=scorer.add_bars),
        RecordTrade: Route(
            actor=store,
            admit=admit_names,
            settle=settle_trade,
            wrap=append_trade,
            unwrap=lambda r, result: TradeRecorded(
                trade_id=r.trade_id, duplicate=result[0], seq=result[1]
            ),
        ),
        RecordSignalOutcome: Route(
            actor=store,
            wrap=lambda r: AppendOutcome(
                r.signal_id, r.success, wall_clock_ms(), *signal_mark(r.signal_id)
            ),
            unwrap=lambda r, result: Ok(),
        ),
        UpdateOptimization: Route(actor=engine, rpc_interval_s=optimization_interval_s),
        GetStatus: Route(inline=lambda r: status()),
        GetPerformance: Route(actor=performance),
        GetWeights: Route(inline=engine_reads.weights),
        GetHealth: Route(inline=engine_reads.health),
        GetAudit: Route(
            actor=store,
            wrap=lambda r: QueryAudit(r.since_seq, r.strategy, r.limit, PAGE_BYTES),
            unwrap=_audit_page,
        ),
        GetHistory: Route(
            actor=store,
            wrap=lambda r: QueryHistory(r.limit, r.before_cycle, PAGE_BYTES),
            unwrap=_history_page,
        ),
        GetReport: Route(actor=engine),
        GetSignals: Route(
            actor=store,
            wrap=lambda r: QuerySignals(
                strategy=r.strategy,
                symbol=r.symbol,
                since_ms=r.since_ms,
                after=r.after,
                limit=min(r.limit, PAGE_ROWS),
                max_bytes=PAGE_BYTES,
            ),
            unwrap=_signals_page,
        ),
        GetTop: Route(actor=performance),
        ForceStatus: Route(actor=engine, admin_only=True),
        ResetWeights: Route(actor=engine, admin_only=True),
        RollbackWeights: Route(actor=engine, admin_only=True),
        SetComponent: Route(actor=engine, admin_only=True),
        ForgetStrategy: Route(actor=engine, admin_only=True),
    }


def tag_of(kind: type | None) -> str:
    """A request type's wire tag, the label its metrics carry ("undecodable" for none)."""
    return kind.__struct_config__.tag if kind is not None else "undecodable"  # type: ignore[attr-defined]


def _audit_page(request: GetAudit, page: tuple[list[AuditEntry], bool]) -> Audit:
    entries, more = page
    return Audit(entries=entries, next=entries[-1].seq if more and entries else None)


def _history_page(request: GetHistory, page: tuple[list[OptimizationState], bool]) -> History:
    states = page[0]
    return History(states=states, next=states[-1].cycle if page[1] and states else None)


def _signals_page(request: GetSignals, page: tuple[list[SignalRecord], bool]) -> Signals:
    records, more = page
    return Signals(signals=records, next=records[-1].id if more and records else None)
