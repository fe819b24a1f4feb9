"""alphad wire protocol v1: every request, reply and alert as one msgspec Struct.

Each message is a map with a ``type`` tag in snake_case. New fields are only ever
added with defaults, unknown fields are ignored, and an unknown ``type`` gets an
``error`` reply with code ``unknown_type``.

This module is the one place to import a message from: it holds the requests, and
gives the field bounds and bases (protocol/wire.py) and the replies and the alert
(protocol/replies.py) under the same names.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from alphad.protocol.replies import (
    ALERT_TOPICS,
    METRIC_FIELDS,
    Alert,
    AnyReply,
    Audit,
    AuditEntry,
    BarsTaken,
    Components,
    Error,
    Health,
    HealthRow,
    History,
    Ok,
    OptimizationState,
    Performance,
    RegimeHealthRow,
    Report,
    SignalRecord,
    Signals,
    SignalScore,
    StatusChange,
    StatusChanged,
    StatusReply,
    StrategyForgotten,
    Top,
    TradeRecorded,
    WeightChange,
    Weights,
)
from alphad.protocol.wire import (
    BAR_SIZE_PATTERN,
    EARLIEST_TS_MS,
    LATEST_TS_MS,
    MAX_BARS_PER_REQUEST,
    MIN_MESSAGE_SIZE,
    NAME_PATTERN,
    PAGE_BYTES,
    PAGE_ROWS,
    PROTOCOL_VERSION,
    STATUSES,
    TEXT_PATTERN,
    TOP_MIN_TRADES,
    Amount,
    BarSize,
    Confidence,
    Confluence,
    GroupKey,
    Identifier,
    Limit,
    Name,
    Price,
    Reply,
    Request,
    Seq,
    Side,
    Size,
    Status,
    Text,
    TimestampMs,
    Volume,
    Window,
    WireTimestampMs,
)

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
    # A key's values: names (a value longer than any name cannot be a row's key).
    after: Annotated[list[Annotated[str, Meta(max_length=64)]], Meta(max_length=3)] | None = None


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
LOWER_IS_BETTER: frozenset[str] = frozenset(
    ("losses", "gross_loss", "avg_loss", "max_drawdown", "current_drawdown")
)
"""The ranked figures of which the best strategies have the lowest (``alphad report --top``
ranks them lowest first)."""


class GetTop(Request, tag="get_top"):
    """The ``n`` strategies with the highest ``metric`` (lowest with ``ascending``) over
    ``window``, among those with at least ``min_trades`` trades in it."""

    metric: RankedMetric = "expectancy"
    n: Annotated[int, Meta(ge=1, le=PAGE_ROWS)] = 5
    window: Window = "recent"
    min_trades: Annotated[int, Meta(ge=0)] = TOP_MIN_TRADES
    ascending: bool = False


class OperatorRequest(Request):
    """An admin request made in an operator's name (its ``operator`` field). "system" is
    alphad's own name for its automatic decisions, so no operator may take it: a status
    forced under it would read, and be undone, as automatic."""

    def __post_init__(self) -> None:
        # On decoding, msgspec turns this into a ValidationError: a bad_request.
        operator: str = self.operator  # type: ignore[attr-defined]
        if operator.casefold() == "system":
            raise ValueError(
                f"operator {operator!r} is reserved for alphad's automatic decisions:"
                " give the operator's own name"
            )


class ForceStatus(OperatorRequest, tag="force_status"):
    """Admin: set a strategy's lifecycle status by hand."""

    strategy: Name
    status: Status
    reason: Text
    operator: Name
    # Set the strategy's status in this regime only ([lifecycle] per_regime): active,
    # degraded or suspended.
    regime: Name | None = None


class ResetWeights(OperatorRequest, tag="reset_weights"):
    """Admin: return every adaptive weight to its base weight."""

    reason: Text = ""
    operator: Name = "operator"


class RollbackWeights(OperatorRequest, tag="rollback_weights"):
    """Admin: undo the last change of the adaptive weights (a cycle's or a reset), or
    every change after cycle ``to_cycle``."""

    reason: Text = ""
    operator: Name = "operator"
    to_cycle: Seq | None = None


ComponentName = Literal["scorer", "weighting", "lifecycle"]


class SetComponent(OperatorRequest, tag="set_component"):
    """Admin: switch an optimization component off or on (docs/operations.md)."""

    name: ComponentName
    enabled: bool
    reason: Text
    operator: Name


class ForgetStrategy(OperatorRequest, tag="forget_strategy"):
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
