"""alphad wire protocol v1: every request, reply and alert as one msgspec Struct.

Each message is a map with a ``type`` tag in snake_case. New fields are only ever
added with defaults, unknown fields are ignored, and an unknown ``type`` gets an
``error`` reply with code ``unknown_type``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

PROTOCOL_VERSION = 1

# Names of strategies, symbols and regimes: short, printable, no spaces. msgspec applies a
# pattern with re.search and the config with re.match, where a bare ``$`` also matches
# before a final newline: ``(?!\n)`` keeps "ema_trend\n" from passing as a second strategy.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:/@+\-]*$(?!\n)"
Name = Annotated[str, Meta(min_length=1, max_length=64, pattern=NAME_PATTERN)]
Identifier = Annotated[str, Meta(min_length=1, max_length=128)]
Text = Annotated[str, Meta(max_length=1024)]
Side = Literal["buy", "sell"]
Confidence = Annotated[float, Meta(ge=0.0, le=1.0)]
Confluence = Annotated[int, Meta(ge=0, le=1000)]
# Finite money amounts; NaN and infinities are refused by the bounds.
Amount = Annotated[float, Meta(ge=-1e15, le=1e15)]
# The size of a trade: the strategies are judged on pnl per unit of size, where a size near
# zero would turn one trade's pnl into an astronomic figure.
Size = Annotated[float, Meta(ge=1e-9, le=1e12)]
TimestampMs = Annotated[int, Meta(ge=0, le=2**53)]
# A time a bot sends: from 2000-01-01 to 2100-01-01 in milliseconds, so that seconds
# (1.7e9, read as January 1970) or microseconds are refused rather than misread.
EARLIEST_TS_MS = 946_684_800_000
LATEST_TS_MS = 4_102_444_800_000
WireTimestampMs = Annotated[int, Meta(ge=EARLIEST_TS_MS, le=LATEST_TS_MS)]
Limit = Annotated[int, Meta(ge=1, le=10_000)]
# Every reply is bounded, so that one request cannot make the daemon build (and queue for
# a peer) hundreds of megabytes: a paged read answers at most PAGE_ROWS rows or, for the
# audit log and the history, as many entries as fit in PAGE_BYTES (at least one), and
# says where the next page starts.
PAGE_ROWS = 1_000
PAGE_BYTES = 1 << 20
Seq = Annotated[int, Meta(ge=0)]
Status = Literal["active", "degraded", "suspended", "retired"]
GroupKey = Literal["strategy", "symbol", "regime"]
Window = Literal["all", "recent"]

STATUSES: tuple[str, ...] = ("active", "degraded", "suspended", "retired")
# A bar's size: a whole number of seconds, minutes, hours, days or weeks ("1m", "4h", "1d").
BAR_SIZE_PATTERN = r"^[1-9][0-9]{0,4}[smhdw]$(?!\n)"
BarSize = Annotated[str, Meta(min_length=2, max_length=6, pattern=BAR_SIZE_PATTERN)]
Price = Annotated[float, Meta(gt=0.0, le=1e15)]
Volume = Annotated[float, Meta(ge=0.0, le=1e18)]
# Bars in one market_bars request on the wire; [regimes] max_batch is the daemon's own cap.
MAX_BARS_PER_REQUEST = 10_000


class Request(msgspec.Struct, tag_field="type", kw_only=True):
    """Base of every request; ``request_id`` is echoed in the reply."""

    request_id: Identifier | None = None


class Reply(msgspec.Struct, tag_field="type", kw_only=True):
    """Base of every reply."""

    request_id: str | None = None


# --------------------------------------------------------------------------- requests


class ScoreSignal(Request, tag="score_signal"):
    """Ask whether a signal should be executed, and at what size."""

    strategy: Name
    symbol: Name
    side: Side
    confidence: Confidence
    confluence: Confluence = 1
    regime: Name | None = None
    signal_id: Identifier | None = None
    ts_ms: WireTimestampMs | None = None


class RecordTrade(Request, tag="record_trade"):
    """Report a closed trade; idempotent on ``trade_id``."""

    trade_id: Identifier
    strategy: Name
    symbol: Name
    side: Side
    pnl: Amount
    entry_ts_ms: WireTimestampMs
    exit_ts_ms: WireTimestampMs
    regime: Name | None = None
    size: Size | None = None
    signal_id: Identifier | None = None

    def __post_init__(self) -> None:
        # On decoding, msgspec turns this into a ValidationError: a bad_request.
        if self.exit_ts_ms < self.entry_ts_ms:
            raise ValueError(
                f"exit_ts_ms {self.exit_ts_ms} is before entry_ts_ms {self.entry_ts_ms}"
            )


class RecordSignalOutcome(Request, tag="record_signal_outcome"):
    """Report whether a scored signal succeeded. For a signal refused because its strategy
    was suspended, this is a paper trade: a bot that keeps paper-trading a suspended
    strategy reports them, and a suspension ends on them (docs/optimization.md)."""

    signal_id: Identifier
    success: bool


class MarketBar(msgspec.Struct, kw_only=True):
    """One closed bar: the time it opened, its prices and its volume."""

    ts_ms: WireTimestampMs
    open: Price
    high: Price
    low: Price
    close: Price
    volume: Volume = 0.0


class MarketBars(Request, tag="market_bars"):
    """Closed bars of one symbol and bar size, oldest first, for regime detection;
    answered once checked (bars are not journaled)."""

    symbol: Name
    bar_size: BarSize
    bars: Annotated[list[MarketBar], Meta(min_length=1, max_length=MAX_BARS_PER_REQUEST)]


class UpdateOptimization(Request, tag="update_optimization"):
    """Run one optimization cycle now."""

    regime: Name | None = None


class GetStatus(Request, tag="get_status"):
    """Daemon status."""


class GetPerformance(Request, tag="get_performance"):
    """Performance figures grouped by any non-empty subset of strategy, symbol, regime;
    at most ``PAGE_ROWS`` rows a reply, the next ones after the key ``after``."""

    group_by: Annotated[list[GroupKey], Meta(min_length=1, max_length=3)] = msgspec.field(
        default_factory=lambda: ["strategy"]
    )
    window: Window = "all"
    strategy: Name | None = None
    after: Annotated[list[str], Meta(max_length=3)] | None = None


class GetWeights(Request, tag="get_weights"):
    """Strategy weights, globally or for one regime."""

    regime: Name | None = None


class GetHealth(Request, tag="get_health"):
    """Lifecycle status of one or every strategy."""

    strategy: Name | None = None


class GetAudit(Request, tag="get_audit"):
    """Audit entries with ``seq`` greater than ``since_seq``, oldest first; at most
    ``limit``, and no more than fit in ``PAGE_BYTES``."""

    since_seq: Seq = 0
    strategy: Name | None = None
    limit: Limit = 100


class GetHistory(Request, tag="get_history"):
    """The latest optimization cycles before ``before_cycle`` (all when null), newest
    first; at most ``limit``, and no more than fit in ``PAGE_BYTES``."""

    limit: Limit = 20
    before_cycle: Seq | None = None


class GetReport(Request, tag="get_report"):
    """Everything a dashboard needs, a page at a time: the strategies in name order, each
    followed by its rows in every regime, after the key ``after`` (a strategy, or a
    strategy and a regime); at most ``PAGE_ROWS`` rows, and about ``PAGE_BYTES``."""

    after: Annotated[list[Name], Meta(min_length=1, max_length=2)] | None = None


class GetSignals(Request, tag="get_signals"):
    """Scored signals from the signals journal, oldest first, after the journal id
    ``after``; at most ``limit`` (and ``PAGE_ROWS``), and no more than fit in
    ``PAGE_BYTES``."""

    strategy: Name | None = None
    symbol: Name | None = None
    since_ms: TimestampMs | None = None
    limit: Limit = 100
    after: Seq | None = None


# The performance figures a ranking can use (every number of a performance row).
RankedMetric = Literal[
    "trades",
    "wins",
    "losses",
    "win_rate",
    "expectancy",
    "total_pnl",
    "gross_profit",
    "gross_loss",
    "profit_factor",
    "avg_win",
    "avg_loss",
    "sharpe",
    "sortino",
    "sqn",
    "psr",
    "max_drawdown",
    "current_drawdown",
]
TOP_MIN_TRADES = 20
"""Strategies with fewer trades in the window are left out of a ranking by default: one
lucky trade must not top the list (``get_top`` and the report's top strategies)."""


class GetTop(Request, tag="get_top"):
    """The ``n`` strategies with the highest ``metric`` (lowest with ``ascending``) over
    ``window``, among those with at least ``min_trades`` trades in it."""

    metric: RankedMetric = "expectancy"
    n: Annotated[int, Meta(ge=1, le=PAGE_ROWS)] = 5
    window: Window = "recent"
    min_trades: Annotated[int, Meta(ge=0)] = TOP_MIN_TRADES
    ascending: bool = False


class ForceStatus(Request, tag="force_status"):
    """Admin: set a strategy's lifecycle status by hand."""

    strategy: Name
    status: Status
    reason: Text
    operator: Name
    # Set the strategy's status in this regime only ([lifecycle] per_regime): active,
    # degraded or suspended.
    regime: Name | None = None


class ResetWeights(Request, tag="reset_weights"):
    """Admin: return every adaptive weight to its base weight."""

    reason: Text = ""
    operator: Name = "operator"


class RollbackWeights(Request, tag="rollback_weights"):
    """Admin: undo the last change of the adaptive weights (a cycle's or a reset), or
    every change after cycle ``to_cycle``."""

    reason: Text = ""
    operator: Name = "operator"
    to_cycle: Seq | None = None


ComponentName = Literal["scorer", "weighting", "lifecycle"]


class SetComponent(Request, tag="set_component"):
    """Admin: switch an optimization component off or on (docs/operations.md)."""

    name: ComponentName
    enabled: bool
    reason: Text
    operator: Name


class ForgetStrategy(Request, tag="forget_strategy"):
    """Admin: forget a strategy that is no longer configured: its weights, status and
    signal records go, its trades stay in the journal (docs/protocol.md)."""

    strategy: Name
    reason: Text
    operator: Name


AnyRequest = (
    ScoreSignal
    | RecordTrade
    | RecordSignalOutcome
    | MarketBars
    | UpdateOptimization
    | GetStatus
    | GetPerformance
    | GetWeights
    | GetHealth
    | GetAudit
    | GetHistory
    | GetReport
    | GetSignals
    | GetTop
    | ForceStatus
    | ResetWeights
    | RollbackWeights
    | SetComponent
    | ForgetStrategy
)

ADMIN_REQUESTS: tuple[type[Request], ...] = (
    ForceStatus,
    ResetWeights,
    RollbackWeights,
    SetComponent,
    ForgetStrategy,
)

# --------------------------------------------------------------------------- replies


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
    """One strategy's lifecycle state."""

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
