"""The ZeroMQ gateway: ROUTER sockets for requests, answered exactly once each.

The sockets are registered with the event loop's reader (``add_reader`` on the
ZeroMQ FD, which is edge-triggered) and drained with NOBLOCK until empty. Requests
with an inline route (``score_signal``) are decoded, answered and encoded in the same
callback, with no task and no await between receive and reply. Other requests go to
an actor's mailbox with a future; the reply is sent from the future's callback.
"""

from __future__ import annotations

import asyncio
import errno
import os
import traceback
from collections.abc import Callable
from functools import partial
from random import getrandbits
from time import monotonic, perf_counter_ns
from typing import Any, Literal, cast

import msgspec
import structlog
import zmq

from alphad.actors.base import Actor, Handle
from alphad.actors.log_throttle import LogThrottle
from alphad.daemon.errors import error_code
from alphad.daemon.ipc_paths import ipc_path_problem
from alphad.protocol.codec import (
    JSON_LEADS,
    json_encoder,
    json_text,
    msgpack_encoder,
    repeated_field,
    repeated_in_list,
    request_decoder,
    request_json_decoder,
    type_refused,
)
from alphad.protocol.errors import SHUTTING_DOWN, AlphadError, ErrorCode
from alphad.protocol.messages import Error, MarketBars, Reply, Request

log = structlog.get_logger("alphad.gateway")

# The frame calls of pyzmq's backend, which Socket.send_multipart and recv_multipart wrap
# in a Python layer (routing ids, groups, enum flag arithmetic) that costs more than the
# calls themselves: about 4 µs of every request on the hot path.
_send_frame = zmq.backend.Socket.send
_recv_frame = zmq.backend.Socket.recv
_get_option = zmq.backend.Socket.get
_NOBLOCK = int(zmq.NOBLOCK)
_MORE = int(zmq.SNDMORE | zmq.NOBLOCK)
_RCVMORE = int(zmq.RCVMORE)
_EVENTS = int(zmq.EVENTS)
_POLLIN = int(zmq.POLLIN)


class Route(msgspec.Struct, frozen=True, kw_only=True):
    """Where one request type goes.

    ``inline`` answers synchronously in the receive callback: one of the calls an actor
    declares safe for that (``ScorerActor.inline()``, ``EngineActor.inline()``).
    Otherwise ``actor`` gets ``wrap(request)`` (the request itself by default) and
    ``unwrap(request, result)`` turns the actor's answer into the reply (the answer
    itself by default).
    """

    inline: Callable[[Any], Reply] | None = None
    actor: Handle[Actor] | None = None
    wrap: Callable[[Any], Any] | None = None
    unwrap: Callable[[Any, Any], Reply] | None = None
    admin_only: bool = False
    admit: Callable[[Any], None] | None = None
    # Told how an admitted request ended, exactly once: the actor's answer, the failure
    # it ended with, or None when it was never sent (``Admission.settle_trade``).
    settle: Callable[[Any, Any], None] | None = None
    # On the rpc socket, at most one such request per this many seconds (0: no limit).
    rpc_interval_s: float = 0.0


Outcome = Literal["ok"] | ErrorCode  # how a request was answered, as counted


class GatewayStats:
    """Counters read by the metrics sampler; the hot path only increments them."""

    __slots__ = (
        "dropped_frames",
        "errors",
        "in_flight",
        "outcomes",
        "requests",
        "samples",
        "undelivered",
    )

    def __init__(self) -> None:
        self.requests = 0
        self.errors = 0
        self.dropped_frames = 0
        self.in_flight = 0
        self.undelivered = 0  # replies given up: the peer gone or not reading
        # (request class or None when undecodable, "ok" or error code) -> count
        self.outcomes: dict[tuple[type | None, Outcome], int] = {}
        # Latency of one request in LATENCY_SAMPLE: (request class, nanoseconds).
        self.samples: list[tuple[type, int]] = []

    def take_samples(self) -> list[tuple[type, int]]:
        """The latency samples taken since the last call (the metrics sampler's)."""
        samples, self.samples = self.samples, []
        return samples


