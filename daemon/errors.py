"""Every failure is mapped to one wire error code here, and only here.

The models' refusals (actors/errors.py) and the actors' own failures by one table; a
request that does not decode by what protocol.codec found; the ``AlphadError`` the
gateway raises about the wire itself (size, frames, socket, pace) as it is.
"""

from __future__ import annotations

import asyncio

import msgspec

from alphad.actors.base import ActorStopped, MailboxFull
from alphad.actors.errors import BadInput, Conflict, LimitReached, NotFound, UnknownStrategy
from alphad.actors.store import StorageUnavailable
from alphad.protocol.codec import UnknownType
from alphad.protocol.core import resend_hint
from alphad.protocol.errors import SHUTTING_DOWN, AlphadError, ErrorCode

# What a model's refusal, or a failure the daemon expects, is called on the wire; the
# message of the reply is the exception's own text. A subclass takes its base's code.
CODES: dict[type[Exception], ErrorCode] = {
    BadInput: "bad_request",
    UnknownStrategy: "unknown_strategy",
    LimitReached: "limit",
    NotFound: "not_found",
    Conflict: "conflict",
    MailboxFull: "overloaded",
    StorageUnavailable: "storage_unavailable",
}


def error_code(exc: BaseException, request: type | None = None) -> tuple[ErrorCode, str]:
    """The ``(code, message)`` of the error reply for an exception (to a request of the
    type ``request`` when known)."""
    if isinstance(exc, AlphadError):
        return exc.code, exc.message
    for kind in type(exc).__mro__:
        code = CODES.get(kind)
        if code is not None:
            return code, str(exc)
    if isinstance(exc, UnknownType):
        return "unknown_type", f"unknown message type ({exc})"
    if isinstance(exc, msgspec.ValidationError):
        return "bad_request", str(exc)
    if isinstance(exc, msgspec.DecodeError):
        return "bad_request", f"undecodable message: {exc}"
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        hint = resend_hint(request)
        return "timeout", "the daemon did not answer in time" + (f"; {hint}" if hint else "")
    if isinstance(exc, ActorStopped):
        return "overloaded", f"{SHUTTING_DOWN} ({exc})"
    if isinstance(exc, asyncio.CancelledError):
        return "overloaded", SHUTTING_DOWN
    return "internal", f"{type(exc).__name__}: {exc}"
