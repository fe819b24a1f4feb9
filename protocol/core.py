"""What ``Client`` and ``AsyncClient`` share, free of blocking or awaiting: building each
request, the retry policy, decoding the reply and mapping failures to ``AlphadError``.

Timeouts and retries follow the Lazy Pirate pattern: each attempt waits ``timeout_s``;
on a timeout the client closes its REQ socket (a REQ socket that lost its reply can
never send again), opens a new one and resends, up to ``retries`` times, then raises
``AlphadError("timeout", ...)``. A bot therefore rides out a daemon restart with no code
of its own; a call waits at most ``timeout_s * (1 + retries)``.

Only requests that are safe to repeat are resent: the reads, ``score_signal`` (a repeat
only scores the signal again), ``record_trade`` (idempotent on ``trade_id``: a repeat is
answered ``duplicate: true``) and ``record_signal_outcome`` (idempotent on
``signal_id``). ``update_optimization`` and the admin requests are sent once: the first
attempt may have taken effect with only its reply lost, and a repeat would run a second
cycle or move the weights twice. A timeout on one of them raises at once; ``get_history``
or ``get_audit`` tells whether it took effect.

A client made before ``os.fork()`` may be used in the child: its first call there opens a
socket in a context of the child's own (ZeroMQ's cannot cross a fork).
"""

from __future__ import annotations

import os
from typing import Any, ClassVar, Generic, Literal, NamedTuple, Self, TypeVar, cast

import msgspec
import zmq

from alphad.protocol.codec import decode_reply, encode
from alphad.protocol.curve import CurveKeys, HandshakeWatch, over_network
from alphad.protocol.endpoints import checked_endpoint, default_endpoint
from alphad.protocol.errors import SHUTTING_DOWN, AlphadError, ErrorCode
from alphad.protocol.messages import (
    ADMIN_REQUESTS,
    Error,
    Reply,
    Request,
    UpdateOptimization,
)

Encoding = Literal["msgpack", "json"]
R = TypeVar("R", bound=Reply)
S = TypeVar("S", bound="zmq.Socket[Any]")

SENT_ONCE: tuple[type[Request], ...] = (UpdateOptimization, *ADMIN_REQUESTS)
"""Requests never resent after a timeout: their first attempt may already have acted."""
_SENT_ONCE = frozenset(SENT_ONCE)  # a set lookup: isinstance on Structs is slower


class Call(NamedTuple, Generic[R]):
    """One request ready to send, the reply it expects, its timeout and its retries
    (None: the client's)."""

    request: Request
    expected: type[R]
    timeout_s: float | None = None
    retries: int | None = None

    @classmethod
    def of(cls, request: type[Request], expected: type[R], arguments: dict[str, Any]) -> Call[R]:
        """The call of a request method whose parameters are named as the request's
        fields, plus ``timeout_s``."""
        fields = dict(arguments)
        timeout_s = fields.pop("timeout_s")
        try:
            built = request(**fields)
        except ValueError as exc:  # a rule of the request's own (exit before entry)
            raise AlphadError("bad_request", str(exc)) from None
        return cls(built, expected, timeout_s)


def checked_timeout(timeout_s: float) -> float:
    """``timeout_s`` if it is a number of seconds a socket can wait, ``ValueError`` if
    not: a negative one waited for ever (ZeroMQ's poll of -1), one under a millisecond
    gave up at once on a healthy daemon, NaN and infinity failed inside the call."""
    if not (isinstance(timeout_s, int | float) and 0.001 <= timeout_s <= 86_400):
        raise ValueError(f"timeout_s must be 0.001 - 86400 seconds, not {timeout_s!r}")
    return timeout_s


def _non_finite(value: Any, path: str) -> str | None:
    """The first float of a request that is NaN or infinite, named by its path: JSON
    writes them as null, which an optional field (a trade's size) takes for "none"."""
    if isinstance(value, float):
        return None if value - value == 0.0 else f"{path} is {value}"
    if isinstance(value, msgspec.Struct):
        for name in value.__struct_fields__:
            found = _non_finite(getattr(value, name), f"{path}.{name}" if path else name)
            if found is not None:
                return found
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            found = _non_finite(item, f"{path}[{i}]")
            if found is not None:
                return found
    return None


