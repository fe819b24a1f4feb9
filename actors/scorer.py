"""Signal quality: should a signal be taken, and at what size (docs/scoring.md).

quality = confidence × f_confluence × f_regime × f_history, every factor in [0, 1], so
quality never exceeds the bot's own confidence. The scorer answers ``score_signal``
from its own state, inline on the gateway's receive path: weights, statuses and regime
fits are pushed to it after each optimization cycle, outcomes arrive in its mailbox.

This module is the actor: its messages, its inline interface and the journal rows of
scored signals. The model it feeds is ``ScorerModel`` (actors/scorer_model.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import Any

import msgspec
import structlog

from alphad.actors.base import TAKE_STATE, Actor, Ask, Handle, encode_in_slices
from alphad.actors.events import ClosedTrade, SetEnabled, SignalOutcome
from alphad.actors.figures import Figures
from alphad.actors.lifecycle_shapes import PaperTrades
from alphad.actors.market import MarketRegimes, RegimesConfig
from alphad.actors.scorer_model import ScorerModel
from alphad.actors.scorer_state import state_header, state_pending, state_setups
from alphad.actors.store import AppendSignal, AppendSignals
from alphad.protocol.messages import BarsTaken, MarketBars, ScoreSignal, SignalScore

log = structlog.get_logger("alphad.scorer")

HELD_SIGNALS = 100_000
"""Scored signals the scorer keeps while the store has not taken its last rows (as many
as the store keeps while its writes fail); the oldest beyond are not journaled."""


def _quietly(future: asyncio.Future[None]) -> None:
    """Read a handed batch's outcome, so that an error set at the store's stop is not
    logged as never retrieved."""
    if not future.cancelled():
        future.exception()


class SetAllocation(msgspec.Struct, frozen=True, kw_only=True):
    """Tell: statuses, effective weights and weight multipliers after a change."""

    statuses: dict[str, str]
    weights: dict[str, float]
    multipliers: dict[str, float]
    regime_multipliers: dict[str, dict[str, float]]
    regime_statuses: dict[str, dict[str, str]] = msgspec.field(default_factory=dict)


class StageRegimeFit(msgspec.Struct, frozen=True):
    """Tell: a cycle's recent figures overall and per regime, to learn how strategies fit
    regimes, served once the cycle is on disk (``ServeRegimeFit``) and in its snapshot."""

    overall: Mapping[str, Figures]
    by_regime: Mapping[str, Mapping[str, Figures]]


class ServeRegimeFit(msgspec.Struct, frozen=True):
    """Tell: the staged fits' cycle is on disk (serve them) or was undone (drop them)."""

    serve: bool


class FlushSignals(msgspec.Struct, frozen=True):
    """Tell: hand the scored signals kept so far to the store (sent every second)."""


class DetachSignals(Ask[tuple[tuple[Any, ...], int]], frozen=True):
    """Ask: take out a strategy's records (``ScorerModel.detach``); answered with them and
    the count of signals scored so far (where a start makes the forget again)."""

    strategy: str


class AttachSignals(Ask[None], frozen=True):
    """Ask: put back what a ``DetachSignals`` took out (a forget undone)."""

    detached: Any


class SignalSummary(Ask[dict[str, Any]], frozen=True):
    """Ask: the signal quality summary of ``get_report``."""


class PaperRecord(Ask[dict[str, PaperTrades]], frozen=True):
    """Ask: the paper trades of the suspended strategies (``ScorerModel.paper_record``)."""


class RegimePaperRecord(Ask[dict[str, dict[str, PaperTrades]]], frozen=True):
    """Ask: the paper trades of the strategies suspended in a regime
    (``ScorerModel.regime_paper_record``)."""


class ScorerStats(msgspec.Struct, frozen=True, kw_only=True):
    """The scorer's counters, as ``ScorerActor.stats()`` took them."""

    signals_not_kept: int  # scored signals whose journal rows the store's mailbox refused


class ScorerInline(msgspec.Struct, frozen=True, kw_only=True):
    """The scorer's synchronous interface, called in the gateway's receive callback.

    ``score_signal`` is the hot path: answered with no task, no mailbox and no await
    between receive and reply. That is safe because the daemon runs on one event loop
    and these calls never await: the scorer's other state changes only while it handles
    a message, so each call sees it between two messages, as an ask would. What they
    change themselves (pending signals, the journal rows waiting for a flush, the bars)
    is the scorer's, changed only here and by its own messages.
    """

    score: Callable[[ScoreSignal], SignalScore]  # score_signal
    add_bars: Callable[[MarketBars], BarsTaken]  # market_bars
    # An outcome's signal (record_signal_outcome, a trade's signal_id): whether it is
    # pending or scored lately, and how many signals the scorer has scored so far.
    signal_mark: Callable[[str], tuple[bool, int]]
    # A trade's regime as the bars read it at its entry: (regime, source, detected).
    resolve_regime: Callable[[str, int, str | None], tuple[str | None, str | None, str | None]]