LATENCY_SAMPLE_BITS = 3  # one request in 2**3 is timed
# Replies queued for one peer that does not read, before they are given up: room for a
# DEALER that sends a burst of a thousand before it reads, not for one that never reads.
PEER_SNDHWM = 1_000
# Requests waiting for an actor's answer, from one peer and in all, before more are
# refused with overloaded: a peer that pipelines without reading cannot make the daemon
# build replies faster than anyone takes them.
PEER_IN_FLIGHT = 64
TOTAL_IN_FLIGHT = 4096
# Messages one wake-up of a socket's reader takes before it lets the loop run (timers,
# answers, the other socket) and goes on: a steady flood of inline requests would
# otherwise hold the loop until it paused, and every other bot's write with it.
DRAIN_BUDGET = 256
# At the close: what the socket still holds is answered, up to its RCVHWM (bind), then
# the socket closes with the rest.
LAST_DRAIN = 100_000
# Frames of one message that are kept: a request is at most identity, delimiter and one
# payload; the frames beyond are read and dropped, so no message of any number of frames
# is held whole in the daemon's own memory (each frame is bounded by MAXMSGSIZE).
MAX_FRAMES = 4


class Gateway:
    """Owns the rpc and admin ROUTER sockets."""

    def __init__(
        self,
        context: zmq.Context[Any],
        routes: dict[type[Request], Route],
        *,
        max_message_size: int,
        request_timeout_s: float,
    ) -> None:
        self.context = context
        self.routes = routes
        self.max_message_size = max_message_size
        self.request_timeout_s = request_timeout_s
        self.stats = GatewayStats()
        self.error_log = LogThrottle()
        self._types = {kind.__struct_config__.tag: kind for kind in routes}
        self._peer_in_flight: dict[tuple[int, bytes], int] = {}
        self._paced: dict[type, float] = {}  # request type -> when the rpc socket last ran one
        self.time_requests = False  # see time_sampled_requests
        self.sockets: list[tuple[zmq.Socket[Any], bool]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing = False
        self._idle = asyncio.Event()
        self._idle.set()
        self._drain_later: set[zmq.Socket[Any]] = set()  # a drain is scheduled for these

    def time_sampled_requests(self) -> None:
        """Time one request in ``2**LATENCY_SAMPLE_BITS`` from now on, for whoever takes
        the samples (``stats.take_samples``; the metrics sampler)."""
        self.time_requests = True

    # ------------------------------------------------------------------ sockets

    def bind(
        self, endpoint: str, *, admin: bool, mode: int, curve: Callable[[Any], None] | None = None
    ) -> None:
        """Bind a ROUTER socket; an ipc socket file is created with ``mode`` and no wider;
        a tcp socket is a CURVE server (``curve`` sets its keys)."""
        sock = self.context.socket(zmq.ROUTER)
        if not endpoint.startswith("ipc://"):
            if curve is None:
                raise ValueError(f"{endpoint}: a tcp endpoint needs CURVE keys")
            curve(sock)
        sock.setsockopt(zmq.LINGER, 0)
        # A hard ceiling far above the configured limit: frames up to it get a clear
        # error reply, anything beyond is dropped by ZeroMQ before it reaches memory.
        sock.setsockopt(zmq.MAXMSGSIZE, self.max_message_size * 4 + 4096)
        sock.setsockopt(zmq.RCVHWM, 100_000)
        # What a peer that does not read can make the daemon hold: PEER_SNDHWM replies,
        # each bounded (protocol.messages.PAGE_BYTES). Beyond, a reply is given up and
        # counted (ROUTER_MANDATORY makes the send say so instead of dropping silently).
        sock.setsockopt(zmq.SNDHWM, PEER_SNDHWM)
        sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        bind_with_mode(sock, endpoint, mode)
        self.sockets.append((sock, admin))
        loop = asyncio.get_running_loop()
        self._loop = loop
        loop.add_reader(sock.FD, self._drain, sock, admin)
        # Messages may already be queued before the reader saw an edge.
        loop.call_soon(self._drain, sock, admin)

    async def close(self, grace_s: float) -> None:
        """Let in-flight requests be answered within ``grace_s``, then close. Requests that
        come meanwhile, and those queued at the close, are answered ``overloaded`` (they
        went unanswered: a bot waited out its timeout)."""
        self._closing = True
        loop = asyncio.get_running_loop()
        if self.stats.in_flight:
            try:
                await asyncio.wait_for(self._idle.wait(), grace_s)
            except TimeoutError:
                log.warning("gateway_unanswered_at_stop", in_flight=self.stats.in_flight)
        for sock, admin in self.sockets:
            loop.remove_reader(sock.FD)
            self._drain(sock, admin, last=True)
            sock.close(linger=0)
        self.sockets.clear()

    # ------------------------------------------------------------------ receiving

    def _drain(self, sock: zmq.Socket[Any], admin: bool, *, last: bool = False) -> None:
        """Dispatch what the socket holds, ``DRAIN_BUDGET`` at a time (``last``: up to
        ``LAST_DRAIN``, at the close, when no later turn comes)."""
        if sock.closed:
            return
        self._drain_later.discard(sock)
        try:
            for _ in range(DRAIN_BUDGET if not last else LAST_DRAIN):
                try:
                    frames = [_recv_frame(sock, _NOBLOCK)]
                except zmq.Again:
                    return
                extra = 0
                while _get_option(sock, _RCVMORE):
                    if len(frames) < MAX_FRAMES:
                        frames.append(_recv_frame(sock, _NOBLOCK))
                    else:
                        _recv_frame(sock, _NOBLOCK, False)  # a zmq.Frame, never copied
                        extra += 1
                self._dispatch(sock, admin, frames, extra)
        except zmq.ZMQError as exc:
            if not self._closing and self.error_log.admit("socket") is not None:
                log.error("gateway_socket_error", error=str(exc))
            return
        # The budget is spent with messages still queued. The socket's descriptor signals
        # an edge, not a level: no new wake-up comes for what is queued, so go on soon.
        if not last and sock not in self._drain_later and self._loop is not None:
            self._drain_later.add(sock)
            self._loop.call_soon(self._drain, sock, admin)

    def _dispatch(
        self, sock: zmq.Socket[Any], admin: bool, frames: list[bytes], extra: int = 0
    ) -> None:
        stats = self.stats
        stats.requests += 1
        # Timed only while a metrics sampler drains the samples; at random, not every
        # n-th, because bots that alternate request types would alias.
        started = (
            perf_counter_ns() if self.time_requests and not getrandbits(LATENCY_SAMPLE_BITS) else 0
        )
        # REQ peers send [identity, b"", payload]; DEALER peers may omit the delimiter.
        if len(frames) >= 3 and not frames[1]:
            header, body = frames[:2], frames[2:]
        elif len(frames) >= 2:
            header, body = frames[:1], frames[1:]
        else:
            self.stats.dropped_frames += 1
            return
        if len(body) != 1 or extra:
            self._send_error(
                sock,
                header,
                AlphadError(
                    "bad_request", f"expected 1 payload frame, got {len(body) + extra}"
                ),
                False,
                None,
            )
            return
        payload = body[0]
        as_json = payload[:1] == b"{"
        if not as_json and payload[:1] in JSON_LEADS:
            text = json_text(payload)
            if text is not None:
                payload, as_json = text, True
        request: Any = None
        admitted: Route | None = None
        try:
            if self._closing:
                raise AlphadError("overloaded", f"{SHUTTING_DOWN}: send again later")
            if len(payload) > self.max_message_size:
                raise _too_large(len(payload), self.max_message_size)
            try:
                request = (request_json_decoder if as_json else request_decoder).decode(payload)
            except RecursionError:
                # msgspec gives up on nesting deeper than the interpreter's recursion limit.
                raise AlphadError("bad_request", "message nested too deeply") from None
            except msgspec.ValidationError as exc:
                raise type_refused(exc, payload, as_json) from None
            twice = repeated_field(payload, as_json)
            if twice is None and isinstance(request, MarketBars):
                twice = repeated_in_list(payload, as_json, "bars")
            if twice is not None:
                raise AlphadError("bad_request", f"{twice} given twice in one request")
            route = self.routes[type(request)]
            if route.admin_only and not admin:
                raise _forbidden(request)
            if route.admit is not None:
                route.admit(request)
                admitted = route
            if route.rpc_interval_s and not admin:
                self._pace(request, route.rpc_interval_s)
            if route.inline is not None:
                reply = route.inline(request)
                reply.request_id = request.request_id
                self._send(sock, header, reply, as_json)
                key: tuple[type, Outcome] = (type(request), "ok")
                stats.outcomes[key] = stats.outcomes.get(key, 0) + 1
                if started:
                    stats.samples.append((type(request), perf_counter_ns() - started))
                return
            self._ask(sock, header, request, route, as_json, started)
        except Exception as exc:
            if admitted is not None and admitted.settle is not None:
                admitted.settle(request, None)  # never reached the actor
            if request is None:
                request_id, kind = self._envelope_of(payload, as_json)
            else:
                request_id, kind = request.request_id, type(request)
            self._send_error(sock, header, exc, as_json, request_id, kind)

    def _ask(
        self,
        sock: zmq.Socket[Any],
        header: list[bytes],
        request: Any,
        route: Route,
        as_json: bool,
        started: int,
    ) -> None:
        assert route.actor is not None
        peer = (id(sock), header[0])
        waiting = self._peer_in_flight.get(peer, 0)
        if waiting >= PEER_IN_FLIGHT or self.stats.in_flight >= TOTAL_IN_FLIGHT:
            raise AlphadError(
                "overloaded",
                f"too many requests waiting for an answer ({waiting} from this peer, "
                f"{self.stats.in_flight} in all; at most {PEER_IN_FLIGHT} per peer and "
                f"{TOTAL_IN_FLIGHT} in all): read the replies, then retry",
            )
        message = route.wrap(request) if route.wrap is not None else request
        # Left undone if answered timeout before its turn (docs/protocol.md, Errors).
        future = route.actor.ask_future(message, skippable=True)
        loop = self._loop
        assert loop is not None
        timer = loop.call_later(self.request_timeout_s, _expire, future)
        self.stats.in_flight += 1
        self._peer_in_flight[peer] = waiting + 1
        self._idle.clear()
        future.add_done_callback(
            partial(self._answer_later, sock, header, request, route, as_json, timer, started)
        )

    def _answer_later(
        self,
        sock: zmq.Socket[Any],
        header: list[bytes],
        request: Any,
        route: Route,
        as_json: bool,
        timer: asyncio.TimerHandle,
        started: int,
        future: asyncio.Future[Any],
    ) -> None:
        timer.cancel()
        self.stats.in_flight -= 1
        peer = (id(sock), header[0])
        waiting = self._peer_in_flight.pop(peer, 1) - 1
        if waiting:
            self._peer_in_flight[peer] = waiting
        if self.stats.in_flight == 0:
            self._idle.set()
        try:
            try:
                if future.cancelled():
                    raise asyncio.CancelledError()
                result = future.result()
            except BaseException as failure:
                if route.settle is not None:
                    route.settle(request, failure)
                raise
            if route.settle is not None:
                route.settle(request, result)
            reply = route.unwrap(request, result) if route.unwrap is not None else result
            reply.request_id = request.request_id
        except BaseException as exc:
            self._send_error(sock, header, exc, as_json, request.request_id, type(request))
        else:
            self._send(sock, header, reply, as_json)
            key: tuple[type, Outcome] = (type(request), "ok")
            self.stats.outcomes[key] = self.stats.outcomes.get(key, 0) + 1
        if started:
            self.stats.samples.append((type(request), perf_counter_ns() - started))
        # A send outside the drain loop can consume the FD's edge while requests are
        # queued; look again so none waits for the next unrelated wake-up.
        if not sock.closed and cast(int, _get_option(sock, _EVENTS)) & _POLLIN:
            self._drain(sock, self._is_admin(sock))

    # ------------------------------------------------------------------ sending

    def _send(
        self, sock: zmq.Socket[Any], header: list[bytes], reply: Reply, as_json: bool
    ) -> None:
        body = json_encoder.encode(reply) if as_json else msgpack_encoder.encode(reply)
        try:
            for frame in header:
                _send_frame(sock, frame, _MORE)
            _send_frame(sock, body, _NOBLOCK)
        except zmq.ZMQError as exc:
            # The peer is gone, does not read (its queue is full), or the socket is
            # closed: the reply is given up.
            self.stats.undelivered += 1
            log.debug("gateway_send_failed", error=str(exc))

    def _send_error(
        self,
        sock: zmq.Socket[Any],
        header: list[bytes],
        exc: BaseException,
        as_json: bool,
        request_id: str | None,
        kind: type | None = None,
    ) -> None:
        self.stats.errors += 1
        code, message = error_code(exc, kind)
        key = (kind, code)
        self.stats.outcomes[key] = self.stats.outcomes.get(key, 0) + 1
        if code == "internal":
            self._log_failure(exc, message)
        self._send(sock, header, Error(code=code, message=message, request_id=request_id), as_json)

    def _pace(self, request: Any, interval_s: float) -> None:
        """Refuse a paced request sent on the rpc socket sooner than ``interval_s`` after
        the last one accepted there."""
        kind = type(request)
        now = monotonic()
        last = self._paced.get(kind)
        if last is not None and now - last < interval_s:
            tag = kind.__struct_config__.tag
            raise AlphadError(
                "overloaded",
                f"{tag} is accepted on the rpc socket at most once every {interval_s:g} s "
                f"(the last was {now - last:.2f} s ago); retry later, or use the admin socket",
            )
        self._paced[kind] = now

    def _envelope_of(self, payload: bytes, as_json: bool) -> tuple[str | None, type | None]:
        """Best effort for a request that failed validation: its request_id, to echo, and
        its type, to count it under (None when the type is not one this daemon knows)."""
        try:
            found = (_envelope_json_decoder if as_json else _envelope_decoder).decode(payload)
            request_id, kind = found.request_id, found.type
        except Exception:
            # A map the envelope cannot take whole (a key that is not a string, a field of
            # another type) may still hold a readable request_id and type.
            try:
                value = (msgspec.json.decode if as_json else msgspec.msgpack.decode)(payload)
            except Exception:
                return None, None
            if not isinstance(value, dict):
                return None, None
            request_id, kind = (
                field if isinstance(field := value.get(name), str) else None
                for name in ("request_id", "type")
            )
        if request_id is not None and len(request_id) > 128:
            request_id = None
        return request_id, self._types.get(kind) if kind is not None else None

    def _log_failure(self, exc: BaseException, message: str) -> None:
        """One line per kind of failure a second at most, with the frames it passed
        through but never their locals: those hold the raw request, which is the
        sender's data and can be as large as a request may be."""
        kind = type(exc).__name__
        held = self.error_log.admit(kind)
        if held is None:
            return
        frames = traceback.extract_tb(exc.__traceback__)[-6:]
        log.error(
            "request_failed",
            error=message[:MAX_LOGGED_MESSAGE],
            kind=kind,
            where=[f"{f.filename}:{f.lineno} {f.name}" for f in frames],
            suppressed=held,
        )

    def _is_admin(self, sock: zmq.Socket[Any]) -> bool:
        return any(s is sock and admin for s, admin in self.sockets)


MAX_LOGGED_MESSAGE = 200  # characters of an error's message that reach the log


def _expire(future: asyncio.Future[Any]) -> None:
    if not future.done():
        future.set_exception(TimeoutError())


def _too_large(size: int, limit: int) -> Exception:
    return AlphadError("bad_request", f"message of {size} bytes exceeds the limit of {limit}")


def _forbidden(request: Any) -> Exception:
    kind = type(request).__struct_config__.tag
    return AlphadError("forbidden", f"{kind} is only accepted on the admin socket")


class _Envelope(msgspec.Struct):
    type: str | None = None
    request_id: str | None = None


_envelope_decoder = msgspec.msgpack.Decoder(_Envelope)
_envelope_json_decoder = msgspec.json.Decoder(_Envelope)


def bind_with_mode(sock: zmq.Socket[Any], endpoint: str, mode: int) -> None:
    """Bind; for ipc:// the umask makes the file's mode ``mode`` from its creation on."""
    if not endpoint.startswith("ipc://"):
        sock.bind(endpoint)
        return
    path = endpoint[len("ipc://") :]
    problem = ipc_path_problem(path)
    if problem:
        raise zmq.ZMQError(errno.EEXIST, problem)
    old = os.umask(0o777 & ~mode)
    try:
        sock.bind(endpoint)
    finally:
        os.umask(old)
    if not path.startswith("@"):
        os.chmod(path, mode)