def encoded(request: Request, as_json: bool) -> bytes:
    """The request on the wire, or ``AlphadError("bad_request")`` for what cannot be sent
    as it is (a non-finite number, an integer past 64 bits, a lone surrogate in a string),
    which raised ``OverflowError`` or ``UnicodeEncodeError``, or went out as null."""
    problem = _non_finite(request, "")
    if problem is not None:
        raise AlphadError("bad_request", f"{problem}: every number must be finite")
    try:
        return encode(request, as_json)
    except (OverflowError, UnicodeEncodeError, msgspec.EncodeError) as exc:
        raise AlphadError("bad_request", f"cannot be sent: {exc}") from None


def open_socket(
    context: zmq.Context[S], kind: int, endpoint: str, curve: CurveKeys | None
) -> tuple[S, HandshakeWatch | None]:
    """A connected socket, its handshakes watched on tcp, a CURVE client there when given
    keys. An ipc or inproc socket never takes them: the daemon serves those without CURVE
    (the host's file permissions guard them), and keys an operator gives for its tcp
    sockets would leave a client on them unanswered."""
    sock = context.socket(kind)
    sock.setsockopt(zmq.LINGER, 0)
    if not over_network(endpoint):
        sock.connect(endpoint)
        return sock, None
    if curve is not None:
        curve.apply(sock)
    watch = HandshakeWatch(sock, curve is not None)
    sock.connect(endpoint)
    return sock, watch


class Closing:
    """Closed on leaving a ``with`` block."""

    def close(self) -> None:
        """Close the sockets."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncClosing:
    """Closed on leaving an ``async with`` block."""

    def close(self) -> None:
        """Close the sockets."""
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()


class Transport(Generic[S]):
    """The REQ socket of a client and its settings; ``Client`` and ``AsyncClient`` add
    only the sending and the waiting."""

    awaited: ClassVar[bool]
    """Whether the request methods are awaited (``AsyncClient``) or blocking (``Client``)."""

    def __init__(
        self,
        endpoint: str | None = None,
        *,
        timeout_s: float = 2.0,
        retries: int = 3,
        encoding: Encoding = "msgpack",
        context: zmq.Context[S] | None = None,
        curve: CurveKeys | None = None,
    ) -> None:
        checked_timeout(timeout_s)
        if retries < 0:
            raise ValueError(f"retries must be 0 or more, not {retries!r}")
        if encoding not in ("msgpack", "json"):
            raise ValueError(f"encoding must be 'msgpack' or 'json', not {encoding!r}")
        self.as_json = encoding == "json"
        self.endpoint = checked_endpoint(endpoint) if endpoint else default_endpoint("rpc")
        self.timeout_s = timeout_s
        self.retries = retries
        self.curve = curve
        self.context: zmq.Context[S] = context or self.default_context()
        self.socket: S | None = None
        self.handshakes: HandshakeWatch | None = None
        self._pid = os.getpid()

    def default_context(self) -> zmq.Context[S]:
        """The process's shared context of this kind of client."""
        raise NotImplementedError

    def _socket(self) -> S:
        if self._pid != os.getpid():
            self._forked()
        if self.socket is None:
            self.socket, self.handshakes = open_socket(
                self.context, zmq.REQ, self.endpoint, self.curve
            )
        return self.socket

    def _forked(self) -> None:
        """In a child of ``os.fork()``: ZeroMQ's context and sockets cannot be used across
        a fork (a call waited for ever, spinning), and pyzmq leaves the parent's alone
        there: this process takes the shared context of its own and a new socket."""
        self.socket, self.handshakes = None, None
        self.context = self.default_context()
        self._pid = os.getpid()

    def close(self) -> None:
        """Close the socket; the next call opens a new one."""
        if self.handshakes is not None:
            self.handshakes.close()
            self.handshakes = None
        if self.socket is not None:
            self.socket.close(linger=0)
            self.socket = None


