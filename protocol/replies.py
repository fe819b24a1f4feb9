"""Every reply of the wire protocol and the alert: what the daemon answers and
publishes. Import them from ``alphad.protocol.messages``, the one place for every
message; they live here so that the requests and the replies each read in one sitting.
"""

from __future__ import annotations

from typing import Any

import msgspec

from alphad.protocol.wire import (
    PROTOCOL_VERSION,
    TOP_MIN_TRADES,
    Reply,
)


class SignalScore(Reply, tag="signal_score"):
    """The answer to ``score_signal``; ``quality`` never exceeds the confidence sent."""

    signal_id: str | None
    quality: float
    execute: bool
    size_multiplier: float
    weight: float
    status: str
    reasons: list[str] = msgspec.field(default_factory=list)
    # The regime the signal was scored in, and where it came from: "bot" (the request's),
    # "detected" (alphad's reading at the signal's time; null regime: no reading yet), or
    # null (no regime: the bot sent none where its label counts).
    regime: str | None = None
    regime_source: str | None = None


class TradeRecorded(Reply, tag="trade_recorded"):
    """Sent only after the trade is committed; ``duplicate`` for a resent ``trade_id``."""

    trade_id: str
    duplicate: bool
    seq: int


class Ok(Reply, tag="ok"):
    """A request that has nothing to return succeeded."""


class BarsTaken(Reply, tag="bars_taken"):
    """A batch of bars was checked and taken: ``taken`` new bars, ``repeated`` leading
    ones already held as sent; the series' regime by the rule set after its last bar
    (null while it warms up), read when the bar that opened at ``regime_ts_ms`` closed."""

    symbol: str
    bar_size: str
    taken: int
    repeated: int
    held: int
    regime: str | None = None
    confidence: float | None = None
    regime_ts_ms: int | None = None


class WeightChange(msgspec.Struct, kw_only=True):
    """One strategy's weight moved during a cycle or by an operator."""

    strategy: str
    regime: str | None
    old: float
    new: float
    reason: str


class StatusChange(msgspec.Struct, kw_only=True):
    """One strategy's lifecycle status changed."""

    strategy: str
    old: str
    new: str
    reason: str
    actor: str = "system"
    # The regime of a per-regime change (docs/regimes.md#per-regime-lifecycle); null
    # for the strategy's own status.
    regime: str | None = None


class OptimizationState(Reply, tag="optimization_state"):
    """The outcome of one optimization cycle."""

    cycle: int
    ts_ms: int
    regime: str | None
    weights: dict[str, float]
    statuses: dict[str, str]
    weight_changes: list[WeightChange] = msgspec.field(default_factory=list)
    status_changes: list[StatusChange] = msgspec.field(default_factory=list)
    weighting_frozen: bool = False
    # What the caller may not expect, e.g. a regime never seen in a trade or a signal.
    notes: list[str] = msgspec.field(default_factory=list)
    # regime -> strategy -> its status in that regime, where not active (per_regime).
    regime_statuses: dict[str, dict[str, str]] = msgspec.field(default_factory=dict)


class StatusReply(Reply, tag="status"):
    """Daemon status."""

    version: str
    uptime_s: float
    trades: int
    strategies: int
    cycle: int
    components: dict[str, str]
    protocol: int = PROTOCOL_VERSION
    enabled: dict[str, bool] = msgspec.field(default_factory=dict)
    requests: int = 0
    errors: int = 0
    mailboxes: dict[str, int] = msgspec.field(default_factory=dict)
    # When each optimization component was last switched off or on by an operator (ms);
    # a component off since the start by the config has no entry.
    switched_ms: dict[str, int] = msgspec.field(default_factory=dict)
    # The seq of the newest committed audit entry (the newest alert's; 0: none yet): where
    # a new subscriber starts, so that alerts it misses from then on are backfilled. None
    # from a daemon before 2026-12-08, which did not send it.
    audit_seq: int | None = None


METRIC_FIELDS: tuple[str, ...] = (
    "trades",
    "wins",
    "losses",
    "win_rate",
    "expectancy",
    "total_pnl",
    "gross_profit",
    "gross_loss",
    "profit_factor",
    "profit_factor_infinite",
    "avg_win",
    "avg_loss",
    "sharpe",
    "sortino",
    "sqn",
    "psr",
    "max_drawdown",
    "current_drawdown",
)
"""Keys of every performance row, after the group's keys (strategy, symbol, regime)."""


class Performance(Reply, tag="performance"):
    """Rows of performance figures: the group's keys, then ``METRIC_FIELDS``; ``next``,
    when more rows follow, is the ``after`` of the next page."""

    group_by: list[str]
    window: str
    rows: list[dict[str, Any]]
    next: list[str] | None = None


class Weights(Reply, tag="weights"):
    """Strategy weights: base, adaptive, effective (0 when suspended) and normalized."""

    regime: str | None
    base: dict[str, float]
    adaptive: dict[str, float]
    effective: dict[str, float]
    normalized: dict[str, float]
    frozen: bool = False
    # What the caller may not expect, e.g. a regime never seen in a trade or a signal.
    notes: list[str] = msgspec.field(default_factory=list)
    # For rollback_weights: the cycle whose weights are restored (null: unknown, from a
    # snapshot older than the rollback history).
    restored_cycle: int | None = None


class RegimeHealthRow(msgspec.Struct, kw_only=True):
    """One strategy's lifecycle state in one regime (per_regime)."""

    regime: str
    status: str
    since_ms: int
    reason: str
    violations: int
    suspensions: int = 0