class ScorerActor(Actor):
    """Answers ``score_signal`` inline from its own state; learns outcomes from its mailbox."""

    name = "scorer"

    def __init__(
        self,
        model: ScorerModel,
        store: Handle[Actor],
        *,
        last_trade_seq: int = 0,
        last_outcome_seq: int = 0,
        mailbox_size: int = 8192,
        market: MarketRegimes | None = None,
    ) -> None:
        super().__init__(mailbox_size)
        self.model = model
        self.store = store
        # The bars and detected regimes, fed by market_bars on the receive path.
        self.market = market or MarketRegimes(RegimesConfig())
        self.last_trade_seq = last_trade_seq
        self.last_outcome_seq = last_outcome_seq
        self.signals_not_kept = 0
        self.flush_every = 1024
        # The last rows handed to the store, answered when its next write takes them:
        # until then the rows stay here, at most HELD_SIGNALS of them (a write that hangs,
        # on a frozen or stalled disk, let a message of rows a second pile up in the
        # store's mailbox, 6 GB before it was full).
        self._handed: asyncio.Future[None] | None = None
        self._signal_rows: list[AppendSignal] = []
        self._unflushed: set[str] = set()  # the signal ids of _signal_rows
        self._foreign_warned: set[str] = set()  # strategies told of (_foreign_signal)

    def stats(self) -> ScorerStats:
        """The scorer's counters for the metrics."""
        return ScorerStats(signals_not_kept=self.signals_not_kept)

    def inline(self) -> ScorerInline:
        """What the gateway may call synchronously (see ``ScorerInline``)."""
        return ScorerInline(
            score=self.score,
            add_bars=self.add_bars,
            signal_mark=self.signal_mark,
            resolve_regime=self.market.resolve,
        )

    def score(self, request: ScoreSignal) -> SignalScore:
        """The hot path: score from the model's state; the journal row waits for a flush."""
        market = self.market
        ts_ms = request.ts_ms
        if not market.symbols and market.keeps_bot:
            # No bar was ever taken and the bot's label counts: the request as sent.
            reply = self.model.score(request)
            detected = None
            source = reply.regime_source
        else:
            if ts_ms is None:
                ts_ms = time.time_ns() // 1_000_000
            regime, source, detected = market.resolve(request.symbol, ts_ms, request.regime)
            scored = request
            if regime != request.regime:
                scored = msgspec.structs.replace(request, regime=regime)
            reply = self.model.score(scored)
            reply.regime_source = source
        rows = self._signal_rows
        signal_id = reply.signal_id or ""
        rows.append(
            AppendSignal(
                signal_id,
                ts_ms if ts_ms is not None else time.time_ns() // 1_000_000,
                request.strategy,
                request.symbol,
                request.side,
                request.confidence,
                request.confluence,
                request.regime,
                reply.quality,
                reply.execute,
                reply.size_multiplier,
                reply.weight,
                reply.status,
                "; ".join(reply.reasons),
                detected,
                source,
                self.model.scored,
            )
        )
        self._unflushed.add(signal_id)
        if len(rows) >= self.flush_every:
            self.flush_signals()
        return reply

    def add_bars(self, request: MarketBars) -> BarsTaken:
        """``market_bars``, answered on the receive path: checked, taken, read."""
        return self.market.add(request)

    def signal_mark(self, signal_id: str) -> tuple[bool, int]:
        """Whether the signal is pending or scored since the last flush to the store (the
        store's journal knows the others), and the scorer's count of scored signals: the
        outcome keeps both, so that a start learns it at the same place as live.

        A signal not yet flushed goes to the store now, ahead of its outcome: they are
        committed together or the signal first, so a start after a kill finds the signal
        of every outcome acknowledged (it learns only those of journaled signals)."""
        model = self.model
        if signal_id in self._unflushed:
            # Now, even while the store has not taken the last rows: they are ahead of
            # these in its mailbox, and these ahead of the outcome.
            self.flush_signals(now=True)
            return True, model.scored
        return signal_id in model.pending, model.scored

    def flush_signals(self, *, now: bool = False) -> None:
        """Hand the scored signals to the store in one message (one insert per batch),
        once it has taken the last one (``now``: whatever it has taken: at the stop, and
        for a signal whose outcome follows)."""
        rows = self._signal_rows
        if not rows:
            return
        handed = self._handed
        if handed is not None and not handed.done() and not now:
            if len(rows) >= HELD_SIGNALS + self.flush_every:
                # The oldest go: the answers were given, only their journal rows are lost.
                dropped = rows[: self.flush_every]
                del rows[: self.flush_every]
                self._unflushed.difference_update(row.signal_id for row in dropped)
                self.signals_not_kept += len(dropped)
            return
        self._signal_rows = []
        self._unflushed = set()
        try:
            self._handed = self.store.ask_future(AppendSignals(rows))
        except Exception:
            # The answers were given; only their journal rows are lost, and counted.
            self.signals_not_kept += len(rows)
            return
        # Stopped before its turn, the store sets an error nobody else reads.
        self._handed.add_done_callback(_quietly)

    async def on_stop(self) -> None:
        # The store stops after the scorer: the last signals still reach it.
        self.flush_signals(now=True)

    def learn_trade(self, trade: ClosedTrade) -> None:
        """A committed trade that carries a signal_id is that signal's outcome."""
        if trade.seq <= self.last_trade_seq:
            return
        self.last_trade_seq = trade.seq
        if trade.signal_id is not None and trade.signal_pending is not False:
            owner = (trade.strategy, trade.symbol)
            if not self.model.record_outcome(trade.signal_id, trade.pnl > 0, owner):
                self._foreign_signal(trade)

    def _foreign_signal(self, trade: ClosedTrade) -> None:
        """Say once per strategy that its trades name signals scored for another strategy
        or symbol (a bot's bug): recorded, but not those signals' outcomes."""
        entry = self.model.pending.get(trade.signal_id or "")
        warned = self._foreign_warned
        if entry is None or trade.strategy in warned or len(warned) >= 1_000:
            return  # (past a thousand strategies told of, no more: not a line per trade)
        warned.add(trade.strategy)
        log.warning(
            "trade_names_another_signal",
            trade_id=trade.trade_id,
            strategy=trade.strategy,
            symbol=trade.symbol,
            signal_id=trade.signal_id,
            signal_strategy=entry[0][0],
            signal_symbol=entry[0][1],
        )

    def learn_outcome(self, outcome: SignalOutcome) -> None:
        """A committed ``record_signal_outcome``."""
        if outcome.seq <= self.last_outcome_seq:
            return
        self.last_outcome_seq = outcome.seq
        if outcome.pending is not False:  # one the scorer had forgotten teaches nothing
            self.model.record_outcome(outcome.signal_id, outcome.success)

    async def handle(self, message: Any) -> Any:
        model = self.model
        match message:
            case ClosedTrade():
                self.learn_trade(message)
                return None
            case SignalOutcome():
                self.learn_outcome(message)
                return None
            case SetAllocation():
                model.set_allocation(
                    message.statuses,
                    message.weights,
                    message.multipliers,
                    message.regime_multipliers,
                    message.regime_statuses,
                )
                return None
            case StageRegimeFit():
                model.stage_regime_fit(message.overall, message.by_regime)
                return None
            case ServeRegimeFit():
                model.serve_staged_fit(message.serve)
                return None
            case SetEnabled():
                model.enabled = message.enabled
                return None
            case FlushSignals():
                self.flush_signals()
                return None
            case DetachSignals():
                return model.detach(message.strategy), model.scored
            case AttachSignals():
                model.attach(message.detached)
                return None
            case PaperRecord():
                return model.paper_record()
            case RegimePaperRecord():
                return model.regime_paper_record()
            case SignalSummary():
                summary = model.summary()
                summary["not_kept"] = self.signals_not_kept
                return summary
            case _ if message is TAKE_STATE:
                # Tens of thousands of setups and pending signals: encoded in slices, the loop
                # answering score_signal between them. Scoring adds pending signals and
                # counts, so those are taken first, at one instant; outcomes, which change
                # the setups, wait in the mailbox until the snapshot is taken.
                state = state_header(model)
                pending = list(model.pending)  # the keys only: copying the items takes 20 ms
                state["setups"] = await encode_in_slices(state_setups(model))
                state["pending"] = await encode_in_slices(state_pending(model, pending))
                return {
                    "model": state,
                    "last_trade_seq": self.last_trade_seq,
                    "last_outcome_seq": self.last_outcome_seq,
                    # The bars held, a series a slice (actors/market.py).
                    "market": await encode_in_slices(self.market.state_series(), every=1),
                }
        raise TypeError(f"scorer cannot handle {type(message).__name__}")
