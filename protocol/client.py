"""Clients for bots: ``Client`` (blocking), ``AsyncClient`` (asyncio) and ``Subscriber`` (alerts).

Each call has a timeout. On a timeout the client closes its socket, opens a new one and
sends again (the Lazy Pirate pattern), a bounded number of times, so a bot rides out a
daemon restart without code of its own. Only requests that are safe to repeat are
resent: ``record_trade`` (idempotent on trade_id), ``record_signal_outcome`` (on
signal_id) and the reads. A cycle or an admin change is never sent twice; a timeout on
one raises ``AlphadError("timeout")`` and the caller checks ``get_audit``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import Any, Self

import msgspec
import zmq
import zmq.asyncio

from protocol.codec import decode_alert, decode_reply, encode
from protocol.endpoints import alert_topic, default_endpoint
from protocol.errors import AlphadError
from protocol.messages import (
    Alert,
    Audit,
    Error,
    ForceStatus,
    GetAudit,
    GetHealth,
    GetHistory,
    GetPerformance,
    GetReport,
    GetStatus,
    GetWeights,
    GroupKey,
    Health,
    History,
    Ok,
    OptimizationState,
    Performance,
    RecordSignalOutcome,
    RecordTrade,
    Report,
    Request,
    ResetWeights,
    RollbackWeights,
    ScoreSignal,
    Side,
    SignalScore,
    Status,
    StatusChanged,
    StatusReply,
    TradeRecorded,
    UpdateOptimization,
    Weights,
    Window,
)

NOT_RESENT: tuple[type[Request], ...] = (
    UpdateOptimization,
    ForceStatus,
    ResetWeights,
    RollbackWeights,
)


def _check(reply: Any, expected: type[Any]) -> Any:
    if isinstance(reply, Error):
        raise AlphadError(reply.code, reply.message)
    if not isinstance(reply, expected):
        raise AlphadError("internal", f"expected {expected.__name__}, got {type(reply).__name__}")
    return reply


class _Requests:
    """One typed method per request; subclasses define ``call``."""

    def call(self, request: Request, expected: type[Any], timeout_s: float | None = None) -> Any:
        raise NotImplementedError

    def score_signal(
        self,
        strategy: str,
        symbol: str,
        side: Side,
        confidence: float,
        confluence: int = 1,
        regime: str | None = None,
        signal_id: str | None = None,
        ts_ms: int | None = None,
        timeout_s: float | None = None,
    ) -> SignalScore:
        """Should this signal be taken, and at what size?"""
        request = ScoreSignal(
            strategy=strategy,
            symbol=symbol,
            side=side,
            confidence=confidence,
            confluence=confluence,
            regime=regime,
            signal_id=signal_id,
            ts_ms=ts_ms,
        )
        return self.call(request, SignalScore, timeout_s)

    def record_trade(
        self,
        trade_id: str,
        strategy: str,
        symbol: str,
        side: Side,
        pnl: float,
        entry_ts_ms: int,
        exit_ts_ms: int,
        regime: str | None = None,
        size: float | None = None,
        signal_id: str | None = None,
        timeout_s: float | None = None,
    ) -> TradeRecorded:
        """Report a closed trade (net pnl); answered after it is on disk."""
        request = RecordTrade(
            trade_id=trade_id,
            strategy=strategy,
            symbol=symbol,
            side=side,
            pnl=pnl,
            entry_ts_ms=entry_ts_ms,
            exit_ts_ms=exit_ts_ms,
            regime=regime,
            size=size,
            signal_id=signal_id,
        )
        return self.call(request, TradeRecorded, timeout_s)

    def record_signal_outcome(
        self, signal_id: str, success: bool, timeout_s: float | None = None
    ) -> Ok:
        """Report whether a scored signal succeeded."""
        request = RecordSignalOutcome(signal_id=signal_id, success=success)
        return self.call(request, Ok, timeout_s)

    def update_optimization(
        self, regime: str | None = None, timeout_s: float | None = None
    ) -> OptimizationState:
        """Run one optimization cycle now."""
        return self.call(UpdateOptimization(regime=regime), OptimizationState, timeout_s)

    def get_status(self, timeout_s: float | None = None) -> StatusReply:
        """The daemon's status."""
        return self.call(GetStatus(), StatusReply, timeout_s)

    def get_performance(
        self,
        group_by: Sequence[GroupKey] = ("strategy",),
        window: Window = "all",
        strategy: str | None = None,
        timeout_s: float | None = None,
    ) -> Performance:
        """Performance rows grouped by strategy, symbol and/or regime."""
        request = GetPerformance(
            group_by=list(group_by),
            window=window,
            strategy=strategy,
        )
        return self.call(request, Performance, timeout_s)

    def get_weights(self, regime: str | None = None, timeout_s: float | None = None) -> Weights:
        """Base, adaptive, effective and normalized weights."""
        return self.call(GetWeights(regime=regime), Weights, timeout_s)

    def get_health(self, strategy: str | None = None, timeout_s: float | None = None) -> Health:
        """Lifecycle status of one or every strategy."""
        return self.call(GetHealth(strategy=strategy), Health, timeout_s)

    def get_audit(
        self,
        since_seq: int = 0,
        strategy: str | None = None,
        limit: int = 100,
        timeout_s: float | None = None,
    ) -> Audit:
        """Audit entries after ``since_seq``, oldest first."""
        request = GetAudit(since_seq=since_seq, strategy=strategy, limit=limit)
        return self.call(request, Audit, timeout_s)

    def get_history(self, limit: int = 20, timeout_s: float | None = None) -> History:
        """The latest optimization cycles, newest first."""
        return self.call(GetHistory(limit=limit), History, timeout_s)

    def get_report(self, timeout_s: float | None = None) -> Report:
        """Everything a dashboard needs."""
        return self.call(GetReport(), Report, timeout_s)

    def force_status(
        self,
        strategy: str,
        status: Status,
        reason: str,
        operator: str,
        timeout_s: float | None = None,
    ) -> StatusChanged:
        """Admin socket: set a strategy's status."""
        request = ForceStatus(
            strategy=strategy,
            status=status,
            reason=reason,
            operator=operator,
        )
        return self.call(request, StatusChanged, timeout_s)

    def reset_weights(
        self, reason: str = "", operator: str = "operator", timeout_s: float | None = None
    ) -> Weights:
        """Admin socket: adaptive weights back to base."""
        return self.call(ResetWeights(reason=reason, operator=operator), Weights, timeout_s)

    def rollback_weights(
        self, reason: str = "", operator: str = "operator", timeout_s: float | None = None
    ) -> Weights:
        """Admin socket: adaptive weights back to before the last update."""
        request = RollbackWeights(reason=reason, operator=operator)
        return self.call(request, Weights, timeout_s)


