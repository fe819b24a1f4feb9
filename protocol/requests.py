"""Every request a client can send, written once: a builder per request that becomes a
blocking method of ``Client`` and an awaited one of ``AsyncClient``.

A new request is one entry in ``Requests``: the method's signature, its docstring and
``return Call.of(TheRequest, TheReply, locals())`` (the parameters are named as the
request's fields). An admin request is never resent (``protocol.core.SENT_ONCE``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Coroutine, Mapping, Sequence
from types import MethodType
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, overload

from alphad.protocol import messages as wire
from alphad.protocol.core import Call

if TYPE_CHECKING:
    from alphad.protocol.client import AsyncClient, Client

P = ParamSpec("P")
Timeout = float | None  # seconds per attempt; None: the client's timeout_s
R = TypeVar("R", bound=wire.Reply)


class request_method(Generic[P, R]):
    """A builder that is a method: blocking on a ``Client``, awaited on an ``AsyncClient``.

    Type checkers read the overloads of ``__get__`` (the builder's parameters, the reply
    or an awaitable of it); at run time the method is one of two small wrappers, bound
    like any method and showing the builder's signature and docstring.
    """

    def __init__(self, build: Callable[P, Call[R]]) -> None:
        self.build = build
        self.__doc__ = build.__doc__
        signature = inspect.signature(build)
        client = inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY)
        returns = str(signature.return_annotation).removeprefix("Call[").removesuffix("]")
        with_self = signature.replace(
            parameters=[client, *signature.parameters.values()], return_annotation=returns
        )

        def blocking(client: Client, /, *args: P.args, **kwargs: P.kwargs) -> R:
            return client.call(*build(*args, **kwargs))

        async def awaited(client: AsyncClient, /, *args: P.args, **kwargs: P.kwargs) -> R:
            return await client.call(*build(*args, **kwargs))

        method: Any
        for method in (blocking, awaited):
            method.__name__ = method.__qualname__ = build.__name__
            method.__doc__ = build.__doc__
            method.__signature__ = with_self  # what help() and editors show
        self.blocking, self.awaited = blocking, awaited

    @overload
    def __get__(self, client: None, owner: type) -> request_method[P, R]: ...
    @overload
    def __get__(self, client: AsyncClient, owner: type) -> Callable[P, Coroutine[Any, Any, R]]: ...
    @overload
    def __get__(self, client: Client, owner: type) -> Callable[P, R]: ...
    def __get__(self, client: Any, owner: type | None = None) -> Any:
        if client is None:
            return self
        return MethodType(self.awaited if client.awaited else self.blocking, client)


class Requests:
    """One typed method per request, shared by ``Client`` and ``AsyncClient``.

    Each method's parameters are its request's fields, plus ``timeout_s=`` to wait
    longer or shorter than the client's default.
    """

    @request_method
    def score_signal(
        strategy: str,
        symbol: str,
        side: wire.Side,
        confidence: float,
        confluence: int = 1,
        regime: str | None = None,
        signal_id: str | None = None,
        ts_ms: int | None = None,
        *,
        timeout_s: Timeout = None,
    ) -> Call[wire.SignalScore]:
        """Should this signal be taken, and at what size?"""
        return Call.of(wire.ScoreSignal, wire.SignalScore, locals())

    @request_method
    def record_trade(
        trade_id: str,
        strategy: str,
        symbol: str,
        side: wire.Side,
        pnl: float,
        entry_ts_ms: int,
        exit_ts_ms: int,
        regime: str | None = None,
        size: float | None = None,
        signal_id: str | None = None,
        *,
        timeout_s: Timeout = None,
    ) -> Call[wire.TradeRecorded]:
        """Report a closed trade (net pnl); answered once it is on disk.

        Resent safely: a repeated ``trade_id`` is answered ``duplicate: true``.
        """
        return Call.of(wire.RecordTrade, wire.TradeRecorded, locals())

    @request_method
    def record_signal_outcome(
        signal_id: str, success: bool, *, timeout_s: Timeout = None
    ) -> Call[wire.Ok]:
        """Report whether a scored signal succeeded."""
        return Call.of(wire.RecordSignalOutcome, wire.Ok, locals())

    @request_method
    def market_bars(
        symbol: str,
        bar_size: str,
        bars: Sequence[wire.MarketBar | Mapping[str, Any]],
        *,
        timeout_s: Timeout = None,
    ) -> Call[wire.BarsTaken]:
        """Closed bars of one symbol and bar size, oldest first (``MarketBar`` or maps of
        its fields), for regime detection. Resent safely: bars already held as sent are
        counted in ``repeated``, not taken twice."""
        fields = {**locals(), "bars": [_bar(bar) for bar in bars]}
        return Call.of(wire.MarketBars, wire.BarsTaken, fields)

    @request_method
    def update_optimization(
        regime: str | None = None, *, timeout_s: Timeout = None
    ) -> Call[wire.OptimizationState]:
        """Run one optimization cycle now (never resent)."""
        return Call.of(wire.UpdateOptimization, wire.OptimizationState, locals())

    @request_method
    def get_status(*, timeout_s: Timeout = None) -> Call[wire.StatusReply]:
        """The daemon's status."""
        return Call.of(wire.GetStatus, wire.StatusReply, locals())

    @request_method
    def get_performance(
        group_by: Sequence[wire.GroupKey] = ("strategy",),
        window: wire.Window = "all",
        strategy: str | None = None,
        *,
        after: list[str] | None = None,
        timeout_s: Timeout = None,
    ) -> Call[wire.Performance]:
        """Performance rows grouped by strategy, symbol and/or regime; a page of at most
        ``PAGE_ROWS``, the next one from ``after=reply.next``."""
        fields = {**locals(), "group_by": list(group_by)}
        return Call.of(wire.GetPerformance, wire.Performance, fields)

    @request_method
    def get_weights(regime: str | None = None, *, timeout_s: Timeout = None) -> Call[wire.Weights]:
        """Base, adaptive, effective and normalized weights."""
        return Call.of(wire.GetWeights, wire.Weights, locals())

    @request_method
    def get_health(strategy: str | None = None, *, timeout_s: Timeout = None) -> Call[wire.Health]:
        """Lifecycle status of one or every strategy."""
        return Call.of(wire.GetHealth, wire.Health, locals())

    @request_method
    def get_audit(
        since_seq: int = 0,
        strategy: str | None = None,
        limit: int = 100,
        *,
        timeout_s: Timeout = None,
    ) -> Call[wire.Audit]:
        """Audit entries after ``since_seq``, oldest first."""
        return Call.of(wire.GetAudit, wire.Audit, locals())

    @request_method
    def get_history(
        limit: int = 20, *, before_cycle: int | None = None, timeout_s: Timeout = None
    ) -> Call[wire.History]:
        """The latest optimization cycles, newest first; the next page from
        ``before_cycle=reply.next``."""
        return Call.of(wire.GetHistory, wire.History, locals())

    @request_method
    def get_report(
        *, after: list[str] | None = None, timeout_s: Timeout = None
    ) -> Call[wire.Report]:
        """Everything a dashboard needs, a page of it: status, figures per strategy,
        allocation, health, regime effectiveness, signal quality, the top strategies;
        the next page from ``after=reply.next`` (``report()`` reads them all)."""
        return Call.of(wire.GetReport, wire.Report, locals())

    @request_method
    def get_signals(
        strategy: str | None = None,
        symbol: str | None = None,
        since_ms: int | None = None,
        limit: int = 100,
        *,
        after: int | None = None,
        timeout_s: Timeout = None,
    ) -> Call[wire.Signals]:
        """Scored signals from the journal, oldest first; the next page from
        ``after=reply.next``."""
        return Call.of(wire.GetSignals, wire.Signals, locals())

    @request_method
    def get_top(
        metric: wire.RankedMetric = "expectancy",
        n: int = 5,
        window: wire.Window = "recent",
        min_trades: int = wire.TOP_MIN_TRADES,
        ascending: bool = False,
        *,
        timeout_s: Timeout = None,
    ) -> Call[wire.Top]:
        """The best ``n`` strategies by a performance figure, among those with at least
        ``min_trades`` trades in the window."""
        return Call.of(wire.GetTop, wire.Top, locals())

    @request_method
    def force_status(
        strategy: str,
        status: wire.Status,
        reason: str,
        operator: str,
        regime: str | None = None,
        *,
        timeout_s: Timeout = None,
    ) -> Call[wire.StatusChanged]:
        """Admin socket: set a strategy's lifecycle status, or its status in a ``regime``
        (``[lifecycle] per_regime``; never resent)."""
        return Call.of(wire.ForceStatus, wire.StatusChanged, locals())

    @request_method
    def reset_weights(
        reason: str = "", operator: str = "operator", *, timeout_s: Timeout = None
    ) -> Call[wire.Weights]:
        """Admin socket: adaptive weights back to base (never resent)."""
        return Call.of(wire.ResetWeights, wire.Weights, locals())

    @request_method
    def rollback_weights(
        reason: str = "",
        operator: str = "operator",
        to_cycle: int | None = None,
        *,
        timeout_s: Timeout = None,
    ) -> Call[wire.Weights]:
        """Admin socket: undo the last change of the weights, or every one after
        ``to_cycle``; ``restored_cycle`` says whose weights are back (never resent)."""
        return Call.of(wire.RollbackWeights, wire.Weights, locals())

    @request_method
    def set_component(
        name: wire.ComponentName,
        enabled: bool,
        reason: str,
        operator: str,
        *,
        timeout_s: Timeout = None,
    ) -> Call[wire.Components]:
        """Admin socket: switch an optimization component off or on (never resent)."""
        return Call.of(wire.SetComponent, wire.Components, locals())

    @request_method
    def forget_strategy(
        strategy: str, reason: str, operator: str, *, timeout_s: Timeout = None
    ) -> Call[wire.StrategyForgotten]:
        """Admin socket: forget a strategy no longer configured; its trades stay on disk
        (never resent)."""
        return Call.of(wire.ForgetStrategy, wire.StrategyForgotten, locals())


def _bar(bar: wire.MarketBar | Mapping[str, Any]) -> wire.MarketBar:
    return bar if isinstance(bar, wire.MarketBar) else wire.MarketBar(**bar)
