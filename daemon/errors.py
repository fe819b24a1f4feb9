"""Every failure is mapped to one wire error code here, and only here."""

from __future__ import annotations

import asyncio

import msgspec

from actors.base import ActorStopped, MailboxFull
from actors.store import StorageUnavailable
from protocol.errors import AlphadError, ErrorCode


def error_code(exc: BaseException) -> tuple[ErrorCode, str]:
    """The ``(code, message)`` of the error reply for an exception."""
    if isinstance(exc, AlphadError):
        return exc.code, exc.message
    if isinstance(exc, msgspec.ValidationError):
        text = str(exc)
        if text.startswith("Invalid value") and text.endswith("`$.type`"):
            return "unknown_type", f"unknown message type ({text})"
        return "bad_request", text
    if isinstance(exc, msgspec.DecodeError):
        return "bad_request", f"undecodable message: {exc}"
    if isinstance(exc, MailboxFull):
        return "overloaded", str(exc)
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return "timeout", "the daemon did not answer in time"
    if isinstance(exc, StorageUnavailable):
        return "storage_unavailable", str(exc)
    if isinstance(exc, ActorStopped):
        return "overloaded", f"daemon is shutting down ({exc})"
    if isinstance(exc, asyncio.CancelledError):
        return "overloaded", "daemon is shutting down"
    return "internal", f"{type(exc).__name__}: {exc}"
