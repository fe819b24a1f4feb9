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


class SignalOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """A bot's verdict on a scored signal, committed to the store (``seq`` of the outcome log)."""

    seq: int
    signal_id: str
    success: bool
    ts_ms: int


class SetEnabled(Ask[None], frozen=True):
    """Ask: switch the receiving component's optimization off or on (answered with None)."""

    enabled: bool