class Client(_Requests):
    """A blocking client on a REQ socket; not thread-safe (one per thread)."""

    def __init__(
        self,
        endpoint: str | None = None,
        *,
        timeout_s: float = 2.0,
        retries: int = 3,
        encoding: str = "msgpack",
        context: zmq.Context[Any] | None = None,
    ) -> None:
        self.endpoint = endpoint or default_endpoint("rpc")
        self.timeout_s = timeout_s
        self.retries = retries
        self.as_json = encoding == "json"
        self.context = context or zmq.Context.instance()
        self.socket: zmq.Socket[Any] | None = None

    def _open(self) -> zmq.Socket[Any]:
        sock = self.context.socket(zmq.REQ)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(self.endpoint)
        self.socket = sock
        return sock

    def call(self, request: Request, expected: type[Any], timeout_s: float | None = None) -> Any:
        """Send a request and return its typed reply; ``AlphadError`` on an error reply."""
        payload = encode(request, self.as_json)
        timeout_ms = int(1000 * (timeout_s if timeout_s is not None else self.timeout_s))
        attempts = 1 if isinstance(request, NOT_RESENT) else 1 + self.retries
        for _ in range(attempts):
            sock = self.socket or self._open()
            sock.send(payload)
            if sock.poll(timeout_ms, zmq.POLLIN):
                return _check(decode_reply(sock.recv()), expected)
            sock.close(linger=0)  # a REQ socket that lost its reply is stuck: start over
            self.socket = None
        raise AlphadError("timeout", f"no reply from {self.endpoint} after {attempts} attempts")

    def report_frames(self) -> dict[str, Any]:
        """``get_report`` as pandas DataFrames, one per table (needs ``alphad[pandas]``)."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError("report_frames needs pandas: pip install 'alphad[pandas]'") from None
        report = self.get_report()
        allocation = report.allocation
        return {
            "strategies": pd.DataFrame(
                [{"strategy": s["strategy"], **(s.get("recent") or {})} for s in report.strategies]
            ),
            "allocation": pd.DataFrame(
                {k: allocation[k] for k in ("base", "adaptive", "effective", "normalized")}
            ),
            "health": pd.DataFrame([msgspec.to_builtins(h) for h in report.health]),
            "regime_effectiveness": pd.DataFrame(report.regime_effectiveness),
            "signal_quality": pd.DataFrame(report.signal_quality.get("buckets", [])),
            "top_strategies": pd.DataFrame(report.top_strategies),
        }

    def close(self) -> None:
        """Close the socket."""
        if self.socket is not None:
            self.socket.close(linger=0)
            self.socket = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class AsyncClient:
    """An asyncio client on a REQ socket, with the same retry rules as ``Client``."""

    def __init__(
        self,
        endpoint: str | None = None,
        *,
        timeout_s: float = 2.0,
        retries: int = 3,
        encoding: str = "msgpack",
    ) -> None:
        self.endpoint = endpoint or default_endpoint("rpc")
        self.timeout_s = timeout_s
        self.retries = retries
        self.as_json = encoding == "json"
        self.context = zmq.asyncio.Context.instance()
        self.socket: zmq.asyncio.Socket | None = None

    async def call(
        self, request: Request, expected: type[Any], timeout_s: float | None = None
    ) -> Any:
        """Send a request and return its typed reply; ``AlphadError`` on an error reply."""
        payload = encode(request, self.as_json)
        timeout_ms = int(1000 * (timeout_s if timeout_s is not None else self.timeout_s))
        attempts = 1 if isinstance(request, NOT_RESENT) else 1 + self.retries
        for _ in range(attempts):
            if self.socket is None:
                self.socket = self.context.socket(zmq.REQ)
                self.socket.setsockopt(zmq.LINGER, 0)
                self.socket.connect(self.endpoint)
            sock = self.socket
            await sock.send(payload)
            if await sock.poll(timeout_ms):
                return _check(decode_reply(await sock.recv()), expected)
            sock.close(linger=0)
            self.socket = None
        raise AlphadError("timeout", f"no reply from {self.endpoint} after {attempts} attempts")

    async def score_signal(self, **fields: Any) -> SignalScore:
        """Should this signal be taken, and at what size?"""
        return await self.call(ScoreSignal(**fields), SignalScore)

    async def record_trade(self, **fields: Any) -> TradeRecorded:
        """Report a closed trade; answered after it is on disk."""
        return await self.call(RecordTrade(**fields), TradeRecorded)

    async def record_signal_outcome(self, signal_id: str, success: bool) -> Ok:
        """Report whether a scored signal succeeded."""
        request = RecordSignalOutcome(signal_id=signal_id, success=success)
        return await self.call(request, Ok)

    async def get_status(self) -> StatusReply:
        """The daemon's status."""
        return await self.call(GetStatus(), StatusReply)

    async def request(self, request: Request, expected: type[Any]) -> Any:
        """Any other request, typed by the caller."""
        return await self.call(request, expected)

    def close(self) -> None:
        """Close the socket."""
        if self.socket is not None:
            self.socket.close(linger=0)
            self.socket = None