class HealthRow(msgspec.Struct, kw_only=True):
    """One strategy's lifecycle state; ``since_ms`` is 0 while it is not known (a
    strategy only scored, or configured and not yet assessed)."""

    strategy: str
    status: str
    since_ms: int
    reason: str
    violations: int
    suspensions: int = 0
    # Its state in each regime it traded in, with [lifecycle] per_regime on.
    regimes: list[RegimeHealthRow] = msgspec.field(default_factory=list)


class Health(Reply, tag="health"):
    """Lifecycle state of strategies."""

    rows: list[HealthRow]


class AuditEntry(msgspec.Struct, kw_only=True):
    """One journaled decision; ``seq`` increases by one per entry."""

    seq: int
    ts_ms: int
    kind: str
    strategy: str | None
    old: Any
    new: Any
    reason: str
    actor: str
    data: dict[str, Any] = msgspec.field(default_factory=dict)


class Audit(Reply, tag="audit"):
    """Audit entries, oldest first; ``next``, when more entries follow, is the
    ``since_seq`` of the next page."""

    entries: list[AuditEntry]
    next: int | None = None


class History(Reply, tag="history"):
    """Optimization cycles, newest first; ``next``, when more cycles follow, is the
    ``before_cycle`` of the next page."""

    states: list[OptimizationState]
    next: int | None = None


class Report(Reply, tag="report"):
    """Everything a dashboard needs, one page of it; ``next``, when more follow, is the
    ``after`` of the next page (``protocol.pages.merge_report`` joins them)."""

    status: StatusReply
    strategies: list[dict[str, Any]]
    allocation: dict[str, Any]
    health: list[HealthRow]
    regime_effectiveness: list[dict[str, Any]]
    signal_quality: dict[str, Any]
    top_strategies: list[dict[str, Any]]
    # How top_strategies are ranked: the figure, recent window, and the least trades.
    top_metric: str = "expectancy"
    top_min_trades: int = TOP_MIN_TRADES
    next: list[str] | None = None


class SignalRecord(msgspec.Struct, kw_only=True):
    """One journaled scored signal: the request's fields, the answer given, its outcome."""

    id: int
    signal_id: str
    ts_ms: int
    strategy: str
    symbol: str
    side: str
    confidence: float
    confluence: int
    regime: str | None
    quality: float
    execute: bool
    size_multiplier: float
    weight: float
    status: str
    reasons: str
    success: bool | None = None
    # alphad's reading at the signal's time (``regime`` is the bot's label), and which of
    # the two the signal was scored in: "bot", "detected" or null (the bot's, none sent).
    detected_regime: str | None = None
    regime_source: str | None = None


class Signals(Reply, tag="signals"):
    """Journaled signals, oldest first; ``next``, when more follow, is the ``after`` of
    the next page."""

    signals: list[SignalRecord]
    next: int | None = None


class Top(Reply, tag="top"):
    """Performance rows (as ``performance``'s) of the best strategies by ``metric``."""

    metric: str
    window: str
    min_trades: int
    rows: list[dict[str, Any]]


class StatusChanged(Reply, tag="status_changed"):
    """A forced status change took effect."""

    strategy: str
    old: str
    new: str
    reason: str
    operator: str
    seq: int
    regime: str | None = None


class Components(Reply, tag="components"):
    """Which optimization components are on; ``seq`` of the audit entry of a change."""

    components: dict[str, bool]
    changed: bool = False
    seq: int | None = None


class StrategyForgotten(Reply, tag="strategy_forgotten"):
    """A strategy was forgotten; ``seq`` of its audit entry (kind ``forget``)."""

    strategy: str
    status: str
    reason: str
    operator: str
    seq: int


class Error(Reply, tag="error"):
    """Any failure; ``code`` is one of ``protocol.errors.ERROR_CODES``."""

    code: str
    message: str


AnyReply = (
    SignalScore
    | TradeRecorded
    | Ok
    | BarsTaken
    | OptimizationState
    | StatusReply
    | Performance
    | Weights
    | Health
    | Audit
    | History
    | Report
    | Signals
    | Top
    | StatusChanged
    | Components
    | StrategyForgotten
    | Error
)


class Alert(msgspec.Struct, tag_field="type", tag="alert", kw_only=True):
    """Published on the alerts socket as ``[topic, payload]``; ``seq`` is the audit seq."""

    seq: int
    ts_ms: int
    kind: str
    strategy: str | None
    old: Any
    new: Any
    reason: str
    data: dict[str, Any] = msgspec.field(default_factory=dict)
    # Who made the change: "system" for a cycle's, the operator's name for a forced one.
    actor: str = "system"
    # The regime a status or weight change is in; null for the strategy's own status,
    # its global weight, and the other kinds.
    regime: str | None = None

    @classmethod
    def from_audit(cls, entry: AuditEntry) -> Alert:
        """The alert published for an audit entry (every alert is one first)."""
        return cls(
            seq=entry.seq,
            ts_ms=entry.ts_ms,
            kind=entry.kind,
            strategy=entry.strategy,
            old=entry.old,
            new=entry.new,
            reason=entry.reason,
            data=entry.data,
            actor=entry.actor,
            regime=entry.data.get("regime") if entry.kind in _REGIME_KINDS else None,
        )


_REGIME_KINDS = frozenset(("status", "weight"))


ALERT_TOPICS: tuple[str, ...] = (
    "status.active",
    "status.degraded",
    "status.suspended",
    "status.retired",
    "weights",
    "cycle",
    "component",
    "forget",
)