# Writes a resend with the same key makes once: what to tell a bot whose write went
# unanswered (it may still be committed, as a daemon busy on its disk answers late).
RESENDABLE: dict[str, str] = {"record_trade": "trade_id", "record_signal_outcome": "signal_id"}


# Changes a resend would make again (``SENT_ONCE``): whether one that went unanswered took
# effect is in the audit log (the daemon leaves one its asker gave up on undone, unless it
# had begun).
CHANGES = frozenset(str(kind.__struct_config__.tag) for kind in SENT_ONCE)


def resend_hint(request: type | None) -> str | None:
    """What a bot whose ``request`` (a request type) went unanswered should do, for the
    writes a resend makes once and the changes the audit log shows; None for every other
    request."""
    config = getattr(request, "__struct_config__", None)
    tag = str(config.tag) if config is not None else ""
    key = RESENDABLE.get(tag)
    if key is not None:
        return (
            f"it may still be recorded: resend it with the same {key} (answered as a"
            " duplicate if it was)"
        )
    if tag in CHANGES:
        return "get_audit shows whether it took effect"
    return None


class Attempts(Generic[R]):
    """The attempts of one call: what to send, how long to wait, what a reply or its
    absence means."""

    def __init__(self, transport: Transport[Any], call: Call[R]) -> None:
        self.transport = transport
        self.call = call
        self.payload = encoded(call.request, transport.as_json)
        timeout_s = call.timeout_s if call.timeout_s is not None else transport.timeout_s
        self.timeout_ms = int(1000 * checked_timeout(timeout_s))
        self.once = type(call.request) in _SENT_ONCE
        retries = call.retries if call.retries is not None else transport.retries
        self.left = 1 if self.once else 1 + retries
        self.made = 0

    def answer(self, payload: bytes) -> R:
        """The typed reply, or ``AlphadError`` for an ``error`` reply or an unexpected one."""
        expected = self.call.expected
        try:
            reply = decode_reply(payload)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise AlphadError("internal", f"undecodable reply: {exc}") from None
        if isinstance(reply, Error):
            # As sent: a newer daemon may answer with a code this client does not know.
            raise AlphadError(cast(ErrorCode, reply.code), reply.message)
        if not isinstance(reply, expected):
            raise AlphadError(
                "internal", f"expected {expected.__name__}, got {type(reply).__name__}"
            )
        return reply

    def resend_after(self, refused: AlphadError) -> float | None:
        """Seconds to wait before sending again a request the daemon refused because it
        is stopping (nothing took effect; it may be back soon), as long as an attempt
        would have waited for a lost reply; None to raise ``refused`` (any other error,
        no attempt left, or a request sent only once)."""
        if refused.code != "overloaded" or not refused.message.startswith(SHUTTING_DOWN):
            return None
        self.made += 1
        if self.once or self.made >= self.left:
            return None
        return self.timeout_ms / 1000

    def lost(self) -> None:
        """An attempt timed out: drop its socket (a REQ socket that lost its reply can
        never send again); raise when no attempt is left or the handshake was refused."""
        transport = self.transport
        refused = transport.handshakes.refusal(transport.endpoint) if transport.handshakes else None
        transport.close()
        if refused is not None:
            raise refused  # keys do not fix themselves: resending only waits longer
        self.made += 1
        if self.made < self.left:
            return
        hint = resend_hint(type(self.call.request))
        if self.once:
            why = "; not resent because it may have taken effect" + (f" ({hint})" if hint else "")
        else:
            why = f"; {hint}" if hint else ""
        raise AlphadError(
            "timeout",
            f"no reply from {transport.endpoint} to {self.call.request.__struct_config__.tag} "
            f"after {self.made} attempt(s) of {self.timeout_ms} ms{why}",
        )