class Subscriber:
    """Alerts as ``(topic, Alert)``; a gap in ``seq`` is backfilled from ``get_audit``."""

    def __init__(
        self,
        endpoint: str | None = None,
        topics: Sequence[str] = ("",),
        *,
        client: Client | None = None,
        context: zmq.Context[Any] | None = None,
    ) -> None:
        self.topics = list(topics) or [""]
        self.client = client
        self.socket = (context or zmq.Context.instance()).socket(zmq.SUB)
        self.socket.setsockopt(zmq.LINGER, 0)
        for topic in self.topics:
            self.socket.setsockopt(zmq.SUBSCRIBE, topic.encode())
        self.socket.connect(endpoint or default_endpoint("alerts"))
        self.last_seq: int | None = None
        self.gaps = 0

    def wanted(self, topic: str) -> bool:
        """Whether a topic matches the subscription (ZeroMQ prefix rule)."""
        return any(topic.startswith(t) for t in self.topics)

    def receive(self, timeout_s: float | None = None) -> list[tuple[str, Alert]]:
        """The next alert, preceded by any backfilled ones; [] on timeout."""
        timeout_ms = -1 if timeout_s is None else int(timeout_s * 1000)
        if not self.socket.poll(timeout_ms, zmq.POLLIN):
            return []
        raw_topic, payload = self.socket.recv_multipart()
        alert = decode_alert(payload)
        out: list[tuple[str, Alert]] = []
        if self.last_seq is not None and alert.seq > self.last_seq + 1:
            self.gaps += 1
            out.extend(self._backfill(self.last_seq, alert.seq))
        if self.last_seq is None or alert.seq > self.last_seq:
            self.last_seq = alert.seq
            out.append((raw_topic.decode(), alert))
        return out

    def _backfill(self, after: int, before: int) -> list[tuple[str, Alert]]:
        if self.client is None:
            return []
        found: list[tuple[str, Alert]] = []
        since = after
        while since < before - 1:
            entries = self.client.get_audit(since_seq=since, limit=1000).entries
            if not entries:
                break
            for entry in entries:
                if entry.seq >= before:
                    return found
                topic = alert_topic(entry.kind, entry.new)
                if self.wanted(topic):
                    found.append(
                        (
                            topic,
                            Alert(
                                seq=entry.seq,
                                ts_ms=entry.ts_ms,
                                kind=entry.kind,
                                strategy=entry.strategy,
                                old=entry.old,
                                new=entry.new,
                                reason=entry.reason,
                                data=entry.data,
                            ),
                        )
                    )
                since = entry.seq
        return found

    def iter(
        self, timeout_s: float = 0.5, stop: threading.Event | None = None
    ) -> Iterator[tuple[str, Alert]]:
        """Alerts until ``stop`` is set (checked every ``timeout_s``)."""
        while stop is None or not stop.is_set():
            yield from self.receive(timeout_s)

    def __iter__(self) -> Iterator[tuple[str, Alert]]:
        return self.iter()

    def close(self) -> None:
        """Close the socket."""
        self.socket.close(linger=0)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
