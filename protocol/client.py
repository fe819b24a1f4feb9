"""Clients for bots: ``Client`` (blocking), ``AsyncClient`` (asyncio), and the alert
subscribers ``Subscriber`` and ``AsyncSubscriber``.

Timeouts and retries follow the Lazy Pirate pattern: each attempt waits ``timeout_s``;
on a timeout the client closes its REQ socket (a REQ socket that lost its reply can
never send again), opens a new one and resends, up to ``retries`` times, then raises
``AlphadError("timeout", ...)``. A bot therefore rides out a daemon restart with no code
of its own; a call waits at most ``timeout_s * (1 + retries)``.

Only requests that are safe to repeat are resent: the reads, ``score_signal`` (a repeat
only scores the signal again), ``record_trade`` (idempotent on ``trade_id``: a repeat is
answered ``duplicate: true``) and ``record_signal_outcome`` (idempotent on
``signal_id``). ``update_optimization`` and the admin requests (``force_status``,
``reset_weights``, ``rollback_weights``, ``set_component``) are sent once: the first
attempt may have taken effect with only its reply lost, and a repeat would run a second
cycle or move the weights twice. A timeout on one of them raises at once; ``get_history``
or ``get_audit`` tells whether it took effect.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self, TypeVar

import msgspec
import zmq
import zmq.asyncio

from protocol.codec import decode_alert, decode_reply, encode
from protocol.curve import CurveKeys, CurveRefused, HandshakeWatch, over_network
from protocol.endpoints import alert_topic, default_endpoint
from protocol.errors import AlphadError
from protocol.messages import (
    Alert,
    Audit,
    AuditEntry,
    ComponentName,
    Components,
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
    Reply,
    Report,
    Request,
    ResetWeights,
    RollbackWeights,
    ScoreSignal,
    SetComponent,
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

if TYPE_CHECKING:
    import pandas

Encoding = Literal["msgpack", "json"]
R = TypeVar("R", bound=Reply)

SENT_ONCE: tuple[type[Request], ...] = (
    UpdateOptimization,
    ForceStatus,
    ResetWeights,
    RollbackWeights,
    SetComponent,
)
"""Requests never resent after a timeout: their first attempt may already have acted."""

BACKFILL_PAGE = 1000  # audit entries per get_audit while filling a gap


def _settings(timeout_s: float, retries: int, encoding: str) -> bool:
    """Check constructor arguments once; returns whether to speak JSON."""
    if timeout_s <= 0:
        raise ValueError(f"timeout_s must be positive, not {timeout_s!r}")
    if retries < 0:
        raise ValueError(f"retries must be 0 or more, not {retries!r}")
    if encoding not in ("msgpack", "json"):
        raise ValueError(f"encoding must be 'msgpack' or 'json', not {encoding!r}")
    return encoding == "json"


def _reply(payload: bytes, expected: type[R]) -> R:
    """The typed reply, or ``AlphadError`` for an ``error`` reply or an unexpected one."""
    try:
        reply = decode_reply(payload)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise AlphadError("internal", f"undecodable reply: {exc}") from None
    if isinstance(reply, Error):
        raise AlphadError(reply.code, reply.message)
    if not isinstance(reply, expected):
        raise AlphadError("internal", f"expected {expected.__name__}, got {type(reply).__name__}")
    return reply


def _timed_out(endpoint: str, request: Request, attempts: int, timeout_ms: int) -> AlphadError:
    why = "; not resent because it may have taken effect" if isinstance(request, SENT_ONCE) else ""
    return AlphadError(
        "timeout",
        f"no reply from {endpoint} to {request.__struct_config__.tag} after {attempts} "
        f"attempt(s) of {timeout_ms} ms{why}",
    )


class Client:
    """A blocking client on a REQ socket, one typed method per request.

    Not thread-safe: use one per thread. ``timeout_s`` is per attempt and can be given
    per call; see the module docstring for which requests are resent.
    """

    def __init__(
        self,
        endpoint: str | None = None,
        *,
        timeout_s: float = 2.0,
        retries: int = 3,
        encoding: Encoding = "msgpack",
        context: zmq.Context[Any] | None = None,
        curve: CurveKeys | None = None,
    ) -> None:
        self.as_json = _settings(timeout_s, retries, encoding)
        self.endpoint = endpoint or default_endpoint("rpc")
        self.timeout_s = timeout_s
        self.retries = retries
        self.curve = curve
        self.context: zmq.Context[Any] = context or zmq.Context.instance()
        self.socket: zmq.Socket[Any] | None = None
        self.handshakes: HandshakeWatch | None = None

    def _open(self) -> zmq.Socket[Any]:
        sock = self.context.socket(zmq.REQ)
        sock.setsockopt(zmq.LINGER, 0)
        if self.curve is not None:
            self.curve.apply(sock)
        if over_network(self.endpoint):
            self.handshakes = HandshakeWatch(sock, self.curve is not None)
        sock.connect(self.endpoint)
        self.socket = sock
        return sock

    def _refused(self) -> CurveRefused | None:
        return self.handshakes.refusal(self.endpoint) if self.handshakes else None

    def call(self, request: Request, expected: type[R], timeout_s: float | None = None) -> R:
        """Send any request and return its reply of type ``expected``."""
        payload = encode(request, self.as_json)
        timeout_ms = int(1000 * (timeout_s if timeout_s is not None else self.timeout_s))
        attempts = 1 if isinstance(request, SENT_ONCE) else 1 + self.retries
        for _ in range(attempts):
            sock = self.socket or self._open()
            try:
                sock.send(payload)
                answer = sock.recv() if sock.poll(timeout_ms, zmq.POLLIN) else None
            except BaseException:
                # Interrupted mid-request (Ctrl-C, a zmq error): the REQ socket is stuck
                # waiting for a reply, so the next call must start on a fresh one.
                self.close()
                raise
            if answer is not None:
                return _reply(answer, expected)
            refused = self._refused()
            self.close()
            if refused is not None:
                raise refused
        raise _timed_out(self.endpoint, request, attempts, timeout_ms)

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
        *,
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
        *,
        timeout_s: float | None = None,
    ) -> TradeRecorded:
        """Report a closed trade (net pnl); answered once it is on disk."""
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
        self, signal_id: str, success: bool, *, timeout_s: float | None = None
    ) -> Ok:
        """Report whether a scored signal succeeded."""
        request = RecordSignalOutcome(signal_id=signal_id, success=success)
        return self.call(request, Ok, timeout_s)

    def update_optimization(
        self, regime: str | None = None, *, timeout_s: float | None = None
    ) -> OptimizationState:
        """Run one optimization cycle now (never resent)."""
        return self.call(UpdateOptimization(regime=regime), OptimizationState, timeout_s)

    def get_status(self, *, timeout_s: float | None = None) -> StatusReply:
        """The daemon's status."""
        return self.call(GetStatus(), StatusReply, timeout_s)

    def get_performance(
        self,
        group_by: Sequence[GroupKey] = ("strategy",),
        window: Window = "all",
        strategy: str | None = None,
        *,
        after: list[str] | None = None,
        timeout_s: float | None = None,
    ) -> Performance:
        """Performance rows grouped by strategy, symbol and/or regime; a page of at most
        ``PAGE_ROWS``, the next one from ``after=reply.next``."""
        request = GetPerformance(
            group_by=list(group_by), window=window, strategy=strategy, after=after
        )
        return self.call(request, Performance, timeout_s)

    def get_weights(self, regime: str | None = None, *, timeout_s: float | None = None) -> Weights:
        """Base, adaptive, effective and normalized weights."""
        return self.call(GetWeights(regime=regime), Weights, timeout_s)

    def get_health(self, strategy: str | None = None, *, timeout_s: float | None = None) -> Health:
        """Lifecycle status of one or every strategy."""
        return self.call(GetHealth(strategy=strategy), Health, timeout_s)

    def get_audit(
        self,
        since_seq: int = 0,
        strategy: str | None = None,
        limit: int = 100,
        *,
        timeout_s: float | None = None,
    ) -> Audit:
        """Audit entries after ``since_seq``, oldest first."""
        request = GetAudit(since_seq=since_seq, strategy=strategy, limit=limit)
        return self.call(request, Audit, timeout_s)

    def get_history(
        self, limit: int = 20, *, before_cycle: int | None = None, timeout_s: float | None = None
    ) -> History:
        """The latest optimization cycles, newest first; the next page from
        ``before_cycle=reply.next``."""
        request = GetHistory(limit=limit, before_cycle=before_cycle)
        return self.call(request, History, timeout_s)

    def get_report(self, *, timeout_s: float | None = None) -> Report:
        """Everything a dashboard needs, in one reply."""
        return self.call(GetReport(), Report, timeout_s)

    def force_status(
        self,
        strategy: str,
        status: Status,
        reason: str,
        operator: str,
        *,
        timeout_s: float | None = None,
    ) -> StatusChanged:
        """Admin socket: set a strategy's lifecycle status (never resent)."""
        request = ForceStatus(strategy=strategy, status=status, reason=reason, operator=operator)
        return self.call(request, StatusChanged, timeout_s)

    def reset_weights(
        self, reason: str = "", operator: str = "operator", *, timeout_s: float | None = None
    ) -> Weights:
        """Admin socket: adaptive weights back to base (never resent)."""
        return self.call(ResetWeights(reason=reason, operator=operator), Weights, timeout_s)

    def rollback_weights(
        self, reason: str = "", operator: str = "operator", *, timeout_s: float | None = None
    ) -> Weights:
        """Admin socket: adaptive weights back to before the last update (never resent)."""
        request = RollbackWeights(reason=reason, operator=operator)
        return self.call(request, Weights, timeout_s)

    def set_component(
        self,
        name: ComponentName,
        enabled: bool,
        reason: str,
        operator: str,
        *,
        timeout_s: float | None = None,
    ) -> Components:
        """Admin socket: switch an optimization component off or on (never resent)."""
        request = SetComponent(name=name, enabled=enabled, reason=reason, operator=operator)
        return self.call(request, Components, timeout_s)

    def report_frames(self, *, timeout_s: float | None = None) -> dict[str, pandas.DataFrame]:
        """``get_report`` as pandas DataFrames, one per table (needs ``alphad[pandas]``)."""
        return report_frames(self.get_report(timeout_s=timeout_s))

    def close(self) -> None:
        """Close the socket; the next call opens a new one."""
        if self.handshakes is not None:
            self.handshakes.close()
            self.handshakes = None
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
    """The asyncio twin of ``Client``: same methods, same retry rules, awaited.

    Calls on one client are serialized (a REQ socket carries one request at a time);
    open several clients for requests in parallel.
    """

    def __init__(
        self,
        endpoint: str | None = None,
        *,
        timeout_s: float = 2.0,
        retries: int = 3,
        encoding: Encoding = "msgpack",
        context: zmq.asyncio.Context | None = None,
        curve: CurveKeys | None = None,
    ) -> None:
        self.as_json = _settings(timeout_s, retries, encoding)
        self.endpoint = endpoint or default_endpoint("rpc")
        self.timeout_s = timeout_s
        self.retries = retries
        self.curve = curve
        self.context = context or zmq.asyncio.Context.instance()
        self.socket: zmq.asyncio.Socket | None = None
        self.handshakes: HandshakeWatch | None = None
        self._lock = asyncio.Lock()  # binds to the running loop at first use, not here

    async def call(self, request: Request, expected: type[R], timeout_s: float | None = None) -> R:
        """Send any request and return its reply of type ``expected``."""
        payload = encode(request, self.as_json)
        timeout_ms = int(1000 * (timeout_s if timeout_s is not None else self.timeout_s))
        attempts = 1 if isinstance(request, SENT_ONCE) else 1 + self.retries
        async with self._lock:
            for _ in range(attempts):
                if self.socket is None:
                    self.socket = self.context.socket(zmq.REQ)
                    self.socket.setsockopt(zmq.LINGER, 0)
                    if self.curve is not None:
                        self.curve.apply(self.socket)
                    if over_network(self.endpoint):
                        self.handshakes = HandshakeWatch(self.socket, self.curve is not None)
                    self.socket.connect(self.endpoint)
                sock = self.socket
                try:
                    await sock.send(payload)
                    answer = await sock.recv() if await sock.poll(timeout_ms) else None
                except BaseException:
                    # Cancelled or failed mid-request: this REQ socket awaits a reply
                    # that will never be read, so it cannot be used again.
                    self.close()
                    raise
                if answer is not None:
                    return _reply(answer, expected)
                refused = self.handshakes.refusal(self.endpoint) if self.handshakes else None
                self.close()
                if refused is not None:
                    raise refused
        raise _timed_out(self.endpoint, request, attempts, timeout_ms)

    async def score_signal(
        self,
        strategy: str,
        symbol: str,
        side: Side,
        confidence: float,
        confluence: int = 1,
        regime: str | None = None,
        signal_id: str | None = None,
        ts_ms: int | None = None,
        *,
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
        return await self.call(request, SignalScore, timeout_s)

    async def record_trade(
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
        *,
        timeout_s: float | None = None,
    ) -> TradeRecorded:
        """Report a closed trade (net pnl); answered once it is on disk."""
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
        return await self.call(request, TradeRecorded, timeout_s)

    async def record_signal_outcome(
        self, signal_id: str, success: bool, *, timeout_s: float | None = None
    ) -> Ok:
        """Report whether a scored signal succeeded."""
        request = RecordSignalOutcome(signal_id=signal_id, success=success)
        return await self.call(request, Ok, timeout_s)

    async def update_optimization(
        self, regime: str | None = None, *, timeout_s: float | None = None
    ) -> OptimizationState:
        """Run one optimization cycle now (never resent)."""
        return await self.call(UpdateOptimization(regime=regime), OptimizationState, timeout_s)

    async def get_status(self, *, timeout_s: float | None = None) -> StatusReply:
        """The daemon's status."""
        return await self.call(GetStatus(), StatusReply, timeout_s)

    async def get_performance(
        self,
        group_by: Sequence[GroupKey] = ("strategy",),
        window: Window = "all",
        strategy: str | None = None,
        *,
        after: list[str] | None = None,
        timeout_s: float | None = None,
    ) -> Performance:
        """Performance rows grouped by strategy, symbol and/or regime; a page of at most
        ``PAGE_ROWS``, the next one from ``after=reply.next``."""
        request = GetPerformance(
            group_by=list(group_by), window=window, strategy=strategy, after=after
        )
        return await self.call(request, Performance, timeout_s)

    async def get_weights(
        self, regime: str | None = None, *, timeout_s: float | None = None
    ) -> Weights:
        """Base, adaptive, effective and normalized weights."""
        return await self.call(GetWeights(regime=regime), Weights, timeout_s)

    async def get_health(
        self, strategy: str | None = None, *, timeout_s: float | None = None
    ) -> Health:
        """Lifecycle status of one or every strategy."""
        return await self.call(GetHealth(strategy=strategy), Health, timeout_s)

    async def get_audit(
        self,
        since_seq: int = 0,
        strategy: str | None = None,
        limit: int = 100,
        *,
        timeout_s: float | None = None,
    ) -> Audit:
        """Audit entries after ``since_seq``, oldest first."""
        request = GetAudit(since_seq=since_seq, strategy=strategy, limit=limit)
        return await self.call(request, Audit, timeout_s)

    async def get_history(
        self, limit: int = 20, *, before_cycle: int | None = None, timeout_s: float | None = None
    ) -> History:
        """The latest optimization cycles, newest first; the next page from
        ``before_cycle=reply.next``."""
        request = GetHistory(limit=limit, before_cycle=before_cycle)
        return await self.call(request, History, timeout_s)

    async def get_report(self, *, timeout_s: float | None = None) -> Report:
        """Everything a dashboard needs, in one reply."""
        return await self.call(GetReport(), Report, timeout_s)

    async def force_status(
        self,
        strategy: str,
        status: Status,
        reason: str,
        operator: str,
        *,
        timeout_s: float | None = None,
    ) -> StatusChanged:
        """Admin socket: set a strategy's lifecycle status (never resent)."""
        request = ForceStatus(strategy=strategy, status=status, reason=reason, operator=operator)
        return await self.call(request, StatusChanged, timeout_s)

    async def reset_weights(
        self, reason: str = "", operator: str = "operator", *, timeout_s: float | None = None
    ) -> Weights:
        """Admin socket: adaptive weights back to base (never resent)."""
        return await self.call(ResetWeights(reason=reason, operator=operator), Weights, timeout_s)

    async def rollback_weights(
        self, reason: str = "", operator: str = "operator", *, timeout_s: float | None = None
    ) -> Weights:
        """Admin socket: adaptive weights back to before the last update (never resent)."""
        request = RollbackWeights(reason=reason, operator=operator)
        return await self.call(request, Weights, timeout_s)

    async def set_component(
        self,
        name: ComponentName,
        enabled: bool,
        reason: str,
        operator: str,
        *,
        timeout_s: float | None = None,
    ) -> Components:
        """Admin socket: switch an optimization component off or on (never resent)."""
        request = SetComponent(name=name, enabled=enabled, reason=reason, operator=operator)
        return await self.call(request, Components, timeout_s)

    def close(self) -> None:
        """Close the socket; the next call opens a new one."""
        if self.handshakes is not None:
            self.handshakes.close()
            self.handshakes = None
        if self.socket is not None:
            self.socket.close(linger=0)
            self.socket = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def report_frames(report: Report) -> dict[str, pandas.DataFrame]:
    """The tables of a ``report`` reply as pandas DataFrames (needs ``alphad[pandas]``)."""
    try:
        import pandas as pd
    except ImportError:
        raise ImportError(
            "report_frames needs pandas; install the extra: pip install 'alphad[pandas]'"
        ) from None
    status = report.status
    allocation = report.allocation
    columns = ("base", "adaptive", "effective", "normalized")
    return {
        "status": pd.DataFrame(
            [
                {
                    "version": status.version,
                    "uptime_s": status.uptime_s,
                    "trades": status.trades,
                    "strategies": status.strategies,
                    "cycle": status.cycle,
                    "protocol": status.protocol,
                    **{f"component.{k}": v for k, v in status.components.items()},
                }
            ]
        ),
        **{
            f"strategies_{window}": pd.DataFrame(
                [{"strategy": s["strategy"], **(s.get(window) or {})} for s in report.strategies]
            )
            for window in ("all", "recent")
        },
        "allocation": pd.DataFrame(
            [
                {"strategy": name, **{c: allocation.get(c, {}).get(name) for c in columns}}
                for name in sorted(allocation.get("base", {}))
            ],
            columns=["strategy", *columns],
        ),
        "health": pd.DataFrame([msgspec.to_builtins(h) for h in report.health]),
        "regime_effectiveness": pd.DataFrame(report.regime_effectiveness),
        "signal_quality": pd.DataFrame(report.signal_quality.get("buckets", [])),
        "top_strategies": pd.DataFrame(report.top_strategies),
    }


# --------------------------------------------------------------------------- alerts


class _AlertSequence:
    """What both subscribers share: the topic filter, the last ``seq`` and gap filling.

    A received alert is held until the entries missing before it are backfilled, so a
    failed backfill (the daemon is restarting) loses nothing: the next ``receive``
    retries it before reading the socket again.
    """

    def __init__(self, topics: Sequence[str], last_seq: int | None) -> None:
        self.topics = list(topics) or [""]
        self.last_seq = last_seq
        self.gaps = 0
        self.held: tuple[str, Alert] | None = None
        self.found: list[tuple[str, Alert]] = []

    def wanted(self, topic: str) -> bool:
        return any(topic.startswith(prefix) for prefix in self.topics)

    def hold(self, frames: list[bytes]) -> None:
        # An undecodable alert is dropped without moving last_seq: the next alert then
        # shows a gap, and the backfill brings the entry back from the audit log.
        if len(frames) != 2:
            return
        try:
            self.held = (frames[0].decode(), decode_alert(frames[1]))
        except (UnicodeDecodeError, msgspec.DecodeError, msgspec.ValidationError):
            return

    def missing(self) -> tuple[int, int] | None:
        """``(since_seq, before_seq)`` when entries are missing before the held alert."""
        self.found = []
        if self.held is None or self.last_seq is None:
            return None
        seq = self.held[1].seq
        return (self.last_seq, seq) if seq > self.last_seq + 1 else None

    def page(self, entries: list[AuditEntry], since: int, before: int) -> int | None:
        """Keep the wanted entries of one ``get_audit`` page; the next ``since``, or None."""
        for entry in entries:
            if entry.seq >= before:
                return None
            topic = alert_topic(entry.kind, entry.new)
            if self.wanted(topic):
                self.found.append((topic, Alert.from_audit(entry)))
        if not entries or entries[-1].seq <= since or entries[-1].seq >= before - 1:
            return None
        return entries[-1].seq

    def release(self, backfilled: bool) -> list[tuple[str, Alert]]:
        """The backfilled alerts and the held one, in ``seq`` order; duplicates dropped."""
        if self.held is None:
            return []
        topic, alert = self.held
        self.held = None
        if self.last_seq is not None and alert.seq <= self.last_seq:
            return []  # already delivered by an earlier backfill
        if backfilled:
            self.gaps += 1
        out, self.found = self.found, []
        out.append((topic, alert))
        self.last_seq = alert.seq
        return out


class Subscriber:
    """Alerts as ``(topic, Alert)`` in ``seq`` order, with gaps backfilled.

    ``topics`` are ZeroMQ prefixes (``"status."``, ``"status.suspended"``; ``""`` is all).
    When ``seq`` jumps by more than one, the entries in between are fetched with
    ``get_audit`` through ``client`` (a ``Client`` used by this subscriber only, or an
    rpc endpoint), filtered by the same topics, and yielded first. Without a client, a
    gap is only counted in ``gaps``. Pass ``last_seq`` to resume after a restart.
    Because ``seq`` is shared by every topic, a filtered subscriber sees jumps over the
    topics it did not subscribe to; each costs one ``get_audit`` that finds nothing.
    """

    def __init__(
        self,
        endpoint: str | None = None,
        topics: Sequence[str] = ("",),
        *,
        client: Client | str | None = None,
        last_seq: int | None = None,
        context: zmq.Context[Any] | None = None,
        curve: CurveKeys | None = None,
    ) -> None:
        self._sequence = _AlertSequence(topics, last_seq)
        self._own_client = isinstance(client, str)
        self.client = (
            Client(client, context=context, curve=curve) if isinstance(client, str) else client
        )
        self.socket: zmq.Socket[Any] = (context or zmq.Context.instance()).socket(zmq.SUB)
        self.socket.setsockopt(zmq.LINGER, 0)
        for topic in self._sequence.topics:
            self.socket.setsockopt(zmq.SUBSCRIBE, topic.encode())
        self.endpoint = endpoint or default_endpoint("alerts")
        if curve is not None:
            curve.apply(self.socket)
        self.handshakes = (
            HandshakeWatch(self.socket, curve is not None) if over_network(self.endpoint) else None
        )
        self.socket.connect(self.endpoint)

    @property
    def last_seq(self) -> int | None:
        """The ``seq`` of the last alert yielded; None before the first."""
        return self._sequence.last_seq

    @property
    def gaps(self) -> int:
        """How many jumps in ``seq`` were backfilled."""
        return self._sequence.gaps

    def wanted(self, topic: str) -> bool:
        """Whether ``topic`` matches a subscription (ZeroMQ's prefix rule)."""
        return self._sequence.wanted(topic)

    def receive(self, timeout_s: float | None = None) -> list[tuple[str, Alert]]:
        """The next alert, after any backfilled ones; ``[]`` when none came in time.

        Raises ``AlphadError`` when a backfill fails; the alert is kept and the backfill
        retried by the next call.
        """
        sequence = self._sequence
        if sequence.held is None:
            timeout_ms = -1 if timeout_s is None else int(timeout_s * 1000)
            if not self.socket.poll(timeout_ms, zmq.POLLIN):
                refused = self.handshakes.refusal(self.endpoint) if self.handshakes else None
                if refused is not None:
                    raise refused
                return []
            sequence.hold(self.socket.recv_multipart())
        gap = sequence.missing()
        if gap is not None and self.client is not None:
            since: int | None
            since, before = gap
            while since is not None:
                page = self.client.get_audit(since_seq=since, limit=BACKFILL_PAGE).entries
                since = sequence.page(page, since, before)
        return sequence.release(gap is not None and self.client is not None)

    def iter(
        self, timeout_s: float = 0.5, stop: threading.Event | None = None
    ) -> Iterator[tuple[str, Alert]]:
        """Alerts until ``stop`` is set (checked every ``timeout_s``)."""
        while stop is None or not stop.is_set():
            yield from self.receive(timeout_s)

    def __iter__(self) -> Iterator[tuple[str, Alert]]:
        return self.iter()

    def close(self) -> None:
        """Close the socket, and the client if this subscriber made it."""
        if self.handshakes is not None:
            self.handshakes.close()
        self.socket.close(linger=0)
        if self._own_client and self.client is not None:
            self.client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class AsyncSubscriber:
    """The asyncio twin of ``Subscriber``, backfilling through an ``AsyncClient``."""

    def __init__(
        self,
        endpoint: str | None = None,
        topics: Sequence[str] = ("",),
        *,
        client: AsyncClient | str | None = None,
        last_seq: int | None = None,
        context: zmq.asyncio.Context | None = None,
        curve: CurveKeys | None = None,
    ) -> None:
        self._sequence = _AlertSequence(topics, last_seq)
        self._own_client = isinstance(client, str)
        self.client = (
            AsyncClient(client, context=context, curve=curve) if isinstance(client, str) else client
        )
        self.socket = (context or zmq.asyncio.Context.instance()).socket(zmq.SUB)
        self.socket.setsockopt(zmq.LINGER, 0)
        for topic in self._sequence.topics:
            self.socket.setsockopt(zmq.SUBSCRIBE, topic.encode())
        self.endpoint = endpoint or default_endpoint("alerts")
        if curve is not None:
            curve.apply(self.socket)
        self.handshakes = (
            HandshakeWatch(self.socket, curve is not None) if over_network(self.endpoint) else None
        )
        self.socket.connect(self.endpoint)

    @property
    def last_seq(self) -> int | None:
        """The ``seq`` of the last alert yielded; None before the first."""
        return self._sequence.last_seq

    @property
    def gaps(self) -> int:
        """How many jumps in ``seq`` were backfilled."""
        return self._sequence.gaps

    async def receive(self, timeout_s: float | None = None) -> list[tuple[str, Alert]]:
        """The next alert, after any backfilled ones; ``[]`` when none came in time."""
        sequence = self._sequence
        if sequence.held is None:
            timeout_ms = -1 if timeout_s is None else int(timeout_s * 1000)
            if not await self.socket.poll(timeout_ms):
                refused = self.handshakes.refusal(self.endpoint) if self.handshakes else None
                if refused is not None:
                    raise refused
                return []
            sequence.hold(await self.socket.recv_multipart())
        gap = sequence.missing()
        if gap is not None and self.client is not None:
            since: int | None
            since, before = gap
            while since is not None:
                page = (await self.client.get_audit(since_seq=since, limit=BACKFILL_PAGE)).entries
                since = sequence.page(page, since, before)
        return sequence.release(gap is not None and self.client is not None)

    async def __aiter__(self) -> AsyncIterator[tuple[str, Alert]]:
        while True:
            for item in await self.receive():
                yield item

    def close(self) -> None:
        """Close the socket, and the client if this subscriber made it."""
        if self.handshakes is not None:
            self.handshakes.close()
        self.socket.close(linger=0)
        if self._own_client and self.client is not None:
            self.client.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
