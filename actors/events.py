"""Messages that travel between actors inside the daemon (never on the wire)."""

from __future__ import annotations

import msgspec

from alphad.actors.base import Ask

UNKNOWN_REGIME = "unknown"
# How far a status keeps a strategy from trading: where a strategy has a status of its own
# and one in a regime (``[lifecycle] per_regime``), the stricter applies there.
STRICTNESS = {"active": 0, "degraded": 1, "suspended": 2, "retired": 3}


class ClosedTrade(msgspec.Struct, frozen=True, kw_only=True):
    """A trade committed to the store, in commit order (``seq`` increases by one)."""

    seq: int
    trade_id: str
    strategy: str
    symbol: str
    side: str
    pnl: float
    entry_ts_ms: int
    exit_ts_ms: int
    regime: str = UNKNOWN_REGIME
    size: float | None = None
    signal_id: str | None = None
    # Whether the scorer held ``signal_id`` pending when the trade came, and its count
    # of scored signals then (None: unknown, recorded before schema 6): only a pending
    # signal learns from it, and a start learns it at that place among the signals.
    signal_pending: bool | None = None
    signal_scored: int | None = None


class SignalOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """A bot's verdict on a scored signal, committed to the store (``seq`` of the outcome log)."""

    seq: int
    signal_id: str
    success: bool
    ts_ms: int
    # Whether the scorer held the signal pending when the outcome came, and its count
    # of scored signals then (None: unknown, recorded before schema 6): one it had
    # forgotten teaches nothing, at a start too.
    pending: bool | None = None
    scored: int | None = None


class SetEnabled(Ask[None], frozen=True):
    """Ask: switch the receiving component's optimization off or on (answered with None)."""

    enabled: bool
